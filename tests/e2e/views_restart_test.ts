/**
 * View changes travel to subscribers but never into the commit log (they are derived data): a
 * database whose writes re-ran live views, and that took a snapshot, restarts from its log and
 * snapshot with its tables intact, and its views are materialized again on demand.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  decodeServerPayload,
  encodeClientMessage,
  type ServerMessage,
} from "../../protocol/mod.ts";
import {
  call,
  fixtureBundle,
  parseWithBigInts,
  publish,
  startTestServer,
} from "../support/server.ts";

async function sqlRows(url: string, query: string, token: string): Promise<unknown[][]> {
  const response = await fetch(`${url}/v1/database/views-rls/sql`, {
    method: "POST",
    body: query,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  assertEquals(response.status, 200, text);
  return (parseWithBigInts(text) as { rows: unknown[][] }[])[0].rows;
}

Deno.test({
  name: "a restart after writes that re-ran live views recovers tables and views",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let server = await startTestServer();
    const dataDir = server.dataDir;
    try {
      const owner = await publish(server.url, "views-rls", await fixtureBundle("views_rls"));
      const socket = new WebSocket(
        `${server.url.replace(/^http/, "ws")}/v1/database/views-rls/subscribe` +
          `?compression=None&token=${owner.token}`,
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
      const next = async (tag: string) => {
        while (!messages.some((m) => m.tag === tag)) {
          await new Promise<void>((resolve) => (wake = resolve));
        }
        return messages.splice(messages.findIndex((m) => m.tag === tag), 1)[0];
      };
      await next("InitialConnection");
      socket.send(encodeClientMessage({
        tag: "Subscribe",
        requestId: 1,
        querySetId: 1,
        queryStrings: ["SELECT * FROM me", "SELECT * FROM pet_count", "SELECT * FROM adults"],
      }));
      assertEquals((await next("SubscribeApplied")).tag, "SubscribeApplied");
      for (let i = 0; i < 5; i++) {
        const added = await call(
          server.url,
          "views-rls",
          "add_person",
          [i, `p${i}`, 20 + i],
          owner.token,
        );
        assertEquals(added.status, 200, added.text);
        assertEquals((await call(server.url, "views-rls", "add_pet", [i, i, "cat"])).status, 200);
        await next("TransactionUpdate");
      }
      const snapshot = await fetch(`${server.url}/v1/database/views-rls/snapshot`, {
        method: "POST",
        headers: { authorization: `Bearer ${owner.token}` },
      });
      assertEquals(snapshot.status, 200);
      await snapshot.body?.cancel();
      assertEquals(
        (await call(server.url, "views-rls", "set_name", [0, "zero"], owner.token)).status,
        200,
      );
      socket.close();

      await server.close({ keepData: true });
      server = await startTestServer({ dataDir });

      assertEquals((await sqlRows(server.url, "SELECT * FROM person", owner.token)).length, 5);
      assertEquals(await sqlRows(server.url, "SELECT * FROM pet_count", owner.token), [[5]]);
      const mine = await sqlRows(server.url, "SELECT * FROM me", owner.token);
      assertEquals(mine.map((row) => row[2]).sort(), ["p1", "p2", "p3", "p4", "zero"]);
      assertEquals((await call(server.url, "views-rls", "add_pet", [9, 1, "dog"])).status, 200);
      assertEquals(await sqlRows(server.url, "SELECT * FROM pet_count", owner.token), [[6]]);
    } finally {
      await server.close();
    }
  },
});
