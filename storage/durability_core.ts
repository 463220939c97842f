/**
 * The storage actor's logic, synchronous and free of workers so tests can drive it step by
 * step over a MemoryFs. durability_worker.ts feeds it messages and calls `flush()` once the
 * queue is drained: one write per database with queued batches, then one fdatasync per touched
 * log, then the new durable offsets go out (group commit).
 */
import { assert } from "../lib/assert.ts";
import {
  LOG_COMMIT_PAYLOAD_BYTES_TARGET,
  LOG_REPLAY_CHUNK_BYTES,
  SNAPSHOT_INTERVAL_BYTES,
  SNAPSHOT_INTERVAL_TX,
  SNAPSHOTS_KEPT,
} from "../lib/limits.ts";
import { log } from "../lib/log.ts";
import type { CommitLog, CommitView } from "./commitlog/reader.ts";
import { readCommitLog } from "./commitlog/reader.ts";
import { CommitLogWriter } from "./commitlog/writer.ts";
import type { FromDatabaseMessage, OpenResult, ToDatabaseMessage } from "./durability_messages.ts";
import { type FsLayer, makeDirsDurable, removeDurable } from "./fs_layer.ts";
import { CommitBudgetCheck, type CommitLimits } from "./commit_budget.ts";
import { databaseDir, logDir, snapshotDir } from "./recovery.ts";
import { readNewestValidSnapshot, SnapshotAbandonedError, SnapshotFileWriter } from "./snapshot.ts";

/** Where the core's results go; the worker turns these into postMessage calls. */
export interface CoreOutput {
  /**
   * Transactions below `offset` are on disk. `syncMs`: how long this flush's fdatasync of the
   * log took; `txCount`: transactions it made durable (the group-commit batch size); `bytes`:
   * record bytes written since the last report.
   */
  durable(dbKey: string, offset: bigint, syncMs: number, txCount: number, bytes: number): void;
  failed(dbKey: string, error: Error): void;
  toDatabase(dbKey: string, message: ToDatabaseMessage): void;
  snapshotWritten(dbKey: string, txOffset: bigint, requestId: number | undefined): void;
}

export interface CoreOptions {
  segmentBytes?: number;
  preallocateBytes?: number;
  snapshotsKept?: number;
  /** Split one database's drained batches into commits of about this many payload bytes. */
  commitPayloadBytesTarget?: number;
  replayChunkBytes?: number;
  /** Ask a database worker for a snapshot once this many more transactions are durable. */
  snapshotIntervalTx?: number;
  /** ... or once this many more commit-log record bytes are durable, whichever comes first. */
  snapshotIntervalBytes?: number;
  /** Monotonic milliseconds for commit-log rate checks (default performance.now). */
  monotonicMs?: () => number;
}

type AppendMessage = Extract<FromDatabaseMessage, { kind: "append" }>;
type SnapshotMessage = Extract<FromDatabaseMessage, { kind: "snapshot" }>;

interface Replay {
  commits: Generator<CommitView>;
  pending: CommitView | undefined;
  from: bigint;
  snapshotTxOffset: bigint | undefined;
}

interface DatabaseState {
  dbKey: string;
  writer: CommitLogWriter;
  /** The log as read at open, for replay; dropped once appends start. */
  openedLog: CommitLog | undefined;
  pending: AppendMessage[];
  snapshots: SnapshotMessage[];
  failure: Error | undefined;
  reportedOffset: bigint;
  /** The database asked for `durable` notices (`watchDurable`). */
  watchDurable: boolean;
  replay: Replay | undefined;
  /** Durable offset of the newest snapshot on disk or asked for (periodic snapshots count from it). */
  snapshotBase: bigint;
  /** Record bytes made durable since the last snapshot was asked for. */
  bytesSinceSnapshot: number;
  /** The database's commit-log limits, checked on every append (the worker is untrusted). */
  budget: CommitBudgetCheck | undefined;
  /** Record bytes written and not yet reported durable (metrics). */
  unreportedBytes: number;
  /** The snapshot whose pieces are arriving (written to its temp file as they come). */
  snapshotWriter: { writer: SnapshotFileWriter; requestId: number | undefined } | undefined;
  /** Snapshot files waiting for their off-thread fdatasync, abandoned if the database is deleted. */
  snapshotsSyncing: Set<SnapshotFileWriter>;
}

const DB_KEY = /^[A-Za-z0-9_-]{1,128}$/;

export function checkDbKey(dbKey: string): void {
  if (!DB_KEY.test(dbKey)) {
    throw new TypeError(`Database key "${dbKey}" must be 1-128 letters, digits, "-" or "_"`);
  }
}

export class DurabilityCore {
  #fs: FsLayer;
  #dataDir: string;
  #options: CoreOptions;
  #output: CoreOutput;
  #databases = new Map<string, DatabaseState>();
  #dirty = new Set<DatabaseState>();

  constructor(fs: FsLayer, dataDir: string, output: CoreOutput, options: CoreOptions = {}) {
    this.#fs = fs;
    this.#dataDir = dataDir;
    this.#output = output;
    this.#options = options;
  }

  /** Opens a database's log (truncating a torn tail). Throws CorruptLogError on damage. */
  open(dbKey: string, limits?: CommitLimits): OpenResult {
    checkDbKey(dbKey);
    if (this.#databases.has(dbKey)) throw new Error(`Database "${dbKey}" is already open`);
    const dir = logDir(databaseDir(this.#dataDir, dbKey));
    makeDirsDurable(this.#fs, dir);
    // Only the last segment is read now; the replay reads (and verifies) the others once.
    const openedLog = readCommitLog(this.#fs, dir, { verifyEarlierSegments: false });
    const writer = CommitLogWriter.open(this.#fs, dir, {
      segmentBytes: this.#options.segmentBytes,
      preallocateBytes: this.#options.preallocateBytes,
      log: openedLog,
    });
    this.#databases.set(dbKey, {
      dbKey,
      writer,
      openedLog,
      pending: [],
      snapshots: [],
      failure: undefined,
      reportedOffset: writer.durableOffset,
      watchDurable: false,
      replay: undefined,
      snapshotBase: 0n,
      bytesSinceSnapshot: 0,
      unreportedBytes: 0,
      snapshotWriter: undefined,
      snapshotsSyncing: new Set(),
      budget: limits === undefined
        ? undefined
        : new CommitBudgetCheck(limits, this.#options.monotonicMs ?? (() => performance.now())),
    });
    if (openedLog.truncatedTornTail) {
      log.warn("Truncated a torn commit at the end of the log", {
        dbKey,
        file: openedLog.tornTail?.file,
        byteOffset: openedLog.tornTail?.byteOffset,
        reason: openedLog.tornTail?.reason,
      });
    }
    return { durableOffset: writer.durableOffset, truncatedTornTail: openedLog.truncatedTornTail };
  }

  isOpen(dbKey: string): boolean {
    return this.#databases.has(dbKey);
  }

  /** True when `flush()` has work. */
  get hasPending(): boolean {
    return this.#dirty.size > 0;
  }

  /** Takes one message from a database worker. Appends and snapshots wait for `flush()`. */
  receive(dbKey: string, message: FromDatabaseMessage): void {
    const db = this.#databases.get(dbKey);
    if (!db || db.failure) return;
    // The database worker also runs tenant code: anything it sends is checked, and a
    // malformed message stops that database only.
    const problem = malformed(message);
    if (problem !== undefined) {
      this.#fail(db, new Error(`Malformed message from the database worker: ${problem}`));
      return;
    }
    switch (message.kind) {
      case "append": {
        const over = db.budget?.check(message.bytes, message.recordCount);
        if (over !== undefined) {
          this.#fail(db, new Error(`The database worker broke its commit log limits: ${over}`));
          return;
        }
        db.openedLog = undefined;
        db.replay = undefined;
        db.pending.push(message);
        this.#dirty.add(db);
        return;
      }
      case "snapshot":
        db.snapshots.push(message);
        this.#dirty.add(db);
        return;
      case "replay":
        this.#startReplay(db);
        return;
      case "replayNext":
        this.#continueReplay(db);
        return;
      case "watchDurable":
        db.watchDurable = true;
        this.#output.toDatabase(db.dbKey, { kind: "durable", offset: db.reportedOffset });
        return;
    }
  }

  /** Group commit: write every database's queued batches, then sync each touched log once. */
  flush(): void {
    if (this.#dirty.size === 0) return;
    const touched = [...this.#dirty];
    this.#dirty.clear();
    for (const db of touched) {
      if (db.pending.length === 0 || db.failure) continue;
      const pending = db.pending;
      db.pending = [];
      for (let i = 0; i < pending.length; i++) db.unreportedBytes += pending[i].bytes.length;
      try {
        this.#writeBatches(db, pending);
      } catch (error) {
        this.#fail(db, error);
      }
    }
    for (const db of touched) {
      if (db.failure) continue;
      const syncStart = performance.now();
      try {
        db.writer.sync();
      } catch (error) {
        this.#fail(db, error);
        continue;
      }
      const syncMs = performance.now() - syncStart;
      const offset = db.writer.durableOffset;
      if (offset > db.reportedOffset) {
        const txCount = Number(offset - db.reportedOffset);
        db.reportedOffset = offset;
        db.bytesSinceSnapshot += db.unreportedBytes;
        this.#output.durable(db.dbKey, offset, syncMs, txCount, db.unreportedBytes);
        db.unreportedBytes = 0;
        if (db.watchDurable) this.#output.toDatabase(db.dbKey, { kind: "durable", offset });
        this.#maybeAskForSnapshot(db, offset);
      }
    }
    for (const db of touched) {
      const snapshots = db.snapshots;
      db.snapshots = [];
      for (const snapshot of snapshots) this.#writeSnapshot(db, snapshot);
    }
  }

  /** Flushes and closes one database's log. */
  close(dbKey: string): void {
    const db = this.#databases.get(dbKey);
    if (!db) return;
    if (this.#dirty.has(db)) this.flush();
    this.#databases.delete(dbKey);
    db.snapshotWriter?.writer.abort();
    db.snapshotWriter = undefined;
    try {
      db.writer.close();
    } catch (error) {
      if (!db.failure) this.#fail(db, error);
    }
  }

  /** Closes a database and removes all of its files for good. */
  delete(dbKey: string): void {
    checkDbKey(dbKey);
    const db = this.#databases.get(dbKey);
    if (db) {
      this.#dirty.delete(db);
      db.pending = [];
      db.snapshots = [];
      db.snapshotWriter?.writer.abort();
      db.snapshotWriter = undefined;
      // A snapshot whose last sync is in flight renames nothing into the removed directory.
      for (const writer of db.snapshotsSyncing) writer.abandon();
      this.#databases.delete(dbKey);
      try {
        db.writer.close();
      } catch {
        // Its data is being removed anyway.
      }
    }
    removeDurable(this.#fs, databaseDir(this.#dataDir, dbKey));
  }

  /** Flushes and closes everything. */
  closeAll(): void {
    this.flush();
    for (const dbKey of [...this.#databases.keys()]) this.close(dbKey);
  }

  /** Asks a database worker for a snapshot; the result comes back as a "snapshot" message. */
  requestSnapshot(dbKey: string, requestId: number): void {
    const db = this.#databases.get(dbKey);
    if (!db) throw new Error(`Database "${dbKey}" is not open`);
    if (db.failure) throw db.failure;
    this.#output.toDatabase(dbKey, { kind: "snapshotRequest", requestId });
  }

  /**
   * Periodic snapshots: once `snapshotIntervalTx` transactions or `snapshotIntervalBytes` record
   * bytes are durable past the last snapshot, the database worker is asked for one. Its state then is at or past `offset`, and
   * every append it sent before the snapshot reaches this actor first, so the snapshot is never
   * ahead of the log by the time it is written (after the sync of the same flush).
   */
  #maybeAskForSnapshot(db: DatabaseState, offset: bigint): void {
    const interval = BigInt(this.#options.snapshotIntervalTx ?? SNAPSHOT_INTERVAL_TX);
    const intervalBytes = this.#options.snapshotIntervalBytes ?? SNAPSHOT_INTERVAL_BYTES;
    const byCount = interval > 0n && offset - db.snapshotBase >= interval;
    const bySize = intervalBytes > 0 && db.bytesSinceSnapshot >= intervalBytes;
    if (!byCount && !bySize) return;
    db.snapshotBase = offset;
    db.bytesSinceSnapshot = 0;
    this.#output.toDatabase(db.dbKey, { kind: "snapshotRequest", requestId: undefined });
  }

  #writeBatches(db: DatabaseState, batches: AppendMessage[]): void {
    const target = this.#options.commitPayloadBytesTarget ?? LOG_COMMIT_PAYLOAD_BYTES_TARGET;
    let groupFirst = batches[0].firstTxOffset;
    let groupCount = 0;
    let groupBytes = 0;
    let pieces: Uint8Array[] = [];
    for (const batch of batches) {
      if (batch.firstTxOffset !== groupFirst + BigInt(groupCount)) {
        throw new RangeError(
          `Batch starts at tx ${batch.firstTxOffset}, expected tx ${
            groupFirst + BigInt(groupCount)
          }`,
        );
      }
      pieces.push(batch.bytes);
      groupCount += batch.recordCount;
      groupBytes += batch.bytes.length;
      if (groupBytes >= target) {
        db.writer.append(groupFirst, groupCount, pieces);
        groupFirst += BigInt(groupCount);
        groupCount = 0;
        groupBytes = 0;
        pieces = [];
      }
    }
    if (groupCount > 0) db.writer.append(groupFirst, groupCount, pieces);
  }

  /**
   * One snapshot piece (or a whole snapshot): appended to the snapshot's temp file; the last
   * piece makes it durable and renames it into place. With a real file system the fdatasync
   * runs off this thread, so commits of every database keep flowing while it completes.
   */
  #writeSnapshot(db: DatabaseState, snapshot: SnapshotMessage): void {
    const { txOffset, requestId } = snapshot;
    const refuse = (message: string) => {
      log.warn("Snapshot not written", { dbKey: db.dbKey, txOffset, message });
      this.#output.toDatabase(db.dbKey, { kind: "snapshotFailed", txOffset, requestId, message });
    };
    let current = db.snapshotWriter;
    if (current && current.writer.txOffset !== txOffset) {
      current.writer.abort();
      db.snapshotWriter = undefined;
      this.#output.toDatabase(db.dbKey, {
        kind: "snapshotFailed",
        txOffset: current.writer.txOffset,
        requestId: current.requestId,
        message: `abandoned: a snapshot at tx ${txOffset} started before its last piece`,
      });
      current = undefined;
    }
    if (db.failure) {
      current?.writer.abort();
      db.snapshotWriter = undefined;
      return refuse(`the log stopped: ${db.failure.message}`);
    }
    try {
      if (!current) {
        current = {
          writer: new SnapshotFileWriter(
            this.#fs,
            snapshotDir(databaseDir(this.#dataDir, db.dbKey)),
            txOffset,
            { keep: this.#options.snapshotsKept ?? SNAPSHOTS_KEPT },
          ),
          requestId,
        };
        db.snapshotWriter = current;
      }
      current.writer.write(snapshot.bytes);
    } catch (error) {
      current?.writer.abort();
      db.snapshotWriter = undefined;
      return refuse(error instanceof Error ? error.message : String(error));
    }
    if (snapshot.more) return;
    db.snapshotWriter = undefined;
    const writer = current.writer;
    if (txOffset > db.writer.durableOffset) {
      writer.abort();
      return refuse(`tx ${txOffset} is past the durable log end ${db.writer.durableOffset}`);
    }
    const written = () => {
      this.#output.toDatabase(db.dbKey, { kind: "snapshotWritten", txOffset, requestId });
      this.#output.snapshotWritten(db.dbKey, txOffset, requestId);
    };
    let finished: string | Promise<string>;
    try {
      finished = writer.finish();
    } catch (error) {
      writer.abort();
      return refuse(error instanceof Error ? error.message : String(error));
    }
    if (typeof finished === "string") return written();
    db.snapshotsSyncing.add(writer);
    finished.then(
      () => {
        db.snapshotsSyncing.delete(writer);
        if (this.#databases.get(db.dbKey) === db) written();
      },
      (error) => {
        db.snapshotsSyncing.delete(writer);
        writer.abort();
        if (error instanceof SnapshotAbandonedError) {
          // The database was deleted meanwhile: not a failure; a caller waiting is answered.
          if (requestId === undefined) return;
          const message = "the database was deleted";
          this.#output.toDatabase(db.dbKey, {
            kind: "snapshotFailed",
            txOffset,
            requestId,
            message,
          });
        } else if (this.#databases.get(db.dbKey) === db) {
          refuse(error instanceof Error ? error.message : String(error));
        }
      },
    );
  }

  #fail(db: DatabaseState, cause: unknown): void {
    const error = cause instanceof Error ? cause : new Error(String(cause));
    db.failure = error;
    db.pending = [];
    log.error("Storage stopped accepting writes for a database", {
      dbKey: db.dbKey,
      durableOffset: db.writer.durableOffset,
      error: `${error.name}: ${error.message}`,
    });
    this.#output.failed(db.dbKey, error);
    this.#output.toDatabase(db.dbKey, { kind: "failed", message: error.message });
  }

  #startReplay(db: DatabaseState): void {
    const opened = db.openedLog;
    if (!opened) {
      this.#fail(db, new Error("Replay asked for after appends started"));
      return;
    }
    const dbDir = databaseDir(this.#dataDir, db.dbKey);
    const choice = readNewestValidSnapshot(this.#fs, snapshotDir(dbDir), opened.durableEnd);
    for (const skipped of choice.skipped) {
      log.warn("Skipped a snapshot", {
        dbKey: db.dbKey,
        path: skipped.path,
        reason: skipped.reason,
      });
    }
    const from = choice.snapshot?.txOffset ?? 0n;
    db.snapshotBase = from;
    log.info("Replaying a database", {
      dbKey: db.dbKey,
      snapshotTxOffset: choice.snapshot ? choice.snapshot.txOffset : "none",
      logEndTxOffset: opened.durableEnd,
    });
    if (choice.snapshot) {
      this.#output.toDatabase(db.dbKey, {
        kind: "replaySnapshot",
        txOffset: choice.snapshot.txOffset,
        bytes: choice.snapshot.bytes,
      });
    }
    db.replay = {
      commits: opened.commits(from),
      pending: undefined,
      from,
      snapshotTxOffset: choice.snapshot?.txOffset,
    };
    this.#continueReplay(db);
  }

  #continueReplay(db: DatabaseState): void {
    const replay = db.replay;
    const opened = db.openedLog;
    if (!replay || !opened) return;
    const chunkTarget = this.#options.replayChunkBytes ?? LOG_REPLAY_CHUNK_BYTES;
    const from = replay.from;
    const pieces: Uint8Array[] = [];
    let bytes = 0;
    let first = -1n;
    let count = 0;
    try {
      for (;;) {
        const commit = replay.pending ?? replay.commits.next().value;
        replay.pending = undefined;
        if (!commit) break;
        if (bytes > 0 && bytes + commit.payload.length > chunkTarget) {
          replay.pending = commit;
          break;
        }
        let payload = commit.payload;
        let commitFirst = commit.firstTxOffset;
        let commitCount = commit.recordCount;
        if (commitFirst < from) {
          // The snapshot falls inside this commit: skip its leading records.
          const skip = Number(from - commitFirst);
          const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
          let at = 0;
          for (let i = 0; i < skip; i++) at += 4 + view.getUint32(at, true);
          payload = payload.subarray(at);
          commitFirst = from;
          commitCount -= skip;
        }
        if (first < 0n) first = commitFirst;
        assert(commitFirst === first + BigInt(count), "Replayed commits are contiguous");
        pieces.push(payload);
        bytes += payload.length;
        count += commitCount;
      }
    } catch (error) {
      this.#fail(db, error);
      return;
    }
    if (count > 0) {
      const joined = new Uint8Array(bytes);
      let at = 0;
      for (const piece of pieces) {
        joined.set(piece, at);
        at += piece.length;
      }
      this.#output.toDatabase(db.dbKey, {
        kind: "replayBatch",
        firstTxOffset: first,
        recordCount: count,
        bytes: joined,
      });
      return;
    }
    db.replay = undefined;
    this.#output.toDatabase(db.dbKey, {
      kind: "replayEnd",
      durableOffset: opened.durableEnd,
      snapshotTxOffset: replay.snapshotTxOffset,
      truncatedTornTail: opened.truncatedTornTail,
    });
  }
}

/** Why `message` is not a well-formed FromDatabaseMessage, or undefined when it is. */
export function malformed(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return "not an object";
  const m = message as Record<string, unknown>;
  const isOffset = (value: unknown) => typeof value === "bigint" && value >= 0n;
  switch (m.kind) {
    case "append":
      if (!isOffset(m.firstTxOffset)) return "append.firstTxOffset is not a u64";
      if (
        typeof m.recordCount !== "number" || !Number.isInteger(m.recordCount) || m.recordCount < 1
      ) {
        return "append.recordCount is not a positive integer";
      }
      if (!(m.bytes instanceof Uint8Array)) return "append.bytes is not a Uint8Array";
      return undefined;
    case "snapshot":
      if (!isOffset(m.txOffset)) return "snapshot.txOffset is not a u64";
      if (m.more !== undefined && typeof m.more !== "boolean") {
        return "snapshot.more is not a boolean";
      }
      if (!(m.bytes instanceof Uint8Array)) return "snapshot.bytes is not a Uint8Array";
      if (m.requestId !== undefined && typeof m.requestId !== "number") {
        return "snapshot.requestId is not a number";
      }
      return undefined;
    case "replay":
    case "replayNext":
    case "watchDurable":
      return undefined;
    default:
      return `unknown kind ${JSON.stringify(String(m.kind))}`;
  }
}
