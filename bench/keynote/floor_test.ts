import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { FLOOR_MODES, runFloor } from "./floor.ts";

for (const mode of FLOOR_MODES) {
  Deno.test(`floor server '${mode}' answers every message of the keynote load shape`, async () => {
    const workDir = await Deno.makeTempDir({ prefix: "floor-test-" });
    try {
      const result = await runFloor({
        mode,
        clientCount: 4,
        inflightPerClient: 3,
        warmupMs: 200,
        measureMs: 400,
        workDir,
      });
      assertEquals(result.status, "ok", result.reason);
      const load = result.load!;
      assert(load.committed > 0, `${mode}: nothing answered in the window`);
      assert(load.p50Ms > 0 && load.p99Ms >= load.p50Ms && load.maxMs >= load.p99Ms);
      // Each connection keeps 3 outstanding until the end: at most 4 × 3 left unanswered.
      assert(load.undrained >= 0 && load.undrained <= 12, `undrained ${load.undrained}`);
      if (mode === "durable") {
        const log = await Deno.stat(`${workDir}/floor.log`);
        assert(log.size > 0, "the durable floor wrote no log");
      }
    } finally {
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    }
  });
}
