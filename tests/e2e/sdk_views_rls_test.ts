/**
 * Views and row-level security through the official `spacetimedb` SDK (2.8.3) and its generated
 * bindings (issue #11): a per-sender view seen differently by two clients, with `onUpdate` (the
 * view has a primary key); anonymous views; a view whose read set a transaction does not touch
 * is not re-run (counted from the module log: each run logs one line); a failing view rolls
 * its transaction back (a reducer's, and owner DML over /sql), owner DML refreshes views; an
 * RLS-protected table from which client B never receives A's rows
 * (subscription, /sql as a non-owner) while the owner sees all.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/views_rls/index.ts";
import { fixtureBundle, parseWithBigInts, publish, startTestServer } from "../support/server.ts";

interface Connected {
  conn: DbConnection;
  identityHex: string;
  token: string;
}

function connect(url: string, token?: string): Promise<Connected> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("views-rls")
      .withToken(token)
      .onConnect((conn, identity, token) =>
        resolve({ conn, identityHex: identity.toHexString(), token })
      )
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

async function eventually(
  predicate: () => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Waits until every queued message reached the clients (a round trip through each). */
async function settle(...conns: DbConnection[]): Promise<void> {
  for (const conn of conns) {
    await new Promise<void>((resolve, reject) => {
      conn.subscriptionBuilder().onApplied(() => resolve()).onError(() =>
        reject(new Error("settle"))
      )
        .subscribe(["SELECT * FROM pet WHERE id = 4294967295"]);
    });
  }
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

/** Runs a statement that answers no rows (DML). */
async function sqlAs(url: string, statement: string, token: string): Promise<void> {
  const response = await fetch(`${url}/v1/database/views-rls/sql`, {
    method: "POST",
    body: statement,
    headers: { authorization: `Bearer ${token}` },
  });
  assertEquals(response.status, 200, await response.text());
}

/** How many times the module logged "view <name> ran". */
async function viewRuns(url: string, ownerToken: string, name: string): Promise<number> {
  const response = await fetch(`${url}/v1/database/views-rls/logs?num_lines=10000`, {
    headers: { authorization: `Bearer ${ownerToken}` },
  });
  const text = await response.text();
  return text.split("\n").filter((line) => line.includes(`view ${name} ran`)).length;
}

Deno.test({
  name: "the official SDK: per-sender and anonymous views, read sets, RLS",
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
      await alice.conn.reducers.addPerson({ id: 1, name: "Alice", age: 30 });
      await bob.conn.reducers.addPerson({ id: 2, name: "Bob", age: 12 });
      await alice.conn.reducers.addPet({ id: 10, ownerId: 1, species: "cat" });
      const queries = [
        "SELECT * FROM me",
        "SELECT * FROM adults",
        "SELECT * FROM pet_count",
        "SELECT * FROM first_person",
        "SELECT * FROM fragile",
        "SELECT * FROM secret",
      ];
      await subscribe(alice.conn, queries);
      await subscribe(bob.conn, queries);

      await t.step("a per-sender view: each client sees its own rows", () => {
        assertEquals([...alice.conn.db.me.iter()].map((row) => row.name), ["Alice"]);
        assertEquals([...bob.conn.db.me.iter()].map((row) => row.name), ["Bob"]);
      });

      await t.step("anonymous views: query builder, count, option", () => {
        for (const client of [alice, bob]) {
          assertEquals([...client.conn.db.adults.iter()].map((row) => row.id), [1]);
          assertEquals([...client.conn.db.petCount.iter()].map((row) => row.count), [1n]);
          assertEquals([...client.conn.db.firstPerson.iter()].map((row) => row.name), ["Alice"]);
        }
      });

      await t.step(
        "an update of a view row with a primary key is onUpdate, for its sender only",
        async () => {
          const bobUpdates: string[] = [];
          let aliceMeEvents = 0;
          bob.conn.db.me.onUpdate((_ctx, before, after) =>
            bobUpdates.push(`${before.name}->${after.name}`)
          );
          alice.conn.db.me.onInsert(() => aliceMeEvents++);
          alice.conn.db.me.onDelete(() => aliceMeEvents++);
          alice.conn.db.me.onUpdate(() => aliceMeEvents++);
          await bob.conn.reducers.setName({ id: 2, name: "Robert" });
          await eventually(() => bobUpdates.length === 1, "Bob's onUpdate");
          await settle(alice.conn);
          assertEquals(bobUpdates, ["Bob->Robert"]);
          assertEquals(aliceMeEvents, 0);
          assertEquals([...bob.conn.db.me.iter()].map((row) => row.name), ["Robert"]);
        },
      );

      await t.step("a view is re-run only when its read set is touched", async () => {
        // me reads person through the ident index (one point per sender); pet_count reads all
        // of pet (count()).
        const meBefore = await viewRuns(server.url, owner.token, "me");
        const countBefore = await viewRuns(server.url, owner.token, "pet_count");
        await alice.conn.reducers.addPet({ id: 11, ownerId: 1, species: "dog" });
        await eventually(
          () => [...bob.conn.db.petCount.iter()].map((row) => row.count)[0] === 2n,
          "pet_count 2",
        );
        assertEquals(await viewRuns(server.url, owner.token, "me"), meBefore);
        assertEquals(await viewRuns(server.url, owner.token, "pet_count"), countBefore + 1);
        // Renaming Bob touches Bob's ident point only: Alice's instance is not re-run.
        await bob.conn.reducers.setName({ id: 2, name: "Bobby" });
        await eventually(
          () => [...bob.conn.db.me.iter()].map((row) => row.name)[0] === "Bobby",
          "Bobby",
        );
        const meAfter = await viewRuns(server.url, owner.token, "me");
        console.log(
          `view runs: me ${meBefore} -> ${meAfter}, pet_count ${countBefore} -> ` +
            `${await viewRuns(server.url, owner.token, "pet_count")}`,
        );
        assertEquals(meAfter, meBefore + 1);
      });

      await t.step("a failing view rolls the writing transaction back", async () => {
        let failure: unknown;
        try {
          await alice.conn.reducers.setFail({ fail: true });
        } catch (error) {
          failure = error;
        }
        assert(failure !== undefined, "set_fail must fail: the fragile view throws");
        assertEquals(await sql(server.url, "SELECT * FROM flag", owner.token), []);
        assertEquals([...alice.conn.db.fragile.iter()].map((row) => row.ok), [1n]);
      });

      await t.step(
        "owner DML over /sql refreshes views and fails with a failing view",
        async () => {
          const renamed: string[] = [];
          bob.conn.db.me.onUpdate((_ctx, _before, after) => renamed.push(after.name));
          await sqlAs(server.url, "UPDATE person SET name = 'Robbie' WHERE id = 2", owner.token);
          await eventually(() => renamed.includes("Robbie"), "Bob's view after owner DML");
          const refused = await fetch(`${server.url}/v1/database/views-rls/sql`, {
            method: "POST",
            body: "INSERT INTO flag (id, fail) VALUES (1, true)",
            headers: { authorization: `Bearer ${owner.token}` },
          });
          const text = await refused.text();
          assertEquals(refused.status, 400, text);
          assertEquals(await sql(server.url, "SELECT * FROM flag", owner.token), []);
        },
      );

      await t.step("RLS: B never receives A's rows; the owner sees all", async () => {
        const bobSaw: string[] = [];
        bob.conn.db.secret.onInsert((_ctx, row) => bobSaw.push(row.text));
        await alice.conn.reducers.addSecret({ id: 1, text: "alice's" });
        await bob.conn.reducers.addSecret({ id: 2, text: "bob's" });
        await eventually(() => bobSaw.length === 1, "Bob's own secret");
        await settle(alice.conn, bob.conn);
        assertEquals(bobSaw, ["bob's"]);
        assertEquals([...alice.conn.db.secret.iter()].map((row) => row.text), ["alice's"]);
        assertEquals([...bob.conn.db.secret.iter()].map((row) => row.text), ["bob's"]);
        // One-off reads as a non-owner (/sql runs the same engine as a WebSocket OneOffQuery).
        const bobSql = await sql(server.url, "SELECT * FROM secret", bob.token);
        assertEquals(bobSql.map((row) => row[2]), ["bob's"]);
        assertEquals(await sql(server.url, "SELECT * FROM secret WHERE id = 1", bob.token), []);
        // The owner bypasses RLS, over SQL and in a subscription.
        const all = await sql(server.url, "SELECT * FROM secret", owner.token);
        assertEquals(all.map((row) => row[2]).sort(), ["alice's", "bob's"]);
        const ownerConn = await connect(server.url, owner.token);
        open.push(ownerConn.conn);
        await subscribe(ownerConn.conn, ["SELECT * FROM secret"]);
        assertEquals([...ownerConn.conn.db.secret.iter()].map((row) => row.text).sort(), [
          "alice's",
          "bob's",
        ]);
      });
    } finally {
      for (const conn of open) {
        try {
          conn.disconnect();
        } catch { /* already closed */ }
      }
      await server.close();
    }
  },
});
