/**
 * `/sql` beyond single-table reads, on a real server process with the official `spacetimedb`
 * SDK (2.8.3) as the subscriber: projections and joins answer with their own columns; the
 * owner's UPDATE/DELETE are transactions that reach a subscribed client like a reducer's
 * commit; a non-owner's DML is refused and changes nothing; the owner's writes survive a
 * SIGKILL of the server and a restart from the commit log.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/chat/index.ts";
import {
  fixtureBundle,
  parseWithBigInts,
  publish,
  type ServerProcess,
  startServerProcess,
} from "../support/server.ts";

interface SqlAnswer {
  status: number;
  text: string;
}

async function sql(url: string, query: string, token?: string): Promise<SqlAnswer> {
  const response = await fetch(`${url}/v1/database/chat/sql`, {
    method: "POST",
    body: query,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, text: await response.text() };
}

interface Statement {
  schema: { elements: { name: { some: string } }[] };
  rows: unknown[][];
  stats: { rows_inserted: number; rows_deleted: number; rows_updated: number };
}

function statement(answer: SqlAnswer): Statement {
  assertEquals(answer.status, 200, answer.text);
  const statements = parseWithBigInts(answer.text) as Statement[];
  assertEquals(statements.length, 1);
  return statements[0];
}

function connect(url: string, token?: string): Promise<{ conn: DbConnection; token: string }> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("chat")
      .withToken(token)
      .onConnect((conn, _identity, token) => resolve({ conn, token }))
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

async function eventually(predicate: () => boolean, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function messageTexts(conn: DbConnection): string[] {
  return [...conn.db.message.iter()].map((m) => m.text).sort();
}

Deno.test({
  name: "owner DML over /sql reaches SDK subscribers, is refused to others, survives SIGKILL",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-sql-dml-" });
    let server: ServerProcess | undefined = await startServerProcess({ dataDir });
    const open: DbConnection[] = [];
    try {
      const { token: owner } = await publish(server.url, "chat", await fixtureBundle("chat"));
      const alice = await connect(server.url);
      open.push(alice.conn);
      await subscribe(alice.conn, ["SELECT * FROM user", "SELECT * FROM message"]);
      for (const text of ["hello", "world", "spam"]) {
        await alice.conn.reducers.sendMessage({ text });
      }
      await eventually(() => messageTexts(alice.conn).length === 3, "three messages");

      // A projection answers with its own column list (this used to be a subscription error).
      const texts = statement(await sql(server.url, "SELECT text FROM message WHERE id = 1"));
      assertEquals(texts.schema.elements.map((e) => e.name.some), ["text"]);
      assertEquals(texts.rows, [["hello"]]);
      const joined = statement(
        await sql(
          server.url,
          "SELECT m.text AS t, u.online FROM message AS m JOIN user AS u ON m.sender = u.identity",
        ),
      );
      assertEquals(joined.schema.elements.map((e) => e.name.some), ["t", "online"]);
      assertEquals(joined.rows.length, 3);
      const count = statement(await sql(server.url, "SELECT COUNT(*) AS n FROM message"));
      assertEquals(count.rows, [[3]]);

      // The owner edits and deletes; Alice's SDK sees both like reducer commits.
      const updates: string[] = [];
      alice.conn.db.message.onUpdate((_ctx, old, row) => updates.push(`${old.text}->${row.text}`));
      const deletes: string[] = [];
      alice.conn.db.message.onDelete((_ctx, row) => deletes.push(row.text));
      const edit = statement(
        await sql(server.url, "UPDATE message SET text = 'edited by owner' WHERE id = 1", owner),
      );
      assertEquals(edit.stats, { rows_inserted: 0, rows_deleted: 0, rows_updated: 1 });
      assertEquals(edit.rows, []);
      assertEquals(edit.schema.elements, []);
      const removal = statement(
        await sql(server.url, "DELETE FROM message WHERE text = 'spam'", owner),
      );
      assertEquals(removal.stats, { rows_inserted: 0, rows_deleted: 1, rows_updated: 0 });
      await eventually(
        () => updates.length === 1 && deletes.length === 1,
        "the owner's update and delete at the SDK",
      );
      assertEquals(updates, ["hello->edited by owner"]);
      assertEquals(deletes, ["spam"]);
      assertEquals(messageTexts(alice.conn), ["edited by owner", "world"]);

      // Alice is not the owner: her DML is refused with SpacetimeDB's text and changes nothing.
      const refused = await sql(server.url, "DELETE FROM message", alice.token);
      assertEquals(refused.status, 400);
      assert(
        /^Caller [0-9a-f]{64} is not authorized to run SQL DML statements$/.test(refused.text),
        refused.text,
      );
      const anonymous = await sql(server.url, "UPDATE message SET text = 'x'");
      assertEquals(anonymous.status, 400);
      assert(/is not authorized to run SQL DML statements/.test(anonymous.text), anonymous.text);
      assertEquals(messageTexts(alice.conn), ["edited by owner", "world"]);
      const unchanged = statement(await sql(server.url, "SELECT COUNT(*) AS n FROM message"));
      assertEquals(unchanged.rows, [[2]]);

      // A constraint violation is a clear error and commits nothing.
      const duplicate = await sql(server.url, "UPDATE message SET id = 2 WHERE id = 1", owner);
      assertEquals(duplicate.status, 400);
      assert(/unique/i.test(duplicate.text), duplicate.text);
      // SET row_limit is stored in st_var, which is logged like any table.
      statement(await sql(server.url, "SET row_limit = 1", owner));

      // SIGKILL: every acknowledged /sql write is durable; the restart replays them.
      for (const conn of open) conn.disconnect();
      open.length = 0;
      await server.stop("SIGKILL");
      server = await startServerProcess({ dataDir });
      const after = statement(await sql(server.url, "SELECT id, text FROM message", owner));
      const rows = after.rows.map(([id, text]) => `${id}:${text}`).sort();
      assertEquals(rows, ["1:edited by owner", "2:world"]);
      const limit = statement(await sql(server.url, "SHOW row_limit"));
      // Untyped SATS-JSON: the StVarValue sum as [tag, payload]; tag 8 is U64.
      assertEquals(limit.rows, [[[8, 1]]]);
      const limited = await sql(server.url, "SELECT * FROM message");
      assertEquals(limited.status, 400);
      assertEquals(limited.text, "Estimated cardinality (2 rows) exceeds limit (1 rows)");

      statement(await sql(server.url, "DELETE FROM st_var WHERE name = 'row_limit'", owner));

      // A fresh SDK client sees the recovered state.
      const bob = await connect(server.url);
      open.push(bob.conn);
      await subscribe(bob.conn, ["SELECT * FROM message"]);
      assertEquals(messageTexts(bob.conn), ["edited by owner", "world"]);
    } finally {
      for (const conn of open) conn.disconnect();
      await server?.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
