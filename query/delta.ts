/**
 * Transaction deltas and how a plan turns them into result deltas (query-subscriptions.md
 * §2.4, §2.5, §8.4).
 *
 * A single-table fragment's delta is the filtered table delta; the datastore already nets each
 * transaction, so nothing more is needed. A join fragment over instances R1..Rn is multilinear,
 * so with R' = R + ΔR (signed bags, Z-sets) its change is the telescoping sum
 *
 *     ΔV = Σ_k  R1' ⋈ … ⋈ R(k-1)' ⋈ ΔRk ⋈ R(k+1) ⋈ … ⋈ Rn        (new before k, old after k)
 *
 * evaluated from each changed instance's delta outwards through the join conditions, then netted
 * per row value: n > 0 copies are inserts, n < 0 deletes. That is exactly the bag difference
 * V' − V, which is what SpacetimeDB's 4 + 4 fragments produce for two tables; it holds for self
 * joins and for any number of tables. Event tables have no rows at rest (new and old state are
 * empty, their delta is their inserts), which yields SpacetimeDB's "events joined with the
 * pre-transaction partners".
 *
 * When one batch committed several transactions before the deltas are computed, the committed
 * state is already the last one's: `BatchVersions` reconstructs transaction i's post-state as
 * the current state minus the deltas of the later transactions.
 */
import type { TableSchema } from "../storage/mod.ts";
import {
  evaluateJoin,
  type SignedRowFn,
  SignedRows,
  type SignedRowSource,
  type StateReader,
  type Version,
} from "./_join.ts";
import type { RowLayout } from "./_row_decode.ts";
import { type ValueKey, valueKey } from "./_scalar.ts";
import { type Fragment, fragmentMatches, type JoinFragment, layoutOf } from "./plan.ts";
import { bytesToKey } from "./_scalar.ts";
import { SqlError } from "./sql_error.ts";

/** What one query's join delta may still cost for the transaction being evaluated. */
export interface DeltaBudget {
  /** Join tuples it may build (SUBSCRIPTION_DELTA_ROWS_MAX). */
  rowsMax: number;
  rowsLeft: number;
  /**
   * Rows it may look at while joining, filtered out or not (the rows found for every instance
   * after the changed one: SUBSCRIPTION_DELTA_EXAMINED_ROWS_MAX). Absent: not bounded.
   */
  examinedMax?: number;
  examinedLeft?: number;
}

/** A query's delta went over its DeltaBudget (subscriptions.ts drops the query). */
export function deltaLimitError(rowsMax: number): SqlError {
  return new SqlError(
    `The subscription's update exceeded ${rowsMax} rows for one transaction and the ` +
      `subscription was dropped; join on a unique column or add a filter`,
    "limit",
  );
}

/** A query's join looked at more rows than its DeltaBudget allows (the query is dropped). */
export function deltaExaminedLimitError(examinedMax: number): SqlError {
  return new SqlError(
    `The subscription's update looked at more than ${examinedMax} joined rows for one ` +
      `transaction and the subscription was dropped; join on a unique column or filter on ` +
      `the changed table`,
    "limit",
  );
}

/** The net change of one table in one transaction (row bytes; duplicates are multiplicities). */
export interface TableDelta {
  tableId: number;
  inserts: Uint8Array[];
  deletes: Uint8Array[];
}
export interface TxDelta {
  tables: TableDelta[];
}
export interface QueryDelta {
  inserts: Uint8Array[];
  deletes: Uint8Array[];
  /** Set when the query failed for this transaction (no rows then): its subscribers are dropped. */
  error?: string;
}

const EMPTY_VERSION: Version = new Map();

/** The versions of the state that the transactions of one batch saw, built on demand. */
export class BatchVersions {
  readonly #txs: readonly TxDelta[];
  readonly #schema: (tableId: number) => TableSchema | undefined;
  readonly #newVersions = new Map<number, Version>();
  readonly #oldVersions = new Map<number, Version>();
  readonly #deltas = new Map<number, Map<number, SignedRows>>();
  /** Every row the batch changed, per table, tagged with its transaction (made on first use). */
  readonly #batchRows = new Map<number, BatchTableRows | null>();
  #changedTables: Set<number> | undefined;

  constructor(txs: readonly TxDelta[], schema: (tableId: number) => TableSchema | undefined) {
    this.#txs = txs;
    this.#schema = schema;
  }

  /** Transaction i's change of one table as signed rows (inserts +1, deletes -1). */
  delta(i: number, tableId: number): SignedRows | undefined {
    let byTable = this.#deltas.get(i);
    if (byTable === undefined) {
      byTable = new Map();
      for (const table of this.#txs[i].tables) {
        const schema = this.#schema(table.tableId);
        if (schema === undefined) continue;
        const rows = new SignedRows(layoutOf(schema));
        rows.add(table.inserts, 1);
        rows.add(table.deletes, -1);
        byTable.set(table.tableId, rows);
      }
      this.#deltas.set(i, byTable);
    }
    return byTable.get(tableId);
  }

  /** The state right after transaction i: the current state minus later transactions' deltas. */
  after(i: number): Version {
    if (i === this.#txs.length - 1) return EMPTY_VERSION;
    let version = this.#newVersions.get(i);
    if (version === undefined) {
      version = this.#adjusted(i + 1, this.#txs.length);
      this.#newVersions.set(i, version);
    }
    return version;
  }

  /** The state right before transaction i. */
  before(i: number): Version {
    let version = this.#oldVersions.get(i);
    if (version === undefined) {
      version = this.#adjusted(i + 1, this.#txs.length, i);
      this.#oldVersions.set(i, version);
    }
    return version;
  }

  /**
   * Adjustments undoing transactions [from, to) (event tables excepted: they are empty in every
   * state) and, when given, transaction `also` including event tables. Each table's adjustment
   * is a filter over one index of the whole batch's rows, so a version costs O(1) to make and
   * a lookup O(rows with that key), not O(later transactions): a batch of B transactions with
   * a join query touched by most of them would otherwise cost O(B²).
   */
  #adjusted(from: number, to: number, also?: number): Version {
    const out = new Map<number, SignedRowSource>();
    for (const tableId of this.#tableIds()) {
      const rows = this.#rowsOf(tableId);
      if (rows !== null) out.set(tableId, new BatchTail(rows, from, to, also));
    }
    return out;
  }

  /** Every table some transaction of the batch changed. */
  #tableIds(): Set<number> {
    if (this.#changedTables === undefined) {
      this.#changedTables = new Set();
      for (const tx of this.#txs) {
        for (const table of tx.tables) this.#changedTables.add(table.tableId);
      }
    }
    return this.#changedTables;
  }

  #rowsOf(tableId: number): BatchTableRows | null {
    let rows = this.#batchRows.get(tableId);
    if (rows === undefined) {
      const schema = this.#schema(tableId);
      rows = schema === undefined ? null : new BatchTableRows(layoutOf(schema), schema.isEvent);
      if (rows !== null) {
        for (let j = 0; j < this.#txs.length; j++) {
          for (const table of this.#txs[j].tables) {
            if (table.tableId !== tableId) continue;
            rows.add(table.inserts, 1, j);
            rows.add(table.deletes, -1, j);
          }
        }
      }
      this.#batchRows.set(tableId, rows);
    }
    return rows;
  }
}

/** The changed rows of one table over a whole batch: row, delta sign, transaction index. */
class BatchTableRows {
  readonly rows: Uint8Array[] = [];
  readonly signs: number[] = [];
  readonly txs: number[] = [];
  readonly layout: RowLayout;
  readonly isEvent: boolean;
  readonly #byColumn = new Map<number, Map<ValueKey, number[]>>();

  constructor(layout: RowLayout, isEvent: boolean) {
    this.layout = layout;
    this.isEvent = isEvent;
  }

  add(rows: readonly Uint8Array[], sign: number, tx: number): void {
    for (const row of rows) {
      this.rows.push(row);
      this.signs.push(sign);
      this.txs.push(tx);
    }
  }

  /** Entry indexes with `column` = key, in transaction order. */
  matching(column: number, key: ValueKey): readonly number[] | undefined {
    let byKey = this.#byColumn.get(column);
    if (byKey === undefined) {
      byKey = new Map();
      for (let i = 0; i < this.rows.length; i++) {
        const k = valueKey(this.layout.view(this.rows[i]).value(column));
        const list = byKey.get(k);
        if (list === undefined) byKey.set(k, [i]);
        else list.push(i);
      }
      this.#byColumn.set(column, byKey);
    }
    return byKey.get(key);
  }
}

/** Undoes the batch's transactions [from, to) (not event rows) and `also` (event rows too). */
class BatchTail implements SignedRowSource {
  readonly #rows: BatchTableRows;
  readonly #from: number;
  readonly #to: number;
  readonly #also: number;

  constructor(rows: BatchTableRows, from: number, to: number, also: number | undefined) {
    this.#rows = rows;
    this.#from = from;
    this.#to = to;
    this.#also = also ?? -1;
  }

  #includes(tx: number): boolean {
    return tx === this.#also || (!this.#rows.isEvent && tx >= this.#from && tx < this.#to);
  }

  forEach(fn: SignedRowFn): void {
    const rows = this.#rows;
    for (let i = 0; i < rows.rows.length; i++) {
      if (this.#includes(rows.txs[i])) fn(rows.rows[i], -rows.signs[i]);
    }
  }

  match(column: number, key: ValueKey, fn: SignedRowFn): void {
    const hits = this.#rows.matching(column, key);
    if (hits === undefined) return;
    const rows = this.#rows;
    for (const i of hits) if (this.#includes(rows.txs[i])) fn(rows.rows[i], -rows.signs[i]);
  }
}

/** Row value -> net multiplicity, in first-seen order. */
class NetRows {
  readonly #counts = new Map<string, { row: Uint8Array; n: number }>();

  add(row: Uint8Array, sign: number): void {
    const key = bytesToKey(row);
    const entry = this.#counts.get(key);
    if (entry === undefined) this.#counts.set(key, { row, n: sign });
    else entry.n += sign;
  }

  drainInto(out: QueryDelta): void {
    for (const { row, n } of this.#counts.values()) {
      for (let k = 0; k < n; k++) out.inserts.push(row);
      for (let k = 0; k < -n; k++) out.deletes.push(row);
    }
    this.#counts.clear();
  }
}

/** A join fragment's netted change for transaction `i` of a batch, appended to `out`. */
export function joinFragmentDelta(
  fragment: JoinFragment,
  reader: StateReader,
  versions: BatchVersions,
  i: number,
  out: QueryDelta,
  budget?: DeltaBudget,
): void {
  if (fragment.never) return;
  const net = new NetRows();
  const emit = budget === undefined
    ? (row: Uint8Array, sign: number) => net.add(row, sign)
    : (row: Uint8Array, sign: number) => {
      // Every tuple counts, also those netting out: they cost the same time to build.
      if (--budget.rowsLeft < 0) throw deltaLimitError(budget.rowsMax);
      net.add(row, sign);
    };
  // Joined rows a later filter throws away cost time too: a join whose filter rejects nearly
  // everything would otherwise run unbounded inside one transaction.
  const lookedAt = budget?.examinedLeft === undefined ? undefined : () => {
    if (--budget.examinedLeft! < 0) throw deltaExaminedLimitError(budget.examinedMax!);
  };
  const after = versions.after(i);
  const instances = fragment.instances;
  for (let k = 0; k < instances.length; k++) {
    const rows = versions.delta(i, instances[k].table.tableId);
    if (rows === undefined || rows.size === 0) continue;
    let before: Version | undefined;
    const versionOf = (instance: number) => instance < k ? after : (before ??= versions.before(i));
    evaluateJoin(fragment, reader, k, { kind: "rows", rows }, versionOf, emit, lookedAt);
  }
  net.drainInto(out);
}

/** A fragment's change for transaction `i` of a batch, appended to `out`. */
export function fragmentDelta(
  fragment: Fragment,
  reader: StateReader,
  versions: BatchVersions,
  txs: readonly TxDelta[],
  i: number,
  out: QueryDelta,
  budget?: DeltaBudget,
): void {
  if (fragment.kind === "join") {
    joinFragmentDelta(fragment, reader, versions, i, out, budget);
    return;
  }
  if (fragment.never) return;
  for (const table of txs[i].tables) {
    if (table.tableId !== fragment.table.tableId) continue;
    for (const row of table.inserts) if (fragmentMatches(fragment, row)) out.inserts.push(row);
    for (const row of table.deletes) if (fragmentMatches(fragment, row)) out.deletes.push(row);
  }
}
