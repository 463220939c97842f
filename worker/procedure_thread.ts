/**
 * The procedure thread of a database process: a Worker thread that loads the same tenant bundle
 * in the same sandbox and runs procedures and HTTP handlers, so that a procedure blocked on
 * `ctx.http.fetch` never holds up the database's reducers (module-abi.md §5.5, §7.3).
 *
 * It has no datastore. Inside `ctx.withTx` its datastore syscalls are synchronous calls into the
 * database thread (worker/procedures.ts), which holds the transaction open and answers them one
 * by one: the request goes on a MessagePort, a SharedArrayBuffer doorbell wakes the other side
 * (Atomics.wait / notify), and the answer is taken with `receiveMessageOnPort`. `fetch` goes the
 * same way to the database thread and on to the server, which performs it (the process has no
 * network permission) and checks the database's allow-list (server/outbound_http.ts).
 */
import { receiveMessageOnPort } from "node:worker_threads";
import { boxBytes, unboxBytes } from "./port_bytes.ts";
import { prepareSandbox } from "./sandbox.ts";
import {
  describeError,
  describeErrorStack,
  loadModule,
  type ModuleHooks,
} from "./module_loader.ts";
import { Errno, ERRNO_MESSAGES, LOG_LEVEL_NAMES } from "./sys_abi.ts";
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../protocol/mod.ts";
import {
  decodeHttpRequest,
  decodeHttpResponse,
  encodeHttpRequest,
  encodeHttpResponse,
  HTTP_VERSION_11,
} from "../protocol/mod.ts";
import {
  HTTP_HANDLER_RESPONSE_BYTES_MAX,
  OUTBOUND_HTTP_REQUEST_BYTES_MAX,
  OUTBOUND_HTTP_TIMEOUT_MS_DEFAULT,
  OUTBOUND_HTTP_TIMEOUT_MS_MAX,
} from "../lib/limits.ts";
import type {
  CallHttpHandlerRequest,
  CallProcedureRequest,
  HttpHandlerResult,
  LogLine,
  ProcedureResult,
} from "./messages.ts";
import type {
  DatabaseToThread,
  RemoteReply,
  SyscallAnswer,
  ThreadInit,
  ThreadLoad,
  ThreadToDatabase,
} from "./procedure_channel.ts";
import { BELL_ASYNC, BELL_CALL, BELL_TO_DATABASE, BELL_TO_THREAD } from "./procedure_channel.ts";

// Host references, captured before the sandbox removes globals.
const hostAtomics = {
  wait: Atomics.wait,
  waitAsync: Atomics.waitAsync,
  store: Atomics.store,
  notify: Atomics.notify,
};
const hostSetTimeout = setTimeout;
const hostPerformance = performance;
const hostNow = () => hostPerformance.now();
const hostDateNow = Date.now;
const textEncoder = new TextEncoder();
const selfScope = globalThis as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  addEventListener: typeof addEventListener;
};
selfScope.addEventListener("unhandledrejection", (event) => event.preventDefault());

let init: ThreadInit | undefined;
let config: ThreadLoad | undefined;
let hooks: ModuleHooks | undefined;
let budget: ReturnType<typeof prepareSandbox>["budget"] | undefined;
let post: (message: ThreadToDatabase) => void = () => {};
let logs: LogLine[] = [];
/** The call running now: its name for log lines; and whether a transaction is open. */
let current: { name: string; sender: bigint; connectionId: bigint; args: Uint8Array } | undefined;
let inTx = false;
/**
 * A call's time budget (the reducer budget) counts the time its code runs, not the time it
 * waits on HTTP or for the database's transaction: the budget is stopped around those waits.
 */
let budgetArmed = false;
let budgetSpentMs = 0;
let segmentStartMs = 0;
let budgetBlown = false;

/**
 * Arms this thread's pair of the process watchdog (worker/isolation.ts) for `budgetMs` from
 * `nowMs`: the sandbox arms it when the call's budget starts or resumes and disarms it when the
 * budget stops, so waits on HTTP and for the transaction are not watched either. The pair holds
 * the call's whole budget, for the watchdog's message.
 */
function armWatchdog(budgetMs: number, nowMs = hostNow()): void {
  const slots = init?.watchdog;
  if (!slots) return;
  slots[1] = config?.budgetMs ?? budgetMs;
  slots[0] = hostPerformance.timeOrigin + nowMs + budgetMs;
}

function disarmWatchdog(): void {
  const slots = init?.watchdog;
  if (slots) slots[0] = 0;
}

function budgetMessage(): string {
  return `The call exceeded its time budget of ${config!.budgetMs} ms and was stopped`;
}

function pauseBudget(): void {
  if (!budgetArmed) return;
  budgetArmed = false;
  const exceeded = budget!.stop();
  budgetSpentMs += hostNow() - segmentStartMs;
  if (exceeded || budgetSpentMs >= config!.budgetMs) {
    budgetBlown = true;
    throw new Error(budgetMessage());
  }
}

function resumeBudget(): void {
  if (budgetArmed || budgetBlown) return;
  segmentStartMs = hostNow();
  budget!.start(Math.max(1, config!.budgetMs - budgetSpentMs));
  budgetArmed = true;
}

/** Runs `wait` with the call's budget stopped. */
function outsideBudget<T>(wait: () => T): T {
  pauseBudget();
  try {
    return wait();
  } finally {
    resumeBudget();
  }
}

/** Ends the call's budget; true when it was exceeded. */
function stopBudget(): boolean {
  let exceeded = budgetBlown;
  if (budgetArmed) {
    budgetArmed = false;
    if (budget!.stop()) exceeded = true;
  }
  budgetBlown = false;
  return exceeded;
}

selfScope.onmessage = (event: MessageEvent) => {
  selfScope.onmessage = null;
  const message = event.data as ThreadInit;
  init = message;
  const postAsync = message.asyncPort.postMessage.bind(message.asyncPort);
  // The database thread takes these with receiveMessageOnPort when the bell rings: it cannot
  // listen for port events once its sandbox is in place (worker/procedures.ts).
  post = (data) => {
    postAsync(boxBytes(data));
    hostAtomics.store(message.bell, BELL_ASYNC, 1);
    hostAtomics.notify(message.bell, BELL_ASYNC);
  };
  message.asyncPort.onmessage = (next: MessageEvent) => {
    const data = next.data as { type: string };
    if (data.type === "load") void load(data as ThreadLoad);
  };
  post({ type: "started" });
};

async function load(message: ThreadLoad): Promise<void> {
  config = message;
  try {
    const before = Reflect.ownKeys(globalThis);
    const sandbox = prepareSandbox(message.bundle, {
      setTimeout: hostSetTimeout,
      monotonicMs: hostNow,
      arm: armWatchdog,
      disarm: disarmWatchdog,
    }, message.prepared);
    const removed = before.filter((key) => !Reflect.ownKeys(globalThis).includes(key));
    budget = sandbox.budget;
    hooks = await loadModule(sandbox.source, syscalls(), {
      timeoutMs: message.loadTimeoutMs,
      // A prepared bundle's imports were rewritten by the process that prepared it.
      importsRewritten: message.prepared !== undefined,
    });
    // In a worker thread Deno defines some globals again when the first module is imported
    // (queueMicrotask): what the sandbox removed stays removed.
    for (let pass = 0; pass < 8; pass++) {
      const back = removed.filter((key) => Reflect.ownKeys(globalThis).includes(key));
      if (back.length === 0) break;
      for (const key of back) Reflect.deleteProperty(globalThis, key);
    }
    post({ type: "loaded", logs: takeLogs() });
  } catch (error) {
    post({ type: "load-failed", error: describeError(error), logs: takeLogs() });
    return;
  }
  void serveCalls();
}

/**
 * Takes calls off the call port one at a time. Between calls the thread waits with
 * Atomics.waitAsync, so its event loop (finalizers, microtasks) still turns; port events
 * themselves are not used once the sandbox is in place.
 */
async function serveCalls(): Promise<void> {
  const bell = init!.bell;
  for (;;) {
    const received = receiveMessageOnPort(init!.callPort as never);
    if (received) {
      const call = unboxBytes(received.message) as Extract<DatabaseToThread, { type: "call" }>;
      run(call.request, call.functionId);
      continue;
    }
    const waited = hostAtomics.waitAsync(bell, BELL_CALL, 0);
    if (waited.async) await waited.value;
    hostAtomics.store(bell, BELL_CALL, 0);
  }
}

function takeLogs(): LogLine[] {
  const taken = logs;
  logs = [];
  return taken;
}

function log(level: string, message: string): void {
  const line: LogLine = { level, ts: hostDateNow() * 1000, message };
  if (current) {
    line.function = current.name;
    line.target = current.name;
  }
  logs.push(line);
}

function run(request: CallProcedureRequest | CallHttpHandlerRequest, functionId: number): void {
  const startMs = hostNow();
  const name = request.kind === "procedure" ? request.procedure : `http_handler_${functionId}`;
  current = request.kind === "procedure"
    ? { name, sender: request.sender, connectionId: request.connectionId, args: request.args }
    : { name, sender: 0n, connectionId: 0n, args: new Uint8Array() };
  budgetSpentMs = 0;
  budgetBlown = false;
  budgetArmed = false;
  resumeBudget();
  let exceeded = false;
  let result: ProcedureResult | HttpHandlerResult;
  try {
    if (request.kind === "procedure") {
      const value = hooks!.__call_procedure__(
        functionId,
        request.sender,
        request.connectionId,
        request.timestampMicros,
        request.args,
      );
      exceeded = stopBudget();
      if (exceeded) throw new Error("time budget exceeded");
      if (!(value instanceof Uint8Array)) {
        throw new TypeError("Procedure did not return a Uint8Array");
      }
      result = {
        kind: "procedure",
        id: request.id,
        ok: true,
        value,
        txOffset: 0,
        durationMicros: Math.round((hostNow() - startMs) * 1000),
      };
    } else {
      result = callHttpHandler(request, functionId);
      exceeded = stopBudget();
      if (exceeded) throw new Error("time budget exceeded");
    }
  } catch (error) {
    if (budget!.isExceeded(error)) exceeded = true;
    if (stopBudget()) exceeded = true;
    const message = exceeded ? budgetMessage() : describeError(error);
    log("Error", exceeded ? message : error instanceof Error ? describeErrorStack(error) : message);
    result = request.kind === "procedure"
      ? { kind: "procedure", id: request.id, ok: false, message, txOffset: 0, durationMicros: 0 }
      : { kind: "http-handler", id: request.id, ok: false, message, txOffset: 0 };
  }
  current = undefined;
  inTx = false;
  post({ type: "done", result, logs: takeLogs() });
}

function callHttpHandler(request: CallHttpHandlerRequest, handlerId: number): HttpHandlerResult {
  const call = hooks!.__call_http_handler__;
  if (typeof call !== "function") {
    throw new TypeError("The module's hooks lack the function __call_http_handler__");
  }
  const wire = encodeHttpRequest({
    method: request.method,
    headers: request.headers,
    uri: request.uri,
    version: HTTP_VERSION_11,
  });
  const answer = call.call(hooks, handlerId, request.timestampMicros, wire, request.body);
  if (!Array.isArray(answer) || answer.length !== 2) {
    throw new TypeError("The HTTP handler did not return [response, body]");
  }
  const [head, body] = answer;
  if (!(head instanceof Uint8Array) || !(body instanceof Uint8Array)) {
    throw new TypeError("The HTTP handler did not return two Uint8Arrays");
  }
  const response = decodeHttpResponse(head);
  // What a Response can carry: anything else would make the reply malformed and stop the
  // database, for every client, on a status the module may have taken from a request.
  if (!Number.isInteger(response.status) || response.status < 200 || response.status > 599) {
    throw new RangeError(
      `The HTTP handler returned the status ${response.status}, not one in 200..599`,
    );
  }
  const bytes = response.headers.reduce(
    (total, [name, value]) => total + name.length + value.length,
    body.length,
  );
  if (bytes > HTTP_HANDLER_RESPONSE_BYTES_MAX) {
    throw new RangeError(
      `The HTTP handler's response of ${bytes} bytes (body and headers) is over the limit of ` +
        `${HTTP_HANDLER_RESPONSE_BYTES_MAX} bytes`,
    );
  }
  return {
    kind: "http-handler",
    id: request.id,
    ok: true,
    status: response.status,
    headers: response.headers,
    body,
    txOffset: 0,
  };
}

// --- the synchronous channel to the database thread ------------------------------------------

function ring(slot: number): void {
  const bell = init!.bell;
  hostAtomics.store(bell, slot, 1);
  hostAtomics.notify(bell, slot);
}

/** Waits for the database thread's next answer on the sync port. */
function awaitAnswer<T>(): T {
  const bell = init!.bell;
  for (;;) {
    const received = receiveMessageOnPort(init!.syncPort as never);
    if (received) return unboxBytes(received.message) as T;
    hostAtomics.wait(bell, BELL_TO_THREAD, 0, 1000);
    hostAtomics.store(bell, BELL_TO_THREAD, 0);
  }
}

function errnoError(code: number, message = ERRNO_MESSAGES[code]): Error {
  const ctor = hooks?.__get_error_constructor__(code);
  return ctor ? new ctor(message) : new Error(message);
}

/** Calls syscall `name` in the database thread, inside the open transaction. */
function remote(name: string, args: unknown[]): unknown {
  init!.syncPort.postMessage(boxBytes({ name, args }));
  ring(BELL_TO_DATABASE);
  const answer = awaitAnswer<SyscallAnswer>();
  if (answer.writeBack) {
    for (const [position, bytes] of answer.writeBack) {
      new Uint8Array(args[position] as ArrayBuffer).set(new Uint8Array(bytes));
    }
  }
  if (answer.txEnded) inTx = false;
  if ("value" in answer) return answer.value;
  if (answer.errno !== undefined) throw errnoError(answer.errno, answer.message);
  if (answer.thrown !== undefined) throw answer.thrown;
  throw new Error(answer.message ?? "the database ended the transaction");
}

/** Sends a request that waits for the database thread, then blocks for its answer. */
function blockOn<T>(message: ThreadToDatabase): T {
  post(message);
  return awaitAnswer<T>();
}

function syscalls(): { v20: Record<string, unknown>; v21: Record<string, unknown> } {
  const timers = new Map<number, { name: string; startMs: number }>();
  let nextTimerId = 1;
  const local: Record<string, (...args: unknown[]) => unknown> = {
    table_id_from_name(name: unknown): number {
      const id = config!.tableIds[String(name)];
      if (id === undefined) throw errnoError(Errno.NO_SUCH_TABLE);
      return id;
    },
    index_id_from_name(name: unknown): number {
      const id = config!.indexIds[String(name)];
      if (id === undefined) throw errnoError(Errno.NO_SUCH_INDEX);
      return id;
    },
    console_log(level: unknown, message: unknown): void {
      log(LOG_LEVEL_NAMES[Number(level)] ?? "Debug", String(message));
    },
    console_timer_start(name: unknown): number {
      const id = nextTimerId++;
      timers.set(id, { name: String(name), startMs: hostNow() });
      return id;
    },
    console_timer_end(spanId: unknown): void {
      const timer = timers.get(Number(spanId));
      if (!timer) throw errnoError(Errno.NO_SUCH_CONSOLE_TIMER);
      timers.delete(Number(spanId));
      log("Info", `Timing span "${timer.name}": ${(hostNow() - timer.startMs).toFixed(3)}ms`);
    },
    identity(): bigint {
      return config!.databaseIdentity;
    },
    row_iter_bsatn_close(iterator: unknown): void {
      // Finalizers call this late, outside any transaction (module-abi.md §7.4): never throws.
      if (inTx) {
        try {
          remote("row_iter_bsatn_close", [iterator]);
        } catch { /* already closed */ }
      }
    },
    procedure_start_mut_tx(): bigint {
      const call = current;
      if (inTx || !call) throw errnoError(Errno.WOULD_BLOCK_TRANSACTION);
      const grant = outsideBudget(() =>
        blockOn<RemoteReply>({
          type: "tx-open",
          name: call.name,
          sender: call.sender,
          connectionId: call.connectionId,
          args: call.args,
          logs: takeLogs(),
        })
      );
      if (!grant.ok) throw new Error(grant.message);
      inTx = true;
      return remote("procedure_start_mut_tx", []) as bigint;
    },
    procedure_http_request(request: unknown, body: unknown): [Uint8Array, Uint8Array] {
      if (inTx) throw errnoError(Errno.WOULD_BLOCK_TRANSACTION);
      if (!(request instanceof Uint8Array)) throw new TypeError("request must be a Uint8Array");
      const bodyBytes = typeof body === "string"
        ? textEncoder.encode(body)
        : body instanceof Uint8Array
        ? body
        : (() => {
          throw new TypeError("body must be a Uint8Array or a string");
        })();
      if (bodyBytes.length > OUTBOUND_HTTP_REQUEST_BYTES_MAX) {
        throw errnoError(
          Errno.HTTP_ERROR,
          `The request body of ${bodyBytes.length} bytes is over the limit of ` +
            `${OUTBOUND_HTTP_REQUEST_BYTES_MAX} bytes; the request was not sent`,
        );
      }
      let decoded;
      try {
        decoded = decodeHttpRequest(request);
      } catch (error) {
        throw new TypeError(`The HTTP request does not decode: ${describeError(error)}`);
      }
      const timeoutMs = decoded.timeoutMicros === undefined
        ? OUTBOUND_HTTP_TIMEOUT_MS_DEFAULT
        : Math.min(
          Math.max(0, Number(decoded.timeoutMicros / 1000n)),
          OUTBOUND_HTTP_TIMEOUT_MS_MAX,
        );
      const answer = outsideBudget(() =>
        blockOn<RemoteReply>({
          type: "http",
          method: decoded.method,
          uri: decoded.uri,
          headers: decoded.headers,
          body: bodyBytes.slice(),
          timeoutMs,
          logs: takeLogs(),
        })
      );
      if (!answer.ok) throw errnoError(Errno.HTTP_ERROR, answer.message);
      const head = encodeHttpResponse({
        headers: answer.headers ?? [],
        version: HTTP_VERSION_11,
        status: answer.status ?? 0,
      });
      return [head, answer.body ?? new Uint8Array()];
    },
    volatile_nonatomic_schedule_immediate(): never {
      throw errnoError(
        Errno.HOST_CALL_FAILURE,
        "volatile_nonatomic_schedule_immediate is not supported in procedures by Lightcone",
      );
    },
  };
  const forward = (name: string) => (...args: unknown[]) => {
    if (!inTx) throw errnoError(Errno.NOT_IN_TRANSACTION);
    return remote(name, args);
  };
  const make = (names: readonly string[]) => {
    const out: Record<string, unknown> = {};
    for (const name of names) {
      if (name === "moduleHooks") continue;
      const fn = local[name] ?? forward(name);
      // Shorthand methods are not constructors, like the real host's functions.
      out[name] = {
        [name](...args: unknown[]) {
          return fn(...args);
        },
      }[name];
    }
    return out;
  };
  const v20 = make(SYS_2_0_EXPORTS);
  v20.moduleHooks = Symbol.for("SpacetimeDB.moduleHooks.v2");
  return { v20, v21: make(SYS_2_1_EXPORTS) };
}
