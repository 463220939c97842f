/**
 * What a query sees for one caller: the datastore's tables plus the views, where naming a view
 * materializes the caller's instance of it (worker/views.ts), and the module's row-level
 * security applied to every query of a caller other than the owner (query/rls.ts). Used by
 * subscriptions and one-off queries (ViewCatalog) and by `/sql` (viewAwareSqlState).
 */
import {
  type CheckedSelect,
  type CommittedState,
  compileWithRls,
  type QueryContext,
  type QueryPlan,
  type SqlState,
} from "../query/mod.ts";
import type { TableSchema } from "../storage/mod.ts";
import type { DatabaseEngine } from "./engine.ts";
import { isViewTableId } from "./views.ts";

/** The catalog of one request: resolves names for `context` and compiles its queries. */
export interface CallerCatalog extends CommittedState {
  /**
   * Parse, check and plan a subscription-grammar query: one plan per RLS fragment, each planned
   * by `plan` (default: the subscription planner).
   */
  compile(sql: string, plan?: (checked: CheckedSelect) => QueryPlan): QueryPlan[];
  /** Drops the view instances this request materialized that no live query reads. */
  dropUnused(): void;
}

export class ViewCatalog {
  readonly #engine: DatabaseEngine;
  readonly #state: CommittedState;

  constructor(engine: DatabaseEngine, state: CommittedState) {
    this.#engine = engine;
    this.#state = state;
  }

  /** `source`: the client source new view instances are charged to (worker/views.ts). */
  forCaller(context: QueryContext, source?: string): CallerCatalog {
    const engine = this.#engine;
    const state = this.#state;
    const views = engine.views;
    const touched: number[] = [];
    const catalog: CallerCatalog = {
      ...state,
      tableIdFromName(name) {
        const tableId = state.tableIdFromName(name);
        if (tableId !== undefined) return tableId;
        const view = views.viewNamed(name);
        if (view === undefined || (!view.isPublic && !context.isOwner)) return undefined;
        const schema = engine.materializeView(view, context.sender, source);
        touched.push(schema.tableId);
        return schema.tableId;
      },
      tables(): TableSchema[] {
        return [...(state.tables?.() ?? []), ...views.declaredSchemas()];
      },
      compile: (sql, plan) => compileWithRls(sql, catalog, context, engine.rlsRules, plan),
      dropUnused() {
        for (const tableId of touched) views.dropIfUnused(tableId);
        touched.length = 0;
      },
    };
    return catalog;
  }

  /** The view instance tables a plan reads. */
  viewTablesOf(plan: QueryPlan): number[] {
    const out = new Set<number>();
    if (isViewTableId(plan.returnTable.tableId)) out.add(plan.returnTable.tableId);
    for (const fragment of plan.fragments) {
      // A select fragment reads `table`; a join fragment (when joins exist) its `instances`.
      const shape = fragment as { table?: TableSchema; instances?: { table: TableSchema }[] };
      const tables = [shape.table, ...(shape.instances ?? []).map((instance) => instance.table)];
      for (const table of tables) {
        if (table !== undefined && isViewTableId(table.tableId)) out.add(table.tableId);
      }
    }
    return [...out];
  }
}

/**
 * `/sql`'s state for one caller: naming a view materializes the caller's instance, whose rows
 * it then reads. Call `dropUnused()` after the statement.
 */
export function viewAwareSqlState(
  engine: DatabaseEngine,
  state: SqlState,
  context: QueryContext,
): SqlState & { dropUnused(): void } {
  const views = engine.views;
  const touched: number[] = [];
  return {
    ...state,
    tableIdFromName(name) {
      const tableId = state.tableIdFromName(name);
      if (tableId !== undefined) return tableId;
      const view = views.viewNamed(name);
      if (view === undefined || (!view.isPublic && !context.isOwner)) return undefined;
      const schema = engine.materializeView(view, context.sender);
      touched.push(schema.tableId);
      return schema.tableId;
    },
    schema: (tableId) => views.schema(tableId) ?? state.schema(tableId),
    rows: (tableId) =>
      views.schema(tableId) !== undefined ? views.rows(tableId) : state.rows(tableId),
    rowCount: (tableId) =>
      views.schema(tableId) !== undefined ? views.rows(tableId).length : state.rowCount(tableId),
    dropUnused() {
      for (const tableId of touched) views.dropIfUnused(tableId);
      touched.length = 0;
    },
  };
}
