/**
 * A reducer that allocates without bound hits its worker's heap cap: the call
 * fails, the server and the other databases are unharmed.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

Deno.test({
  name: "a module that eats memory fails alone; the server and other databases go on",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // A generous time budget, so the heap cap (not the budget) is what stops it.
    const server = await startTestServer({ databaseMemoryMb: 64, reducerBudgetMs: 60_000 });
    try {
      const bundle = await fixtureBundle("runaway");
      await publish(server.url, "hog", bundle);
      await publish(server.url, "bystander", bundle);
      const hoard = await call(server.url, "hog", "hoard", []);
      assert(hoard.status >= 500, `expected a failure, got ${hoard.status} ${hoard.text}`);
      assert(/memory|crashed|not running/i.test(hoard.text), hoard.text);
      // The other database is untouched and the server answers.
      assertEquals((await call(server.url, "bystander", "bump", [])).status, 200);
      assertEquals((await call(server.url, "bystander", "value", [])).json, 1);
      assertEquals((await fetch(`${server.url}/v1/ping`)).status, 200);
    } finally {
      await server.close();
    }
  },
});
