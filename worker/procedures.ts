/**
 * The database thread's side of the procedure thread (worker/procedure_thread.ts): starts it,
 * hands it procedure and HTTP-handler calls, serves its transactions and relays its outbound
 * HTTP requests to the server.
 *
 * A procedure's `withTx` asks for the transaction with a `tx-open` message, which waits in this
 * thread's event loop like any batch. When it is its turn, this thread begins the transaction
 * and answers the procedure's syscalls synchronously (Atomics.wait between them) until the
 * commit or the abort, so the transaction is serialized with reducers exactly as one reducer
 * call is. Everything else the procedure does, waiting on HTTP included, happens in the other
 * thread while this one serves batches.
 */
import { receiveMessageOnPort } from "node:worker_threads";
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
  BELL_CALL,
  BELL_SLOTS,
  BELL_TO_DATABASE,
  BELL_TO_THREAD,
  type DatabaseToThread,
  type RemoteReply,
  type SyscallAnswer,
  type SyscallRequest,
  type ThreadInit,
  type ThreadToDatabase,
  WRITE_BACK_SYSCALLS,
} from "./procedure_channel.ts";

// Host references, captured before the sandbox removes these globals.
const HostWorker = Worker;
const HostMessageChannel = MessageChannel;
const HostSharedArrayBuffer = SharedArrayBuffer;
const hostAtomics = { wait: Atomics.wait, store: Atomics.store, notify: Atomics.notify };
const hostNow = performance.now.bind(performance);

/** Carries an errno code from the remote syscalls to the answer. */
class ErrnoCarrier extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export interface ProcedureRunnerOptions {
  engine: () => DatabaseEngine | undefined;
  /** Sends a message to the server (an outbound HTTP request, a finished call). */
  send: (message: OutboundHttpRequest) => void;
  /** A call finished (its log lines are in the engine's log). */
  onDone: (result: ProcedureResult | HttpHandlerResult) => void;
  /** A procedure transaction ended: report what it committed (durability, subscribers). */
  afterTransaction: () => void;
  /** The thread failed outside any call: the database must stop. */
  onFatal: (message: string) => void;
  /** The procedure thread's pair of the process watchdog (worker/isolation.ts). */
  watchdog?: Float64Array;
}

export class ProcedureRunner {
  readonly #options: ProcedureRunnerOptions;
  readonly #worker: Worker;
  readonly #asyncPort: MessagePort;
  readonly #syncPort: MessagePort;
  readonly #callPort: MessagePort;
  readonly #bell: Int32Array;
  #remoteSys: Syscalls | undefined;
  #waiting = new Map<string, (message: ThreadToDatabase) => void>();
  #nextHttpId = 1;
  #loaded = false;
  /**
   * The reducer budget: a procedure's `withTx` body gets the same, and so does its code overall
   * (waits on HTTP and for the transaction excluded).
   */
  #txBudgetMs = 10_000;

  constructor(options: ProcedureRunnerOptions) {
    this.#options = options;
    this.#bell = new Int32Array(new HostSharedArrayBuffer(BELL_SLOTS * 4));
    const asyncChannel = new HostMessageChannel();
    const syncChannel = new HostMessageChannel();
    const callChannel = new HostMessageChannel();
    this.#asyncPort = asyncChannel.port1;
    this.#syncPort = syncChannel.port1;
    this.#callPort = callChannel.port1;
    // The thread has no permissions at all; its code is read while this process still may.
    this.#worker = new HostWorker(new URL("./procedure_thread.ts", import.meta.url).href, {
      type: "module",
      deno: { permissions: "none" },
    } as WorkerOptions);
    this.#worker.onerror = (event) => {
      event.preventDefault();
      options.onFatal(`the procedure thread failed: ${event.message}`);
    };
    this.#asyncPort.onmessage = (event) => this.#receive(event.data as ThreadToDatabase);
    const init: ThreadInit = {
      asyncPort: asyncChannel.port2,
      syncPort: syncChannel.port2,
      callPort: callChannel.port2,
      bell: this.#bell,
      watchdog: options.watchdog,
    };
    this.#worker.postMessage(init, [asyncChannel.port2, syncChannel.port2, callChannel.port2]);
  }

  /** Resolves once the thread's own code is loaded (then this process may drop its reads). */
  started(): Promise<void> {
    return this.#next("started").then(() => {});
  }

  /** Loads the tenant bundle into the thread. */
  async load(
    bundle: string,
    engine: DatabaseEngine,
    loadTimeoutMs: number,
    prepared?: { source: string; tickName: string },
  ): Promise<void> {
    const { tableIds, indexIds } = nameMaps(engine);
    this.#post({
      type: "load",
      bundle,
      prepared,
      databaseIdentity: engine.databaseIdentity,
      tableIds,
      indexIds,
      budgetMs: this.#txBudgetMs,
      loadTimeoutMs,
    });
    const answer = await this.#next("loaded", "load-failed");
    if (answer.type === "load-failed") {
      throw new Error(`The procedure thread could not load the module: ${answer.error}`);
    }
    this.#pushLogs(answer.type === "loaded" ? answer.logs : []);
    this.#loaded = true;
  }

  setTxBudget(budgetMs: number): void {
    this.#txBudgetMs = budgetMs;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  call(request: CallProcedureRequest | CallHttpHandlerRequest, functionId: number): void {
    const message: DatabaseToThread = { type: "call", request, functionId };
    this.#callPort.postMessage(message);
    hostAtomics.store(this.#bell, BELL_CALL, 1);
    hostAtomics.notify(this.#bell, BELL_CALL);
  }

  /** The server answered an outbound HTTP request: wake the waiting procedure. */
  httpResponse(message: OutboundHttpResponse): void {
    const reply: RemoteReply = message.error !== undefined
      ? { ok: false, message: message.error }
      : { ok: true, status: message.status, headers: message.headers, body: message.body };
    this.#answer(reply);
  }

  #post(message: DatabaseToThread): void {
    this.#asyncPort.postMessage(message);
  }

  #next(...types: string[]): Promise<ThreadToDatabase> {
    return new Promise((resolve) => {
      for (const type of types) this.#waiting.set(type, resolve);
    });
  }

  #receive(message: ThreadToDatabase): void {
    const waiter = this.#waiting.get(message.type);
    if (waiter) {
      this.#waiting.clear();
      waiter(message);
      return;
    }
    switch (message.type) {
      case "tx-open":
        this.#pushLogs(message.logs);
        this.#serveTransaction(message);
        return;
      case "http": {
        this.#pushLogs(message.logs);
        this.#options.send({
          type: "http-request",
          requestId: this.#nextHttpId++,
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
        this.#options.onDone(message.result);
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

  #answer(message: RemoteReply | SyscallAnswer): void {
    this.#syncPort.postMessage(message);
    hostAtomics.store(this.#bell, BELL_TO_THREAD, 1);
    hostAtomics.notify(this.#bell, BELL_TO_THREAD);
  }

  /** Runs one `withTx` of the procedure thread to its end, blocking this thread meanwhile. */
  #serveTransaction(open: Extract<ThreadToDatabase, { type: "tx-open" }>): void {
    const engine = this.#options.engine();
    if (!engine) {
      this.#answer({ ok: false, message: "The database is not running" });
      return;
    }
    // Requests left from a transaction that was ended early are stale.
    while (receiveMessageOnPort(this.#syncPort as never));
    const sys = this.#remoteSys ??= engine.createRemoteSyscalls(carrierFor);
    engine.beginRemoteProcedure({
      name: open.name,
      sender: open.sender,
      connectionId: open.connectionId,
      args: open.args,
    });
    const deadline = hostNow() + this.#txBudgetMs;
    let endReason: string | undefined;
    this.#answer({ ok: true });
    try {
      for (;;) {
        const request = this.#awaitSyscall(deadline);
        if (request === undefined) {
          endReason = `the procedure's transaction exceeded its time budget of ` +
            `${this.#txBudgetMs} ms and was rolled back`;
          this.#answer({ txEnded: true, message: endReason });
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
        this.#answer(answer);
        if (answer.txEnded) break;
      }
    } finally {
      engine.endRemoteProcedure(endReason);
      sys.endCall();
      this.#options.afterTransaction();
    }
  }

  #awaitSyscall(deadline: number): SyscallRequest | undefined {
    for (;;) {
      const received = receiveMessageOnPort(this.#syncPort as never);
      if (received) return received.message as SyscallRequest;
      const left = deadline - hostNow();
      if (left <= 0) return undefined;
      hostAtomics.wait(this.#bell, BELL_TO_DATABASE, 0, Math.min(left, 100));
      hostAtomics.store(this.#bell, BELL_TO_DATABASE, 0);
    }
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
