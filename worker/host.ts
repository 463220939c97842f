/**
 * Main-thread handle of one database worker. Requests are queued and sent in
 * batches (at most four batches in flight), so a burst of calls costs one
 * postMessage each way instead of one per call (deno-feasibility.md §2).
 */
import { log } from "../lib/log.ts";
import {
  checkBatchItem,
  checkHttpHandlerResult,
  checkLogLines,
  checkStalls,
} from "./reply_check.ts";
import {
  DATABASE_MEMORY_MB_DEFAULT,
  type DatabaseLimits,
  MODULE_BYTES_MAX,
  PROCEDURE_THREADS_DEFAULT,
} from "../lib/limits.ts";
import { TICK_NAME_PATTERN } from "./sandbox_globals.ts";
import { procedureThreadSource } from "./procedure_bundle.ts";
import { type IsolatedWorker, spawnIsolatedWorker, STORAGE_CHANNEL } from "./isolation.ts";
import { type CallFields, CallPacker, expandItems } from "./batch_codec.ts";
import type {
  BatchItem,
  BatchMessage,
  BatchReply,
  CallHttpHandlerRequest,
  CallProcedureRequest,
  CallReducerRequest,
  CallResult,
  ConnectRequest,
  DisconnectRequest,
  ExportStateResult,
  HibernateMessage,
  HibernatingReply,
  HttpHandlerResult,
  InitMessage,
  LogLine,
  OneOffQueryRequest,
  OneOffQueryResult,
  OutboundHttpRequest,
  OutboundHttpResponse,
  PreparedModule,
  ProcedureDoneReply,
  ProcedureResult,
  ProcedureThreadsMessage,
  ProcedureThreadsSetReply,
  ReadyReply,
  ReplicateMessage,
  ResumedSchedule,
  ScheduledReply,
  SqlRequest,
  SqlResult,
  SubscribeRequest,
  SubscribeResult,
  UnsubscribeRequest,
  UnsubscribeResult,
  WorkerRequest,
  WorkerResult,
  WorkerToMain,
} from "./messages.ts";

/**
 * Batches sent to a database process and not yet answered. A pipe round trip is ~100-200 µs
 * (postMessage to a thread was ~33 µs), so two in flight left the process idle between batches:
 * keynote 64 x 40 measured ~113k TPS at 2, ~126k at 4 (bench/RESULTS.md, session 3).
 */
const BATCHES_IN_FLIGHT_MAX = 4;

/** A prepared bundle is the published one plus a tick call per function and loop body. */
const PREPARED_SOURCE_CHARS_MAX = 4 * MODULE_BYTES_MAX;

/** Row schedules a hibernating database may hand over (more keep it awake). */
const HIBERNATE_SCHEDULES_MAX = 1_000_000;

export class ModuleInitError extends Error {
  override name = "ModuleInitError";
  constructor(message: string, readonly logs: LogLine[]) {
    super(message);
  }
}

/** The worker died or was stopped; calls in flight fail with this. */
export class DatabaseUnavailableError extends Error {
  override name = "DatabaseUnavailableError";
}

/**
 * The worker stopped because transactions handed to it by `replicate` decode but do not replay
 * (`reason`: why): the same message would fail the same way every time.
 */
export class ReplayFailedError extends DatabaseUnavailableError {
  override name = "ReplayFailedError";
  constructor(readonly reason: string) {
    super(`database worker failed: replicated transactions could not be applied: ${reason}`);
  }
}

export interface DatabaseHostOptions {
  bundle: string;
  databaseIdentity: bigint;
  ownerIdentity: bigint;
  runInit: boolean;
  reducerBudgetMs: number;
  /** Read replica: see InitMessage.readOnly. */
  readOnly?: string;
  /** Per-database rates and sizes (lib/limits.ts); the defaults when absent. */
  limits?: DatabaseLimits;
  /** Memory budget of the database process in MiB (lib/limits.ts DATABASE_MEMORY_MB_DEFAULT). */
  memoryMb?: number;
  snapshot?: Uint8Array;
  snapshotTxOffset?: number;
  durabilityPort?: MessagePort;
  /** See InitMessage.genesisDescribe and InitMessage.migrate. */
  genesisDescribe?: Uint8Array;
  migrate?: boolean;
  /** Called with module log lines as they arrive. */
  onLogs?: (lines: LogLine[]) => void;
  /**
   * Called synchronously with every batch's results and transaction updates, in
   * the order the worker produced them, before any call's promise settles.
   * `originOf(id)` returns the `origin` a request was sent with.
   */
  onEvents?: (items: BatchItem[], originOf: (id: number) => unknown) => void;
  /** Called once if the worker dies unexpectedly. */
  onCrash?: (error: Error) => void;
  /**
   * Called with the database process's event-loop stalls as it reports them: (index into
   * STALL_KINDS, ms) pairs, checked (worker/stall_recorder.ts).
   */
  onStalls?: (stalls: Float64Array) => void;
  /**
   * Called with each batch's round trip in ms: sent to the database process → its reply
   * arrived on the main thread (the pipes, the process's queue and its work on the batch).
   */
  onBatchTimed?: (ms: number) => void;
  /**
   * Performs a procedure's outbound HTTP request (server/outbound_http.ts: allow-list, address
   * checks, limits). Absent: every request fails with SpacetimeDB's "disabled" message.
   */
  /** `cancel` is aborted when this process is gone: its requests are stopped. */
  outboundHttp?: (
    request: OutboundHttpRequest,
    cancel: AbortSignal,
  ) => Promise<OutboundHttpResponse>;
  /** Row schedules to re-arm at their intended times (from prepareHibernation). */
  resumeSchedules?: ResumedSchedule[];
  /** The bundle as an earlier process prepared it (see `onPrepared`): skips two parses. */
  prepared?: PreparedModule;
  /**
   * Called with the prepared bundle when `prepared` is absent (keep it for the next start).
   * It is the process's first message after hello, sent before any tenant code ran there.
   */
  onPrepared?: (prepared: PreparedModule) => void;
}

type Pending<T = WorkerResult> = { resolve: (result: T) => void; reject: (error: Error) => void };

/**
 * Origins by request id. Ids are handed out in increasing order and the worker answers every
 * request in order, so the live ids form a window [first, end) kept in a ring of slots: no hash
 * map insert and delete per call. A slot is empty once answered (or when it never had an
 * origin); the window's start moves past empty slots.
 */
const ORIGIN_SLOTS_INITIAL = 1024;

export class OriginWindow {
  #slots: unknown[] = new Array(ORIGIN_SLOTS_INITIAL).fill(undefined);
  #mask = ORIGIN_SLOTS_INITIAL - 1;
  #first = 0;
  #end = 0;

  /** Ids the window spans, answered ones in between included. */
  get span(): number {
    return this.#end - this.#first;
  }

  /** The oldest id still holding an origin; Infinity when there is none. */
  get oldestId(): number {
    return this.#first < this.#end ? this.#first : Infinity;
  }

  /** Remembers `origin` for `id`; ids must come in increasing order. */
  set(id: number, origin: unknown): void {
    if (this.#end === this.#first) this.#first = this.#end = id;
    if (id < this.#end) throw new RangeError(`Origin ids must increase: ${id} after ${this.#end}`);
    if (id - this.#first >= this.#slots.length) this.#grow(id - this.#first + 1);
    this.#slots[id & this.#mask] = origin;
    this.#end = id + 1;
  }

  get(id: number): unknown {
    return id >= this.#first && id < this.#end ? this.#slots[id & this.#mask] : undefined;
  }

  delete(id: number): void {
    if (id < this.#first || id >= this.#end) return;
    const slots = this.#slots;
    const mask = this.#mask;
    slots[id & mask] = undefined;
    while (this.#first < this.#end && slots[this.#first & mask] === undefined) this.#first++;
  }

  clear(): void {
    this.#slots = new Array(ORIGIN_SLOTS_INITIAL).fill(undefined);
    this.#mask = ORIGIN_SLOTS_INITIAL - 1;
    this.#first = this.#end = 0;
  }

  #grow(needed: number): void {
    let size = this.#slots.length * 2;
    while (size < needed) size *= 2;
    const slots: unknown[] = new Array(size).fill(undefined);
    for (let id = this.#first; id < this.#end; id++) slots[id & (size - 1)] = this.get(id);
    this.#slots = slots;
    this.#mask = size - 1;
  }
}

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

export class DatabaseHost {
  readonly describe: Uint8Array;
  readonly #worker: IsolatedWorker;
  readonly #options: DatabaseHostOptions;
  /** Queued requests other than the reducer calls in #calls. */
  #queue: WorkerRequest[] = [];
  readonly #calls = new CallPacker();
  #pending = new Map<number, Pending>();
  /** Procedure and HTTP handler calls in the procedure thread, by request id. */
  readonly #procedures = new Map<
    number,
    {
      resolve: (result: ProcedureResult | HttpHandlerResult) => void;
      reject: (error: Error) => void;
      origin: unknown;
    }
  >();
  readonly #origins = new OriginWindow();
  #nextId = 1;
  readonly #originOf = (id: number): unknown => this.#origins.get(id);
  #inFlight = 0;
  /** Per batch in flight, oldest first: the newest request id it carries. */
  readonly #batchLastIds: number[] = [];
  /** `performance.now()` when each batch in flight was sent, oldest first (with `onBatchTimed`). */
  readonly #batchSentMs: number[] = [];
  #flushScheduled = false;
  #dead: Error | undefined;
  /** Aborted when the process is gone (stops the outbound HTTP requests it asked for). */
  readonly #gone = new AbortController();
  #txOffset: number;
  #hibernateWaiter: Pending<HibernatingReply> | undefined;
  #procedureExtraThreads = 0;

  private constructor(
    worker: IsolatedWorker,
    ready: ReadyReply,
    options: DatabaseHostOptions,
    failures: { onError?: (message: string) => void },
  ) {
    this.#worker = worker;
    this.describe = ready.describe;
    this.#txOffset = ready.txOffset;
    this.#options = options;
    worker.port.onmessage = (event) => this.#onMessage(event.data as WorkerToMain);
    failures.onError = (message) =>
      this.#die(new DatabaseUnavailableError(`database worker crashed: ${message}`));
    worker.exited.then((code) =>
      this.#die(new DatabaseUnavailableError(`database worker exited with code ${code}`))
    );
  }

  /** Spawns the worker, loads the module, and resolves once it is ready to serve. */
  static start(options: DatabaseHostOptions): Promise<DatabaseHost> {
    const failures: { onError?: (message: string) => void } = {};
    let startupError: ((message: string) => void) | undefined;
    const worker = spawnIsolatedWorker(new URL("./worker_main.ts", import.meta.url), {
      memoryMb: options.memoryMb ?? DATABASE_MEMORY_MB_DEFAULT,
      onError: (error) => (failures.onError ?? startupError)?.(error.message),
      readOwnCodeAtStart: true,
    });
    if (options.durabilityPort) worker.bridge(STORAGE_CHANNEL, options.durabilityPort);
    return new Promise((resolve, reject) => {
      let settled = false;
      startupError = (message) => {
        if (settled) return;
        settled = true;
        worker.terminate();
        reject(new ModuleInitError(`database worker crashed while loading: ${message}`, []));
      };
      worker.exited.then((code) => startupError?.(`it exited with code ${code}`));
      let first = true;
      worker.port.onmessage = (event) => {
        const message = event.data as WorkerToMain;
        if (settled) return;
        const wasFirst = first;
        first = false;
        if (message?.type === "prepared") {
          if (!wasFirst || options.prepared || !options.onPrepared) {
            startupError?.("it sent a prepared bundle out of turn");
            return;
          }
          const { source, tickName } = message;
          if (
            typeof source !== "string" || source.length > PREPARED_SOURCE_CHARS_MAX ||
            typeof tickName !== "string" || !TICK_NAME_PATTERN.test(tickName)
          ) {
            startupError?.("it sent a malformed prepared bundle");
            return;
          }
          options.onPrepared({ source, tickName });
        } else if (message.type === "ready") {
          settled = true;
          if (message.logs.length) options.onLogs?.(message.logs);
          resolve(new DatabaseHost(worker, message, options, failures));
        } else if (message.type === "init-failed") {
          settled = true;
          if (message.logs.length) options.onLogs?.(message.logs);
          worker.terminate();
          reject(new ModuleInitError(message.error, message.logs));
        }
      };
      const init: InitMessage = {
        type: "init",
        // A prepared bundle is all the process needs: the source is not sent twice.
        bundle: options.prepared ? "" : options.bundle,
        databaseIdentity: options.databaseIdentity,
        ownerIdentity: options.ownerIdentity,
        runInit: options.runInit,
        timestampMicros: BigInt(Date.now()) * 1000n,
        reducerBudgetMs: options.reducerBudgetMs,
        memoryBudgetMb: options.memoryMb ?? DATABASE_MEMORY_MB_DEFAULT,
        limits: options.limits,
        snapshot: options.snapshot,
        snapshotTxOffset: options.snapshotTxOffset,
        durability: options.durabilityPort !== undefined,
        genesisDescribe: options.genesisDescribe,
        migrate: options.migrate,
        prepared: options.prepared,
        resumeSchedules: options.resumeSchedules,
        readOnly: options.readOnly,
        wantPrepared: options.prepared === undefined && options.onPrepared !== undefined,
      };
      worker.port.postMessage(init);
    });
  }

  get txOffset(): number {
    return this.#txOffset;
  }

  get alive(): boolean {
    return this.#dead === undefined;
  }

  /** Why the worker stopped (undefined while it runs). */
  get failure(): Error | undefined {
    return this.#dead;
  }

  /** Requests waiting on the main thread for the next batch (metrics). */
  get queuedRequests(): number {
    return this.#queue.length + this.#calls.count;
  }

  /** Batches sent to the database process and not yet answered (metrics). */
  get batchesInFlight(): number {
    return this.#inFlight;
  }

  /** Process id of the database process (metrics read its memory from /proc). */
  get pid(): number {
    return this.#worker.pid;
  }

  /** Procedure threads beyond the first the database process last said it runs (`procedure-threads`). */
  get procedureExtraThreads(): number {
    return this.#procedureExtraThreads;
  }

  callReducer(
    request: Omit<CallReducerRequest, "id" | "kind">,
    origin?: unknown,
  ): Promise<CallResult> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    if (origin !== undefined) this.#origins.set(id, origin);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject } as Pending);
      this.#enqueueCall(request, id);
    });
  }

  /**
   * A reducer call whose outcome is only needed through `onEvents` (the WebSocket hub): no
   * promise is made. `request` is read before this returns and never kept, so a caller may
   * reuse one object for every call. False when the database is gone.
   */
  submitReducerCall(request: CallFields, origin: unknown): boolean {
    if (this.#dead) return false;
    const id = this.#nextId++;
    this.#origins.set(id, origin);
    this.#enqueueCall(request, id);
    return true;
  }

  #enqueueCall(request: CallFields, id: number): void {
    if (!this.#calls.add(request, id, this.#queue.length)) {
      this.#queue.push({ kind: "call", ...request, id });
    }
    this.#scheduleFlush();
  }

  /**
   * Procedures run in the database's procedure thread, outside the batch order (a procedure
   * waiting on HTTP holds up nothing): their results come back in `procedure-done` messages.
   */
  callProcedure(
    request: Omit<CallProcedureRequest, "id" | "kind">,
    origin?: unknown,
  ): Promise<ProcedureResult> {
    return this.#startProcedure({ kind: "procedure", ...request }, origin) as Promise<
      ProcedureResult
    >;
  }

  /** Calls HTTP handler `handlerId` (module-abi.md §5.6) in the procedure thread. */
  callHttpHandler(
    request: Omit<CallHttpHandlerRequest, "id" | "kind">,
  ): Promise<HttpHandlerResult> {
    return this.#startProcedure({ kind: "http-handler", ...request }) as Promise<
      HttpHandlerResult
    >;
  }

  #startProcedure(
    request: WithoutId<CallProcedureRequest | CallHttpHandlerRequest>,
    origin?: unknown,
  ): Promise<ProcedureResult | HttpHandlerResult> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    const full = { ...request, id } as CallProcedureRequest | CallHttpHandlerRequest;
    // Requests queued before it go first (when the in-flight bound allows), so that a client's
    // reducer call followed by a procedure call reaches the database in that order.
    this.#flush();
    return new Promise((resolve, reject) => {
      this.#procedures.set(id, { resolve, reject, origin });
      this.#worker.port.postMessage({ type: "procedure-start", request: full });
    });
  }

  #handleProcedureDone(message: ProcedureDoneReply): void {
    const logProblem = checkLogLines(message.logs);
    if (logProblem) throw new TypeError(logProblem);
    const result = message.result;
    if (typeof result !== "object" || result === null) throw new TypeError("result is missing");
    const pending = this.#procedures.get(result.id);
    if (!pending) throw new TypeError(`procedure result for unknown request ${result.id}`);
    if (result.kind === "procedure") {
      const problem = checkBatchItem(result);
      if (problem) throw new TypeError(problem);
    } else if (result.kind === "http-handler") {
      const problem = checkHttpHandlerResult(result);
      if (problem) throw new TypeError(problem);
    } else {
      throw new TypeError("procedure-done carries no procedure result");
    }
    this.#procedures.delete(result.id);
    if (message.logs.length) this.#options.onLogs?.(message.logs);
    if (result.txOffset > this.#txOffset) this.#txOffset = result.txOffset;
    // Every procedure result goes to onEvents (metrics; the hub answers those with a WS origin).
    if (result.kind === "procedure") {
      try {
        this.#options.onEvents?.([result], () => pending.origin);
      } catch (error) {
        log.error("handling a procedure result failed", {
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
      }
    }
    pending.resolve(result);
  }

  /** Sets the memory cap for the pool's threads, then answers (with their code if asked). */
  #handleProcedureThreads(message: ProcedureThreadsMessage): void {
    const allowed = this.#options.limits?.procedureThreads ?? PROCEDURE_THREADS_DEFAULT;
    const extra = message.extraThreads;
    if (!Number.isInteger(extra) || extra < 0 || extra >= allowed) {
      throw new TypeError(`${extra} extra procedure threads (the maximum is ${allowed} in all)`);
    }
    this.#worker.setExtraThreads(extra)
      .then(() => {
        this.#procedureExtraThreads = extra;
        return message.wantCode === true ? procedureThreadSource() : undefined;
      })
      .then(
        (source): ProcedureThreadsSetReply => ({ type: "procedure-threads-set", source }),
        (error): ProcedureThreadsSetReply => ({
          type: "procedure-threads-set",
          error: error instanceof Error ? error.message : String(error),
        }),
      ).then((reply) => {
        if (!this.#dead) this.#worker.port.postMessage(reply);
      });
  }

  #handleOutboundHttp(message: OutboundHttpRequest): void {
    const requestId = message.requestId;
    const perform = this.#options.outboundHttp;
    const answer = perform ? perform(message, this.#gone.signal) : Promise.resolve({
      type: "http-response" as const,
      requestId,
      error: "module outbound HTTP requests are disabled",
    });
    answer.catch((error): OutboundHttpResponse => ({
      type: "http-response",
      requestId,
      error: error instanceof Error ? error.message : String(error),
    })).then((response) => {
      if (!this.#dead) this.#worker.port.postMessage({ ...response, requestId });
    });
  }

  connect(request: Omit<ConnectRequest, "id" | "kind">, origin?: unknown): Promise<CallResult> {
    return this.#send({ kind: "connect", ...request }, origin) as Promise<CallResult>;
  }

  disconnect(
    request: Omit<DisconnectRequest, "id" | "kind">,
    origin?: unknown,
  ): Promise<CallResult> {
    return this.#send({ kind: "disconnect", ...request }, origin) as Promise<CallResult>;
  }

  subscribe(
    request: Omit<SubscribeRequest, "id" | "kind">,
    origin?: unknown,
  ): Promise<SubscribeResult> {
    return this.#send({ kind: "subscribe", ...request }, origin) as Promise<SubscribeResult>;
  }

  unsubscribe(
    request: Omit<UnsubscribeRequest, "id" | "kind">,
    origin?: unknown,
  ): Promise<UnsubscribeResult> {
    return this.#send({ kind: "unsubscribe", ...request }, origin) as Promise<UnsubscribeResult>;
  }

  query(
    request: Omit<OneOffQueryRequest, "id" | "kind">,
    origin?: unknown,
  ): Promise<OneOffQueryResult> {
    return this.#send({ kind: "query", ...request }, origin) as Promise<OneOffQueryResult>;
  }

  /** One /sql statement (read or write), run with the caller's permissions. */
  sql(request: Omit<SqlRequest, "id" | "kind">, origin?: unknown): Promise<SqlResult> {
    return this.#send({ kind: "sql", ...request }, origin) as Promise<SqlResult>;
  }

  exportState(): Promise<ExportStateResult> {
    return this.#send({ kind: "export" }) as Promise<ExportStateResult>;
  }

  /**
   * Read replica: hands the process `count` transactions of the primary's log (length-prefixed
   * records from log offset `firstTxOffset`); they become durable like local commits
   * (`Database.whenDurable`). A transaction out of order stops the database.
   */
  replicate(firstTxOffset: number, count: number, records: Uint8Array): void {
    if (this.#dead) throw this.#dead;
    const message: ReplicateMessage = { type: "replicate", firstTxOffset, count, records };
    this.#worker.port.postMessage(message);
  }

  /** Stops the worker; calls in flight fail. */
  stop(): void {
    this.#die(new DatabaseUnavailableError("database was stopped"));
  }

  /** Resolves once the process is gone (after stop(), a crash or an exit). */
  get exited(): Promise<number> {
    return this.#worker.exited;
  }

  /**
   * Asks the idle process for what hibernation must keep (its pending schedules). Refused
   * while requests are queued or in flight: the caller checks the database is idle first.
   */
  prepareHibernation(): Promise<HibernatingReply> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (this.#inFlight > 0 || this.queuedRequests > 0 || this.#hibernateWaiter) {
      return Promise.reject(new DatabaseUnavailableError("the database is busy"));
    }
    return new Promise((resolve, reject) => {
      this.#hibernateWaiter = { resolve, reject };
      const message: HibernateMessage = { type: "hibernate" };
      this.#worker.port.postMessage(message);
    });
  }

  #onHibernating(message: HibernatingReply): void {
    const waiter = this.#hibernateWaiter;
    if (!waiter) throw new TypeError("unexpected hibernating reply");
    const { nextScheduleMicros, schedules, txOffset } = message;
    if (
      typeof nextScheduleMicros !== "number" || !Array.isArray(schedules) ||
      schedules.length > HIBERNATE_SCHEDULES_MAX || typeof txOffset !== "number"
    ) {
      throw new TypeError("malformed hibernating reply");
    }
    const checked: ResumedSchedule[] = [];
    for (const entry of schedules as unknown[]) {
      const { tableId, scheduledId, intendedMicros } = entry as ResumedSchedule;
      if (
        !Number.isInteger(tableId) || typeof scheduledId !== "bigint" ||
        typeof intendedMicros !== "bigint"
      ) throw new TypeError("malformed schedule in hibernating reply");
      checked.push({ tableId, scheduledId, intendedMicros });
    }
    this.#hibernateWaiter = undefined;
    waiter.resolve({ type: "hibernating", nextScheduleMicros, schedules: checked, txOffset });
  }

  #send(request: WithoutId<WorkerRequest>, origin?: unknown): Promise<WorkerResult> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    if (origin !== undefined) this.#origins.set(id, origin);
    const full = { ...request, id } as WorkerRequest;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#queue.push(full);
      this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#inFlight >= BATCHES_IN_FLIGHT_MAX) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#dead || this.#inFlight >= BATCHES_IN_FLIGHT_MAX) return;
    if (this.#queue.length === 0 && this.#calls.count === 0) return;
    const requests = this.#queue;
    this.#queue = [];
    const calls = this.#calls.finish();
    this.#inFlight++;
    this.#batchLastIds.push(this.#nextId - 1);
    const message: BatchMessage = { type: "batch", requests, calls };
    if (this.#options.onBatchTimed) this.#batchSentMs.push(performance.now());
    this.#worker.port.postMessage(message);
  }

  /**
   * Everything a worker sends is untrusted (it also runs tenant code, which can
   * patch the built-ins our worker code uses): a malformed reply stops that
   * database, never the server.
   */
  #onMessage(message: WorkerToMain): void {
    try {
      if (typeof message !== "object" || message === null) {
        throw new TypeError("the reply is not an object");
      }
      if (message.type === "scheduled") {
        this.#handleScheduled(message);
        return;
      }
      if (message.type === "procedure-done") {
        this.#handleProcedureDone(message);
        return;
      }
      if (message.type === "http-request") {
        this.#handleOutboundHttp(message);
        return;
      }
      if (message.type === "procedure-threads") {
        this.#handleProcedureThreads(message);
        return;
      }
      if (message.type === "hibernating") {
        this.#onHibernating(message);
        return;
      }
      if (message.type !== "batch") {
        if (message.type === "init-failed") {
          this.#die(
            message.replayFailed === true
              ? new ReplayFailedError(String(message.error))
              : new DatabaseUnavailableError(`database worker failed: ${String(message.error)}`),
          );
          return;
        }
        throw new TypeError(`unexpected reply type ${String(message.type)}`);
      }
      this.#inFlight--;
      const logProblem = checkLogLines(message.logs);
      if (logProblem) throw new TypeError(logProblem);
      if (!Array.isArray(message.items)) throw new TypeError("items is not an array");
      // The worker's own items are checked here; packed results are checked while expanded.
      for (const item of message.items) {
        const problem = checkBatchItem(item);
        if (problem) throw new TypeError(problem);
      }
      const sentMs = this.#batchSentMs.shift();
      if (sentMs !== undefined) this.#options.onBatchTimed?.(performance.now() - sentMs);
      const items = expandItems(message);
      this.#handleBatch(message, items);
      // Every request of the batch has its result by now; a hole would pin the origin window.
      const lastId = this.#batchLastIds.shift() ?? 0;
      if (this.#origins.oldestId <= lastId) {
        throw new TypeError(`request ${this.#origins.oldestId} was left unanswered`);
      }
      this.#flush();
    } catch (error) {
      this.#die(
        new DatabaseUnavailableError(
          `database worker sent a malformed reply: ${
            error instanceof Error ? error.message : error
          }`,
        ),
      );
    }
  }

  /**
   * Transactions the worker ran on its own (schedules): updates only, answering no request,
   * so the batch accounting (in flight, origins) is untouched. Runs inside #onMessage's try.
   */
  #handleScheduled(message: ScheduledReply): void {
    const logProblem = checkLogLines(message.logs);
    if (logProblem) throw new TypeError(logProblem);
    if (message.stalls !== undefined) {
      const problem = checkStalls(message.stalls);
      if (problem) throw new TypeError(problem);
      this.#options.onStalls?.(message.stalls);
    }
    if (!Array.isArray(message.items)) throw new TypeError("items is not an array");
    for (const item of message.items) {
      const problem = checkBatchItem(item);
      if (problem) throw new TypeError(problem);
      if (item.kind !== "update" || item.callId !== undefined) {
        throw new TypeError("a scheduled reply may only carry updates of no request");
      }
    }
    if (message.logs.length) this.#options.onLogs?.(message.logs);
    for (const item of message.items) this.#txOffset = item.txOffset;
    if (message.items.length === 0) return;
    try {
      this.#options.onEvents?.(message.items, this.#originOf);
    } catch (error) {
      log.error("handling scheduled transactions failed", {
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    }
  }

  #handleBatch(message: BatchReply, items: BatchItem[]): void {
    if (message.logs.length) this.#options.onLogs?.(message.logs);
    for (const item of items) {
      if (item.kind === "update") this.#txOffset = item.txOffset;
    }
    if (message.txOffset !== undefined && message.txOffset > this.#txOffset) {
      this.#txOffset = message.txOffset;
    }
    try {
      this.#options.onEvents?.(items, this.#originOf);
    } catch (error) {
      log.error("handling a database batch failed", {
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    }
    const pendings = this.#pending;
    for (const item of items) {
      if (item.kind === "update") continue;
      this.#origins.delete(item.id);
      if (pendings.size === 0) continue;
      const pending = pendings.get(item.id);
      if (!pending) continue;
      pendings.delete(item.id);
      pending.resolve(item);
    }
  }

  #die(error: Error): void {
    if (this.#dead) return;
    this.#dead = error;
    this.#worker.terminate();
    this.#gone.abort(error);
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    for (const pending of this.#procedures.values()) pending.reject(error);
    this.#procedures.clear();
    this.#hibernateWaiter?.reject(error);
    this.#hibernateWaiter = undefined;
    this.#origins.clear();
    this.#queue = [];
    if (!(error.message === "database was stopped")) {
      log.error("database worker stopped", { error: error.message });
      this.#options.onCrash?.(error);
    }
  }
}
