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
  return {
    elements: types.map(([name, tag]) => ({ name, algebraicType: { tag } as AlgebraicType })),
  };
}

const PERSON = 1, PAIR = 2, BAG = 3, EVENTS = 4, TWO_SEQ = 5, TINY = 6, USERS = 7;
const PERSON_ID = 10,
  PERSON_AGE = 11,
  PERSON_NAME = 12,
  PAIR_AB = 20,
  USERS_ID = 70,
  USERS_EMAIL = 71;
const TWO_SEQ_B = 50;

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
    indexes: [index(TWO_SEQ_B, "two_seq_b_idx_btree", [1], { unique: true })],
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
  throwsCode(
    () => tx.insert(PERSON, concat(u32(1), bytes(1, 0, 0, 0, 0xff), u8(2))),
    "DecodeError",
  );
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
  deepStrictEqual(delta.tables, [{
    tableId: USERS,
    inserts: [user(1, "new@x")],
    deletes: [user(1, "a@x")],
  }]);
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
  const tx = fresh().beginMutTx();
  tx.insert(TWO_SEQ, concat(u64(5n), str("k"), i16(1)));
  const result = tx.update(TWO_SEQ, TWO_SEQ_B, concat(u64(0n), str("k"), i16(0)));
  deepStrictEqual(result.generated, concat(u64(1n), i16(100)));
  deepStrictEqual(tx.scan(TWO_SEQ), [concat(u64(1n), str("k"), i16(100))]);
});

Deno.test("a one-column range scan decodes the library's buffer (u8 >= 20, unbounded)", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  for (const age of [25, 19, 20, 40, 3]) tx.insert(PERSON, person(age, `p${age}`, age));
  const rows = tx.indexScanRange(PERSON_AGE, bytes(0x00, 0x14, 0x02), 0, 0, 2, 1);
  deepStrictEqual(rows, [person(20, "p20", 20), person(25, "p25", 25), person(40, "p40", 40)]);
  // Excluded start, included end.
  const buf = bytes(1, 20, 0, 40);
  deepStrictEqual(tx.indexScanRange(PERSON_AGE, buf, 0, 0, 2, 2), [
    person(25, "p25", 25),
    person(40, "p40", 40),
  ]);
  // rend_len 0 means rend = rstart: a point.
  deepStrictEqual(tx.indexScanRange(PERSON_AGE, bytes(0, 19), 0, 0, 2, 0), [person(19, "p19", 19)]);
  // Empty interval.
  deepStrictEqual(tx.indexScanRange(PERSON_AGE, bytes(0, 30, 1, 30), 0, 0, 2, 2), []);
  deepStrictEqual(tx.deleteByIndexRange(PERSON_AGE, bytes(2, 1, 20), 0, 0, 1, 2), 2);
  deepStrictEqual(tx.count(PERSON), 3);
});

Deno.test("a multi-column btree scans a prefix plus a range on the next column", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  const rows = [
    pair(1, 5, "a"),
    pair(1, 2, "b"),
    pair(2, 1, "c"),
    pair(1, 9, "d"),
    pair(0, 7, "e"),
  ];
  for (const row of rows) tx.insert(PAIR, row);
  // a == 1, b in [2, 9)
  const buf = concat(u8(1), bytes(0), u16(2), bytes(1), u16(9));
  deepStrictEqual(tx.indexScanRange(PAIR_AB, buf, 1, 1, 3, 3), [pair(1, 2, "b"), pair(1, 5, "a")]);
  // a == 1, b unbounded on both sides
  deepStrictEqual(tx.indexScanRange(PAIR_AB, concat(u8(1), bytes(2, 2)), 1, 1, 1, 1), [
    pair(1, 2, "b"),
    pair(1, 5, "a"),
    pair(1, 9, "d"),
  ]);
  // No prefix: a in (0, 2] over the first column; the second column is unconstrained.
  deepStrictEqual(tx.indexScanRange(PAIR_AB, bytes(1, 0, 0, 2), 0, 0, 2, 2), [
    pair(1, 2, "b"),
    pair(1, 5, "a"),
    pair(1, 9, "d"),
    pair(2, 1, "c"),
  ]);
  // a == 1 and b == 5 as the library sends it: prefix + Included(5), rend_len 0.
  deepStrictEqual(tx.indexScanRange(PAIR_AB, concat(u8(1), bytes(0), u16(5)), 1, 1, 3, 0), [
    pair(1, 5, "a"),
  ]);
  // Full point key.
  deepStrictEqual(tx.indexScanPoint(PAIR_AB, concat(u8(2), u16(1))), [pair(2, 1, "c")]);
  deepStrictEqual(tx.deleteByIndexPoint(PAIR_AB, concat(u8(1), u16(9))), 1);
  deepStrictEqual(tx.count(PAIR), 4);
});

Deno.test("range scan shape errors: DecodeError for bad prefixes, WrongIndexAlgo on hash", () => {
  const tx = fresh().beginMutTx();
  throwsCode(() => tx.indexScanRange(PERSON_AGE, bytes(1, 0, 20, 2), 1, 1, 2, 1), "DecodeError");
  throwsCode(() => tx.indexScanRange(PAIR_AB, bytes(1, 0, 0, 0, 0), 3, 2, 1, 1), "DecodeError");
  throwsCode(() => tx.indexScanRange(PAIR_AB, bytes(1, 2), 1, 0, 1, 0), "DecodeError");
  throwsCode(() => tx.indexScanRange(PERSON_AGE, bytes(3, 1), 0, 0, 2, 0), "DecodeError");
  throwsCode(() => tx.indexScanRange(PERSON_AGE, bytes(0, 1, 9), 0, 0, 3, 0), "DecodeError");
  throwsCode(() => tx.indexScanRange(PERSON_AGE, bytes(0, 1), 0, 0, 2, 5), "DecodeError");
  throwsCode(() => tx.indexScanRange(PERSON_NAME, bytes(2), 0, 0, 1, 0), "WrongIndexAlgo");
  throwsCode(() => tx.deleteByIndexRange(PERSON_NAME, bytes(2), 0, 0, 1, 0), "WrongIndexAlgo");
  throwsCode(() => tx.indexScanPoint(PERSON_AGE, bytes(1, 2)), "DecodeError");
});

Deno.test("point scans work on hash indexes and non-unique btrees", () => {
  const tx = fresh().beginMutTx();
  tx.insert(PERSON, person(1, "ann", 30));
  tx.insert(PERSON, person(2, "ann", 31));
  tx.insert(PERSON, person(3, "bob", 30));
  deepStrictEqual(tx.indexScanPoint(PERSON_NAME, str("ann")), [
    person(1, "ann", 30),
    person(2, "ann", 31),
  ]);
  deepStrictEqual(tx.indexScanPoint(PERSON_AGE, u8(30)), [
    person(1, "ann", 30),
    person(3, "bob", 30),
  ]);
  deepStrictEqual(tx.indexScanPoint(PERSON_ID, u32(3)), [person(3, "bob", 30)]);
  deepStrictEqual(tx.deleteByIndexPoint(PERSON_NAME, str("ann")), 2);
  deepStrictEqual(tx.scan(PERSON), [person(3, "bob", 30)]);
});

Deno.test("scans are snapshots: deleting while iterating the result is safe", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  for (let i = 1; i <= 50; i++) tx.insert(PERSON, person(i, "n", i % 5));
  const snapshot = tx.scan(PERSON);
  for (const row of snapshot) tx.deleteByRelation(PERSON, rowsOf(row));
  deepStrictEqual(snapshot.length, 50);
  deepStrictEqual(tx.count(PERSON), 0);
  const byAge = tx.indexScanRange(PERSON_AGE, bytes(2), 0, 0, 1, 0);
  deepStrictEqual(byAge, []);
});

Deno.test("scan order is committed rows first, then rows inserted by the transaction", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  tx.insert(BAG, u8(3));
  tx.insert(BAG, u8(1));
  tx.commit();
  tx = ds.beginMutTx();
  tx.insert(BAG, u8(0));
  tx.insert(BAG, u8(2));
  deepStrictEqual(tx.scan(BAG), [u8(3), u8(1), u8(0), u8(2)]);
});

Deno.test("event table rows are visible in the transaction and the delta but not kept", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  tx.insert(EVENTS, u32(1));
  tx.insert(EVENTS, u32(2));
  deepStrictEqual(tx.count(EVENTS), 2);
  deepStrictEqual(tx.scan(EVENTS), [u32(1), u32(2)]);
  const delta = tx.commit();
  deepStrictEqual(delta.tables, [{ tableId: EVENTS, inserts: [u32(1), u32(2)], deletes: [] }]);
  deepStrictEqual(ds.committedCount(EVENTS), 0);
  const next = ds.beginMutTx();
  deepStrictEqual(next.scan(EVENTS), []);
  next.insert(EVENTS, u32(1));
  deepStrictEqual(next.commit().tables[0].inserts, [u32(1)]);
});

Deno.test("clear deletes every row and returns the count", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  for (let i = 0; i < 10; i++) tx.insert(PERSON, person(0, `n${i}`, i));
  tx.commit();
  tx = ds.beginMutTx();
  tx.insert(PERSON, person(0, "extra", 1));
  deepStrictEqual(tx.clear(PERSON), 11);
  deepStrictEqual(tx.count(PERSON), 0);
  deepStrictEqual(tx.indexScanRange(PERSON_AGE, bytes(2), 0, 0, 1, 0), []);
  const delta = tx.commit();
  deepStrictEqual(delta.tables[0].deletes.length, 10);
  deepStrictEqual(delta.tables[0].inserts.length, 0);
  deepStrictEqual(ds.committedCount(PERSON), 0);
});

Deno.test("rollback restores rows, indexes, counts and scan order", () => {
  const ds = fresh();
  let tx = ds.beginMutTx();
  for (let i = 1; i <= 20; i++) tx.insert(USERS, user(i, `u${i}@x`));
  tx.commit();
  const before = ds.committedRows(USERS);
  tx = ds.beginMutTx();
  tx.update(USERS, USERS_ID, user(3, "u4@y"));
  tx.update(USERS, USERS_ID, user(4, "u3@x")); // takes the email freed above
  tx.deleteByIndexPoint(USERS_ID, u32(5));
  tx.insert(USERS, user(5, "u5@x"));
  tx.insert(USERS, user(21, "u21@x"));
  tx.clear(USERS);
  tx.insert(USERS, user(1, "u2@x"));
  tx.rollback();
  deepStrictEqual(ds.committedRows(USERS), before);
  deepStrictEqual(ds.committedIndexPoint(USERS_EMAIL, str("u3@x")), [user(3, "u3@x")]);
  deepStrictEqual(ds.committedIndexPoint(USERS_ID, u32(21)), []);
  deepStrictEqual(ds.committedCount(USERS), 20);
});

Deno.test("a transaction is single-use and committed reads refuse to run inside one", () => {
  const ds = fresh();
  const tx = ds.beginMutTx();
  throws(() => ds.beginMutTx(), /already open/);
  throws(() => ds.committedRows(BAG), /transaction is open/);
  tx.commit();
  throws(() => tx.insert(BAG, u8(1)), /ended/);
  throws(() => tx.commit(), /ended/);
  ok(!ds.inTx);
  const second = ds.beginMutTx();
  second.rollback();
  notStrictEqual(second, tx);
});

function populate(
  ds: Datastore,
): ReturnType<Datastore["beginMutTx"]>["commit"] extends () => infer D ? D[] : never {
  const deltas = [];
  let tx = ds.beginMutTx();
  for (let i = 0; i < 30; i++) tx.insert(PERSON, person(0, `n${i}`, i % 7));
  tx.insert(PAIR, pair(1, 2, "x"));
  tx.insert(BAG, u8(9));
  tx.insert(EVENTS, u32(3));
  tx.insert(TWO_SEQ, concat(u64(0n), str("k"), i16(0)));
  deltas.push(tx.commit());
  tx = ds.beginMutTx();
  tx.insert(PERSON, person(0, "rolled back", 1));
  tx.rollback();
  tx = ds.beginMutTx();
  tx.update(PERSON, PERSON_ID, person(4, "renamed", 3));
  tx.deleteByIndexRange(PERSON_AGE, bytes(0, 5, 2), 0, 0, 2, 1);
  tx.insert(PERSON, person(0, "late", 2));
  deltas.push(tx.commit());
  return deltas;
}

function stateOf(ds: Datastore) {
  return SCHEMAS.map((s) => sorted(ds.committedRows(s.tableId)));
}

Deno.test("exportState and importState round-trip rows and sequence positions", () => {
  const ds = fresh();
  populate(ds);
  const exported = ds.exportState();
  const copy = Datastore.importState(SCHEMAS, exported);
  deepStrictEqual(stateOf(copy), stateOf(ds));
  deepStrictEqual(copy.committedIndexPoint(PERSON_ID, u32(4)), [person(4, "renamed", 3)]);
  // The sequence continues where it was (32 values used, one by a rolled-back tx).
  for (const store of [ds, copy]) {
    const tx = store.beginMutTx();
    deepStrictEqual(tx.insert(PERSON, person(0, "next", 1)).generated, u32(33));
    tx.rollback();
  }
  throwsCode(() => Datastore.importState(SCHEMAS, bytes(1, 2, 3)), "DecodeError");
  throwsCode(() => Datastore.importState(SCHEMAS, exported.subarray(0, 40)), "DecodeError");
});

Deno.test("replaying the commit deltas on a fresh datastore rebuilds the same state", () => {
  const ds = fresh();
  const deltas = populate(ds);
  const replica = fresh();
  for (const delta of deltas) replica.replay(decodeTxDelta(encodeTxDelta(delta)));
  deepStrictEqual(stateOf(replica), stateOf(ds));
  deepStrictEqual(replica.committedCount(EVENTS), 0);
  const tx = replica.beginMutTx();
  deepStrictEqual(tx.insert(PERSON, person(0, "next", 1)).generated, u32(33));
  deepStrictEqual(
    tx.insert(TWO_SEQ, concat(u64(0n), str("k2"), i16(0))).generated,
    concat(u64(2n), i16(105)),
  );
});

Deno.test("encodeTxDelta round-trips big, negative and zero sequence positions", () => {
  const delta = {
    tables: [{ tableId: 7, inserts: [bytes(1, 2), bytes()], deletes: [bytes(3)] }],
    sequences: [
      { tableId: 1, column: 0, next: 0n },
      { tableId: 1, column: 1, next: -129n },
      { tableId: 2, column: 3, next: (1n << 200n) + 5n },
      { tableId: 2, column: 4, next: 128n },
    ],
  };
  deepStrictEqual(decodeTxDelta(encodeTxDelta(delta)), delta);
  throwsCode(() => decodeTxDelta(encodeTxDelta(delta).subarray(0, 10)), "DecodeError");
});

Deno.test("a primary key is enforced as unique even without an explicit constraint", () => {
  const ds = new Datastore([tableSchema({
    tableId: 1,
    name: "t",
    rowType: columns(["id", "U16"], ["v", "U8"]),
    primaryKey: [0],
  })]);
  const tx = ds.beginMutTx();
  tx.insert(1, concat(u16(1), u8(1)));
  throwsCode(() => tx.insert(1, concat(u16(1), u8(2))), "UniqueViolation");
  tx.insert(1, concat(u16(1), u8(1)));
  deepStrictEqual(tx.count(1), 1);
});

Deno.test("sequence values above 32 bits and negative ones are written byte for byte", () => {
  const wide = (start: bigint, increment: bigint) =>
    tableSchema({
      tableId: 1,
      name: "wide",
      rowType: columns(["id", "U64"], ["k", "I64"], ["v", "U128"]),
      sequences: [
        { column: 0, start, min: undefined, max: undefined, increment },
        { column: 1, start: -start, min: -(1n << 62n), max: undefined, increment: -increment },
        { column: 2, start, min: undefined, max: undefined, increment },
      ],
    });
  for (const start of [1n, (1n << 32n) - 1n, (1n << 32n) + 5n, (1n << 52n) + 3n, 1n << 60n]) {
    const ds = new Datastore([wide(start, 7n)]);
    const tx = ds.beginMutTx();
    for (let i = 0n; i < 3n; i++) {
      const { row } = tx.insert(1, concat(u64(0n), bytesOf("I64", 0n), bytesOf("U128", 0n)));
      const value = start + 7n * i;
      deepStrictEqual(row, concat(u64(value), bytesOf("I64", -value), bytesOf("U128", value)));
    }
    tx.commit();
  }
});
