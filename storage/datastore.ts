/**
 * The in-memory transactional datastore. Rows are BSATN byte arrays (immutable once stored);
 * every `spacetime:sys` datastore syscall maps 1:1 onto a `MutTx` method with the same semantics
 * (module-abi.md §2.2-2.6): set semantics, unique constraints, non-transactional sequences with
 * write-back, snapshot scans, point and range index scans in SATS order.
 *
 * One mutable transaction at a time (the worker is single-threaded). Writes go straight into
 * the tables with undo information, so commit is cheap and rollback restores the rows.
 * Committed-state reads (`committed*`) are for queries and subscriptions between transactions.
 */
import { assert } from "../lib/assert.ts";
import { DatastoreError, decodeError } from "./datastore_error.ts";
import { readU32 } from "./row_layout.ts";
import { copyBytes } from "./row_arena.ts";
import type { TableSchema } from "./schema.ts";
import type { Key } from "./key_encoding.ts";
import {
  type Sequence,
  Table,
  type TableIndex,
  type TableOptions,
  type WriteResult,
} from "./table.ts";
import { ByteReader, ByteWriter, type TxDelta } from "./tx_delta.ts";

export type { WriteResult };

/** How tables store rows; the defaults are right outside tests. */
export type DatastoreOptions = TableOptions;

const NO_SEQUENCES: Sequence[] = [];
/** Rows of one table as rowIds, valid until the next write (see MutTx.scanIds). */
export interface RowIds {
  tableId: number;
  ids: number[];
}

/** indexFindUnique's answer for an index that is not unique. */
export const NOT_UNIQUE = -2;
const STATE_MAGIC = 0x5344434c; // "LCDS" little-endian
const STATE_FORMAT_VERSION = 1;

function noSuchTable(tableId: number): DatastoreError {
  return new DatastoreError("NoSuchTable", `No table with id '${tableId}'`);
}

function noSuchIndex(indexId: number): DatastoreError {
  return new DatastoreError("NoSuchIndex", `No index with id '${indexId}'`);
}

export class Datastore {
  readonly #tables = new Map<number, Table>();
  /** Lookup by id (ids are small integers; arrays beat Maps on the hot path). */
  readonly #tableById: Table[] = [];
  readonly #indexById: TableIndex[] = [];
  readonly #tableNames = new Map<string, number>();
  readonly #indexNames = new Map<string, number>();
  /** Sequences that moved since the last commit reported them. */
  #movedSequences: Sequence[] = [];
  #tx: MutTx | null = null;

  constructor(tables: TableSchema[], options: DatastoreOptions = {}) {
    const onSequenceMoved = (sequence: Sequence) => this.#movedSequences.push(sequence);
    for (const schema of tables) {
      if (this.#tables.has(schema.tableId)) {
        throw new RangeError(`Table id '${schema.tableId}' is used twice`);
      }
      const table = new Table(schema, onSequenceMoved, options);
      this.#tables.set(schema.tableId, table);
      this.#tableById[schema.tableId] = table;
      this.#tableNames.set(schema.name, schema.tableId);
      if (!this.#tableNames.has(schema.sourceName)) {
        this.#tableNames.set(schema.sourceName, schema.tableId);
      }
      for (const index of table.indexes) {
        const indexId = index.schema.indexId;
        if (this.#indexById[indexId]) throw new RangeError(`Index id '${indexId}' is used twice`);
        this.#indexById[indexId] = index;
        this.#indexNames.set(index.schema.name, indexId);
        if (!this.#indexNames.has(index.schema.sourceName)) {
          this.#indexNames.set(index.schema.sourceName, indexId);
        }
      }
    }
  }

  /** Resolves a canonical table name or source (accessor) name. */
  tableIdFromName(name: string): number | undefined {
    return this.#tableNames.get(name);
  }

  /** Resolves a canonical index name or source name. */
  indexIdFromName(name: string): number | undefined {
    return this.#indexNames.get(name);
  }

  schema(tableId: number): TableSchema {
    return this.#table(tableId).schema;
  }

  tables(): TableSchema[] {
    return [...this.#tables.values()].map((t) => t.schema);
  }

  get inTx(): boolean {
    return this.#tx !== null;
  }

  beginMutTx(): MutTx {
    assert(this.#tx === null, "A mutable transaction is already open");
    const tx = new MutTx(this.#tableById, this.#indexById, this.#endTxCallback);
    this.#tx = tx;
    return tx;
  }

  /** Made once: beginMutTx runs for every reducer call. */
  readonly #endTxCallback = (committed: boolean): Sequence[] => this.#endTx(committed);

  /** Closes the transaction; a commit takes the sequences that moved since the last commit. */
  #endTx(committed: boolean): Sequence[] {
    this.#tx = null;
    if (!committed || this.#movedSequences.length === 0) return NO_SEQUENCES;
    const moved = this.#movedSequences;
    this.#movedSequences = [];
    return moved;
  }

  #table(tableId: number): Table {
    const table = this.#tableById[tableId];
    if (table === undefined) throw noSuchTable(tableId);
    return table;
  }

  #committedTable(tableId: number): Table {
    assert(this.#tx === null, "Committed state read while a transaction is open");
    return this.#table(tableId);
  }

  /** Checks every table's structures against its rows (for tests; O(rows)). */
  checkInvariants(): void {
    for (const table of this.#tables.values()) table.checkInvariants();
  }

  // --- committed-state reads -----------------------------------------------------------------

  /** A snapshot of the committed rows of a table. */
  committedRows(tableId: number): Uint8Array[] {
    return this.#committedTable(tableId).scan();
  }

  committedCount(tableId: number): number {
    return this.#committedTable(tableId).count;
  }

  /** Committed rows whose key in `indexId` equals `keyBytes` (BSATN of all key columns). */
  committedIndexPoint(indexId: number, keyBytes: Uint8Array): Uint8Array[] {
    assert(this.#tx === null, "Committed state read while a transaction is open");
    return indexPoint(this.#indexById, indexId, keyBytes);
  }

  /** Committed rows of an ordered-index range scan, encoded as in module-abi.md §2.4. */
  committedIndexRange(
    indexId: number,
    buf: Uint8Array,
    prefixLen: number,
    prefixElems: number,
    rstartLen: number,
    rendLen: number,
  ): Uint8Array[] {
    assert(this.#tx === null, "Committed state read while a transaction is open");
    return indexRange(this.#indexById, indexId, buf, prefixLen, prefixElems, rstartLen, rendLen);
  }

  /**
   * Walks the committed rows of an ordered index in key order, from the key of `fromRow` (a row
   * of the table; inclusive) or from the first (ascending) or last (descending) entry, until
   * `visit` returns false. Top-N subscription windows refill this way (query/topn.ts).
   */
  committedIndexWalk(
    indexId: number,
    fromRow: Uint8Array | undefined,
    descending: boolean,
    visit: (row: Uint8Array) => boolean,
  ): void {
    assert(this.#tx === null, "Committed state read while a transaction is open");
    const index = indexOf(this.#indexById, indexId);
    const tree = index.group.tree;
    if (tree === null) {
      throw new DatastoreError("WrongIndexAlgo", `Index '${index.schema.name}' has no range scans`);
    }
    const from = fromRow === undefined ? undefined : index.group.codec.fromRow(fromRow);
    tree.walk(from, descending, (id) => visit(index.table.row(id)));
  }

  // --- durability support --------------------------------------------------------------------

  /**
   * Applies a committed delta during recovery: deletes by full-row equality, then inserts (no
   * sequences fire, event-table rows are skipped); sequences only move forward. The datastore
   * takes ownership of the inserted byte arrays.
   */
  replay(delta: TxDelta): void {
    assert(this.#tx === null, "Replay while a transaction is open");
    for (const change of delta.tables) {
      const table = this.#table(change.tableId);
      if (table.schema.isEvent) continue; // event rows are never kept
      if (change.deletes.length > 0 && change.inserts.length > 0 && replayInPlace(table, change)) {
        continue;
      }
      for (const row of change.deletes) {
        const id = table.findIdentical(row);
        assert(id >= 0, `Replayed delete of a row missing from table '${table.schema.name}'`);
        table.deleteRow(id);
      }
      for (const row of change.inserts) {
        table.layout.validate(row);
        table.insertRow(row);
      }
    }
    for (const moved of delta.sequences) {
      const sequence = this.#table(moved.tableId).sequences.find((s) => s.column === moved.column);
      assert(sequence, `Replayed sequence on column '${moved.column}' does not exist`);
      const forward = sequence.increment > 0n
        ? moved.next > sequence.next
        : moved.next < sequence.next;
      if (forward) sequence.next = moved.next;
    }
  }

  /** The next value of every sequence (schema migrations carry them to the new tables). */
  sequencePositions(): { tableId: number; column: number; next: bigint }[] {
    const out: { tableId: number; column: number; next: bigint }[] = [];
    for (const table of this.#tables.values()) {
      for (const s of table.sequences) {
        out.push({ tableId: table.schema.tableId, column: s.column, next: s.next });
      }
    }
    return out;
  }

  /** Snapshot of all committed rows and sequence positions (`captureState`, in one piece). */
  exportState(): Uint8Array {
    const cursor = this.captureState();
    try {
      return cursor.next(Infinity)!;
    } finally {
      cursor.release();
    }
  }

  /**
   * The committed state as of now, read out later in pieces while transactions go on: the row
   * stores share their pages copy-on-write with the cursor (row_store.ts `capture`), so taking it
   * costs O(pages) and writes copy a page at most once. The pieces, concatenated, are the
   * `exportState()` bytes. Call `release()` when done or abandoning it.
   */
  captureState(): StateCursor {
    assert(this.#tx === null, "Capture while a transaction is open");
    const tables = [...this.#tables.values()].map((table) => ({
      tableId: table.schema.tableId,
      count: table.count,
      rows: table.store.capture(),
      sequences: table.sequences.map((sequence) => ({
        column: sequence.column,
        next: sequence.next,
      })),
    }));
    let tableIndex = -1; // -1: the state header is next
    let rowId = -1; // -1: the table header is next
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      for (const table of tables) table.rows.release();
    };
    return {
      next(maxBytes: number): Uint8Array | null {
        assert(!released, "State cursor used after release");
        if (tableIndex >= tables.length) return null;
        // A piece stops once past maxBytes, by at most one row and a table's trailer: room for
        // that up front, so the piece is written once (no copies while the writer grows).
        const writer = new ByteWriter(
          Number.isFinite(maxBytes) ? maxBytes + PIECE_SLACK_BYTES : undefined,
        );
        if (tableIndex === -1) {
          writer.u32(STATE_MAGIC);
          writer.u32(STATE_FORMAT_VERSION);
          writer.u32(tables.length);
          tableIndex = 0;
        }
        while (tableIndex < tables.length && writer.length < maxBytes) {
          const table = tables[tableIndex];
          if (rowId === -1) {
            writer.u32(table.tableId);
            writer.u32(table.count);
            rowId = 0;
          }
          const rows = table.rows;
          const length = rows.length;
          while (rowId < length && writer.length < maxBytes) {
            if (rows.size(rowId) >= 0) writer.storedRow(rows, rowId);
            rowId++;
          }
          if (rowId < length) break;
          writer.u32(table.sequences.length);
          for (const sequence of table.sequences) {
            writer.u32(sequence.column);
            writer.bigint(sequence.next);
          }
          tableIndex++;
          rowId = -1;
        }
        return writer.finish();
      },
      release,
    };
  }

  /** Rebuilds a datastore from `exportState()` bytes. Throws DecodeError on malformed input. */
  static importState(
    tables: TableSchema[],
    bytes: Uint8Array,
    options: DatastoreOptions = {},
  ): Datastore {
    const datastore = new Datastore(tables, options);
    const reader = new ByteReader(bytes);
    if (reader.u32() !== STATE_MAGIC) throw decodeError("Not a datastore snapshot");
    const version = reader.u32();
    if (version !== STATE_FORMAT_VERSION) {
      throw decodeError(`Unknown snapshot version '${version}'`);
    }
    for (let t = reader.u32(); t > 0; t--) {
      const tableId = reader.u32();
      const table = datastore.#tables.get(tableId);
      if (table === undefined) throw decodeError(`Snapshot has unknown table id '${tableId}'`);
      const rowCount = reader.u32();
      if (rowCount > bytes.length) throw decodeError("Snapshot row count exceeds its size");
      if (table.hasRowArena) {
        // Fixed-size rows are read in place: no Uint8Array per row.
        const start = reader.position;
        reader.skip(rowCount * (4 + table.layout.rowSize));
        table.loadFixedRows(bytes, start, rowCount);
      } else {
        const rows = readRows(reader, bytes, rowCount);
        for (let n = 0; n < rowCount; n++) table.layout.validate(rows[n]);
        table.loadRows(rows);
      }
      for (let n = reader.u32(); n > 0; n--) {
        const column = reader.u32();
        const next = reader.bigint();
        const sequence = table.sequences.find((s) => s.column === column);
        if (sequence === undefined) throw decodeError(`Snapshot has unknown sequence '${column}'`);
        sequence.next = next;
      }
    }
    if (!reader.done) throw decodeError("Snapshot has trailing bytes");
    return datastore;
  }
}

/** Rows copied per slab by `readRows` (as row_arena.ts's slabs: a view per row, no buffer each). */
const LOAD_SLAB_BYTES = 16 * 1024;
/** Rows above this get a buffer of their own (a long-lived big row pins no neighbours). */
const LOAD_SHARED_ROW_BYTES_MAX = 256;

/**
 * `count` length-prefixed rows from `bytes` at the reader's position, as private copies: small
 * rows are views into slabs copied from `bytes` in one `slice` each (a copy loop per row and an
 * ArrayBuffer per row were most of a snapshot load's time).
 */
function readRows(reader: ByteReader, bytes: Uint8Array, count: number): Uint8Array[] {
  const rows = new Array<Uint8Array>(count);
  let slab: Uint8Array = bytes;
  let slabStart = 0;
  let slabEnd = 0;
  for (let n = 0; n < count; n++) {
    const start = reader.position + 4;
    const length = reader.u32();
    reader.skip(length);
    const end = start + length;
    if (length > LOAD_SHARED_ROW_BYTES_MAX) {
      rows[n] = bytes.slice(start, end);
      continue;
    }
    if (end > slabEnd) {
      slabStart = start;
      slabEnd = Math.min(bytes.length, Math.max(end, start + LOAD_SLAB_BYTES));
      slab = bytes.slice(slabStart, slabEnd);
    }
    rows[n] = slab.subarray(start - slabStart, end - slabStart);
  }
  return rows;
}

function indexOf(indexes: TableIndex[], indexId: number): TableIndex {
  const index = indexes[indexId];
  if (index === undefined) throw noSuchIndex(indexId);
  return index;
}

/** Copies row `rowId` into `out` at `at` and returns its length, or -length when it does not fit. */
function copyStoredRow(store: Table["store"], rowId: number, out: Uint8Array, at: number): number {
  const size = store.size(rowId);
  if (at + size > out.length) return -size;
  return store.copyInto(rowId, out, at);
}

function rowsOf(table: Table, ids: number[]): Uint8Array[] {
  const out = new Array<Uint8Array>(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = table.row(ids[i]);
  return out;
}

function pointIds(index: TableIndex, key: Uint8Array): number[] {
  return index.table.pointIds(index, index.group.codec.fromBsatn(key, 0, key.length));
}

function indexPoint(indexes: TableIndex[], indexId: number, key: Uint8Array) {
  const index = indexOf(indexes, indexId);
  const group = index.group;
  if (group.unique) {
    const id = group.unique.get(group.codec.fromBsatn(key, 0, key.length));
    return id < 0 ? [] : [index.table.row(id)];
  }
  return rowsOf(index.table, pointIds(index, key));
}

function rangeIds(
  index: TableIndex,
  buf: Uint8Array,
  prefixLen: number,
  prefixElems: number,
  rstartLen: number,
  rendLen: number,
): number[] {
  if (!index.ordered) {
    throw new DatastoreError("WrongIndexAlgo", `Index '${index.schema.name}' has no range scans`);
  }
  const range = index.group.codec.range(buf, prefixLen, prefixElems, rstartLen, rendLen);
  return range === null ? [] : index.table.rangeIds(index, range);
}

function indexRange(
  indexes: TableIndex[],
  indexId: number,
  buf: Uint8Array,
  prefixLen: number,
  prefixElems: number,
  rstartLen: number,
  rendLen: number,
): Uint8Array[] {
  const index = indexOf(indexes, indexId);
  const ids = rangeIds(index, buf, prefixLen, prefixElems, rstartLen, rendLen);
  return rowsOf(index.table, ids);
}

/** Pairs at most this many delete x insert combinations per table change on replay. */
const REPLAY_PAIRS_MAX = 64;

/**
 * Replays a table change whose deletes and inserts share keys of the table's only unique
 * constraint (an update, e.g. a balance change) as in-place replaces: no index entry moves when
 * the keys stay, where a delete + insert would take every key out and put it back. Returns false
 * (nothing done) when the table or change does not qualify.
 */
function replayInPlace(
  table: Table,
  change: { deletes: Uint8Array[]; inserts: Uint8Array[] },
): boolean {
  const codec = table.soleConstraintCodec;
  const { deletes, inserts } = change;
  const deleteCount = deletes.length;
  if (codec === null || deleteCount * inserts.length > REPLAY_PAIRS_MAX) return false;
  // Scratch arrays, reused: this runs once per replayed transaction.
  const deleteKeys = replayDeleteKeys;
  const paired = replayPaired;
  for (let i = 0; i < deleteCount; i++) {
    deleteKeys[i] = codec.fromRow(deletes[i]);
    paired[i] = 0;
  }
  // Deletes without an insert of the same key first (as a delete + insert would).
  for (let j = 0; j < inserts.length; j++) {
    const key = codec.fromRow(inserts[j]);
    for (let i = 0; i < deleteCount; i++) {
      if (paired[i] === 0 && deleteKeys[i] === key) {
        paired[i] = j + 1;
        break;
      }
    }
  }
  const insertPaired = replayInsertPaired;
  for (let j = 0; j < inserts.length; j++) insertPaired[j] = -1;
  for (let i = 0; i < deleteCount; i++) {
    if (paired[i] !== 0) {
      insertPaired[paired[i] - 1] = i;
      continue;
    }
    const id = table.findIdentical(deletes[i]);
    assert(id >= 0, `Replayed delete of a row missing from table '${table.schema.name}'`);
    table.deleteRow(id);
  }
  for (let j = 0; j < inserts.length; j++) {
    const row = inserts[j];
    table.layout.validate(row);
    const i = insertPaired[j];
    if (i < 0) {
      table.insertRow(row);
      continue;
    }
    const id = table.findIdentical(deletes[i]);
    assert(id >= 0, `Replayed delete of a row missing from table '${table.schema.name}'`);
    table.replaceSameSoleKey(id, row);
  }
  for (let i = 0; i < deleteCount; i++) deleteKeys[i] = 0;
  return true;
}

const replayDeleteKeys: Key[] = new Array(REPLAY_PAIRS_MAX).fill(0);
const replayPaired: number[] = new Array(REPLAY_PAIRS_MAX).fill(0);
const replayInsertPaired: number[] = new Array(REPLAY_PAIRS_MAX).fill(0);

/** Room beyond `maxBytes` made up front in a state piece (a row or two, a table trailer). */
const PIECE_SLACK_BYTES = 64 * 1024;

/** Pieces of a captured state; see `Datastore.captureState`. */
export interface StateCursor {
  /** The next piece (about `maxBytes`, at least one row), or null once everything was read. */
  next(maxBytes: number): Uint8Array | null;
  release(): void;
}

/** The open mutable transaction. Every method throws AssertionError once it has ended. */
/** A table's entry in a commit record before its rows: table id, insert count, delete count. */
const TABLE_DELTA_HEADER_BYTES = 12;

export class MutTx {
  readonly #tables: Table[];
  readonly #indexes: TableIndex[];
  readonly #end: (committed: boolean) => Sequence[];
  /** Tables this transaction wrote to; most write one, so the array is made for the second. */
  #firstTouched: Table | undefined;
  #touched: Table[] | undefined;
  #open = true;

  constructor(
    tables: Table[],
    indexes: TableIndex[],
    end: (committed: boolean) => Sequence[],
  ) {
    this.#tables = tables;
    this.#indexes = indexes;
    this.#end = end;
  }

  get open(): boolean {
    return this.#open;
  }

  #table(tableId: number): Table {
    assert(this.#open, "Transaction has ended");
    const table = this.#tables[tableId];
    if (table === undefined) throw noSuchTable(tableId);
    return table;
  }

  #index(indexId: number): TableIndex {
    assert(this.#open, "Transaction has ended");
    return indexOf(this.#indexes, indexId);
  }

  #touch(table: Table): void {
    if (!table.inTx) {
      table.beginTx();
      if (this.#firstTouched === undefined) this.#firstTouched = table;
      else (this.#touched ??= [this.#firstTouched]).push(table);
    }
  }

  /**
   * Inserts one BSATN row (copied). Zero-valued sequence columns are filled; `row` is the row
   * as stored and `generated` the BSATN of the generated values in ascending column order.
   * Inserting a row identical to a live one is a successful no-op.
   */
  insert(tableId: number, row: Uint8Array): WriteResult {
    const table = this.#table(tableId);
    table.layout.validate(row);
    const copy = copyBytes(row);
    const generated = table.fireSequences(copy);
    this.#touch(table);
    table.insertRow(copy);
    return { row: copy, generated };
  }

  /**
   * Replaces the row whose key in the unique index `indexId` equals the new row's key.
   * Identical old and new rows make it a no-op.
   */
  update(tableId: number, indexId: number, row: Uint8Array): WriteResult {
    const table = this.#table(tableId);
    const index = this.#index(indexId);
    if (index.table !== table) throw noSuchIndex(indexId);
    if (!index.unique) {
      throw new DatastoreError("IndexNotUnique", `Index '${index.schema.name}' is not unique`);
    }
    table.layout.validate(row);
    const copy = copyBytes(row);
    const generated = table.fireSequences(copy);
    this.#touch(table);
    if (!table.updateByIndex(index, copy)) {
      throw new DatastoreError("NoSuchRow", `No row of '${table.schema.name}' has the new key`);
    }
    return { row: copy, generated };
  }

  /** Deletes every live row equal to one of `relation` (BSATN `Vec<Row>`); returns the count. */
  deleteByRelation(tableId: number, relation: Uint8Array): number {
    const table = this.#table(tableId);
    if (relation.length < 4) throw decodeError("Relation is shorter than its count");
    const count = readU32(relation, 0);
    const rows: Uint8Array[] = [];
    let pos = 4;
    for (let i = 0; i < count; i++) {
      const end = table.layout.rowEnd(relation, pos, relation.length);
      rows.push(relation.subarray(pos, end));
      pos = end;
    }
    let deleted = 0;
    for (const row of rows) {
      const id = table.findIdentical(row);
      if (id < 0) continue;
      this.#touch(table);
      table.deleteRow(id);
      deleted++;
    }
    return deleted;
  }

  /** Snapshot of live rows: committed ones first, then the ones this transaction created. */
  scan(tableId: number): Uint8Array[] {
    return this.#table(tableId).scan();
  }

  count(tableId: number): number {
    return this.#table(tableId).count;
  }

  /** Rows whose key equals `key` (the BSATN of all key columns). */
  indexScanPoint(indexId: number, key: Uint8Array): Uint8Array[] {
    assert(this.#open, "Transaction has ended");
    return indexPoint(this.#indexes, indexId, key);
  }

  /** Rows of a range scan (module-abi.md §2.4), in key order. */
  indexScanRange(
    indexId: number,
    buf: Uint8Array,
    prefixLen: number,
    prefixElems: number,
    rstartLen: number,
    rendLen: number,
  ): Uint8Array[] {
    assert(this.#open, "Transaction has ended");
    return indexRange(this.#indexes, indexId, buf, prefixLen, prefixElems, rstartLen, rendLen);
  }

  /**
   * The rows of `scan`, `indexScanPoint` or `indexScanRange` as rowIds of `tableId`, without
   * materializing them: read them with copyRow / rowBytes before the next write in this
   * transaction.
   */
  scanIds(tableId: number): RowIds {
    const table = this.#table(tableId);
    return { tableId, ids: table.scanIds() };
  }

  indexScanPointIds(indexId: number, key: Uint8Array): RowIds {
    const index = this.#index(indexId);
    return { tableId: index.table.schema.tableId, ids: pointIds(index, key) };
  }

  indexScanRangeIds(
    indexId: number,
    buf: Uint8Array,
    prefixLen: number,
    prefixElems: number,
    rstartLen: number,
    rendLen: number,
  ): RowIds {
    const index = this.#index(indexId);
    const ids = rangeIds(index, buf, prefixLen, prefixElems, rstartLen, rendLen);
    return { tableId: index.table.schema.tableId, ids };
  }

  /**
   * Copies live row `rowId` of `tableId` into `out` at `at` and returns its length, or returns
   * -length and copies nothing when it does not fit.
   */
  copyRow(tableId: number, rowId: number, out: Uint8Array, at: number): number {
    return copyStoredRow(this.#table(tableId).store, rowId, out, at);
  }

  /** The bytes of live row `rowId` of `tableId` (a copy the caller may keep). */
  rowBytes(tableId: number, rowId: number): Uint8Array {
    return this.#table(tableId).row(rowId);
  }

  /**
   * Point lookup on a unique index without materializing the row: the rowId of the live row
   * whose key equals `key[0, keyLength)`, -1 when there is none, or NOT_UNIQUE for an index
   * that is not unique (use indexScanPoint). Errors as indexScanPoint.
   */
  indexFindUnique(indexId: number, key: Uint8Array, keyLength: number): number {
    assert(this.#open, "Transaction has ended");
    const group = indexOf(this.#indexes, indexId).group;
    if (group.unique === null) return NOT_UNIQUE;
    return group.unique.get(group.codec.fromBsatn(key, 0, keyLength));
  }

  /**
   * Copies the row `rowId` found by indexFindUnique on `indexId` into `out` at `at` and returns
   * its length, or returns -length and copies nothing when it does not fit. Valid only until
   * the next write in this transaction.
   */
  copyFoundRow(indexId: number, rowId: number, out: Uint8Array, at: number): number {
    assert(this.#open, "Transaction has ended");
    return copyStoredRow(indexOf(this.#indexes, indexId).table.store, rowId, out, at);
  }

  /** The bytes of the row `rowId` found by indexFindUnique (a copy the caller may keep). */
  foundRow(indexId: number, rowId: number): Uint8Array {
    assert(this.#open, "Transaction has ended");
    return indexOf(this.#indexes, indexId).table.row(rowId);
  }

  deleteByIndexPoint(indexId: number, key: Uint8Array): number {
    const index = this.#index(indexId);
    return this.#deleteIds(index.table, pointIds(index, key));
  }

  deleteByIndexRange(
    indexId: number,
    buf: Uint8Array,
    prefixLen: number,
    prefixElems: number,
    rstartLen: number,
    rendLen: number,
  ): number {
    const index = this.#index(indexId);
    const ids = rangeIds(index, buf, prefixLen, prefixElems, rstartLen, rendLen);
    return this.#deleteIds(index.table, ids);
  }

  /** Deletes all live rows; returns the count. */
  clear(tableId: number): number {
    const table = this.#table(tableId);
    return this.#deleteIds(table, table.liveIds());
  }

  #deleteIds(table: Table, ids: number[]): number {
    if (ids.length === 0) return 0;
    this.#touch(table);
    for (const id of ids) table.deleteRow(id);
    return ids.length;
  }

  /** Makes the changes committed and returns the net delta (empty tables left out). */
  /**
   * Most bytes this transaction's table changes can take in a commit record (rows with their
   * length prefixes, and each touched table's id and counts), computed before commit() so a
   * transaction over a size budget can still be rolled back.
   */
  deltaBytesMax(): number {
    assert(this.#open, "Transaction has ended");
    if (this.#touched !== undefined) {
      let bytes = 0;
      for (const table of this.#touched) {
        bytes += TABLE_DELTA_HEADER_BYTES + table.txDeltaBytesMax();
      }
      return bytes;
    }
    const first = this.#firstTouched;
    return first === undefined ? 0 : TABLE_DELTA_HEADER_BYTES + first.txDeltaBytesMax();
  }

  /** The rows each written table has inserted and deleted so far (see Table.txChangedRows). */
  changedRows(): TxDelta["tables"] {
    assert(this.#open, "Transaction has ended");
    if (this.#touched !== undefined) return this.#touched.map((table) => table.txChangedRows());
    const first = this.#firstTouched;
    return first === undefined ? [] : [first.txChangedRows()];
  }

  commit(): TxDelta {
    assert(this.#open, "Transaction has ended");
    this.#open = false;
    let tables: TxDelta["tables"];
    if (this.#touched !== undefined) {
      tables = [];
      for (const table of this.#touched) {
        const delta = table.commitTx();
        if (delta.inserts.length > 0 || delta.deletes.length > 0) tables.push(delta);
      }
    } else if (this.#firstTouched !== undefined) {
      const delta = this.#firstTouched.commitTx();
      tables = delta.inserts.length > 0 || delta.deletes.length > 0 ? [delta] : [];
    } else {
      tables = [];
    }
    const moved = this.#end(true);
    if (moved.length === 0) return { tables, sequences: [] };
    const sequences: TxDelta["sequences"] = new Array(moved.length);
    for (let i = 0; i < moved.length; i++) {
      const sequence = moved[i];
      sequence.dirty = false;
      sequences[i] = { tableId: sequence.tableId, column: sequence.column, next: sequence.next };
    }
    return { tables, sequences };
  }

  /** Undoes every change. Sequence values consumed stay consumed (reported at the next commit). */
  rollback(): void {
    assert(this.#open, "Transaction has ended");
    this.#open = false;
    if (this.#touched !== undefined) { for (const table of this.#touched) table.rollbackTx(); }
    else this.#firstTouched?.rollbackTx();
    this.#end(false);
  }
}
