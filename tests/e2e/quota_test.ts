/**
 * Database quotas (issue 15): one identity cannot create databases past
 * --max-databases-per-identity, another still can, and --max-databases holds for everyone.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { fixtureBundle, publish, startServerProcess } from "../support/server.ts";

async function tryPublish(url: string, name: string, bundle: string, token?: string) {
  const response = await fetch(`${url}/v1/database/${name}?host_type=Js`, {
    method: "PUT",
    body: bundle,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "publish refuses new databases past the per-identity and the server-wide quota",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startServerProcess({
      args: ["--max-databases", "3", "--max-databases-per-identity", "2"],
    });
    try {
      const bundle = await fixtureBundle("runaway");
      const a = await publish(server.url, "a-one", bundle);
      await publish(server.url, "a-two", bundle, { token: a.token });
      const aThird = await tryPublish(server.url, "a-three", bundle, a.token);
      console.log(`third database of one identity: ${aThird.status} ${aThird.text}`);
      assertEquals(aThird.status, 403);
      assertMatch(
        aThird.text,
        /owns 2 databases, the limit set by --max-databases-per-identity is 2/,
      );
      // Updating a database it owns is not a new database.
      assertEquals((await tryPublish(server.url, "a-one", bundle, a.token)).status, 200);

      // Another identity still can, up to the server-wide cap.
      const b = await publish(server.url, "b-one", bundle);
      const bSecond = await tryPublish(server.url, "b-two", bundle, b.token);
      console.log(`fourth database on the server: ${bSecond.status} ${bSecond.text}`);
      assertEquals(bSecond.status, 403);
      assertMatch(bSecond.text, /hosts 3 databases, the limit set by --max-databases is 3/);
      // A fresh anonymous identity is held by the same server-wide cap.
      const anonymous = await tryPublish(server.url, "c-one", bundle);
      assertEquals(anonymous.status, 403);
      // An unnamed database counts too.
      const unnamed = await fetch(`${server.url}/v1/database?host_type=Js`, {
        method: "POST",
        body: bundle,
      });
      assertEquals(unnamed.status, 403);
      await unnamed.body?.cancel();

      // Deleting frees a slot.
      const deleted = await fetch(`${server.url}/v1/database/a-one`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${a.token}` },
      });
      assertEquals(deleted.status, 200);
      await deleted.body?.cancel();
      assertEquals((await tryPublish(server.url, "b-two", bundle, b.token)).status, 200);
    } finally {
      await server.stop();
      await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
    }
  },
});
