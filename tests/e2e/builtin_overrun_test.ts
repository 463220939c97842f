/**
 * Time spent inside one builtin is never ticked by the instrumented deadline checks, so a
 * reducer that sorts millions of elements or runs a backtracking regexp used to return long
 * after its budget and commit. A call that returns after its deadline is now rolled back with
 * the budget error (issue #15, "reducer wall time including builtins").
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const BUDGET_MS = 300;

Deno.test({
  name: "a reducer that overruns its budget inside a builtin is rolled back with the budget error",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer({ reducerBudgetMs: BUDGET_MS });
    try {
      await publish(server.url, "builtins", await fixtureBundle("hard_limits"));
      assertEquals((await call(server.url, "builtins", "bump", [])).status, 200);
      const cases: [string, unknown[]][] = [
        // ~1.6 s of Array.prototype.sort (string comparison) on an idle core.
        ["sort_many", [2_000_000]],
        // ~0.8 s of backtracking; backreferences defeat V8's linear-time fallback engine.
        ["catastrophic_regexp", [27]],
      ];
      for (const [reducer, args] of cases) {
        await t.step(`${reducer} is rolled back`, async () => {
          const before = Number((await call(server.url, "builtins", "value", [])).json);
          const started = performance.now();
          const response = await call(server.url, "builtins", reducer, args);
          const elapsedMs = Math.round(performance.now() - started);
          console.log(`${reducer}: answered after ${elapsedMs} ms under a ${BUDGET_MS} ms budget`);
          assertEquals(response.status, 530, response.text);
          assertMatch(response.text, /exceeded its time budget of 300 ms/);
          // The counter bump before the builtin was not committed.
          assertEquals(Number((await call(server.url, "builtins", "value", [])).json), before);
          assertEquals((await call(server.url, "builtins", "bump", [])).status, 200);
          assertEquals(Number((await call(server.url, "builtins", "value", [])).json), before + 1);
        });
      }
    } finally {
      await server.close();
    }
  },
});
