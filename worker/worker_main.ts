/**
 * Entry point of a database worker: the trusted host script. It runs with no
 * permissions, loads the tenant bundle through module_loader.ts, and serves
 * batches of requests from the main thread one at a time.
 */
/// <reference lib="deno.worker" />
import { systemClock } from "../lib/clock.ts";
import { DatabaseEngine } from "./engine.ts";
import { describeError } from "./module_loader.ts";
import type {
  BatchItem,
  BatchMessage,
  InitMessage,
  MainToWorker,
  WorkerToMain,
} from "./messages.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { prepareSandbox } from "./sandbox.ts";
import { DurabilitySink } from "./durability_sink.ts";

let engine: DatabaseEngine | undefined;
let subscriptions: SubscriptionHost | undefined;
let durability: DurabilitySink | undefined;
let queue: Promise<void> = Promise.resolve();

// Host references, captured before the sandbox removes or locks globals.
const hostPostMessage = self.postMessage.bind(self);
const hostSetTimeout = setTimeout;
const hostPerformance = performance;
const hostNow = () => hostPerformance.now();
// A tenant promise chain stopped by the budget must not close the worker.
self.addEventListener("unhandledrejection", (event) => event.preventDefault());

function reply(message: WorkerToMain, transfer: Transferable[] = []): void {
  hostPostMessage(message, transfer);
}

self.onmessage = (event: MessageEvent<MainToWorker>) => {
  const message = event.data;
  // Requests are handled strictly one message at a time, in arrival order.
  queue = queue.then(() => handle(message)).catch((error) => {
    reply({ type: "init-failed", error: describeError(error), logs: engine?.drainLogs() ?? [] });
  });
};

async function handle(message: MainToWorker): Promise<void> {
  if (message.type === "init") return await init(message);
  if (message.type === "batch") return runBatch(message);
}

async function init(message: InitMessage): Promise<void> {
  let sandbox;
  try {
    sandbox = prepareSandbox(message.bundle, { setTimeout: hostSetTimeout, monotonicMs: hostNow });
  } catch (error) {
    reply({ type: "init-failed", error: describeError(error), logs: [] });
    return;
  }
  engine = new DatabaseEngine({
    clock: systemClock,
    budget: sandbox.budget,
    reducerBudgetMs: message.reducerBudgetMs,
    databaseIdentity: message.databaseIdentity,
    loadTimeoutMs: 30_000,
  });
  try {
    await engine.load(sandbox.source, {
      snapshot: message.snapshot,
      txOffset: message.snapshotTxOffset ?? 0,
      replay: (message.replay ?? []).map((record) => DurabilitySink.decodeDelta(record)),
    });
  } catch (error) {
    reply({ type: "init-failed", error: describeError(error), logs: engine.drainLogs() });
    engine = undefined;
    return;
  }
  subscriptions = new SubscriptionHost(engine);
  durability = message.durabilityPort ? new DurabilitySink(message.durabilityPort) : undefined;
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
  const committed = engine.drainCommitted();
  durability?.append(committed);
  reply({
    type: "ready",
    describe: engine.describeBytes,
    txOffset: engine.txOffset,
    logs: engine.drainLogs(),
  });
}

function runBatch(message: BatchMessage): void {
  const current = engine;
  if (!current || !subscriptions) throw new Error("database worker is not initialised");
  const results: BatchItem[] = [];
  const collect = (callId: number | undefined) => {
    for (const tx of current.drainCommitted()) {
      durability?.append([tx]);
      const deltas = subscriptions!.onCommit(tx.delta);
      results.push({ kind: "update", txOffset: tx.txOffset, callId, deltas });
    }
  };
  for (const request of message.requests) {
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
        collect(request.id);
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
        );
        collect(undefined);
        results.push(result);
        break;
      }
      case "disconnect": {
        subscriptions.dropClient(request.connectionId);
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
        results.push(subscriptions.subscribe(request));
        break;
      case "unsubscribe":
        results.push(subscriptions.unsubscribe(request));
        break;
      case "query":
        results.push(subscriptions.query(request));
        break;
      case "export":
        results.push({
          kind: "export",
          id: request.id,
          state: current.datastore.exportState(),
          txOffset: current.txOffset,
        });
        break;
    }
  }
  durability?.flush();
  reply({ type: "batch", items: results, logs: current.drainLogs() });
}
