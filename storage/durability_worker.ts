/**
 * The storage actor: one dedicated worker for the whole server. Database workers send commit
 * batches straight to it over MessagePorts; it drains everything queued, writes each
 * database's batches, fdatasyncs each touched log once, and reports the new durable offsets.
 * No timers: a flush is queued behind the messages already waiting, so a lone commit costs
 * about one fsync.
 */
import { DurabilityCore } from "./durability_core.ts";
import type {
  ActorEvent,
  ActorRequest,
  FromDatabaseMessage,
  ToDatabaseMessage,
} from "./durability_messages.ts";
import { log } from "../lib/log.ts";
import { decodeFramePayload } from "../lib/wire.ts";
import {
  denoFs,
  type FsLayer,
  parseTestFsFault,
  TEST_FS_FAULT_ENV,
  withLateSync,
  withoutSync,
  withTestFault,
} from "./fs_layer.ts";

interface WorkerScope {
  postMessage(message: ActorEvent, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ActorRequest>) => void) | null;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;

let core: DurabilityCore | undefined;
const ports = new Map<string, MessagePort>();
let durableUpdates: Array<[string, bigint, number, number, number]> = [];
/** Main-thread snapshot requests waiting for the database worker's snapshot to be written. */
const pendingSnapshotRequests = new Set<number>();

// A flush runs as its own macrotask behind the messages already waiting. Deno hands port
// messages over one macrotask at a time, so a single hop can run before the rest of a burst has
// arrived: the flush is put off by another hop while messages keep arriving (at most
// FLUSH_DEFER_ROUNDS_MAX hops, ~10-20 µs each). A lone commit costs two hops, never a timer.
const FLUSH_DEFER_ROUNDS_MAX = 64;
const flushChannel = new MessageChannel();
let flushQueued = false;
let arrivalsSinceHop = 0;
let deferRounds = 0;
flushChannel.port1.onmessage = () => {
  if (arrivalsSinceHop > 0 && deferRounds < FLUSH_DEFER_ROUNDS_MAX) {
    arrivalsSinceHop = 0;
    deferRounds++;
    flushChannel.port2.postMessage(null);
    return;
  }
  flushQueued = false;
  arrivalsSinceHop = 0;
  deferRounds = 0;
  flush();
};
function queueFlush(): void {
  arrivalsSinceHop++;
  if (flushQueued) return;
  flushQueued = true;
  flushChannel.port2.postMessage(null);
}

function flush(): void {
  core?.flush();
  if (durableUpdates.length > 0) {
    scope.postMessage({ kind: "durable", updates: durableUpdates });
    durableUpdates = [];
  }
}

function sendToDatabase(dbKey: string, message: ToDatabaseMessage): void {
  if (
    message.kind === "snapshotFailed" && message.requestId !== undefined &&
    pendingSnapshotRequests.delete(message.requestId)
  ) {
    scope.postMessage({
      kind: "reply",
      id: message.requestId,
      ok: false,
      errorName: "Error",
      message: `Snapshot of "${dbKey}" failed: ${message.message}`,
    });
  }
  const port = ports.get(dbKey);
  if (!port) return;
  if (message.kind === "replayBatch" || message.kind === "replaySnapshot") {
    port.postMessage(message, [message.bytes.buffer as ArrayBuffer]);
  } else {
    port.postMessage(message);
  }
}

function requireCore(): DurabilityCore {
  if (!core) throw new Error("Storage actor is not initialised");
  return core;
}

function handle(request: ActorRequest): unknown {
  switch (request.op) {
    case "init":
      core = new DurabilityCore(
        withTestFaultFromEnv(
          request.options.unsafeSkipSync
            ? withoutSync(denoFs)
            : request.options.unsafeLateSyncMs
            ? withLateSync(denoFs, request.options.unsafeLateSyncMs)
            : denoFs,
        ),
        request.options.dataDir,
        {
          durable: (dbKey, offset, syncMs, txCount, bytes) =>
            durableUpdates.push([dbKey, offset, syncMs, txCount, bytes]),
          failed: (dbKey, error) =>
            scope.postMessage({
              kind: "failure",
              dbKey,
              errorName: error.name,
              message: error.message,
            }),
          toDatabase: sendToDatabase,
          snapshotWritten: (dbKey, txOffset, requestId) => {
            if (requestId !== undefined && pendingSnapshotRequests.delete(requestId)) {
              scope.postMessage({ kind: "reply", id: requestId, ok: true, value: txOffset });
            }
            scope.postMessage({ kind: "snapshotWritten", dbKey, txOffset, requestId });
          },
        },
        request.options,
      );
      return undefined;
    case "open": {
      let result;
      try {
        result = requireCore().open(request.dbKey, request.limits);
      } catch (error) {
        request.port.close();
        throw error;
      }
      const { dbKey, port } = request;
      ports.set(dbKey, port);
      port.onmessage = (event: MessageEvent<FromDatabaseMessage | Uint8Array>) => {
        // A database process's frames arrive undecoded (worker/isolation.ts bridge()).
        let message: unknown = event.data;
        if (message instanceof Uint8Array) {
          try {
            message = decodeFramePayload(message);
          } catch {
            message = { kind: "undecodable" };
          }
        }
        // receive() checks the message and fails only this database on bad input.
        requireCore().receive(dbKey, message as FromDatabaseMessage);
        if (requireCore().hasPending) queueFlush();
      };
      port.onmessageerror = () => {
        requireCore().receive(dbKey, { kind: "undeliverable" } as unknown as FromDatabaseMessage);
      };
      return result;
    }
    case "close":
      requireCore().close(request.dbKey);
      ports.get(request.dbKey)?.close();
      ports.delete(request.dbKey);
      flush();
      return undefined;
    case "delete":
      requireCore().delete(request.dbKey);
      ports.get(request.dbKey)?.close();
      ports.delete(request.dbKey);
      return undefined;
    case "requestSnapshot":
      pendingSnapshotRequests.add(request.id);
      requireCore().requestSnapshot(request.dbKey, request.id);
      return NO_REPLY;
    case "stop":
      core?.closeAll();
      flush();
      for (const port of ports.values()) port.close();
      ports.clear();
      return undefined;
  }
}

const NO_REPLY = Symbol("no reply");

/** Tests only: the disk fault named by LIGHTCONE_TEST_FS_FAULT, announced loudly. */
function withTestFaultFromEnv(fs: FsLayer): FsLayer {
  const text = Deno.env.get(TEST_FS_FAULT_ENV);
  if (text === undefined || text === "") return fs;
  const fault = parseTestFsFault(text);
  log.warn(
    `TEST FAULT INJECTION ACTIVE (${TEST_FS_FAULT_ENV}=${text}): the commit log is NOT safe`,
    { fault: fault.kind },
  );
  return withTestFault(fs, fault);
}

scope.onmessage = (event) => {
  const request = event.data;
  try {
    const value = handle(request);
    if (value !== NO_REPLY) scope.postMessage({ kind: "reply", id: request.id, ok: true, value });
  } catch (error) {
    pendingSnapshotRequests.delete(request.id);
    const failure = error instanceof Error ? error : new Error(String(error));
    scope.postMessage({
      kind: "reply",
      id: request.id,
      ok: false,
      errorName: failure.name,
      message: failure.message,
    });
  }
  if (request.op === "stop") {
    flushChannel.port1.close();
    scope.close();
  }
};
