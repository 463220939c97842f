/**
 * Worker side of subscriptions: compiles queries against the datastore, takes
 * initial rows between transactions (the worker runs one request at a time, so
 * a snapshot and the start of delta tracking never straddle a commit), and
 * computes per-query deltas for each commit. Which client hears about which
 * query is the main thread's business (server/ws/hub.ts).
 */
import {
  type CheckedSelect,
  type CommittedState,
  datastoreRowLimit,
  estimatePlanRowsScanned,
  type EvaluationLimits,
  executePlan,
  expandSelectStarFromStar,
  planSelect,
  type QueryPlan,
  queryTimeBudgetError,
  rowLimitError,
  SqlError,
  subscriptionErrorText,
  SubscriptionIndex,
} from "../query/mod.ts";
import { ViewCatalog } from "./view_catalog.ts";
import {
  QUERY_RESULT_BYTES_PER_REPLY_MAX,
  SUBSCRIPTION_LIVE_QUERIES_MAX,
  SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX,
} from "../lib/limits.ts";
import type { TableSchema, TxDelta } from "../storage/mod.ts";
import type { DatabaseEngine } from "./engine.ts";
import type {
  OneOffQueryRequest,
  OneOffQueryResult,
  QueryDelta,
  QueryRows,
  SubscribeRequest,
  SubscribeResult,
  UnsubscribeRequest,
  UnsubscribeResult,
} from "./messages.ts";

/** What onCommit returns while nothing is subscribed (read-only; most commits). */
const NO_DELTAS: QueryDelta[] = Object.freeze([]) as unknown as QueryDelta[];

interface LiveQuery {
  queryId: number;
  tableName: string;
  isEvent: boolean;
  /** View instance tables the query reads (each holds one reference while the query lives). */
  viewTables: number[];
  /** Characters of the SQL text that made it (SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX). */
  textChars: number;
}

/**
 * The time budgets of queries: a caller other than the owner gets `budgetMs` (worker_main.ts gives
 * the reducer's), the owner `ownerBudgetMs` (`--owner-sql-budget-ms`).
 */
export interface QueryBudget {
  budgetMs: number;
  ownerBudgetMs: number;
  monotonicMs: () => number;
}

/** Rows a query looks at between two clock reads of its time budget. */
const ROWS_PER_CLOCK_READ = 1 << 16;

export class SubscriptionHost {
  readonly #engine: DatabaseEngine;
  readonly #budget: QueryBudget | undefined;
  readonly #state: CommittedState;
  readonly #index: SubscriptionIndex;
  /** connection id -> query set id -> the set's queries. */
  readonly #sets = new Map<bigint, Map<number, LiveQuery[]>>();
  readonly #queries = new Map<number, LiveQuery>();
  /** Views and row-level security for each caller (worker/view_catalog.ts). */
  readonly #catalog: ViewCatalog;
  #droppedQueryCount = 0;
  /** Characters of SQL text of the live queries (SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX). */
  #liveTextChars = 0;
  /** Row bytes of query results in the reply being built (`beginReply`). */
  #replyResultBytes = 0;
  readonly #replyResultBytesMax: number;

  /**
   * `options.deltaRowsMax`: SUBSCRIPTION_DELTA_ROWS_MAX unless a test lowers it;
   * `options.replyResultBytesMax`: QUERY_RESULT_BYTES_PER_REPLY_MAX likewise.
   */
  constructor(
    engine: DatabaseEngine,
    budget?: QueryBudget,
    options: { deltaRowsMax?: number; replyResultBytesMax?: number } = {},
  ) {
    this.#engine = engine;
    this.#budget = budget;
    this.#replyResultBytesMax = options.replyResultBytesMax ?? QUERY_RESULT_BYTES_PER_REPLY_MAX;
    const datastore = engine.datastore;
    const views = engine.views;
    this.#state = {
      tableIdFromName: (name) => datastore.tableIdFromName(name),
      schema: (tableId) => {
        const view = views.schema(tableId);
        if (view !== undefined) return view;
        try {
          return datastore.schema(tableId);
        } catch {
          return undefined; // no such table
        }
      },
      tables: () => datastore.tables(),
      committedRows: (tableId) =>
        views.schema(tableId) !== undefined
          ? views.rows(tableId)
          : datastore.committedRows(tableId),
      committedIndexPoint: (tableId, columns, key) => {
        if (views.schema(tableId) !== undefined) return undefined;
        const index = indexWithColumns(datastore.schema(tableId), columns);
        return index === undefined ? undefined : datastore.committedIndexPoint(index, key);
      },
      committedIndexWalk: (tableId, columns, from, descending, visit) => {
        if (views.schema(tableId) !== undefined) return false;
        const index = datastore.schema(tableId).indexes.find((candidate) =>
          candidate.algorithm === "btree" && candidate.columns.length === columns.length &&
          candidate.columns.every((column, i) => column === columns[i])
        );
        if (index === undefined) return false;
        datastore.committedIndexWalk(index.indexId, from, descending, visit);
        return true;
      },
    };
    this.#index = new SubscriptionIndex(this.#state, options);
    this.#catalog = new ViewCatalog(engine, this.#state);
  }

  /** Starts counting the query-result bytes of a new reply (QUERY_RESULT_BYTES_PER_REPLY_MAX). */
  beginReply(): void {
    this.#replyResultBytes = 0;
  }

  /**
   * Counts `bytes` of result rows into the reply being built, unless the reply already holds
   * some and this would take it past QUERY_RESULT_BYTES_PER_REPLY_MAX: then the error text.
   */
  admitResultBytes(bytes: number): string | undefined {
    const held = this.#replyResultBytes;
    if (bytes > 0 && held > 0 && held + bytes > this.#replyResultBytesMax) {
      return `the results answered at once are over ${this.#replyResultBytesMax} bytes ` +
        `(QUERY_RESULT_BYTES_PER_REPLY_MAX): ${held} bytes already, ${bytes} more; retry, or ask ` +
        `for fewer rows at once`;
    }
    this.#replyResultBytes = held + bytes;
    return undefined;
  }

  onCommit(delta: TxDelta): QueryDelta[] {
    if (this.#index.size === 0) return NO_DELTAS;
    return this.#toMessages(this.#index.onCommit(delta));
  }

  /** Deltas of several transactions committed in order since the last call, one list each. */
  onCommits(deltas: TxDelta[]): QueryDelta[][] {
    if (this.#index.size === 0) return deltas.map(() => NO_DELTAS);
    return this.#index.onCommits(deltas).map((changes) => this.#toMessages(changes));
  }

  #toMessages(
    changes: Map<number, { inserts: Uint8Array[]; deletes: Uint8Array[]; error?: string }>,
  ) {
    const out: QueryDelta[] = [];
    // Older live queries first: past the reply's result bytes, the newest are dropped.
    const ordered = [...changes].sort((a, b) => a[0] - b[0]);
    for (const [queryId, change] of ordered) {
      const live = this.#queries.get(queryId);
      const error = live === undefined || change.error !== undefined
        ? change.error
        : this.admitResultBytes(rowsBytes(change.inserts) + rowsBytes(change.deletes));
      if (live !== undefined && error !== undefined) {
        out.push({
          queryId,
          table: live.tableName,
          isEvent: live.isEvent,
          inserts: [],
          deletes: [],
          error,
        });
        this.#dropFailed(queryId, error);
        continue;
      }
      if (!live || (change.inserts.length === 0 && change.deletes.length === 0)) continue;
      out.push({
        queryId,
        table: live.tableName,
        isEvent: live.isEvent,
        inserts: change.inserts,
        deletes: change.deletes,
      });
    }
    return out;
  }

  /**
   * Drops every query set holding a query whose delta failed (the hub drops the same sets when
   * it reads the error) and counts it in the module log; the transaction itself stands.
   */
  #dropFailed(queryId: number, error: string): void {
    let setCount = 0;
    for (const [connectionId, sets] of this.#sets) {
      for (const [querySetId, queries] of sets) {
        if (!queries.some((live) => live.queryId === queryId)) continue;
        sets.delete(querySetId);
        this.#releaseAll(queries);
        setCount++;
      }
      if (sets.size === 0) this.#sets.delete(connectionId);
    }
    this.#droppedQueryCount++;
    this.#engine.pushRemoteLog(
      "Warn",
      `Subscription dropped (${this.#droppedQueryCount} since start): ${error}; ` +
        `${setCount} query set(s) unsubscribed`,
      undefined,
    );
  }

  /** Live queries dropped because their delta failed, since this process started. */
  get droppedQueryCount(): number {
    return this.#droppedQueryCount;
  }

  subscribe(request: SubscribeRequest): SubscribeResult {
    const txOffset = this.#engine.txOffset;
    const context = { sender: request.sender, isOwner: request.isOwner };
    const limits = this.#limitsFor(context.isOwner);
    const registered: LiveQuery[] = [];
    const rows: QueryRows[] = [];
    // A query text given twice in one request is subscribed once (SpacetimeDB dedups by text).
    const seen = new Set<string>();
    const caller = this.#catalog.forCaller(context, request.source);
    // Every query is compiled before any is registered, so that the row limit can refuse the set.
    const compiled: { sql: string; plans: QueryPlan[] }[] = [];
    for (const sql of request.queries) {
      if (seen.has(sql.trim())) continue;
      seen.add(sql.trim());
      try {
        const plans: QueryPlan[] = [];
        for (const query of expandSelectStarFromStar(sql, caller, context) ?? [sql]) {
          // One registration per row-level security fragment (one when no rule applies).
          plans.push(...caller.compile(query));
        }
        compiled.push({ sql, plans });
      } catch (error) {
        caller.dropUnused();
        return {
          kind: "subscribe",
          id: request.id,
          ok: false,
          error: errorText(error, sql),
          txOffset,
        };
      }
    }
    const overLimit = this.#checkRowLimit(
      compiled.flatMap((c) => c.plans.filter((plan) => !this.#index.hasPlan(plan.key))),
      request.isOwner,
    );
    if (overLimit !== undefined) {
      // SpacetimeDB sends this one without the query text.
      caller.dropUnused();
      return { kind: "subscribe", id: request.id, ok: false, error: overLimit.message, txOffset };
    }
    const replyBytesBefore = this.#replyResultBytes;
    for (const { sql, plans } of compiled) {
      try {
        for (const plan of plans) {
          if (!this.#index.hasPlan(plan.key)) this.#checkLiveQueryRoom(sql.length);
          const result = this.#index.registerPlan(plan, limits);
          let live = this.#queries.get(result.queryId);
          if (live === undefined) {
            live = {
              queryId: result.queryId,
              tableName: result.tableName,
              isEvent: result.isEvent,
              viewTables: this.#catalog.viewTablesOf(plan),
              textChars: sql.length,
            };
            this.#queries.set(live.queryId, live);
            this.#liveTextChars += live.textChars;
            for (const tableId of live.viewTables) this.#engine.views.retain(tableId);
          }
          registered.push(live);
          const initialRows = result.isEvent ? [] : result.initialRows;
          rows.push({ table: result.tableName, rows: initialRows });
          // Checked query by query: the rows may be copies, all held until the set is done.
          const overReply = this.admitResultBytes(rowsBytes(initialRows));
          if (overReply !== undefined) throw new ReplyBoundError(overReply);
        }
      } catch (error) {
        // Any query of the set failing fails the whole set: nothing stays registered.
        this.#replyResultBytes = replyBytesBefore;
        this.#releaseAll(registered);
        caller.dropUnused();
        return {
          kind: "subscribe",
          id: request.id,
          ok: false,
          error: error instanceof ReplyBoundError ? error.message : errorText(error, sql),
          txOffset,
        };
      }
    }
    let sets = this.#sets.get(request.connectionId);
    if (!sets) this.#sets.set(request.connectionId, sets = new Map());
    const previous = sets.get(request.querySetId);
    if (previous) this.#releaseAll(previous);
    sets.set(request.querySetId, registered);
    caller.dropUnused();
    return {
      kind: "subscribe",
      id: request.id,
      ok: true,
      rows,
      queryIds: registered.map((live) => live.queryId),
      txOffset,
    };
  }

  unsubscribe(request: UnsubscribeRequest): UnsubscribeResult {
    const txOffset = this.#engine.txOffset;
    const sets = this.#sets.get(request.connectionId);
    const queries = sets?.get(request.querySetId);
    if (!sets || !queries) {
      return {
        kind: "unsubscribe",
        id: request.id,
        ok: false,
        error: `No subscription with query set id ${request.querySetId}`,
        txOffset,
      };
    }
    let rows: QueryRows[] | undefined;
    if (request.sendDroppedRows) {
      // Query by query: the rows may be copies. Over the reply's bound the set stays subscribed
      // (the hub keeps routing it too).
      rows = [];
      const replyBytesBefore = this.#replyResultBytes;
      for (const live of queries) {
        const dropped = live.isEvent ? [] : this.#index.currentRows(live.queryId);
        const overReply = this.admitResultBytes(rowsBytes(dropped));
        if (overReply !== undefined) {
          this.#replyResultBytes = replyBytesBefore;
          return { kind: "unsubscribe", id: request.id, ok: false, error: overReply, txOffset };
        }
        rows.push({ table: live.tableName, rows: dropped });
      }
    }
    sets.delete(request.querySetId);
    if (sets.size === 0) this.#sets.delete(request.connectionId);
    this.#releaseAll(queries);
    return { kind: "unsubscribe", id: request.id, ok: true, rows, txOffset };
  }

  /** Releases every query of a connection (on disconnect). */
  dropClient(connectionId: bigint): void {
    const sets = this.#sets.get(connectionId);
    if (!sets) return;
    this.#sets.delete(connectionId);
    for (const queries of sets.values()) this.#releaseAll(queries);
  }

  query(request: OneOffQueryRequest): OneOffQueryResult {
    const txOffset = this.#engine.txOffset;
    const caller = this.#catalog.forCaller({ sender: request.sender, isOwner: request.isOwner });
    try {
      const plans = caller.compile(request.sql, planOneOff);
      const overLimit = this.#checkRowLimit(plans, request.isOwner);
      if (overLimit !== undefined) {
        return { kind: "query", id: request.id, ok: false, error: overLimit.message, txOffset };
      }
      const rows: Uint8Array[] = [];
      const limits = this.#limitsFor(request.isOwner);
      for (const plan of plans) rows.push(...executePlan(plan, this.#state, undefined, limits));
      const overReply = this.admitResultBytes(rowsBytes(rows));
      if (overReply !== undefined) {
        return { kind: "query", id: request.id, ok: false, error: overReply, txOffset };
      }
      return {
        kind: "query",
        id: request.id,
        ok: true,
        rows: { table: plans[0].returnTable.name, rows },
        txOffset,
      };
    } catch (error) {
      return {
        kind: "query",
        id: request.id,
        ok: false,
        error: errorText(error, request.sql),
        txOffset,
      };
    } finally {
      caller.dropUnused();
    }
  }

  /**
   * SpacetimeDB's row limit: a non-owner's new plans (a query another subscriber already runs is
   * not checked again) whose estimated scanned rows add up past `row_limit` are refused.
   */
  #checkRowLimit(plans: QueryPlan[], isOwner: boolean): SqlError | undefined {
    if (isOwner || plans.length === 0) return undefined;
    const limit = datastoreRowLimit(this.#engine.datastore);
    if (limit === undefined) return undefined;
    const keys = new Set<string>();
    let estimate = 0n;
    for (const plan of plans) {
      if (keys.has(plan.key)) continue;
      keys.add(plan.key);
      estimate += estimatePlanRowsScanned(plan, this.#state);
    }
    return estimate > limit ? rowLimitError(estimate, limit) : undefined;
  }

  /**
   * Bounds on evaluating one request's queries: the join-row bound, and a time budget (the
   * database answers nothing else meanwhile): the owner's own, or the reducer budget for others.
   */
  #limitsFor(isOwner: boolean): EvaluationLimits {
    const budget = this.#budget;
    if (budget === undefined) return {};
    const budgetMs = isOwner ? budget.ownerBudgetMs : budget.budgetMs;
    const deadlineMs = budget.monotonicMs() + budgetMs;
    let rowsToClockRead = ROWS_PER_CLOCK_READ;
    return {
      tick: () => {
        if (--rowsToClockRead > 0) return;
        rowsToClockRead = ROWS_PER_CLOCK_READ;
        if (budget.monotonicMs() > deadlineMs) throw queryTimeBudgetError(budgetMs, isOwner);
      },
    };
  }

  /** Throws if a new live query of `textChars` characters would go over the database's bounds. */
  #checkLiveQueryRoom(textChars: number): void {
    if (this.#queries.size >= SUBSCRIPTION_LIVE_QUERIES_MAX) {
      throw new RangeError(
        `this database has ${this.#queries.size} distinct live queries, the limit ` +
          `(SUBSCRIPTION_LIVE_QUERIES_MAX); subscribe to a query already live or retry later`,
      );
    }
    if (this.#liveTextChars + textChars > SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX) {
      throw new RangeError(
        `the live queries of this database would hold ${this.#liveTextChars + textChars} ` +
          `characters of SQL, over ${SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX} ` +
          `(SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX); retry later`,
      );
    }
  }

  #releaseAll(queries: LiveQuery[]): void {
    for (const live of queries) {
      if (this.#index.release(live.queryId)) {
        if (this.#queries.delete(live.queryId)) this.#liveTextChars -= live.textChars;
        for (const tableId of live.viewTables) this.#engine.views.release(tableId);
      }
    }
  }
}

/** How a one-off query's fragments are planned (joins: without the subscription index rule). */
const planOneOff = (checked: CheckedSelect): QueryPlan =>
  planSelect(checked, { subscription: false });

function indexWithColumns(table: TableSchema, columns: readonly number[]): number | undefined {
  const index = table.indexes.find((candidate) =>
    candidate.algorithm !== "direct" && candidate.columns.length === columns.length &&
    candidate.columns.every((column, i) => column === columns[i])
  );
  return index?.indexId;
}

function errorText(error: unknown, sql: string): string {
  if (error instanceof SqlError) return subscriptionErrorText(error, sql);
  if (error instanceof Error) return subscriptionErrorText(error, sql);
  return String(error);
}

/** Total byte length of encoded rows. */
export function rowsBytes(rows: readonly Uint8Array[]): number {
  let bytes = 0;
  for (const row of rows) bytes += row.length;
  return bytes;
}

/** A result refused by QUERY_RESULT_BYTES_PER_REPLY_MAX (its text is the client's error). */
class ReplyBoundError extends Error {}
