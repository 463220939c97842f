/**
 * A row-level security rule that joins tables, through the official `spacetimedb` SDK (2.8.3)
 * and the views_rls bindings (issue #11): `message` is visible to the members of its room
 * (`SELECT message.* FROM message JOIN member ON message.room = member.room WHERE
 * member.identity = :sender`). Two clients in different rooms each receive only their room's
 * messages, at subscription and live; joining or leaving a room moves that room's messages
 * into or out of the client's cache.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/views_rls/index.ts";
import { fixtureBundle, parseWithBigInts, publish, startTestServer } from "../support/server.ts";

interface Client {
  conn: DbConnection;
  /** Every message id the client was ever sent as an insert, in order. */
  inserted: number[];
  deleted: number[];
  token: string;
}

function connect(url: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("views-rls")
      .onConnect((conn, _identity, token) => {
        const client: Client = { conn, inserted: [], deleted: [], token };
        conn.db.message.onInsert((_ctx, row) => client.inserted.push(row.id));
        conn.db.message.onDelete((_ctx, row) => client.deleted.push(row.id));
        resolve(client);
      })
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function subscribe(conn: DbConnection, queries: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(queries);
  });
}

/** A round trip through each connection, so every update sent before it has been applied. */
async function settle(...clients: Client[]): Promise<void> {
  for (const { conn } of clients) {
    await subscribe(conn, ["SELECT * FROM pet WHERE id = 4294967295"]);
  }
}

function cached(client: Client): number[] {
  return [...client.conn.db.message.iter()].map((row) => row.id).sort((a, b) => a - b);
}

async function sql(url: string, query: string, token: string): Promise<unknown[][]> {
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
  name: "the official SDK: an RLS rule that joins tables (room members see their room's messages)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const open: DbConnection[] = [];
    try {
      const owner = await publish(server.url, "views-rls", await fixtureBundle("views_rls"));
      const alice = await connect(server.url);
      const bob = await connect(server.url);
      open.push(alice.conn, bob.conn);
      await alice.conn.reducers.joinRoom({ id: 1, room: 1 });
      await bob.conn.reducers.joinRoom({ id: 2, room: 2 });
      await alice.conn.reducers.post({ id: 1, room: 1, text: "alice in 1" });
      await bob.conn.reducers.post({ id: 2, room: 2, text: "bob in 2" });
      await subscribe(alice.conn, ["SELECT * FROM message"]);
      await subscribe(bob.conn, ["SELECT * FROM message"]);

      await t.step("at subscription each client has its own room's messages", () => {
        assertEquals(cached(alice), [1]);
        assertEquals(cached(bob), [2]);
      });

      await t.step("live inserts reach only the members of the message's room", async () => {
        await bob.conn.reducers.post({ id: 3, room: 1, text: "bob writes to 1" });
        await alice.conn.reducers.post({ id: 4, room: 2, text: "alice writes to 2" });
        await alice.conn.reducers.post({ id: 5, room: 7, text: "nobody's room" });
        await settle(alice, bob);
        assertEquals(cached(alice), [1, 3]);
        assertEquals(cached(bob), [2, 4]);
        assertEquals(alice.inserted, [1, 3]);
        assertEquals(bob.inserted, [2, 4]);
      });

      await t.step("joining a room brings its messages in, leaving takes them out", async () => {
        await bob.conn.reducers.joinRoom({ id: 3, room: 1 });
        await settle(alice, bob);
        assertEquals(cached(bob), [1, 2, 3, 4]);
        await bob.conn.reducers.leaveRoom({ id: 3 });
        await settle(alice, bob);
        assertEquals(cached(bob), [2, 4]);
        assertEquals(bob.deleted.sort((a, b) => a - b), [1, 3]);
        // A's membership row leaving empties A's view; a message posted there afterwards
        // never reaches A.
        await alice.conn.reducers.leaveRoom({ id: 1 });
        await bob.conn.reducers.post({ id: 6, room: 1, text: "after alice left" });
        await settle(alice, bob);
        assertEquals(cached(alice), []);
        assertEquals(alice.inserted, [1, 3]);
        assertEquals(cached(bob), [2, 4]);
        assertEquals(bob.inserted.slice(0, 2), [2, 4]);
        assertEquals(bob.inserted.slice(2).sort((a, b) => a - b), [1, 3]);
      });

      await t.step(
        "/sql applies the rule to non-owners; the owner sees every message",
        async () => {
          const forBob = await sql(server.url, "SELECT id FROM message", bob.token);
          assertEquals(forBob.map((row) => Number(row[0])).sort((a, b) => a - b), [2, 4]);
          const count = await sql(server.url, "SELECT COUNT(*) AS n FROM message", alice.token);
          assertEquals(count.map((row) => Number(row[0])), [0]);
          const forOwner = await sql(server.url, "SELECT id FROM message", owner.token);
          assertEquals(forOwner.map((row) => Number(row[0])).sort((a, b) => a - b), [
            1,
            2,
            3,
            4,
            5,
            6,
          ]);
        },
      );
    } finally {
      for (const conn of open) conn.disconnect();
      await server.close();
    }
  },
});
