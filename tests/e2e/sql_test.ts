/**
 * POST /v1/database/:name/sql with the subscription grammar: rows as untyped
 * SATS-JSON with the table's schema; private tables for the owner only; errors 400.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { parseWithBigInts } from "../support/server.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { parseSqlResponse, renderStatement } from "../../cli/sql_format.ts";

Deno.test({
  name: "/sql answers single-table queries as SpacetimeDB's JSON",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const { token } = await publish(server.url, "kitchen", await fixtureBundle("kitchen"));
      for (const [id, email, age] of [[1, "a@x", 30], [2, "b@x", 40], [3, "c@x", 50]] as const) {
        assertEquals(
          (await call(server.url, "kitchen", "add_person", [id, email, age, "n"])).status,
          200,
        );
      }
      assertEquals((await call(server.url, "kitchen", "bump", ["hidden", 9, ""])).status, 200);
      const sql = async (query: string, auth?: string) => {
        const response = await fetch(`${server.url}/v1/database/kitchen/sql`, {
          method: "POST",
          body: query,
          headers: auth ? { authorization: `Bearer ${auth}` } : {},
        });
        return { status: response.status, text: await response.text() };
      };

      const adults = await sql("SELECT * FROM people WHERE age >= 40");
      assertEquals(adults.status, 200, adults.text);
      const [statement] = parseWithBigInts(adults.text) as [
        { schema: { elements: { name: { some: string } }[] }; rows: unknown[][]; stats: unknown },
      ];
      assertEquals(statement.schema.elements.map((e) => e.name.some), [
        "id",
        "email",
        "age",
        "nick",
      ]);
      assertEquals(statement.rows, [[2, "b@x", 40, "n"], [3, "c@x", 50, "n"]]);
      assertEquals(statement.stats, { rows_inserted: 0, rows_deleted: 0, rows_updated: 0 });

      // `counters` is private: the owner reads it, others are refused.
      const stranger = await sql("SELECT * FROM counters");
      assertEquals(stranger.status, 400);
      const owner = await sql("SELECT * FROM counters", token);
      assertEquals(owner.status, 200, owner.text);
      assertEquals((JSON.parse(owner.text) as { rows: unknown[] }[])[0].rows, [["hidden", 9]]);

      const bad = await sql("SELEKT nonsense");
      assertEquals(bad.status, 400);
      assertMatch(bad.text, /SELEKT|syntax|parse/i);
      const missing = await sql("SELECT * FROM nowhere");
      assertEquals(missing.status, 400);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "/sql answers columns of named types (structs, enums) inline, without type Refs",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      await publish(server.url, "named-types", await fixtureBundle("sql_named_types"));
      assertEquals((await call(server.url, "named-types", "add_shape", [170])).status, 200);
      const response = await fetch(`${server.url}/v1/database/named-types/sql`, {
        method: "POST",
        body: "SELECT * FROM shapes",
      });
      const text = await response.text();
      assertEquals(response.status, 200, text);
      const [statement] = JSON.parse(text);
      const cell = { Product: { elements: [{ name: { some: "b" }, algebraic_type: { U8: [] } }] } };
      const types = statement.schema.elements.map((e: { algebraic_type: unknown }) =>
        e.algebraic_type
      );
      assertEquals(types, [
        cell,
        { Product: { elements: [] } },
        {
          Sum: {
            variants: [
              { name: { some: "red" }, algebraic_type: { Product: { elements: [] } } },
              { name: { some: "shade" }, algebraic_type: { U8: [] } },
            ],
          },
        },
        { Array: cell },
        {
          Sum: {
            variants: [
              { name: { some: "some" }, algebraic_type: cell },
              { name: { some: "none" }, algebraic_type: { Product: { elements: [] } } },
            ],
          },
        },
      ]);
      assertEquals(statement.rows, [[[170], [], [1, 170], [[170], [171]], [0, [170]]]]);
      // So a client (the CLI here) can print them as SpacetimeDB's does.
      assertEquals(
        renderStatement(parseSqlResponse(JSON.parse(text))[0]).split("\n")[2].split("|").map((
          cell,
        ) => cell.trim()),
        ["(b = 170)", "()", "(shade = 170)", "[(b = 170), (b = 171)]", "(some = (b = 170))"],
      );
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name:
    "/sql describes columns of named enum and object types in full, as SpacetimeDB's schema does",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      await publish(server.url, "typed", await fixtureBundle("sql_typed_columns"));
      assertEquals((await call(server.url, "typed", "add_game", [7])).status, 200);
      const response = await fetch(`${server.url}/v1/database/typed/sql`, {
        method: "POST",
        body: "SELECT * FROM game",
      });
      const text = await response.text();
      assertEquals(response.status, 200, text);
      const [statement] = JSON.parse(text) as [
        { schema: { elements: { name: { some: string }; algebraic_type: unknown }[] } },
      ];
      // SpacetimeDB resolves a table's column types against the module's typespace: a client
      // reading the schema never meets a `Ref` it has no typespace for. Variant names are the
      // canonical ones (the default case conversion makes `Waiting` `waiting`).
      const unit = { Product: { elements: [] } };
      const phase = {
        Sum: {
          variants: [
            { name: { some: "waiting" }, algebraic_type: unit },
            { name: { some: "playing" }, algebraic_type: unit },
          ],
        },
      };
      assertEquals(statement.schema.elements, [
        { name: { some: "id" }, algebraic_type: { U32: [] } },
        { name: { some: "phase" }, algebraic_type: phase },
        {
          name: { some: "reward" },
          algebraic_type: {
            Sum: {
              variants: [
                { name: { some: "coins" }, algebraic_type: { U32: [] } },
                {
                  name: { some: "badge" },
                  algebraic_type: {
                    Product: {
                      elements: [
                        { name: { some: "title" }, algebraic_type: { String: [] } },
                        { name: { some: "tier" }, algebraic_type: { U8: [] } },
                      ],
                    },
                  },
                },
              ],
            },
          },
        },
        {
          name: { some: "next" },
          algebraic_type: {
            Sum: {
              variants: [
                { name: { some: "some" }, algebraic_type: phase },
                { name: { some: "none" }, algebraic_type: unit },
              ],
            },
          },
        },
      ]);
    } finally {
      await server.close();
    }
  },
});
