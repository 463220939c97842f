/**
 * Where a table keeps its row bytes, addressed by rowId.
 *
 * - `PagedRowStore`: any layout; row bytes appended to 256 KiB chunks, a row's location in
 *   int32 pages (below). No object per row either.
 * - `ArenaRowStore`: for layouts whose rows all have the same size (`RowLayout.rowSize >= 0`,
 *   e.g. `{id: u32, balance: i64}`): slot `id` (a state byte, then the row) sits in fixed-size
 *   pages of 4,096 slots, written in place; growth adds a page, and snapshots share pages
 *   copy-on-write. No object per row, so a
 *   large table costs the GC nothing and a lookup touches the row's bytes only (not a
 *   Uint8Array object, then its bytes). `bytes(id)` is a fresh copy (~40 ns: materializing a
 *   100k-row table for a query costs ~5 ms).
 *
 * Either way, what `bytes(id)` returns never changes afterwards, so callers may keep it (undo
 * log, deltas, scan snapshots). A rowId is FREE, LIVE or HIDDEN (a committed row deleted by the
 * open transaction: restorable, but not visible).
 */
import { assert } from "../lib/assert.ts";
import { bytesEqualAt, hashByteRange, type Key } from "./key_encoding.ts";
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

/** Bytes per chunk of a `PagedRowStore`; a longer row gets a chunk of its own. */
const CHUNK_BYTES = 256 * 1024;
/** Each row in a chunk is preceded by its rowId (u32) and length (u32), for compaction. */
const ROW_HEADER_BYTES = 8;
/** A full chunk is compacted once at least this share of its bytes belongs to dead rows. */
const CHUNK_DEAD_SHARE_MAX = 0.5;
/** Slot fields in a `PagedRowStore` location page: chunk (or FREE_CHUNK/HIDDEN_CHUNK), start, length. */
const LOCATION_FIELDS = 3;
const FREE_CHUNK = -1;
const HIDDEN_CHUNK = -2;

/**
 * Rows of any size without an object per row: the bytes are appended to 256 KiB chunks (each
 * row behind an 8-byte header naming its rowId and length), and slot `id` is three int32s
 * (chunk, start, length) in location pages of PAGE_ROWS slots. A 1,000,000-row table of ~60-byte
 * rows is ~250 chunks and ~250 pages for the GC instead of a million Uint8Arrays (one per row
 * made every major GC walk them, and a major GC landing in a snapshot capture stalled it for
 * 100+ ms).
 *
 * Chunk bytes are never overwritten: a rewritten row is appended again and its old copy becomes
 * dead. A full chunk whose dead bytes reach CHUNK_DEAD_SHARE_MAX is compacted right away (its
 * live rows appended anew, found through the headers, then the chunk dropped), so the work per
 * write is bounded by one chunk and memory by about twice the live bytes. Captures share the
 * location pages copy-on-write (like the arena) and keep the chunk list they saw; since chunk
 * bytes never change, that is all a snapshot needs.
 */
export class PagedRowStore implements RowStore {
  readonly #pages: Int32Array[] = [];
  #shared = new Uint8Array(0);
  #sharedCount = 0;
  #captures = 0;
  #length = 0;
  readonly #free: number[] = [];
  /** Chunks by index; null once compacted away (indexes are never reused). */
  readonly #chunks: (Uint8Array | null)[] = [];
  /** Per chunk: bytes appended (headers included) and bytes of rows no longer there. */
  #chunkUsed: number[] = [];
  #chunkDead: number[] = [];
  /** The chunk rows are appended to (-1 before the first row). */
  #current = -1;
  /** Chunks due for compaction (see #compactDue). */
  readonly #due: number[] = [];
  #compacting = false;

  get length(): number {
    return this.#length;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  /** Chunks holding row bytes now (for tests and memory figures). */
  get chunkCount(): number {
    let count = 0;
    for (const chunk of this.#chunks) if (chunk !== null) count++;
    return count;
  }

  allocate(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const id = this.#length++;
    if ((id >>> PAGE_SHIFT) === this.#pages.length) {
      this.#pages.push(new Int32Array(PAGE_ROWS * LOCATION_FIELDS).fill(FREE_CHUNK));
    }
    return id;
  }

  #writable(id: number): Int32Array {
    const page = id >>> PAGE_SHIFT;
    if (this.#sharedCount > 0 && page < this.#shared.length && this.#shared[page] === 1) {
      this.#shared[page] = 0;
      this.#sharedCount--;
      this.#pages[page] = this.#pages[page].slice();
    }
    return this.#pages[page];
  }

  put(id: number, row: Uint8Array): void {
    const slots = this.#writable(id);
    const at = (id & PAGE_MASK) * LOCATION_FIELDS;
    const old = slots[at];
    const oldLength = slots[at + 2];
    this.#append(id, row, 0, row.length, slots, at);
    if (old >= 0) this.#kill(old, oldLength);
    this.#compactDue();
  }

  hide(id: number): void {
    this.#setDead(id, HIDDEN_CHUNK);
  }

  release(id: number): void {
    this.#setDead(id, FREE_CHUNK);
    this.#free.push(id);
  }

  #setDead(id: number, state: number): void {
    const slots = this.#writable(id);
    const at = (id & PAGE_MASK) * LOCATION_FIELDS;
    const old = slots[at];
    slots[at] = state;
    if (old >= 0) this.#kill(old, slots[at + 2]);
    this.#compactDue();
  }

  /** Writes `source[start, end)` as row `id` at the end of the current chunk. */
  #append(
    id: number,
    source: Uint8Array,
    start: number,
    end: number,
    slots: Int32Array,
    at: number,
  ): void {
    const length = end - start;
    const needed = ROW_HEADER_BYTES + length;
    let chunkIndex = this.#current;
    if (chunkIndex < 0 || this.#chunkUsed[chunkIndex] + needed > CHUNK_BYTES) {
      chunkIndex = this.#chunks.length;
      this.#chunks.push(new Uint8Array(Math.max(CHUNK_BYTES, needed)));
      this.#chunkUsed.push(0);
      this.#chunkDead.push(0);
      // A row longer than a chunk gets one of its own; otherwise the new chunk becomes current
      // and the one left behind may already be due for compaction.
      if (needed <= CHUNK_BYTES) {
        const left = this.#current;
        this.#current = chunkIndex;
        if (left >= 0) this.#checkDue(left);
      }
    }
    const chunk = this.#chunks[chunkIndex]!;
    const base = this.#chunkUsed[chunkIndex];
    chunk[base] = id & 0xff;
    chunk[base + 1] = (id >>> 8) & 0xff;
    chunk[base + 2] = (id >>> 16) & 0xff;
    chunk[base + 3] = id >>> 24;
    chunk[base + 4] = length & 0xff;
    chunk[base + 5] = (length >>> 8) & 0xff;
    chunk[base + 6] = (length >>> 16) & 0xff;
    chunk[base + 7] = length >>> 24;
    const rowStart = base + ROW_HEADER_BYTES;
    if (length > 64) chunk.set(source.subarray(start, end), rowStart);
    else for (let i = 0; i < length; i++) chunk[rowStart + i] = source[start + i];
    this.#chunkUsed[chunkIndex] = base + needed;
    slots[at] = chunkIndex;
    slots[at + 1] = rowStart;
    slots[at + 2] = length;
  }

  /** A copy of a row in chunk `chunkIndex` stopped being the row's bytes. */
  #kill(chunkIndex: number, length: number): void {
    this.#chunkDead[chunkIndex] += ROW_HEADER_BYTES + length;
    this.#checkDue(chunkIndex);
  }

  /** Queues chunk `chunkIndex` for compaction when it is full and mostly dead. */
  #checkDue(chunkIndex: number): void {
    if (chunkIndex === this.#current || this.#chunks[chunkIndex] === null) return;
    if (this.#chunkDead[chunkIndex] < this.#chunkUsed[chunkIndex] * CHUNK_DEAD_SHARE_MAX) return;
    if (!this.#due.includes(chunkIndex)) this.#due.push(chunkIndex);
  }

  /**
   * Compacts the queued chunks: their live rows are appended anew (found through the row
   * headers: a header whose slot still points at it is live), then the chunk is dropped.
   * Runs after a write completed, so no caller holds a location meanwhile.
   */
  #compactDue(): void {
    if (this.#compacting) return;
    this.#compacting = true;
    try {
      let chunkIndex: number | undefined;
      while ((chunkIndex = this.#due.pop()) !== undefined) {
        const chunk = this.#chunks[chunkIndex];
        if (chunk === null || chunkIndex === this.#current) continue;
        const used = this.#chunkUsed[chunkIndex];
        for (let base = 0; base < used;) {
          const id = (chunk[base] | (chunk[base + 1] << 8) | (chunk[base + 2] << 16) |
            (chunk[base + 3] << 24)) >>> 0;
          const length = (chunk[base + 4] | (chunk[base + 5] << 8) | (chunk[base + 6] << 16) |
            (chunk[base + 7] << 24)) >>> 0;
          const rowStart = base + ROW_HEADER_BYTES;
          const page = this.#pages[id >>> PAGE_SHIFT];
          const at = (id & PAGE_MASK) * LOCATION_FIELDS;
          if (page !== undefined && page[at] === chunkIndex && page[at + 1] === rowStart) {
            this.#append(id, chunk, rowStart, rowStart + length, this.#writable(id), at);
          }
          base = rowStart + length;
        }
        this.#chunks[chunkIndex] = null;
        this.#chunkUsed[chunkIndex] = 0;
        this.#chunkDead[chunkIndex] = 0;
      }
    } finally {
      this.#compacting = false;
    }
  }

  state(id: number): number {
    if (id >= this.#length) return FREE;
    const chunk = this.#pages[id >>> PAGE_SHIFT][(id & PAGE_MASK) * LOCATION_FIELDS];
    return chunk >= 0 ? LIVE : chunk === HIDDEN_CHUNK ? HIDDEN : FREE;
  }

  isLive(id: number): boolean {
    return id < this.#length &&
      this.#pages[id >>> PAGE_SHIFT][(id & PAGE_MASK) * LOCATION_FIELDS] >= 0;
  }

  bytes(id: number): Uint8Array {
    const page = this.#pages[id >>> PAGE_SHIFT];
    const at = (id & PAGE_MASK) * LOCATION_FIELDS;
    const start = page[at + 1];
    return copyBytes(this.#chunks[page[at]]!, start, start + page[at + 2]);
  }

  equals(id: number, row: Uint8Array): boolean {
    const page = this.#pages[id >>> PAGE_SHIFT];
    const at = (id & PAGE_MASK) * LOCATION_FIELDS;
    return row.length === page[at + 2] && bytesEqualAt(this.#chunks[page[at]]!, page[at + 1], row);
  }

  hash(id: number): number {
    const page = this.#pages[id >>> PAGE_SHIFT];
    const at = (id & PAGE_MASK) * LOCATION_FIELDS;
    const start = page[at + 1];
    return hashByteRange(this.#chunks[page[at]]!, start, start + page[at + 2]);
  }

  key(id: number, codec: KeyCodec): Key {
    const page = this.#pages[id >>> PAGE_SHIFT];
    const at = (id & PAGE_MASK) * LOCATION_FIELDS;
    const start = page[at + 1];
    // Readers of variable-length layouts take a whole row: a short-lived view, no copy.
    return codec.fromRow(this.#chunks[page[at]]!.subarray(start, start + page[at + 2]));
  }

  copyInto(id: number, out: Uint8Array, at: number): number {
    const page = this.#pages[id >>> PAGE_SHIFT];
    const slot = (id & PAGE_MASK) * LOCATION_FIELDS;
    return copyRange(this.#chunks[page[slot]]!, page[slot + 1], page[slot + 2], out, at);
  }

  size(id: number): number {
    return this.#pages[id >>> PAGE_SHIFT][(id & PAGE_MASK) * LOCATION_FIELDS + 2];
  }

  /** Copy-on-write view (see ArenaRowStore.capture); chunks are immutable where rows sit. */
  capture(): RowStoreCapture {
    this.#captures++;
    const pages = this.#pages.slice();
    const chunks = this.#chunks.slice();
    this.#shared = new Uint8Array(pages.length).fill(1);
    this.#sharedCount = pages.length;
    const length = this.#length;
    let released = false;
    return {
      length,
      copyInto(id, out, at) {
        if (id >= length) return -1;
        const page = pages[id >>> PAGE_SHIFT];
        const slot = (id & PAGE_MASK) * LOCATION_FIELDS;
        const chunk = page[slot];
        if (chunk < 0) return -1;
        return copyRange(chunks[chunk]!, page[slot + 1], page[slot + 2], out, at);
      },
      size(id) {
        if (id >= length) return -1;
        const page = pages[id >>> PAGE_SHIFT];
        const slot = (id & PAGE_MASK) * LOCATION_FIELDS;
        return page[slot] >= 0 ? page[slot + 2] : -1;
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

function copyRange(
  source: Uint8Array,
  start: number,
  length: number,
  out: Uint8Array,
  at: number,
): number {
  if (length > 64) out.set(source.subarray(start, start + length), at);
  else for (let i = 0; i < length; i++) out[at + i] = source[start + i];
  return length;
}
