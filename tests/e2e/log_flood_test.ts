/**
 * A module that logs 16 MiB lines in a loop used to take the whole server down (main thread
 * "Fatal JavaScript out of memory" after 22 s, 3.9 GB of module.log). Now lines are cut to
 * 64 KiB, the log rate is bounded per database, module.log rotates, and a witness database keeps
 * answering (issue #15, "module-log bytes"). The rate here is low enough that everything the
 * limit lets through fits in one file, so the bytes on disk are all that was written and the
 * bound on them fails if the rate limit does not hold (rotation itself: log_buffer_test.ts).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import {
  LOG_MESSAGE_CHARS_MAX,
  MODULE_LOG_BURST_S,
  MODULE_LOG_FILE_BYTES_MAX,
} from "../../lib/limits.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { sampleRss, startWitness } from "../support/witness.ts";

const FLOOD_MS = 12_000;
const LOG_BYTES_PER_S = 256 * 1024;

async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

Deno.test({
  name: "a module logging 16 MiB lines in a loop is bounded; the server and a witness survive",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({
      reducerBudgetMs: 2000,
      limits: { moduleLogBytesPerS: LOG_BYTES_PER_S },
    });
    try {
      const flood = await publish(server.url, "flood", await fixtureBundle("hard_limits"));
      await publish(server.url, "witness", await fixtureBundle("hard_limits"));
      const rssBeforeMiB = Math.round(Deno.memoryUsage().rss / 1024 / 1024);
      const rss = sampleRss();
      const witness = startWitness(server.url, "witness", "bump");
      const started = performance.now();
      let calls = 0;
      const statuses = new Map<number, number>();
      // Two clients flooding at once: each call logs up to 1,000 lines of 16 MiB.
      await Promise.all([0, 1].map(async () => {
        while (performance.now() - started < FLOOD_MS) {
          const response = await call(server.url, "flood", "log_flood", [1000, 16 * 1024 * 1024]);
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          calls++;
        }
      }));
      const floodS = (performance.now() - started) / 1000;
      const report = await witness.stop();
      const peakMiB = rss.stop();
      const directory = join(server.dataDir, "databases", flood.identity);
      const current = await sizeOf(join(directory, "module.log"));
      const rotated = await sizeOf(join(directory, "module.log.1"));
      console.log(
        `${calls} flood calls in ${FLOOD_MS} ms (statuses ${JSON.stringify([...statuses])}); ` +
          `RSS ${rssBeforeMiB} -> peak ${peakMiB} MiB; module.log ${current} B + ` +
          `module.log.1 ${rotated} B (limit ${MODULE_LOG_FILE_BYTES_MAX} B each); witness ` +
          `${report.calls} calls, ${report.failures} failed, p50 ${report.p50Ms} ms, ` +
          `p99 ${report.p99Ms} ms, max ${report.maxMs} ms`,
      );
      // The rate bounds what was written: the burst plus the rate from publish to now (slack for
      // publishing and the witness's start). It stays under the file limit, so nothing rotated
      // and module.log holds every byte written.
      const writtenMax = Math.round(LOG_BYTES_PER_S * (MODULE_LOG_BURST_S + floodS + 10));
      assert(
        writtenMax < MODULE_LOG_FILE_BYTES_MAX,
        `bound ${writtenMax} B is over the file limit`,
      );
      assertEquals(rotated, 0, `module.log rotated: more than ${writtenMax} B were written`);
      assert(current <= writtenMax, `module.log is ${current} B, over the rate's ${writtenMax} B`);
      // The flood did log: at least half the burst got through.
      const writtenMin = LOG_BYTES_PER_S * MODULE_LOG_BURST_S / 2;
      assert(current >= writtenMin, `module.log is ${current} B, under ${writtenMin} B`);
      // Bounded, with room for a loaded machine's lazy GC (main died at ~4 GiB of heap).
      assert(peakMiB - rssBeforeMiB < 1536, `RSS grew by ${peakMiB - rssBeforeMiB} MiB`);
      assertEquals(report.failures, 0);

      // The server and the flooding database still answer; the log says what was dropped.
      assertEquals((await call(server.url, "flood", "bump", [])).status, 200);
      const tail = await fetch(`${server.url}/v1/database/flood/logs?num_lines=200`, {
        headers: { authorization: `Bearer ${flood.token}` },
      });
      const lines = (await tail.text()).trim().split("\n").map((line) => JSON.parse(line));
      assert(lines.some((line) => /^\d+ log lines dropped/.test(line.message)));
      const cut = lines.find((line) => line.message.startsWith("xxxx"));
      assert(cut && cut.message.length <= LOG_MESSAGE_CHARS_MAX, "a cut flood line is kept");
      assert(/\[16\d+ characters truncated\]$/.test(cut.message), cut.message.slice(-60));
    } finally {
      await server.close();
    }
  },
});
