/**
 * key -> rowId for unique indexes whose keys are numbers (one bool or integer column of at most
 * 32 bits, see key_encoding.ts). A JS Map costs two or three cache misses per lookup in a large
 * table (bucket array, entry, chain); this map keeps [key, rowId] pairs side by side in one
 * Int32Array with linear probing, so a lookup usually touches one cache line.
 *
 * Keys are stored as `key | 0`: one index has one column type, whose values (u32 up to 2^32 - 1,
 * i32, smaller ints, bools) map one-to-one onto int32. Row ids are >= 0; -1 marks an empty slot.
 * Deletion shifts later entries of the probe run back (no tombstones), so lookups stay short
 * under churn. The table doubles once it is half full.
 */
const EMPTY = -1;
const SLOTS_INITIAL = 16;
/** 2^32 / golden ratio: Fibonacci hashing spreads consecutive keys over the table. */
const HASH_MULTIPLIER = 0x9e3779b1;

export class IntKeyMap {
  /** Pairs: pairs[2 * slot] = key, pairs[2 * slot + 1] = rowId or EMPTY. */
  #pairs: Int32Array;
  #mask: number;
  #shift: number;
  #size = 0;

  constructor(capacity = 0) {
    let slots = SLOTS_INITIAL;
    while (slots < capacity * 2) slots *= 2;
    this.#pairs = emptyPairs(slots);
    this.#mask = slots - 1;
    this.#shift = 32 - Math.log2(slots);
  }

  get size(): number {
    return this.#size;
  }

  /** The rowId stored under `key`, or -1. */
  get(key: number): number {
    const k = key | 0;
    const pairs = this.#pairs;
    const mask = this.#mask;
    let slot = Math.imul(k, HASH_MULTIPLIER) >>> this.#shift;
    for (;;) {
      const id = pairs[2 * slot + 1];
      if (id === EMPTY) return -1;
      if (pairs[2 * slot] === k) return id;
      slot = (slot + 1) & mask;
    }
  }

  has(key: number): boolean {
    return this.get(key) !== -1;
  }

  /** Stores `id` (>= 0) under `key`, replacing any previous id. */
  set(key: number, id: number): void {
    if (2 * (this.#size + 1) > this.#mask + 1) this.#grow();
    const k = key | 0;
    const pairs = this.#pairs;
    const mask = this.#mask;
    let slot = Math.imul(k, HASH_MULTIPLIER) >>> this.#shift;
    for (;;) {
      const at = 2 * slot;
      if (pairs[at + 1] === EMPTY) {
        pairs[at] = k;
        pairs[at + 1] = id;
        this.#size++;
        return;
      }
      if (pairs[at] === k) {
        pairs[at + 1] = id;
        return;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** Removes `key`; false when it was absent. */
  delete(key: number): boolean {
    const k = key | 0;
    const pairs = this.#pairs;
    const mask = this.#mask;
    const shift = this.#shift;
    let hole = Math.imul(k, HASH_MULTIPLIER) >>> shift;
    for (;;) {
      if (pairs[2 * hole + 1] === EMPTY) return false;
      if (pairs[2 * hole] === k) break;
      hole = (hole + 1) & mask;
    }
    // Backward shift: move later entries of the run into the hole when their home slot allows.
    let slot = hole;
    for (;;) {
      slot = (slot + 1) & mask;
      const id = pairs[2 * slot + 1];
      if (id === EMPTY) break;
      const home = Math.imul(pairs[2 * slot], HASH_MULTIPLIER) >>> shift;
      // The entry may move to `hole` unless its home lies cyclically in (hole, slot].
      const homeAfterHole = hole <= slot
        ? home > hole && home <= slot
        : home > hole || home <= slot;
      if (homeAfterHole) continue;
      pairs[2 * hole] = pairs[2 * slot];
      pairs[2 * hole + 1] = id;
      hole = slot;
    }
    pairs[2 * hole + 1] = EMPTY;
    this.#size--;
    return true;
  }

  clear(): void {
    this.#pairs.fill(EMPTY);
    this.#size = 0;
  }

  /** Visits every entry (keys as stored, i.e. `key | 0`), in no particular order. */
  forEach(visit: (key: number, id: number) => void): void {
    const pairs = this.#pairs;
    for (let at = 0; at < pairs.length; at += 2) {
      if (pairs[at + 1] !== EMPTY) visit(pairs[at], pairs[at + 1]);
    }
  }

  #grow(): void {
    const old = this.#pairs;
    const slots = (this.#mask + 1) * 2;
    this.#pairs = emptyPairs(slots);
    this.#mask = slots - 1;
    this.#shift = 32 - Math.log2(slots);
    this.#size = 0;
    for (let at = 0; at < old.length; at += 2) {
      if (old[at + 1] !== EMPTY) this.set(old[at], old[at + 1]);
    }
  }
}

function emptyPairs(slots: number): Int32Array {
  return new Int32Array(2 * slots).fill(EMPTY);
}
