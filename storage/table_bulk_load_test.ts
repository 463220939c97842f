/**
 * Bulk loading (snapshot restore) must leave a table exactly as inserting the same rows one by
 * one does: same row ids, same rows, same entries and iteration order in every key structure
 * (unique maps, B-trees of every key kind, hash multimaps, the content map of tables without a
 * unique constraint), and the table keeps working the same afterwards.
 */
import { deepStrictEqual, throws } from "node:assert/strict";
import type { AlgebraicType } from "../protocol/algebraic_type.ts";
import { seededRandom } from "../lib/random.ts";
import { Datastore } from "./datastore.ts";
import { DatastoreError } from "./datastore_error.ts";
import { concat, encode, randomValue, tableSchema } from "./_testing.ts";
import { KEY_MAX } from "./key_encoding.ts";
import type { IndexSchema, TableSchema } from "./schema.ts";
import { Table } from "./table.ts";

function columns(...types: [string, AlgebraicType["tag"]][]) {
  return {
    elements: types.map(([name, tag]) => ({ name, algebraicType: { tag } as AlgebraicType })),
  };
}

function index(
  indexId: number,
  columnList: number[],
  options: { unique?: boolean; algorithm?: IndexSchema["algorithm"] } = {},
): IndexSchema {
  const name = `i${indexId}`;
  return {
    indexId,
    name,
    sourceName: name,
    accessorName: name,
    algorithm: options.algorithm ?? "btree",
    columns: columnList,
    unique: options.unique ?? false,
  };
}

/** Tables covering every key structure; fixed-size ones get a row arena, the others not. */
const SCHEMAS: TableSchema[] = [
  // u64 primary key (Key64Map + Int64BTree), non-unique u32 and i64 B-trees, a u32 hash index.
  tableSchema({
    tableId: 1,
    name: "ledger",
    rowType: columns(["id", "U64"], ["from", "U32"], ["amount", "I64"], ["flag", "Bool"]),
    primaryKey: [0],
    uniqueConstraints: [[0]],
    indexes: [
      index(10, [0], { unique: true }),
      index(11, [1]),
      index(12, [2]),
      index(13, [1], { algorithm: "hash" }),
    ],
  }),
  // i32 unique (IntKeyMap + number B-tree), string B-tree, multi-column B-tree, unique hash on i64.
  tableSchema({
    tableId: 2,
    name: "people",
    rowType: columns(["id", "I32"], ["name", "String"], ["age", "U8"], ["serial", "I64"]),
    primaryKey: [0],
    uniqueConstraints: [[0], [3]],
    indexes: [
      index(20, [0], { unique: true }),
      index(21, [1]),
      index(22, [2, 1]),
      index(23, [3], { unique: true, algorithm: "hash" }),
    ],
  }),
  // No unique constraint: rows are found by content; a non-unique i64 B-tree.
  tableSchema({
    tableId: 3,
    name: "bag",
    rowType: columns(["x", "I64"], ["note", "String"]),
    indexes: [index(30, [0])],
  }),
  // Fixed-size, no constraint at all, u64 non-unique hash index.
  tableSchema({
    tableId: 4,
    name: "points",
    rowType: columns(["x", "U64"], ["y", "I16"]),
    indexes: [index(40, [0], { algorithm: "hash" }), index(41, [1])],
  }),
];

function randomRows(table: Table, count: number, seed: number): Uint8Array[] {
  const random = seededRandom(seed);
  const rows: Uint8Array[] = [];
  const seen = new Set<string>();
  const type = { kind: "product", fields: table.layout.columns } as const;
  while (rows.length < count) {
    const value = randomValue(type as never, random) as unknown[];
    // Few distinct values in the non-key columns, so indexes have runs of equal keys.
    if (table.schema.name === "ledger" || table.schema.name === "points") {
      value[1] = typeof value[1] === "bigint" ? value[1] % 7n : Number(value[1]) % 7;
    }
    const row = encode(type as never, value as never);
    try {
      // Keep rows that a row-by-row insert accepts (unique keys differ, no exact duplicates).
      if (!table.insertRow(row)) continue;
    } catch (error) {
      if (error instanceof DatastoreError) continue;
      throw error;
    }
    const label = row.join(",");
    if (seen.has(label)) continue;
    seen.add(label);
    rows.push(row);
  }
  return rows;
}

/** Everything observable about a table's rows and key structures. */
function describe(table: Table) {
  const ids = table.liveIds();
  const out: Record<string, unknown> = {
    count: table.count,
    rows: ids.map((id) => [id, [...table.row(id)]]),
  };
  for (const tableIndex of table.indexes) {
    const group = tableIndex.group;
    const keys = ids.map((id) => group.codec.fromRow(table.row(id)));
    out[`point ${tableIndex.schema.indexId}`] = keys.map((key) => table.pointIds(tableIndex, key));
    if (group.unique) {
      out[`unique ${tableIndex.schema.indexId}`] = keys.map((k) => group.unique!.get(k));
    }
    if (group.tree) {
      out[`tree ${tableIndex.schema.indexId}`] = group.tree.entries();
      const all = group.codec.numeric ? { lo: -Infinity, hi: Infinity } : { lo: "", hi: KEY_MAX };
      out[`range ${tableIndex.schema.indexId}`] = table.rangeIds(tableIndex, all);
    }
  }
  for (const id of ids) out[`identical ${id}`] = table.findIdentical(table.row(id));
  return out;
}

for (const schema of SCHEMAS) {
  for (const count of [0, 1, 65, 3000]) {
    Deno.test(`bulk load of ${count} rows of '${schema.name}' equals inserting them one by one`, () => {
      const source = new Table(schema, () => {});
      const rows = randomRows(source, count, 1000 + count + schema.tableId);
      const oneByOne = new Table(schema, () => {});
      for (const row of rows) oneByOne.insertRow(row);
      const bulk = new Table(schema, () => {});
      if (bulk.hasRowArena) {
        const framed = concat(
          ...rows.flatMap((row) => [new Uint8Array(new Uint32Array([row.length]).buffer), row]),
        );
        bulk.loadFixedRows(concat(new Uint8Array(3), framed), 3, rows.length);
      } else {
        bulk.loadRows(rows.map((row) => row.slice()));
      }
      bulk.checkInvariants();
      deepStrictEqual(describe(bulk), describe(oneByOne));
      // And both keep behaving the same: delete every third row, insert new ones.
      const more = randomRows(new Table(schema, () => {}), 200, 77 + count);
      for (const table of [bulk, oneByOne]) {
        table.beginTx();
        for (const id of table.liveIds().filter((id) => id % 3 === 0)) table.deleteRow(id);
        for (const row of more) {
          try {
            table.insertRow(row.slice());
          } catch (error) {
            if (!(error instanceof DatastoreError)) throw error;
          }
        }
        table.commitTx();
        table.checkInvariants();
      }
      deepStrictEqual(describe(bulk), describe(oneByOne));
    });
  }
}

Deno.test("a snapshot restore equals the datastore it was taken from, index by index", () => {
  const original = new Datastore(SCHEMAS);
  for (const schema of SCHEMAS) {
    const rows = randomRows(new Table(schema, () => {}), 2000, schema.tableId);
    const tx = original.beginMutTx();
    for (const row of rows) tx.insert(schema.tableId, row);
    tx.commit();
  }
  const restored = Datastore.importState(SCHEMAS, original.exportState());
  restored.checkInvariants();
  for (const schema of SCHEMAS) {
    deepStrictEqual(restored.committedRows(schema.tableId), original.committedRows(schema.tableId));
  }
  deepStrictEqual(restored.exportState(), original.exportState());
});

Deno.test("bulk load refuses two rows with the same unique key", () => {
  const schema = SCHEMAS[0];
  const row = encode(
    { kind: "product", fields: new Table(schema, () => {}).layout.columns } as never,
    [5n, 1, -3n, true] as never,
  );
  const other = row.slice();
  other[8] = 2; // same id, different `from`
  const framed = concat(
    ...[row, other].flatMap((r) => [new Uint8Array(new Uint32Array([r.length]).buffer), r]),
  );
  throws(() => new Table(schema, () => {}).loadFixedRows(framed, 0, 2), /repeats a unique key/);
  const bag = SCHEMAS[2];
  const bagRow = encode(
    { kind: "product", fields: new Table(bag, () => {}).layout.columns } as never,
    [-1n, "x"] as never,
  );
  throws(() => new Table(bag, () => {}).loadRows([bagRow, bagRow.slice()]), /repeats a row/);
});
