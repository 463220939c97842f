/**
 * key -> rowId for unique indexes whose keys are numbers (one bool or integer column of at most
 * 32 bits, see key_encoding.ts). A JS Map costs two or three cache misses per lookup in a large
 * table (bucket array, entry, chain); this map keeps [key, rowId] pairs side by side in one
 * Int32Array with linear probing, so a lookup usually touches one cache line.
 *
 * Keys are stored as `key | 0`: one index has one column type, whose values (u32 up to 2^32 - 1,
 * i32, smaller ints, bools) map one-to-one onto int32. A slot stores rowId + 1, so 0 marks an
 * empty slot and a new table is a zeroed allocation (untouched pages, O(1)) instead of a fill
 * that writes the whole table at once (tens of ms for millions of slots).
 * Deletion shifts later entries of the probe run back (no tombstones), so lookups stay short
 * under churn. The table doubles once it is half full, incrementally: the old table's entries
 * move over a few dozen slots per write, so no single write rehashes a large table.
 */
const EMPTY = 0;
/** In a table being emptied by growth only: the entry moved or was deleted. */
const TOMBSTONE = -1;
const SLOTS_INITIAL = 16;
/** 2^32 / golden ratio: Fibonacci hashing spreads consecutive keys over the table. */
const HASH_MULTIPLIER = 0x9e3779b1;
/** Old-table slots moved per write while growing. */
const MIGRATE_SLOTS = 64;

export class IntKeyMap {
  /** Pairs: pairs[2 * slot] = key, pairs[2 * slot + 1] = rowId + 1, or EMPTY. */
  #pairs: Int32Array;
  #mask: number;
  #shift: number;
  #size = 0;
  /**
   * While growing: the previous, half-size table, emptied MIGRATE_SLOTS slots per write (its
   * moved or deleted entries become TOMBSTONE, so no entry shifts behind the cursor).
   */
  #old: Int32Array | null = null;
  #oldShift = 0;
  #cursor = 0;

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

  /** True while an old table is still being moved over (tests). */
  get growing(): boolean {
    return this.#old !== null;
  }

  /** The rowId stored under `key`, or -1. */
  get(key: number): number {
    const k = key | 0;
    const pairs = this.#pairs;
    const mask = this.#mask;
    let slot = Math.imul(k, HASH_MULTIPLIER) >>> this.#shift;
    for (;;) {
      const id = pairs[2 * slot + 1];
      if (id === EMPTY) return this.#old === null ? -1 : this.#getOld(k);
      if (pairs[2 * slot] === k) return id - 1;
      slot = (slot + 1) & mask;
    }
  }

  has(key: number): boolean {
    return this.get(key) !== -1;
  }

  /** Stores `id` (>= 0) under `key`, replacing any previous id. */
  set(key: number, id: number): void {
    if (2 * (this.#size + 1) > this.#mask + 1) this.#startGrowing();
    const k = key | 0;
    const existed = this.#old !== null && this.#takeOld(k);
    const pairs = this.#pairs;
    const mask = this.#mask;
    let slot = Math.imul(k, HASH_MULTIPLIER) >>> this.#shift;
    for (;;) {
      const at = 2 * slot;
      if (pairs[at + 1] === EMPTY) {
        pairs[at] = k;
        pairs[at + 1] = id + 1;
        if (!existed) this.#size++;
        break;
      }
      if (pairs[at] === k) {
        pairs[at + 1] = id + 1;
        break;
      }
      slot = (slot + 1) & mask;
    }
    if (this.#old !== null) this.#migrate(MIGRATE_SLOTS);
  }

  /** Removes `key`; false when it was absent. */
  delete(key: number): boolean {
    const k = key | 0;
    const found = this.#deleteCurrent(k) || (this.#old !== null && this.#takeOld(k));
    if (found) this.#size--;
    if (this.#old !== null) this.#migrate(MIGRATE_SLOTS);
    return found;
  }

  #deleteCurrent(k: number): boolean {
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
    return true;
  }

  /** The slot of `k` in the old table, or -1. */
  #findOld(k: number): number {
    const old = this.#old!;
    const mask = (old.length >>> 1) - 1;
    let slot = Math.imul(k, HASH_MULTIPLIER) >>> this.#oldShift;
    for (;;) {
      const id = old[2 * slot + 1];
      if (id === EMPTY) return -1;
      if (id !== TOMBSTONE && old[2 * slot] === k) return slot;
      slot = (slot + 1) & mask;
    }
  }

  #getOld(k: number): number {
    const slot = this.#findOld(k);
    return slot < 0 ? -1 : this.#old![2 * slot + 1] - 1;
  }

  /** Removes `k` from the old table; true when it was there. */
  #takeOld(k: number): boolean {
    const slot = this.#findOld(k);
    if (slot < 0) return false;
    this.#old![2 * slot + 1] = TOMBSTONE;
    return true;
  }

  clear(): void {
    this.#pairs = emptyPairs(this.#mask + 1);
    this.#old = null;
    this.#cursor = 0;
    this.#size = 0;
  }

  /** Visits every entry (keys as stored, i.e. `key | 0`), in no particular order. */
  forEach(visit: (key: number, id: number) => void): void {
    for (const pairs of this.#old === null ? [this.#pairs] : [this.#pairs, this.#old]) {
      for (let at = 0; at < pairs.length; at += 2) {
        if (pairs[at + 1] > 0) visit(pairs[at], pairs[at + 1] - 1);
      }
    }
  }

  /** Doubles the table; the entries move over during the next writes (MIGRATE_SLOTS each). */
  #startGrowing(): void {
    if (this.#old !== null) this.#migrate(Infinity);
    this.#old = this.#pairs;
    this.#oldShift = this.#shift;
    this.#cursor = 0;
    const slots = (this.#mask + 1) * 2;
    this.#pairs = emptyPairs(slots);
    this.#mask = slots - 1;
    this.#shift = 32 - Math.log2(slots);
  }

  #migrate(slotCount: number): void {
    const old = this.#old!;
    const end = Math.min(old.length >>> 1, this.#cursor + slotCount);
    const pairs = this.#pairs;
    const mask = this.#mask;
    const shift = this.#shift;
    for (let from = this.#cursor; from < end; from++) {
      const id = old[2 * from + 1];
      if (id <= 0) continue;
      const k = old[2 * from];
      old[2 * from + 1] = TOMBSTONE;
      let slot = Math.imul(k, HASH_MULTIPLIER) >>> shift;
      while (pairs[2 * slot + 1] !== EMPTY) slot = (slot + 1) & mask;
      pairs[2 * slot] = k;
      pairs[2 * slot + 1] = id;
    }
    this.#cursor = end;
    if (end === old.length >>> 1) this.#old = null;
  }
}

/** A table of `slots` EMPTY (0) slots: a zeroed allocation, no write. */
function emptyPairs(slots: number): Int32Array {
  return new Int32Array(2 * slots);
}
