/**
 * Publishing: init runs once and is durable before publish answers (even many
 * publishes in a row), updates keep data or reset it, clients stay across a code-only
 * update and are told of a reset, and a client_connected refusal stops an HTTP call.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { connectBank } from "../fixtures/bindings/bank/index.ts";

Deno.test({
  name: "publish, update, reset and the client_connected gate",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      const gateBundle = await fixtureBundle("gate");

      await t.step("init runs on first publish; many publishes in a row all answer", async () => {
        for (let i = 0; i < 5; i++) {
          await publish(server.url, `gate-${i}`, gateBundle);
          assertEquals((await call(server.url, `gate-${i}`, "entries", [])).json, ["from init"]);
        }
      });

      const owner = await publish(server.url, "gate", gateBundle);
      await t.step("republishing the same module keeps data and does not rerun init", async () => {
        assertEquals((await call(server.url, "gate", "record", ["kept"])).status, 200);
        await publish(server.url, "gate", gateBundle, { token: owner.token });
        await publish(server.url, "gate", gateBundle + "\n// changed\n", { token: owner.token });
        assertEquals((await call(server.url, "gate", "entries", [])).json, ["from init", "kept"]);
      });

      await t.step(
        "a breaking schema change is refused; clear=true resets and reruns init",
        async () => {
          const response = await fetch(`${server.url}/v1/database/gate?host_type=Js`, {
            method: "PUT",
            body: await fixtureBundle("chat"),
            headers: { authorization: `Bearer ${owner.token}` },
          });
          assertEquals(response.status, 400);
          assertMatch(
            await response.text(),
            /Migration plan contains a client-breaking change which is disallowed under current policy/,
          );
          assertEquals((await call(server.url, "gate", "entries", [])).json, ["from init", "kept"]);
          await publish(server.url, "gate", gateBundle, { token: owner.token, clear: true });
          assertEquals((await call(server.url, "gate", "entries", [])).json, ["from init"]);
        },
      );

      await t.step(
        "a refused client_connected stops the HTTP call: 403, nothing runs",
        async () => {
          assertEquals((await call(server.url, "gate", "shut", [])).status, 200);
          const refused = await call(server.url, "gate", "record", ["sneaky"]);
          assertEquals(refused.status, 403);
          assertEquals(refused.text, "the gate is shut");
          const logs = await fetch(`${server.url}/v1/database/gate/logs`, {
            headers: { authorization: `Bearer ${owner.token}` },
          });
          assert(!(await logs.text()).includes("recorded sneaky"));
        },
      );

      await t.step(
        "a code-only update keeps clients (hot swap); a reset disconnects them",
        async () => {
          const bankOwner = await publish(server.url, "bank", await fixtureBundle("bank"));
          let disconnected = false;
          const conn = await connectBank(server.url, "bank", {
            onDisconnect: () => (disconnected = true),
          });
          await publish(server.url, "bank", (await fixtureBundle("bank")) + "\n// v2\n", {
            token: bankOwner.token,
          });
          await new Promise((r) => setTimeout(r, 300));
          assert(!disconnected, "a code-only update disconnected the client");
          await publish(server.url, "bank", (await fixtureBundle("bank")) + "\n// v3\n", {
            token: bankOwner.token,
            clear: true,
          });
          const deadline = Date.now() + 60_000;
          while (!disconnected && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 10));
          }
          assert(disconnected, "the client was not told about the reset");
          conn.disconnect();
        },
      );
    } finally {
      await server.close();
    }
  },
});
