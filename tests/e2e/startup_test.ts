/**
 * Server start-up (issue #14): databases recover in the background, so the server answers
 * `/v1/ping` at once and serves every database that is ready while slow ones still recover;
 * requests for a slow one wait for it instead of failing, and a request for a database still
 * queued behind the recoveries in progress starts it at once.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

Deno.test({
  name: "a restarted server answers ping and ready databases while a slow one recovers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let server = await startTestServer({ hibernateAfterS: 0 });
    try {
      // Recovery runs HIBERNATION_CONCURRENCY_MAX (4) at a time in publish order: the four slow
      // ones first, "quick" queued behind them.
      const slowBundle = await fixtureBundle("slow_start");
      for (let i = 1; i <= 3; i++) await publish(server.url, `slow-${i}`, slowBundle);
      await publish(server.url, "slow", slowBundle);
      await publish(server.url, "quick", await fixtureBundle("chat"));
      assertEquals((await call(server.url, "slow", "add_note", [1, "kept"])).status, 200);
      assertEquals((await call(server.url, "quick", "send_message", ["kept"])).status, 200);
      const dataDir = server.dataDir;
      await server.close({ keepData: true });

      server = await startTestServer({ dataDir, hibernateAfterS: 0 });
      const slow = server.server.registry.resolve("slow");
      assert(slow, "the slow database is registered at once");
      const ping = await fetch(`${server.url}/v1/ping`);
      await ping.body?.cancel();
      assertEquals(ping.status, 200);
      assertEquals(slow.hibernation, "waking", "the slow database is still recovering");

      assertEquals(server.server.registry.resolve("quick")?.hibernation, "waking");
      // The quick one, queued, is started by the request and served while the slow ones'
      // modules are still starting (~6 s each).
      const quick = await call(server.url, "quick", "send_message", ["while slow recovers"]);
      assertEquals(quick.status, 200, quick.text);
      assertEquals(slow.hibernation, "waking", "the quick database did not wait for the slow one");

      // A call to the slow one waits for its recovery and is answered.
      const late = await call(server.url, "slow", "add_note", [2, "after recovery"]);
      assertEquals(late.status, 200, late.text);
      const rows = await fetch(`${server.url}/v1/database/slow/sql`, {
        method: "POST",
        body: "SELECT * FROM note",
      });
      assertEquals(JSON.parse(await rows.text())[0].rows.length, 2);
      await server.server.registry.recovered;
    } finally {
      await server.close();
    }
  },
});
