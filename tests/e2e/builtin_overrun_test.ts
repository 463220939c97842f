/**
 * Time spent inside one builtin is never ticked by the instrumented deadline checks, so a
 * reducer that sorts millions of elements or runs a backtracking regexp used to return long
 * after its budget and commit. A call that returns after its deadline is now rolled back with
 * the budget error (issue #15, "reducer wall time including builtins").
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const BUDGET_MS = 600;
/**
 * The reducers spin in ticked code until this long after they start (the budget started a little
 * earlier, so the deadline is at most 3 ms away), then call a builtin once, sized by the reducer
 * itself to take about BUILTIN_MS at the machine's current speed and load (it times the builtin at
 * growing sizes first): the call ends past its deadline (the builtin takes over 3 ms unless the
 * machine gets 10 times faster within the call) and far inside the watchdog's grace of 1 s
 * (unless it gets 25 times slower). A fixed size ended before the deadline on a fast machine or
 * past the grace on a loaded one (the regexp took ~400 ms here at load 4). Should the reducer
 * start late, a tick fires during the spin instead: still rolled back with the budget error.
 */
const SPIN_MS = BUDGET_MS - 3;
const BUILTIN_MS = 40;

Deno.test({
  name: "a reducer that overruns its budget inside a builtin is rolled back with the budget error",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer({ reducerBudgetMs: BUDGET_MS });
    try {
      await publish(server.url, "builtins", await fixtureBundle("hard_limits"));
      assertEquals((await call(server.url, "builtins", "bump", [])).status, 200);
      // Each builtin ends after the deadline but well within the process watchdog's grace
      // (worker/isolation.ts WATCHDOG_GRACE_MS), so the call returns normally, late, with no
      // tick having seen the deadline pass: before, it committed.
      const cases: [string, unknown[]][] = [
        // Array.prototype.sort (string comparison) of numbers.
        ["sort_after_spin", [SPIN_MS, BUILTIN_MS]],
        // Backtracking; backreferences defeat V8's linear-time fallback engine.
        ["regexp_after_spin", [SPIN_MS, BUILTIN_MS]],
      ];
      for (const [reducer, args] of cases) {
        await t.step(`${reducer} is rolled back`, async () => {
          const before = Number((await call(server.url, "builtins", "value", [])).json);
          const started = performance.now();
          const response = await call(server.url, "builtins", reducer, args);
          const elapsedMs = Math.round(performance.now() - started);
          console.log(`${reducer}: answered after ${elapsedMs} ms under a ${BUDGET_MS} ms budget`);
          assertEquals(response.status, 530, response.text);
          assertMatch(response.text, /exceeded its time budget of 600 ms/);
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
