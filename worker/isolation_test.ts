import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { spawnIsolatedWorker } from "./isolation.ts";

const ENTRY = new URL("./testdata/isolated_entry.ts", import.meta.url);

function nextMessage(port: MessagePort): Promise<unknown> {
  return new Promise((resolve) => {
    port.onmessage = (event) => resolve(event.data);
  });
}

Deno.test("an isolated worker that runs out of heap is reported and the process survives", async () => {
  const errors: { code?: string; message: string }[] = [];
  const worker = spawnIsolatedWorker(ENTRY, { heapMb: 64, onError: (e) => errors.push(e) });
  const echoed = nextMessage(worker.port);
  worker.port.postMessage({ op: "echo", value: "before" });
  assertEquals(await echoed, "before");
  worker.port.postMessage({ op: "oom" });
  assertEquals(await worker.exited, 1);
  assertEquals(errors.map((e) => e.code), ["ERR_WORKER_OUT_OF_MEMORY"]);
  // This process is still alive and can start a fresh worker.
  const next = spawnIsolatedWorker(ENTRY, { heapMb: 64 });
  const reply = nextMessage(next.port);
  next.port.postMessage({ op: "echo", value: { n: 42n } });
  assertEquals(await reply, { n: 42n });
  next.terminate();
  assertEquals(await next.exited, 1);
});

Deno.test("an isolated worker cannot read files, env, net or run commands after loading", async () => {
  const worker = spawnIsolatedWorker(ENTRY, { heapMb: 64 });
  const probed = nextMessage(worker.port);
  worker.port.postMessage({ op: "probe" });
  const result = await probed as Record<string, string>;
  for (const [name, outcome] of Object.entries(result)) {
    assert(outcome !== "allowed", `${name} was allowed inside the isolated worker`);
  }
  assertEquals(Object.keys(result).length, 7);
  // Revoking inside the worker did not touch this thread's permissions.
  assert((await Deno.readTextFile(ENTRY)).includes("serveIsolated"));
  worker.terminate();
  await worker.exited;
});

Deno.test("runaway protection works inside an isolated worker, and its heap cap still holds", async () => {
  const errors: { code?: string; message: string }[] = [];
  const worker = spawnIsolatedWorker(ENTRY, { heapMb: 64, onError: (e) => errors.push(e) });
  const stopped = nextMessage(worker.port);
  worker.port.postMessage({ op: "sandbox" });
  assertEquals(await stopped, { outcome: "BudgetExceededError", deno: "undefined" });
  worker.port.postMessage({ op: "oom" });
  assertEquals(await worker.exited, 1);
  assertEquals(errors.map((e) => e.code), ["ERR_WORKER_OUT_OF_MEMORY"]);
});
