/**
 * The /sql conformance cases (query/testdata/sql_conformance.json) against a real datastore
 * holding the conformance fixture: parse, type, row limit, evaluate; DML in a transaction that
 * commits or rolls back as the database worker runs it (worker/sql_host.ts).
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { compileProductDecoder, type Value } from "../protocol/mod.ts";
import { Datastore, type IndexSchema, type TableSchema } from "../storage/mod.ts";
import { SqlError } from "./sql_error.ts";
import { checkRowLimit, compileSql, evaluateSelect, executeDml } from "./sql_eval.ts";
import { type CommittedState, compileSubscriptionQuery } from "./execute.ts";
import { estimatePlanRowsScanned, estimateSelectRowsScanned } from "./row_estimate.ts";
import { datastoreSqlState, mutTxWriter } from "./sql_state.ts";
import { ST_VAR_SCHEMA, type SystemTableSource, type UserTableInfo } from "./system_tables.ts";
import {
  encodeRow,
  FIXTURE_ROWS,
  HIT,
  ID_A,
  ID_B,
  ID_C,
  ID_O,
  identityHex,
  labelOf,
  makeSchema,
  NUM,
  PERSON,
  PET,
  TAG,
  VAULT,
} from "./_test_fixture.ts";

interface Outcome {
  labels?: string[];
  rows?: unknown[][];
  count?: number;
  columns?: string[];
  stats?: [number, number, number];
  exact?: string;
  error?: string;
}
interface Check extends Outcome {
  sql: string;
  as?: Who;
}
interface Case extends Check {
  setup?: string[];
  after?: Check[];
}
type Who = "A" | "B" | "C" | "O";

const file = new URL("./testdata/sql_conformance.json", import.meta.url);
const { cases } = JSON.parse(await Deno.readTextFile(file)) as { cases: Case[] };
const IDENTITIES: Record<Who, bigint> = { A: ID_A, B: ID_B, C: ID_C, O: ID_O };

let nextIndexId = 1;
function index(table: string, column: string, columns: number[], unique: boolean): IndexSchema {
  const name = `${table}_${column}_idx_btree`;
  return {
    indexId: nextIndexId++,
    name,
    sourceName: name,
    accessorName: undefined,
    algorithm: "btree",
    columns,
    unique,
  };
}

/** The fixture tables with user table ids, primary keys and the indexes of §9.2. */
function withKeys(
  base: TableSchema,
  tableId: number,
  keys: { pk?: boolean; unique?: [string, number][]; btree?: [string, number][] },
): TableSchema {
  const indexes: IndexSchema[] = [];
  const uniqueConstraints: number[][] = [];
  if (keys.pk) {
    indexes.push(index(base.name, base.rowType.elements[0].name!, [0], true));
    uniqueConstraints.push([0]);
  }
  for (const [name, column] of keys.unique ?? []) {
    indexes.push(index(base.name, name, [column], true));
    uniqueConstraints.push([column]);
  }
  for (const [name, column] of keys.btree ?? []) {
    indexes.push(index(base.name, name, [column], false));
  }
  return { ...base, tableId, primaryKey: keys.pk ? [0] : [], indexes, uniqueConstraints };
}

const COUNTER: TableSchema = {
  ...withKeys(
    makeSchema(0, "counter", [["id", { tag: "U64" }], ["label", { tag: "String" }]]),
    4102,
    { pk: true },
  ),
  sequences: [{ column: 0, start: undefined, min: undefined, max: undefined, increment: 1n }],
};
const TABLES: TableSchema[] = [
  withKeys(PERSON, 4096, { pk: true, unique: [["ident", 4]], btree: [["age", 2]] }),
  withKeys(PET, 4097, { pk: true, btree: [["owner_id", 1]] }),
  withKeys(TAG, 4098, {}),
  withKeys(NUM, 4099, { pk: true }),
  withKeys(VAULT, 4100, { pk: true }),
  withKeys(HIT, 4101, { btree: [["target", 0]] }),
  COUNTER,
];

const SOURCE: SystemTableSource = {
  userTables: () =>
    TABLES.map((schema): UserTableInfo => ({
      schema,
      constraintNames: schema.uniqueConstraints.map((c) => `${schema.name}_${c.join("_")}_key`),
      sequenceNames: schema.sequences.map((s) => `${schema.name}_${s.column}_seq`),
      columnAccessors: schema.rowType.elements.map((e) => e.name!),
      schedule: undefined,
    })),
  clients: () => [],
  rlsRules: () => [],
  views: () => [],
};

function seeded(): Datastore {
  const datastore = new Datastore([...TABLES, ST_VAR_SCHEMA]);
  const tx = datastore.beginMutTx();
  for (const [schema, row] of Object.values(FIXTURE_ROWS)) {
    tx.insert(TABLES.find((t) => t.name === schema.name)!.tableId, row);
  }
  tx.commit();
  return datastore;
}

function substitute(sql: string): string {
  return sql.replaceAll("<I_A>", identityHex(ID_A)).replaceAll("<I_B>", identityHex(ID_B))
    .replaceAll("<I_O>", identityHex(ID_O));
}

type Result =
  | { columns: string[]; rows: Uint8Array[]; values: unknown[][]; stats: number[] }
  | { error: string };

/** One statement as the database worker runs it. */
function run(datastore: Datastore, sql: string, who: Who): Result {
  const context = { sender: IDENTITIES[who], isOwner: who === "O" };
  const state = datastoreSqlState(datastore, SOURCE);
  try {
    const plan = compileSql(substitute(sql), state, context);
    if (plan.kind === "select") {
      checkRowLimit(plan, state, context);
      const result = evaluateSelect(plan, state);
      const decode = compileProductDecoder(result.columns, result.typespace);
      return {
        columns: result.columns.elements.map((e) => e.name!),
        rows: result.rows,
        values: result.rows.map((row) => (decode(row) as Value[]).map(plain)),
        stats: [0, 0, 0],
      };
    }
    const tx = datastore.beginMutTx();
    try {
      const counts = executeDml(plan, mutTxWriter(tx));
      tx.commit();
      return {
        columns: [],
        rows: [],
        values: [],
        stats: [counts.rowsInserted, counts.rowsDeleted, counts.rowsUpdated],
      };
    } catch (error) {
      tx.rollback();
      throw error;
    }
  } catch (error) {
    ok(error instanceof Error, String(error));
    if (!(error instanceof SqlError) && !/unique/i.test(error.message)) throw error;
    return { error: error.message };
  }
}

/** JSON-comparable form of a decoded value. */
function plain(value: Value): unknown {
  if (typeof value === "bigint") {
    return Number.isSafeInteger(Number(value)) ? Number(value) : String(value);
  }
  if (value instanceof Uint8Array) {
    return `0x${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) {
    return { tag: value.tag, value: plain(value.value) };
  }
  return value;
}

function sorted(rows: unknown[]): string[] {
  return rows.map((row) => JSON.stringify(row)).sort();
}

function check(result: Result, expected: Outcome): void {
  if (expected.exact !== undefined || expected.error !== undefined) {
    if (!("error" in result)) throw new Error(`expected an error, got ${sorted(result.values)}`);
    if (expected.exact !== undefined) deepStrictEqual(result.error, substitute(expected.exact));
    else {
      ok(
        result.error.includes(expected.error!),
        `"${result.error}" lacks "${expected.error}"`,
      );
    }
    return;
  }
  ok(!("error" in result), `unexpected error: ${"error" in result ? result.error : ""}`);
  if (expected.labels !== undefined) {
    deepStrictEqual(result.rows.map(labelOf).sort(), [...expected.labels].sort());
  }
  if (expected.rows !== undefined) deepStrictEqual(sorted(result.values), sorted(expected.rows));
  if (expected.count !== undefined) deepStrictEqual(result.rows.length, expected.count);
  if (expected.columns !== undefined) deepStrictEqual(result.columns, expected.columns);
  if (expected.stats !== undefined) deepStrictEqual(result.stats, expected.stats);
}

Deno.test("the /sql conformance cases give SpacetimeDB's rows, counts and error texts", () => {
  ok(cases.length >= 150, `only ${cases.length} cases`);
  const failures: string[] = [];
  for (const c of cases) {
    const datastore = seeded();
    const label = `${JSON.stringify(c.sql)} as ${c.as ?? "O"}`;
    try {
      for (const sql of c.setup ?? []) {
        const result = run(datastore, sql, "O");
        ok(!("error" in result), `setup ${sql} failed: ${"error" in result ? result.error : ""}`);
      }
      check(run(datastore, c.sql, c.as ?? "O"), c);
      for (const after of c.after ?? []) {
        try {
          check(run(datastore, after.sql, after.as ?? "O"), after);
        } catch (error) {
          throw new Error(`then ${JSON.stringify(after.sql)}: ${(error as Error).message}`);
        }
      }
      datastore.checkInvariants();
    } catch (error) {
      failures.push(`${label}: ${(error as Error).message.split("\n").slice(0, 8).join(" ")}`);
    }
  }
  deepStrictEqual(failures, []);
});

Deno.test("a /sql join that would build more tuples than the bound is refused", () => {
  const datastore = seeded();
  const context = { sender: ID_O, isOwner: true };
  const state = datastoreSqlState(datastore, SOURCE);
  const plan = compileSql("SELECT person.* FROM person CROSS JOIN pet", state, context);
  if (plan.kind !== "select") throw new Error("expected a SELECT");
  deepStrictEqual(evaluateSelect(plan, state, { joinRowsMax: 12 }).rows.length, 12);
  let refused: unknown;
  try {
    evaluateSelect(plan, state, { joinRowsMax: 11 });
  } catch (error) {
    refused = error;
  }
  ok(refused instanceof SqlError, String(refused));
  deepStrictEqual(
    refused.message,
    "The query joins more than 11 rows; add a join condition or a filter",
  );
  // LIMIT stops the join early: the bound counts what is built, not what could be.
  const limited = compileSql("SELECT person.* FROM person CROSS JOIN pet LIMIT 5", state, context);
  if (limited.kind !== "select") throw new Error("expected a SELECT");
  deepStrictEqual(evaluateSelect(limited, state, { joinRowsMax: 11 }).rows.length, 5);
});

Deno.test("a /sql SELECT and the same one-off or subscription query get one row estimate", () => {
  const datastore = seeded();
  const context = { sender: ID_O, isOwner: true };
  const state = datastoreSqlState(datastore, SOURCE);
  const committed: CommittedState = {
    tableIdFromName: state.tableIdFromName,
    schema: state.schema,
    committedRows: (tableId) => datastore.committedRows(tableId),
  };
  // person: 3 rows (pk id, unique ident, btree age: 30, 25, 30); pet: 4 rows (btree owner_id:
  // 1, 1, 2, 99); tag: 2 rows, no index.
  const cases: [string, number][] = [
    ["SELECT * FROM person", 3],
    ["SELECT * FROM person WHERE id = 1", 1], // a unique point
    ["SELECT * FROM person WHERE age = 30", 1], // 3 rows / 2 ages
    ["SELECT * FROM person WHERE name = 'Bob'", 6], // a filter over a scan
    ["SELECT * FROM person WHERE id = 1 AND name = 'Bob'", 2], // a point, then a filter
    // Index joins: lhs scanned + lhs rows × rows per probe (1 when unique).
    ["SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id", 6],
    ["SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id", 8],
    // The probe side has no index: both scanned + the product.
    ["SELECT person.* FROM person JOIN tag ON person.id = tag.person_id", 11],
    // A filtered lhs shrinks the join (an index point on age).
    ["SELECT pet.* FROM person JOIN pet ON person.id = pet.owner_id WHERE person.age = 30", 2],
    // Only the right table is filtered: it becomes the lhs (6 scanned, 3 probes).
    [
      "SELECT person.* FROM pet JOIN person ON person.id = pet.owner_id WHERE person.name = 'Bob'",
      9,
    ],
    // Both filtered: 6 + 3 probes + the probe side's filter over 3 joined rows.
    [
      "SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id " +
      "WHERE pet.species = 'cat' AND person.name = 'Bob'",
      12,
    ],
    ["SELECT person.* FROM person CROSS JOIN pet", 19],
    // Three tables, only the second filtered: the first join swaps its sides as with two
    // (person scanned and filtered 6, 3 probes of pet.owner_id, then tag: 2 + 3 × 2).
    [
      "SELECT person.* FROM pet JOIN person ON person.id = pet.owner_id " +
      "JOIN tag ON tag.person_id = person.id WHERE person.name = 'Bob'",
      17,
    ],
  ];
  const failures: string[] = [];
  for (const [sql, expected] of cases) {
    const select = compileSql(sql, state, context);
    if (select.kind !== "select") throw new Error(`expected a SELECT: ${sql}`);
    const viaSql = estimateSelectRowsScanned(select, state);
    const plan = compileSubscriptionQuery(sql, committed, context, { subscription: false });
    const viaPlan = estimatePlanRowsScanned(plan, committed);
    if (viaSql !== BigInt(expected) || viaPlan !== BigInt(expected)) {
      failures.push(`${sql}: /sql ${viaSql}, query plan ${viaPlan}, expected ${expected}`);
    }
  }
  deepStrictEqual(failures, []);
});

Deno.test("an index point scan takes an index of at most 3 columns, the first on a tie", () => {
  // SpacetimeDB's IxScanFromPredicates: the widest index of at most 3 columns whose columns
  // WHERE equalities all fix; on a tie the first in the table's index order, whatever the WHERE
  // order. grid (a, b, c, d), indexes in order: (a, b, c, d), (c), (b), (a, b, d); 6 rows, b
  // takes 2 values (3 rows per key), c and (a, b, c, d) 6 (1 row), (a, b, d) 4 (1 row).
  const grid: TableSchema = makeSchema(
    4200,
    "grid",
    ["a", "b", "c", "d"].map((name) => [name, { tag: "U32" }]),
    { indexes: [[0, 1, 2, 3], [2], [1], [0, 1, 3]] },
  );
  const datastore = new Datastore([grid, ST_VAR_SCHEMA]);
  const tx = datastore.beginMutTx();
  const rows = [[1, 1, 1, 1], [1, 1, 2, 1], [1, 1, 3, 2], [2, 2, 4, 2], [2, 2, 5, 3], [2, 2, 6, 3]];
  for (const row of rows) tx.insert(grid.tableId, encodeRow(grid, row));
  tx.commit();
  const state = datastoreSqlState(datastore, {
    ...SOURCE,
    userTables: () => [{
      schema: grid,
      constraintNames: [],
      sequenceNames: [],
      columnAccessors: ["a", "b", "c", "d"],
      schedule: undefined,
    }],
  });
  const committed: CommittedState = {
    tableIdFromName: state.tableIdFromName,
    schema: state.schema,
    committedRows: (tableId) => datastore.committedRows(tableId),
  };
  const context = { sender: ID_O, isOwner: true };
  const cases: [string, number][] = [
    ["SELECT * FROM grid WHERE b = 1", 3],
    ["SELECT * FROM grid WHERE a = 1 AND b = 1 AND d = 1", 1], // a 3-column point
    // All four columns fixed: not the 4-column index but (a, b, d), then a filter for c: 1 + 1.
    ["SELECT * FROM grid WHERE a = 1 AND b = 1 AND c = 1 AND d = 1", 2],
    ["SELECT * FROM grid WHERE d = 1 AND c = 1 AND b = 1 AND a = 1", 2],
    // (c) and (b) tie: (c) comes first in the index order, in either WHERE order: 1 + 1.
    ["SELECT * FROM grid WHERE b = 1 AND c = 1", 2],
    ["SELECT * FROM grid WHERE c = 1 AND b = 1", 2],
  ];
  const failures: string[] = [];
  for (const [sql, expected] of cases) {
    const select = compileSql(sql, state, context);
    if (select.kind !== "select") throw new Error(`expected a SELECT: ${sql}`);
    const viaSql = estimateSelectRowsScanned(select, state);
    const plan = compileSubscriptionQuery(sql, committed, context, { subscription: false });
    const viaPlan = estimatePlanRowsScanned(plan, committed);
    if (viaSql !== BigInt(expected) || viaPlan !== BigInt(expected)) {
      failures.push(`${sql}: /sql ${viaSql}, query plan ${viaPlan}, expected ${expected}`);
    }
  }
  deepStrictEqual(failures, []);
});

Deno.test("a /sql LIMIT is the estimate only where SpacetimeDB merges it into a scan", () => {
  // SpacetimeDB pushes a LIMIT into a lone table or index scan of a `SELECT *` (or `t.*`) and
  // then estimates the limit; a column list, a COUNT or a filter left over keeps the LIMIT above
  // the plan, whose own estimate counts. person: 3 rows (pk id, btree age: 30, 25, 30).
  const datastore = seeded();
  const state = datastoreSqlState(datastore, SOURCE);
  const context = { sender: ID_O, isOwner: true };
  const cases: [string, number][] = [
    ["SELECT * FROM person LIMIT 2", 2],
    ["SELECT person.* FROM person LIMIT 10", 10],
    ["SELECT name FROM person LIMIT 1", 3],
    ["SELECT COUNT(*) AS n FROM person LIMIT 1", 3],
    ["SELECT * FROM person WHERE id = 1 LIMIT 10", 10], // the limit merged into the index scan
    ["SELECT name FROM person WHERE id = 1 LIMIT 10", 1],
    ["SELECT * FROM person WHERE id = 1 AND name = 'Bob' LIMIT 10", 2], // a filter stays above
    ["SELECT * FROM person WHERE name = 'Bob' LIMIT 1", 6],
  ];
  const failures: string[] = [];
  for (const [sql, expected] of cases) {
    const select = compileSql(sql, state, context);
    if (select.kind !== "select") throw new Error(`expected a SELECT: ${sql}`);
    const estimate = estimateSelectRowsScanned(select, state);
    if (estimate !== BigInt(expected)) failures.push(`${sql}: ${estimate}, expected ${expected}`);
  }
  deepStrictEqual(failures, []);
});
