/**
 * One table: its rows (BSATN bytes in a RowStore, keyed by an internal rowId), the key
 * structures of its indexes and unique constraints, its sequences, and the undo information of
 * the open transaction.
 *
 * Tables whose rows all have the same size keep them in one arena (row_store.ts); others keep
 * one immutable Uint8Array per row. Freed rowIds are reused (like page slots), so scan order is
 * roughly insertion order. Writes go straight into the table; the open transaction logs, per
 * touched rowId, the committed bytes it had before (`null` for rows the transaction created).
 * Committed rows deleted in a transaction stay HIDDEN until commit, so rollback restores them
 * in place.
 */
import { assert } from "../lib/assert.ts";
import { BTree, Int64BTree } from "./btree_index.ts";
import { DatastoreError, decodeError } from "./datastore_error.ts";
import { HashMultiIndex } from "./hash_index.ts";
import { IntKeyMap } from "./int_key_map.ts";
import { Key64Map } from "./key64_map.ts";
import { bytesEqual, hashBytes, type Key, KeyCodec, type KeyRange } from "./key_encoding.ts";
import { copyBytes } from "./row_arena.ts";
import { readU32, RowLayout } from "./row_layout.ts";
import { ArenaRowStore, FREE, PagedRowStore, type RowStore } from "./row_store.ts";
import type { IndexSchema, TableSchema } from "./schema.ts";

/** key -> rowId of a unique column list; `get` answers -1 for a missing key. */
export interface UniqueKeys {
  readonly size: number;
  get(key: Key): number;
  has(key: Key): boolean;
  set(key: Key, id: number): void;
  delete(key: Key): boolean;
}

/** UniqueKeys over a Map, for keys that are strings. */
class MapKeys implements UniqueKeys {
  readonly #map = new Map<Key, number>();
  get size(): number {
    return this.#map.size;
  }
  get(key: Key): number {
    const id = this.#map.get(key);
    return id === undefined ? -1 : id;
  }
  has(key: Key): boolean {
    return this.#map.has(key);
  }
  set(key: Key, id: number): void {
    this.#map.set(key, id);
  }
  delete(key: Key): boolean {
    return this.#map.delete(key);
  }
}

/** `capacity`: entries expected (the map is made that large up front; 0 = grow as needed). */
function uniqueKeysFor(codec: KeyCodec, capacity = 0): UniqueKeys {
  // Numeric keys (one bool or <= 32-bit integer column) fit the typed-array map.
  if (codec.numeric) return new IntKeyMap(capacity) as unknown as UniqueKeys;
  // One u64/i64 column (auto-increment ids): a typed-array map that grows incrementally.
  return codec.int64 ? new Key64Map(capacity) : new MapKeys();
}

/** The key structures shared by every index/constraint over one ordered column list. */
interface KeyGroup {
  codec: KeyCodec;
  /** key -> rowId, for unique constraints and unique indexes. */
  unique: UniqueKeys | null;
  /** Ordered entries for btree/direct indexes (integer triples for one u64/i64 column). */
  tree: BTree | Int64BTree | null;
  /** key -> rowIds for non-unique hash indexes. */
  multi: HashMultiIndex | null;
  /** True when the column list is a unique constraint (checked on writes). */
  isConstraint: boolean;
  /**
   * For one u64/i64 column at a fixed row offset with no hash multi-index: that offset, so a
   * write reads the key's two 32-bit halves from the row (no key string); -1 otherwise.
   */
  at64: number;
  /** 0x80000000 for i64 (key order flips the sign bit), 0 for u64 and for non-int64 groups. */
  flip64: number;
}

export interface TableIndex {
  readonly schema: IndexSchema;
  readonly table: Table;
  /** True when the index columns include some unique constraint's columns. */
  readonly unique: boolean;
  /** True for btree/direct (range scans allowed), false for hash. */
  readonly ordered: boolean;
  readonly group: KeyGroup;
}

/** A sequence's runtime state. Not transactional. */
export interface Sequence {
  readonly tableId: number;
  readonly column: number;
  readonly size: number;
  /** Next value to hand out. */
  next: bigint;
  readonly min: bigint;
  readonly max: bigint;
  readonly increment: bigint;
  /** True when `next` moved since the last commit that reported it. */
  dirty: boolean;
}

export interface TableDelta {
  tableId: number;
  inserts: Uint8Array[];
  deletes: Uint8Array[];
}

export interface WriteResult {
  row: Uint8Array;
  generated: Uint8Array;
}

export interface TableOptions {
  /** Keep fixed-size rows in an arena (default true); false uses the chunked store of variable-size rows. */
  rowArena?: boolean;
}

const EMPTY_BYTES = new Uint8Array(0);
/** Undo logs up to this long are searched instead of indexed by #marks. */
const LOG_SCAN_MAX = 8;

function sameColumns(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

function uniqueViolation(table: string): DatastoreError {
  return new DatastoreError(
    "UniqueViolation",
    `Insert into table '${table}' violates a unique constraint`,
  );
}

export class Table {
  readonly schema: TableSchema;
  readonly layout: RowLayout;
  readonly indexes: TableIndex[] = [];
  /** Sequences in ascending column order. */
  readonly sequences: Sequence[] = [];
  /** The row bytes by rowId. */
  readonly store: RowStore;
  readonly #groups: KeyGroup[] = [];
  /** Positions in #groups of unique constraints; the first one finds identical rows. */
  readonly #constraintGroups: number[] = [];
  /** Row-content buckets (hash -> rowId(s)) for tables without unique constraints. */
  readonly #content: Map<number, number | number[]> | null;
  readonly #newKeys: Key[];
  /** Key halves per group for groups with `at64 >= 0` (their #newKeys entry is unused). */
  readonly #newHighs: number[];
  readonly #newLows: number[];
  readonly #onSequenceMoved: (sequence: Sequence) => void;
  #count = 0;
  // Undo log of the open transaction: touched rowIds and their committed bytes (null if created).
  #inTx = false;
  // The log arrays keep their capacity between transactions (`length = 0` would free it, and
  // every transaction would grow them again); #logLength is the used prefix, the rest is stale.
  readonly #logIds: number[] = [];
  readonly #logOriginals: (Uint8Array | null)[] = [];
  #logLength = 0;
  /**
   * rowId -> position in the undo log + 1, or 0 when untouched by the open transaction. Kept
   * only while the log is longer than LOG_SCAN_MAX: a short log is searched instead, which
   * spares a cache miss per written row in a large table.
   */
  #marks = new Int32Array(1024);

  constructor(
    schema: TableSchema,
    onSequenceMoved: (sequence: Sequence) => void,
    options: TableOptions = {},
  ) {
    this.schema = schema;
    this.#onSequenceMoved = onSequenceMoved;
    this.layout = new RowLayout(schema.rowType, schema.typespace);
    this.store = this.layout.rowSize >= 0 && options.rowArena !== false
      ? new ArenaRowStore(this.layout.rowSize)
      : new PagedRowStore();
    const constraintColumns: number[][] = [];
    const addConstraint = (columns: number[]) => {
      if (!constraintColumns.some((c) => sameColumns(c, columns))) constraintColumns.push(columns);
    };
    if (schema.primaryKey.length > 0) addConstraint(schema.primaryKey);
    schema.uniqueConstraints.forEach(addConstraint);
    for (const index of schema.indexes) if (index.unique) addConstraint(index.columns);
    for (const columns of constraintColumns) {
      const group = this.#groupFor(columns);
      group.unique ??= uniqueKeysFor(group.codec);
      if (!group.isConstraint) this.#constraintGroups.push(this.#groups.indexOf(group));
      group.isConstraint = true;
    }
    for (const index of schema.indexes) {
      const unique = constraintColumns.some((c) => c.every((col) => index.columns.includes(col)));
      const ordered = index.algorithm !== "hash";
      const group = this.#groupFor(index.columns);
      if (unique) group.unique ??= uniqueKeysFor(group.codec);
      if (ordered) group.tree ??= group.codec.int64 ? new Int64BTree() : new BTree();
      else if (!unique) group.multi ??= new HashMultiIndex();
      this.indexes.push({ schema: index, table: this, unique, ordered, group });
    }
    this.#content = this.#constraintGroups.length === 0 ? new Map() : null;
    this.#newKeys = new Array(this.#groups.length).fill(0);
    this.#newHighs = new Array(this.#groups.length).fill(0);
    this.#newLows = new Array(this.#groups.length).fill(0);
    for (const group of this.#groups) {
      const codec = group.codec;
      if (!codec.int64) continue;
      const type = codec.types[0];
      group.flip64 = type.kind === "int" && type.signed ? 0x80000000 : 0;
      const at = this.layout.fixedOffsets[codec.columns[0]];
      if (at >= 0 && group.multi === null) group.at64 = at;
    }
    const sorted = [...schema.sequences].sort((a, b) => a.column - b.column);
    for (const sequence of sorted) {
      const type = this.layout.columns[sequence.column];
      if (type === undefined || type.kind !== "int") {
        throw new TypeError(`Sequence column '${sequence.column}' is not an integer column`);
      }
      const bits = BigInt(type.size * 8);
      const typeMin = type.signed ? -(1n << (bits - 1n)) : 0n;
      const typeMax = type.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
      const min = sequence.min ?? 1n;
      const max = sequence.max ?? typeMax;
      this.sequences.push({
        tableId: schema.tableId,
        column: sequence.column,
        size: type.size,
        next: sequence.start ?? 1n,
        min: min > typeMin ? min : typeMin,
        max: max < typeMax ? max : typeMax,
        increment: sequence.increment,
        dirty: false,
      });
    }
  }

  #groupFor(columns: number[]): KeyGroup {
    for (const group of this.#groups) if (sameColumns(group.codec.columns, columns)) return group;
    for (const column of columns) {
      if (this.layout.columns[column] === undefined) {
        throw new RangeError(`Column '${column}' does not exist in table '${this.schema.name}'`);
      }
    }
    const group: KeyGroup = {
      codec: new KeyCodec(this.layout, columns),
      unique: null,
      tree: null,
      multi: null,
      isConstraint: false,
      at64: -1,
      flip64: 0,
    };
    this.#groups.push(group);
    return group;
  }

  get count(): number {
    return this.#count;
  }

  get inTx(): boolean {
    return this.#inTx;
  }

  beginTx(): void {
    assert(!this.#inTx, "Table already has an open transaction");
    this.#inTx = true;
  }

  #allocateId(): number {
    const id = this.store.allocate();
    if (id >= this.#marks.length) {
      const bigger = new Int32Array(this.#marks.length * 2);
      bigger.set(this.#marks);
      this.#marks = bigger;
    }
    return id;
  }

  /** Position + 1 of `id` in the undo log, or 0. */
  #logMark(id: number): number {
    const length = this.#logLength;
    if (length > LOG_SCAN_MAX) return this.#marks[id];
    const ids = this.#logIds;
    for (let i = 0; i < length; i++) if (ids[i] === id) return i + 1;
    return 0;
  }

  /**
   * Logs the committed bytes of `id` the first time the open transaction touches it; `created`
   * rows have none. Call before the row's bytes change.
   */
  #record(id: number, created: boolean): void {
    if (this.#logMark(id) !== 0) return;
    const original = created ? null : this.store.bytes(id);
    const at = this.#logLength++;
    if (at < this.#logIds.length) {
      this.#logIds[at] = id;
      this.#logOriginals[at] = original;
    } else {
      this.#logIds.push(id);
      this.#logOriginals.push(original);
    }
    if (at === LOG_SCAN_MAX) {
      // The log outgrew scanning: mark every entry so far.
      for (let i = 0; i <= at; i++) this.#marks[this.#logIds[i]] = i + 1;
    } else if (at > LOG_SCAN_MAX) {
      this.#marks[id] = at + 1;
    }
  }

  /** Empties the undo log, dropping its references to row bytes and its marks. */
  #clearLog(): void {
    const originals = this.#logOriginals;
    const length = this.#logLength;
    for (let i = 0; i < length; i++) originals[i] = null;
    if (length > LOG_SCAN_MAX) {
      const ids = this.#logIds;
      for (let i = 0; i < length; i++) this.#marks[ids[i]] = 0;
    }
    this.#logLength = 0;
  }

  #createdInTx(id: number): boolean {
    const mark = this.#logMark(id);
    return mark !== 0 && this.#logOriginals[mark - 1] === null;
  }

  // --- key structures -------------------------------------------------------------------------

  /** Adds the entries of LIVE row `id`; `keys` are its keys per group when already known. */
  #addEntries(id: number, keys: Key[] | null): void {
    const groups = this.#groups;
    const store = this.store;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      const key = keys ? keys[i] : store.key(id, group.codec);
      if (group.unique) group.unique.set(key, id);
      if (group.tree) group.tree.insert(key, id);
      if (group.multi) group.multi.add(key, id);
    }
    if (this.#content) this.#contentAdd(store.hash(id), id);
  }

  /** Removes the entries of LIVE row `id`. */
  #removeEntries(id: number): void {
    const groups = this.#groups;
    const store = this.store;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      const key = store.key(id, group.codec);
      if (group.unique) {
        assert(group.unique.get(key) === id, "Unique map does not point at the row");
        group.unique.delete(key);
      }
      if (group.tree) assert(group.tree.delete(key, id), "Btree entry of the row is missing");
      if (group.multi) group.multi.remove(key, id);
    }
    if (this.#content) this.#contentRemove(store.hash(id), id);
  }

  #contentAdd(hash: number, id: number): void {
    const content = this.#content!;
    const bucket = content.get(hash);
    if (bucket === undefined) content.set(hash, id);
    else if (typeof bucket === "number") content.set(hash, [bucket, id]);
    else bucket.push(id);
  }

  #contentRemove(hash: number, id: number): void {
    const content = this.#content!;
    const bucket = content.get(hash);
    if (bucket === id) content.delete(hash);
    else if (Array.isArray(bucket)) {
      const at = bucket.indexOf(id);
      if (at >= 0) bucket.splice(at, 1);
      if (bucket.length === 1) content.set(hash, bucket[0]);
    }
  }

  /** rowId of a live row byte-identical to `row`, or -1. */
  /**
   * The codec of the table's only unique constraint, or null when it has none or several:
   * replay then pairs a delete and an insert with the same key into an in-place replace.
   */
  get soleConstraintCodec(): KeyCodec | null {
    return this.#constraintGroups.length === 1
      ? this.#groups[this.#constraintGroups[0]].codec
      : null;
  }

  findIdentical(row: Uint8Array): number {
    const store = this.store;
    if (this.#content) {
      const bucket = this.#content.get(hashBytes(row));
      if (bucket === undefined) return -1;
      if (typeof bucket === "number") return store.equals(bucket, row) ? bucket : -1;
      for (const id of bucket) if (store.equals(id, row)) return id;
      return -1;
    }
    const group = this.#groups[this.#constraintGroups[0]];
    const id = group.unique!.get(group.codec.fromRow(row));
    return id >= 0 && store.equals(id, row) ? id : -1;
  }

  // --- bulk load (snapshot restore) -----------------------------------------------------------

  /**
   * Loads valid rows into this EMPTY table outside any transaction, as `insertRow` of each in
   * order would (same row ids, index contents and iteration order), but in bulk: the rows go to
   * the store first, unique maps are made their final size up front, and each B-tree is built
   * bottom-up from its entries sorted once. Throws DecodeError when two rows share a unique key
   * or are identical (a snapshot never holds either); the table is then unusable.
   */
  loadRows(rows: readonly Uint8Array[]): void {
    this.#checkEmptyForLoad();
    const count = rows.length;
    const store = this.store;
    for (let i = 0; i < count; i++) {
      const id = this.#allocateId();
      assert(id === i, "Bulk load row ids are consecutive");
      store.put(id, rows[i]);
    }
    this.#count = count;
    this.#loadKeys(
      count,
      (codec, i) => codec.fromRow(rows[i]),
      (i) => rows[i],
      (column, i) => {
        const row = rows[i];
        return [row, this.layout.columnStart(row, column)];
      },
    );
  }

  /** True when rows live in a fixed-size arena: `loadFixedRows` applies. */
  get hasRowArena(): boolean {
    return this.store instanceof ArenaRowStore;
  }

  /**
   * `loadRows` for a table with a row arena, straight from snapshot bytes: `count` rows, each a
   * u32 length (checked to be the row size) then the row, back to back from `bytes[start]`. No
   * object is made per row. Validates each row; throws DecodeError on bad input.
   */
  loadFixedRows(bytes: Uint8Array, start: number, count: number): void {
    this.#checkEmptyForLoad();
    const store = this.store;
    assert(store instanceof ArenaRowStore, "Fixed-size load needs a row arena");
    const rowBytes = store.rowBytes;
    const stride = 4 + rowBytes;
    if (start + count * stride > bytes.length) throw decodeError("Unexpected end of input");
    const layout = this.layout;
    for (let i = 0; i < count; i++) {
      const at = start + i * stride;
      const length = readU32(bytes, at);
      if (length !== rowBytes) throw decodeError(`Row is ${length} bytes, expected ${rowBytes}`);
      layout.validateFixedAt(bytes, at + 4);
      const id = this.#allocateId();
      assert(id === i, "Bulk load row ids are consecutive");
      store.putAt(id, bytes, at + 4);
    }
    this.#count = count;
    this.#loadKeys(
      count,
      (codec, i) => codec.fromRowAt(bytes, start + i * stride + 4),
      (i) => bytes.subarray(start + i * stride + 4, start + (i + 1) * stride),
      (column, i) => [bytes, start + i * stride + 4 + this.layout.fixedOffsets[column]],
    );
  }

  #checkEmptyForLoad(): void {
    assert(
      !this.#inTx && this.#count === 0 && this.store.length === 0,
      "Bulk load needs an empty table",
    );
  }

  /** Key structures of freshly loaded rows 0..count-1 (see loadRows). */
  #loadKeys(
    count: number,
    keyOf: (codec: KeyCodec, id: number) => Key,
    rowOf: (id: number) => Uint8Array,
    columnAt: (column: number, id: number) => [Uint8Array, number],
  ): void {
    if (count === 0) return;
    const groups = this.#groups;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g];
      const codec = group.codec;
      if (codec.int64 && group.multi === null) {
        this.#loadInt64Keys(group, count, columnAt);
        continue;
      }
      const keys = new Array<Key>(count);
      for (let i = 0; i < count; i++) keys[i] = keyOf(codec, i);
      if (group.unique) {
        const unique = uniqueKeysFor(codec, count);
        for (let i = 0; i < count; i++) {
          unique.set(keys[i], i);
          // A repeated key replaces the entry instead of adding one (one probe, not two).
          if (unique.size !== i + 1) {
            throw decodeError(`Snapshot repeats a unique key of table '${this.schema.name}'`);
          }
        }
        group.unique = unique;
      }
      if (group.tree) group.tree = sortedTree(keys, codec.int64);
      if (group.multi) {
        const multi = group.multi;
        for (let i = 0; i < count; i++) multi.add(keys[i], i);
      }
    }
    if (this.#content) {
      for (let i = 0; i < count; i++) {
        const row = rowOf(i);
        if (this.findIdentical(row) >= 0) {
          throw decodeError(`Snapshot repeats a row of table '${this.schema.name}'`);
        }
        this.#contentAdd(hashBytes(row), i);
      }
    }
  }

  /**
   * `#loadKeys` for one u64/i64 column without a key string per row: the key's two 32-bit
   * halves (key_encoding.ts order: big-endian, sign bit flipped for i64) read from the bytes.
   */
  #loadInt64Keys(
    group: KeyGroup,
    count: number,
    columnAt: (column: number, id: number) => [Uint8Array, number],
  ): void {
    const column = group.codec.columns[0];
    const signFlip = group.flip64;
    const highs = new Uint32Array(count);
    const lows = new Uint32Array(count);
    let sorted = true;
    for (let i = 0; i < count; i++) {
      const [bytes, at] = columnAt(column, i);
      const low = readU32(bytes, at);
      const high = (readU32(bytes, at + 4) ^ signFlip) >>> 0;
      highs[i] = high;
      lows[i] = low;
      if (i > 0 && (high < highs[i - 1] || (high === highs[i - 1] && low < lows[i - 1]))) {
        sorted = false;
      }
    }
    if (group.unique) {
      const unique = new Key64Map(count);
      if (!unique.loadParts(highs, lows)) {
        throw decodeError(`Snapshot repeats a unique key of table '${this.schema.name}'`);
      }
      group.unique = unique;
    }
    if (group.tree) {
      let ids: Uint32Array | Int32Array;
      if (sorted) {
        ids = new Int32Array(count);
        for (let i = 0; i < count; i++) ids[i] = i;
      } else {
        const order = new Array<number>(count);
        for (let i = 0; i < count; i++) order[i] = i;
        order.sort((a, b) =>
          highs[a] !== highs[b]
            ? highs[a] - highs[b]
            : lows[a] !== lows[b]
            ? lows[a] - lows[b]
            : a - b
        );
        ids = Int32Array.from(order);
        const sortedHighs = new Uint32Array(count);
        const sortedLows = new Uint32Array(count);
        for (let i = 0; i < count; i++) {
          sortedHighs[i] = highs[ids[i]];
          sortedLows[i] = lows[ids[i]];
        }
        highs.set(sortedHighs);
        lows.set(sortedLows);
      }
      group.tree = Int64BTree.fromSortedParts(highs, lows, ids);
    }
  }

  // --- row operations (recorded in the open transaction, if any) -----------------------------

  /**
   * Inserts a valid row. Returns false for a no-op (an identical row is present). Throws
   * UniqueViolation without changing anything. The object store keeps `row` itself (the caller
   * must not change it afterwards); the arena copies it.
   */
  insertRow(row: Uint8Array): boolean {
    const groups = this.#groups;
    const keys = this.#newKeys;
    const highs = this.#newHighs;
    const lows = this.#newLows;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      const at = group.at64;
      if (at >= 0) {
        lows[i] = readU32(row, at);
        highs[i] = (readU32(row, at + 4) ^ group.flip64) >>> 0;
      } else {
        keys[i] = group.codec.fromRow(row);
      }
    }
    const constraints = this.#constraintGroups;
    if (constraints.length > 0) {
      const first = constraints[0];
      const existing = this.#newKeyOwner(first);
      if (existing >= 0) {
        if (this.store.equals(existing, row)) return false;
        throw uniqueViolation(this.schema.name);
      }
      for (let c = 1; c < constraints.length; c++) {
        if (this.#newKeyOwner(constraints[c]) >= 0) throw uniqueViolation(this.schema.name);
      }
    } else if (this.findIdentical(row) >= 0) {
      return false;
    }
    const id = this.#allocateId();
    this.store.put(id, row);
    this.#count++;
    this.#addNewEntries(id);
    if (this.#inTx) this.#record(id, true);
    return true;
  }

  /** The live row holding group `i`'s key of the row being inserted (#newKeys etc.), or -1. */
  #newKeyOwner(i: number): number {
    const group = this.#groups[i];
    return group.at64 >= 0
      ? (group.unique as Key64Map).getParts(this.#newHighs[i], this.#newLows[i])
      : group.unique!.get(this.#newKeys[i]);
  }

  /** `#addEntries` of a new row whose keys insertRow put in #newKeys / #newHighs / #newLows. */
  #addNewEntries(id: number): void {
    const groups = this.#groups;
    const keys = this.#newKeys;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      if (group.at64 >= 0) {
        const high = this.#newHighs[i];
        const low = this.#newLows[i];
        if (group.unique) (group.unique as Key64Map).setParts(high, low, id);
        if (group.tree) (group.tree as Int64BTree).insertParts(high, low, id);
        continue;
      }
      const key = keys[i];
      if (group.unique) group.unique.set(key, id);
      if (group.tree) group.tree.insert(key, id);
      if (group.multi) group.multi.add(key, id);
    }
    if (this.#content) this.#contentAdd(this.store.hash(id), id);
  }

  deleteRow(id: number): void {
    const store = this.store;
    assert(store.isLive(id), "Deleting a row that is not live");
    this.#removeEntries(id);
    this.#count--;
    if (!this.#inTx || this.#createdInTx(id)) {
      store.release(id);
    } else {
      this.#record(id, false);
      store.hide(id);
    }
  }

  /**
   * Update through a unique index: finds the live row whose key equals the new row's key.
   * Returns false when there is none; replaces it unless identical.
   */
  updateByIndex(index: TableIndex, row: Uint8Array): boolean {
    const id = index.group.unique!.get(index.group.codec.fromRow(row));
    if (id < 0) return false;
    // Live: the unique map holds live rows only.
    if (!this.store.equals(id, row)) this.#replace(id, row);
    return true;
  }

  /**
   * Replaces live row `id` with `row` in place, after checking every unique constraint against
   * the other rows. Throws UniqueViolation without changing anything. Ownership of `row` as in
   * insertRow.
   */
  replaceRow(id: number, row: Uint8Array): void {
    assert(this.store.isLive(id), "Replacing a row that is not live");
    this.#replace(id, row);
  }

  /**
   * Replay only: replaces live row `id` with `row` whose key under the table's only unique
   * constraint is the same as the row's now (so that constraint needs no lookup).
   */
  replaceSameSoleKey(id: number, row: Uint8Array): void {
    assert(this.store.isLive(id), "Replacing a row that is not live");
    this.#replace(id, row, true);
  }

  #replace(id: number, row: Uint8Array, sameSoleKey = false): void {
    const store = this.store;
    const groups = this.#groups;
    const keys = this.#newKeys;
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      const key = group.codec.fromRow(row);
      if (group.isConstraint && !sameSoleKey) {
        const existing = group.unique!.get(key);
        if (existing >= 0 && existing !== id) throw uniqueViolation(this.schema.name);
      }
      keys[i] = key;
    }
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      const oldKey = store.key(id, group.codec);
      const key = keys[i];
      if (oldKey === key) continue;
      if (group.unique) {
        group.unique.delete(oldKey);
        group.unique.set(key, id);
      }
      if (group.tree) {
        group.tree.delete(oldKey, id);
        group.tree.insert(key, id);
      }
      if (group.multi) {
        group.multi.remove(oldKey, id);
        group.multi.add(key, id);
      }
    }
    if (this.#content) {
      this.#contentRemove(store.hash(id), id);
      this.#contentAdd(hashBytes(row), id);
    }
    if (this.#inTx) this.#record(id, false);
    store.put(id, row);
  }

  /**
   * Fills zero-valued sequence columns of `row` (a private copy, written in place) and returns
   * the BSATN of the generated values in ascending column order.
   */
  fireSequences(row: Uint8Array): Uint8Array {
    const sequences = this.sequences;
    if (sequences.length === 0) return EMPTY_BYTES;
    // The first generated value alone (the usual single sequence), the rest in `more`.
    let first: Uint8Array | null = null;
    let more: Uint8Array[] | null = null;
    for (let s = 0; s < sequences.length; s++) {
      const sequence = sequences[s];
      const start = this.layout.columnStart(row, sequence.column);
      const end = start + sequence.size;
      let zero = true;
      for (let i = start; i < end; i++) {
        if (row[i] !== 0) {
          zero = false;
          break;
        }
      }
      if (!zero) continue;
      const value = sequence.next;
      if (value < sequence.min || value > sequence.max) {
        throw new DatastoreError(
          "AutoIncOverflow",
          `Sequence on column '${sequence.column}' of table '${this.schema.name}' overflowed`,
        );
      }
      sequence.next = value + sequence.increment;
      if (!sequence.dirty) {
        sequence.dirty = true;
        this.#onSequenceMoved(sequence);
      }
      const small = Number(value);
      if (small >= 0 && small <= Number.MAX_SAFE_INTEGER) {
        // The usual case (ids from 1 up): little-endian from two 32-bit halves, no BigInt per byte.
        const low = small >>> 0;
        const high = (small - low) / 4294967296;
        for (let i = start, b = 0; i < end; i++, b++) {
          row[i] = b < 4 ? (low >>> (8 * b)) & 0xff : b < 8 ? (high >>> (8 * (b - 4))) & 0xff : 0;
        }
      } else {
        let rest = value;
        for (let i = start; i < end; i++) {
          row[i] = Number(rest & 0xffn);
          rest >>= 8n;
        }
      }
      const bytes = copyBytes(row, start, end);
      if (first === null) first = bytes;
      else (more ??= []).push(bytes);
    }
    if (first === null) return EMPTY_BYTES;
    if (more === null) return first;
    const generated = [first, ...more];
    const out = new Uint8Array(generated.reduce((n, g) => n + g.length, 0));
    let at = 0;
    for (const part of generated) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  // --- reads ---------------------------------------------------------------------------------

  /** Live rows: committed ones (not deleted) first, then ones created by the open transaction. */
  scan(): Uint8Array[] {
    const ids = this.scanIds();
    const store = this.store;
    const out = new Array<Uint8Array>(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = store.bytes(ids[i]);
    return out;
  }

  /** The rowIds of `scan()`, in its order. */
  scanIds(): number[] {
    if (!this.#inTx) return this.liveIds();
    const out: number[] = [];
    const store = this.store;
    const length = store.length;
    for (let id = 0; id < length; id++) {
      if (store.isLive(id) && !this.#createdInTx(id)) out.push(id);
    }
    for (let i = 0; i < this.#logLength; i++) {
      if (this.#logOriginals[i] !== null) continue;
      const id = this.#logIds[i];
      if (store.isLive(id)) out.push(id);
    }
    return out;
  }

  /** The bytes of live row `id` (kept unchanged; the arena makes a copy). */
  row(id: number): Uint8Array {
    assert(this.store.isLive(id), "Row id is not live");
    return this.store.bytes(id);
  }

  liveIds(): number[] {
    const out: number[] = [];
    const store = this.store;
    const length = store.length;
    for (let id = 0; id < length; id++) if (store.isLive(id)) out.push(id);
    return out;
  }

  /** rowIds whose key in `index` equals `key`. */
  pointIds(index: TableIndex, key: Key): number[] {
    const group = index.group;
    if (group.unique) {
      const id = group.unique.get(key);
      return id < 0 ? [] : [id];
    }
    const out: number[] = [];
    if (group.tree) group.tree.forEachEqual(key, (id) => out.push(id));
    else group.multi!.forEachEqual(key, (id) => out.push(id));
    return out;
  }

  /** rowIds with lo <= key < hi in an ordered index, in key order. */
  rangeIds(index: TableIndex, range: KeyRange): number[] {
    const out: number[] = [];
    index.group.tree!.forEachInRange(range.lo, range.hi, (id) => out.push(id));
    return out;
  }

  // --- transaction end -----------------------------------------------------------------------

  /** Makes the open transaction's changes committed and returns the net delta. */
  commitTx(): TableDelta {
    assert(this.#inTx, "Committing a table without an open transaction");
    this.#inTx = false;
    const isEvent = this.schema.isEvent;
    const store = this.store;
    const ids = this.#logIds;
    const originals = this.#logOriginals;
    const logLength = this.#logLength;
    // Count first, so the delta arrays are allocated once at their exact size.
    let insertCount = 0;
    let deleteCount = 0;
    for (let i = 0; i < logLength; i++) {
      const original = originals[i];
      const live = store.isLive(ids[i]);
      if (original === null) {
        if (live) insertCount++;
      } else if (!live) {
        deleteCount++;
      } else {
        // Upper bound: rows written back to their original bytes are dropped below.
        insertCount++;
        deleteCount++;
      }
    }
    let inserts: Uint8Array[] = new Array(insertCount);
    let deletes: Uint8Array[] = new Array(deleteCount);
    let insertAt = 0;
    let deleteAt = 0;
    let created = false;
    for (let i = 0; i < logLength; i++) {
      const id = ids[i];
      const original = originals[i];
      const live = store.isLive(id);
      if (original === null) {
        if (!live) continue;
        inserts[insertAt++] = store.bytes(id);
        created = true;
        if (isEvent) {
          this.#removeEntries(id);
          store.release(id);
          this.#count--;
        }
      } else if (!live) {
        deletes[deleteAt++] = original;
        store.release(id);
      } else if (!store.equals(id, original)) {
        deletes[deleteAt++] = original;
        inserts[insertAt++] = store.bytes(id);
      }
    }
    this.#clearLog();
    if (insertAt !== insertCount) inserts = inserts.slice(0, insertAt);
    if (deleteAt !== deleteCount) deletes = deletes.slice(0, deleteAt);
    // A committed row deleted and then inserted again as a new row cancels out.
    if (created && deletes.length > 0) cancelIdentical(inserts, deletes);
    return { tableId: this.schema.tableId, inserts, deletes };
  }

  /**
   * The rows the open transaction has inserted and deleted so far, without ending it: what
   * commitTx() would return, except that a committed row deleted and inserted again is listed on
   * both sides (callers only test these rows against read sets, where that is harmless).
   */
  txChangedRows(): TableDelta {
    const store = this.store;
    const ids = this.#logIds;
    const originals = this.#logOriginals;
    const inserts: Uint8Array[] = [];
    const deletes: Uint8Array[] = [];
    for (let i = 0; i < this.#logLength; i++) {
      const id = ids[i];
      const original = originals[i];
      const live = store.isLive(id);
      if (original === null) {
        if (live) inserts.push(store.bytes(id));
      } else if (!live) {
        deletes.push(original);
      } else if (!store.equals(id, original)) {
        deletes.push(original);
        inserts.push(store.bytes(id));
      }
    }
    return { tableId: this.schema.tableId, inserts, deletes };
  }

  /**
   * Most bytes the open transaction's delta of this table can take in a commit record: each
   * inserted and deleted row as a u32 length and its bytes. An upper bound (a row written back to
   * its original bytes counts), computed without ending the transaction.
   */
  txDeltaBytesMax(): number {
    const store = this.store;
    const ids = this.#logIds;
    const originals = this.#logOriginals;
    let bytes = 0;
    for (let i = 0; i < this.#logLength; i++) {
      const original = originals[i];
      if (original !== null) bytes += 4 + original.length;
      if (store.isLive(ids[i])) bytes += 4 + store.size(ids[i]);
    }
    return bytes;
  }

  rollbackTx(): void {
    assert(this.#inTx, "Rolling back a table without an open transaction");
    this.#inTx = false;
    const store = this.store;
    const ids = this.#logIds;
    const originals = this.#logOriginals;
    const logLength = this.#logLength;
    // Remove every current entry first, then restore, so unique maps never collide midway.
    for (let i = 0; i < logLength; i++) {
      if (store.isLive(ids[i])) {
        this.#removeEntries(ids[i]);
        this.#count--;
      }
    }
    for (let i = 0; i < logLength; i++) {
      const id = ids[i];
      const original = originals[i];
      if (original !== null) {
        store.put(id, original);
        this.#addEntries(id, null);
        this.#count++;
      } else if (store.state(id) !== FREE) {
        store.release(id);
      }
    }
    this.#clearLog();
  }

  /** Checks that every structure agrees with the rows; for tests. */
  checkInvariants(): void {
    const store = this.store;
    let live = 0;
    let free = 0;
    for (let id = 0; id < store.length; id++) {
      const state = store.state(id);
      if (state === FREE) free++;
      if (!store.isLive(id)) continue;
      live++;
      for (const group of this.#groups) {
        const key = store.key(id, group.codec);
        if (group.unique) assert(group.unique.get(key) === id, "Unique map is stale");
      }
    }
    assert(live === this.#count, "Row count is stale");
    assert(free === store.freeCount, "Free list does not match the free slots");
    for (const group of this.#groups) {
      if (group.unique) assert(group.unique.size === live, "Unique map has extra entries");
      if (group.tree) {
        assert(group.tree.size === live, "Btree has extra entries");
        group.tree.checkInvariants();
      }
    }
  }
}

/** A B-tree of (keys[id], id) for every id, sorted once (most snapshots are already in order). */
function sortedTree(keys: Key[], int64: boolean): BTree | Int64BTree {
  const build = int64 ? Int64BTree.fromSorted : BTree.fromSorted;
  const count = keys.length;
  let sorted = true;
  for (let i = 1; i < count; i++) {
    if (keys[i] < keys[i - 1]) {
      sorted = false;
      break;
    }
  }
  if (sorted) {
    const ids = new Array<number>(count);
    for (let i = 0; i < count; i++) ids[i] = i;
    return build(keys, ids);
  }
  const order = new Array<number>(count);
  for (let i = 0; i < count; i++) order[i] = i;
  order.sort((a, b) => {
    const ka = keys[a];
    const kb = keys[b];
    return ka < kb ? -1 : ka > kb ? 1 : a - b;
  });
  const sortedKeys = new Array<Key>(count);
  for (let i = 0; i < count; i++) sortedKeys[i] = keys[order[i]];
  return build(sortedKeys, order);
}

function cancelIdentical(inserts: Uint8Array[], deletes: Uint8Array[]): void {
  const byHash = new Map<number, number[]>();
  deletes.forEach((row, i) => {
    const hash = hashBytes(row);
    const bucket = byHash.get(hash);
    if (bucket) bucket.push(i);
    else byHash.set(hash, [i]);
  });
  const cancelledDeletes = new Set<number>();
  let kept = 0;
  for (const row of inserts) {
    const bucket = byHash.get(hashBytes(row));
    const match = bucket?.findIndex((i) => bytesEqual(deletes[i], row)) ?? -1;
    if (match >= 0) {
      cancelledDeletes.add(bucket![match]);
      bucket!.splice(match, 1);
      continue;
    }
    inserts[kept++] = row;
  }
  inserts.length = kept;
  let keptDeletes = 0;
  for (let i = 0; i < deletes.length; i++) {
    if (!cancelledDeletes.has(i)) deletes[keptDeletes++] = deletes[i];
  }
  deletes.length = keptDeletes;
}
