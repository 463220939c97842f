import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { BASELINE_SYSTEMS, baselinePackagesInstalled, runBaseline } from "./baseline_side.ts";
import { encodePairs, generatePairs } from "./workload.ts";

const repoRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

async function nodeAvailable(): Promise<boolean> {
  try {
    return (await new Deno.Command("node", { args: ["--version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

// Runs only where `npm ci` has been done in bench/baselines (the benchmark does it); never needs
// PostgreSQL or the network.
const ready = await nodeAvailable() && await baselinePackagesInstalled(repoRoot);

Deno.test({
  name: "the SQLite baseline keeps balances and every acknowledged transfer under load",
  ignore: !ready,
  async fn() {
    const workDir = await Deno.makeTempDir({ prefix: "keynote-test-" });
    try {
      const accountCount = 1000;
      const pairs = generatePairs({ alpha: 1.5, seed: 11, accountCount, pairCount: 4096 });
      const pairsPath = `${workDir}/pairs.bin`;
      await Deno.writeFile(pairsPath, encodePairs(pairs));
      const result = await runBaseline(BASELINE_SYSTEMS.sqlite, {
        alpha: 1.5,
        mode: "pipelined",
        clientCount: 4,
        inflightPerClient: 4,
        warmupMs: 100,
        measureMs: 400,
        timeoutMs: 15_000,
        accountCount,
        initialBalance: 1_000_000_000,
        amount: 1,
        pairs,
        pairsPath,
        workDir,
        repoRoot,
      });
      assertEquals(result.status, "ok", result.reason);
      assert(result.load && result.load.totalAcked > 0, "no transfer was acknowledged");
      assertEquals(result.load.totalErrorKinds.failed, 0);
      assert(result.balance && result.balance.ok, result.balance?.problems.join("; "));
      assertEquals(result.balance.rowCount, accountCount);
      assertEquals(result.balance.sum, accountCount * 1_000_000_000);
      assert(result.balance.changedCount > 0, "the server acknowledged but wrote nothing");
      assertEquals(result.info?.journalMode, "delete");
      assertEquals(result.info?.synchronous, 2);
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  },
});
