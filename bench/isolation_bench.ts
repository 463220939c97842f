/**
 * What a database process costs: RSS of an idle database (the chat fixture), time to publish
 * one (probe + start), and time from a crash (SIGKILL of its process) until it answers again.
 *
 *   deno run -A bench/isolation_bench.ts [--databases 10]
 */
import { parseArgs } from "node:util";
import { call, fixtureBundle, publish, startTestServer } from "../tests/support/server.ts";
import { databaseProcesses, statusKb } from "../tests/support/proc.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { databases: { type: "string", default: "10" } },
});
const count = Number(values.databases);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const server = await startTestServer();
try {
  const bundle = await fixtureBundle("chat");
  const publishMs: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await publish(server.url, `chat${i}`, bundle);
    publishMs.push(performance.now() - started);
    await call(server.url, `chat${i}`, "send_message", [`hello ${i}`]);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const pids = databaseProcesses();
  const rss = pids.map((pid) => (statusKb(pid, "VmRSS") ?? 0) / 1024);
  const restartMs: number[] = [];
  for (let i = 0; i < Math.min(count, 3); i++) {
    const before = new Set(databaseProcesses());
    const victim = [...before][0];
    const started = performance.now();
    Deno.kill(victim, "SIGKILL");
    // Find which database it was: the one whose call fails, then wait until all answer.
    for (;;) {
      let all = true;
      for (let d = 0; d < count; d++) {
        const response = await call(server.url, `chat${d}`, "send_message", ["ping"]);
        if (response.status !== 200) all = false;
      }
      if (all && !databaseProcesses().includes(victim)) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    restartMs.push(performance.now() - started);
  }
  const report = {
    databases: pids.length,
    idleRssMiB: { median: median(rss).toFixed(1), max: Math.max(...rss).toFixed(1) },
    publishMs: { median: median(publishMs).toFixed(0), max: Math.max(...publishMs).toFixed(0) },
    restartAfterKillMs: restartMs.map((ms) => ms.toFixed(0)),
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  await server.close();
}
