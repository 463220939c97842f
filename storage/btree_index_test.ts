import { deepStrictEqual, ok } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { BTree } from "./btree_index.ts";
import type { Key } from "./key_encoding.ts";

function compareEntries(a: [Key, number], b: [Key, number]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
}

function runModel(seed: number, keyOf: (n: number) => Key, operations: number, keySpace: number) {
  const random = seededRandom(seed);
  const tree = new BTree();
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
    const got: number[] = [];
    tree.forEachInRange(lo, hi, (id) => got.push(id));
    const want = expected.filter(([k]) => k >= lo && k < hi).map(([, id]) => id);
    deepStrictEqual(got, want, `seed ${seed} range ${String(lo)}..${String(hi)}`);
    const equal: number[] = [];
    tree.forEachEqual(lo, (id) => equal.push(id));
    deepStrictEqual(equal, expected.filter(([k]) => k === lo).map(([, id]) => id));
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
