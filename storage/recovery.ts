/**
 * Rebuilding a database from disk: the newest valid snapshot not newer than the log's end,
 * then the log suffix after it. A damaged snapshot falls back to an older one, or to the whole
 * log (the log is never compacted). A damaged log throws CorruptLogError.
 */
import { type CommitLog, readCommitLog, type TornTail } from "./commitlog/reader.ts";
import { type FsLayer, joinPath } from "./fs_layer.ts";
import { readNewestValidSnapshot } from "./snapshot.ts";

/** Where one database keeps its files under the server's data directory. */
export function databaseDir(dataDir: string, dbKey: string): string {
  return joinPath(dataDir, "databases", dbKey);
}
export function logDir(dbDir: string): string {
  return joinPath(dbDir, "log");
}
export function snapshotDir(dbDir: string): string {
  return joinPath(dbDir, "snapshots");
}

export interface RecoveryPlan {
  log: CommitLog;
  snapshot: { txOffset: bigint; bytes: Uint8Array; path: string } | undefined;
  skippedSnapshots: Array<{ path: string; reason: string }>;
  /** First log transaction to replay on top of the snapshot. */
  replayFrom: bigint;
}

/** Reads the log (truncating a torn tail) and chooses the snapshot, without applying anything. */
export function planRecovery(fs: FsLayer, dbDir: string): RecoveryPlan {
  const log = readCommitLog(fs, logDir(dbDir));
  const choice = readNewestValidSnapshot(fs, snapshotDir(dbDir), log.durableEnd);
  return {
    log,
    snapshot: choice.snapshot,
    skippedSnapshots: choice.skipped,
    replayFrom: choice.snapshot?.txOffset ?? 0n,
  };
}

export interface RecoveryResult {
  /** One past the last recovered transaction. */
  durableEnd: bigint;
  snapshotTxOffset: bigint | undefined;
  skippedSnapshots: Array<{ path: string; reason: string }>;
  replayedCount: number;
  truncatedTornTail: boolean;
  tornTail: TornTail | undefined;
}

export interface RecoveryHandlers {
  applySnapshot(bytes: Uint8Array, txOffset: bigint): void;
  applyRecord(payload: Uint8Array, txOffset: bigint): void;
}

/** Recovers one database synchronously through the handlers. */
export function recoverDatabase(
  fs: FsLayer,
  dbDir: string,
  handlers: RecoveryHandlers,
): RecoveryResult {
  const plan = planRecovery(fs, dbDir);
  if (plan.snapshot) handlers.applySnapshot(plan.snapshot.bytes, plan.snapshot.txOffset);
  let replayedCount = 0;
  for (const record of plan.log.records(plan.replayFrom)) {
    handlers.applyRecord(record.bytes, record.offset);
    replayedCount++;
  }
  return {
    durableEnd: plan.log.durableEnd,
    snapshotTxOffset: plan.snapshot?.txOffset,
    skippedSnapshots: plan.skippedSnapshots,
    replayedCount,
    truncatedTornTail: plan.log.truncatedTornTail,
    tornTail: plan.log.tornTail,
  };
}
