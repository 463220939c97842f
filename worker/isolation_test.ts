/**
 * One OS process per database (worker/isolation.ts): no permissions, a memory budget that
 * covers ArrayBuffers, and a watchdog that stops a call stuck inside a builtin.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import {
  encodeFrame,
  FrameReader,
  type IsolatedWorker,
  isolationCapabilities,
  spawnIsolatedWorker,
  WATCHDOG_GRACE_MS,
} from "./isolation.ts";

import { cpuTicks, statusKb } from "../tests/support/proc.ts";

const ENTRY = new URL("./testdata/isolated_entry.ts", import.meta.url);

function nextMessage(worker: IsolatedWorker): Promise<unknown> {
  return new Promise((resolve) => {
    worker.port.onmessage = (event) => resolve(event.data);
  });
}

Deno.test("frames survive any chunking and oversized frames are refused before allocation", () => {
  const messages = [{ a: 1n, b: new Uint8Array([1, 2, 3]) }, "x".repeat(70_000), [null, 2.5]];
  const bytes = new Uint8Array(
    messages.map((m, i) => encodeFrame(i % 2, m)).flatMap((f) => [...f]),
  );
  for (const step of [1, 3, 7, 4096, bytes.length]) {
    const got: [number, unknown][] = [];
    const reader = new FrameReader(
      1 << 20,
      (channel, payload) => got.push([channel, payload.length]),
    );
    for (let at = 0; at < bytes.length; at += step) reader.push(bytes.subarray(at, at + step));
    assertEquals(got.map(([channel]) => channel), [0, 1, 0]);
  }
  const reader = new FrameReader(100, () => {});
  throws(() => reader.push(encodeFrame(0, "y".repeat(200))), /exceeds the 100-byte cap/);
});

Deno.test("a database process that runs out of heap ends alone; the server process carries on", async () => {
  const errors: string[] = [];
  const worker = spawnIsolatedWorker(ENTRY, { memoryMb: 64, onError: (e) => errors.push(e.code) });
  const echoed = nextMessage(worker);
  worker.port.postMessage({ op: "echo", value: { n: 42n, bytes: new Uint8Array([7]) } });
  assertEquals(await echoed, { n: 42n, bytes: new Uint8Array([7]) });
  worker.port.postMessage({ op: "heap" });
  const code = await worker.exited;
  assert(code !== 0, `exit code ${code}`);
  assertEquals(errors, ["OUT_OF_MEMORY"]);
  const next = spawnIsolatedWorker(ENTRY, { memoryMb: 64 });
  const reply = nextMessage(next);
  next.port.postMessage({ op: "echo", value: "still here" });
  assertEquals(await reply, "still here");
  next.terminate();
  await next.exited;
});

Deno.test("ArrayBuffers count against the database's memory budget", async () => {
  if (!isolationCapabilities().memoryLimit) {
    console.warn("SKIPPED: prlimit is not available, ArrayBuffers are not capped on this machine");
    return;
  }
  const worker = spawnIsolatedWorker(ENTRY, { memoryMb: 256 });
  const result = nextMessage(worker);
  worker.port.postMessage({ op: "buffers" });
  // A process that dies without answering fails here with its exit code, instead of leaving
  // the test with nothing to wait for ("Promise resolution is still pending").
  const outcome = await Promise.race([
    result,
    worker.exited.then((code) => {
      throw new Error(`the database process exited (${code}) without answering`);
    }),
  ]) as { kept: number; error: string };
  const rss = statusKb(worker.pid, "VmRSS");
  console.log(
    `kept ${outcome.kept} x 64 MiB under a 256 MiB budget; then ${outcome.error}; RSS ${rss} kB`,
  );
  assert(outcome.kept <= 4, `kept ${outcome.kept} buffers of 64 MiB`);
  assert(/RangeError/.test(outcome.error), outcome.error);
  assert(rss !== undefined && rss < 600 * 1024, `RSS ${rss} kB`);
  worker.terminate();
  await worker.exited;
});

Deno.test("a database process can read no files, env, net, or run commands", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      conn.close();
    }
  })();
  const worker = spawnIsolatedWorker(ENTRY, { memoryMb: 64 });
  const probed = nextMessage(worker);
  worker.port.postMessage({ op: "probe", value: (listener.addr as Deno.NetAddr).port });
  const result = await probed as Record<string, string>;
  for (const [name, outcome] of Object.entries(result)) {
    assert(outcome !== "allowed", `${name} was allowed inside the database process`);
  }
  assertEquals(Object.keys(result).length, 8);
  assertEquals(result.requestSocket, "NotCapable", "requests come over a socket, then unusable");
  listener.close();
  await accepting.catch(() => {});
  assertEquals(connections, 0, "the process reached the test's listener");
  worker.terminate();
  await worker.exited;
});

Deno.test("a call stuck inside a builtin is stopped by the watchdog and its CPU comes back", async () => {
  const errors: { code: string; message: string }[] = [];
  const worker = spawnIsolatedWorker(ENTRY, { memoryMb: 512, onError: (e) => errors.push(e) });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const started = performance.now();
  worker.port.postMessage({ op: "stuck-sort", budgetMs: 200 });
  const code = await worker.exited;
  const stoppedAfterMs = performance.now() - started;
  console.log(
    `budget 200 ms: process stopped after ${stoppedAfterMs.toFixed(0)} ms (exit ${code}); ` +
      `${errors[0]?.message}`,
  );
  assertEquals(errors.map((e) => e.code), ["OVERRUN"]);
  assert(/time budget of 200 ms/.test(errors[0].message), errors[0].message);
  // Loose bound (a loaded CI machine): the sort alone would run for minutes.
  assert(stoppedAfterMs < 200 + WATCHDOG_GRACE_MS + 10_000, `${stoppedAfterMs} ms`);
  assertEquals(cpuTicks(worker.pid), undefined, "the process is gone");
});

Deno.test("terminate() stops a process stuck in a builtin at once", async () => {
  const worker = spawnIsolatedWorker(ENTRY, { memoryMb: 512 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  worker.port.postMessage({ op: "stuck-sort", budgetMs: 600_000 });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const before = cpuTicks(worker.pid);
  assert(before !== undefined && before > 0, "the process is busy");
  const started = performance.now();
  worker.terminate();
  await worker.exited;
  console.log(`terminated after ${(performance.now() - started).toFixed(0)} ms`);
  assertEquals(cpuTicks(worker.pid), undefined, "the process is gone");
});

Deno.test("memory-cap updates asked for while one waits share it: a flood of them runs prlimit once", async () => {
  if (!isolationCapabilities().memoryLimit) {
    console.error("prlimit is not available here: the memory cap (and this test) does not apply");
    return;
  }
  const worker = spawnIsolatedWorker(ENTRY, { memoryMb: 64 });
  try {
    // The first frame is held until the first cap is set.
    const echoed = nextMessage(worker);
    worker.port.postMessage({ op: "echo", value: 1 });
    assertEquals(await echoed, 1);
    assertEquals(worker.memoryLimitUpdates, 1);
    // What an untrusted process asking for extra procedure threads in a loop makes the server
    // do: each request used to queue its own `prlimit` process.
    const requests = Array.from({ length: 500 }, (_, i) => worker.setExtraThreads(i % 2));
    await Promise.all(requests);
    const runs = worker.memoryLimitUpdates - 1;
    console.log(`prlimit runs for 500 requests: ${runs}`);
    assert(runs >= 1 && runs <= 2, `${runs} prlimit runs`);
    // A request after the flood is its own run again.
    await worker.setExtraThreads(0);
    assertEquals(worker.memoryLimitUpdates, 1 + runs + 1);
  } finally {
    worker.terminate();
    await worker.exited;
  }
});
