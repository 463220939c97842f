/**
 * Runaway reducers are stopped after the time budget, rolled back, and reported;
 * the database keeps serving, and another database answers while one spins.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { cpuTicks } from "../support/proc.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { track, waitUntil, within } from "../support/wait.ts";

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
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "another database answers while one spins",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // A budget no loaded machine outlasts: the spinning call is still running when the other
    // database answers, whatever the load (it is stopped by DELETE, not by its budget). Timing
    // the other database's answer against a 400 ms budget failed on loaded machines.
    const server = await startTestServer({ reducerBudgetMs: 120_000 });
    try {
      const runaway = await publish(server.url, "runaway", await fixtureBundle("runaway"));
      await publish(server.url, "other", await fixtureBundle("runaway"));
      assertEquals((await call(server.url, "other", "bump", [])).status, 200);
      const host = server.server.registry.resolve("runaway")!.host;
      const pid = host.pid;
      const ticksBefore = cpuTicks(pid)!;
      const spinning = track(call(server.url, "runaway", "spin", []));
      // The spin is running: its batch is in the process and the process is using CPU.
      await waitUntil(
        () => host.batchesInFlight > 0 && cpuTicks(pid)! - ticksBefore >= 10,
        "the spin to start",
      );
      const started = performance.now();
      const other = await within(call(server.url, "other", "bump", []), "the other database");
      console.log(`the other database answered in ${(performance.now() - started).toFixed(0)} ms`);
      assertEquals(other.status, 200, other.text);
      assert(!spinning.settled, "the spinning call ended before the other database answered");
      // DELETE stops the spinning database at once.
      const deleted = await fetch(`${server.url}/v1/database/runaway`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${runaway.token}` },
      });
      await deleted.body?.cancel();
      assertEquals(deleted.status, 200);
      assert((await within(spinning.promise, "the spinning call to end")).status !== 200);
    } finally {
      await server.close();
    }
  },
});
