import { strictEqual } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { Key64Map } from "./key64_map.ts";

/** An 8-code-unit key as key_encoding.ts builds for a u64 (big-endian bytes). */
function key(value: bigint): string {
  let text = "";
  for (let shift = 56n; shift >= 0n; shift -= 8n) {
    text += String.fromCharCode(Number((value >> shift) & 0xffn));
  }
  return text;
}

Deno.test("Key64Map matches a Map through random sets, replaces and deletes while it grows", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const map = new Key64Map();
  const model = new Map<string, number>();
  let sawGrowing = false;
  // Keys from a small range (collisions and replaces) and from all 64 bits (high halves differ).
  const pick = () =>
    random.next() < 0.5 ? key(BigInt(Math.floor(random.next() * 5000))) : key(
      (BigInt(Math.floor(random.next() * 2 ** 32)) << 32n) | BigInt(random.next() < 0.5 ? 7 : 8),
    );
  for (let step = 0; step < 60_000; step++) {
    const k = pick();
    const roll = random.next();
    if (roll < 0.6) {
      const id = Math.floor(random.next() * 1e6);
      map.set(k, id);
      model.set(k, id);
    } else if (roll < 0.85) {
      strictEqual(map.delete(k), model.delete(k), `seed ${seed} step ${step}: delete`);
    } else {
      strictEqual(map.get(k), model.get(k) ?? -1, `seed ${seed} step ${step}: get`);
    }
    sawGrowing ||= map.growing;
    strictEqual(map.size, model.size, `seed ${seed} step ${step}: size`);
  }
  for (const [k, id] of model) strictEqual(map.get(k), id, `seed ${seed}: final get`);
  strictEqual(sawGrowing, true, "the map grew incrementally at least once");
});

Deno.test("Key64Map grows without moving every entry in one write", () => {
  const map = new Key64Map();
  let growingWrites = 0;
  for (let i = 0; i < 300_000; i++) {
    map.set(key(BigInt(i + 1)), i);
    if (map.growing) growingWrites++;
  }
  for (let i = 0; i < 300_000; i += 997) strictEqual(map.get(key(BigInt(i + 1))), i);
  strictEqual(map.get(key(0n)), -1);
  // Each doubling spreads its moves over (old slots / 64) writes instead of one.
  strictEqual(growingWrites > 1000, true, `writes made while growing: ${growingWrites}`);
});

Deno.test("Key64Map.loadParts() finds what set() would, keeps working, and refuses a repeated key", () => {
  const random = seededRandom(5);
  for (const count of [0, 1, 100, 20_000]) {
    const values = new Set<bigint>();
    while (values.size < count) {
      values.add(
        random.next() < 0.5
          ? BigInt(Math.floor(random.next() * 100_000))
          : (BigInt(Math.floor(random.next() * 2 ** 32)) << 32n) |
            BigInt(Math.floor(random.next() * 2 ** 32)),
      );
    }
    const list = [...values];
    const highs = new Uint32Array(list.map((v) => Number(v >> 32n)));
    const lows = new Uint32Array(list.map((v) => Number(v & 0xffffffffn)));
    const map = new Key64Map(count);
    strictEqual(map.loadParts(highs, lows), true);
    strictEqual(map.size, count);
    list.forEach((v, i) => strictEqual(map.get(key(v)), i));
    strictEqual(map.get(key(1n << 63n)), list.includes(1n << 63n) ? list.indexOf(1n << 63n) : -1);
    // Writes after a bulk load: deletes, new keys (through growth).
    for (let i = 0; i < count; i += 2) strictEqual(map.delete(key(list[i])), true);
    for (let i = 0; i < 3 * count; i++) map.set(key((1n << 40n) + BigInt(i)), i);
    for (let i = 0; i < count; i++) strictEqual(map.get(key(list[i])), i % 2 === 0 ? -1 : i);
    for (let i = 0; i < 3 * count; i++) strictEqual(map.get(key((1n << 40n) + BigInt(i))), i);
    if (count > 1) {
      const repeated = new Key64Map(count);
      const withRepeat = highs.slice();
      const lowsRepeat = lows.slice();
      withRepeat[count - 1] = withRepeat[0];
      lowsRepeat[count - 1] = lowsRepeat[0];
      strictEqual(repeated.loadParts(withRepeat, lowsRepeat), false);
    }
  }
});
