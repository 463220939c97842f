/**
 * Rows of 16 MiB inserted in a loop used to grow the commit log without bound (5.1 GB after 40
 * calls, witness p99 784 ms). A transaction over the size limit now fails and commits nothing,
 * and one over the database's commit-log rate fails with a clear error (issue #15,
 * "commit-log growth rate").
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { join } from "node:path";
import { COMMIT_LOG_BURST_S, LOG_PREALLOCATE_BYTES } from "../../lib/limits.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { sampleRss, startWitness } from "../support/witness.ts";

const MiB = 1024 * 1024;
const RATE_BYTES_PER_S = 2 * MiB;
const TX_MAX_BYTES = 20 * MiB;
const LOOP_MS = 8_000;
/** Bounds the disk a broken rate limit could fill (16 MiB per committed row). */
const COMMITTED_MAX = 40;

async function directoryBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    if (entry.isFile) total += (await Deno.stat(join(path, entry.name))).size;
  }
  return total;
}

Deno.test({
  name: "16 MiB rows in a loop fail cleanly past the commit-log budget; the log stays bounded",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({
      reducerBudgetMs: 5000,
      limits: { commitLogBytesPerS: RATE_BYTES_PER_S, txRecordBytesMax: TX_MAX_BYTES },
    });
    try {
      const rows = await publish(server.url, "rows", await fixtureBundle("hard_limits"));
      await publish(server.url, "witness", await fixtureBundle("hard_limits"));
      const logDir = join(server.dataDir, "databases", rows.identity, "log");
      const logBytesBefore = await directoryBytes(logDir);

      // Over the size limit: 2 rows of 16 MiB in one transaction.
      const big = await call(server.url, "rows", "big_rows", [2, 16 * MiB]);
      assertEquals(big.status, 530, big.text);
      assertMatch(
        big.text,
        /over the limit of 20971520 bytes per transaction; nothing was committed/,
      );
      assertEquals(Number((await call(server.url, "rows", "value", [])).json), 0);

      const rss = sampleRss();
      const witness = startWitness(server.url, "witness", "bump");
      const started = performance.now();
      const statuses: number[] = [];
      let refusal = "";
      // For LOOP_MS, and on until the rate refused a call (a loaded machine's slow calls leave
      // the bucket time to refill), but never more than COMMITTED_MAX rows of 16 MiB.
      while (
        (performance.now() - started < LOOP_MS || refusal === "") &&
        statuses.filter((status) => status === 200).length < COMMITTED_MAX
      ) {
        const response = await call(server.url, "rows", "big_rows", [1, 16 * MiB]);
        statuses.push(response.status);
        if (response.status !== 200) refusal = response.text;
      }
      const elapsedS = (performance.now() - started) / 1000;
      const report = await witness.stop();
      const peakMiB = rss.stop();
      const logBytes = await directoryBytes(logDir);
      const committed = statuses.filter((status) => status === 200).length;
      console.log(
        `${statuses.length} calls in ${elapsedS.toFixed(1)} s: ${committed} committed, ` +
          `${
            statuses.length - committed
          } refused ("${refusal}"); commit log ${logBytesBefore} -> ` +
          `${logBytes} B; peak RSS ${peakMiB} MiB; witness ${report.calls} calls, ` +
          `${report.failures} failed, p50 ${report.p50Ms} ms, p99 ${report.p99Ms} ms, max ${report.maxMs} ms`,
      );
      assert(statuses.every((status) => status === 200 || status === 530), `${statuses}`);
      assert(statuses.length > committed, "the loop ran into the budget");
      assertMatch(refusal, /commit log budget of 2097152 bytes\/s is spent.*nothing was committed/);
      // Rows committed are what the burst and the rate allowed, and the counter agrees.
      const burstBytes = Math.max(TX_MAX_BYTES, RATE_BYTES_PER_S * COMMIT_LOG_BURST_S);
      const allowed = burstBytes + RATE_BYTES_PER_S * (elapsedS + 1);
      assert(committed * 16 * MiB <= allowed, `${committed} rows of 16 MiB committed`);
      assertEquals(Number((await call(server.url, "rows", "value", [])).json), committed);
      assert(
        logBytes - logBytesBefore <= allowed + 2 * LOG_PREALLOCATE_BYTES,
        `the commit log grew by ${logBytes - logBytesBefore} bytes`,
      );
      assertEquals(report.failures, 0);
    } finally {
      await server.close();
    }
  },
});
