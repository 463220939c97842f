/**
 * The red team's attacks on database isolation (issue #15), each against a real server with a
 * witness database called every 200 ms. Numbers are printed: RSS of the attacked database's
 * process, witness latency, how long a stuck process kept its CPU.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { GLOBAL_ALLOW_LIST, RUNTIME_REACHABLE } from "../../worker/sandbox_globals.ts";
import { cpuTicks, databaseProcesses, statusKb } from "../support/proc.ts";
import { waitUntil } from "../support/wait.ts";

/**
 * Well under what the 8M-element sort takes (~2.3 s on an idle core here: at 2 s a machine 15 %
 * faster would let it finish and commit; at 5 s it did here).
 */
const BUDGET_MS = 1000;
/** The memory step's budget (its own server): calls there must fail on memory, not time. */
const HOARD_BUDGET_MS = 30_000;
const MEMORY_MB = 512;

/** Calls the witness every 200 ms until stopped; returns its latencies. */
function witness(url: string): { stop(): Promise<number[]> } {
  const latencies: number[] = [];
  let running = true;
  const loop = (async () => {
    let i = 0;
    while (running) {
      const started = performance.now();
      const response = await call(url, "witness", "transfer", [i % 100, (i + 1) % 100, 1]);
      latencies.push(performance.now() - started);
      assertEquals(response.status, 200, response.text);
      i++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return latencies;
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

async function count(url: string, database: string): Promise<bigint> {
  const response = await call(url, database, "count", []);
  assertEquals(response.status, 200, response.text);
  return BigInt(response.json as number | bigint);
}

/**
 * Whether `pid` is gone, or idle (under 200 ms of CPU in one second) within 5 s of a call being
 * answered: rolling back an 8M-element sort leaves the collector a second or two of clean-up (900
 * ms of CPU in the second second was seen on CI), which ends; a call still running does not.
 */
async function cpuAfter(pid: number): Promise<string> {
  let last = "";
  for (let second = 0; second < 5; second++) {
    const first = cpuTicks(pid);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const next = cpuTicks(pid);
    if (first === undefined || next === undefined) return "was gone";
    if (next - first < 20) return "was idle";
    last = `used ${(next - first) * 10} ms of CPU in second ${second + 1}`;
  }
  return `${last}: still busy after 5 s`;
}

/** Waits until `pid` is gone; returns how long it took. */
async function gone(pid: number, limitMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      return performance.now() - started;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Infinity;
}

Deno.test({
  name: "isolation: hostile modules harm only themselves",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer({
      reducerBudgetMs: BUDGET_MS,
      databaseMemoryMb: MEMORY_MB,
    });
    try {
      await publish(server.url, "witness", await fixtureBundle("bank"));
      assertEquals((await call(server.url, "witness", "seed", [0, 100, 1000])).status, 200);
      const evil = await publish(server.url, "evil", await fixtureBundle("isolation"));
      // The process that serves "evil" now, asked of the registry: a scan for new child processes
      // could pick another server's process still winding down on a loaded machine.
      const evilPid = (): number | undefined => {
        try {
          return server.server.registry.resolve("evil")?.host.pid;
        } catch {
          return undefined; // restarting
        }
      };

      await t.step("the global object is exactly the allow-list", async () => {
        const response = await call(server.url, "evil", "globals", []);
        assertEquals(response.status, 200, response.text);
        const seen = response.json as string[];
        // The instrumentation's two random names, and what the bundle's own banner defines.
        const own = seen.filter((name) => /^__lc_tick_[0-9a-f]+(_import)?$/.test(name));
        assertEquals(own.length, 2, seen.join(" "));
        const unexpected = seen.filter((name) =>
          !GLOBAL_ALLOW_LIST.includes(name) && !RUNTIME_REACHABLE.includes(name) &&
          !own.includes(name) &&
          !["global", "window"].includes(name)
        );
        console.log(`${seen.length} globals: ${seen.join(" ")}`);
        assertEquals(unexpected, []);
        for (const name of ["require", "process", "caches", "BroadcastChannel", "Worker"]) {
          assert(!seen.includes(name), name);
        }
      });

      await t.step("require, process, caches, BroadcastChannel, workers: all absent", async () => {
        const response = await call(server.url, "evil", "hatches", []);
        assertEquals(response.status, 200, response.text);
        const lines = response.json as string[];
        console.log(lines.join("\n"));
        assertEquals(lines.length, 14);
        for (const line of lines) assert(/: denied: /.test(line), line);
      });

      await t.step("an unhandled rejection in tenant code does not stop the database", async () => {
        const pid = evilPid();
        assertEquals((await call(server.url, "evil", "reject_later", [])).status, 200);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assertEquals((await call(server.url, "evil", "touch", [])).status, 200);
        assertEquals(evilPid(), pid, "the same process still serves");
      });

      await t.step("a 50 MB error message is cut, and the database carries on", async () => {
        const pid = evilPid();
        const response = await call(server.url, "evil", "huge_error", []);
        console.log(`huge error: ${response.status}, ${response.text.length} characters`);
        assert(response.status !== 200);
        assert(response.text.length < 200_000, `${response.text.length} characters`);
        assertEquals((await call(server.url, "evil", "touch", [])).status, 200);
        assertEquals(evilPid(), pid, "the same process still serves");
      });

      await t.step("ArrayBuffers kept at module level stop at the memory budget", async () => {
        // A server of its own with a budget no loaded machine outlasts: each call writes 256 MiB
        // and must fail on memory, never on time (the main server's budget is kept short for
        // the sort below).
        const roomy = await startTestServer({
          reducerBudgetMs: HOARD_BUDGET_MS,
          databaseMemoryMb: MEMORY_MB,
        });
        try {
          await publish(roomy.url, "witness", await fixtureBundle("bank"));
          assertEquals((await call(roomy.url, "witness", "seed", [0, 100, 1000])).status, 200);
          const hoarder = await publish(roomy.url, "hoarder", await fixtureBundle("isolation"));
          const watch = witness(roomy.url);
          const outcomes: string[] = [];
          let peak = 0;
          for (let i = 0; i < 23; i++) {
            const response = await call(roomy.url, "hoarder", "hoard_buffers", [4]);
            outcomes.push(response.status === 200 ? "ok" : response.text.slice(0, 120));
            for (const pid of databaseProcesses()) {
              peak = Math.max(peak, (statusKb(pid, "VmRSS") ?? 0) / 1024);
            }
          }
          const latencies = await watch.stop();
          console.log(
            `23 calls x 4 x 64 MiB: ${outcomes.filter((o) => o === "ok").length} ok; ` +
              `first failure: ${outcomes.find((o) => o !== "ok")}; peak database RSS ${
                peak.toFixed(0)
              } MiB (budget ${MEMORY_MB} MiB); witness p50 ${
                percentile(latencies, 0.5).toFixed(1)
              } ms, ` +
              `p99 ${percentile(latencies, 0.99).toFixed(1)} ms over ${latencies.length} calls`,
          );
          const ok = outcomes.filter((o) => o === "ok").length;
          assert(ok <= MEMORY_MB / 256, outcomes.join("\n"));
          for (const outcome of outcomes.slice(ok)) {
            assert(
              /ran out of memory: the database's memory budget of 512 MiB/.test(outcome),
              outcome,
            );
          }
          assert(peak < MEMORY_MB + 256, `peak RSS ${peak} MiB`);
          // Failed calls committed nothing.
          assertEquals(await count(roomy.url, "hoarder"), BigInt(ok));
          const deleted = await fetch(`${roomy.url}/v1/database/hoarder`, {
            method: "DELETE",
            headers: { authorization: `Bearer ${hoarder.token}` },
          });
          await deleted.body?.cancel();
          assertEquals(deleted.status, 200);
        } finally {
          await roomy.close();
        }
      });

      for (
        const [name, reducer, arg] of [["sort", "big_sort", 8_000_000], [
          "regexp",
          "regex_bomb",
          40,
        ]] as const
      ) {
        await t.step(
          `a ${name} builtin past the budget commits nothing and its CPU comes back`,
          async () => {
            const countBefore = await count(server.url, "evil");
            const pid = evilPid();
            assert(pid !== undefined, "the database process");
            const watch = witness(server.url);
            const started = performance.now();
            const response = await call(server.url, "evil", reducer, [arg]);
            const answeredMs = performance.now() - started;
            const cpu = await cpuAfter(pid);
            const latencies = await watch.stop();
            console.log(
              `${name}: answered ${response.status} after ${answeredMs.toFixed(0)} ms ` +
                `(budget ${BUDGET_MS} ms): ${response.text.slice(0, 200)}; then the old ` +
                `process ${cpu}; witness p99 ${percentile(latencies, 0.99).toFixed(1)} ms`,
            );
            assert(response.status !== 200, response.text);
            assert(/budget/.test(response.text), response.text);
            // Either the call ended (rolled back) or its process was killed: no CPU left behind.
            assert(cpu === "was gone" || cpu === "was idle", cpu);
            // The database restarted from its log and serves again, without the failed call.
            let after: bigint | undefined;
            // Up to 60 s: a restart takes ~0.5 s here, several seconds on a loaded machine.
            for (let i = 0; i < 600 && after === undefined; i++) {
              const r = await call(server.url, "evil", "count", []);
              if (r.status === 200) after = BigInt(r.json as number | bigint);
              else await new Promise((resolve) => setTimeout(resolve, 100));
            }
            assertEquals(after, countBefore);
          },
        );
      }

      await t.step("DELETE stops a database stuck in a builtin at once", async () => {
        const pid = evilPid();
        assert(pid !== undefined, "the database process");
        const ticksBefore = cpuTicks(pid) ?? 0;
        const stuck = call(server.url, "evil", "regex_bomb", [40]);
        // Wait until the process is busy in the call (50 ms of its CPU; it was idle), not for a
        // fixed time: a DELETE that overtook the call on a loaded machine would prove nothing.
        await waitUntil(() => {
          const ticks = cpuTicks(pid);
          return ticks === undefined || ticks - ticksBefore >= 5;
        }, "the regex bomb to run");
        const started = performance.now();
        const deleted = await fetch(`${server.url}/v1/database/evil`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${evil.token}` },
        });
        await deleted.body?.cancel();
        assertEquals(deleted.status, 200);
        const goneMs = await gone(pid, 10_000);
        console.log(
          `DELETE answered; the stuck process was gone ${goneMs.toFixed(0)} ms after it was sent (${
            (performance.now() - started).toFixed(0)
          } ms)`,
        );
        // Loose (a loaded CI machine, DELETE may wait behind a restart); the unit test in
        // worker/isolation_test.ts times terminate() itself.
        assert(goneMs < 10_000, `${goneMs} ms`);
        const response = await stuck;
        assert(response.status !== 200, response.text);
        assertEquals((await call(server.url, "witness", "transfer", [1, 2, 1])).status, 200);
      });
    } finally {
      await server.close();
    }
  },
});
