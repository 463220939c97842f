/**
 * The database thread's side of the procedure threads (worker/procedure_thread.ts): a pool of
 * them, started on demand, hands them procedure and HTTP-handler calls, serves their
 * transactions and relays their outbound HTTP requests to the server.
 *
 * The first thread starts with the process, from our code on disk (read before the process
 * gives up its read access) and is kept; more are started while calls wait and every thread is
 * busy, up to the database's maximum (`--procedure-threads`), from the same code as one script
 * the server sends (`procedure-threads`: the process can no longer read files), and stopped
 * again after `--procedure-idle-s` without a call. Calls beyond the running threads wait
 * in a bounded queue (`--procedure-queue`); past it a call fails at once with a clear error.
 *
 * A procedure's `withTx` asks for the transaction with a `tx-open` message, which waits in this
 * thread's event loop like any batch. When it is its turn, this thread begins the transaction
 * and answers the procedure's syscalls synchronously (Atomics.wait between them) until the
 * commit or the abort, so the transactions of every procedure thread are serialized with
 * reducers exactly as reducer calls are. Everything else a procedure does, waiting on HTTP
 * included, happens in its own thread while this one serves batches.
 */
import { receiveMessageOnPort } from "node:worker_threads";
import { boxBytes, unboxBytes } from "./port_bytes.ts";
import type { DatabaseEngine } from "./engine.ts";
import { describeError } from "./module_loader.ts";
import type { Syscalls } from "./sys_abi.ts";
import type {
  CallHttpHandlerRequest,
  CallProcedureRequest,
  HttpHandlerResult,
  LogLine,
  OutboundHttpRequest,
  OutboundHttpResponse,
  ProcedureResult,
} from "./messages.ts";
import {
  BELL_ASYNC,
  BELL_CALL,
  BELL_SLOTS,
  BELL_TO_DATABASE,
  BELL_TO_THREAD,
  type DatabaseToThread,
  type RemoteReply,
  type SyscallAnswer,
  type SyscallRequest,
  type ThreadInit,
  type ThreadLoad,
  type ThreadToDatabase,
  WRITE_BACK_SYSCALLS,
} from "./procedure_channel.ts";
import {
  PROCEDURE_IDLE_S_DEFAULT,
  PROCEDURE_QUEUE_DEFAULT,
  PROCEDURE_THREADS_DEFAULT,
  PROCEDURE_THREADS_MAX,
} from "../lib/limits.ts";

// Host references, captured before the sandbox removes these globals.
const HostWorker = Worker;
const HostMessageChannel = MessageChannel;
const HostSharedArrayBuffer = SharedArrayBuffer;
const HostBlob = Blob;
const hostCreateObjectURL = URL.createObjectURL;
const hostSetTimeout = setTimeout;
const hostClearTimeout = clearTimeout;
const hostAtomics = {
  wait: Atomics.wait,
  waitAsync: Atomics.waitAsync,
  store: Atomics.store,
  notify: Atomics.notify,
};
const hostNow = performance.now.bind(performance);

/** After a thread could not be started, calls wait for the running ones this long. */
const GROW_RETRY_MS = 10_000;

/** Carries an errno code from the remote syscalls to the answer. */
class ErrnoCarrier extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export interface ProcedurePoolOptions {
  engine: () => DatabaseEngine | undefined;
  /** Sends an outbound HTTP request to the server. */
  send: (message: OutboundHttpRequest) => void;
  /** A call finished (its log lines are in the engine's log). */
  onDone: (result: ProcedureResult | HttpHandlerResult) => void;
  /** A procedure transaction ended: report what it committed (durability, subscribers). */
  afterTransaction: () => void;
  /** A thread failed outside any call: the database must stop. */
  onFatal: (message: string) => void;
  /** Thread `index`'s pair of the process watchdog (worker/isolation.ts). */
  watchdog?: (index: number) => Float64Array;
  /**
   * Tells the server how many threads beyond the first will run (it sets the memory cap for
   * them) and resolves once it has; with `wantCode`, to the thread's code as one script, which
   * threads after the first start from (the server bundles it: worker/procedure_bundle.ts).
   */
  setExtraThreads: (extraThreads: number, wantCode: boolean) => Promise<string | undefined>;
  /** How long an extra thread may take to start (tests; default THREAD_START_TIMEOUT_MS). */
  threadStartTimeoutMs?: number;
}

type Call = { request: CallProcedureRequest | CallHttpHandlerRequest; functionId: number };

/** One procedure thread: a Worker, its ports and doorbell, and its watchdog pair. */
class ProcedureThread {
  readonly index: number;
  readonly worker: Worker;
  readonly asyncPort: MessagePort;
  readonly syncPort: MessagePort;
  readonly callPort: MessagePort;
  readonly bell: Int32Array;
  loaded = false;
  busy = false;
  idleSinceMs = hostNow();
  #stopped = false;
  #waiting = new Map<string, (message: ThreadToDatabase) => void>();

  constructor(
    url: string,
    index: number,
    watchdog: Float64Array | undefined,
    onMessage: (thread: ProcedureThread, message: ThreadToDatabase) => void,
    onError: (message: string) => void,
  ) {
    this.index = index;
    this.bell = new Int32Array(new HostSharedArrayBuffer(BELL_SLOTS * 4));
    const asyncChannel = new HostMessageChannel();
    const syncChannel = new HostMessageChannel();
    const callChannel = new HostMessageChannel();
    this.asyncPort = asyncChannel.port1;
    this.syncPort = syncChannel.port1;
    this.callPort = callChannel.port1;
    // The thread has no permissions at all.
    this.worker = new HostWorker(url, {
      type: "module",
      deno: { permissions: "none" },
    } as WorkerOptions);
    try {
      this.worker.onerror = (event) => {
        event.preventDefault();
        onError(`the procedure thread failed: ${event.message}`);
      };
    } catch {
      // Once the sandbox emptied EventTarget.prototype, no listener can be added: an error
      // outside any call (the thread catches those of calls) then ends the process, and the
      // database restarts from its log.
    }
    void this.#receive(onMessage);
    const init: ThreadInit = {
      asyncPort: asyncChannel.port2,
      syncPort: syncChannel.port2,
      callPort: callChannel.port2,
      bell: this.bell,
      watchdog,
    };
    this.worker.postMessage(init, [asyncChannel.port2, syncChannel.port2, callChannel.port2]);
  }

  /** Resolves once the thread's own code is loaded. */
  started(): Promise<void> {
    return this.#next("started").then(() => {});
  }

  /** Loads the tenant bundle into the thread; resolves with the log lines of its top level. */
  async load(message: ThreadLoad): Promise<LogLine[]> {
    this.asyncPort.postMessage(message satisfies DatabaseToThread);
    const answer = await this.#next("loaded", "load-failed");
    if (answer.type === "load-failed") {
      throw new Error(`The procedure thread could not load the module: ${answer.error}`);
    }
    this.loaded = true;
    return answer.type === "loaded" ? answer.logs : [];
  }

  /**
   * Takes the thread's messages off its async port whenever it rings: port events cannot be
   * listened to once this thread's sandbox is in place (EventTarget.prototype is emptied).
   */
  async #receive(
    onMessage: (thread: ProcedureThread, message: ThreadToDatabase) => void,
  ): Promise<void> {
    while (!this.#stopped) {
      const received = receiveMessageOnPort(this.asyncPort as never);
      if (received) {
        const message = unboxBytes(received.message) as ThreadToDatabase;
        const waiter = this.#waiting.get(message.type);
        if (waiter) {
          this.#waiting.clear();
          waiter(message);
        } else {
          onMessage(this, message);
        }
        continue;
      }
      const waited = hostAtomics.waitAsync(this.bell, BELL_ASYNC, 0);
      if (waited.async) await waited.value;
      hostAtomics.store(this.bell, BELL_ASYNC, 0);
    }
  }

  stop(): void {
    this.#stopped = true;
    this.worker.terminate();
    hostAtomics.store(this.bell, BELL_ASYNC, 1);
    hostAtomics.notify(this.bell, BELL_ASYNC);
  }

  run(call: Call): void {
    this.busy = true;
    const message: DatabaseToThread = { type: "call", ...call };
    this.callPort.postMessage(boxBytes(message));
    hostAtomics.store(this.bell, BELL_CALL, 1);
    hostAtomics.notify(this.bell, BELL_CALL);
  }

  answer(message: RemoteReply | SyscallAnswer): void {
    this.syncPort.postMessage(boxBytes(message));
    hostAtomics.store(this.bell, BELL_TO_THREAD, 1);
    hostAtomics.notify(this.bell, BELL_TO_THREAD);
  }

  #next(...types: string[]): Promise<ThreadToDatabase> {
    return new Promise((resolve) => {
      for (const type of types) this.#waiting.set(type, resolve);
    });
  }
}

export class ProcedurePool {
  readonly #options: ProcedurePoolOptions;
  /** Running threads; the first (started with the process) is never stopped. */
  readonly #threads: ProcedureThread[] = [];
  /** Threads being started, counted against the maximum. */
  #starting = 0;
  readonly #queue: Call[] = [];
  #maxThreads = PROCEDURE_THREADS_DEFAULT;
  #maxQueued = PROCEDURE_QUEUE_DEFAULT;
  #idleMs = PROCEDURE_IDLE_S_DEFAULT * 1000;
  #growBlockedUntilMs = 0;
  /** The blob: URL threads after the first start from. */
  #threadUrl: string | undefined;
  #load: ThreadLoad | undefined;
  #remoteSys: Syscalls | undefined;
  /** Outbound HTTP requests waiting for the server, by request id: the thread to wake. */
  readonly #httpWaiting = new Map<number, ProcedureThread>();
  #nextHttpId = 1;
  #sweepArmed = false;
  /**
   * The reducer budget: a procedure's `withTx` body gets the same, and so does its code overall
   * (waits on HTTP and for the transaction excluded).
   */
  #txBudgetMs = 10_000;

  constructor(options: ProcedurePoolOptions) {
    this.#options = options;
    // The first thread's code is read from disk while this process still may.
    this.#threads.push(this.#newThread(
      new URL("./procedure_thread.ts", import.meta.url).href,
      0,
    ));
  }

  /** Resolves once the first thread's own code is loaded (then the process may drop reads). */
  started(): Promise<void> {
    return this.#threads[0].started();
  }

  /**
   * Sets the pool's bounds: at most `threads` threads (1 to PROCEDURE_THREADS_MAX), `queued`
   * calls waiting beyond them, and the idle time after which an extra thread is stopped.
   */
  configure(bounds: { threads?: number; queued?: number; idleMs?: number }): void {
    const threads = bounds.threads ?? PROCEDURE_THREADS_DEFAULT;
    const queued = bounds.queued ?? PROCEDURE_QUEUE_DEFAULT;
    if (!Number.isInteger(threads) || threads < 1 || threads > PROCEDURE_THREADS_MAX) {
      throw new RangeError(
        `procedure threads must be an integer from 1 to ${PROCEDURE_THREADS_MAX}, not ${threads}`,
      );
    }
    if (!Number.isInteger(queued) || queued < 0) {
      throw new RangeError(`the procedure queue must be an integer of at least 0, not ${queued}`);
    }
    const idleMs = bounds.idleMs ?? this.#idleMs;
    if (!Number.isFinite(idleMs) || idleMs <= 0) {
      throw new RangeError(`the procedure thread idle time must be over 0 ms, not ${idleMs}`);
    }
    this.#maxThreads = threads;
    this.#maxQueued = queued;
    this.#idleMs = idleMs;
  }

  setTxBudget(budgetMs: number): void {
    this.#txBudgetMs = budgetMs;
  }

  /** Loads the tenant bundle into the first thread; later threads load the same. */
  async load(
    bundle: string,
    engine: DatabaseEngine,
    loadTimeoutMs: number,
    prepared?: { source: string; tickName: string },
  ): Promise<void> {
    const { tableIds, indexIds } = nameMaps(engine);
    this.#load = {
      type: "load",
      bundle: prepared ? "" : bundle,
      prepared,
      databaseIdentity: engine.databaseIdentity,
      tableIds,
      indexIds,
      budgetMs: this.#txBudgetMs,
      loadTimeoutMs,
    };
    this.#pushLogs(await this.#threads[0].load(this.#load));
  }

  get loaded(): boolean {
    return this.#threads[0].loaded;
  }

  /** Stops every running thread (the process is ending; tests). Calls still waiting stay unanswered. */
  close(): void {
    for (const thread of this.#threads.splice(0)) thread.stop();
    this.#queue.length = 0;
  }

  /** Running threads (the first included) and threads being started. */
  get threadCount(): number {
    return this.#threads.length + this.#starting;
  }

  /**
   * Runs a call on a free thread, or queues it (starting another thread when the maximum
   * allows). A call past the queue's bound fails at once: false, and its failure is reported
   * through `onDone` like any result.
   */
  call(request: CallProcedureRequest | CallHttpHandlerRequest, functionId: number): boolean {
    const free = this.#maxThreads - this.#threads.length - this.#starting;
    const idle = this.#threads.some((thread) => thread.loaded && !thread.busy);
    if (!idle && this.#queue.length >= this.#maxQueued + free) {
      const message = `Too many procedure and HTTP handler calls at once: all ` +
        `${this.#maxThreads} procedure threads of this database are busy and ` +
        `${this.#queue.length} calls are waiting (the limits are --procedure-threads and ` +
        `--procedure-queue); try again later`;
      const name = request.kind === "procedure" ? request.procedure : `http_handler_${functionId}`;
      this.#options.engine()?.pushRemoteLog("Error", message, name);
      const txOffset = this.#options.engine()?.txOffset ?? 0;
      this.#options.onDone(
        request.kind === "procedure"
          ? { kind: "procedure", id: request.id, ok: false, message, txOffset, durationMicros: 0 }
          : { kind: "http-handler", id: request.id, ok: false, message, txOffset },
      );
      return false;
    }
    this.#queue.push({ request, functionId });
    this.#dispatch();
    return true;
  }

  /** The server answered an outbound HTTP request: wake the procedure waiting for it. */
  httpResponse(message: OutboundHttpResponse): void {
    const thread = this.#httpWaiting.get(message.requestId);
    if (!thread) return;
    this.#httpWaiting.delete(message.requestId);
    const reply: RemoteReply = message.error !== undefined
      ? { ok: false, message: message.error }
      : { ok: true, status: message.status, headers: message.headers, body: message.body };
    thread.answer(reply);
  }

  #newThread(url: string, index: number): ProcedureThread {
    return new ProcedureThread(
      url,
      index,
      this.#options.watchdog?.(index),
      (thread, message) => this.#receive(thread, message),
      (message) => this.#options.onFatal(message),
    );
  }

  /** Hands queued calls to free threads; starts another thread when calls still wait. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      const thread = this.#threads.find((candidate) => candidate.loaded && !candidate.busy);
      if (!thread) break;
      thread.run(this.#queue.shift()!);
    }
    if (
      this.#queue.length > this.#starting &&
      this.#threads.length + this.#starting < this.#maxThreads &&
      this.#load !== undefined && hostNow() >= this.#growBlockedUntilMs
    ) {
      void this.#grow();
    }
  }

  async #grow(): Promise<void> {
    this.#starting++;
    const used = new Set(this.#threads.map((thread) => thread.index));
    let index = 1;
    while (used.has(index)) index++;
    let thread: ProcedureThread | undefined;
    // This start counts in #starting until it runs or fails; either way it leaves exactly once.
    let counted = true;
    const leaveStarting = () => {
      if (counted) this.#starting--;
      counted = false;
    };
    try {
      const source = await this.#options.setExtraThreads(
        this.#threads.length + this.#starting - 1,
        this.#threadUrl === undefined,
      );
      if (source !== undefined) {
        this.#threadUrl = hostCreateObjectURL(new HostBlob([source], { type: "text/javascript" }));
      }
      if (this.#threadUrl === undefined) throw new Error("the server sent no thread code");
      thread = this.#newThread(this.#threadUrl, index);
      // A thread whose code fails outside any call may never answer (its error event cannot
      // always be listened to): the start gives up after a bound, and calls keep the threads
      // that run.
      const startMs = this.#options.threadStartTimeoutMs ?? THREAD_START_TIMEOUT_MS;
      await withinMs(thread.started(), startMs, "did not start");
      const load = this.#load!;
      this.#pushLogs(
        await withinMs(
          thread.load(load),
          load.loadTimeoutMs + startMs,
          "did not load the module",
        ),
      );
      leaveStarting();
      this.#threads.push(thread);
      this.#armSweep();
    } catch (error) {
      thread?.stop();
      // Only this start's share is released: the cap is for the threads running or still
      // starting now (others may have begun after this one), never the count this one began at.
      leaveStarting();
      void this.#options.setExtraThreads(this.#threads.length + this.#starting - 1, false)
        .catch(() => {});
      this.#growBlockedUntilMs = hostNow() + GROW_RETRY_MS;
      this.#options.engine()?.pushRemoteLog(
        "Error",
        `Could not start another procedure thread (${this.#threads.length} running); ` +
          `calls wait for those: ${describeError(error)}`,
        undefined,
      );
    } finally {
      leaveStarting();
      this.#dispatch();
    }
  }

  /** Stops threads after the first that had no call for the idle time. */
  #armSweep(): void {
    if (this.#sweepArmed || this.#threads.length <= 1) return;
    this.#sweepArmed = true;
    hostSetTimeout(() => {
      this.#sweepArmed = false;
      const now = hostNow();
      for (let i = this.#threads.length - 1; i >= 1; i--) {
        const thread = this.#threads[i];
        if (thread.busy || now - thread.idleSinceMs < this.#idleMs) continue;
        this.#threads.splice(i, 1);
        thread.stop();
        void this.#options.setExtraThreads(this.#threads.length + this.#starting - 1, false)
          .catch(() => {});
      }
      this.#armSweep();
    }, Math.max(10, Math.min(this.#idleMs / 2, 5_000)));
  }

  #receive(thread: ProcedureThread, message: ThreadToDatabase): void {
    switch (message.type) {
      case "tx-open":
        this.#pushLogs(message.logs);
        this.#serveTransaction(thread, message);
        return;
      case "http": {
        this.#pushLogs(message.logs);
        const requestId = this.#nextHttpId++;
        this.#httpWaiting.set(requestId, thread);
        this.#options.send({
          type: "http-request",
          requestId,
          method: message.method,
          uri: message.uri,
          headers: message.headers,
          body: message.body,
          timeoutMs: message.timeoutMs,
        });
        return;
      }
      case "done": {
        const engine = this.#options.engine();
        message.result.txOffset = engine?.txOffset ?? 0;
        this.#pushLogs(message.logs);
        thread.busy = false;
        thread.idleSinceMs = hostNow();
        this.#options.onDone(message.result);
        this.#dispatch();
        return;
      }
    }
  }

  #pushLogs(lines: LogLine[]): void {
    const engine = this.#options.engine();
    if (!engine || !Array.isArray(lines)) return;
    for (const line of lines) {
      engine.pushRemoteLog(String(line.level), String(line.message), line.function);
    }
  }

  /** Runs one `withTx` of `thread` to its end, blocking this thread meanwhile. */
  #serveTransaction(
    thread: ProcedureThread,
    open: Extract<ThreadToDatabase, { type: "tx-open" }>,
  ): void {
    const engine = this.#options.engine();
    if (!engine) {
      thread.answer({ ok: false, message: "The database is not running" });
      return;
    }
    // Requests left from a transaction that was ended early are stale.
    while (receiveMessageOnPort(thread.syncPort as never));
    const sys = this.#remoteSys ??= engine.createRemoteSyscalls(carrierFor);
    engine.beginRemoteProcedure({
      name: open.name,
      sender: open.sender,
      connectionId: open.connectionId,
      args: open.args,
    });
    const deadline = hostNow() + this.#txBudgetMs;
    let endReason: string | undefined;
    thread.answer({ ok: true });
    try {
      for (;;) {
        const request = awaitSyscall(thread, deadline);
        if (request === undefined) {
          endReason = `the procedure's transaction exceeded its time budget of ` +
            `${this.#txBudgetMs} ms and was rolled back`;
          thread.answer({ txEnded: true, message: endReason });
          break;
        }
        const answer = callSyscall(sys, request);
        if (
          request.name === "procedure_commit_mut_tx" ||
          request.name === "procedure_abort_mut_tx" ||
          (request.name === "procedure_start_mut_tx" && !("value" in answer))
        ) {
          answer.txEnded = true;
        }
        thread.answer(answer);
        if (answer.txEnded) break;
      }
    } finally {
      engine.endRemoteProcedure(endReason);
      sys.endCall();
      this.#options.afterTransaction();
    }
  }
}

function awaitSyscall(thread: ProcedureThread, deadline: number): SyscallRequest | undefined {
  for (;;) {
    const received = receiveMessageOnPort(thread.syncPort as never);
    if (received) return unboxBytes(received.message) as SyscallRequest;
    const left = deadline - hostNow();
    if (left <= 0) return undefined;
    hostAtomics.wait(thread.bell, BELL_TO_DATABASE, 0, Math.min(left, 100));
    hostAtomics.store(thread.bell, BELL_TO_DATABASE, 0);
  }
}

const carriers = new Map<number, new (message: string) => Error>();

function carrierFor(code: number): new (message: string) => Error {
  let carrier = carriers.get(code);
  if (!carrier) {
    carrier = class extends ErrnoCarrier {
      constructor(message: string) {
        super(code, message);
      }
    };
    carriers.set(code, carrier);
  }
  return carrier;
}

function callSyscall(sys: Syscalls, request: SyscallRequest): SyscallAnswer {
  const name = String(request?.name);
  const fn =
    (Object.hasOwn(sys.v20, name)
      ? sys.v20[name]
      : Object.hasOwn(sys.v21, name)
      ? sys.v21[name]
      : undefined) as ((...args: unknown[]) => unknown) | undefined;
  if (typeof fn !== "function" || !Array.isArray(request.args)) {
    return { message: `No such syscall "${name}"` };
  }
  try {
    const value = fn(...request.args);
    const answer: SyscallAnswer = { value };
    if (WRITE_BACK_SYSCALLS.has(name)) {
      answer.writeBack = [];
      request.args.forEach((arg, position) => {
        if (arg instanceof ArrayBuffer) answer.writeBack!.push([position, arg]);
      });
    }
    return answer;
  } catch (error) {
    if (error instanceof ErrnoCarrier) return { errno: error.code, message: error.message };
    if (error instanceof Error) return { message: describeError(error) };
    return { thrown: error };
  }
}

/** Every name `table_id_from_name` / `index_id_from_name` accepts, with its id. */
function nameMaps(
  engine: DatabaseEngine,
): { tableIds: Record<string, number>; indexIds: Record<string, number> } {
  const tableIds: Record<string, number> = {};
  const indexIds: Record<string, number> = {};
  const datastore = engine.datastore;
  for (const table of datastore.tables()) {
    for (const value of Object.values(table)) {
      if (typeof value !== "string") continue;
      const id = datastore.tableIdFromName(value);
      if (id !== undefined) tableIds[value] = id;
    }
    for (const index of table.indexes) {
      for (const value of Object.values(index)) {
        if (typeof value !== "string") continue;
        const id = datastore.indexIdFromName(value);
        if (id !== undefined) indexIds[value] = id;
      }
    }
  }
  return { tableIds, indexIds };
}

/** How long an extra procedure thread may take to start (and, beyond the module's load budget, to load). */
const THREAD_START_TIMEOUT_MS = 10_000;

/** `promise`, or a rejection saying the thread `what` within `ms`. */
function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: number | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = hostSetTimeout(
        () => reject(new Error(`the thread ${what} within ${ms} ms`)),
        ms,
      ) as unknown as number;
    }),
  ]).finally(() => hostClearTimeout(timer));
}
