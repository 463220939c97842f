/**
 * RLS rules that form a cycle (A's rule reads B, B's rule reads A) publish, as in SpacetimeDB;
 * every non-owner query touching those tables then fails with ``Discovered cyclic dependency
 * when resolving RLS rules for table id `<id>` `` over /sql and as a subscription, while the
 * owner (who bypasses RLS) and queries on other tables work.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import {
  decodeServerPayload,
  encodeClientMessage,
  type ServerMessage,
} from "../../protocol/mod.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

async function sql(url: string, query: string, token: string) {
  const response = await fetch(`${url}/v1/database/rls-cycle/sql`, {
    method: "POST",
    body: query,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "RLS rules in a cycle publish; non-owner queries touching them fail with the cycle error",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const owner = await publish(server.url, "rls-cycle", await fixtureBundle("rls_cycle"));
      assertEquals((await call(server.url, "rls-cycle", "seed", [], owner.token)).status, 200);
      const response = await fetch(`${server.url}/v1/identity`, { method: "POST" });
      const token = (await response.json()).token as string;
      const cycle = /Discovered cyclic dependency when resolving RLS rules for table id `\d+`/;
      for (const table of ["left_side", "right_side"]) {
        const refused = await sql(server.url, `SELECT * FROM ${table}`, token);
        assertEquals(refused.status, 400, refused.text);
        assertMatch(refused.text, cycle);
        const forOwner = await sql(server.url, `SELECT * FROM ${table}`, owner.token);
        assertEquals(forOwner.status, 200, forOwner.text);
        assertEquals(JSON.parse(forOwner.text)[0].rows.length, 1);
      }
      const other = await sql(server.url, "SELECT * FROM other", token);
      assertEquals(other.status, 200, other.text);

      const socket = new WebSocket(
        `${
          server.url.replace(/^http/, "ws")
        }/v1/database/rls-cycle/subscribe?compression=None&token=${token}`,
        ["v2.bsatn.spacetimedb"],
      );
      socket.binaryType = "arraybuffer";
      const messages: ServerMessage[] = [];
      let wake = () => {};
      socket.onmessage = (event) => {
        const bytes = new Uint8Array(event.data as ArrayBuffer);
        messages.push(...decodeServerPayload(bytes.subarray(1), "v2"));
        wake();
      };
      await new Promise((resolve) => socket.onopen = resolve);
      socket.send(encodeClientMessage({
        tag: "Subscribe",
        requestId: 1,
        querySetId: 1,
        queryStrings: ["SELECT * FROM left_side"],
      }));
      const deadline = Date.now() + 60_000;
      while (!messages.some((m) => m.tag === "SubscriptionError") && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 100);
        });
      }
      const error = messages.find((m) => m.tag === "SubscriptionError");
      assertMatch(error && "error" in error ? String(error.error) : "none", cycle);
      socket.close();
    } finally {
      await server.close();
    }
  },
});
