/**
 * Entry point of a database process: the trusted host script. It runs in its own OS process
 * with no permissions (worker/isolation.ts), loads the tenant bundle through module_loader.ts,
 * and serves batches of requests from the server one at a time.
 */
import {
  armWatchdog,
  connectToServer,
  disarmWatchdog,
  dropReadPermission,
  holdOutput,
  procedureWatchdogSlots,
  releaseOutput,
  serveIsolated,
  startWatchdog,
  storagePort,
  watchdogGuardsWasm,
} from "./isolation.ts";
import { MODULE_LOAD_TIMEOUT_MS, OWNER_SQL_BUDGET_MS_DEFAULT } from "../lib/limits.ts";
import { systemClock } from "../lib/clock.ts";
import { DatabaseEngine } from "./engine.ts";
import { describeError, rewriteImports } from "./module_loader.ts";
import type {
  BatchItem,
  BatchMessage,
  InitMessage,
  MainToWorker,
  TxUpdate,
  WorkerToMain,
} from "./messages.ts";
import { rowsBytes, SubscriptionHost } from "./subscription_host.ts";
import { SqlHost } from "./sql_host.ts";
import { prepareSandbox } from "./sandbox.ts";
import { isWasmBundle } from "../wasm/mod.ts";
import { DurabilitySink } from "./durability_sink.ts";
import { decodeTxRecord, forEachBatchRecordNumbered } from "../storage/mod.ts";
import { forEachRequest, ResultPacker } from "./batch_codec.ts";
import { ProcedurePool } from "./procedures.ts";
import { type ProcedureStartMessage, type ReplicateMessage, type StallKind } from "./messages.ts";
import { StallRecorder } from "./stall_recorder.ts";

let engine: DatabaseEngine | undefined;
let subscriptions: SubscriptionHost | undefined;
let sqlHost: SqlHost | undefined;
let durability: DurabilitySink | undefined;

// Host references, captured before the sandbox removes or locks globals.
const hostSetTimeout = setTimeout;
const hostClearTimeout = clearTimeout;
const hostPerformance = performance;
const hostNow = () => hostPerformance.now();
// A tenant promise chain stopped by the budget must not close the worker.
globalThis.addEventListener("unhandledrejection", (event) => event.preventDefault());
// The request socket, while this process may still open it (dropReadPermission comes later).
await connectToServer();

// Batches run synchronously as their frame arrives. Messages that arrive while `init` loads
// the module wait in `backlog`.
let initializing = false;
const backlog: MainToWorker[] = [];
const hostSetImmediate = setImmediate;

function receive(message: MainToWorker): void {
  if (initializing) {
    backlog.push(message);
    return;
  }
  if (message.type === "hibernate") {
    const next = engine?.nextScheduleDueMicros();
    reply({
      type: "hibernating",
      nextScheduleMicros: next ?? -1,
      schedules: engine?.armedSchedules() ?? [],
      txOffset: engine?.txOffset ?? 0,
    });
    return;
  }
  if (message.type === "batch") {
    // The batch's commit records and its reply leave in one write.
    holdOutput();
    try {
      runBatch(message);
    } catch (error) {
      reply({ type: "init-failed", error: describeError(error), logs: engine?.drainLogs() ?? [] });
    } finally {
      releaseOutput();
    }
    return;
  }
  if (message.type === "replicate") {
    holdOutput();
    try {
      applyReplicated(message);
    } catch (error) {
      reply({
        type: "init-failed",
        error: describeError(error),
        logs: engine?.drainLogs() ?? [],
        replayFailed: true,
      });
    } finally {
      releaseOutput();
    }
    return;
  }
  if (message.type === "procedure-start") {
    startProcedure(message);
    return;
  }
  if (message.type === "http-response") {
    procedures.httpResponse(message);
    return;
  }
  if (message.type === "procedure-threads-set") {
    const waiter = threadWaiters.shift();
    if (message.error !== undefined) waiter?.reject(new Error(String(message.error)));
    else waiter?.resolve(typeof message.source === "string" ? message.source : undefined);
    return;
  }
  initializing = true;
  init(message)
    .catch((error) => {
      reply({ type: "init-failed", error: describeError(error), logs: engine?.drainLogs() ?? [] });
    })
    .finally(() => {
      initializing = false;
      hostSetImmediate(drainBacklog);
    });
}

function drainBacklog(): void {
  const message = backlog.shift();
  if (message === undefined) return;
  receive(message);
  if (!initializing && backlog.length > 0) hostSetImmediate(drainBacklog);
}

/** `procedure-threads` messages waiting for the server's answer, oldest first. */
const threadWaiters: {
  resolve: (source: string | undefined) => void;
  reject: (error: Error) => void;
}[] = [];

// The first procedure thread starts before anything else: its code is read while the process
// still has read access to the server's code, which it then drops for good; and the memory cap
// the server sets after the first frame (worker/isolation.ts) counts the thread as the
// runtime's. More threads start from the code the server sends (`procedure-threads-set`).
/** The procedure threads: procedures and HTTP handlers run there (worker/procedures.ts). */
const procedures: ProcedurePool = new ProcedurePool({
  engine: () => engine,
  send: (request) => reply(request),
  onDone: (result) => {
    // Id 0: a scheduled run, which answers no request (its failures are in the log).
    if (result.id === 0) {
      const logs = engine?.drainLogs() ?? [];
      if (logs.length > 0) {
        reply({ type: "scheduled", items: [], txOffset: engine!.txOffset, logs });
      }
      return;
    }
    reply({
      type: "procedure-done",
      result,
      items: [],
      txOffset: engine?.txOffset ?? 0,
      logs: engine?.drainLogs() ?? [],
    });
  },
  afterTransaction: () => reportUnrequested(),
  onFatal: (error) => reply({ type: "init-failed", error, logs: engine?.drainLogs() ?? [] }),
  watchdog: procedureWatchdogSlots,
  setExtraThreads: (extraThreads, wantCode) =>
    new Promise<string | undefined>((resolve, reject) => {
      threadWaiters.push({ resolve, reject });
      reply({ type: "procedure-threads", extraThreads, wantCode });
    }),
});
await procedures.started();
dropReadPermission();

// Event-loop stalls by what ran (worker/stall_recorder.ts), reported once the database serves.
const stalls = new StallRecorder(hostNow);
let serving = false;

/** Runs one event-loop task of `kind`; a stall is reported right after it. */
function timed(kind: StallKind, task: () => void): void {
  stalls.begin(kind);
  try {
    task();
  } finally {
    if (stalls.end()) reportStalls();
  }
}

function reportStalls(): void {
  const pairs = stalls.take();
  // Before `ready` (module load, recovery) a long task is the start-up, measured elsewhere.
  if (pairs === undefined || !serving || engine === undefined) return;
  reply({ type: "scheduled", items: [], txOffset: engine.txOffset, logs: [], stalls: pairs });
}

await startWatchdog();
const port = serveIsolated((data) => {
  const message = data as MainToWorker;
  timed(message?.type === "batch" ? "batch" : "other", () => receive(message));
});
const hostPostMessage = port.postMessage.bind(port);

function reply(message: WorkerToMain, transfer: Transferable[] = []): void {
  hostPostMessage(message, transfer);
}

async function init(message: InitMessage): Promise<void> {
  let sandbox;
  procedures.setTxBudget(message.reducerBudgetMs);
  const idleS = message.limits?.procedureIdleS;
  procedures.configure({
    threads: message.limits?.procedureThreads,
    queued: message.limits?.procedureQueue,
    idleMs: idleS === undefined ? undefined : idleS * 1000,
  });
  let source: string;
  let tickName: string;
  try {
    sandbox = prepareSandbox(message.bundle, {
      setTimeout: hostSetTimeout,
      monotonicMs: hostNow,
      arm: armWatchdog,
      disarm: disarmWatchdog,
    }, message.prepared);
    // Both parses (instrument, rewrite imports) are most of a start: a prepared bundle skips
    // them. It is sent back before any tenant code runs in this process, so it is ours.
    const wasm = isWasmBundle(sandbox.source);
    // Its overrun message names wasm code, not a builtin.
    if (wasm) watchdogGuardsWasm();
    source = message.prepared || wasm ? sandbox.source : rewriteImports(sandbox.source);
    tickName = sandbox.tickName;
    if (!message.prepared && message.wantPrepared) {
      reply({ type: "prepared", source, tickName: sandbox.tickName });
    }
  } catch (error) {
    reply({ type: "init-failed", error: describeError(error), logs: [] });
    return;
  }
  engine = new DatabaseEngine({
    clock: systemClock,
    budget: sandbox.budget,
    reducerBudgetMs: message.reducerBudgetMs,
    limits: message.limits,
    memoryBudgetMb: message.memoryBudgetMb,
    databaseIdentity: message.databaseIdentity,
    ownerIdentity: message.ownerIdentity,
    loadTimeoutMs: MODULE_LOAD_TIMEOUT_MS,
    readOnly: message.readOnly,
    runProcedureElsewhere: (name, args, sender, timestampMicros) => {
      const id = engine?.module.proceduresByName.get(name)?.id;
      if (!procedures.loaded || id === undefined) return false;
      procedures.call({
        kind: "procedure",
        id: 0,
        procedure: name,
        args,
        sender,
        connectionId: 0n,
        timestampMicros,
      }, id);
      return true;
    },
  });
  let migrated = false;
  try {
    armWatchdog(MODULE_LOAD_TIMEOUT_MS);
    // The module's top-level code runs under the load budget, not the 1 s ambient guard of
    // code outside any call: on a loaded machine (several databases waking at once on two
    // cores) evaluating a 250 KB bundle took over a second of wall time and failed the wake.
    sandbox.budget.start(MODULE_LOAD_TIMEOUT_MS);
    try {
      await engine.load(source, { importsRewritten: true });
    } finally {
      sandbox.budget.stop();
      disarmWatchdog();
    }
    if (message.genesisDescribe) engine.useStoredSchema(message.genesisDescribe);
    if (message.snapshot) engine.restoreSnapshot(message.snapshot, message.snapshotTxOffset ?? 0);
    if (message.durability) {
      durability = new DurabilitySink(storagePort(), engine, (step) => timed("snapshot", step));
      await durability.replay();
    }
    migrated = engine.finishRecovery(message.migrate ?? false, message.timestampMicros);
  } catch (error) {
    reply({ type: "init-failed", error: describeError(error), logs: engine.drainLogs() });
    engine = undefined;
    return;
  }
  subscriptions = new SubscriptionHost(engine, {
    budgetMs: message.reducerBudgetMs,
    ownerBudgetMs: message.limits?.ownerSqlBudgetMs ?? OWNER_SQL_BUDGET_MS_DEFAULT,
    monotonicMs: () => systemClock.monotonicMs(),
  });
  sqlHost = new SqlHost(engine, {
    budgetMs: message.reducerBudgetMs,
    ownerBudgetMs: message.limits?.ownerSqlBudgetMs ?? OWNER_SQL_BUDGET_MS_DEFAULT,
    monotonicMs: () => systemClock.monotonicMs(),
  });
  const def = engine.module.def;
  if (def.procedures.length > 0 || def.httpHandlers.length > 0) {
    try {
      // The threads load the bundle as this thread prepared it: no parse of their own.
      await procedures.load(message.bundle, engine, MODULE_LOAD_TIMEOUT_MS, { source, tickName });
    } catch (error) {
      reply({ type: "init-failed", error: describeError(error), logs: engine.drainLogs() });
      engine = undefined;
      return;
    }
  }
  // A module without procedures or HTTP handlers leaves the thread idle, its bundle not loaded:
  // ending it would close its ports, and Deno's node:worker_threads then dispatches an Event,
  // a global this process no longer has.
  engine.armAllSchedules();
  if (message.resumeSchedules) engine.resumeSchedules(message.resumeSchedules);
  if (message.runInit) {
    const result = engine.runInit(message.ownerIdentity, message.timestampMicros);
    if (result.status !== "committed") {
      reply({
        type: "init-failed",
        error: result.message ?? "init failed",
        logs: engine.drainLogs(),
      });
      engine = undefined;
      return;
    }
  }
  durability?.append(engine.drainCommitted());
  durability?.flush();
  // A migration just committed: snapshot the migrated state, so a restart starts after it
  // instead of replaying the old schema's log and the migration again.
  if (migrated) durability?.snapshotNow();
  reply({
    type: "ready",
    describe: engine.describeBytes,
    txOffset: engine.txOffset,
    logs: engine.drainLogs(),
  });
  stalls.take();
  serving = true;
  armScheduleTimer();
}

// --- schedules: one host timer for the engine's earliest pending schedule --------------------

/** Scheduled runs per timer turn, so that batches waiting behind them get their turn. */
const SCHEDULED_RUNS_PER_TURN_MAX = 256;
/** setTimeout's largest delay; a later schedule re-arms when this one fires. */
const TIMER_DELAY_MS_MAX = 2_147_483_647;
let scheduleTimer: ReturnType<typeof setTimeout> | undefined;
let scheduleTimerDueMicros = Infinity;

/** (Re)arms the one timer for the earliest pending schedule; called after every batch. */
function armScheduleTimer(): void {
  const due = engine?.nextScheduleDueMicros();
  if (due === undefined) {
    if (scheduleTimer !== undefined) hostClearTimeout(scheduleTimer);
    scheduleTimer = undefined;
    scheduleTimerDueMicros = Infinity;
    return;
  }
  if (scheduleTimer !== undefined && scheduleTimerDueMicros <= due) return;
  if (scheduleTimer !== undefined) hostClearTimeout(scheduleTimer);
  scheduleTimerDueMicros = due;
  const delayMs = Math.min(
    Math.max(0, Math.ceil((due - Number(systemClock.nowMicros())) / 1000)),
    TIMER_DELAY_MS_MAX,
  );
  scheduleTimer = hostSetTimeout(runSchedulesTimed, delayMs);
}

/** Procedure calls and HTTP requests go to the procedure thread, outside the batch order. */
function startProcedure(message: ProcedureStartMessage): void {
  const request = message.request;
  const current = engine;
  let functionId: number | undefined;
  if (request.kind === "procedure") {
    functionId = current?.module.proceduresByName.get(request.procedure)?.id;
  } else if (
    Number.isInteger(request.handlerId) && request.handlerId >= 0 &&
    request.handlerId < (current?.module.def.httpHandlers.length ?? 0)
  ) {
    functionId = request.handlerId;
  }
  if (!current || !procedures.loaded || functionId === undefined) {
    const notFound = request.kind === "procedure" ? "No such procedure" : "No such HTTP handler";
    reply({
      type: "procedure-done",
      result: request.kind === "procedure"
        ? {
          kind: "procedure",
          id: request.id,
          ok: false,
          message: notFound,
          txOffset: current?.txOffset ?? 0,
          durationMicros: 0,
        }
        : { kind: "http-handler", id: request.id, ok: false, message: notFound, txOffset: 0 },
      items: [],
      txOffset: current?.txOffset ?? 0,
      logs: [],
    });
    return;
  }
  procedures.call(request, functionId);
}

/** Reports transactions no batch asked for (a procedure's `withTx`) to the server. */
function reportUnrequested(): void {
  const current = engine;
  const live = subscriptions;
  if (!current || !live) return;
  live.beginReply();
  const items: TxUpdate[] = [];
  for (const tx of current.drainCommitted()) {
    durability?.appendOne(tx);
    items.push({ kind: "update", txOffset: tx.txOffset, deltas: live.onCommit(tx.delta) });
  }
  durability?.flush();
  const logs = current.drainLogs();
  if (items.length > 0 || logs.length > 0) {
    reply({ type: "scheduled", items, txOffset: current.txOffset, logs });
  }
  armScheduleTimer();
}

/** Read replica: applies the primary's transactions, then reports them like scheduled runs. */
function applyReplicated(message: ReplicateMessage): void {
  const current = engine;
  const live = subscriptions;
  if (!current || !live) throw new Error("database worker is not initialised");
  live.beginReply();
  forEachBatchRecordNumbered(
    message.firstTxOffset,
    message.count,
    message.records,
    (record, txOffset) => current.applyReplicated(decodeTxRecord(record), txOffset + 1),
  );
  const committed = current.drainCommitted();
  const deltas = live.onCommits(committed.map((tx) => tx.delta));
  const items: TxUpdate[] = committed.map((tx, i) => {
    durability?.appendOne(tx);
    return { kind: "update", txOffset: tx.txOffset, deltas: deltas[i] };
  });
  durability?.flush();
  reply({ type: "scheduled", items, txOffset: current.txOffset, logs: current.drainLogs() });
}

function runSchedulesTimed(): void {
  timed("schedule", runSchedules);
}

function runSchedules(): void {
  scheduleTimer = undefined;
  scheduleTimerDueMicros = Infinity;
  const current = engine;
  const live = subscriptions;
  if (!current || !live || initializing) return;
  live.beginReply();
  try {
    current.runDueSchedules(SCHEDULED_RUNS_PER_TURN_MAX);
    const items: TxUpdate[] = [];
    const committed = current.drainCommitted();
    const deltas = live.onCommits(committed.map((tx) => tx.delta));
    committed.forEach((tx, i) => {
      durability?.appendOne(tx);
      items.push({ kind: "update", txOffset: tx.txOffset, deltas: deltas[i] });
    });
    durability?.flush();
    const logs = current.drainLogs();
    if (items.length > 0 || logs.length > 0) {
      reply({ type: "scheduled", items, txOffset: current.txOffset, logs });
    }
  } catch (error) {
    reply({ type: "init-failed", error: describeError(error), logs: current.drainLogs() });
    return;
  }
  armScheduleTimer();
}

const resultPacker = new ResultPacker();

function runBatch(message: BatchMessage): void {
  const current = engine;
  const live = subscriptions;
  if (!current || !live) throw new Error("database worker is not initialised");
  live.beginReply();
  const results: BatchItem[] = [];
  const collect = (callId: number | undefined) => {
    const committed = current.drainCommitted();
    // One call: a join's delta for an earlier transaction needs the state as of that one.
    const deltas = live.onCommits(committed.map((tx) => tx.delta));
    committed.forEach((tx, i) => {
      durability?.appendOne(tx);
      results.push({ kind: "update", txOffset: tx.txOffset, callId, deltas: deltas[i] });
    });
  };
  forEachRequest(message, (request) => {
    switch (request.kind) {
      case "call": {
        const result = current.callReducer(
          request.id,
          request.reducer,
          request.args,
          request.sender,
          request.connectionId,
          request.timestampMicros,
        );
        const committed = current.drainCommitted();
        if (result.status === "committed" && committed.length === 1) {
          // The common case: one transaction. With no query delta it travels packed.
          const tx = committed[0];
          durability?.appendOne(tx);
          const deltas = live.onCommit(tx.delta);
          if (deltas.length === 0 && tx.txOffset === result.txOffset) {
            resultPacker.add(request.id, tx.txOffset, result.durationMicros, results.length);
            break;
          }
          results.push({ kind: "update", txOffset: tx.txOffset, callId: request.id, deltas });
          results.push(result);
          break;
        }
        const deltas = live.onCommits(committed.map((tx) => tx.delta));
        committed.forEach((tx, i) => {
          durability?.appendOne(tx);
          results.push({
            kind: "update",
            txOffset: tx.txOffset,
            callId: request.id,
            deltas: deltas[i],
          });
        });
        results.push(result);
        break;
      }
      case "procedure": {
        const result = current.callProcedure(
          request.id,
          request.procedure,
          request.args,
          request.sender,
          request.connectionId,
          request.timestampMicros,
        );
        collect(undefined);
        results.push(result);
        break;
      }
      case "connect": {
        const result = current.connect(
          request.id,
          request.sender,
          request.connectionId,
          request.timestampMicros,
          request.jwtPayload,
          request.resumed ?? false,
        );
        collect(undefined);
        results.push(result);
        break;
      }
      case "disconnect": {
        live.dropClient(request.connectionId);
        const result = current.disconnect(
          request.id,
          request.sender,
          request.connectionId,
          request.timestampMicros,
        );
        collect(undefined);
        results.push(result);
        break;
      }
      case "subscribe":
        results.push(live.subscribe(request));
        break;
      case "unsubscribe":
        results.push(live.unsubscribe(request));
        break;
      case "query":
        results.push(live.query(request));
        break;
      case "sql": {
        // A write commits a transaction: its update goes out before the answer, like a call's.
        const result = sqlHost!.run(request);
        collect(undefined);
        const overReply = result.rows === undefined
          ? undefined
          : live.admitResultBytes(rowsBytes(result.rows));
        results.push(
          overReply === undefined ? result : {
            kind: "sql",
            id: result.id,
            ok: false,
            error: overReply,
            rowsInserted: 0,
            rowsDeleted: 0,
            rowsUpdated: 0,
            txOffset: result.txOffset,
          },
        );
        break;
      }
      case "export":
        results.push({
          kind: "export",
          id: request.id,
          state: current.datastore.exportState(),
          txOffset: current.txOffset,
        });
        break;
    }
  });
  durability?.flush();
  reply({
    type: "batch",
    items: results,
    committed: resultPacker.finish(),
    txOffset: current.txOffset,
    logs: current.drainLogs(),
  });
  armScheduleTimer();
}
