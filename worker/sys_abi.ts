/**
 * The `spacetime:sys@2.0` / `@2.1` syscalls, implemented over the in-memory datastore.
 *
 * Every function is synchronous and called by the spacetimedb module library bundled
 * into the tenant's module. Buffers arrive as (ArrayBuffer, length) with data at byte 0;
 * rows for iterators and generated sequence values are written back into the caller's
 * buffer. Datastore errors become instances of the module's own error classes (errno),
 * built through the hooks' `__get_error_constructor__`.
 */
import { DatastoreError, type MutTx, NOT_UNIQUE, type RowIds } from "../storage/mod.ts";

/** Captured at load: a database process later removes `performance` from its globals. */
const hostNow = performance.now.bind(performance);

/** The symbol the host exports as `moduleHooks`; any symbol works as long as lookup uses it. */
export const MODULE_HOOKS_SYMBOL: symbol = Symbol.for("SpacetimeDB.moduleHooks.v2");

/** errno values of module-abi.md §2.1. */
export const Errno = {
  HOST_CALL_FAILURE: 1,
  NOT_IN_TRANSACTION: 2,
  BSATN_DECODE_ERROR: 3,
  NO_SUCH_TABLE: 4,
  NO_SUCH_INDEX: 5,
  NO_SUCH_ITER: 6,
  NO_SUCH_CONSOLE_TIMER: 7,
  NO_SUCH_BYTES: 8,
  NO_SPACE: 9,
  WRONG_INDEX_ALGO: 10,
  BUFFER_TOO_SMALL: 11,
  UNIQUE_ALREADY_EXISTS: 12,
  SCHEDULE_AT_DELAY_TOO_LONG: 13,
  INDEX_NOT_UNIQUE: 14,
  NO_SUCH_ROW: 15,
  AUTO_INC_OVERFLOW: 16,
  WOULD_BLOCK_TRANSACTION: 17,
  TRANSACTION_NOT_ANONYMOUS: 18,
  TRANSACTION_IS_READ_ONLY: 19,
  TRANSACTION_IS_MUT: 20,
  HTTP_ERROR: 21,
} as const;

const ERRNO_MESSAGES: Record<number, string> = {
  1: "ABI called by host returned an error",
  2: "ABI call can only be made while in a transaction",
  3: "Couldn't decode the BSATN to the expected type",
  4: "No such table",
  5: "No such index",
  6: "The provided row iterator is not valid",
  7: "The provided console timer does not exist",
  8: "The provided bytes source or sink is not valid",
  9: "The provided sink has no more space left",
  10: "The Index does not support range scans",
  11: "The provided buffer is not large enough to store the data",
  12: "Value with given unique identifier already exists",
  13: "Specified delay in scheduling row was too long",
  14: "The index was not unique",
  15: "The row was not found, e.g., in an update call",
  16: "The auto-increment sequence overflowed",
  17: "Attempted async or blocking op while holding open a transaction",
  18: "Not in an anonymous transaction. Called by a reducer?",
  19: "ABI call can only be made while within a mutable transaction",
  20: "ABI call can only be made while within a read-only transaction",
  21: "The HTTP request failed",
};

const DATASTORE_ERRNO: Record<string, number> = {
  NoSuchTable: Errno.NO_SUCH_TABLE,
  NoSuchIndex: Errno.NO_SUCH_INDEX,
  UniqueViolation: Errno.UNIQUE_ALREADY_EXISTS,
  DecodeError: Errno.BSATN_DECODE_ERROR,
  WrongIndexAlgo: Errno.WRONG_INDEX_ALGO,
  IndexNotUnique: Errno.INDEX_NOT_UNIQUE,
  NoSuchRow: Errno.NO_SUCH_ROW,
  ScheduleAtDelayTooLong: Errno.SCHEDULE_AT_DELAY_TOO_LONG,
};

/** Log levels of `console_log`. */
export const LOG_LEVEL_NAMES: Record<number, string> = {
  0: "Error",
  1: "Warn",
  2: "Info",
  3: "Debug",
  4: "Trace",
  101: "Panic",
};

/**
 * Thrown for host failures that must end the call no matter what JS does with them
 * (sequence overflow, internal datastore failures). The call is then treated as failed.
 */
export class FatalHostError extends Error {
  override name = "FatalHostError";
}

/** What the syscalls need from the surrounding worker. */
export interface SysEnv {
  /** The open mutable transaction, if any. */
  tx(): MutTx | undefined;
  tableIdFromName(name: string): number | undefined;
  indexIdFromName(name: string): number | undefined;
  /** `__get_error_constructor__` once hooks exist; undefined during module evaluation. */
  errorConstructor(code: number): (new (message: string) => Error) | undefined;
  /** Database identity as u256. */
  databaseIdentity(): bigint;
  /** JWT payload JSON (UTF-8) of a connection, or empty. */
  jwtPayload(connectionId: bigint): Uint8Array;
  consoleLog(level: number, message: string): void;
  /** Records a fatal host error for the current call. */
  poison(error: Error): void;
  isPoisoned(): boolean;
  /** Queues a reducer run; throws a clear error when the database's queue is full. */
  scheduleImmediate(reducerName: string, args: Uint8Array): void;
  /** Throws when arguments this big could never be queued (checked before they are copied). */
  checkScheduleImmediateArgs?(byteLength: number): void;
  /** True when `row` of a schedule table asks for a delay over the limit (errno 13). */
  scheduleDelayTooLong?(tableId: number, row: Uint8Array): boolean;
  nowMicros(): bigint;
  /**
   * While a view runs: where its reads are recorded (module-abi.md §5.4), and its writes are
   * refused with errno 19; undefined otherwise.
   */
  viewReads?(): ViewReadRecorder | undefined;
  /** Procedures: open an anonymous transaction; false when one is already open. */
  startAnonymousTx(): boolean;
  /** Commits the anonymous transaction; false when there is none. */
  commitAnonymousTx(): boolean;
  /** Rolls the anonymous transaction back; false when there is none. */
  abortAnonymousTx(): boolean;
}

/** The read set of a running view: whole tables, or exact points of an index. */
export interface ViewReadRecorder {
  table(tableId: number): void;
  /** `key` is the BSATN of the index's key columns (copied by the recorder if kept). */
  point(indexId: number, key: Uint8Array): void;
  /**
   * A range scan on an index (module-abi.md §2.4 layout): an index point when both bounds are
   * the same included value on the last column, else a read of the index's whole table.
   */
  range(
    indexId: number,
    bytes: Uint8Array,
    prefixLen: number,
    prefixElems: number,
    rstartLen: number,
    rendLen: number,
  ): void;
}

export interface Syscalls {
  v20: Record<string, unknown>;
  v21: Record<string, unknown>;
  /** Ends every open iterator and console timer; called after each hook call. */
  endCall(): { openIterators: number; openTimers: number };
}

export function createSyscalls(env: SysEnv): Syscalls {
  let nextIteratorId = 1;
  const iterators = new Map<number, RowIterator>();
  let nextTimerId = 1;
  const timers = new Map<number, { name: string; startMs: number }>();

  function errnoError(code: number, message = ERRNO_MESSAGES[code]): Error {
    const ctor = env.errorConstructor(code);
    return ctor ? new ctor(message) : new Error(message);
  }

  function requireTx(): MutTx {
    if (env.isPoisoned()) throw new FatalHostError("call was terminated by a fatal host error");
    const tx = env.tx();
    if (!tx) throw errnoError(Errno.NOT_IN_TRANSACTION);
    return tx;
  }

  function u32(value: unknown, what: string): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new TypeError(`${what} must be a u32, got ${String(value)}`);
    }
    return value;
  }

  function bytesOf(buffer: unknown, length: unknown, what: string): Uint8Array {
    return new Uint8Array(buffer as ArrayBuffer, 0, checkedLength(buffer, length, what));
  }

  /** bytesOf's checks without the view: the length, once `buffer` is known to hold it. */
  function checkedLength(buffer: unknown, length: unknown, what: string): number {
    if (!(buffer instanceof ArrayBuffer)) throw new TypeError(`${what} must be an ArrayBuffer`);
    const len = u32(length, `${what} length`);
    if (len > buffer.byteLength) {
      throw new RangeError("length argument was out of bounds for `ArrayBuffer`");
    }
    return len;
  }

  /**
   * Maps a datastore operation's typed error onto an errno error (or poisons the call for
   * internal failures). Hot syscalls call it from their own catch blocks instead of wrapping the
   * operation in a closure, which would allocate on every call.
   */
  function mapError(error: unknown): unknown {
    if (error instanceof DatastoreError) {
      const code = DATASTORE_ERRNO[error.code];
      if (code !== undefined) return errnoError(code);
      const fatal = new FatalHostError(`${error.code}: ${error.message}`);
      env.poison(fatal);
      return fatal;
    }
    return error;
  }

  /** Runs a datastore operation and maps its typed errors onto errno errors. */
  function mapped<T>(operation: () => T): T {
    try {
      return operation();
    } catch (error) {
      throw mapError(error);
    }
  }

  // Most iterators are opened, drained by one advance and dropped before the next one opens
  // (point lookups). The newest one lives in these slots instead of the Map.
  let recentId = 0;
  let recent: RowIterator | undefined;
  // A point lookup on a unique index leaves `recent === LAZY_POINT`: the row is copied straight
  // from the table into the module's buffer at the advance, with no row or iterator object in
  // between. The rows an iterator yields are a snapshot taken at the scan, so before anything
  // can change the table (a write syscall, the end of the transaction, another iterator taking
  // the recent slot) the lazy iterator is turned into a real one holding a copy of the row.
  let lazyIndexId = 0;
  /** The found rowId, or -1 when the lookup found nothing. */
  let lazyRowId = -1;
  let lazyTx: MutTx | undefined;

  // Scans and range scans read their rows by rowId at each advance too (`ids` set), so a big
  // scan copies each row once, straight from the table into the module's buffer. They are
  // materialized like the lazy point lookup before anything can change the table.
  const lazyIterators: RowIterator[] = [];
  let lazyScanTx: MutTx | undefined;

  function materializeLazy(): void {
    if (recent !== LAZY_POINT) return;
    const rows = lazyRowId < 0 ? [] : [lazyTx!.foundRow(lazyIndexId, lazyRowId)];
    recent = new RowIterator(rows);
    lazyTx = undefined;
  }

  /** Gives every open iterator its own copy of the rows it has yet to yield. */
  function materializeAll(): void {
    if (recent === LAZY_POINT) materializeLazy();
    if (lazyIterators.length === 0) return;
    const tx = lazyScanTx!;
    for (const iterator of lazyIterators) {
      const ids = iterator.ids;
      if (ids === null) continue;
      const rows = new Array<Uint8Array>(ids.length);
      for (let i = iterator.position; i < ids.length; i++) {
        rows[i] = tx.rowBytes(iterator.tableId, ids[i]);
      }
      iterator.rows = rows;
      iterator.ids = null;
    }
    lazyIterators.length = 0;
    lazyScanTx = undefined;
  }

  /** requireTx() for syscalls that write: lazy iterators must stop looking at the table. */
  function requireWriteTx(): MutTx {
    const tx = requireTx();
    if (env.viewReads?.() !== undefined) throw errnoError(Errno.TRANSACTION_IS_READ_ONLY);
    if (recent === LAZY_POINT || lazyIterators.length > 0) materializeAll();
    return tx;
  }

  function openLazyIterator(tx: MutTx, found: RowIds): number {
    const iterator = new RowIterator(NO_ROWS);
    iterator.ids = found.ids;
    iterator.tableId = found.tableId;
    lazyIterators.push(iterator);
    lazyScanTx = tx;
    return register(iterator);
  }

  /** Makes `iterator` the recent one; the previous recent one moves to the Map. */
  function register(iterator: RowIterator): number {
    const id = nextIteratorId++;
    if (recent !== undefined) {
      if (recent === LAZY_POINT) materializeLazy();
      iterators.set(recentId, recent!);
    }
    recentId = id;
    recent = iterator;
    return id;
  }

  function openLazyPoint(tx: MutTx, indexId: number, rowId: number): number {
    const id = register(LAZY_POINT);
    lazyTx = tx;
    lazyIndexId = indexId;
    lazyRowId = rowId;
    return id;
  }

  function findIterator(id: number): RowIterator | undefined {
    return id === recentId ? recent : iterators.get(id);
  }

  function dropIterator(id: number): void {
    let dropped: RowIterator | undefined;
    if (id === recentId) {
      dropped = recent;
      recent = undefined;
      recentId = 0;
      lazyTx = undefined;
    } else {
      dropped = iterators.get(id);
      iterators.delete(id);
    }
    // A dropped lazy iterator needs no materializing any more.
    if (dropped !== undefined && dropped.ids !== null) dropped.ids = null;
  }

  // The library passes the same scratch ArrayBuffer on almost every call: keep one full view
  // of it instead of allocating a Uint8Array per syscall. A resized or detached buffer changes
  // byteLength, which refreshes the view.
  let scratchBuffer: ArrayBuffer | undefined;
  let scratchView = new Uint8Array(0);
  function viewOf(buffer: ArrayBuffer): Uint8Array {
    if (buffer !== scratchBuffer || scratchView.length !== buffer.byteLength) {
      scratchView = new Uint8Array(buffer);
      scratchBuffer = buffer;
    }
    return scratchView;
  }

  function tableId(value: unknown): number {
    return u32(value, "table_id");
  }

  /** Checks the six arguments of a range scan (§2.4) and views the buffer's three parts. */
  function rangeArguments(
    index: unknown,
    buffer: unknown,
    prefixLen: unknown,
    prefixElems: unknown,
    rstartLen: unknown,
    rendLen: unknown,
  ) {
    const prefix = u32(prefixLen, "prefix_len");
    const rstart = u32(rstartLen, "rstart_len");
    const rend = u32(rendLen, "rend_len");
    return {
      index: u32(index, "index_id"),
      bytes: bytesOf(buffer, prefix + rstart + rend, "buf"),
      prefixLen: prefix,
      prefixElems: u32(prefixElems, "prefix_elems"),
      rstartLen: rstart,
      rendLen: rend,
    };
  }

  const v20: Record<string, unknown> = {
    moduleHooks: MODULE_HOOKS_SYMBOL,

    table_id_from_name(name: unknown): number {
      requireTx();
      const id = env.tableIdFromName(String(name));
      if (id === undefined) throw errnoError(Errno.NO_SUCH_TABLE);
      return id;
    },

    index_id_from_name(name: unknown): number {
      requireTx();
      const id = env.indexIdFromName(String(name));
      if (id === undefined) throw errnoError(Errno.NO_SUCH_INDEX);
      return id;
    },

    datastore_table_row_count(table: unknown): bigint {
      const tx = requireTx();
      const id = tableId(table);
      env.viewReads?.()?.table(id);
      return BigInt(mapped(() => tx.count(id)));
    },

    datastore_table_scan_bsatn(table: unknown): number {
      const tx = requireTx();
      const id = tableId(table);
      env.viewReads?.()?.table(id);
      return openLazyIterator(tx, mapped(() => tx.scanIds(id)));
    },

    datastore_index_scan_range_bsatn(
      index: unknown,
      buffer: unknown,
      prefixLen: unknown,
      prefixElems: unknown,
      rstartLen: unknown,
      rendLen: unknown,
    ): number {
      const tx = requireTx();
      const range = rangeArguments(index, buffer, prefixLen, prefixElems, rstartLen, rendLen);
      env.viewReads?.()?.range(
        range.index,
        range.bytes,
        range.prefixLen,
        range.prefixElems,
        range.rstartLen,
        range.rendLen,
      );
      return openLazyIterator(
        tx,
        mapped(() =>
          tx.indexScanRangeIds(
            range.index,
            range.bytes,
            range.prefixLen,
            range.prefixElems,
            range.rstartLen,
            range.rendLen,
          )
        ),
      );
    },

    row_iter_bsatn_advance(iterator: unknown, buffer: unknown): number {
      const id = u32(iterator, "iter");
      const state = findIterator(id);
      if (!state) throw errnoError(Errno.NO_SUCH_ITER);
      if (!(buffer instanceof ArrayBuffer)) throw new TypeError("buffer must be an ArrayBuffer");
      const out = viewOf(buffer);
      const ids = state.ids;
      if (ids !== null) {
        const tx = lazyScanTx!;
        const table = state.tableId;
        let written = 0;
        while (state.position < ids.length) {
          const size = tx.copyRow(table, ids[state.position], out, written);
          if (size < 0) {
            if (written === 0) throw { __buffer_too_small__: -size };
            return written;
          }
          written += size;
          state.position++;
        }
        dropIterator(id);
        return -written;
      }
      if (state === LAZY_POINT) {
        let written = 0;
        if (lazyRowId >= 0) {
          written = lazyTx!.copyFoundRow(lazyIndexId, lazyRowId, out, 0);
          if (written < 0) throw { __buffer_too_small__: -written };
        }
        dropIterator(id);
        return -written;
      }
      const rows = state.rows;
      let written = 0;
      while (state.position < rows.length) {
        const row = rows[state.position];
        if (written + row.length > out.length) {
          if (written === 0) throw { __buffer_too_small__: row.length };
          return written;
        }
        copyInto(out, row, written);
        written += row.length;
        state.position++;
      }
      dropIterator(id);
      return -written;
    },

    row_iter_bsatn_close(iterator: unknown): void {
      // Never throws: finalizers of abandoned iterators call this late (module-abi.md §7.4).
      if (typeof iterator === "number") dropIterator(iterator);
    },

    datastore_insert_bsatn(table: unknown, buffer: unknown, rowLen: unknown): number {
      const tx = requireWriteTx();
      const view = bytesOf(buffer, rowLen, "row");
      const id = tableId(table);
      if (env.scheduleDelayTooLong?.(id, view)) {
        throw errnoError(Errno.SCHEDULE_AT_DELAY_TOO_LONG);
      }
      let generated: Uint8Array;
      try {
        // MutTx.insert stores its own copy of the row.
        generated = tx.insert(id, view).generated;
      } catch (error) {
        throw mapError(error);
      }
      if (generated.length > 0) viewOf(buffer as ArrayBuffer).set(generated, 0);
      return generated.length;
    },

    datastore_update_bsatn(
      table: unknown,
      index: unknown,
      buffer: unknown,
      rowLen: unknown,
    ): number {
      const tx = requireWriteTx();
      const view = bytesOf(buffer, rowLen, "row");
      const id = tableId(table);
      const indexId = u32(index, "index_id");
      if (env.scheduleDelayTooLong?.(id, view)) {
        throw errnoError(Errno.SCHEDULE_AT_DELAY_TOO_LONG);
      }
      let generated: Uint8Array;
      try {
        // MutTx.update stores its own copy of the row.
        generated = tx.update(id, indexId, view).generated;
      } catch (error) {
        throw mapError(error);
      }
      if (generated.length > 0) viewOf(buffer as ArrayBuffer).set(generated, 0);
      return generated.length;
    },

    datastore_delete_by_index_scan_range_bsatn(
      index: unknown,
      buffer: unknown,
      prefixLen: unknown,
      prefixElems: unknown,
      rstartLen: unknown,
      rendLen: unknown,
    ): number {
      const tx = requireWriteTx();
      const range = rangeArguments(index, buffer, prefixLen, prefixElems, rstartLen, rendLen);
      return mapped(() =>
        tx.deleteByIndexRange(
          range.index,
          range.bytes,
          range.prefixLen,
          range.prefixElems,
          range.rstartLen,
          range.rendLen,
        )
      );
    },

    datastore_delete_all_by_eq_bsatn(
      table: unknown,
      buffer: unknown,
      relationLen: unknown,
    ): number {
      const tx = requireWriteTx();
      const bytes = bytesOf(buffer, relationLen, "relation");
      return mapped(() => tx.deleteByRelation(tableId(table), bytes));
    },

    datastore_index_scan_point_bsatn(index: unknown, buffer: unknown, pointLen: unknown): number {
      const tx = requireTx();
      const length = checkedLength(buffer, pointLen, "point");
      const indexId = u32(index, "index_id");
      env.viewReads?.()?.point(indexId, bytesOf(buffer, length, "point"));
      let rowId: number;
      try {
        rowId = tx.indexFindUnique(indexId, viewOf(buffer as ArrayBuffer), length);
        if (rowId === NOT_UNIQUE) {
          return openLazyIterator(
            tx,
            tx.indexScanPointIds(indexId, bytesOf(buffer, length, "point")),
          );
        }
      } catch (error) {
        throw mapError(error);
      }
      return openLazyPoint(tx, indexId, rowId);
    },

    datastore_delete_by_index_scan_point_bsatn(
      index: unknown,
      buffer: unknown,
      pointLen: unknown,
    ): number {
      const tx = requireWriteTx();
      const bytes = bytesOf(buffer, pointLen, "point");
      return mapped(() => tx.deleteByIndexPoint(u32(index, "index_id"), bytes));
    },

    volatile_nonatomic_schedule_immediate(reducerName: unknown, args: unknown): void {
      if (!(args instanceof Uint8Array)) throw new TypeError("args must be a Uint8Array");
      env.checkScheduleImmediateArgs?.(args.byteLength);
      env.scheduleImmediate(String(reducerName), args.slice());
    },

    console_log(level: unknown, message: unknown): void {
      env.consoleLog(typeof level === "number" ? level : 3, String(message));
    },

    console_timer_start(name: unknown): number {
      const id = nextTimerId++;
      timers.set(id, { name: String(name), startMs: hostNow() });
      return id;
    },

    console_timer_end(spanId: unknown): void {
      const id = u32(spanId, "span_id");
      const timer = timers.get(id);
      if (!timer) throw errnoError(Errno.NO_SUCH_CONSOLE_TIMER);
      timers.delete(id);
      const elapsedMs = hostNow() - timer.startMs;
      env.consoleLog(2, `Timing span "${timer.name}": ${formatDuration(elapsedMs)}`);
    },

    identity(): bigint {
      return env.databaseIdentity();
    },

    get_jwt_payload(connectionId: unknown): Uint8Array {
      requireTx();
      if (typeof connectionId !== "bigint") throw new TypeError("connection_id must be a bigint");
      return env.jwtPayload(connectionId);
    },

    procedure_http_request(): never {
      if (env.tx()) throw errnoError(Errno.WOULD_BLOCK_TRANSACTION);
      throw errnoError(
        Errno.HTTP_ERROR,
        "ctx.http.fetch is not supported by Lightcone yet: outbound HTTP from procedures is " +
          "disabled, and the request was not sent",
      );
    },

    procedure_start_mut_tx(): bigint {
      if (!env.startAnonymousTx()) throw errnoError(Errno.WOULD_BLOCK_TRANSACTION);
      return env.nowMicros();
    },

    procedure_commit_mut_tx(): void {
      materializeAll();
      if (!env.commitAnonymousTx()) throw errnoError(Errno.TRANSACTION_NOT_ANONYMOUS);
    },

    procedure_abort_mut_tx(): void {
      materializeAll();
      if (!env.abortAnonymousTx()) throw errnoError(Errno.TRANSACTION_NOT_ANONYMOUS);
    },
  };

  const v21: Record<string, unknown> = {
    datastore_clear(table: unknown): bigint {
      const tx = requireWriteTx();
      return BigInt(mapped(() => tx.clear(tableId(table))));
    },
  };

  // Shorthand methods are not constructors, so `new sys.fn()` throws as in the real host.
  return {
    v20,
    v21,
    endCall() {
      if (lazyIterators.length > 0) lazyIterators.length = 0;
      lazyScanTx = undefined;
      const openIterators = iterators.size + (recent === undefined ? 0 : 1);
      if (openIterators === 0 && timers.size === 0) return NOTHING_OPEN;
      const open = { openIterators, openTimers: timers.size };
      recent = undefined;
      recentId = 0;
      lazyTx = undefined;
      // Map.clear() allocates a fresh table even when empty, so only clear what is in use.
      if (iterators.size > 0) iterators.clear();
      if (timers.size > 0) timers.clear();
      return open;
    },
  };
}

/** `out.set(row, at)`; a plain loop is several times faster for the small rows of most tables. */
function copyInto(out: Uint8Array, row: Uint8Array, at: number): void {
  const length = row.length;
  if (length > 64) {
    out.set(row, at);
    return;
  }
  for (let i = 0; i < length; i++) out[at + i] = row[i];
}

const NOTHING_OPEN = Object.freeze({ openIterators: 0, openTimers: 0 });

/** Rows of one open iterator and how far the module has read. */
class RowIterator {
  position = 0;
  /** While set, the rows are read from table `tableId` by these rowIds (a lazy iterator). */
  ids: number[] | null = null;
  tableId = 0;
  constructor(public rows: Uint8Array[]) {}
}

const NO_ROWS: Uint8Array[] = [];

/** Marks the recent iterator as a lazy unique-index point lookup (see openLazyPoint). */
const LAZY_POINT = new RowIterator([]);

function formatDuration(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 1000) return `${ms.toFixed(3)}ms`;
  return `${(ms / 1000).toFixed(3)}s`;
}

export { ERRNO_MESSAGES };
