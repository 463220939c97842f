import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import type { AlgebraicType, Value } from "../protocol/algebraic_type.ts";
import { compareValues, concat, encode, randomValue, tableSchema } from "./_testing.ts";
import { Datastore } from "./datastore.ts";
import { DatastoreError } from "./datastore_error.ts";
import { KEY_MAX, KeyCodec } from "./key_encoding.ts";
import { compileType, RowLayout } from "./row_layout.ts";

const product = (...types: AlgebraicType[]): AlgebraicType => ({
  tag: "Product",
  value: { elements: types.map((t, i) => ({ name: `f${i}`, algebraicType: t })) },
});
const named = (name: string, type: AlgebraicType): AlgebraicType => ({
  tag: "Product",
  value: { elements: [{ name, algebraicType: type }] },
});
const sum = (...types: AlgebraicType[]): AlgebraicType => ({
  tag: "Sum",
  value: { variants: types.map((t, i) => ({ name: `v${i}`, algebraicType: t })) },
});
const UNIT = product();

const KEY_TYPES: [string, AlgebraicType][] = [
  ...(["Bool", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "I128", "U128", "I256", "U256"]
    .map((tag) => [tag, { tag } as AlgebraicType] as [string, AlgebraicType])),
  ["F32", { tag: "F32" }],
  ["F64", { tag: "F64" }],
  ["String", { tag: "String" }],
  ["Array<U8>", { tag: "Array", value: { tag: "U8" } }],
  ["Array<I16>", { tag: "Array", value: { tag: "I16" } }],
  ["Array<String>", { tag: "Array", value: { tag: "String" } }],
  ["Array<Array<U8>>", { tag: "Array", value: { tag: "Array", value: { tag: "U8" } } }],
  ["Identity", named("__identity__", { tag: "U256" })],
  ["ConnectionId", named("__connection_id__", { tag: "U128" })],
  ["Timestamp", named("__timestamp_micros_since_unix_epoch__", { tag: "I64" })],
  ["Uuid", named("__uuid__", { tag: "U128" })],
  ["Option<I32>", sum({ tag: "I32" }, UNIT)],
  ["Option<String>", sum({ tag: "String" }, UNIT)],
  ["Product<U8, String, Bool>", product({ tag: "U8" }, { tag: "String" }, { tag: "Bool" })],
  [
    "Sum<Product<I8,F64>, Array<Bool>, unit>",
    sum(product({ tag: "I8" }, { tag: "F64" }), {
      tag: "Array",
      value: { tag: "Bool" },
    }, UNIT),
  ],
];

function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

for (const [label, algebraicType] of KEY_TYPES) {
  Deno.test(`key order matches SATS order for ${label}`, () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const random = seededRandom(seed);
    const type = compileType(algebraicType, []);
    const layout = new RowLayout({ elements: [{ name: "k", algebraicType }] }, []);
    const codec = new KeyCodec(layout, [0]);
    const values: Value[] = [];
    for (let i = 0; i < 300; i++) values.push(randomValue(type, random));
    const keys = values.map((v) => {
      const bytes = encode(type, v);
      const fromRow = codec.fromRow(bytes);
      assertEquals(codec.fromBsatn(bytes, 0, bytes.length), fromRow, `seed ${seed}`);
      return fromRow;
    });
    for (let i = 0; i < values.length; i++) {
      for (let j = i; j < values.length; j += 7) {
        const expected = sign(compareValues(type, values[i], values[j]));
        const actual = keys[i] < keys[j] ? -1 : keys[i] > keys[j] ? 1 : 0;
        assertEquals(
          actual,
          expected,
          `seed ${seed}: ${String(values[i])} vs ${String(values[j])}`,
        );
        if (typeof keys[i] === "string") {
          assert(keys[i] + KEY_MAX > keys[j] || actual < 0, `seed ${seed}: KEY_MAX bound`);
        }
      }
    }
  });

  Deno.test(`btree range scans return SATS-ordered rows for ${label}`, () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const random = seededRandom(seed);
    const type = compileType(algebraicType, []);
    const u32 = compileType({ tag: "U32" }, []);
    const datastore = new Datastore([tableSchema({
      tableId: 1,
      name: "t",
      rowType: {
        elements: [{ name: "id", algebraicType: { tag: "U32" } }, { name: "k", algebraicType }],
      },
      primaryKey: [0],
      uniqueConstraints: [[0]],
      indexes: [
        {
          indexId: 1,
          name: "t_id",
          sourceName: "t_id",
          accessorName: "id",
          algorithm: "btree",
          columns: [0],
          unique: true,
        },
        {
          indexId: 2,
          name: "t_k",
          sourceName: "t_k",
          accessorName: "k",
          algorithm: "btree",
          columns: [1],
          unique: false,
        },
      ],
    })]);
    const values: Value[] = [];
    const tx = datastore.beginMutTx();
    for (let id = 0; id < 400; id++) {
      const value = randomValue(type, random);
      values.push(value);
      tx.insert(1, concat(encode(u32, id), encode(type, value)));
    }
    tx.commit();
    const bound = (tag: number, value: Value) =>
      tag === 2 ? new Uint8Array([2]) : concat(new Uint8Array([tag]), encode(type, value));
    for (let q = 0; q < 60; q++) {
      const lo = values[Math.floor(random.next() * values.length)];
      const hi = values[Math.floor(random.next() * values.length)];
      const loTag = Math.floor(random.next() * 3);
      const hiTag = Math.floor(random.next() * 3);
      const start = bound(loTag, lo);
      const end = bound(hiTag, hi);
      const rows = datastore.committedIndexRange(
        2,
        concat(start, end),
        0,
        0,
        start.length,
        end.length,
      );
      const got = rows.map((r) => new DataView(r.buffer, r.byteOffset).getUint32(0, true));
      const expected = values.map((v, id) => ({ v, id })).filter(({ v }) =>
        (loTag === 2 || compareValues(type, v, lo) > (loTag === 0 ? -1 : 0)) &&
        (hiTag === 2 || compareValues(type, v, hi) < (hiTag === 0 ? 1 : 0))
      ).sort((a, b) => compareValues(type, a.v, b.v) || a.id - b.id).map(({ id }) => id);
      assertEquals(got, expected, `seed ${seed}, query ${q}`);
    }
    // Point scans agree with equality under the SATS order.
    for (let q = 0; q < 30; q++) {
      const probe = values[Math.floor(random.next() * values.length)];
      const rows = datastore.committedIndexPoint(2, encode(type, probe));
      const got = rows.map((r) => new DataView(r.buffer, r.byteOffset).getUint32(0, true));
      const expected = values.map((v, id) => ({ v, id }))
        .filter(({ v }) => compareValues(type, v, probe) === 0).map(({ id }) => id);
      assertEquals(got, expected, `seed ${seed}, point ${q}`);
    }
  });
}

Deno.test("fromBsatn rejects truncated, trailing and malformed keys", () => {
  const layout = new RowLayout({
    elements: [
      { name: "a", algebraicType: { tag: "U32" } },
      { name: "b", algebraicType: { tag: "String" } },
      { name: "c", algebraicType: { tag: "Bool" } },
    ],
  }, []);
  const numeric = new KeyCodec(layout, [0]);
  assertThrows(() => numeric.fromBsatn(new Uint8Array(3), 0, 3), DatastoreError);
  assertThrows(() => numeric.fromBsatn(new Uint8Array(5), 0, 5), DatastoreError);
  const text = new KeyCodec(layout, [1]);
  assertThrows(() => text.fromBsatn(new Uint8Array([5, 0, 0, 0, 97]), 0, 5), DatastoreError);
  assertThrows(() => text.fromBsatn(new Uint8Array([1, 0, 0, 0, 0xff]), 0, 5), DatastoreError);
  const flag = new KeyCodec(layout, [2]);
  assertThrows(() => flag.fromBsatn(new Uint8Array([2]), 0, 1), DatastoreError);
  const pair = new KeyCodec(layout, [2, 0]);
  assertThrows(() => pair.fromBsatn(new Uint8Array([1, 0, 0, 0, 0, 9]), 0, 6), DatastoreError);
  assertEquals(typeof pair.fromBsatn(new Uint8Array([1, 0, 0, 0, 0]), 0, 5), "string");
});

Deno.test("float keys treat -0 as +0 and every NaN as one value above +inf", () => {
  const layout = new RowLayout({ elements: [{ name: "f", algebraicType: { tag: "F64" } }] }, []);
  const codec = new KeyCodec(layout, [0]);
  const key = (bytes: number[]) => codec.fromBsatn(new Uint8Array(bytes), 0, 8);
  const f64 = (value: number) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, value, true);
    return [...bytes];
  };
  assertEquals(key(f64(-0)), key(f64(0)));
  const quietNan = f64(NaN);
  const otherNan = [1, 0, 0, 0, 0, 0, 0xf8, 0xff]; // negative NaN with payload
  assertEquals(key(quietNan), key(otherNan));
  assert(key(f64(Infinity)) < key(quietNan));
  assert(key(f64(-Infinity)) < key(f64(-1e300)));
});
