/**
 * Changing a module's row-level security rules on republish disconnects every client, as in
 * SpacetimeDB (its migration plan has a DisconnectAllUsers step then), so that no subscription
 * keeps the old visibility.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

Deno.test({
  name: "an update that changes the RLS rules disconnects clients",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const owner = await publish(server.url, "rls-rules", await fixtureBundle("rls_rules_a"));
      const identity = await (await fetch(`${server.url}/v1/identity`, { method: "POST" })).json();
      const socket = new WebSocket(
        `${server.url.replace(/^http/, "ws")}/v1/database/rls-rules/subscribe` +
          `?compression=None&token=${identity.token}`,
        ["v2.bsatn.spacetimedb"],
      );
      const opened = new Promise((resolve) => (socket.onmessage = resolve));
      const closed = new Promise<CloseEvent>((resolve) => (socket.onclose = resolve));
      await opened;
      const next = await fixtureBundle("rls_rules_b");
      // The plan says the change breaks clients; publishing it needs the BreakClients token.
      const planned = await fetch(
        `${server.url}/v1/database/rls-rules/pre_publish?host_type=Js&pretty_print_style=NoColor`,
        { method: "POST", body: next, headers: { authorization: `Bearer ${owner.token}` } },
      );
      assertEquals(planned.status, 200);
      const plan = await planned.json();
      assertEquals(plan.AutoMigrate.break_clients, true);
      const refused = await fetch(`${server.url}/v1/database/rls-rules?host_type=Js`, {
        method: "PUT",
        body: next,
        headers: { authorization: `Bearer ${owner.token}` },
      });
      assertEquals(refused.status, 400, "a client-breaking update without the token is refused");
      await refused.body?.cancel();
      const updated = await fetch(
        `${server.url}/v1/database/rls-rules?host_type=Js&policy=BreakClients&token=${plan.AutoMigrate.token}`,
        { method: "PUT", body: next, headers: { authorization: `Bearer ${owner.token}` } },
      );
      assertEquals(updated.status, 200, await updated.text());
      const close = await closed;
      assertEquals(close.code, 1001);
      assertMatch(close.reason, /module/);
    } finally {
      await server.close();
    }
  },
});
