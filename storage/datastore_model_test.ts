/**
 * Randomized model test: thousands of random operations in transactions with random rollbacks,
 * run against the Datastore and a naive reference (arrays of decoded rows), compared after
 * every operation. Deltas are replayed into a replica, and snapshots are round-tripped, including
 * copy-on-write captures read out in pieces while later transactions change the tables.
 */
import { deepStrictEqual } from "node:assert/strict";
import { type Random, seededRandom } from "../lib/random.ts";
import { concat, tableSchema } from "./_testing.ts";
import { Datastore, type DatastoreOptions, type MutTx, type StateCursor } from "./datastore.ts";
import { DatastoreError } from "./datastore_error.ts";
import type { TableSchema } from "./schema.ts";
import type { TxDelta } from "./tx_delta.ts";

const ITEMS = 1, BAG = 2;
const ITEMS_ID = 1, ITEMS_K = 2, ITEMS_S = 3, BAG_AB = 4;

/**
 * The model runs three times: items with a String column `s` (rows of one array each) and with
 * `s` as a u16 code (fixed-size rows, kept in the arena with an integer unique key), and once
 * with the arena turned off for every table. Set per run by `runModel`.
 */
let fixedItems = false;
const S_VALUES = ["", "a", "bb", "é"];

const schemas = (): TableSchema[] => [
  tableSchema({
    tableId: ITEMS,
    name: "items",
    rowType: {
      elements: [
        { name: "id", algebraicType: { tag: "U32" } },
        { name: "k", algebraicType: { tag: "U8" } },
        { name: "s", algebraicType: fixedItems ? { tag: "U16" } : { tag: "String" } },
      ],
    },
    primaryKey: [0],
    uniqueConstraints: [[0]],
    indexes: [
      {
        indexId: ITEMS_ID,
        name: "items_id",
        sourceName: "items_id",
        accessorName: "id",
        algorithm: "btree",
        columns: [0],
        unique: true,
      },
      {
        indexId: ITEMS_K,
        name: "items_k",
        sourceName: "items_k",
        accessorName: "k",
        algorithm: "btree",
        columns: [1],
        unique: false,
      },
      {
        indexId: ITEMS_S,
        name: "items_s",
        sourceName: "items_s",
        accessorName: "s",
        algorithm: "hash",
        columns: [2],
        unique: false,
      },
    ],
    sequences: [{ column: 0, start: 100n, min: undefined, max: undefined, increment: 3n }],
  }),
  tableSchema({
    tableId: BAG,
    name: "bag",
    rowType: {
      elements: [
        { name: "a", algebraicType: { tag: "U8" } },
        { name: "b", algebraicType: { tag: "I16" } },
      ],
    },
    indexes: [
      {
        indexId: BAG_AB,
        name: "bag_ab",
        sourceName: "bag_ab",
        accessorName: "ab",
        algorithm: "btree",
        columns: [0, 1],
        unique: false,
      },
    ],
  }),
];

interface Item {
  id: number;
  k: number;
  s: string;
}
interface BagRow {
  a: number;
  b: number;
}

const u8 = (v: number) => new Uint8Array([v]);
const u32 = (v: number) => new Uint8Array([v, v >>> 8, v >>> 16, v >>> 24]);
const i16 = (v: number) => new Uint8Array([v & 0xff, (v >> 8) & 0xff]);
const str = (v: string) => {
  if (fixedItems) return new Uint8Array([S_VALUES.indexOf(v), 0]);
  const bytes = new TextEncoder().encode(v);
  return concat(u32(bytes.length), bytes);
};
const encodeItem = (r: Item) => concat(u32(r.id), u8(r.k), str(r.s));
const encodeBag = (r: BagRow) => concat(u8(r.a), i16(r.b));
const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const multiset = (rows: Uint8Array[]) => rows.map(hex).sort();

class Reference {
  items: Item[] = [];
  bag: BagRow[] = [];
  next = 100;

  clone(): Reference {
    const copy = new Reference();
    copy.items = this.items.map((r) => ({ ...r }));
    copy.bag = this.bag.map((r) => ({ ...r }));
    copy.next = this.next;
    return copy;
  }

  insertItem(row: Item): { row: Item; generated: Uint8Array } {
    let generated = new Uint8Array(0);
    if (row.id === 0) {
      row = { ...row, id: this.next };
      this.next += 3;
      generated = u32(row.id);
    }
    const same = this.items.find((r) => r.id === row.id);
    if (same && same.k === row.k && same.s === row.s) return { row, generated };
    if (same) throw new DatastoreError("UniqueViolation", "ref");
    this.items.push(row);
    return { row, generated };
  }

  updateItem(row: Item): { row: Item; generated: Uint8Array } {
    let generated = new Uint8Array(0);
    if (row.id === 0) {
      row = { ...row, id: this.next };
      this.next += 3;
      generated = u32(row.id);
    }
    const at = this.items.findIndex((r) => r.id === row.id);
    if (at < 0) throw new DatastoreError("NoSuchRow", "ref");
    this.items[at] = row;
    return { row, generated };
  }

  insertBag(row: BagRow): void {
    if (!this.bag.some((r) => r.a === row.a && r.b === row.b)) this.bag.push(row);
  }
}

function outcome<T>(fn: () => T): T | string {
  try {
    return fn();
  } catch (error) {
    if (error instanceof DatastoreError) return error.code;
    throw error;
  }
}

function randomItem(random: Random): Item {
  const pick = (n: number) => Math.floor(random.next() * n);
  return {
    id: random.next() < 0.3 ? 0 : 100 + pick(40),
    k: pick(6),
    s: S_VALUES[pick(4)],
  };
}

function randomBag(random: Random): BagRow {
  const pick = (n: number) => Math.floor(random.next() * n);
  return { a: pick(4), b: pick(5) - 2 };
}

function boundBytes(tag: number, value: number): Uint8Array {
  return tag === 2 ? new Uint8Array([2]) : new Uint8Array([tag, value]);
}

function inBound(value: number, tag: number, bound: number, lower: boolean): boolean {
  if (tag === 2) return true;
  if (lower) return tag === 0 ? value >= bound : value > bound;
  return tag === 0 ? value <= bound : value < bound;
}

function step(tx: MutTx, ref: Reference, random: Random, label: string): void {
  const pick = (n: number) => Math.floor(random.next() * n);
  const op = pick(12);
  switch (op) {
    case 0:
    case 1: {
      const row = randomItem(random);
      const ours = outcome(() => tx.insert(ITEMS, encodeItem(row)));
      const theirs = outcome(() => ref.insertItem(row));
      const normalize = (r: typeof ours | typeof theirs) =>
        typeof r === "string" ? r : {
          row: hex("id" in r.row ? encodeItem(r.row) : r.row as Uint8Array),
          generated: hex(r.generated),
        };
      deepStrictEqual(normalize(ours), normalize(theirs), `${label}: insert`);
      return;
    }
    case 2: {
      const existing = ref.items[pick(ref.items.length + 1)];
      const row = existing && random.next() < 0.7
        ? { id: existing.id, k: pick(6), s: existing.s }
        : randomItem(random);
      const ours = outcome(() => hex(tx.update(ITEMS, ITEMS_ID, encodeItem(row)).generated));
      const theirs = outcome(() => hex(ref.updateItem(row).generated));
      deepStrictEqual(ours, theirs, `${label}: update`);
      return;
    }
    case 3: {
      const target = ref.items[pick(ref.items.length + 1)] ?? randomItem(random);
      const rows = [encodeItem(target)];
      if (random.next() < 0.3) rows.push(encodeItem(randomItem(random)));
      const ours = tx.deleteByRelation(ITEMS, concat(u32(rows.length), ...rows));
      const doomed = new Set(rows.map(hex));
      const before = ref.items.length;
      ref.items = ref.items.filter((r) => !doomed.has(hex(encodeItem(r))));
      deepStrictEqual(ours, before - ref.items.length, `${label}: delete by relation`);
      return;
    }
    case 4: {
      const k = pick(6);
      const ours = tx.deleteByIndexPoint(ITEMS_K, u8(k));
      const before = ref.items.length;
      ref.items = ref.items.filter((r) => r.k !== k);
      deepStrictEqual(ours, before - ref.items.length, `${label}: delete by point`);
      return;
    }
    case 5: {
      const [loTag, lo, hiTag, hi] = [pick(3), pick(6), pick(3), pick(6)];
      const buf = concat(boundBytes(loTag, lo), boundBytes(hiTag, hi));
      const startLen = loTag === 2 ? 1 : 2;
      const keep = (r: Item) => !(inBound(r.k, loTag, lo, true) && inBound(r.k, hiTag, hi, false));
      if (random.next() < 0.5) {
        const ours = tx.deleteByIndexRange(ITEMS_K, buf, 0, 0, startLen, buf.length - startLen);
        const before = ref.items.length;
        ref.items = ref.items.filter(keep);
        deepStrictEqual(ours, before - ref.items.length, `${label}: delete by range`);
      } else {
        const ours = tx.indexScanRange(ITEMS_K, buf, 0, 0, startLen, buf.length - startLen);
        const expected = ref.items.filter((r) => !keep(r));
        deepStrictEqual(multiset(ours), multiset(expected.map(encodeItem)), `${label}: range`);
        deepStrictEqual(ours.map((r) => r[4]), expected.map((r) => r.k).sort((x, y) => x - y));
      }
      return;
    }
    case 6: {
      const s = S_VALUES[pick(4)];
      const ours = tx.indexScanPoint(ITEMS_S, str(s));
      deepStrictEqual(multiset(ours), multiset(ref.items.filter((r) => r.s === s).map(encodeItem)));
      const id = 100 + pick(40);
      deepStrictEqual(
        multiset(tx.indexScanPoint(ITEMS_ID, u32(id))),
        multiset(ref.items.filter((r) => r.id === id).map(encodeItem)),
        `${label}: point`,
      );
      return;
    }
    case 7:
    case 8: {
      const row = randomBag(random);
      tx.insert(BAG, encodeBag(row));
      ref.insertBag(row);
      return;
    }
    case 9: {
      const a = pick(4);
      const [loTag, lo, hiTag, hi] = [pick(3), pick(5) - 2, pick(3), pick(5) - 2];
      const bound = (tag: number, v: number) =>
        tag === 2 ? new Uint8Array([2]) : concat(new Uint8Array([tag]), i16(v));
      const start = bound(loTag, lo);
      const end = random.next() < 0.2 && loTag !== 2 ? new Uint8Array(0) : bound(hiTag, hi);
      const [endTag, endValue] = end.length === 0 ? [loTag, lo] : [hiTag, hi];
      const buf = concat(u8(a), start, end);
      const ours = tx.indexScanRange(BAG_AB, buf, 1, 1, start.length, end.length);
      const expected = ref.bag.filter((r) =>
        r.a === a && inBound(r.b, loTag, lo, true) && inBound(r.b, endTag, endValue, false)
      ).sort((x, y) => x.b - y.b);
      deepStrictEqual(ours.map(hex), expected.map(encodeBag).map(hex), `${label}: bag range`);
      return;
    }
    case 10: {
      const target = ref.bag[pick(ref.bag.length + 1)] ?? randomBag(random);
      const ours = tx.deleteByRelation(BAG, concat(u32(1), encodeBag(target)));
      const before = ref.bag.length;
      ref.bag = ref.bag.filter((r) => r.a !== target.a || r.b !== target.b);
      deepStrictEqual(ours, before - ref.bag.length, `${label}: bag delete`);
      return;
    }
    default: {
      if (random.next() < 0.1) {
        const table = random.next() < 0.5 ? ITEMS : BAG;
        const expected = table === ITEMS ? ref.items.length : ref.bag.length;
        deepStrictEqual(tx.clear(table), expected, `${label}: clear`);
        if (table === ITEMS) ref.items = [];
        else ref.bag = [];
      }
    }
  }
  deepStrictEqual(tx.count(ITEMS), ref.items.length, `${label}: count`);
  deepStrictEqual(multiset(tx.scan(ITEMS)), multiset(ref.items.map(encodeItem)), `${label}: scan`);
  deepStrictEqual(multiset(tx.scan(BAG)), multiset(ref.bag.map(encodeBag)), `${label}: bag scan`);
}

function checkDelta(before: Reference, after: Reference, delta: TxDelta, label: string): void {
  const apply = (rows: Uint8Array[], tableId: number) => {
    const change = delta.tables.find((t) => t.tableId === tableId);
    if (!change) return multiset(rows);
    const inserted = new Set(change.inserts.map(hex));
    for (const row of change.deletes) {
      if (inserted.has(hex(row))) throw new Error(`${label}: delta deletes and inserts one row`);
    }
    const deleted = new Set(change.deletes.map(hex));
    return [...rows.map(hex).filter((h) => !deleted.has(h)), ...change.inserts.map(hex)].sort();
  };
  deepStrictEqual(
    apply(before.items.map(encodeItem), ITEMS),
    multiset(after.items.map(encodeItem)),
  );
  deepStrictEqual(apply(before.bag.map(encodeBag), BAG), multiset(after.bag.map(encodeBag)));
}

function runModel(options: DatastoreOptions): void {
  const SCHEMAS = schemas();
  const seed = Number(Deno.env.get("STORAGE_MODEL_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);
  let datastore = new Datastore(SCHEMAS, options);
  const replica = new Datastore(SCHEMAS, options);
  let committed = new Reference();
  // A snapshot captured at one commit and read out in small pieces while later transactions
  // run (as the database process streams it): its bytes must be the state at capture.
  let capture:
    | { cursor: StateCursor; pieces: Uint8Array[]; items: string[]; bag: string[]; at: number }
    | undefined;
  const readPiece = (label: string) => {
    if (!capture) return;
    const piece = capture.cursor.next(1 + Math.floor(random.next() * 64));
    if (piece) {
      capture.pieces.push(piece);
      return;
    }
    capture.cursor.release();
    const restored = Datastore.importState(SCHEMAS, concat(...capture.pieces), options);
    restored.checkInvariants();
    deepStrictEqual(
      multiset(restored.committedRows(ITEMS)),
      capture.items,
      `${label}: capture at tx ${capture.at}`,
    );
    deepStrictEqual(multiset(restored.committedRows(BAG)), capture.bag);
    capture = undefined;
  };
  try {
    for (let t = 0; t < 400; t++) {
      readPiece(`seed ${seed} tx ${t}`);
      if (capture === undefined && t % 50 === 5) {
        capture = {
          cursor: datastore.captureState(),
          pieces: [],
          items: multiset(committed.items.map(encodeItem)),
          bag: multiset(committed.bag.map(encodeBag)),
          at: t,
        };
      }
      const tx = datastore.beginMutTx();
      const working = committed.clone();
      const steps = 1 + Math.floor(random.next() * 25);
      for (let s = 0; s < steps; s++) step(tx, working, random, `seed ${seed} tx ${t} step ${s}`);
      if (random.next() < 0.3) {
        tx.rollback();
        committed.next = working.next; // sequences are not rolled back
      } else {
        const delta = tx.commit();
        checkDelta(committed, working, delta, `seed ${seed} tx ${t}`);
        replica.replay(delta);
        committed = working;
      }
      datastore.checkInvariants();
      const expectItems = multiset(committed.items.map(encodeItem));
      deepStrictEqual(
        multiset(datastore.committedRows(ITEMS)),
        expectItems,
        `seed ${seed} tx ${t}`,
      );
      deepStrictEqual(
        multiset(datastore.committedRows(BAG)),
        multiset(committed.bag.map(encodeBag)),
      );
      if (t % 50 === 49) {
        deepStrictEqual(
          multiset(replica.committedRows(ITEMS)),
          expectItems,
          `seed ${seed}: replica`,
        );
        replica.checkInvariants();
        datastore = Datastore.importState(SCHEMAS, datastore.exportState(), options);
        datastore.checkInvariants();
      }
    }
    while (capture) readPiece(`seed ${seed} end`);
  } catch (error) {
    throw new Error(`Model test failed with seed ${seed} (STORAGE_MODEL_SEED=${seed})`, {
      cause: error,
    });
  }
}

Deno.test("random transactions with rollbacks match a naive reference implementation", () => {
  fixedItems = false;
  runModel({});
});

Deno.test("the model also holds with fixed-size rows in the arena under an integer unique key", () => {
  fixedItems = true;
  try {
    runModel({});
  } finally {
    fixedItems = false;
  }
});

Deno.test("the model also holds with the row arena turned off", () => {
  fixedItems = true;
  try {
    runModel({ rowArena: false });
  } finally {
    fixedItems = false;
  }
});
