/**
 * Main-thread handle of the storage actor (durability_worker.ts), one per server.
 *
 *   const actor = await DurabilityActor.start({ dataDir });
 *   actor.onDurable((dbKey, offset) => releaseRepliesBelow(dbKey, offset));
 *   const { port, durableOffset } = await actor.openDatabase(dbKey);
 *   // hand `port` to the database worker (transfer it); wrap it there in DurabilityPort
 *
 * Offsets are exclusive ends: transaction t is durable once a reported offset is > t.
 */
import type {
  ActorEvent,
  ActorRequest,
  OpenResult,
  StorageOptions,
} from "./durability_messages.ts";
import type { CommitLimits } from "./commit_budget.ts";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Called per database per flush: durable offset, fdatasync ms, transactions made durable and
 * the record bytes written for them.
 */
export type DurableListener = (
  dbKey: string,
  offset: bigint,
  syncMs: number,
  txCount: number,
  bytes: number,
) => void;

/** The storage worker stopped or crashed; nothing more will become durable through it. */
export class StorageActorError extends Error {
  override name = "StorageActorError";
}

/** An error reported by the storage worker, with the worker-side error name kept. */
export class StorageError extends Error {
  constructor(readonly errorName: string, message: string) {
    super(message);
    this.name = errorName;
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export class DurabilityActor {
  #worker: Worker;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #durableListeners = new Set<DurableListener>();
  #failureListeners = new Set<(dbKey: string, error: Error) => void>();
  #snapshotListeners = new Set<(dbKey: string, txOffset: bigint) => void>();
  #durableOffsets = new Map<string, bigint>();
  #stopped: Error | undefined;

  static async start(options: StorageOptions): Promise<DurabilityActor> {
    const worker = new Worker(new URL("./durability_worker.ts", import.meta.url), {
      type: "module",
      name: "lightcone-storage",
    });
    const actor = new DurabilityActor(worker);
    try {
      await actor.#request({ op: "init", options });
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return actor;
  }

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<ActorEvent>) => this.#onEvent(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#crash(new StorageActorError(`Storage worker crashed: ${event.message}`));
    };
  }

  /**
   * Opens a database's log (truncating a torn tail; rejecting with CorruptLogError's message on
   * damage) and returns the port its database worker sends batches on.
   */
  async openDatabase(
    dbKey: string,
    limits?: CommitLimits,
  ): Promise<OpenResult & { port: MessagePort }> {
    const channel = new MessageChannel();
    try {
      const result = await this.#request(
        { op: "open", dbKey, port: channel.port2, limits },
        [channel.port2],
      ) as OpenResult;
      this.#durableOffsets.set(dbKey, result.durableOffset);
      return { ...result, port: channel.port1 };
    } catch (error) {
      channel.port1.close();
      throw error;
    }
  }

  /** Flushes and closes a database's log; its port stops working. */
  async closeDatabase(dbKey: string): Promise<void> {
    await this.#request({ op: "close", dbKey });
    this.#durableOffsets.delete(dbKey);
  }

  /** Closes a database and removes all of its files (log and snapshots) for good. */
  async deleteDatabase(dbKey: string): Promise<void> {
    await this.#request({ op: "delete", dbKey });
    this.#durableOffsets.delete(dbKey);
  }

  /** Asks the database worker for a snapshot and resolves with its tx offset once written. */
  async requestSnapshot(dbKey: string): Promise<bigint> {
    return await this.#request({ op: "requestSnapshot", dbKey }) as bigint;
  }

  /** Last durable offset reported for an open database. */
  durableOffset(dbKey: string): bigint | undefined {
    return this.#durableOffsets.get(dbKey);
  }

  /** `listener` gets each flush's durable offset, fdatasync ms and transactions made durable. */
  onDurable(listener: DurableListener): () => void {
    this.#durableListeners.add(listener);
    return () => this.#durableListeners.delete(listener);
  }

  /** A database's writes stopped (failed write or fsync); it must not acknowledge anything more. */
  onFailure(listener: (dbKey: string, error: Error) => void): () => void {
    this.#failureListeners.add(listener);
    return () => this.#failureListeners.delete(listener);
  }

  onSnapshot(listener: (dbKey: string, txOffset: bigint) => void): () => void {
    this.#snapshotListeners.add(listener);
    return () => this.#snapshotListeners.delete(listener);
  }

  /** Flushes and closes every log, then ends the worker. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#request({ op: "stop" });
    } finally {
      this.#stopped = new StorageActorError("Storage actor was stopped");
      this.#worker.terminate();
      this.#rejectAll(this.#stopped);
    }
  }

  #request(
    request: DistributiveOmit<ActorRequest, "id">,
    transfer: Transferable[] = [],
  ): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id }, transfer);
    });
  }

  #onEvent(event: ActorEvent): void {
    switch (event.kind) {
      case "reply": {
        const pending = this.#pending.get(event.id);
        if (!pending) return;
        this.#pending.delete(event.id);
        if (event.ok) pending.resolve(event.value);
        else pending.reject(new StorageError(event.errorName, event.message));
        return;
      }
      case "durable":
        for (const [dbKey, offset, syncMs, txCount, bytes] of event.updates) {
          this.#durableOffsets.set(dbKey, offset);
          for (const listener of this.#durableListeners) {
            listener(dbKey, offset, syncMs, txCount, bytes);
          }
        }
        return;
      case "failure": {
        const error = new StorageError(event.errorName, event.message);
        for (const listener of this.#failureListeners) listener(event.dbKey, error);
        return;
      }
      case "snapshotWritten":
        for (const listener of this.#snapshotListeners) listener(event.dbKey, event.txOffset);
        return;
    }
  }

  #crash(error: Error): void {
    this.#stopped = error;
    for (const dbKey of this.#durableOffsets.keys()) {
      for (const listener of this.#failureListeners) listener(dbKey, error);
    }
    this.#rejectAll(error);
    this.#worker.terminate();
  }

  #rejectAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}
