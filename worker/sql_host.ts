/**
 * Worker side of `/sql` (and the PostgreSQL wire protocol): one statement of the /sql grammar
 * against the database's committed state. A SELECT reads between transactions; INSERT,
 * UPDATE, DELETE and SET run as a transaction of their own through the engine, so they are
 * logged, made durable and broadcast to subscribers like a reducer's commit (the batch loop in
 * worker_main.ts takes the commit with the engine's other commits).
 */
import {
  checkRowLimit,
  compileSql,
  datastoreSqlState,
  evaluateSelectWithRls,
  executeDml,
  mutTxWriter,
  type SqlDeadline,
  SqlError,
  type SqlState,
  type UserTableInfo,
} from "../query/mod.ts";
import { DatastoreError } from "../storage/mod.ts";
import type { DatabaseEngine } from "./engine.ts";
import type { SqlRequest, SqlResult } from "./messages.ts";
import { viewAwareSqlState } from "./view_catalog.ts";
import { resolveDeep } from "./auto_migrate.ts";
import type { ProductType, Typespace } from "../protocol/mod.ts";

export interface SqlHostOptions {
  /**
   * Wall time a SELECT of a caller other than the owner may run (the reducer budget): the
   * database thread answers nothing else meanwhile.
   */
  budgetMs: number;
  /** The same for the owner's SELECTs (`--owner-sql-budget-ms`, OWNER_SQL_BUDGET_MS_DEFAULT). */
  ownerBudgetMs: number;
  monotonicMs: () => number;
}

export class SqlHost {
  readonly #engine: DatabaseEngine;
  readonly #options: SqlHostOptions | undefined;
  #userTables: UserTableInfo[] | undefined;

  constructor(engine: DatabaseEngine, options?: SqlHostOptions) {
    this.#engine = engine;
    this.#options = options;
  }

  run(request: SqlRequest): SqlResult {
    const engine = this.#engine;
    const context = { sender: request.sender, isOwner: request.isOwner };
    // Views are materialized for this caller as the statement names them (worker/views.ts).
    const state = viewAwareSqlState(engine, this.#state(), context);
    const empty = { rowsInserted: 0, rowsDeleted: 0, rowsUpdated: 0 };
    try {
      const plan = compileSql(request.sql, state, context);
      if (plan.kind === "select") {
        checkRowLimit(plan, state, context);
        // Row-level security for callers other than the owner (query/rls.ts).
        const options = this.#options;
        const budgetMs = context.isOwner ? options?.ownerBudgetMs : options?.budgetMs;
        const deadline: SqlDeadline | undefined = options && budgetMs !== undefined
          ? {
            deadlineMs: options.monotonicMs() + budgetMs,
            nowMs: options.monotonicMs,
            budgetMs,
            owner: context.isOwner,
          }
          : undefined;
        const result = evaluateSelectWithRls(plan, state, context, engine.rlsRules, { deadline });
        return {
          kind: "sql",
          id: request.id,
          ok: true,
          columns: resolvedColumns(result.columns, result.typespace),
          typespace: result.typespace,
          rows: result.rows,
          ...empty,
          txOffset: engine.txOffset,
        };
      }
      if (engine.views.schema(plan.table.tableId) !== undefined) {
        throw new SqlError(
          `\`${plan.table.name}\` is a view; DML on views is not supported`,
          "unsupported",
        );
      }
      const outcome = engine.runHostTransaction(
        request.sender,
        request.timestampMicros,
        (tx) => executeDml(plan, mutTxWriter(tx)),
      );
      if (!outcome.ok) {
        return {
          kind: "sql",
          id: request.id,
          ok: false,
          error: errorText(outcome.error),
          ...empty,
          txOffset: outcome.txOffset,
        };
      }
      return {
        kind: "sql",
        id: request.id,
        ok: true,
        columns: { elements: [] },
        typespace: [],
        rows: [],
        ...outcome.value,
        txOffset: outcome.txOffset,
      };
    } catch (error) {
      return {
        kind: "sql",
        id: request.id,
        ok: false,
        error: errorText(error),
        ...empty,
        txOffset: engine.txOffset,
      };
    } finally {
      state.dropUnused();
    }
  }

  /** The module's tables with what the system tables say about them (cached: fixed per module). */
  #tableInfo(): UserTableInfo[] {
    if (this.#userTables) return this.#userTables;
    const module = this.#engine.module;
    this.#userTables = module.tables.map((schema) => {
      const def = module.def.tables.find((table) => table.name === schema.name);
      return {
        schema,
        constraintNames: def?.uniqueConstraints.map((c) => c.name) ?? [],
        sequenceNames: def?.sequences.map((s) => s.name) ?? [],
        columnAccessors: def?.columns.map((c) => c.sourceName) ?? [],
        schedule: def?.schedule === undefined ? undefined : {
          name: def.schedule.name,
          functionName: def.schedule.functionName,
          atColumn: def.schedule.atColumn,
        },
      };
    });
    return this.#userTables;
  }

  #state(): SqlState {
    return datastoreSqlState(this.#engine.datastore, {
      userTables: () => this.#tableInfo(),
      clients: () => this.#engine.clients(),
      rlsRules: () =>
        [...this.#engine.rlsRules].flatMap(([tableId, rules]) =>
          rules.map((sql) => ({ tableId, sql }))
        ),
      views: () => {
        // View ids and table ids in creation order: by name, as SpacetimeDB creates them.
        const tableIds = this.#engine.module.viewTableIds;
        const byName = [...this.#engine.module.def.views].sort((a, b) =>
          tableIds.get(a.name)! - tableIds.get(b.name)!
        );
        return byName.map((view, position) => ({
          viewId: position + 1,
          name: view.name,
          tableId: tableIds.get(view.name),
          isPublic: view.isPublic,
          isAnonymous: view.isAnonymous,
        }));
      },
    });
  }
}

function errorText(error: unknown): string {
  if (error instanceof SqlError) return error.message;
  if (error instanceof DatastoreError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The result's column types with every typespace reference resolved, as SpacetimeDB's table
 * schemas are: a client reading `/sql`'s schema has no typespace to look a `Ref` up in. A type
 * too large to expand (over resolveDeep's node bound) keeps its references.
 */
function resolvedColumns(columns: ProductType, typespace: Typespace): ProductType {
  return {
    elements: columns.elements.map((element) => {
      try {
        return { ...element, algebraicType: resolveDeep(element.algebraicType, typespace) };
      } catch (error) {
        if (error instanceof RangeError) return element;
        throw error;
      }
    }),
  };
}
