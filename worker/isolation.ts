/**
 * Spawning a database worker with a heap cap (measured recipe, see the report in
 * worker/isolation_test.ts):
 *
 *   main thread --web Worker, narrow permissions--> relay (worker/_isolation_relay.ts)
 *               --node:worker_threads Worker + resourceLimits--> entry
 *   main thread <------------- transferred MessagePort, one hop -------------> entry
 *
 * - A web Worker has no heap limit: one that runs out of heap kills the whole process.
 *   A node:worker_threads Worker with `resourceLimits.maxOldGenerationSizeMb` stops alone and
 *   reports ERR_WORKER_OUT_OF_MEMORY, then exit code 1.
 * - Creating that node worker straight from the main thread is no good: it shares the main
 *   thread's permission container, so `Deno.permissions.revokeSync` inside it revoked the main
 *   thread's permissions too (measured). Behind a relay web Worker it shares the relay's only.
 * - The relay grants `read` on the code directories only (the entry's modules are loaded with
 *   the worker's permissions); the entry calls dropLoadPermissions() once loaded, after which
 *   file reads, including static `import ... with { type: "text" }` of file: URLs inside blob
 *   modules, are denied (measured).
 * - Deno 2.9.6 does not report an out-of-memory that happens inside a message handler: the
 *   thread dies and no error/exit event arrives. serveIsolated() runs each message in a
 *   setImmediate callback, where the error is reported (measured).
 * - terminate() cannot stop a thread stuck in a loop (Deno bug); runaway CPU is handled by
 *   worker/instrument.ts + worker/budget.ts, not here.
 */
import { workerData } from "node:worker_threads";
import type { RelayEvent, RelayRequest } from "./_isolation_relay.ts";

export interface IsolatedWorkerOptions {
  /** Cap of the entry's V8 old generation (lib/limits.ts WORKER_HEAP_MB_DEFAULT). */
  heapMb: number;
  /** Paths the entry may read while its modules load; default: this repository. */
  readPaths?: string[];
  /** Called when the entry fails, e.g. code "ERR_WORKER_OUT_OF_MEMORY". */
  onError?: (error: { code?: string; message: string }) => void;
}

export interface IsolatedWorker {
  /** Talks to the entry directly; the entry gets the other end from serveIsolated(). */
  readonly port: MessagePort;
  /** Resolves with the entry's exit code (1 after an out-of-memory). */
  readonly exited: Promise<number>;
  /** Asks the entry to stop; `exited` resolves once it has. */
  terminate(): void;
}

const REPO_ROOT = new URL("..", import.meta.url).pathname;

/** Starts `entryUrl` as a heap-capped worker with no env/net/run/write/ffi/sys permissions. */
export function spawnIsolatedWorker(
  entryUrl: string | URL,
  options: IsolatedWorkerOptions,
): IsolatedWorker {
  if (!(options.heapMb >= 8)) {
    throw new RangeError(`Worker heap of "${options.heapMb}" MB is below 8 MB`);
  }
  const relay = new Worker(new URL("./_isolation_relay.ts", import.meta.url).href, {
    type: "module",
    deno: {
      permissions: {
        read: options.readPaths ?? [REPO_ROOT],
        write: false,
        net: false,
        env: false,
        run: false,
        ffi: false,
        sys: false,
        import: false,
      },
    },
  });
  const channel = new MessageChannel();
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => resolveExit = resolve);
  relay.onmessage = (event: MessageEvent<RelayEvent>) => {
    const message = event.data;
    if (message.type === "error") {
      options.onError?.({ code: message.code, message: message.message });
    } else {
      resolveExit(message.code);
      relay.terminate();
      channel.port1.close();
    }
  };
  relay.onerror = (event) => {
    event.preventDefault();
    options.onError?.({ message: event.message });
    resolveExit(1);
    relay.terminate();
  };
  const start: RelayRequest = {
    type: "start",
    entryUrl: new URL(entryUrl).href,
    heapMb: options.heapMb,
    port: channel.port2,
  };
  relay.postMessage(start, [channel.port2]);
  return {
    port: channel.port1,
    exited,
    terminate: () => relay.postMessage({ type: "terminate" } satisfies RelayRequest),
  };
}

/**
 * For the entry module: returns its port to the main thread and runs `handle` for each message
 * in its own setImmediate callback, so that running out of heap is reported.
 */
export function serveIsolated(handle: (data: unknown, port: MessagePort) => void): MessagePort {
  const port = (workerData as { port?: MessagePort } | null)?.port;
  if (port === undefined) throw new Error("serveIsolated() must run inside spawnIsolatedWorker()");
  // Captured now: installSandboxGlobals() later deletes globals the node polyfills rely on.
  const immediate = setImmediate;
  port.onmessage = (event: MessageEvent) => {
    immediate(() => handle(event.data, port));
  };
  return port;
}

/** For the entry module, once its code is loaded: gives up every permission, read included. */
export function dropLoadPermissions(): void {
  const names = ["read", "write", "net", "env", "run", "ffi", "sys", "import"] as const;
  for (const name of names) Deno.permissions.revokeSync({ name });
}
