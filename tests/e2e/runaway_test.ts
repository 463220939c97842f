/**
 * Runaway reducers are stopped after the time budget, rolled back, and reported;
 * the database keeps serving, and another database answers while one spins.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const BUDGET_MS = 400;

Deno.test({
  name: "runaway reducers are stopped and rolled back; other databases keep serving",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer({ reducerBudgetMs: BUDGET_MS });
    try {
      await publish(server.url, "runaway", await fixtureBundle("runaway"));
      await publish(server.url, "other", await fixtureBundle("runaway"));
      assertEquals((await call(server.url, "runaway", "bump", [])).status, 200);

      for (
        const reducer of [
          "spin",
          "spin_catching",
          "spin_finally",
          "spin_generated",
          "recurse_forever",
        ]
      ) {
        await t.step(`${reducer} is stopped after the budget and rolled back`, async () => {
          const before = (await call(server.url, "runaway", "value", [])).json as number;
          const started = performance.now();
          const response = await call(server.url, "runaway", reducer, []);
          const elapsedMs = performance.now() - started;
          assertEquals(response.status, 530, response.text);
          assertMatch(response.text, /exceeded its time budget of 400 ms/);
          assert(elapsedMs >= BUDGET_MS, `stopped after ${elapsedMs} ms, before the budget`);
          // The reducer bumped the counter before spinning: that is rolled back.
          assertEquals((await call(server.url, "runaway", "value", [])).json, before);
          // And the database still commits.
          assertEquals((await call(server.url, "runaway", "bump", [])).status, 200);
          assertEquals((await call(server.url, "runaway", "value", [])).json, before + 1);
        });
      }

      await t.step("another database answers while one spins", async () => {
        const spinning = call(server.url, "runaway", "spin", []);
        await new Promise((resolve) => setTimeout(resolve, 50));
        const started = performance.now();
        const other = await call(server.url, "other", "bump", []);
        const answeredMs = performance.now() - started;
        assertEquals(other.status, 200);
        assert(answeredMs < BUDGET_MS, `the other database took ${answeredMs} ms while one spun`);
        const spun = await spinning;
        assertEquals(spun.status, 530);
      });
    } finally {
      await server.close();
    }
  },
});
