import { deepStrictEqual, notStrictEqual, ok, throws } from "node:assert/strict";
import type { AlgebraicType, Value } from "../protocol/algebraic_type.ts";
import { concat, encode, tableSchema, throwsCode } from "./_testing.ts";
import { Datastore } from "./datastore.ts";
import { compileType } from "./row_layout.ts";
import type { IndexSchema, TableSchema } from "./schema.ts";
import { decodeTxDelta, encodeTxDelta } from "./tx_delta.ts";

const bytesOf = (tag: AlgebraicType["tag"], value: Value) =>
  encode(compileType({ tag } as AlgebraicType, []), value);
const u8 = (v: number) => bytesOf("U8", v);
const u16 = (v: number) => bytesOf("U16", v);
const u32 = (v: number) => bytesOf("U32", v);
const u64 = (v: bigint) => bytesOf("U64", v);
const i16 = (v: number) => bytesOf("I16", v);
const str = (v: string) => bytesOf("String", v);
const bytes = (...v: number[]) => new Uint8Array(v);
const rowsOf = (...rows: Uint8Array[]) => concat(u32(rows.length), ...rows);

function index(
  indexId: number,
  name: string,
  columns: number[],
  options: { unique?: boolean; algorithm?: IndexSchema["algorithm"] } = {},
): IndexSchema {
  return {
    indexId,
    name,
    sourceName: `${name}_source`,
    accessorName: name,
    algorithm: options.algorithm ?? "btree",
    columns,
    unique: options.unique ?? false,
  };
}

function columns(...types: [string, AlgebraicType["tag"]][]) {
  return { elements: types.map(([name, tag]) => ({ name, algebraicType: { tag } as AlgebraicType })) };
}

const PERSON = 1, PAIR = 2, BAG = 3, EVENTS = 4, TWO_SEQ = 5, TINY = 6, USERS = 7;
const PERSON_ID = 10, PERSON_AGE = 11, PERSON_NAME = 12, PAIR_AB = 20, USERS_ID = 70, USERS_EMAIL = 71;

const SCHEMAS: TableSchema[] = [
  tableSchema({
    tableId: PERSON,
    name: "person",
    sourceName: "Person",
    rowType: columns(["id", "U32"], ["name", "String"], ["age", "U8"]),
    primaryKey: [0],
    uniqueConstraints: [[0]],
    indexes: [
      index(PERSON_ID, "person_id_idx_btree", [0], { unique: true }),
      index(PERSON_AGE, "person_age_idx_btree", [2]),
      index(PERSON_NAME, "person_name_idx_hash", [1], { algorithm: "hash" }),
    ],
    sequences: [{ column: 0, start: undefined, min: undefined, max: undefined, increment: 1n }],
  }),
  tableSchema({
    tableId: PAIR,
    name: "pair",
    rowType: columns(["a", "U8"], ["b", "U16"], ["c", "String"]),
    indexes: [index(PAIR_AB, "pair_a_b_idx_btree", [0, 1])],
  }),
  tableSchema({ tableId: BAG, name: "bag", rowType: columns(["x", "U8"]) }),
  tableSchema({ tableId: EVENTS, name: "events", rowType: columns(["v", "U32"]), isEvent: true }),
  tableSchema({
    tableId: TWO_SEQ,
    name: "two_seq",
    rowType: columns(["a", "U64"], ["b", "String"], ["c", "I16"]),
    uniqueConstraints: [[1]],
    sequences: [
      { column: 2, start: 100n, min: undefined, max: undefined, increment: 5n },
      { column: 0, start: undefined, min: undefined, max: undefined, increment: 1n },
    ],
  }),
  tableSchema({
    tableId: TINY,
    name: "tiny",
    rowType: columns(["id", "U8"]),
    uniqueConstraints: [[0]],
    sequences: [{ column: 0, start: 250n, min: undefined, max: undefined, increment: 1n }],
  }),
  tableSchema({
    tableId: USERS,
    name: "users",
    rowType: columns(["id", "U32"], ["email", "String"]),
    primaryKey: [0],
    uniqueConstraints: [[0], [1]],
    indexes: [
      index(USERS_ID, "users_id_idx_btree", [0], { unique: true }),
      index(USERS_EMAIL, "users_email_idx_btree", [1], { unique: true }),
    ],
  }),
];

const person = (id: number, name: string, age: number) => concat(u32(id), str(name), u8(age));
const pair = (a: number, b: number, c: string) => concat(u8(a), u16(b), str(c));
const user = (id: number, email: string) => concat(u32(id), str(email));

function fresh(): Datastore {
  return new Datastore(SCHEMAS);
}

function sorted(rows: Uint8Array[]): string[] {
  return rows.map((r) => [...r].join(",")).sort();
}

Deno.test("table and index names resolve by canonical and source name", () => {
  const ds = fresh();
  deepStrictEqual(ds.tableIdFromName("person"), PERSON);
  deepStrictEqual(ds.tableIdFromName("Person"), PERSON);
  deepStrictEqual(ds.tableIdFromName("nobody"), undefined);
  deepStrictEqual(ds.indexIdFromName("person_age_idx_btree"), PERSON_AGE);
  deepStrictEqual(ds.indexIdFromName("person_age_idx_btree_source"), PERSON_AGE);
  deepStrictEqual(ds.indexIdFromName("nope"), undefined);
  deepStrictEqual(ds.schema(PAIR).name, "pair");
  deepStrictEqual(ds.tables().length, SCHEMAS.length);
});

Deno.test("unknown table and index ids give NoSuchTable and NoSuchIndex", () => {
  const tx = fresh().beginMutTx();
  throwsCode(() => tx.insert(99, u8(1)), "NoSuchTable");
  throwsCode(() => tx.scan(99), "NoSuchTable");
  throwsCode(() => tx.count(99), "NoSuchTable");
  throwsCode(() => tx.clear(99), "NoSuchTable");
  throwsCode(() => tx.indexScanPoint(99, u8(1)), "NoSuchIndex");
  throwsCode(() => tx.update(PERSON, 99, person(1, "a", 1)), "NoSuchIndex");
  throwsCode(() => tx.update(PERSON, USERS_ID, person(1, "a", 1)), "NoSuchIndex");
  throwsCode(() => tx.deleteByIndexPoint(99, u8(1)), "NoSuchIndex");
});

Deno.test("insert rejects malformed rows with DecodeError", () => {
  const tx = fresh().beginMutTx();
  throwsCode(() => tx.insert(PERSON, concat(u32(1), str("ab")) /* missing age */), "DecodeError");
  throwsCode(() => tx.insert(PERSON, concat(person(1, "a", 2), u8(0))), "DecodeError");
  throwsCode(() => tx.insert(PERSON, concat(u32(1), bytes(1, 0, 0, 0, 0xff), u8(2))), "DecodeError");
  throwsCode(() => tx.insert(BAG, bytes()), "DecodeError");
  deepStrictEqual(tx.count(PERSON), 0);
  throwsCode(() => tx.deleteByRelation(BAG, bytes(2, 0, 0, 0, 1)), "DecodeError");
});

Deno.test("insert fires the sequence on zero and writes back the generated value", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  const first = tx.insert(PERSON, person(0, "ann", 30));
  deepStrictEqual(first.generated, u32(1));
  deepStrictEqual(first.row, person(1, "ann", 30));
  const second = tx.insert(PERSON, person(0, "bob", 31));
  deepStrictEqual(second.generated, u32(2));
  const explicit = tx.insert(PERSON, person(50, "cat", 32));
  deepStrictEqual(explicit.generated, bytes());
  deepStrictEqual(explicit.row, person(50, "cat", 32));
  deepStrictEqual(sorted(tx.scan(PERSON)), sorted([first.row, second.row, explicit.row]));
});

Deno.test("generated values come in ascending column order, each sequence with its own start and step", () => {
  const tx = fresh().beginMutTx();
  const result = tx.insert(TWO_SEQ, concat(u64(0n), str("x"), i16(0)));
  deepStrictEqual(result.generated, concat(u64(1n), i16(100)));
  deepStrictEqual(result.row, concat(u64(1n), str("x"), i16(100)));
  const next = tx.insert(TWO_SEQ, concat(u64(0n), str("y"), i16(7)));
  deepStrictEqual(next.generated, u64(2n));
  const third = tx.insert(TWO_SEQ, concat(u64(9n), str("z"), i16(0)));
  deepStrictEqual(third.generated, i16(105));
});

Deno.test("sequence values are not reused after a rollback and are reported at the next commit", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  deepStrictEqual(tx.insert(PERSON, person(0, "a", 1)).generated, u32(1));
  tx.rollback();
  deepStrictEqual(ds.committedCount(PERSON), 0);
  tx = ds.beginMutTx();
  deepStrictEqual(tx.insert(PERSON, person(0, "b", 1)).generated, u32(2));
  const delta = tx.commit();
  deepStrictEqual(delta.sequences, [{ tableId: PERSON, column: 0, next: 3n }]);
  tx = ds.beginMutTx();
  tx.insert(BAG, u8(1));
  deepStrictEqual(tx.commit().sequences, []);
});

Deno.test("a sequence past its column type's range throws AutoIncOverflow and writes nothing", () => {
  const tx = fresh().beginMutTx();
  for (let v = 250; v <= 255; v++) deepStrictEqual(tx.insert(TINY, u8(0)).generated, u8(v));
  throwsCode(() => tx.insert(TINY, u8(0)), "AutoIncOverflow");
  deepStrictEqual(tx.count(TINY), 6);
});

Deno.test("inserting an identical row is a silent no-op, also with unique columns", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  tx.insert(PERSON, person(1, "ann", 30));
  tx.insert(BAG, u8(7));
  tx.commit();
  tx = ds.beginMutTx();
  tx.insert(PERSON, person(1, "ann", 30)); // identical to a committed row
  tx.insert(BAG, u8(7));
  tx.insert(BAG, u8(8));
  tx.insert(BAG, u8(8)); // identical to a row inserted earlier in this tx
  deepStrictEqual(tx.count(PERSON), 1);
  deepStrictEqual(tx.count(BAG), 2);
  const delta = tx.commit();
  deepStrictEqual(delta.tables, [{ tableId: BAG, inserts: [u8(8)], deletes: [] }]);
});

Deno.test("a unique violation writes nothing and leaves the transaction usable", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  tx.insert(USERS, user(1, "a@x"));
  throwsCode(() => tx.insert(USERS, user(1, "b@x")), "UniqueViolation");
  throwsCode(() => tx.insert(USERS, user(2, "a@x")), "UniqueViolation");
  tx.insert(USERS, user(2, "b@x"));
  deepStrictEqual(tx.count(USERS), 2);
  const delta = tx.commit();
  deepStrictEqual(sorted(delta.tables[0].inserts), sorted([user(1, "a@x"), user(2, "b@x")]));
  deepStrictEqual(ds.committedIndexPoint(USERS_EMAIL, str("b@x")), [user(2, "b@x")]);
});

Deno.test("deleting then re-inserting a committed row undeletes it and the delta cancels out", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  tx.insert(BAG, u8(1));
  tx.insert(PERSON, person(1, "ann", 30));
  tx.commit();
  tx = ds.beginMutTx();
  deepStrictEqual(tx.deleteByRelation(BAG, rowsOf(u8(1))), 1);
  deepStrictEqual(tx.deleteByRelation(PERSON, rowsOf(person(1, "ann", 30))), 1);
  deepStrictEqual(tx.count(BAG), 0);
  tx.insert(BAG, u8(1));
  tx.insert(PERSON, person(1, "ann", 30));
  deepStrictEqual(tx.scan(BAG), [u8(1)]);
  deepStrictEqual(tx.commit().tables, []);
  deepStrictEqual(ds.committedRows(BAG), [u8(1)]);
});

Deno.test("insert then delete within one transaction leaves no trace in the delta", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  tx.insert(PAIR, pair(1, 2, "x"));
  deepStrictEqual(tx.deleteByRelation(PAIR, rowsOf(pair(1, 2, "x"), pair(9, 9, "none"))), 1);
  deepStrictEqual(tx.commit().tables, []);
  deepStrictEqual(ds.committedCount(PAIR), 0);
});

Deno.test("update replaces the row found by the unique index key of the new row", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  tx.insert(USERS, user(1, "a@x"));
  tx.insert(USERS, user(2, "b@x"));
  tx.commit();
  tx = ds.beginMutTx();
  const result = tx.update(USERS, USERS_ID, user(1, "new@x"));
  deepStrictEqual(result, { row: user(1, "new@x"), generated: bytes() });
  deepStrictEqual(tx.indexScanPoint(USERS_ID, u32(1)), [user(1, "new@x")]);
  deepStrictEqual(tx.indexScanPoint(USERS_EMAIL, str("a@x")), []);
  const delta = tx.commit();
  deepStrictEqual(delta.tables, [{ tableId: USERS, inserts: [user(1, "new@x")], deletes: [user(1, "a@x")] }]);
  // Lookup by the other unique index works too.
  tx = ds.beginMutTx();
  tx.update(USERS, USERS_EMAIL, user(5, "b@x"));
  deepStrictEqual(tx.indexScanPoint(USERS_ID, u32(5)), [user(5, "b@x")]);
  tx.rollback();
});

Deno.test("update errors: non-unique index, missing row, other unique constraint", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  tx.insert(USERS, user(1, "a@x"));
  tx.insert(USERS, user(2, "b@x"));
  tx.insert(PERSON, person(1, "ann", 30));
  throwsCode(() => tx.update(PERSON, PERSON_AGE, person(1, "ann", 31)), "IndexNotUnique");
  throwsCode(() => tx.update(USERS, USERS_ID, user(3, "c@x")), "NoSuchRow");
  throwsCode(() => tx.update(USERS, USERS_ID, user(1, "b@x")), "UniqueViolation");
  throwsCode(() => tx.update(USERS, USERS_ID, concat(u32(1))), "DecodeError");
  deepStrictEqual(sorted(tx.scan(USERS)), sorted([user(1, "a@x"), user(2, "b@x")]));
});

Deno.test("update with an identical row is a no-op and an update back to the original cancels", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  tx.insert(USERS, user(1, "a@x"));
  tx.commit();
  tx = ds.beginMutTx();
  tx.update(USERS, USERS_ID, user(1, "a@x"));
  tx.update(USERS, USERS_ID, user(1, "b@x"));
  tx.update(USERS, USERS_ID, user(1, "a@x"));
  deepStrictEqual(tx.commit().tables, []);
});

Deno.test("update fires sequences on zero columns", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  tx.insert(TWO_SEQ, concat(u64(5n), str("k"), i16(1)));
  const result = tx.update(TWO_SEQ, ds.indexIdFromName("x") ?? -1, bytes()).generated;
  void result;
}, );
