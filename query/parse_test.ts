import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { SQL_BYTES_MAX, SQL_EXPR_DEPTH_MAX } from "../lib/limits.ts";
import { tokenize } from "./lexer.ts";
import {
  isSelectStarFromStar,
  parseSelect,
  parseSqlStatement,
  parseSubscriptionQuery,
} from "./parse.ts";
import { SqlError } from "./sql_error.ts";
import { parseDecimalInteger, parseTimestampMicros } from "./_literal.ts";

function sqlError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    ok(error instanceof SqlError, `expected SqlError, got ${String(error)}`);
    return error.message;
  }
  throw new Error("expected an SqlError");
}

Deno.test("tokenize() unescapes quotes and keeps number and hex text raw", () => {
  const tokens = tokenize(`"a""b" 'it''s' -1.5e3 0xAb X'cd' :sender -- c\n/* d */ <> !=`);
  deepStrictEqual(
    tokens.map((
      t,
    ) => [t.kind, "text" in t ? t.text : "value" in t ? t.value : "digits" in t ? t.digits : ""]),
    [
      ["word", 'a"b'],
      ["string", "it's"],
      ["symbol", "-"],
      ["number", "1.5e3"],
      ["hex", "Ab"],
      ["hex", "cd"],
      ["param", ":sender"],
      ["symbol", "<>"],
      ["symbol", "!="],
      ["eof", ""],
    ],
  );
});

Deno.test("parseSubscriptionQuery() builds the AST with qualifiers, aliases and a signed literal", () => {
  const ast = parseSubscriptionQuery(
    `select P.* from "ns.t" as P where (P."x" = -9007199254740993) or ns.t.y <> 'q';`,
  );
  deepStrictEqual(ast.projection, { kind: "tableStar", table: "P" });
  deepStrictEqual(ast.from, { name: "ns.t", alias: "P" });
  const where = ast.where!;
  ok(where.kind === "or");
  ok(where.left.kind === "cmp" && where.right.kind === "cmp");
  deepStrictEqual(
    where.left.left.kind === "field" && [where.left.left.table, where.left.left.column],
    ["P", "x"],
  );
  deepStrictEqual(where.left.right.kind === "lit" && where.left.right.text, "-9007199254740993");
  deepStrictEqual(where.right.left.kind === "field" && where.right.left.table, "ns.t");
  deepStrictEqual(where.right.op, "<>");
});

Deno.test("AND binds tighter than OR", () => {
  const ast = parseSubscriptionQuery("SELECT * FROM t WHERE a = 1 OR b = 2 AND c = 3");
  ok(ast.where?.kind === "or" && ast.where.right.kind === "and");
});

Deno.test("the /sql SELECT keeps LIMIT and joins; the subscription grammar refuses LIMIT", () => {
  const ast = parseSelect("SELECT a.* FROM a JOIN b ON a.x = b.y CROSS JOIN c LIMIT 5");
  deepStrictEqual(ast.limit, "5");
  deepStrictEqual(ast.joins.map((j) => [j.table.name, j.on !== undefined]), [["b", true], [
    "c",
    false,
  ]]);
  ok(sqlError(() => parseSubscriptionQuery("SELECT * FROM a LIMIT 5")).startsWith("Unsupported: "));
});

Deno.test("expressions nested beyond the depth limit are refused, not overflowed", () => {
  const deep = `SELECT * FROM t WHERE ${"(".repeat(SQL_EXPR_DEPTH_MAX + 5)}a = 1${
    ")".repeat(SQL_EXPR_DEPTH_MAX + 5)
  }`;
  deepStrictEqual(
    sqlError(() => parseSubscriptionQuery(deep)),
    "Recursion limit exceeded, `sql-parser::parse_expr`",
  );
  const chain = `SELECT * FROM t WHERE ${Array(SQL_EXPR_DEPTH_MAX + 5).fill("a = 1").join(" OR ")}`;
  deepStrictEqual(
    sqlError(() => parseSubscriptionQuery(chain)),
    "Recursion limit exceeded, `sql-parser::parse_expr`",
  );
  // NOT is refused, but only after the chain is read: each NOT is one level of recursion.
  for (const parse of [parseSubscriptionQuery, parseSqlStatement]) {
    const nots = `SELECT * FROM t WHERE ${"NOT ".repeat(16_000)}a = 1`;
    deepStrictEqual(
      sqlError(() => parse(nots)),
      "Recursion limit exceeded, `sql-parser::parse_expr`",
    );
  }
  const fine = `SELECT * FROM t WHERE ${Array(100).fill("a = 1").join(" OR ")}`;
  ok(parseSubscriptionQuery(fine).where !== undefined);
});

Deno.test("queries over the length limit are refused with the first 120 characters", () => {
  const long = `SELECT * FROM t WHERE name = '${"x".repeat(SQL_BYTES_MAX)}'`;
  const message = sqlError(() => parseSubscriptionQuery(long));
  deepStrictEqual(message, `SQL query exceeds maximum allowed length: "${long.slice(0, 120)}..."`);
});

Deno.test("SELECT * FROM * is recognised in any case and spacing", () => {
  ok(isSelectStarFromStar("  select   *  from\t* "));
  ok(!isSelectStarFromStar("SELECT * FROM t"));
});

Deno.test("parseDecimalInteger() is exact for wide values and refuses fractions", () => {
  deepStrictEqual(parseDecimalInteger("-9007199254740993"), -9007199254740993n);
  deepStrictEqual(parseDecimalInteger("1e40"), 10n ** 40n);
  deepStrictEqual(parseDecimalInteger("1.5e1"), 15n);
  deepStrictEqual(parseDecimalInteger("300e-1"), 30n);
  deepStrictEqual(parseDecimalInteger("+7"), 7n);
  deepStrictEqual(parseDecimalInteger("0.000"), 0n);
  deepStrictEqual(parseDecimalInteger("1.05e1"), undefined);
  deepStrictEqual(parseDecimalInteger("1e-3"), undefined);
  deepStrictEqual(parseDecimalInteger("abc"), undefined);
  deepStrictEqual(parseDecimalInteger("."), undefined);
});

Deno.test("parseTimestampMicros() needs an offset, applies it and keeps microseconds", () => {
  deepStrictEqual(parseTimestampMicros("1970-01-01T00:00:00Z"), 0n);
  deepStrictEqual(parseTimestampMicros("1970-01-01T00:00:00.0000019Z"), 1n);
  deepStrictEqual(parseTimestampMicros("1970-01-01 02:00:00+02:00"), 0n);
  deepStrictEqual(parseTimestampMicros("1969-12-31T23:59:59.5Z"), -500_000n);
  deepStrictEqual(parseTimestampMicros("2025-02-10T15:45:30.123456Z"), 1739202330123456n);
  deepStrictEqual(parseTimestampMicros("2025-02-10"), undefined);
  deepStrictEqual(parseTimestampMicros("2025-02-10T15:45:30"), undefined);
  deepStrictEqual(parseTimestampMicros("2025-02-30T00:00:00Z"), undefined);
});

Deno.test("errors are SqlErrors with a stage code", () => {
  throws(
    () => parseSubscriptionQuery("SELECT * FROM t WHERE a +"),
    (e: unknown) => e instanceof SqlError && e.code === "unsupported",
  );
  throws(
    () => parseSubscriptionQuery("SELECT FROM"),
    (e: unknown) => e instanceof SqlError && e.code === "syntax",
  );
});
