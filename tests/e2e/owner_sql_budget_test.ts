/**
 * The database owner's /sql is time-limited too (`--owner-sql-budget-ms`): a cross join of two
 * large tables from the owner (or the dashboard's SQL console, which posts the owner's token to
 * the same route) used to hold the database's thread until it ended; now it stops at the
 * owner's budget with an error naming the flag, and the database keeps answering reducer calls.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

async function sql(url: string, database: string, query: string, token: string) {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: query,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "an owner's /sql cross join is stopped at the owner's budget and reducers still answer",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ limits: { ownerSqlBudgetMs: 500 } });
    try {
      const owner = await publish(server.url, "owner-sql", await fixtureBundle("redteam"));
      // 40,000 rows in calls of 1,000.
      for (let i = 0; i < 40; i++) {
        const filled = await call(server.url, "owner-sql", "fill", [1_000], owner.token);
        assertEquals(filled.status, 200, filled.text);
      }
      // 40k × 40k = 1.6e9 pairs, none kept: only a time budget stops it.
      const started = performance.now();
      const cross = await sql(
        server.url,
        "owner-sql",
        "SELECT a.* FROM item a JOIN item b WHERE b.n = 4000000000",
        owner.token,
      );
      console.log(
        `owner's cross join answered ${cross.status} after ` +
          `${Math.round(performance.now() - started)} ms`,
      );
      assertEquals(cross.status, 400, cross.text);
      assertMatch(cross.text, /owner's SQL time budget of 500 ms/);
      assertMatch(cross.text, /--owner-sql-budget-ms/);
      // The database still runs reducers and answers the owner's SQL.
      const more = await call(server.url, "owner-sql", "fill", [1], owner.token);
      assertEquals(more.status, 200, more.text);
      const count = await sql(
        server.url,
        "owner-sql",
        "SELECT COUNT(*) AS n FROM item",
        owner.token,
      );
      assertEquals(count.status, 200, count.text);
      assertMatch(count.text, /40001/);
    } finally {
      await server.close();
    }
  },
});
