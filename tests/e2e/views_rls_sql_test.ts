/**
 * Views and row-level security over HTTP (issue #11): `/sql` reads a per-sender view per caller,
 * anonymous views (rows, option, count, query builder), a failing view answers with an error,
 * the hidden argument column is not in scope, and an RLS-protected table shows each non-owner
 * only their rows while the owner sees all.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import {
  call,
  fixtureBundle,
  parseWithBigInts,
  publish,
  startTestServer,
} from "../support/server.ts";

interface SqlAnswer {
  status: number;
  text: string;
  rows: unknown[][];
}

async function sql(url: string, query: string, token?: string): Promise<SqlAnswer> {
  const response = await fetch(`${url}/v1/database/views-rls/sql`, {
    method: "POST",
    body: query,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await response.text();
  const rows = response.status === 200
    ? ((parseWithBigInts(text) as { rows: unknown[][] }[])[0].rows)
    : [];
  return { status: response.status, text, rows };
}

async function newToken(url: string): Promise<{ token: string; identity: string }> {
  const response = await fetch(`${url}/v1/identity`, { method: "POST" });
  return await response.json();
}

Deno.test({
  name: "views and row-level security through /sql and reducers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      const owner = await publish(server.url, "views-rls", await fixtureBundle("views_rls"));
      const alice = await newToken(server.url);
      const bob = await newToken(server.url);
      const ok = async (name: string, args: unknown[], token: string) => {
        const answer = await call(server.url, "views-rls", name, args, token);
        assertEquals(answer.status, 200, `${name}: ${answer.text}`);
      };
      await ok("add_person", [1, "Alice", 30], alice.token);
      await ok("add_person", [2, "Bob", 12], bob.token);
      await ok("add_pet", [10, 1, "cat"], alice.token);

      await t.step("a per-sender view answers each caller with their own rows", async () => {
        const forAlice = await sql(server.url, "SELECT * FROM me", alice.token);
        assertEquals(forAlice.status, 200, forAlice.text);
        assertEquals(forAlice.rows.map((row) => row[2]), ["Alice"]);
        const forBob = await sql(server.url, "SELECT * FROM me", bob.token);
        assertEquals(forBob.status, 200, forBob.text);
        assertEquals(forBob.rows.map((row) => row[2]), ["Bob"]);
        const owner = await sql(server.url, "SELECT * FROM me WHERE age > 100", alice.token);
        assertEquals(owner.rows, []);
      });

      await t.step("anonymous views: query builder, count, option", async () => {
        const adults = await sql(server.url, "SELECT * FROM adults", bob.token);
        assertEquals(adults.status, 200, adults.text);
        assertEquals(adults.rows.map((row) => row[0]), [1]);
        const count = await sql(server.url, "SELECT * FROM pet_count", bob.token);
        assertEquals(count.rows, [[1]]);
        const first = await sql(server.url, "SELECT * FROM first_person", bob.token);
        assertEquals(first.rows.map((row) => row[2]), ["Alice"]);
        const hidden = await sql(server.url, "SELECT arg_hash FROM me", bob.token);
        assertEquals(hidden.status, 400);
      });

      await t.step("a view that fails answers the query with an error", async () => {
        assertEquals((await sql(server.url, "SELECT * FROM fragile", alice.token)).rows, [[1]]);
        // Nothing subscribes to `fragile`, so no instance is live and the write commits; the
        // next read runs the view, which now throws.
        const set = await call(server.url, "views-rls", "set_fail", [true], alice.token);
        assertEquals(set.status, 200, set.text);
        const read = await sql(server.url, "SELECT * FROM fragile", alice.token);
        assertEquals(read.status, 400);
        assertMatch(read.text, /The instance encountered a fatal error/);
      });

      await t.step("RLS: each non-owner sees only their rows, the owner sees all", async () => {
        await ok("add_secret", [1, "alice's"], alice.token);
        await ok("add_secret", [2, "bob's"], bob.token);
        const forAlice = await sql(server.url, "SELECT * FROM secret", alice.token);
        assertEquals(forAlice.rows.map((row) => row[2]), ["alice's"]);
        const forBob = await sql(server.url, "SELECT * FROM secret WHERE id = 1", bob.token);
        assertEquals(forBob.rows, []);
        const forOwner = await sql(server.url, "SELECT * FROM secret", owner.token);
        assertEquals(forOwner.rows.map((row) => row[2]).sort(), ["alice's", "bob's"]);
      });
    } finally {
      await server.close();
    }
  },
});
