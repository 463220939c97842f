/**
 * `deno run --unstable-worker-options -A bench/procedure_pool_bench.ts`: the procedure thread
 * pool of one database (worker/procedures.ts, `--procedure-threads`).
 *
 * Measures (1) the latency of a quick procedure (`count`: one `withTx` read) over HTTP `/call`
 * while N other procedures of the same database wait on a slow upstream, for N = 0, 1, 3, 7
 * with 8 threads (before the pool, with one thread, every quick call waited for the slow ones:
 * ≈ the upstream's delay); (2) the database process's RSS with only the first thread, and with
 * N+1 threads started and idle again, hence RSS per extra thread.
 *
 * Back of the envelope: a quick procedure is an HTTP round trip, a hop to the database process,
 * one to a thread and a transaction on the database thread: a few ms, whatever N is while
 * N < threads. An idle thread holds its own V8 isolate and a copy of the module: ~12-20 MiB.
 */
import { call, fixtureBundle, publish, startTestServer } from "../tests/support/server.ts";

const DELAY_MS = 6000;
const QUICK_CALLS = 30;

const upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async () => {
  await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
  return new Response("late");
});
const slowUrl = `http://127.0.0.1:${upstream.addr.port}/slow`;
const server = await startTestServer({
  httpAllow: [`pool=127.0.0.1:${upstream.addr.port}`],
  limits: { procedureThreads: 8 },
});

function rssMiB(): number {
  const pid = server.server.registry.resolve("pool")!.host.pid;
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

try {
  await publish(server.url, "pool", await fixtureBundle("proc_overrun"));
  await call(server.url, "pool", "count", []);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const baseRss = rssMiB();
  for (const waiting of [0, 1, 3, 7]) {
    const slow = Array.from(
      { length: waiting },
      () => call(server.url, "pool", "fetch_status", [slowUrl]),
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const latencies: number[] = [];
    for (let i = 0; i < QUICK_CALLS; i++) {
      const started = performance.now();
      const response = await call(server.url, "pool", "count", []);
      if (response.status !== 200) throw new Error(response.text);
      latencies.push(performance.now() - started);
    }
    await Promise.all(slow);
    latencies.sort((a, b) => a - b);
    const p = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))];
    console.log(
      `quick procedure while ${waiting} wait ${DELAY_MS} ms on HTTP: p50 ${
        p(0.5).toFixed(1)
      } ms, ` +
        `p99 ${p(0.99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms (n=${QUICK_CALLS})`,
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const fullRss = rssMiB();
  console.log(
    `database process RSS: ${baseRss.toFixed(1)} MiB with one thread, ${fullRss.toFixed(1)} MiB ` +
      `with 8 started and idle: ${((fullRss - baseRss) / 7).toFixed(1)} MiB per extra thread`,
  );
} finally {
  await server.close();
  await upstream.shutdown();
}
