/**
 * Time spent inside one builtin is never ticked by the instrumented deadline checks, so a
 * reducer that sorts millions of elements or runs a backtracking regexp used to return long
 * after its budget and commit. A call that returns after its deadline is now rolled back with
 * the budget error (issue #15, "reducer wall time including builtins").
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";

const BUDGET_MS = 600;
/**
 * The reducers spin in ticked code until this long after they start (the budget started a little
 * earlier, so the deadline is at most 3 ms away), then call a builtin once, sized by the reducer
 * itself to take about BUILTIN_MS at the machine's current speed and load (it times the builtin at
 * growing sizes first): the call ends past its deadline (the builtin takes over 3 ms unless the
 * machine gets 10 times faster within the call) and far inside the watchdog's grace of 1 s
 * (unless it gets 25 times slower). A fixed size ended before the deadline on a fast machine or
 * past the grace on a loaded one (the regexp took ~400 ms here at load 4). Should the reducer
 * start late, a tick fires during the spin instead: rolled back too, but by a tick, so such a
 * round proves nothing about the late return and is repeated (the module logs whether it reached
 * its builtin).
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
      const owner = await publish(server.url, "builtins", await fixtureBundle("hard_limits"));
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
      /** How many of the module's log lines contain `text`. */
      const logged = async (text: string): Promise<number> => {
        const response = await fetch(`${server.url}/v1/database/builtins/logs?num_lines=1000`, {
          headers: { authorization: `Bearer ${owner.token}` },
        });
        const body = await response.text();
        assertEquals(response.status, 200, body);
        return body.split("\n").filter((line) => line.includes(text)).length;
      };
      for (const [reducer, args] of cases) {
        await t.step(`${reducer} is rolled back`, async () => {
          // A round whose reducer started more than 3 ms after its budget was stopped by a tick
          // in the spin (the module never logs "reached its builtin"): it says nothing about the
          // late return and is repeated.
          for (let round = 0;; round++) {
            assert(round < 6, `no ${reducer} call reached its builtin before its deadline`);
            const started = await logged(`${reducer}: started`);
            const reached = await logged(`${reducer}: reached its builtin`);
            const before = Number((await call(server.url, "builtins", "value", [])).json);
            const t0 = performance.now();
            const response = await call(server.url, "builtins", reducer, args);
            const elapsedMs = Math.round(performance.now() - t0);
            assertEquals(response.status, 530, response.text);
            assertMatch(response.text, /exceeded its time budget of 600 ms/);
            // The counter bump before the builtin was not committed.
            assertEquals(Number((await call(server.url, "builtins", "value", [])).json), before);
            // The call's log lines came with its answer.
            await waitUntil(
              async () => await logged(`${reducer}: started`) > started,
              `${reducer}'s log`,
            );
            const viaBuiltin = await logged(`${reducer}: reached its builtin`) > reached;
            console.log(
              `${reducer}: answered after ${elapsedMs} ms under a ${BUDGET_MS} ms budget; ` +
                (viaBuiltin ? "stopped after its builtin" : "stopped by a tick in the spin"),
            );
            if (viaBuiltin) break;
          }
          const before = Number((await call(server.url, "builtins", "value", [])).json);
          assertEquals((await call(server.url, "builtins", "bump", [])).status, 200);
          assertEquals(Number((await call(server.url, "builtins", "value", [])).json), before + 1);
        });
      }
    } finally {
      await server.close();
    }
  },
});
