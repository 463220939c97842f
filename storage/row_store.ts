/**
 * Where a table keeps its row bytes, addressed by rowId.
 *
 * - `ObjectRowStore`: one immutable Uint8Array per row (any layout). `bytes(id)` is the stored
 *   array itself.
 * - `ArenaRowStore`: for layouts whose rows all have the same size (`RowLayout.rowSize >= 0`,
 *   e.g. `{id: u32, balance: i64}`): slot `id` (a state byte, then the row) sits at
 *   `id * (rowBytes + 1)` in one growable Uint8Array, written in place. No object per row, so a
 *   large table costs the GC nothing and a lookup touches the row's bytes only (not a
 *   Uint8Array object, then its bytes). `bytes(id)` is a fresh copy (~40 ns: materializing a
 *   100k-row table for a query costs ~5 ms, where the object store hands out its arrays).
 *
 * Either way, what `bytes(id)` returns never changes afterwards, so callers may keep it (undo
 * log, deltas, scan snapshots). A rowId is FREE, LIVE or HIDDEN (a committed row deleted by the
 * open transaction: restorable, but not visible).
 */
import { assert } from "../lib/assert.ts";
import { bytesEqual, bytesEqualAt, hashByteRange, hashBytes, type Key } from "./key_encoding.ts";
import type { KeyCodec } from "./key_encoding.ts";
import { copyBytes } from "./row_arena.ts";

export const FREE = 0;
export const LIVE = 1;
export const HIDDEN = 2;

export interface RowStore {
  /** One past the highest rowId handed out so far. */
  readonly length: number;
  /** Number of FREE ids below `length`. */
  readonly freeCount: number;
  /** A FREE rowId to `put` a row at (reuses freed ids first). */
  allocate(): number;
  /** Stores a valid row at `id` (LIVE). The object store keeps `row` itself; the arena copies. */
  put(id: number, row: Uint8Array): void;
  /** LIVE -> HIDDEN. */
  hide(id: number): void;
  /** Makes `id` FREE and reusable. */
  release(id: number): void;
  state(id: number): number;
  isLive(id: number): boolean;
  /** The bytes of a LIVE row; never mutated afterwards. */
  bytes(id: number): Uint8Array;
  /** True when LIVE row `id` equals `row` byte for byte. */
  equals(id: number, row: Uint8Array): boolean;
  /** `hashBytes` of LIVE row `id`. */
  hash(id: number): number;
  /** `codec.fromRow` of LIVE row `id`. */
  key(id: number, codec: KeyCodec): Key;
  /** Copies LIVE row `id` to `out[at...]`; returns its length. The caller checks the room. */
  copyInto(id: number, out: Uint8Array, at: number): number;
  /** Length of LIVE row `id`. */
  size(id: number): number;
}

/** Rows as separate immutable Uint8Arrays; works for every layout. */
export class ObjectRowStore implements RowStore {
  /** rowId -> bytes; `null` = HIDDEN; `undefined` = FREE. */
  readonly #rows: (Uint8Array | null | undefined)[] = [];
  readonly #free: number[] = [];

  get length(): number {
    return this.#rows.length;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  allocate(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    this.#rows.push(undefined);
    return this.#rows.length - 1;
  }

  put(id: number, row: Uint8Array): void {
    this.#rows[id] = row;
  }

  hide(id: number): void {
    this.#rows[id] = null;
  }

  release(id: number): void {
    this.#rows[id] = undefined;
    this.#free.push(id);
  }

  state(id: number): number {
    const row = this.#rows[id];
    return row ? LIVE : row === null ? HIDDEN : FREE;
  }

  isLive(id: number): boolean {
    return this.#rows[id] ? true : false;
  }

  bytes(id: number): Uint8Array {
    return this.#rows[id]!;
  }

  equals(id: number, row: Uint8Array): boolean {
    return bytesEqual(this.#rows[id]!, row);
  }

  hash(id: number): number {
    return hashBytes(this.#rows[id]!);
  }

  key(id: number, codec: KeyCodec): Key {
    return codec.fromRow(this.#rows[id]!);
  }

  copyInto(id: number, out: Uint8Array, at: number): number {
    const row = this.#rows[id]!;
    const length = row.length;
    if (length > 64) out.set(row, at);
    else for (let i = 0; i < length; i++) out[at + i] = row[i];
    return length;
  }

  size(id: number): number {
    return this.#rows[id]!.length;
  }
}

const ARENA_ROWS_INITIAL = 64;

/**
 * Rows of one fixed size back to back in one growable byte array. Each slot is a state byte
 * followed by the row, so checking a row's state touches the cache line its bytes are on.
 */
export class ArenaRowStore implements RowStore {
  readonly rowBytes: number;
  readonly #stride: number;
  /** Slot `id` at `id * stride`: state (FREE / LIVE / HIDDEN), then `rowBytes` of row. */
  #slots: Uint8Array;
  #capacity = ARENA_ROWS_INITIAL;
  #length = 0;
  readonly #free: number[] = [];

  constructor(rowBytes: number) {
    assert(rowBytes >= 0, "Arena rows need a fixed size");
    this.rowBytes = rowBytes;
    this.#stride = rowBytes + 1;
    this.#slots = new Uint8Array(ARENA_ROWS_INITIAL * this.#stride);
  }

  get length(): number {
    return this.#length;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  allocate(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const id = this.#length++;
    if (id === this.#capacity) {
      this.#capacity *= 2;
      const slots = new Uint8Array(this.#capacity * this.#stride);
      slots.set(this.#slots);
      this.#slots = slots;
    }
    return id;
  }

  put(id: number, row: Uint8Array): void {
    const rowBytes = this.rowBytes;
    assert(row.length === rowBytes, "Arena row has the wrong size");
    const slots = this.#slots;
    const base = id * this.#stride;
    slots[base] = LIVE;
    if (rowBytes > 64) slots.set(row, base + 1);
    else for (let i = 0; i < rowBytes; i++) slots[base + 1 + i] = row[i];
  }

  hide(id: number): void {
    this.#slots[id * this.#stride] = HIDDEN;
  }

  release(id: number): void {
    this.#slots[id * this.#stride] = FREE;
    this.#free.push(id);
  }

  state(id: number): number {
    return id < this.#length ? this.#slots[id * this.#stride] : FREE;
  }

  isLive(id: number): boolean {
    return id < this.#length && this.#slots[id * this.#stride] === LIVE;
  }

  bytes(id: number): Uint8Array {
    const start = id * this.#stride + 1;
    return copyBytes(this.#slots, start, start + this.rowBytes);
  }

  equals(id: number, row: Uint8Array): boolean {
    return row.length === this.rowBytes && bytesEqualAt(this.#slots, id * this.#stride + 1, row);
  }

  hash(id: number): number {
    const start = id * this.#stride + 1;
    return hashByteRange(this.#slots, start, start + this.rowBytes);
  }

  key(id: number, codec: KeyCodec): Key {
    return codec.fromRowAt(this.#slots, id * this.#stride + 1);
  }

  copyInto(id: number, out: Uint8Array, at: number): number {
    const rowBytes = this.rowBytes;
    const slots = this.#slots;
    const start = id * this.#stride + 1;
    if (rowBytes > 64) out.set(slots.subarray(start, start + rowBytes), at);
    else for (let i = 0; i < rowBytes; i++) out[at + i] = slots[start + i];
    return rowBytes;
  }

  size(): number {
    return this.rowBytes;
  }
}
