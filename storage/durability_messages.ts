/**
 * Messages between a database worker and the storage actor (over the MessagePort that
 * DurabilityActor.openDatabase returns), and between the main thread and the actor.
 *
 * Batches are length-prefixed transaction records (commit payload layout, see
 * commitlog/frame.ts); their ArrayBuffer is transferred, never copied.
 */

import type { CommitLimits } from "./commit_budget.ts";

/** Database worker -> storage actor. */
export type FromDatabaseMessage =
  /** Transactions [firstTxOffset, firstTxOffset + recordCount) to make durable. */
  | { kind: "append"; firstTxOffset: bigint; recordCount: number; bytes: Uint8Array }
  /** State after transactions [0, txOffset), to store as a snapshot once they are durable. */
  /**
   * A snapshot may come in pieces: every piece but the last has `more: true`, all carry the same
   * txOffset and requestId, and the body is the pieces concatenated (the last may be empty).
   */
  | {
    kind: "snapshot";
    txOffset: bigint;
    bytes: Uint8Array;
    requestId: number | undefined;
    more?: boolean;
  }
  /** Start streaming the stored state back (before any append). */
  | { kind: "replay" }
  /** The previous replay chunk is applied; send the next. */
  | { kind: "replayNext" }
  /**
   * Send `durable` notices from now on, the current offset at once. Off until asked: the server
   * releases replies from the actor's own `durable` event, and a database process has no use for
   * them, so each flush would cost it a hop through the main thread and a wake-up for nothing.
   */
  | { kind: "watchDurable" };

/** Storage actor -> database worker. */
export type ToDatabaseMessage =
  /** Transactions below `offset` are on disk (only after `watchDurable`). */
  | { kind: "durable"; offset: bigint }
  /** Writes for this database stopped; nothing after the last durable offset is kept. */
  | { kind: "failed"; message: string }
  | { kind: "replaySnapshot"; txOffset: bigint; bytes: Uint8Array }
  | { kind: "replayBatch"; firstTxOffset: bigint; recordCount: number; bytes: Uint8Array }
  | {
    kind: "replayEnd";
    durableOffset: bigint;
    snapshotTxOffset: bigint | undefined;
    truncatedTornTail: boolean;
  }
  /**
   * Take a snapshot now and send it with this request id: asked for by the main thread, or
   * without an id by the storage actor itself every `snapshotIntervalTx` durable transactions.
   */
  | { kind: "snapshotRequest"; requestId: number | undefined }
  | { kind: "snapshotWritten"; txOffset: bigint; requestId: number | undefined }
  | { kind: "snapshotFailed"; txOffset: bigint; requestId: number | undefined; message: string };

export interface StorageOptions {
  dataDir: string;
  segmentBytes?: number;
  preallocateBytes?: number;
  snapshotsKept?: number;
  /** Benchmarks and `--in-memory` only: skip fdatasync, so nothing is really durable. */
  unsafeSkipSync?: boolean;
  /** Tests only: report offsets durable before their fdatasync, which runs this much later. */
  unsafeLateSyncMs?: number;
  /** Ask a database for a snapshot every this many durable transactions (lib/limits.ts default). */
  snapshotIntervalTx?: number;
  /** ... or every this many durable commit-log record bytes, whichever comes first. */
  snapshotIntervalBytes?: number;
}

/** Main thread -> storage actor. */
export type ActorRequest =
  | { id: number; op: "init"; options: StorageOptions }
  | { id: number; op: "open"; dbKey: string; port: MessagePort; limits?: CommitLimits }
  | { id: number; op: "close"; dbKey: string }
  | { id: number; op: "delete"; dbKey: string }
  | { id: number; op: "requestSnapshot"; dbKey: string }
  | { id: number; op: "stop" };

export interface OpenResult {
  durableOffset: bigint;
  truncatedTornTail: boolean;
}

/** Storage actor -> main thread. */
export type ActorEvent =
  | { kind: "reply"; id: number; ok: true; value: unknown }
  | { kind: "reply"; id: number; ok: false; errorName: string; message: string }
  /** Per database flushed: durable offset, fdatasync ms, transactions made durable, bytes. */
  | {
    kind: "durable";
    updates: Array<
      [dbKey: string, offset: bigint, syncMs: number, txCount: number, bytes: number]
    >;
  }
  | { kind: "failure"; dbKey: string; errorName: string; message: string }
  | { kind: "snapshotWritten"; dbKey: string; txOffset: bigint; requestId: number | undefined };
