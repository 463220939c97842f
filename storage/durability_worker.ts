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
import { denoFs, type FsLayer } from "./fs_layer.ts";

/** For benchmarks: the same file system with data syncs turned into no-ops. */
function skipSync(fs: FsLayer): FsLayer {
  return {
    ...fs,
    open(path, options) {
      const file = fs.open(path, options);
      return {
        path: file.path,
        write: (bytes, position) => file.write(bytes, position),
        read: (into, position) => file.read(into, position),
        syncData: () => {},
        size: () => file.size(),
        truncate: (lengthBytes) => file.truncate(lengthBytes),
        close: () => file.close(),
      };
    },
  };
}

interface WorkerScope {
  postMessage(message: ActorEvent, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ActorRequest>) => void) | null;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;

let core: DurabilityCore | undefined;
const ports = new Map<string, MessagePort>();
let durableUpdates: Array<[string, bigint]> = [];
/** Main-thread snapshot requests waiting for the database worker's snapshot to be written. */
const pendingSnapshotRequests = new Set<number>();

// A flush runs as its own macrotask, queued behind messages that are already waiting.
const flushChannel = new MessageChannel();
let flushQueued = false;
flushChannel.port1.onmessage = () => {
  flushQueued = false;
  flush();
};
function queueFlush(): void {
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
      core = new DurabilityCore(request.options.unsafeSkipSync ? skipSync(denoFs) : denoFs, request.options.dataDir, {
        durable: (dbKey, offset) => durableUpdates.push([dbKey, offset]),
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
      }, request.options);
      return undefined;
    case "open": {
      const result = requireCore().open(request.dbKey);
      const { dbKey, port } = request;
      ports.set(dbKey, port);
      port.onmessage = (event: MessageEvent<FromDatabaseMessage>) => {
        requireCore().receive(dbKey, event.data);
        if (requireCore().hasPending) queueFlush();
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
