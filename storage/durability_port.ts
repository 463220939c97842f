/**
 * The database worker's end of its storage port: send commit batches, learn what is durable,
 * replay stored state at start-up, and answer snapshot requests.
 *
 *   const storage = new DurabilityPort(port, { takeSnapshot: () => datastore.snapshot() });
 *   const { durableOffset } = await storage.replay({ snapshot: load, batch: applyBatch });
 *   storage.append(firstTxOffset, recordCount, batchBytes); // batchBytes from TxBatchEncoder
 */
import { forEachRecord } from "./commitlog/frame.ts";
import type { FromDatabaseMessage, ToDatabaseMessage } from "./durability_messages.ts";

export interface ReplayHandlers {
  /** State after transactions [0, txOffset). Called at most once, before any batch. */
  snapshot(bytes: Uint8Array, txOffset: bigint): void;
  /** Length-prefixed records [firstTxOffset, firstTxOffset + recordCount), in order. */
  batch(firstTxOffset: bigint, recordCount: number, bytes: Uint8Array): void;
}

export interface ReplayResult {
  durableOffset: bigint;
  snapshotTxOffset: bigint | undefined;
  truncatedTornTail: boolean;
}

export interface DurabilityPortOptions {
  /**
   * Produces the current state and the tx offset it reflects; enables snapshots. The storage
   * actor asks for one every `snapshotIntervalTx` durable transactions (and on request).
   */
  takeSnapshot?: () => { txOffset: bigint; bytes: Uint8Array };
  /**
   * Like `takeSnapshot`, but the state is read out in pieces (`Datastore.captureState`), one
   * piece per macrotask, so a large snapshot never stops the database for long. Preferred over
   * `takeSnapshot` when both are given.
   */
  captureSnapshot?: () => { txOffset: bigint; cursor: SnapshotCursor };
  /**
   * Runs each step of a streamed snapshot (the capture with the first piece, then one piece
   * per macrotask); the database process times them as event-loop tasks
   * (worker/stall_recorder.ts). Default: runs the step.
   */
  runSnapshotStep?: (step: () => void) => void;
}

/** Pieces of a captured state (Datastore.captureState's StateCursor). */
export interface SnapshotCursor {
  next(maxBytes: number): Uint8Array | null;
  release(): void;
}

/**
 * The host's setTimeout, captured when this module loads: inside a database process the sandbox
 * later removes or lets tenant code patch globals (worker/sandbox.ts).
 */
const hostSetTimeout = globalThis.setTimeout;

/**
 * Bytes per snapshot piece, one frame on the way to the storage worker. Each piece holds the
 * database's event loop while it is encoded: 512 KiB took 4-9 ms of CPU on the loaded 2-core VM
 * (bench/keynote/stall_probe.ts), 256 KiB half that.
 */
export const SNAPSHOT_PIECE_BYTES = 256 * 1024;

/** Calls `visit` with each record of a batch and its tx offset (views, no copies). */
export function forEachBatchRecord(
  firstTxOffset: bigint,
  recordCount: number,
  bytes: Uint8Array,
  visit: (record: Uint8Array, txOffset: bigint) => void,
): void {
  forEachRecord(
    bytes,
    recordCount,
    (index, record) => visit(record, firstTxOffset + BigInt(index)),
  );
}

/** `forEachBatchRecord` with number offsets (no BigInt per record: replay's hot loop). */
export function forEachBatchRecordNumbered(
  firstTxOffset: number,
  recordCount: number,
  bytes: Uint8Array,
  visit: (record: Uint8Array, txOffset: number) => void,
): void {
  forEachRecord(bytes, recordCount, (index, record) => visit(record, firstTxOffset + index));
}

/** `bytes` itself when it spans its whole buffer (then transferred), else a copy of just it. */
function ownBuffer(bytes: Uint8Array): Uint8Array {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer;
  return whole ? bytes : bytes.slice();
}

/** What DurabilityPort needs of its port: a MessagePort, or a database process's channel. */
export interface DurabilityChannel {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  // deno-lint-ignore no-explicit-any
  onmessage: ((event: any) => void) | null;
  close(): void;
}

export class DurabilityPort {
  #port: DurabilityChannel;
  #options: DurabilityPortOptions;
  #durableOffset = 0n;
  #sentOffset: bigint | undefined;
  #failure: string | undefined;
  #durableListeners = new Set<(offset: bigint) => void>();
  #watchingDurable = false;
  #failureListeners = new Set<(message: string) => void>();
  /** The snapshot being streamed, and explicit requests that arrived meanwhile. */
  #streaming: { cursor: SnapshotCursor } | undefined;
  #queuedRequests: number[] = [];
  #closed = false;
  #replay:
    | { handlers: ReplayHandlers; resolve(result: ReplayResult): void; reject(error: Error): void }
    | undefined;

  constructor(port: DurabilityChannel, options: DurabilityPortOptions = {}) {
    this.#port = port;
    this.#options = options;
    port.onmessage = (event: { data: ToDatabaseMessage }) => this.#onMessage(event.data);
  }

  /** One past the last durable transaction: as of replay, current once `onDurable` was called. */
  get durableOffset(): bigint {
    return this.#durableOffset;
  }

  /** Transactions sent but not yet durable (current only once `onDurable` was called). */
  get inFlightTxCount(): number {
    return this.#sentOffset === undefined ? 0 : Number(this.#sentOffset - this.#durableOffset);
  }

  /** Why writes stopped, once they have. */
  get failure(): string | undefined {
    return this.#failure;
  }

  /**
   * Calls `listener` with each new durable offset. The storage actor sends them only once some
   * listener asked (the first call), so `durableOffset` moves past its replay value from then on.
   */
  onDurable(listener: (offset: bigint) => void): () => void {
    if (!this.#watchingDurable) {
      this.#watchingDurable = true;
      this.#send({ kind: "watchDurable" });
    }
    this.#durableListeners.add(listener);
    return () => this.#durableListeners.delete(listener);
  }

  onFailure(listener: (message: string) => void): () => void {
    this.#failureListeners.add(listener);
    return () => this.#failureListeners.delete(listener);
  }

  /** Streams the stored snapshot and log suffix through `handlers`. Call once, before appending. */
  replay(handlers: ReplayHandlers): Promise<ReplayResult> {
    if (this.#replay) throw new Error("A replay is already running");
    if (this.#sentOffset !== undefined) throw new Error("Replay must come before the first append");
    return new Promise((resolve, reject) => {
      this.#replay = { handlers, resolve, reject };
      this.#send({ kind: "replay" });
    });
  }

  /**
   * Sends transactions [firstTxOffset, firstTxOffset + recordCount) to be made durable.
   * When `bytes` spans its whole ArrayBuffer the buffer is transferred (do not reuse it);
   * otherwise just the view is copied.
   */
  append(firstTxOffset: bigint, recordCount: number, bytes: Uint8Array): void {
    if (this.#failure) throw new Error(`Storage stopped for this database: ${this.#failure}`);
    if (this.#sentOffset !== undefined && firstTxOffset !== this.#sentOffset) {
      throw new RangeError(`Batch starts at tx ${firstTxOffset}, expected tx ${this.#sentOffset}`);
    }
    this.#sentOffset = firstTxOffset + BigInt(recordCount);
    const owned = ownBuffer(bytes);
    const message: FromDatabaseMessage = {
      kind: "append",
      firstTxOffset,
      recordCount,
      bytes: owned,
    };
    this.#port.postMessage(message, [owned.buffer as ArrayBuffer]);
  }

  /** Sends a snapshot of the state after transactions [0, txOffset). */
  snapshot(txOffset: bigint, bytes: Uint8Array, requestId?: number): void {
    const owned = ownBuffer(bytes);
    const message: FromDatabaseMessage = { kind: "snapshot", txOffset, bytes: owned, requestId };
    this.#port.postMessage(message, [owned.buffer as ArrayBuffer]);
  }

  /**
   * Takes a snapshot of the current state on the database's own initiative (e.g. right after a
   * migration commits, so a restart does not replay it), streamed in pieces like a periodic one.
   * Needs `captureSnapshot`; a no-op while one is already streaming (that one covers the state).
   */
  snapshotNow(): void {
    if (!this.#options.captureSnapshot || this.#closed || this.#failure || this.#streaming) return;
    this.#streamSnapshot(undefined);
  }

  close(): void {
    this.#closed = true;
    this.#streaming?.cursor.release();
    this.#streaming = undefined;
    this.#port.close();
  }

  /** True while a snapshot is being read out and sent in pieces. */
  get snapshotInProgress(): boolean {
    return this.#streaming !== undefined;
  }

  /**
   * Sends the captured state as `snapshot` messages of at most ~SNAPSHOT_PIECE_BYTES, all with
   * `more: true` but the last, one per macrotask. Requests arriving meanwhile are queued.
   */
  #streamSnapshot(requestId: number | undefined): void {
    const run = this.#options.runSnapshotStep ?? ((task: () => void) => task());
    run(() => this.#startStreaming(requestId, run));
  }

  #startStreaming(requestId: number | undefined, run: (task: () => void) => void): void {
    const { txOffset, cursor } = this.#options.captureSnapshot!();
    const streaming = { cursor };
    this.#streaming = streaming;
    const runStep = () => run(step);
    const step = () => {
      if (this.#streaming !== streaming) return; // closed
      if (this.#failure) {
        this.#finishStreaming();
        return;
      }
      try {
        const piece = cursor.next(SNAPSHOT_PIECE_BYTES);
        if (piece === null) {
          this.#sendSnapshot(txOffset, new Uint8Array(0), requestId, false);
          this.#finishStreaming();
          return;
        }
        this.#sendSnapshot(txOffset, piece, requestId, true);
      } catch (error) {
        // Never into the caller (the frame reader): the snapshot is dropped, the database goes on.
        console.error("Snapshot not sent:", error instanceof Error ? error.message : error);
        this.#finishStreaming();
        return;
      }
      hostSetTimeout(runStep, 0);
    };
    step();
  }

  #finishStreaming(): void {
    this.#streaming?.cursor.release();
    this.#streaming = undefined;
    if (this.#closed || this.#failure) return;
    const next = this.#queuedRequests.shift();
    if (next !== undefined) this.#streamSnapshot(next);
  }

  #sendSnapshot(txOffset: bigint, bytes: Uint8Array, requestId: number | undefined, more: boolean) {
    const owned = ownBuffer(bytes);
    const message: FromDatabaseMessage = more
      ? { kind: "snapshot", txOffset, bytes: owned, requestId, more }
      : { kind: "snapshot", txOffset, bytes: owned, requestId };
    this.#port.postMessage(message, [owned.buffer as ArrayBuffer]);
  }

  #send(message: FromDatabaseMessage): void {
    this.#port.postMessage(message);
  }

  #onMessage(message: ToDatabaseMessage): void {
    switch (message.kind) {
      case "durable":
        this.#durableOffset = message.offset;
        for (const listener of this.#durableListeners) listener(message.offset);
        return;
      case "failed":
        this.#failure = message.message;
        for (const listener of this.#failureListeners) listener(message.message);
        this.#replay?.reject(new Error(message.message));
        this.#replay = undefined;
        return;
      case "replaySnapshot":
        this.#runReplayStep(() => this.#replay!.handlers.snapshot(message.bytes, message.txOffset));
        return;
      case "replayBatch":
        this.#runReplayStep(() =>
          this.#replay!.handlers.batch(message.firstTxOffset, message.recordCount, message.bytes)
        );
        if (this.#replay) this.#send({ kind: "replayNext" });
        return;
      case "replayEnd": {
        const replay = this.#replay;
        this.#replay = undefined;
        this.#durableOffset = message.durableOffset;
        this.#sentOffset = message.durableOffset;
        replay?.resolve({
          durableOffset: message.durableOffset,
          snapshotTxOffset: message.snapshotTxOffset,
          truncatedTornTail: message.truncatedTornTail,
        });
        return;
      }
      case "snapshotRequest": {
        if (this.#options.captureSnapshot) {
          if (this.#streaming) {
            // A periodic request while one streams is already answered by it.
            if (message.requestId !== undefined) this.#queuedRequests.push(message.requestId);
          } else {
            this.#streamSnapshot(message.requestId);
          }
          return;
        }
        const taken = this.#options.takeSnapshot?.();
        if (!taken) return;
        this.snapshot(taken.txOffset, taken.bytes, message.requestId);
        return;
      }
      case "snapshotWritten":
      case "snapshotFailed":
        return;
    }
  }

  #runReplayStep(step: () => void): void {
    if (!this.#replay) return;
    try {
      step();
    } catch (error) {
      this.#replay.reject(error instanceof Error ? error : new Error(String(error)));
      this.#replay = undefined;
    }
  }
}
