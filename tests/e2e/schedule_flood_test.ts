/**
 * `volatile_nonatomic_schedule_immediate` in a loop used to queue without bound (6.2 GiB in 23
 * calls). The pending queue is now bounded per database and the call that overflows it fails
 * with a clear error (issue #15, "pending schedule entries").
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SCHEDULE_IMMEDIATE_PENDING_MAX } from "../../lib/limits.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { sampleRss, startWitness } from "../support/witness.ts";

const CALLS = 23;

Deno.test({
  name: "a loop of volatile_nonatomic_schedule_immediate fails clearly once the queue is full",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ reducerBudgetMs: 10_000 });
    try {
      const flood = await publish(server.url, "schedules", await fixtureBundle("hard_limits"));
      await publish(server.url, "witness", await fixtureBundle("hard_limits"));
      const rssBeforeMiB = Math.round(Deno.memoryUsage().rss / 1024 / 1024);
      const rss = sampleRss();
      const witness = startWitness(server.url, "witness", "bump", 10);
      const statuses: number[] = [];
      // Each call asks for a million runs with 256 bytes of arguments (256 MiB unbounded).
      for (let i = 0; i < CALLS; i++) {
        statuses.push(
          (await call(server.url, "schedules", "schedule_flood", [1_000_000, 256])).status,
        );
      }
      const report = await witness.stop();
      const peakMiB = rss.stop();
      console.log(
        `${CALLS} calls: statuses ${
          statuses.join(",")
        }; RSS ${rssBeforeMiB} -> peak ${peakMiB} MiB; ` +
          `witness ${report.calls} calls, ${report.failures} failed, p50 ${report.p50Ms} ms, ` +
          `p99 ${report.p99Ms} ms, max ${report.maxMs} ms`,
      );
      assert(statuses.every((status) => status === 530), `statuses ${statuses}`);
      assert(peakMiB - rssBeforeMiB < 1024, `RSS grew by ${peakMiB - rssBeforeMiB} MiB`);
      assertEquals(report.failures, 0);
      const logs = await fetch(`${server.url}/v1/database/schedules/logs?num_lines=100`, {
        headers: { authorization: `Bearer ${flood.token}` },
      });
      const text = await logs.text();
      assert(
        text.includes(
          `reducer runs are already pending for this database (limit ${SCHEDULE_IMMEDIATE_PENDING_MAX})`,
        ),
        text.slice(-2000),
      );
      // The database still serves ordinary calls.
      assertEquals((await call(server.url, "schedules", "bump", [])).status, 200);
    } finally {
      await server.close();
    }
  },
});
