import { deepStrictEqual, ok } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { BTree, Int64BTree } from "./btree_index.ts";
import { type Key, KEY_MAX } from "./key_encoding.ts";

type AnyTree = BTree | Int64BTree;

function compareEntries(a: [Key, number], b: [Key, number]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
}

function runModel(
  seed: number,
  keyOf: (n: number) => Key,
  operations: number,
  keySpace: number,
  tree: AnyTree = new BTree(),
) {
  const random = seededRandom(seed);
  const model = new Map<string, [Key, number]>();
  const label = (key: Key, id: number) => `${typeof key}:${String(key)}:${id}`;
  for (let op = 0; op < operations; op++) {
    const key = keyOf(Math.floor(random.next() * keySpace));
    const id = Math.floor(random.next() * 8);
    // Bias towards inserts first, then towards deletes, so the tree grows and shrinks.
    const insertBias = op < operations / 2 ? 0.7 : 0.3;
    if (random.next() < insertBias) {
      const added = tree.insert(key, id);
      deepStrictEqual(added, !model.has(label(key, id)), `seed ${seed} op ${op}`);
      model.set(label(key, id), [key, id]);
    } else {
      const removed = tree.delete(key, id);
      deepStrictEqual(removed, model.delete(label(key, id)), `seed ${seed} op ${op}`);
    }
    if (op % 997 === 0) tree.checkInvariants();
  }
  tree.checkInvariants();
  const expected = [...model.values()].sort(compareEntries);
  deepStrictEqual(tree.entries(), expected, `seed ${seed}`);
  deepStrictEqual(tree.size, expected.length);
  for (let q = 0; q < 200; q++) {
    let lo = keyOf(Math.floor(random.next() * keySpace));
    let hi = keyOf(Math.floor(random.next() * keySpace));
    if (hi < lo) [lo, hi] = [hi, lo];
    if (typeof lo === "string") {
      // The bound shapes KeyCodec.range makes: unbounded, inclusive, exclusive.
      const shape = Math.floor(random.next() * 3);
      if (shape === 0) lo = q % 2 === 0 ? "" : lo;
      if (shape === 1) lo = lo + KEY_MAX;
      const hiShape = Math.floor(random.next() * 3);
      if (hiShape === 0) hi = q % 2 === 0 ? KEY_MAX : hi;
      if (hiShape === 1) hi = hi + KEY_MAX;
    }
    const got: number[] = [];
    tree.forEachInRange(lo, hi, (id) => got.push(id));
    const want = expected.filter(([k]) => k >= lo && k < hi).map(([, id]) => id);
    deepStrictEqual(got, want, `seed ${seed} range ${String(lo)}..${String(hi)}`);
    const equal: number[] = [];
    const probe = typeof lo === "string" && lo.length !== 8 ? keyOf(0) : lo;
    tree.forEachEqual(probe, (id) => equal.push(id));
    deepStrictEqual(equal, expected.filter(([k]) => k === probe).map(([, id]) => id));
  }
  return tree;
}

Deno.test("btree matches a sorted reference under random inserts and deletes (number keys)", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  runModel(seed, (n) => n - 500, 40_000, 3000);
});

Deno.test("btree matches a sorted reference under random inserts and deletes (string keys)", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  runModel(seed, (n) => String.fromCharCode(n >> 8, n & 0xff, 0), 40_000, 3000);
});

Deno.test("btree shrinks back to an empty root after deleting everything", () => {
  const tree = new BTree();
  for (let i = 0; i < 10_000; i++) ok(tree.insert(i % 977, i));
  tree.checkInvariants();
  for (let i = 9_999; i >= 0; i -= 2) ok(tree.delete(i % 977, i));
  for (let i = 0; i < 10_000; i += 2) ok(tree.delete(i % 977, i));
  tree.checkInvariants();
  deepStrictEqual(tree.size, 0);
  deepStrictEqual(tree.entries(), []);
  ok(tree.insert(5, 5));
  deepStrictEqual(tree.entries(), [[5, 5]]);
});

Deno.test("btree range walks cross many leaves in key order", () => {
  const tree = new BTree();
  for (let i = 100_000; i > 0; i--) tree.insert(i, 0);
  const got: number[] = [];
  tree.forEachInRange(-Infinity, Infinity, (id) => got.push(id));
  deepStrictEqual(got.length, 100_000);
  const keys = tree.entries().map(([k]) => k as number);
  ok(keys.every((k, i) => i === 0 || keys[i - 1] < k));
  tree.checkInvariants();
});

Deno.test("walk() visits entries from a key in either direction and stops when asked", () => {
  for (const strings of [false, true]) {
    const seeded = seededRandom(strings ? 7 : 3);
    const random = () => seeded.next();
    const tree = new BTree();
    const keyOf = (k: number) => strings ? String.fromCharCode(65 + (k >> 4), 65 + (k & 15)) : k;
    const keys: (number | string)[] = [];
    for (let i = 0; i < 3000; i++) {
      keys.push(keyOf(Math.floor(random() * 300)));
      tree.insert(keys[i], i);
    }
    for (let i = 0; i < 1000; i++) tree.delete(keys[i], i);
    const entries = tree.entries();
    for (let trial = 0; trial < 100; trial++) {
      const from = trial % 10 === 0 ? undefined : keyOf(Math.floor(random() * 300));
      for (const descending of [false, true]) {
        const got: number[] = [];
        tree.walk(from, descending, (id) => {
          got.push(id);
          return got.length < 500;
        });
        let expected = entries.filter(([k]) =>
          from === undefined || (descending ? k <= from : k >= from)
        ).map(([, id]) => id);
        if (descending) expected = expected.reverse();
        deepStrictEqual(got, expected.slice(0, 500));
      }
    }
  }
});
/** The key_encoding.ts string of a u64 (or of an i64 with its sign bit flipped). */
function key64(value: bigint, signed: boolean): string {
  let bits = BigInt.asUintN(64, signed ? value + (1n << 63n) : value);
  const units = new Array<number>(8);
  for (let i = 7; i >= 0; i--) {
    units[i] = Number(bits & 0xffn);
    bits >>= 8n;
  }
  return String.fromCharCode(...units);
}

/** Key values spread over the whole type with clusters at its ends and around zero. */
function value64(n: number, signed: boolean): bigint {
  const spot = n % 4;
  const offset = BigInt(Math.floor(n / 4));
  if (signed) {
    if (spot === 0) return -(1n << 63n) + offset;
    if (spot === 1) return (1n << 63n) - 1n - offset;
    if (spot === 2) return offset - 400n;
    return BigInt.asIntN(64, offset * 0x9e3779b97f4a7c15n);
  }
  if (spot === 0) return offset;
  if (spot === 1) return (1n << 64n) - 1n - offset;
  if (spot === 2) return (1n << 53n) - 200n + offset;
  return BigInt.asUintN(64, offset * 0x9e3779b97f4a7c15n);
}

Deno.test("int64 btree matches a sorted reference for u64 keys up to 2^64 - 1", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  runModel(seed, (n) => key64(value64(n, false), false), 40_000, 3000, new Int64BTree());
});

Deno.test("int64 btree matches a sorted reference for negative and positive i64 keys", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  runModel(seed, (n) => key64(value64(n, true), true), 40_000, 3000, new Int64BTree());
});

Deno.test("int64 btree walk() matches BTree.walk in both directions", () => {
  const seeded = seededRandom(11);
  const tree = new Int64BTree();
  const reference = new BTree();
  const keys: string[] = [];
  for (let i = 0; i < 3000; i++) {
    keys.push(key64(value64(Math.floor(seeded.next() * 400), i % 2 === 0), false));
    tree.insert(keys[i], i);
    reference.insert(keys[i], i);
  }
  for (let i = 0; i < 1000; i++) {
    tree.delete(keys[i], i);
    reference.delete(keys[i], i);
  }
  for (let trial = 0; trial < 100; trial++) {
    const from = trial % 10 === 0 ? undefined : keys[Math.floor(seeded.next() * keys.length)];
    for (const descending of [false, true]) {
      const got: number[] = [];
      const want: number[] = [];
      tree.walk(from, descending, (id) => got.push(id) < 500);
      reference.walk(from, descending, (id) => want.push(id) < 500);
      deepStrictEqual(got, want);
    }
  }
});

Deno.test("int64 btree orders i64 keys as numbers across the sign", () => {
  const tree = new Int64BTree();
  const values = [0n, -1n, 1n, -(1n << 63n), (1n << 63n) - 1n, -(1n << 53n) - 1n, 1n << 53n];
  values.forEach((v, id) => tree.insert(key64(v, true), id));
  const order = tree.entries().map(([, id]) => values[id]);
  deepStrictEqual(order, [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  tree.checkInvariants();
});

Deno.test("int64 btree keeps appends in full leaves and shrinks back when emptied", () => {
  const tree = new Int64BTree();
  for (let i = 0; i < 20_000; i++) ok(tree.insert(key64(BigInt(i), false), i));
  ok(!tree.insert(key64(7n, false), 7));
  tree.checkInvariants();
  for (let i = 0; i < 20_000; i++) ok(tree.delete(key64(BigInt(i), false), i));
  ok(!tree.delete(key64(7n, false), 7));
  deepStrictEqual(tree.size, 0);
  deepStrictEqual(tree.entries(), []);
  tree.checkInvariants();
});

for (const kind of ["number", "string", "int64"] as const) {
  Deno.test(`fromSorted() builds the tree inserts build, then keeps working (${kind} keys)`, () => {
    const random = seededRandom(7);
    const keyOf = (n: number): Key =>
      kind === "number"
        ? n - 5000
        : kind === "string"
        ? String.fromCharCode(n >> 8, n & 0xff, 0)
        : key64(value64(n, true), true);
    const make = (): AnyTree => (kind === "int64" ? new Int64BTree() : new BTree());
    for (const count of [0, 1, 63, 64, 65, 4096, 4097, 20_000]) {
      const inserted = make();
      const entries: [Key, number][] = [];
      for (let id = 0; id < count; id++) {
        const key = keyOf(Math.floor(random.next() * 9000));
        inserted.insert(key, id);
        entries.push([key, id]);
      }
      entries.sort(compareEntries);
      const keys = entries.map(([k]) => k);
      const ids = entries.map(([, id]) => id);
      const built = kind === "int64"
        ? Int64BTree.fromSorted(keys, ids)
        : BTree.fromSorted(keys, ids);
      built.checkInvariants();
      deepStrictEqual(built.entries(), inserted.entries());
      deepStrictEqual(built.size, count);
      for (let i = 0; i < 2000; i++) {
        const key = keyOf(Math.floor(random.next() * 9000));
        const id = count + (i % 50);
        deepStrictEqual(built.insert(key, id), inserted.insert(key, id));
        const gone = entries[Math.floor(random.next() * entries.length)];
        if (gone) {
          deepStrictEqual(built.delete(gone[0], gone[1]), inserted.delete(gone[0], gone[1]));
        }
      }
      built.checkInvariants();
      deepStrictEqual(built.entries(), inserted.entries());
    }
  });
}

Deno.test("int64 btree appends (rightmost-leaf fast path) mixed with deletes at the top and middle", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const tree = new Int64BTree();
  const model = new Map<string, [Key, number]>();
  let next = 1000;
  for (let op = 0; op < 30_000; op++) {
    const roll = random.next();
    if (roll < 0.6) {
      // An append: above every entry, or a repeat of the last one (not added again).
      const value = roll < 0.55 ? next++ : Math.max(1000, next - 1);
      const key = key64(BigInt(value), false);
      const id = value % 5;
      deepStrictEqual(tree.insert(key, id), !model.has(`${key}:${id}`), `seed ${seed} op ${op}`);
      model.set(`${key}:${id}`, [key, id]);
    } else if (roll < 0.8) {
      // Delete near the top, emptying (and unlinking) the rightmost leaves now and then.
      const value = next - 1 - Math.floor(random.next() * 40);
      const key = key64(BigInt(value), false);
      const id = value % 5;
      deepStrictEqual(tree.delete(key, id), model.delete(`${key}:${id}`), `seed ${seed} op ${op}`);
      if (random.next() < 0.3) next = Math.max(1000, next - 30);
    } else if (roll < 0.9) {
      const value = Math.floor(random.next() * next);
      const key = key64(BigInt(value), false);
      const id = value % 5;
      deepStrictEqual(tree.delete(key, id), model.delete(`${key}:${id}`), `seed ${seed} op ${op}`);
    } else {
      // Below the top: goes through the descent and may split a leaf left of the rightmost.
      const value = Math.floor(random.next() * next);
      const key = key64(BigInt(value), false);
      const id = value % 5;
      deepStrictEqual(tree.insert(key, id), !model.has(`${key}:${id}`), `seed ${seed} op ${op}`);
      model.set(`${key}:${id}`, [key, id]);
    }
    if (op % 499 === 0) tree.checkInvariants();
  }
  tree.checkInvariants();
  deepStrictEqual(tree.entries(), [...model.values()].sort(compareEntries), `seed ${seed}`);
});
