/**
 * Relay web Worker behind worker/isolation.ts. It runs with the narrow permissions the main
 * thread gave it and starts the real entry as a `node:worker_threads` Worker, whose V8 heap is
 * capped (`resourceLimits`), which inherits those permissions, and whose permission container
 * is shared with this relay only. Messages go main <-> entry over a transferred MessagePort;
 * the relay only reports the entry's error and exit events.
 */
/// <reference lib="deno.worker" />
import { Worker as NodeWorker } from "node:worker_threads";

export type RelayRequest =
  | { type: "start"; entryUrl: string; heapMb: number; port: MessagePort }
  | { type: "terminate" };

export type RelayEvent =
  | { type: "error"; code?: string; message: string }
  | { type: "exit"; code: number };

let entry: NodeWorker | undefined;

self.onmessage = (event: MessageEvent<RelayRequest>) => {
  const request = event.data;
  if (request.type === "terminate") {
    if (entry === undefined) {
      return self.postMessage({ type: "exit", code: 0 } satisfies RelayEvent);
    }
    void entry.terminate();
    return;
  }
  entry = new NodeWorker(new URL(request.entryUrl), {
    workerData: { port: request.port },
    // A web MessagePort is transferable to a node worker in Deno (verified).
    transferList: [request.port as never],
    resourceLimits: { maxOldGenerationSizeMb: request.heapMb },
  });
  entry.on("error", (error: Error & { code?: string }) => {
    self.postMessage(
      { type: "error", code: error.code, message: error.message } satisfies RelayEvent,
    );
  });
  entry.on("exit", (code: number) => {
    self.postMessage({ type: "exit", code } satisfies RelayEvent);
  });
};
