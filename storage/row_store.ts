/**
 * Where a table keeps its row bytes, addressed by rowId.
 *
 * - `ObjectRowStore`: one immutable Uint8Array per row (any layout). `bytes(id)` is the stored
 *   array itself.
 * - `ArenaRowStore`: for layouts whose rows all have the same size (`RowLayout.rowSize >= 0`,
 *   e.g. `{id: u32, balance: i64}`): slot `id` (a state byte, then the row) sits in fixed-size
 *   pages of 4,096 slots, written in place; growth adds a page, and snapshots share pages
 *   copy-on-write. No object per row, so a
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
  /** A point-in-time view for a snapshot (see RowStoreCapture). */
  capture(): RowStoreCapture;
}

type RowSlot = Uint8Array | null | undefined;

/**
 * Rows as separate immutable Uint8Arrays; works for every layout. The rowId -> row table is kept
 * in pages of PAGE_ROWS entries, so growing never copies it and `capture()` shares the pages
 * copy-on-write (as the arena does) instead of copying a pointer per row.
 */
export class ObjectRowStore implements RowStore {
  /** rowId -> bytes; `null` = HIDDEN; `undefined` = FREE. */
  readonly #pages: RowSlot[][] = [];
  #shared = new Uint8Array(0);
  #sharedCount = 0;
  #captures = 0;
  #length = 0;
  readonly #free: number[] = [];

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
    if ((id >>> PAGE_SHIFT) === this.#pages.length) this.#pages.push([]);
    return id;
  }

  #row(id: number): RowSlot {
    return this.#pages[id >>> PAGE_SHIFT][id & PAGE_MASK];
  }

  #set(id: number, value: RowSlot): void {
    const page = id >>> PAGE_SHIFT;
    if (this.#sharedCount > 0 && page < this.#shared.length && this.#shared[page] === 1) {
      this.#shared[page] = 0;
      this.#sharedCount--;
      this.#pages[page] = this.#pages[page].slice();
    }
    this.#pages[page][id & PAGE_MASK] = value;
  }

  put(id: number, row: Uint8Array): void {
    this.#set(id, row);
  }

  hide(id: number): void {
    this.#set(id, null);
  }

  release(id: number): void {
    this.#set(id, undefined);
    this.#free.push(id);
  }

  state(id: number): number {
    if (id >= this.#length) return FREE;
    const row = this.#row(id);
    return row ? LIVE : row === null ? HIDDEN : FREE;
  }

  isLive(id: number): boolean {
    return id < this.#length && this.#row(id) ? true : false;
  }

  bytes(id: number): Uint8Array {
    return this.#row(id)!;
  }

  equals(id: number, row: Uint8Array): boolean {
    return bytesEqual(this.#row(id)!, row);
  }

  hash(id: number): number {
    return hashBytes(this.#row(id)!);
  }

  key(id: number, codec: KeyCodec): Key {
    return codec.fromRow(this.#row(id)!);
  }

  copyInto(id: number, out: Uint8Array, at: number): number {
    const row = this.#row(id)!;
    const length = row.length;
    if (length > 64) out.set(row, at);
    else for (let i = 0; i < length; i++) out[at + i] = row[i];
    return length;
  }

  size(id: number): number {
    return this.#row(id)!.length;
  }

  /** Copy-on-write view of the current rows (see ArenaRowStore.capture). */
  capture(): RowStoreCapture {
    this.#captures++;
    const pages = this.#pages.slice();
    this.#shared = new Uint8Array(pages.length).fill(1);
    this.#sharedCount = pages.length;
    const length = this.#length;
    let released = false;
    const rowAt = (id: number): RowSlot =>
      id < length ? pages[id >>> PAGE_SHIFT][id & PAGE_MASK] : undefined;
    return {
      length,
      copyInto(id, out, at) {
        const row = rowAt(id);
        if (!row) return -1;
        out.set(row, at);
        return row.length;
      },
      size(id) {
        const row = rowAt(id);
        return row ? row.length : -1;
      },
      release: () => {
        if (released) return;
        released = true;
        if (--this.#captures > 0) return;
        this.#shared = new Uint8Array(0);
        this.#sharedCount = 0;
      },
    };
  }
}

/** Rows per arena page (a power of two): pages are allocated one at a time, never copied. */
const PAGE_SHIFT = 12;
const PAGE_ROWS = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_ROWS - 1;

/**
 * A point-in-time view of a row store for a snapshot: LIVE rows only, read while the store keeps
 * changing. Call `release()` when done (the store stops copying pages for it).
 */
export interface RowStoreCapture {
  /** Row ids captured: [0, length). */
  readonly length: number;
  /** Copies row `id` into `out[at...]` if it was LIVE at capture; returns its length, or -1. */
  copyInto(id: number, out: Uint8Array, at: number): number;
  /** Length of row `id` if it was LIVE at capture, else -1. */
  size(id: number): number;
  release(): void;
}

/**
 * Rows of one fixed size in pages of PAGE_ROWS slots. Each slot is a state byte followed by the
 * row, so checking a row's state touches the cache line its bytes are on. Growing adds a page
 * (nothing is copied), and `capture()` is copy-on-write: it shares the pages with the capture
 * and a page is copied only when first written while a capture holds it.
 */
export class ArenaRowStore implements RowStore {
  readonly rowBytes: number;
  readonly #stride: number;
  readonly #pageBytes: number;
  /** Slot `id` at pages[id >> PAGE_SHIFT][(id & PAGE_MASK) * stride]. */
  readonly #pages: Uint8Array[] = [];
  /** 1 where the page is shared with a live capture (copy before writing). */
  #shared = new Uint8Array(0);
  #sharedCount = 0;
  /** Captures not yet released; pages stay flagged until the last one goes. */
  #captures = 0;
  #length = 0;
  readonly #free: number[] = [];

  constructor(rowBytes: number) {
    assert(rowBytes >= 0, "Arena rows need a fixed size");
    this.rowBytes = rowBytes;
    this.#stride = rowBytes + 1;
    this.#pageBytes = PAGE_ROWS * this.#stride;
  }

  get length(): number {
    return this.#length;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  /** Pages allocated (each PAGE_ROWS rows). */
  get pageCount(): number {
    return this.#pages.length;
  }

  allocate(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const id = this.#length++;
    if ((id >>> PAGE_SHIFT) === this.#pages.length) {
      this.#pages.push(new Uint8Array(this.#pageBytes));
    }
    return id;
  }

  /** The page holding `id`, copied first if a capture shares it. */
  #writable(id: number): Uint8Array {
    const page = id >>> PAGE_SHIFT;
    if (this.#sharedCount > 0 && page < this.#shared.length && this.#shared[page] === 1) {
      this.#shared[page] = 0;
      this.#sharedCount--;
      this.#pages[page] = this.#pages[page].slice();
    }
    return this.#pages[page];
  }

  put(id: number, row: Uint8Array): void {
    const rowBytes = this.rowBytes;
    assert(row.length === rowBytes, "Arena row has the wrong size");
    const slots = this.#writable(id);
    const base = (id & PAGE_MASK) * this.#stride;
    slots[base] = LIVE;
    if (rowBytes > 64) slots.set(row, base + 1);
    else for (let i = 0; i < rowBytes; i++) slots[base + 1 + i] = row[i];
  }

  /** `put` of the row at `source[start, start + rowBytes)`, with no Uint8Array per row (bulk loads). */
  putAt(id: number, source: Uint8Array, start: number): void {
    const slots = this.#writable(id);
    const base = (id & PAGE_MASK) * this.#stride;
    slots[base] = LIVE;
    const rowBytes = this.rowBytes;
    if (rowBytes > 64) slots.set(source.subarray(start, start + rowBytes), base + 1);
    else for (let i = 0; i < rowBytes; i++) slots[base + 1 + i] = source[start + i];
  }

  hide(id: number): void {
    this.#writable(id)[(id & PAGE_MASK) * this.#stride] = HIDDEN;
  }

  release(id: number): void {
    this.#writable(id)[(id & PAGE_MASK) * this.#stride] = FREE;
    this.#free.push(id);
  }

  state(id: number): number {
    return id < this.#length
      ? this.#pages[id >>> PAGE_SHIFT][(id & PAGE_MASK) * this.#stride]
      : FREE;
  }

  isLive(id: number): boolean {
    return id < this.#length &&
      this.#pages[id >>> PAGE_SHIFT][(id & PAGE_MASK) * this.#stride] === LIVE;
  }

  bytes(id: number): Uint8Array {
    const start = (id & PAGE_MASK) * this.#stride + 1;
    return copyBytes(this.#pages[id >>> PAGE_SHIFT], start, start + this.rowBytes);
  }

  equals(id: number, row: Uint8Array): boolean {
    return row.length === this.rowBytes &&
      bytesEqualAt(this.#pages[id >>> PAGE_SHIFT], (id & PAGE_MASK) * this.#stride + 1, row);
  }

  hash(id: number): number {
    const start = (id & PAGE_MASK) * this.#stride + 1;
    return hashByteRange(this.#pages[id >>> PAGE_SHIFT], start, start + this.rowBytes);
  }

  key(id: number, codec: KeyCodec): Key {
    return codec.fromRowAt(this.#pages[id >>> PAGE_SHIFT], (id & PAGE_MASK) * this.#stride + 1);
  }

  copyInto(id: number, out: Uint8Array, at: number): number {
    return copySlot(this.#pages[id >>> PAGE_SHIFT], id, this.#stride, this.rowBytes, out, at);
  }

  size(): number {
    return this.rowBytes;
  }

  /**
   * A copy-on-write view of the current rows: O(pages) now, then each page is copied at most
   * once, when the store first writes to it before the captures are released. Captures may
   * overlap. Call only between transactions (no HIDDEN rows).
   */
  capture(): RowStoreCapture {
    this.#captures++;
    const pages = this.#pages.slice();
    this.#shared = new Uint8Array(pages.length).fill(1);
    this.#sharedCount = pages.length;
    const length = this.#length;
    const stride = this.#stride;
    const rowBytes = this.rowBytes;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (--this.#captures > 0) return;
      this.#shared = new Uint8Array(0);
      this.#sharedCount = 0;
    };
    return {
      length,
      copyInto(id, out, at) {
        const page = pages[id >>> PAGE_SHIFT];
        if (id >= length || page[(id & PAGE_MASK) * stride] !== LIVE) return -1;
        return copySlot(page, id, stride, rowBytes, out, at);
      },
      size(id) {
        if (id >= length) return -1;
        return pages[id >>> PAGE_SHIFT][(id & PAGE_MASK) * stride] === LIVE ? rowBytes : -1;
      },
      release,
    };
  }
}

function copySlot(
  slots: Uint8Array,
  id: number,
  stride: number,
  rowBytes: number,
  out: Uint8Array,
  at: number,
): number {
  const start = (id & PAGE_MASK) * stride + 1;
  if (rowBytes > 64) out.set(slots.subarray(start, start + rowBytes), at);
  else for (let i = 0; i < rowBytes; i++) out[at + i] = slots[start + i];
  return rowBytes;
}
