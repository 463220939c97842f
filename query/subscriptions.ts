/**
 * The subscription index of one database: every live query once, shared by all subscribers
 * with the same plan, and routed by table and by `column = constant` conjuncts so that a
 * transaction only evaluates the queries its changed rows can affect (§8.3). Runs inside the
 * database worker, synchronously after each commit.
 */
import { assert } from "../lib/assert.ts";
import type { QueryContext } from "./check.ts";
import type { QueryDelta, TxDelta } from "./delta.ts";
import { type CommittedState, compileSubscriptionQuery, executePlan } from "./execute.ts";
import type { QueryPlan, SelectFragment } from "./plan.ts";
import type { RowView } from "./_row_decode.ts";
import { type ValueKey, valueKey } from "./_scalar.ts";

export interface RegisteredQuery {
  /** Shared by every registration with the same plan; pass it to `release()` once per register. */
  queryId: number;
  tableId: number;
  /** Canonical name of the returned table (the name clients see in row lists). */
  tableName: string;
  /** Event tables: send inserts as `EventTable` rows; they have no initial rows. */
  isEvent: boolean;
  /** The current rows, with multiplicity. */
  initialRows: Uint8Array[];
}

interface Entry {
  queryId: number;
  plan: QueryPlan;
  fragment: SelectFragment;
  refCount: number;
  /** Routed under `eq[column][key]`, or in `rest` when column is -1; not routed when `never`. */
  routeColumn: number;
  routeKey: ValueKey;
}

interface TableRoutes {
  eq: Map<number, Map<ValueKey, Set<Entry>>>;
  rest: Set<Entry>;
  entryCount: number;
}

export class SubscriptionIndex {
  readonly #state: CommittedState;
  readonly #byId = new Map<number, Entry>();
  readonly #byKey = new Map<string, Entry>();
  readonly #routes = new Map<number, TableRoutes>();
  #nextQueryId = 1;
  #predicateCalls = 0;

  constructor(state: CommittedState) {
    this.#state = state;
  }

  /** Live queries (distinct plans). */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Compiles `sql` for the caller, registers it (or takes one more reference on an identical
   * live query) and returns its current rows. Throws SqlError; registers nothing then.
   * Call between commits, so that the rows and later deltas line up.
   */
  register(sql: string, context: QueryContext): RegisteredQuery {
    return this.registerPlan(compileSubscriptionQuery(sql, this.#state, context));
  }

  /** `register()` for a plan compiled by the caller. */
  registerPlan(plan: QueryPlan): RegisteredQuery {
    let entry = this.#byKey.get(plan.key);
    if (entry === undefined) {
      assert(plan.fragments.length === 1, "Only single-fragment plans are supported");
      entry = {
        queryId: this.#nextQueryId++,
        plan,
        fragment: plan.fragments[0],
        refCount: 0,
        routeColumn: -1,
        routeKey: 0,
      };
      this.#byKey.set(plan.key, entry);
      this.#byId.set(entry.queryId, entry);
      this.#route(entry);
    }
    entry.refCount++;
    const table = entry.plan.returnTable;
    return {
      queryId: entry.queryId,
      tableId: table.tableId,
      tableName: table.name,
      isEvent: table.isEvent,
      initialRows: executePlan(entry.plan, this.#state),
    };
  }

  /** Drops one reference; the query stops being evaluated at zero. Returns true if it was dropped. */
  release(queryId: number): boolean {
    const entry = this.#byId.get(queryId);
    if (entry === undefined) throw new RangeError(`No live query with id ${queryId}`);
    if (--entry.refCount > 0) return false;
    this.#byId.delete(queryId);
    this.#byKey.delete(entry.plan.key);
    this.#unroute(entry);
    return true;
  }

  /** The current rows of a live query (UnsubscribeApplied with SendDroppedRows). */
  currentRows(queryId: number): Uint8Array[] {
    const entry = this.#byId.get(queryId);
    if (entry === undefined) throw new RangeError(`No live query with id ${queryId}`);
    return executePlan(entry.plan, this.#state);
  }

  /** Predicate evaluations done by the last `onCommit()` (routing effectiveness, for tests). */
  get lastCommitPredicateCalls(): number {
    return this.#predicateCalls;
  }

  plan(queryId: number): QueryPlan | undefined {
    return this.#byId.get(queryId)?.plan;
  }

  #route(entry: Entry): void {
    const fragment = entry.fragment;
    if (fragment.never) return;
    const tableId = fragment.table.tableId;
    let routes = this.#routes.get(tableId);
    if (routes === undefined) {
      routes = { eq: new Map(), rest: new Set(), entryCount: 0 };
      this.#routes.set(tableId, routes);
    }
    routes.entryCount++;
    const eq = fragment.equalities[0];
    if (eq === undefined) {
      routes.rest.add(entry);
      return;
    }
    entry.routeColumn = eq.column;
    entry.routeKey = eq.key;
    let byValue = routes.eq.get(eq.column);
    if (byValue === undefined) {
      byValue = new Map();
      routes.eq.set(eq.column, byValue);
    }
    let entries = byValue.get(eq.key);
    if (entries === undefined) {
      entries = new Set();
      byValue.set(eq.key, entries);
    }
    entries.add(entry);
  }

  #unroute(entry: Entry): void {
    const fragment = entry.fragment;
    if (fragment.never) return;
    const tableId = fragment.table.tableId;
    const routes = this.#routes.get(tableId);
    assert(routes !== undefined, "Routed query without table routes");
    if (entry.routeColumn < 0) routes.rest.delete(entry);
    else {
      const byValue = routes.eq.get(entry.routeColumn)!;
      const entries = byValue.get(entry.routeKey)!;
      entries.delete(entry);
      if (entries.size === 0) byValue.delete(entry.routeKey);
      if (byValue.size === 0) routes.eq.delete(entry.routeColumn);
    }
    if (--routes.entryCount === 0) this.#routes.delete(tableId);
  }

  /**
   * The result deltas of one committed transaction, for the queries whose results changed.
   * `delta` is the transaction's net per-table change; row order and multiplicity are kept.
   */
  onCommit(delta: TxDelta): Map<number, QueryDelta> {
    const out = new Map<number, QueryDelta>();
    this.#predicateCalls = 0;
    for (const table of delta.tables) {
      const routes = this.#routes.get(table.tableId);
      if (routes === undefined) continue;
      if (table.inserts.length > 0) this.#visitRows(routes, table.inserts, true, out);
      if (table.deletes.length > 0) this.#visitRows(routes, table.deletes, false, out);
    }
    return out;
  }

  #visitRows(
    routes: TableRoutes,
    rows: readonly Uint8Array[],
    inserted: boolean,
    out: Map<number, QueryDelta>,
  ): void {
    const emit = (entry: Entry, row: Uint8Array) => {
      let result = out.get(entry.queryId);
      if (result === undefined) {
        result = { inserts: [], deletes: [] };
        out.set(entry.queryId, result);
      }
      (inserted ? result.inserts : result.deletes).push(row);
    };
    const matches = (entry: Entry, view: RowView) => {
      const predicate = entry.fragment.predicate;
      if (predicate === undefined) return true;
      this.#predicateCalls++;
      return predicate(view);
    };
    let layout = undefined;
    for (const row of rows) {
      if (layout === undefined) {
        const any = routes.rest.values().next().value ?? firstEqEntry(routes);
        layout = any!.fragment.layout;
      }
      const view = layout.view(row);
      for (const [column, byValue] of routes.eq) {
        const entries = byValue.get(valueKey(view.value(column)));
        if (entries === undefined) continue;
        for (const entry of entries) if (matches(entry, view)) emit(entry, row);
      }
      for (const entry of routes.rest) if (matches(entry, view)) emit(entry, row);
    }
  }
}

function firstEqEntry(routes: TableRoutes): Entry | undefined {
  for (const byValue of routes.eq.values()) {
    for (const entries of byValue.values()) {
      for (const entry of entries) return entry;
    }
  }
  return undefined;
}
