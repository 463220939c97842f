/**
 * `deno run -A bench/schedule_bench.ts`: firing lateness of one-shot schedules (issue #12,
 * "Measure"), with 1,000 and then 100,000 schedules pending at once, on an otherwise idle
 * server (`main.ts start` as a child process, tests/fixtures/modules/ticks).
 *
 * Back of the envelope: a firing is two transactions (the reducer, then the row's deletion),
 * ~20-50 µs of worker time each with durability appends, so the worker keeps up with ~10,000
 * firings a second; 100,000 alarms spread over 10 s ask for that rate, so lateness should stay
 * in the low milliseconds (one fsync per drained batch plus timer granularity), with the p99
 * set by the moments the worker is busy with a large delta (the insert of 100,000 rows).
 * Lateness = the reducer's timestamp (max(due, now) at the run) minus the due time.
 */
import { call, fixtureBundle, publish, startServerProcess } from "../tests/support/server.ts";

const RUNS = [
  { pending: 1_000, spreadMs: 2_000 },
  { pending: 100_000, spreadMs: 10_000 },
];

const server = await startServerProcess();
try {
  await publish(server.url, "ticks", await fixtureBundle("ticks"));
  console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores`);
  for (const { pending, spreadMs } of RUNS) {
    const label = `bench-${pending}`;
    const startMicros = BigInt(Date.now() + 3_000) * 1000n; // after the insert itself
    const addStart = performance.now();
    const added = await call(server.url, "ticks", "add_alarms", [
      label,
      pending,
      startMicros,
      BigInt(spreadMs) * 1000n,
    ]);
    if (added.status !== 200) throw new Error(`add_alarms failed: ${added.text}`);
    const addMs = performance.now() - addStart;
    // Polling scans the fired table in the worker: rarely, so it barely disturbs the runs.
    await new Promise((resolve) => setTimeout(resolve, spreadMs + 3_000));
    const deadline = Date.now() + spreadMs + 60_000;
    for (;;) {
      const summary = (await call(server.url, "ticks", "fired_summary", [label])).json as number[];
      if (Number(summary[0]) >= pending) break;
      if (Date.now() > deadline) throw new Error(`only ${summary[0]} of ${pending} fired`);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    const [p50, p99, max] = ((await call(server.url, "ticks", "fired_lateness", [label]))
      .json as number[]).map((micros) => Number(micros) / 1000);
    console.log(
      `${pending} pending over ${spreadMs / 1000} s (inserted in ${
        addMs.toFixed(0)
      } ms): lateness p50 ${p50.toFixed(1)} ms, ` +
        `p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
    );
  }
} finally {
  await server.stop();
  await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
}
