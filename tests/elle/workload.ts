/**
 * The list-append workload: concurrent clients of the official `spacetimedb` SDK call the elle
 * fixture module's `txn` reducer and read their subscription cache, recording every invocation
 * and completion in one history for tests/elle/checker.ts.
 *
 * Each client connection is one process. A call completes "ok" when the SDK settles it, "fail"
 * only when the module deliberately aborted it, and "info" (unknown: it may or may not have
 * committed) on anything else: a dropped connection, a timeout, a server-side error. After an
 * unknown outcome the client drops the connection and reconnects as a new process, as Jepsen
 * does, since the old call may still complete. The initial state of every subscription is a read
 * bound by real time; later cache reads are "stale" reads ordered only by their own process.
 *
 * The seed fixes every client's choices (operation kinds, keys, aborts, timing jitter); which
 * calls interleave how still depends on the machine.
 */
import { type Random, seededRandom } from "../../lib/random.ts";
import { DbConnection } from "../fixtures/bindings/elle/index.ts";
import type { HistoryEvent, MicroOp } from "./checker.ts";

/** The module's error text for a deliberate abort (tests/fixtures/modules/elle). */
const ABORT_MESSAGE = "elle: deliberate abort";

export interface WorkloadOptions {
  /** The server's current URL (it changes when the server restarts on a new port). */
  url: () => string;
  database: string;
  seed: number;
  clients?: number;
  /** Keys appended to at the same time; a key retires after `appendsPerKey` appends. */
  activeKeys?: number;
  appendsPerKey?: number;
  /** Micro-ops per transaction, at most. */
  txnLengthMax?: number;
  /** Share of operations that read the client cache instead of calling the server. */
  cacheReadShare?: number;
  /** Share of calls the module is asked to abort after applying them. */
  abortShare?: number;
  /** Bytes of ignored padding sent with every call (fills the commit log faster); see setPad. */
  padBytes?: number;
  /** A call still unanswered after this long is an unknown outcome. */
  callTimeoutMs?: number;
}

export interface WorkloadStats {
  calls: number;
  ok: number;
  /** Appends in acknowledged calls (what the checker counts as `appendsOk`). */
  appendsOk: number;
  fail: number;
  info: number;
  cacheReads: number;
  connections: number;
  connectFailures: number;
  /** Calls acknowledged without the caller's own txn_result row in its cache (must be 0). */
  missingResults: number;
  /** Why outcomes were unknown, by message, counted. */
  unknownReasons: Map<string, number>;
}

class Recorder {
  readonly events: HistoryEvent[] = [];
  readonly #start = performance.now();
  now(): number {
    return performance.now() - this.#start;
  }
  invoke(process: number, txn: MicroOp[], stale = false): void {
    this.events.push({
      type: "invoke",
      process,
      time: this.now(),
      txn,
      ...(stale ? { stale } : {}),
    });
  }
  complete(
    type: "ok" | "fail" | "info",
    process: number,
    txn: readonly MicroOp[],
    options: { stale?: boolean; error?: string } = {},
  ): void {
    this.events.push({ type, process, time: this.now(), txn, ...options });
  }
}

/** Keys in use; a key retires after enough appends so that lists stay short. */
class KeyPool {
  readonly active: number[];
  #nextKey: number;
  #appends = new Map<number, number>();
  constructor(readonly size: number, readonly appendsPerKey: number) {
    this.active = Array.from({ length: size }, (_, i) => i);
    this.#nextKey = size;
  }
  /** Every key ever handed out: 0 .. count-1. */
  get count(): number {
    return this.#nextKey;
  }
  pick(random: Random): number {
    return this.active[Math.floor(random.next() * this.active.length)];
  }
  /** Counts an append to `key`, retiring the key once it is full. */
  appended(key: number): void {
    const count = (this.#appends.get(key) ?? 0) + 1;
    this.#appends.set(key, count);
    if (count < this.appendsPerKey) return;
    const slot = this.active.indexOf(key);
    if (slot >= 0) this.active[slot] = this.#nextKey++;
  }
}

interface Connection {
  conn: DbConnection;
  process: number;
  closed: Promise<string>;
  /** The latest txn_result row of this process. */
  result?: { txn: bigint; reads: { key: number; values: number[] }[] };
}

type Settled<T> = { ok: true; value: T } | { ok: false; reason: string; error?: unknown };

function withTimeout<T>(promise: Promise<T>, ms: number, what: string, closed?: Promise<string>) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const racers: Promise<Settled<T>>[] = [
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error) => ({ ok: false as const, reason: errorText(error), error }),
    ),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, reason: `${what} timed out` }), ms);
    }),
  ];
  if (closed) racers.push(closed.then((reason) => ({ ok: false as const, reason })));
  return Promise.race(racers).finally(() => clearTimeout(timer));
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error && typeof error === "object" && "message" in error) return String(error.message);
  return String(error);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A running workload; `stop()` ends it and returns the history. */
export class ListAppendWorkload {
  readonly recorder = new Recorder();
  readonly stats: WorkloadStats = {
    calls: 0,
    ok: 0,
    fail: 0,
    info: 0,
    cacheReads: 0,
    connections: 0,
    connectFailures: 0,
    missingResults: 0,
    appendsOk: 0,
    unknownReasons: new Map(),
  };
  readonly #options: Required<WorkloadOptions>;
  readonly #keys: KeyPool;
  readonly #clients: Promise<void>[] = [];
  readonly #open = new Set<DbConnection>();
  #stopped = false;
  #nextProcess = 1;
  #nextValue = 1;
  #nextTxn = 1n;
  #pad: string;

  constructor(options: WorkloadOptions) {
    this.#options = {
      clients: 4,
      activeKeys: 6,
      appendsPerKey: 24,
      txnLengthMax: 4,
      cacheReadShare: 0.2,
      abortShare: 0.05,
      padBytes: 0,
      callTimeoutMs: 6000,
      // Options given as undefined keep their defaults.
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    } as Required<WorkloadOptions>;
    this.#keys = new KeyPool(this.#options.activeKeys, this.#options.appendsPerKey);
    this.#pad = "x".repeat(this.#options.padBytes);
  }

  /** Changes the padding sent with every later call. */
  setPad(bytes: number): void {
    this.#pad = "x".repeat(bytes);
  }

  get history(): readonly HistoryEvent[] {
    return this.recorder.events;
  }

  /** Starts the clients. */
  start(): this {
    for (let client = 0; client < this.#options.clients; client++) {
      const random = seededRandom(this.#options.seed * 1009 + client + 1);
      this.#clients.push(this.#runClient(random));
    }
    return this;
  }

  /** Stops the clients (open calls end as unknown) and waits for them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#clients);
  }

  /**
   * After the faults are over: reads every key ever used through a fresh connection, both as
   * calls and as a subscription's initial state, retrying while the server settles.
   */
  async finalRead(deadlineMs = 30_000): Promise<void> {
    const random = seededRandom(this.#options.seed);
    const keys = Array.from({ length: this.#keys.count }, (_, key) => key);
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      const connection = await this.#connect(keys);
      if (!connection) {
        await sleep(100);
        continue;
      }
      try {
        let complete = true;
        for (let at = 0; at < keys.length && complete; at += 64) {
          const txn = keys.slice(at, at + 64).map((key): MicroOp => ({
            f: "read",
            key,
            value: null,
          }));
          complete = await this.#call(connection, txn, false, random);
        }
        if (complete) return;
      } finally {
        this.#drop(connection);
      }
    }
    throw new Error(`The final read did not complete within ${deadlineMs} ms`);
  }

  async #runClient(random: Random): Promise<void> {
    while (!this.#stopped) {
      const connection = await this.#connect(this.#readKeys(random));
      if (!connection) {
        await sleep(50 + random.next() * 100);
        continue;
      }
      try {
        while (!this.#stopped) {
          if (random.next() < this.#options.cacheReadShare) {
            this.#cacheRead(connection, this.#readKeys(random));
            await sleep(random.next() * 5);
            continue;
          }
          const abort = random.next() < this.#options.abortShare;
          if (!await this.#call(connection, this.#makeTxn(random), abort, random)) break;
        }
      } finally {
        this.#drop(connection);
      }
    }
  }

  #readKeys(random: Random): number[] {
    const count = 1 + Math.floor(random.next() * Math.min(3, this.#keys.active.length));
    return [...new Set(Array.from({ length: count }, () => this.#keys.pick(random)))];
  }

  #makeTxn(random: Random): MicroOp[] {
    const length = 1 + Math.floor(random.next() * this.#options.txnLengthMax);
    const txn: MicroOp[] = [];
    for (let i = 0; i < length; i++) {
      const key = this.#keys.pick(random);
      if (random.next() < 0.5) {
        txn.push({ f: "append", key, value: this.#nextValue++ });
        this.#keys.appended(key);
      } else {
        txn.push({ f: "read", key, value: null });
      }
    }
    return txn;
  }

  /**
   * Connects and subscribes as a new process. The subscription's initial state is recorded as
   * a read of `initialKeys` (bound by real time). Resolves undefined when that fails.
   */
  async #connect(initialKeys: number[]): Promise<Connection | undefined> {
    const process = this.#nextProcess++;
    let closedResolve!: (reason: string) => void;
    const closed = new Promise<string>((resolve) => closedResolve = resolve);
    const opened = new Promise<DbConnection>((resolve, reject) => {
      const conn = DbConnection.builder()
        .withUri(this.#options.url().replace(/^http/, "ws"))
        .withDatabaseName(this.#options.database)
        .onConnect((conn) => resolve(conn))
        .onConnectError((_ctx, error) => reject(error ?? new Error("connect error")))
        .onDisconnect((_ctx, error) =>
          closedResolve(error ? `disconnected: ${errorText(error)}` : "disconnected")
        )
        .build();
      this.#open.add(conn);
    });
    const connected = await withTimeout(opened, 5000, "connect", closed);
    if (!connected.ok) {
      this.stats.connectFailures++;
      opened.then((conn) => conn.disconnect(), () => {});
      return undefined;
    }
    const connection: Connection = { conn: connected.value, process, closed };
    this.stats.connections++;
    const remember = (row: { txn: bigint; reads: { key: number; values: number[] }[] }) => {
      connection.result = { txn: row.txn, reads: row.reads };
    };
    connection.conn.db.txn_result.onInsert((_ctx, row) => remember(row));
    connection.conn.db.txn_result.onUpdate((_ctx, _old, row) => remember(row));

    const txn: MicroOp[] = initialKeys.map((key) => ({ f: "read", key, value: null }));
    this.recorder.invoke(process, txn);
    const applied = new Promise<void>((resolve, reject) => {
      connection.conn.subscriptionBuilder()
        .onApplied(() => resolve())
        .onError((ctx) => reject((ctx as { event?: unknown }).event ?? new Error("subscribe")))
        .subscribe([
          "SELECT * FROM lists",
          `SELECT * FROM txn_result WHERE process = ${process}`,
        ]);
    });
    const subscribed = await withTimeout(applied, this.#options.callTimeoutMs, "subscribe", closed);
    if (!subscribed.ok) {
      this.recorder.complete("info", process, txn, { error: subscribed.reason });
      this.#countUnknown(subscribed.reason);
      this.#drop(connection);
      return undefined;
    }
    this.recorder.complete("ok", process, this.#readCache(connection, initialKeys));
    return connection;
  }

  #readCache(connection: Connection, keys: number[]): MicroOp[] {
    return keys.map((key) => ({
      f: "read",
      key,
      value: [...(connection.conn.db.lists.key.find(key)?.values ?? [])],
    }));
  }

  #cacheRead(connection: Connection, keys: number[]): void {
    const txn = this.#readCache(connection, keys);
    this.recorder.invoke(connection.process, txn, true);
    this.recorder.complete("ok", connection.process, txn, { stale: true });
    this.stats.cacheReads++;
  }

  /** One `txn` call; false when its outcome is unknown (the connection is then abandoned). */
  async #call(
    connection: Connection,
    txn: MicroOp[],
    abort: boolean,
    random: Random,
  ): Promise<boolean> {
    const txnId = this.#nextTxn++;
    const { process } = connection;
    this.stats.calls++;
    this.recorder.invoke(process, txn);
    const ops = txn.map((micro) =>
      micro.f === "append"
        ? { f: 0, key: micro.key, value: micro.value }
        : { f: 1, key: micro.key, value: 0 }
    );
    const called = connection.conn.reducers.txn({
      process,
      txn: txnId,
      ops,
      abort,
      pad: this.#pad,
    });
    const settled = await withTimeout(
      called,
      this.#options.callTimeoutMs,
      "call",
      connection.closed,
    );
    if (settled.ok) {
      const result = connection.result;
      if (!result || result.txn !== txnId) {
        this.stats.missingResults++;
        this.recorder.complete("info", process, txn, { error: "own txn_result row missing" });
        this.stats.info++;
        return false;
      }
      const reads = [...result.reads];
      const completed = txn.map((micro): MicroOp => {
        if (micro.f === "append") return micro;
        const found = reads.shift();
        if (!found || found.key !== micro.key) {
          throw new Error(`txn_result of txn ${txnId} does not match its reads`);
        }
        return { f: "read", key: micro.key, value: [...found.values] };
      });
      this.recorder.complete("ok", process, completed);
      this.stats.ok++;
      this.stats.appendsOk += txn.filter((micro) => micro.f === "append").length;
      if (random.next() < 0.1) await sleep(random.next() * 10);
      return true;
    }
    if (settled.reason.includes(ABORT_MESSAGE)) {
      this.recorder.complete("fail", process, txn, { error: settled.reason });
      this.stats.fail++;
      return true;
    }
    this.recorder.complete("info", process, txn, { error: settled.reason });
    this.stats.info++;
    this.#countUnknown(settled.reason);
    return false;
  }

  #countUnknown(reason: string): void {
    const short = reason.replace(/\d+/g, "N").slice(0, 120);
    this.stats.unknownReasons.set(short, (this.stats.unknownReasons.get(short) ?? 0) + 1);
  }

  #drop(connection: Connection): void {
    this.#open.delete(connection.conn);
    try {
      connection.conn.disconnect();
    } catch { /* already closed */ }
  }

  /** Closes every connection still open (after stop, or when a test fails). */
  closeAll(): void {
    for (const conn of this.#open) {
      try {
        conn.disconnect();
      } catch { /* already closed */ }
    }
    this.#open.clear();
  }
}
