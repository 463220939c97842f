/**
 * The subscription index of one database: every live query once, shared by all subscribers
 * with the same plan, and routed so that a transaction only evaluates the queries its changed
 * rows can affect (query-subscriptions.md §8.3). Runs inside the database worker, synchronously
 * after each commit.
 *
 * Routing, per table: a query reading the table through an instance with a `column = constant`
 * conjunct is filed under (column, constant); so is a join instance whose join column equals a
 * column the other instance fixes (`... JOIN u ON t.a = u.b WHERE u.b = 5` files t under
 * a = 5). Everything else is in the table's `rest` set. A changed row looks up its own column
 * values, so 10,000 `WHERE id = k` queries cost one map lookup per changed row, not 10,000
 * predicate calls. Routing is a filter: a join query found this way is then evaluated over the
 * whole transaction delta (`delta.ts`).
 *
 * Join columns with no single-column storage index get an auxiliary hash index here, kept up
 * to date from every commit, so that a delta probes the other side in O(matches).
 */
import { assert } from "../lib/assert.ts";
import type { TableSchema } from "../storage/mod.ts";
import type { QueryContext } from "./check.ts";
import {
  SUBSCRIPTION_DELTA_EXAMINED_ROWS_MAX,
  SUBSCRIPTION_DELTA_ROWS_MAX,
} from "../lib/limits.ts";
import {
  BatchVersions,
  type DeltaBudget,
  fragmentDelta,
  type QueryDelta,
  type TxDelta,
} from "./delta.ts";
import {
  type CommittedState,
  compileSubscriptionQuery,
  type EvaluationLimits,
  executePlan,
} from "./execute.ts";
import { type AuxLookup, CURRENT, hashRows, SignedRows, StateReader } from "./_join.ts";
import { type Fragment, layoutOf, type QueryPlan, type SelectFragment } from "./plan.ts";
import type { RowLayout, RowView } from "./_row_decode.ts";
import { bytesToKey, type Comparable, type ValueKey, valueKey } from "./_scalar.ts";
import { TopNWindow } from "./topn.ts";
import { SqlError } from "./sql_error.ts";

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

/**
 * Where one entry is filed for one table: under `eq[column][key]`, in the table's `rest` set
 * (column -1), or under an edge's `byValue[key]` (column -2).
 */
interface Route {
  tableId: number;
  column: number;
  key: ValueKey;
  edge?: EdgeRoute;
}

/**
 * Join-edge routing (§2.10, §8.3): queries reading table T through an instance joined on
 * `T.myColumn = U.otherJoinColumn`, where U's instance fixes `U.otherColumn = constant` and
 * `U.otherJoinColumn` is unique. A changed T row finds its U partner (in any state the batch
 * went through), reads `otherColumn` and reaches only the queries filed under that value.
 */
interface EdgeRoute {
  id: string;
  myColumn: number;
  other: TableSchema;
  otherJoinColumn: number;
  otherColumn: number;
  byValue: Map<ValueKey, Set<Entry>>;
}

interface Entry {
  queryId: number;
  plan: QueryPlan;
  /** Set for the common single-table plan: matched row by row while routing. */
  select: SelectFragment | undefined;
  refCount: number;
  routes: Route[];
  /** Auxiliary indexes this entry holds a reference on. */
  aux: { tableId: number; column: number }[];
  /** The shared window of a top-N query (topn.ts). */
  window: TopNWindow | undefined;
  /** Why a transaction's delta failed: the query is no longer evaluated (its owner drops it). */
  failed?: string;
}

/** What routing one `onCommits()` batch needs besides the deltas; made on first use. */
interface BatchContext {
  txs: readonly TxDelta[];
  reader?: StateReader;
  /** Every row of a table that the batch inserted or deleted (edge partners). */
  rows?: Map<number, SignedRows>;
  /**
   * Per edge, the queries a join value reaches. Partners are looked up in every state of the
   * batch at once, so the answer holds for the whole batch: an updated row (deleted and
   * inserted with the same join value) or a row several transactions touch looks it up once.
   */
  edgeHits?: Map<EdgeRoute, Map<ValueKey, Entry[]>>;
}

interface TableRoutes {
  layout: RowLayout;
  eq: Map<number, Map<ValueKey, Set<Entry>>>;
  edges: Map<string, EdgeRoute>;
  rest: Set<Entry>;
  routeCount: number;
}

/** Hash indexes on (table, column), reference-counted by the live queries that need them. */
class AuxIndexes implements AuxLookup {
  readonly #tables = new Map<
    number,
    Map<number, { refs: number; hash: Map<ValueKey, Uint8Array[]>; schema: TableSchema }>
  >();

  acquire(schema: TableSchema, column: number, state: CommittedState): void {
    let columns = this.#tables.get(schema.tableId);
    if (columns === undefined) this.#tables.set(schema.tableId, columns = new Map());
    const aux = columns.get(column);
    if (aux !== undefined) {
      aux.refs++;
      return;
    }
    const hash = hashRows(state.committedRows(schema.tableId), schema, column);
    columns.set(column, { refs: 1, hash, schema });
  }

  release(tableId: number, column: number): void {
    const columns = this.#tables.get(tableId)!;
    const aux = columns.get(column)!;
    if (--aux.refs > 0) return;
    columns.delete(column);
    if (columns.size === 0) this.#tables.delete(tableId);
  }

  match(tableId: number, column: number, key: ValueKey): readonly Uint8Array[] | undefined {
    const aux = this.#tables.get(tableId)?.get(column);
    if (aux === undefined) return undefined;
    return aux.hash.get(key) ?? [];
  }

  /** Brings the hashes to the state after `delta`. */
  apply(delta: TxDelta): void {
    if (this.#tables.size === 0) return;
    for (const table of delta.tables) {
      const columns = this.#tables.get(table.tableId);
      if (columns === undefined) continue;
      for (const [column, aux] of columns) {
        const layout = layoutOf(aux.schema);
        for (const row of table.deletes) {
          const key = valueKey(layout.view(row).value(column));
          const list = aux.hash.get(key);
          assert(list !== undefined, "Auxiliary index lost a row");
          const rowKey = bytesToKey(row);
          const at = list.findIndex((r) => r.length === row.length && bytesToKey(r) === rowKey);
          assert(at >= 0, "Auxiliary index lost a row");
          list[at] = list[list.length - 1];
          list.pop();
          if (list.length === 0) aux.hash.delete(key);
        }
        for (const row of table.inserts) {
          const key = valueKey(layout.view(row).value(column));
          const list = aux.hash.get(key);
          if (list === undefined) aux.hash.set(key, [row]);
          else list.push(row);
        }
      }
    }
  }
}

export class SubscriptionIndex {
  readonly #state: CommittedState;
  readonly #byId = new Map<number, Entry>();
  readonly #byKey = new Map<string, Entry>();
  readonly #routes = new Map<number, TableRoutes>();
  readonly #aux = new AuxIndexes();
  #nextQueryId = 1;
  #predicateCalls = 0;
  #evaluations = 0;
  /** The transactions being routed by `onCommits()`, for join-edge partner lookups. */
  #batch: BatchContext | undefined;
  readonly #deltaRowsMax: number;
  readonly #deltaExaminedRowsMax: number;

  /**
   * `deltaRowsMax`: join tuples one query's delta may produce per transaction;
   * `deltaExaminedRowsMax`: rows its joins may look at meanwhile, filtered out or not.
   */
  constructor(
    state: CommittedState,
    options: { deltaRowsMax?: number; deltaExaminedRowsMax?: number } = {},
  ) {
    this.#state = state;
    this.#deltaRowsMax = options.deltaRowsMax ?? SUBSCRIPTION_DELTA_ROWS_MAX;
    this.#deltaExaminedRowsMax = options.deltaExaminedRowsMax ??
      SUBSCRIPTION_DELTA_EXAMINED_ROWS_MAX;
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

  /** Whether a live query with this plan key exists (a new subscriber shares it). */
  hasPlan(key: string): boolean {
    return this.#byKey.has(key);
  }

  /**
   * `register()` for a plan compiled by the caller; `limits` bound the evaluation of its
   * current rows (a failure registers nothing).
   */
  registerPlan(plan: QueryPlan, limits?: EvaluationLimits): RegisteredQuery {
    let entry = this.#byKey.get(plan.key);
    if (entry === undefined) {
      const only = plan.fragments.length === 1 ? plan.fragments[0] : undefined;
      const created: Entry = {
        queryId: this.#nextQueryId++,
        plan,
        select: only?.kind === "select" && plan.topN === undefined ? only : undefined,
        refCount: 0,
        routes: [],
        aux: [],
        window: plan.topN === undefined ? undefined : new TopNWindow(plan, this.#state),
      };
      this.#byKey.set(plan.key, created);
      this.#byId.set(created.queryId, created);
      this.#route(created);
      this.#acquireAux(created);
      entry = created;
    }
    entry.refCount++;
    const table = entry.plan.returnTable;
    let initialRows: Uint8Array[];
    try {
      initialRows = entry.window?.rows() ??
        executePlan(entry.plan, this.#state, this.#aux, limits);
    } catch (error) {
      this.release(entry.queryId);
      throw error;
    }
    return {
      queryId: entry.queryId,
      tableId: table.tableId,
      tableName: table.name,
      isEvent: table.isEvent,
      initialRows,
    };
  }

  /** Drops one reference; the query stops being evaluated at zero. Returns true if it was dropped. */
  release(queryId: number): boolean {
    const entry = this.#byId.get(queryId);
    if (entry === undefined) throw new RangeError(`No live query with id ${queryId}`);
    if (--entry.refCount > 0) return false;
    this.#byId.delete(queryId);
    if (this.#byKey.get(entry.plan.key) === entry) this.#byKey.delete(entry.plan.key);
    this.#unroute(entry);
    for (const { tableId, column } of entry.aux) this.#aux.release(tableId, column);
    return true;
  }

  /** The current rows of a live query (UnsubscribeApplied with SendDroppedRows). */
  currentRows(queryId: number): Uint8Array[] {
    const entry = this.#byId.get(queryId);
    if (entry === undefined) throw new RangeError(`No live query with id ${queryId}`);
    return entry.window?.rows() ?? executePlan(entry.plan, this.#state, this.#aux);
  }

  /** The window of a live top-N query (tests and measurements). */
  window(queryId: number): TopNWindow | undefined {
    return this.#byId.get(queryId)?.window;
  }

  /** Predicate evaluations done by the last `onCommit()` (routing effectiveness, for tests). */
  get lastCommitPredicateCalls(): number {
    return this.#predicateCalls;
  }

  /** Join (or multi-fragment) queries evaluated by the last `onCommit()` (for tests). */
  get lastCommitEvaluations(): number {
    return this.#evaluations;
  }

  plan(queryId: number): QueryPlan | undefined {
    return this.#byId.get(queryId)?.plan;
  }

  #tableRoutes(schema: TableSchema): TableRoutes {
    let routes = this.#routes.get(schema.tableId);
    if (routes === undefined) {
      routes = {
        layout: layoutOf(schema),
        eq: new Map(),
        edges: new Map(),
        rest: new Set(),
        routeCount: 0,
      };
      this.#routes.set(schema.tableId, routes);
    }
    return routes;
  }

  #addRoute(
    entry: Entry,
    schema: TableSchema,
    column: number,
    key: ValueKey,
    edge?: Omit<EdgeRoute, "id" | "byValue">,
  ): void {
    if (entry.routes.some((r) => r.tableId === schema.tableId && r.column === -1)) return;
    if (column < 0) {
      // A query in `rest` needs no eq routes on the same table.
      for (const route of entry.routes.filter((r) => r.tableId === schema.tableId)) {
        this.#removeRoute(entry, route);
      }
      entry.routes = entry.routes.filter((r) => r.tableId !== schema.tableId);
    }
    const routes = this.#tableRoutes(schema);
    let edgeRoute: EdgeRoute | undefined;
    if (edge !== undefined) {
      const id =
        `${edge.myColumn}:${edge.other.tableId}:${edge.otherJoinColumn}:${edge.otherColumn}`;
      edgeRoute = routes.edges.get(id);
      if (edgeRoute === undefined) {
        routes.edges.set(id, edgeRoute = { ...edge, id, byValue: new Map() });
      }
      let entries = edgeRoute.byValue.get(key);
      if (entries === undefined) edgeRoute.byValue.set(key, entries = new Set());
      if (entries.has(entry)) return;
      entries.add(entry);
    } else if (column >= 0) {
      let byValue = routes.eq.get(column);
      if (byValue === undefined) routes.eq.set(column, byValue = new Map());
      let entries = byValue.get(key);
      if (entries === undefined) byValue.set(key, entries = new Set());
      if (entries.has(entry)) return;
      entries.add(entry);
    } else routes.rest.add(entry);
    routes.routeCount++;
    entry.routes.push({ tableId: schema.tableId, column, key, edge: edgeRoute });
  }

  #removeRoute(entry: Entry, route: Route): void {
    const routes = this.#routes.get(route.tableId);
    assert(routes !== undefined, "Routed query without table routes");
    if (route.edge !== undefined) {
      const entries = route.edge.byValue.get(route.key)!;
      entries.delete(entry);
      if (entries.size === 0) route.edge.byValue.delete(route.key);
      if (route.edge.byValue.size === 0) routes.edges.delete(route.edge.id);
    } else if (route.column < 0) routes.rest.delete(entry);
    else {
      const byValue = routes.eq.get(route.column)!;
      const entries = byValue.get(route.key)!;
      entries.delete(entry);
      if (entries.size === 0) byValue.delete(route.key);
      if (byValue.size === 0) routes.eq.delete(route.column);
    }
    if (--routes.routeCount === 0) this.#routes.delete(route.tableId);
  }

  #route(entry: Entry): void {
    for (const fragment of entry.plan.fragments) this.#routeFragment(entry, fragment);
  }

  #routeFragment(entry: Entry, fragment: Fragment): void {
    if (fragment.never) return;
    if (fragment.kind === "select") {
      const eq = fragment.equalities[0];
      this.#addRoute(entry, fragment.table, eq?.column ?? -1, eq?.key ?? 0);
      return;
    }
    fragment.instances.forEach((instance, i) => {
      const eq = instance.equalities[0];
      if (eq !== undefined) {
        this.#addRoute(entry, instance.table, eq.column, eq.key);
        return;
      }
      // An instance joined on a column that the other side fixes to a constant.
      for (const c of fragment.conditions) {
        const [mine, other] = c.left.instance === i
          ? [c.left, c.right]
          : c.right.instance === i
          ? [c.right, c.left]
          : [undefined, undefined];
        if (mine === undefined || other.instance === i) continue;
        const fixed = fragment.instances[other.instance].equalities.find((e) =>
          e.column === other.column
        );
        if (fixed !== undefined) {
          this.#addRoute(entry, instance.table, mine.column, fixed.key);
          return;
        }
      }
      // An instance joined on a unique column of another instance that fixes some column.
      for (const c of fragment.conditions) {
        const [mine, other] = c.left.instance === i
          ? [c.left, c.right]
          : c.right.instance === i
          ? [c.right, c.left]
          : [undefined, undefined];
        if (mine === undefined || other.instance === i) continue;
        const otherInstance = fragment.instances[other.instance];
        const fixed = otherInstance.equalities[0];
        const unique = otherInstance.table.indexes.some((index) =>
          index.unique && index.columns.length === 1 && index.columns[0] === other.column
        );
        if (fixed !== undefined && unique) {
          this.#addRoute(entry, instance.table, -2, fixed.key, {
            myColumn: mine.column,
            other: otherInstance.table,
            otherJoinColumn: other.column,
            otherColumn: fixed.column,
          });
          return;
        }
      }
      this.#addRoute(entry, instance.table, -1, 0);
    });
  }

  #unroute(entry: Entry): void {
    for (const route of entry.routes) this.#removeRoute(entry, route);
    entry.routes = [];
  }

  /** Join columns without a single-column storage index get an auxiliary hash index. */
  #acquireAux(entry: Entry): void {
    const indexed = (schema: TableSchema, column: number) =>
      this.#state.committedIndexPoint !== undefined &&
      schema.indexes.some((index) =>
        index.algorithm !== "direct" && index.columns.length === 1 && index.columns[0] === column
      );
    for (const fragment of entry.plan.fragments) {
      if (fragment.kind !== "join" || fragment.never) continue;
      for (const c of fragment.conditions) {
        for (const side of [c.left, c.right]) {
          const schema = fragment.instances[side.instance].table;
          if (schema.isEvent || indexed(schema, side.column)) continue;
          if (entry.aux.some((a) => a.tableId === schema.tableId && a.column === side.column)) {
            continue;
          }
          this.#aux.acquire(schema, side.column, this.#state);
          entry.aux.push({ tableId: schema.tableId, column: side.column });
        }
      }
    }
  }

  /**
   * The result deltas of one committed transaction, for the queries whose results changed.
   * `delta` is the transaction's net per-table change; row order and multiplicity are kept.
   */
  onCommit(delta: TxDelta): Map<number, QueryDelta> {
    return this.onCommits([delta])[0];
  }

  /**
   * The result deltas of several transactions committed one after the other since the last
   * call (the committed state is already the last one's), one map per transaction. A query
   * whose delta goes over `deltaRowsMax` gets `{error}` instead of rows in that transaction's
   * map and is not evaluated again (nor shared with new subscribers); the caller releases it.
   */
  onCommits(txs: readonly TxDelta[]): Map<number, QueryDelta>[] {
    this.#predicateCalls = 0;
    this.#evaluations = 0;
    for (const tx of txs) this.#aux.apply(tx);
    const results: Map<number, QueryDelta>[] = [];
    let versions: BatchVersions | undefined;
    this.#batch = { txs };
    for (let i = 0; i < txs.length; i++) {
      const out = new Map<number, QueryDelta>();
      const candidates = new Set<Entry>();
      for (const table of txs[i].tables) {
        const routes = this.#routes.get(table.tableId);
        if (routes === undefined) continue;
        if (table.inserts.length > 0) this.#visitRows(routes, table.inserts, true, out, candidates);
        if (table.deletes.length > 0) {
          this.#visitRows(routes, table.deletes, false, out, candidates);
        }
      }
      for (const entry of candidates) {
        if (entry.failed !== undefined) continue;
        versions ??= new BatchVersions(txs, (tableId) => this.#state.schema(tableId));
        this.#evaluations++;
        const result: QueryDelta = { inserts: [], deletes: [] };
        if (entry.window !== undefined) {
          const batchVersions = versions;
          entry.window.apply(txs[i], () => batchVersions.after(i), result);
        } else {
          const budget: DeltaBudget = {
            rowsMax: this.#deltaRowsMax,
            rowsLeft: this.#deltaRowsMax,
            examinedMax: this.#deltaExaminedRowsMax,
            examinedLeft: this.#deltaExaminedRowsMax,
          };
          try {
            for (const fragment of entry.plan.fragments) {
              fragmentDelta(fragment, this.#reader(), versions, txs, i, result, budget);
            }
          } catch (error) {
            if (!(error instanceof SqlError) || error.code !== "limit") throw error;
            entry.failed = error.message;
            if (this.#byKey.get(entry.plan.key) === entry) this.#byKey.delete(entry.plan.key);
            out.set(entry.queryId, { inserts: [], deletes: [], error: error.message });
            continue;
          }
        }
        if (result.inserts.length > 0 || result.deletes.length > 0) out.set(entry.queryId, result);
      }
      results.push(out);
    }
    this.#batch = undefined;
    return results;
  }

  /** The current batch's state reader (made on first use: most batches need none). */
  #reader(): StateReader {
    const batch = this.#batch!;
    return batch.reader ??= new StateReader(this.#state, this.#aux);
  }

  /** Rows of `table` with `column` = `value` in any state the current batch went through. */
  #partners(table: TableSchema, column: number, value: Comparable, fn: (row: Uint8Array) => void) {
    const batch = this.#batch!;
    this.#reader().match(table, column, value, CURRENT, fn);
    batch.rows ??= new Map();
    let rows = batch.rows.get(table.tableId);
    if (rows === undefined) {
      rows = new SignedRows(layoutOf(table));
      for (const tx of batch.txs) {
        for (const t of tx.tables) {
          if (t.tableId !== table.tableId) continue;
          rows.add(t.inserts, 1);
          rows.add(t.deletes, 1);
        }
      }
      batch.rows.set(table.tableId, rows);
    }
    rows.match(column, valueKey(value), fn);
  }

  /** The queries that `edge` files under the partners of join value `value` (see BatchContext). */
  #edgeHits(edge: EdgeRoute, value: Comparable): Entry[] {
    const batch = this.#batch!;
    batch.edgeHits ??= new Map();
    let byValue = batch.edgeHits.get(edge);
    if (byValue === undefined) batch.edgeHits.set(edge, byValue = new Map());
    const key = valueKey(value);
    let hits = byValue.get(key);
    if (hits === undefined) {
      const found: Entry[] = [];
      const otherLayout = layoutOf(edge.other);
      this.#partners(edge.other, edge.otherJoinColumn, value, (partner) => {
        const entries = edge.byValue.get(
          valueKey(otherLayout.view(partner).value(edge.otherColumn)),
        );
        if (entries !== undefined) { for (const entry of entries) found.push(entry); }
      });
      byValue.set(key, hits = found);
    }
    return hits;
  }

  #visitRows(
    routes: TableRoutes,
    rows: readonly Uint8Array[],
    inserted: boolean,
    out: Map<number, QueryDelta>,
    candidates: Set<Entry>,
  ): void {
    const layout = routes.layout;
    const eq = routes.eq;
    const edges = routes.edges;
    const rest = routes.rest;
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r];
      const view = layout.view(row);
      for (const [column, byValue] of eq) {
        const entries = byValue.get(valueKey(view.value(column)));
        if (entries === undefined) continue;
        for (const entry of entries) this.#visit(entry, view, row, inserted, out, candidates);
      }
      if (edges.size > 0) {
        for (const edge of edges.values()) {
          for (const entry of this.#edgeHits(edge, view.value(edge.myColumn))) {
            candidates.add(entry);
          }
        }
      }
      for (const entry of rest) this.#visit(entry, view, row, inserted, out, candidates);
    }
  }

  /** A single-table query emits the row if it matches; any other becomes a candidate. */
  #visit(
    entry: Entry,
    view: RowView,
    row: Uint8Array,
    inserted: boolean,
    out: Map<number, QueryDelta>,
    candidates: Set<Entry>,
  ): void {
    const select = entry.select;
    if (select === undefined) {
      candidates.add(entry);
      return;
    }
    if (select.predicate !== undefined) {
      this.#predicateCalls++;
      if (!select.predicate(view)) return;
    }
    let result = out.get(entry.queryId);
    if (result === undefined) {
      result = { inserts: [], deletes: [] };
      out.set(entry.queryId, result);
    }
    (inserted ? result.inserts : result.deletes).push(row);
  }
}
