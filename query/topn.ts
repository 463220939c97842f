/**
 * Top-N queries: `SELECT * FROM t [WHERE p] ORDER BY c1 [ASC|DESC], … LIMIT n`, our extension
 * of SpacetimeDB's subscription grammar (issue #11 item 6).
 *
 * Order. Rows are ordered by the ORDER BY columns (each as SQL compares it, §1.7, which is also
 * the B-tree index order: integers numerically, strings and bytes by their UTF-8 bytes, floats
 * with -0 = +0 and NaN last, false < true), then by the primary key ascending when the table has
 * one, then by the row's BSATN bytes. Rows of a table are distinct, so this is a total order and
 * the window — the first n rows of σ_p(t) in it — is well defined, ties included.
 *
 * Maintenance (`TopNWindow`, one per live query, shared by its subscribers). The window keeps
 * `kept`, the first rows of σ_p(t) in order: the n rows subscribers have (`inWindow`) and up to
 * `max(n, 32)` rows after them (the buffer). While not `complete`, kept is exactly the rows of
 * σ_p(t) up to `threshold`, so a changed row beyond the threshold is ignored. Per transaction:
 * deleted rows at or before the threshold leave kept; inserted rows before it enter; kept is cut
 * back to its capacity; if fewer than n rows remain and the table may hold more, kept is refilled
 * with the rows that follow the threshold, from a B-tree index on exactly the ORDER BY columns
 * when the table has one (a seek from the threshold's key, one direction for all columns) or else
 * by one scan of the table keeping the best rows in a bounded heap. What subscribers get is the
 * set difference of the old and the new first n rows (V' − V; every row at most once): deleted
 * window rows, rows pushed out past n, rows that moved in (inserted ones or buffered ones).
 */
import { assert } from "../lib/assert.ts";
import type { TableSchema } from "../storage/mod.ts";
import type { QueryDelta, TxDelta } from "./delta.ts";
import type { CommittedState } from "./execute.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import { fragmentMatches, layoutOf, type QueryPlan, type SelectFragment } from "./plan.ts";
import { SignedRows, type Version } from "./_join.ts";
import type { RowLayout } from "./_row_decode.ts";
import { bytesToKey, type Comparable, compareBytes, compareComparable } from "./_scalar.ts";

/**
 * Rows kept beyond the window: max(limit, bufferMin). Tests lower `bufferMin` (and set
 * `bufferFixed`, which makes the buffer exactly `bufferMin`) to make refills frequent.
 */
export const topNTuning = { bufferMin: 32, bufferFixed: false };

/** One kept row: its bytes and decoded sort values (ORDER BY columns, then primary key). */
interface Entry {
  row: Uint8Array;
  values: Comparable[];
  /** Subscribers have this row. */
  inWindow: boolean;
  /** Entered kept during the current transaction (its window membership is settled at the end). */
  fresh: boolean;
  /** Cut off kept during the current transaction. */
  gone: boolean;
}

/** Reads the sort values of rows and compares them in the query's order. */
class TopNOrder {
  readonly #layout: RowLayout;
  readonly #columns: number[];
  /** -1 for a descending column, +1 otherwise (primary key columns ascend). */
  readonly #signs: number[];
  readonly keyCount: number;

  constructor(table: TableSchema, spec: NonNullable<QueryPlan["topN"]>) {
    this.#layout = layoutOf(table);
    this.#columns = [...spec.keys.map((k) => k.column), ...spec.primaryKey];
    this.#signs = [...spec.keys.map((k) => k.descending ? -1 : 1), ...spec.primaryKey.map(() => 1)];
    this.keyCount = spec.keys.length;
  }

  entry(row: Uint8Array): Entry {
    const view = this.#layout.view(row);
    const values = this.#columns.map((column) => view.value(column));
    return { row, values, inWindow: false, fresh: true, gone: false };
  }

  /** The total order: sort values, then bytes. */
  compare(a: Entry, b: Entry): number {
    const order = this.#compareValues(a, b, this.#columns.length);
    return order !== 0 ? order : compareBytes(a.row, b.row);
  }

  /** `compare` of a row not yet made an entry (reads only the columns it needs; no allocation). */
  compareRow(row: Uint8Array, entry: Entry): number {
    const view = this.#layout.view(row);
    for (let i = 0; i < this.#columns.length; i++) {
      const order = compareComparable(view.value(this.#columns[i]), entry.values[i]);
      if (order !== 0) return order * this.#signs[i];
    }
    return compareBytes(row, entry.row);
  }

  /** Compares only the ORDER BY columns (ties of an index walk). */
  compareKeys(a: Entry, b: Entry): number {
    return this.#compareValues(a, b, this.keyCount);
  }

  #compareValues(a: Entry, b: Entry, count: number): number {
    for (let i = 0; i < count; i++) {
      const order = compareComparable(a.values[i], b.values[i]);
      if (order !== 0) return order * this.#signs[i];
    }
    return 0;
  }
}

/**
 * An ordered B-tree walk over committed rows (`CommittedState.committedIndexWalk`): the rows of
 * the index on exactly `columns`, from the key of `from` (inclusive; the start or end when
 * undefined), ascending or descending, until `visit` returns false. Returns false, having
 * visited nothing, when the table has no such index.
 */
export type IndexWalk = (
  tableId: number,
  columns: readonly number[],
  from: Uint8Array | undefined,
  descending: boolean,
  visit: (row: Uint8Array) => boolean,
) => boolean;

/** Counters of the work windows did (tests and the cost measurement read them). */
export const topNStats = { scans: 0, walks: 0, rowsRead: 0 };

/** The rows that follow `after` in σ_p(t) at one version of the state. */
class RowSource {
  readonly #fragment: SelectFragment;
  readonly #order: TopNOrder;
  readonly #state: CommittedState;
  /** The index walk, when an index on exactly the ORDER BY columns exists. */
  readonly #walk: { columns: number[]; descending: boolean } | undefined;

  constructor(
    { fragment, order, state, spec }: {
      fragment: SelectFragment;
      order: TopNOrder;
      state: CommittedState;
      spec: TopNSpecOf;
    },
  ) {
    this.#fragment = fragment;
    this.#order = order;
    this.#state = state;
    const columns = spec.keys.map((k) => k.column);
    const descending = spec.keys[0].descending;
    const uniform = spec.keys.every((k) => k.descending === descending);
    const table = fragment.table;
    const indexed = table.indexes.some((index) =>
      index.algorithm === "btree" && index.columns.length === columns.length &&
      index.columns.every((c, i) => c === columns[i])
    );
    this.#walk = uniform && indexed && state.committedIndexWalk !== undefined
      ? { columns, descending }
      : undefined;
  }

  get usesIndex(): boolean {
    return this.#walk !== undefined;
  }

  /**
   * At least `want` rows of σ_p(t) after `after` in order (more when the last ones tie in an
   * index walk), sorted; `exhausted` when no row follows them.
   */
  read(
    after: Entry | undefined,
    want: number,
    version: Version,
  ): { entries: Entry[]; exhausted: boolean } {
    const adjust = version.get(this.#fragment.table.tableId);
    if (this.#walk !== undefined) {
      const result = this.#readIndex(after, want, adjust);
      if (result !== undefined) return result;
    }
    return this.#readScan(after, want, adjust);
  }

  #qualifies(entry: Entry, after: Entry | undefined): boolean {
    return after === undefined || this.#order.compare(entry, after) > 0;
  }

  /** Rows the version takes away (-1) and adds (+1) relative to the committed state. */
  #adjustments(adjust: SignedRows | undefined): { removed: Set<string>; added: Uint8Array[] } {
    const net = new Map<string, { row: Uint8Array; n: number }>();
    adjust?.forEach((row, sign) => {
      const key = bytesToKey(row);
      const entry = net.get(key);
      if (entry === undefined) net.set(key, { row, n: sign });
      else entry.n += sign;
    });
    const removed = new Set<string>();
    const added: Uint8Array[] = [];
    for (const [key, { row, n }] of net) {
      if (n < 0) removed.add(key);
      else if (n > 0) added.push(row);
    }
    return { removed, added };
  }

  #readScan(
    after: Entry | undefined,
    want: number,
    adjust: SignedRows | undefined,
  ): { entries: Entry[]; exhausted: boolean } {
    topNStats.scans++;
    const order = this.#order;
    const fragment = this.#fragment;
    const { removed, added } = this.#adjustments(adjust);
    const heap = new MaxHeap(order);
    let qualifying = 0;
    const consider = (row: Uint8Array) => {
      topNStats.rowsRead++;
      if (!fragmentMatches(fragment, row)) return;
      if (after !== undefined && order.compareRow(row, after) <= 0) return;
      qualifying++;
      if (heap.size < want) heap.push(order.entry(row));
      else if (order.compareRow(row, heap.top()) < 0) heap.replaceTop(order.entry(row));
    };
    for (const row of this.#state.committedRows(fragment.table.tableId)) {
      if (removed.size > 0 && removed.has(bytesToKey(row))) continue;
      consider(row);
    }
    for (const row of added) consider(row);
    return { entries: heap.sorted(), exhausted: qualifying <= want };
  }

  #readIndex(
    after: Entry | undefined,
    want: number,
    adjust: SignedRows | undefined,
  ): { entries: Entry[]; exhausted: boolean } | undefined {
    topNStats.walks++;
    const order = this.#order;
    const fragment = this.#fragment;
    const walk = this.#walk!;
    const { removed, added } = this.#adjustments(adjust);
    const entries: Entry[] = [];
    let exhausted = true;
    let last: Entry | undefined;
    const found = this.#state.committedIndexWalk!(
      fragment.table.tableId,
      walk.columns,
      after?.row,
      walk.descending,
      (row) => {
        topNStats.rowsRead++;
        if (removed.size > 0 && removed.has(bytesToKey(row))) return true;
        if (!fragmentMatches(fragment, row)) return true;
        const entry = order.entry(row);
        if (!this.#qualifies(entry, after)) return true;
        if (entries.length >= want && order.compareKeys(entry, last!) !== 0) {
          exhausted = false;
          return false;
        }
        entries.push(entry);
        last = entry;
        return true;
      },
    );
    if (!found) return undefined;
    // Rows the version adds that the walk would have met before it stopped.
    for (const row of added) {
      if (!fragmentMatches(fragment, row)) continue;
      const entry = order.entry(row);
      if (!this.#qualifies(entry, after)) continue;
      if (!exhausted && order.compareKeys(entry, last!) > 0) continue;
      entries.push(entry);
    }
    entries.sort((a, b) => order.compare(a, b));
    return { entries, exhausted };
  }
}

type TopNSpecOf = NonNullable<QueryPlan["topN"]>;

/** A binary max-heap of entries in the query's order (the worst kept row on top). */
class MaxHeap {
  readonly #order: TopNOrder;
  readonly #items: Entry[] = [];

  constructor(order: TopNOrder) {
    this.#order = order;
  }

  get size(): number {
    return this.#items.length;
  }

  top(): Entry {
    return this.#items[0];
  }

  push(entry: Entry): void {
    const items = this.#items;
    items.push(entry);
    let at = items.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (this.#order.compare(items[parent], items[at]) >= 0) break;
      [items[parent], items[at]] = [items[at], items[parent]];
      at = parent;
    }
  }

  replaceTop(entry: Entry): void {
    const items = this.#items;
    items[0] = entry;
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let largest = at;
      if (left < items.length && this.#order.compare(items[left], items[largest]) > 0) {
        largest = left;
      }
      if (right < items.length && this.#order.compare(items[right], items[largest]) > 0) {
        largest = right;
      }
      if (largest === at) return;
      [items[largest], items[at]] = [items[at], items[largest]];
      at = largest;
    }
  }

  sorted(): Entry[] {
    return this.#items.sort((a, b) => this.#order.compare(a, b));
  }
}

const EMPTY_VERSION: Version = new Map();

/** The live window of one top-N query (see the file comment). */
export class TopNWindow {
  readonly #fragment: SelectFragment;
  readonly #order: TopNOrder;
  readonly #source: RowSource;
  readonly #limit: number;
  readonly #capacity: number;
  /** The first rows of σ_p(t), in order. */
  readonly #kept: Entry[] = [];
  /** kept holds every row of σ_p(t). */
  #complete = false;
  /** While not complete, kept = the rows of σ_p(t) up to this one (none yet: undefined). */
  #threshold: Entry | undefined;

  constructor(plan: QueryPlan, state: CommittedState) {
    const spec = plan.topN;
    assert(spec !== undefined && plan.fragments.length === 1, "Top-N window of a non top-N plan");
    const fragment = plan.fragments[0];
    assert(fragment.kind === "select", "Top-N window over a join");
    this.#fragment = fragment;
    this.#order = new TopNOrder(fragment.table, spec);
    this.#source = new RowSource({ fragment, order: this.#order, state, spec });
    this.#limit = spec.limit;
    this.#capacity = spec.limit +
      (topNTuning.bufferFixed ? topNTuning.bufferMin : Math.max(spec.limit, topNTuning.bufferMin));
    if (fragment.never) this.#complete = true;
    else this.#settle(EMPTY_VERSION, { inserts: [], deletes: [] });
  }

  /** Whether refills seek a B-tree index (else they scan the table). */
  get usesIndex(): boolean {
    return this.#source.usesIndex;
  }

  /** Rows kept (window + buffer), for tests. */
  get keptCount(): number {
    return this.#kept.length;
  }

  /**
   * Checks the window against `rows`, the current rows of σ_p(t) (tests): kept is sorted, is
   * exactly the rows up to the threshold (all of them when complete), and the first `limit`
   * are the ones subscribers have.
   */
  checkInvariants(rows: Iterable<Uint8Array>): void {
    const kept = this.#kept;
    const order = this.#order;
    for (let i = 1; i < kept.length; i++) {
      assert(order.compare(kept[i - 1], kept[i]) < 0, "Top-N kept rows out of order");
    }
    const expected = [...rows].filter((row) => fragmentMatches(this.#fragment, row))
      .map((row) => order.entry(row))
      .filter((entry) =>
        this.#complete ||
        (this.#threshold !== undefined && order.compare(entry, this.#threshold) <= 0)
      )
      .sort((a, b) => order.compare(a, b));
    assert(
      expected.length === kept.length &&
        expected.every((entry, i) => compareBytes(entry.row, kept[i].row) === 0),
      `Top-N kept rows (${kept.length}) differ from the table's (${expected.length})`,
    );
    kept.forEach((entry, i) => assert(entry.inWindow === i < this.#limit, "Top-N window flag"));
  }

  /** The window's rows in order (what a new subscriber receives). */
  rows(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const end = Math.min(this.#limit, this.#kept.length);
    for (let i = 0; i < end; i++) out.push(this.#kept[i].row);
    return out;
  }

  /**
   * Applies one committed transaction; appends the window's change to `out`. `version` gives
   * the state right after this transaction relative to the committed one (needed only when the
   * window refills and the batch committed later transactions too).
   */
  apply(tx: TxDelta, version: () => Version, out: QueryDelta): void {
    if (this.#fragment.never) return;
    const tableId = this.#fragment.table.tableId;
    let touched = false;
    for (const table of tx.tables) {
      if (table.tableId !== tableId) continue;
      for (const row of table.deletes) if (this.#delete(row, out)) touched = true;
      for (const row of table.inserts) if (this.#insert(row)) touched = true;
    }
    if (touched) this.#settle(undefined, out, version);
  }

  /** Takes a deleted row out of kept when it was there. */
  #delete(row: Uint8Array, out: QueryDelta): boolean {
    if (!fragmentMatches(this.#fragment, row)) return false;
    const entry = this.#order.entry(row);
    if (!this.#before(entry)) return false;
    const at = this.#search(entry);
    assert(
      at < this.#kept.length && compareBytes(this.#kept[at].row, row) === 0,
      "Top-N window lost a row",
    );
    const [removed] = this.#kept.splice(at, 1);
    if (removed.inWindow) out.deletes.push(removed.row);
    return true;
  }

  #insert(row: Uint8Array): boolean {
    if (!fragmentMatches(this.#fragment, row)) return false;
    const entry = this.#order.entry(row);
    if (!this.#before(entry)) return false;
    this.#kept.splice(this.#search(entry), 0, entry);
    this.#fresh.push(entry);
    return true;
  }

  /**
   * Whether a row falls inside what kept covers: at or before the threshold (the threshold row
   * itself may have been deleted and come back).
   */
  #before(entry: Entry): boolean {
    if (this.#complete) return true;
    if (this.#threshold === undefined) return false;
    return this.#order.compare(entry, this.#threshold) <= 0;
  }

  /** The position of the first kept entry not before `entry`. */
  #search(entry: Entry): number {
    const kept = this.#kept;
    let lo = 0;
    let hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#order.compare(kept[mid], entry) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Entries that entered kept in the current transaction. */
  #fresh: Entry[] = [];

  /** Cuts kept to capacity, refills it, and emits the window's change. */
  #settle(
    initial: Version | undefined,
    out: QueryDelta,
    version?: () => Version,
  ): void {
    const kept = this.#kept;
    this.#cut(out);
    if (kept.length < this.#limit && !this.#complete) {
      const after = this.#threshold;
      const { entries, exhausted } = this.#source.read(
        after,
        this.#capacity - kept.length,
        initial ?? version!(),
      );
      for (const entry of entries) {
        kept.push(entry);
        this.#fresh.push(entry);
      }
      this.#complete = exhausted;
      this.#cut(out);
      if (!this.#complete) this.#threshold = kept[kept.length - 1];
    }
    // Old window rows are a prefix of the non-fresh entries, old buffer rows the rest; walk
    // the boundary from both sides, then place the fresh entries.
    const limit = this.#limit;
    const end = Math.min(limit, kept.length);
    for (let i = end - 1; i >= 0; i--) {
      const entry = kept[i];
      if (entry.fresh) continue;
      if (entry.inWindow) break;
      entry.inWindow = true;
      out.inserts.push(entry.row);
    }
    for (let i = limit; i < kept.length; i++) {
      const entry = kept[i];
      if (entry.fresh) continue;
      if (!entry.inWindow) break;
      entry.inWindow = false;
      out.deletes.push(entry.row);
    }
    const fresh = this.#fresh;
    for (const entry of fresh) entry.fresh = false;
    for (const entry of fresh) {
      if (entry.gone) continue;
      if (this.#search(entry) < limit) {
        entry.inWindow = true;
        out.inserts.push(entry.row);
      }
    }
    this.#fresh = [];
  }

  /** Drops the entries past capacity (window rows among them leave the window). */
  #cut(out: QueryDelta): void {
    const kept = this.#kept;
    if (kept.length <= this.#capacity) return;
    for (const entry of kept.splice(this.#capacity)) {
      entry.gone = true;
      if (entry.inWindow) {
        entry.inWindow = false;
        out.deletes.push(entry.row);
      }
    }
    this.#complete = false;
    this.#threshold = kept[kept.length - 1];
  }
}

/** The current rows of a top-N plan, in order (one-off queries). */
export function topNRows(plan: QueryPlan, state: CommittedState): Uint8Array[] {
  const spec = plan.topN!;
  const fragment = plan.fragments[0] as SelectFragment;
  if (fragment.never) return [];
  const order = new TopNOrder(fragment.table, spec);
  const source = new RowSource({ fragment, order, state, spec });
  const { entries } = source.read(undefined, spec.limit, EMPTY_VERSION);
  return entries.slice(0, spec.limit).map((entry) => entry.row);
}

// --- for other code and tests: making and recognising top-N queries --------------------------

/** One ORDER BY column of a generated top-N query. */
export interface TopNOrderItem {
  column: string;
  descending?: boolean;
}

/** The parts of a top-N query (`topNQuery` writes it, `recognizeTopN` reads it back). */
export interface TopNQueryParts {
  table: string;
  /** WHERE text as written (subscription grammar), or none. */
  where?: string;
  orderBy: TopNOrderItem[];
  limit: number;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Writes `SELECT * FROM "t" [WHERE …] ORDER BY "c" [DESC], … LIMIT n`. */
export function topNQuery(parts: TopNQueryParts): string {
  const order = parts.orderBy.map((item) =>
    `${quoteIdent(item.column)}${item.descending ? " DESC" : " ASC"}`
  ).join(", ");
  const where = parts.where === undefined ? "" : ` WHERE ${parts.where}`;
  return `SELECT * FROM ${quoteIdent(parts.table)}${where} ORDER BY ${order} LIMIT ${parts.limit}`;
}

/**
 * The ORDER BY columns (as written) and LIMIT of a subscription-grammar top-N query, or
 * undefined for a query without ORDER BY. Throws SqlError when the text does not parse.
 */
export function recognizeTopN(
  sql: string,
): { table: string; orderBy: TopNOrderItem[]; limit: number } | undefined {
  const statement = parseSubscriptionQuery(sql);
  if (statement.orderBy === undefined) return undefined;
  return {
    table: statement.from.name,
    orderBy: statement.orderBy.map((item) => ({
      column: item.field.column,
      descending: item.descending,
    })),
    limit: Number(statement.limit),
  };
}

/**
 * A reference evaluation for tests and differential checks: the rows of `rows` (one table's,
 * already filtered by the WHERE) in top-N order, cut to the limit.
 */
export function sortTopN(
  table: TableSchema,
  spec: TopNSpecOf,
  rows: Iterable<Uint8Array>,
): Uint8Array[] {
  const order = new TopNOrder(table, spec);
  return [...rows].map((row) => order.entry(row)).sort((a, b) => order.compare(a, b))
    .slice(0, spec.limit).map((entry) => entry.row);
}
