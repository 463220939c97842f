/**
 * How long a database process takes to start (issue #14 "Restart": goal ≤ 150 ms): the time
 * `DatabaseHost.start` takes until the database answers, for the chat fixture, three ways:
 * cold (the bundle is instrumented in the process, as at first publish), with the prepared
 * bundle an earlier start produced (as a wake or restart does), and with the prepared bundle
 * plus a warm spare process (`--warm-spare`). Starts are sequential; each database is stopped
 * before the next start. Prints p50/p99/mean/min/max per mode as JSON.
 *
 *   deno run --unstable-worker-options -A bench/startup_bench.ts [--starts 30] [--spare-wait-ms 1500]
 */
import { parseArgs } from "node:util";
import { DatabaseHost } from "../worker/host.ts";
import { setWarmSpare } from "../worker/isolation.ts";
import type { PreparedModule } from "../worker/messages.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    starts: { type: "string", default: "30" },
    "spare-wait-ms": { type: "string", default: "1500" },
    module: { type: "string", default: "chat" },
  },
});
const starts = Number(values.starts);
const spareWaitMs = Number(values["spare-wait-ms"]);

const bundle = await fixtureBundle(values.module!);
let prepared: PreparedModule | undefined;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

async function startOnce(usePrepared: boolean): Promise<number> {
  const started = performance.now();
  const host = await DatabaseHost.start({
    bundle,
    databaseIdentity: 1n,
    ownerIdentity: 1n,
    runInit: true,
    reducerBudgetMs: 10_000,
    prepared: usePrepared ? prepared : undefined,
    onPrepared: usePrepared ? undefined : (module) => (prepared = module),
  });
  const elapsed = performance.now() - started;
  host.stop();
  await host.exited;
  return elapsed;
}

async function run(mode: "cold" | "prepared" | "warm-spare"): Promise<Record<string, unknown>> {
  setWarmSpare(mode === "warm-spare");
  const times: number[] = [];
  // One start first, not counted: fills deno's module cache (and the spare).
  await startOnce(mode !== "cold");
  for (let i = 0; i < starts; i++) {
    // Let the previous process exit and, with a spare, the replacement spare finish starting.
    await sleep(mode === "warm-spare" ? spareWaitMs : 300);
    times.push(await startOnce(mode !== "cold"));
  }
  setWarmSpare(false);
  const sorted = [...times].sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    mode,
    starts: times.length,
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    meanMs: round(times.reduce((a, b) => a + b, 0) / times.length),
    minMs: round(sorted[0]),
    maxMs: round(sorted[sorted.length - 1]),
  };
}

const loadBefore = Deno.loadavg();
const results = [];
// Cold first: it produces the prepared bundle the other two modes use.
results.push(await run("cold"));
if (!prepared) throw new Error("the cold start did not hand back a prepared bundle");
results.push(await run("prepared"));
results.push(await run("warm-spare"));
console.log(JSON.stringify(
  {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    module: values.module,
    bundleBytes: bundle.length,
    loadBefore,
    loadAfter: Deno.loadavg(),
    results,
  },
  null,
  2,
));
