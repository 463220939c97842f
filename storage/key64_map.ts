/**
 * key -> rowId for unique keys over one 64-bit integer column (u64/i64, e.g. auto-increment ids).
 * Their keys are 8-code-unit strings (key_encoding.ts: big-endian bytes, sign bit flipped), which
 * this map keeps as two int32 halves in one Int32Array with linear probing: no JS Map (whose
 * entries and string keys cost ~100 bytes per row, whose growth rehashes every entry at once, and
 * which stops at 2^24 entries).
 *
 * Growth is incremental: when the table is half full a table twice the size takes new entries
 * and every later write moves MIGRATE_SLOTS slots of the old table over, so no single write
 * rehashes millions of entries. While both tables exist, lookups try the new one first; the old
 * one marks moved or deleted entries with a tombstone (no backward shift, which could move an
 * entry behind the migration cursor).
 *
 * A slot stores rowId + 1, so an empty slot is 0: a new table is a plain zeroed allocation,
 * which the kernel hands out as untouched pages in O(1). Filling it with a marker instead wrote
 * the whole table at once (a 4M-slot table is 48 MB: ~28 ms, 8M slots ~56 ms on the 2-core VM),
 * the database process's longest stall while an auto-increment table grew.
 */
const EMPTY = 0;
const TOMBSTONE = -1;
const SLOTS_INITIAL = 16;
/**
 * Keys that differ only in their lowest BLOCK_BITS bits get neighbouring home slots (a hashed
 * block of 2^BLOCK_BITS slots, 96 bytes): consecutive keys (auto-increment ids) then share cache
 * lines instead of each missing the cache in a table of millions. A stride of 2^BLOCK_BITS or
 * more uses one slot per block as home, so at most half full it costs a few probes within the
 * block's lines.
 */
const BLOCK_BITS = 3;
const BLOCK_MASK = (1 << BLOCK_BITS) - 1;
/** Old-table slots moved per write while growing (the old table is gone long before the new fills). */
const MIGRATE_SLOTS = 64;

class Slots {
  /** Triples: [3 * slot] = high half, [+1] = low half, [+2] = rowId + 1, EMPTY or TOMBSTONE. */
  readonly cells: Int32Array;
  readonly mask: number;
  readonly shift: number;
  /** `shift` for the block number (the home slot's bits above BLOCK_BITS). */
  readonly blockShift: number;

  constructor(slots: number) {
    this.cells = new Int32Array(3 * slots); // all EMPTY (0)
    this.mask = slots - 1;
    this.shift = 32 - Math.log2(slots);
    this.blockShift = this.shift + BLOCK_BITS;
  }

  get slotCount(): number {
    return this.mask + 1;
  }

  home(hi: number, lo: number): number {
    const block = Math.imul(hi ^ Math.imul(lo >>> BLOCK_BITS, 0x85ebca6b), 0x9e3779b1) >>>
      this.blockShift;
    return (block << BLOCK_BITS) | (lo & BLOCK_MASK);
  }

  /** The slot holding (hi, lo), or -1. */
  find(hi: number, lo: number): number {
    const cells = this.cells;
    const mask = this.mask;
    let slot = this.home(hi, lo);
    for (;;) {
      const at = 3 * slot;
      const id = cells[at + 2];
      if (id === EMPTY) return -1;
      if (id !== TOMBSTONE && cells[at] === hi && cells[at + 1] === lo) return slot;
      slot = (slot + 1) & mask;
    }
  }

  /** The rowId in `slot` (which holds an entry). */
  rowId(slot: number): number {
    return this.cells[3 * slot + 2] - 1;
  }

  /** Stores or replaces; true when the key was new here. No tombstones in a table that grows. */
  put(hi: number, lo: number, id: number): boolean {
    const cells = this.cells;
    const mask = this.mask;
    let slot = this.home(hi, lo);
    for (;;) {
      const at = 3 * slot;
      const current = cells[at + 2];
      if (current === EMPTY) {
        cells[at] = hi;
        cells[at + 1] = lo;
        cells[at + 2] = id + 1;
        return true;
      }
      if (cells[at] === hi && cells[at + 1] === lo) {
        cells[at + 2] = id + 1;
        return false;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** Removes with a backward shift (the table entries are written to). */
  removeShift(hi: number, lo: number): boolean {
    const cells = this.cells;
    const mask = this.mask;
    let hole = this.find(hi, lo);
    if (hole < 0) return false;
    let slot = hole;
    for (;;) {
      slot = (slot + 1) & mask;
      const at = 3 * slot;
      const id = cells[at + 2];
      if (id === EMPTY) break;
      const home = this.home(cells[at], cells[at + 1]);
      const homeAfterHole = hole <= slot
        ? home > hole && home <= slot
        : home > hole || home <= slot;
      if (homeAfterHole) continue;
      cells[3 * hole] = cells[at];
      cells[3 * hole + 1] = cells[at + 1];
      cells[3 * hole + 2] = id;
      hole = slot;
    }
    cells[3 * hole + 2] = EMPTY;
    return true;
  }
}

export class Key64Map {
  #table: Slots;
  /** The table being emptied into #table while growing, and the next slot to move. */
  #old: Slots | null = null;
  #cursor = 0;
  #size = 0;

  /** `capacity`: entries to make room for up front (a snapshot load knows its row count). */
  constructor(capacity = 0) {
    this.#table = new Slots(slotsFor(capacity));
  }

  get size(): number {
    return this.#size;
  }

  /** True while an old table is still being moved over (tests). */
  get growing(): boolean {
    return this.#old !== null;
  }

  get(key: string | number): number {
    const k = key as string;
    return this.getParts(high(k), low(k));
  }

  /** `get` of the key whose two 32-bit halves are `hi` and `lo` (either signedness). */
  getParts(hi: number, lo: number): number {
    hi |= 0;
    lo |= 0;
    const table = this.#table;
    let slot = table.find(hi, lo);
    if (slot >= 0) return table.rowId(slot);
    const old = this.#old;
    if (old === null) return -1;
    slot = old.find(hi, lo);
    return slot >= 0 ? old.rowId(slot) : -1;
  }

  has(key: string | number): boolean {
    return this.get(key) !== -1;
  }

  set(key: string | number, id: number): void {
    const k = key as string;
    this.setParts(high(k), low(k), id);
  }

  /**
   * Bulk load into an EMPTY map: key (highs[i], lows[i]) -> i for every i. The entries are put
   * in the order of their home slots (a counting sort by the slot's high bits), so the writes
   * sweep the table once instead of missing the cache on nearly every entry. Returns false,
   * leaving the map unusable, when a key repeats.
   */
  loadParts(highs: Uint32Array, lows: Uint32Array): boolean {
    if (this.#size !== 0 || this.#old !== null) throw new Error("Bulk load needs an empty map");
    const count = highs.length;
    if (2 * count > this.#table.slotCount) this.#table = new Slots(slotsFor(count));
    const table = this.#table;
    const slotBits = 32 - table.shift;
    const bucketBits = Math.min(slotBits, 12);
    const bucketShift = slotBits - bucketBits;
    const starts = new Int32Array((1 << bucketBits) + 1);
    const homes = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const home = table.home(highs[i] | 0, lows[i] | 0);
      homes[i] = home;
      starts[(home >>> bucketShift) + 1]++;
    }
    for (let b = 1; b < starts.length; b++) starts[b] += starts[b - 1];
    const order = new Int32Array(count);
    for (let i = 0; i < count; i++) order[starts[homes[i] >>> bucketShift]++] = i;
    for (let k = 0; k < count; k++) {
      const i = order[k];
      if (!table.put(highs[i] | 0, lows[i] | 0, i)) return false;
    }
    this.#size = count;
    return true;
  }

  /** `set` of the key whose two 32-bit halves are `hi` and `lo` (either signedness). */
  setParts(hi: number, lo: number, id: number): void {
    hi |= 0;
    lo |= 0;
    // Grow first (a replace may start it too): the key must be looked for in the tables that
    // exist once the write happens.
    if (2 * (this.#size + 1) > this.#table.slotCount) this.#startGrowing();
    let existed = false;
    const old = this.#old;
    if (old !== null) {
      const slot = old.find(hi, lo);
      if (slot >= 0) {
        old.cells[3 * slot + 2] = TOMBSTONE;
        existed = true;
      }
    }
    if (this.#table.put(hi, lo, id) && !existed) this.#size++;
    if (this.#old !== null) this.#migrate(MIGRATE_SLOTS);
  }

  delete(key: string | number): boolean {
    const k = key as string;
    const hi = high(k);
    const lo = low(k);
    let found = this.#table.removeShift(hi, lo);
    const old = this.#old;
    if (!found && old !== null) {
      const slot = old.find(hi, lo);
      if (slot >= 0) {
        old.cells[3 * slot + 2] = TOMBSTONE;
        found = true;
      }
    }
    if (found) this.#size--;
    if (this.#old !== null) this.#migrate(MIGRATE_SLOTS);
    return found;
  }

  clear(): void {
    this.#table = new Slots(SLOTS_INITIAL);
    this.#old = null;
    this.#cursor = 0;
    this.#size = 0;
  }

  #startGrowing(): void {
    if (this.#old !== null) this.#migrate(Infinity);
    this.#old = this.#table;
    this.#cursor = 0;
    this.#table = new Slots(this.#old.slotCount * 2);
  }

  #migrate(slots: number): void {
    const old = this.#old!;
    const cells = old.cells;
    const end = Math.min(old.slotCount, this.#cursor + slots);
    const table = this.#table;
    for (let slot = this.#cursor; slot < end; slot++) {
      const at = 3 * slot;
      const stored = cells[at + 2];
      if (stored > 0) {
        table.put(cells[at], cells[at + 1], stored - 1);
        cells[at + 2] = TOMBSTONE;
      }
    }
    this.#cursor = end;
    if (end === old.slotCount) this.#old = null;
  }
}

/** Slots for `capacity` entries at most half full. */
function slotsFor(capacity: number): number {
  let slots = SLOTS_INITIAL;
  while (slots < capacity * 2) slots *= 2;
  return slots;
}

/** High 32 bits of an 8-code-unit key (each unit one byte, big-endian). */
function high(key: string): number {
  return (key.charCodeAt(0) << 24) | (key.charCodeAt(1) << 16) | (key.charCodeAt(2) << 8) |
    key.charCodeAt(3);
}

function low(key: string): number {
  return (key.charCodeAt(4) << 24) | (key.charCodeAt(5) << 16) | (key.charCodeAt(6) << 8) |
    key.charCodeAt(7);
}
