import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { IntKeyMap } from "./int_key_map.ts";

function entries(map: IntKeyMap): [number, number][] {
  const out: [number, number][] = [];
  map.forEach((key, id) => out.push([key, id]));
  return out.sort((a, b) => a[0] - b[0]);
}

function modelEntries(model: Map<number, number>): [number, number][] {
  return [...model].map(([key, id]): [number, number] => [key | 0, id]).sort((a, b) => a[0] - b[0]);
}

Deno.test("IntKeyMap get, set, overwrite and delete behave like a Map", () => {
  const map = new IntKeyMap();
  strictEqual(map.get(7), -1);
  map.set(7, 0);
  map.set(8, 1);
  strictEqual(map.get(7), 0);
  strictEqual(map.get(8), 1);
  map.set(7, 5);
  strictEqual(map.get(7), 5);
  strictEqual(map.size, 2);
  strictEqual(map.delete(7), true);
  strictEqual(map.delete(7), false);
  strictEqual(map.get(7), -1);
  strictEqual(map.has(8), true);
  strictEqual(map.size, 1);
  map.clear();
  strictEqual(map.size, 0);
  strictEqual(map.get(8), -1);
});

Deno.test("IntKeyMap keeps u32 keys above 2^31 and negative i32 keys apart", () => {
  const map = new IntKeyMap();
  map.set(0xffffffff, 1);
  map.set(0x80000000, 2);
  map.set(0, 3);
  strictEqual(map.get(0xffffffff), 1);
  strictEqual(map.get(0x80000000), 2);
  strictEqual(map.get(0), 3);
  const signed = new IntKeyMap();
  signed.set(-1, 4);
  signed.set(-2147483648, 5);
  strictEqual(signed.get(-1), 4);
  strictEqual(signed.get(-2147483648), 5);
  strictEqual(signed.get(1), -1);
});

Deno.test("IntKeyMap grows past many inserts and finds every key afterwards", () => {
  const map = new IntKeyMap();
  for (let key = 0; key < 100_000; key++) map.set(key, key * 2);
  strictEqual(map.size, 100_000);
  for (let key = 0; key < 100_000; key++) strictEqual(map.get(key), key * 2);
  strictEqual(map.get(100_000), -1);
});

Deno.test("IntKeyMap deletes inside colliding probe runs without losing later entries", () => {
  // Six keys with one home slot in the initial 16-slot table (white box: Fibonacci hashing).
  const home = (key: number) => Math.imul(key, 0x9e3779b1) >>> 28;
  const colliding: number[] = [];
  for (let key = 0; colliding.length < 6; key++) if (home(key) === home(0)) colliding.push(key);
  const map = new IntKeyMap();
  colliding.forEach((key, i) => map.set(key, i));
  // Neighbours whose home is inside the run must stay findable after shifts.
  const neighbours = [1, 2, 3].map((n) => colliding[5] + n);
  neighbours.forEach((key, i) => map.set(key, 100 + i));
  strictEqual(map.delete(colliding[2]), true);
  strictEqual(map.delete(colliding[0]), true);
  colliding.forEach((key, i) => strictEqual(map.get(key), i === 0 || i === 2 ? -1 : i));
  neighbours.forEach((key, i) => strictEqual(map.get(key), 100 + i));
  strictEqual(map.size, 7);
});

Deno.test("IntKeyMap matches a Map model under random inserts, overwrites and deletes", () => {
  for (const seed of [1, 2, 3]) {
    const random = seededRandom(seed);
    const map = new IntKeyMap();
    const model = new Map<number, number>();
    // A small key space forces collisions, wrap-around runs and reuse of freed slots.
    const keySpace = [64, 4096, 0x100000000][seed - 1];
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(random.next() * keySpace);
      const op = random.next();
      if (op < 0.5) {
        const id = Math.floor(random.next() * 1_000_000);
        map.set(key, id);
        model.set(key, id);
      } else if (op < 0.8) {
        strictEqual(map.delete(key), model.delete(key), `seed ${seed} step ${step} delete ${key}`);
      } else {
        strictEqual(map.get(key), model.get(key) ?? -1, `seed ${seed} step ${step} get ${key}`);
      }
      strictEqual(map.size, model.size);
    }
    deepStrictEqual(entries(map), modelEntries(model));
    for (const [key, id] of model) strictEqual(map.get(key), id);
  }
});

Deno.test("IntKeyMap matches a Map through random writes while growing incrementally", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const map = new IntKeyMap();
  const model = new Map<number, number>();
  let growingSteps = 0;
  for (let step = 0; step < 80_000; step++) {
    const key = random.next() < 0.7
      ? Math.floor(random.next() * 20_000)
      : Math.floor(random.next() * 2 ** 32) | 0;
    const roll = random.next();
    if (roll < 0.6) {
      const id = Math.floor(random.next() * 1e6);
      map.set(key, id);
      model.set(key, id);
    } else if (roll < 0.8) {
      strictEqual(map.delete(key), model.delete(key), `seed ${seed} step ${step}: delete`);
    } else {
      strictEqual(map.get(key), model.get(key) ?? -1, `seed ${seed} step ${step}: get`);
    }
    if (map.growing) growingSteps++;
    strictEqual(map.size, model.size, `seed ${seed} step ${step}: size`);
  }
  for (const [key, id] of model) strictEqual(map.get(key), id, `seed ${seed}: final`);
  let visited = 0;
  map.forEach((key, id) => {
    strictEqual(model.get(key), id);
    visited++;
  });
  strictEqual(visited, model.size);
  ok(growingSteps > 100, `writes made while growing: ${growingSteps}`);
});
