/**
 * Runs compiled plans against the committed state: initial subscription rows and one-off
 * queries. The state interface is what the storage datastore provides.
 */
import type { TableSchema } from "../storage/mod.ts";
import { checkSelect, type QueryCatalog, type QueryContext } from "./check.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import {
  fragmentMatches,
  type JoinFragment,
  type PlanOptions,
  planSelect,
  type QueryPlan,
  type SelectFragment,
} from "./plan.ts";
import {
  type AuxLookup,
  CURRENT,
  evaluateJoin,
  initialSeed,
  type SignedRowFn,
  StateReader,
  type Version,
} from "./_join.ts";
import type { Comparable } from "./_scalar.ts";
import { SqlError } from "./sql_error.ts";
import { SQL_JOIN_ROWS_MAX } from "../lib/limits.ts";
import { encodeComparable } from "./_encode.ts";
import { scalarOf } from "./_scalar.ts";
import { isSystemTableId } from "./system_tables.ts";
import { type IndexWalk, topNRows } from "./topn.ts";

export { encodeComparable };

/** Read access to committed data, implemented by the storage datastore. */
export interface CommittedState extends QueryCatalog {
  /** Every committed row of the table, as BSATN bytes. */
  committedRows(tableId: number): Iterable<Uint8Array>;
  /**
   * The committed rows whose `columns` equal `keyBsatn` (the BSATN of those column values,
   * concatenated), found through an index; undefined when no index has exactly these columns.
   */
  committedIndexPoint?(
    tableId: number,
    columns: readonly number[],
    keyBsatn: Uint8Array,
  ): Iterable<Uint8Array> | undefined;
  /** Every table, for `SELECT * FROM *`. */
  tables?(): Iterable<TableSchema>;
  /** An ordered walk of a B-tree index on exactly `columns` (top-N refills; topn.ts). */
  committedIndexWalk?: IndexWalk;
}

/** Candidate rows for a fragment: an index point lookup when one fits, else the whole table. */
function candidateRows(fragment: SelectFragment, state: CommittedState): Iterable<Uint8Array> {
  const table = fragment.table;
  if (state.committedIndexPoint !== undefined) {
    for (const eq of fragment.equalities) {
      const scalar = scalarOf(table.rowType.elements[eq.column].algebraicType, table.typespace)!;
      const rows = state.committedIndexPoint(
        table.tableId,
        [eq.column],
        encodeComparable(eq.value, scalar),
      );
      if (rows !== undefined) return rows;
    }
  }
  return state.committedRows(table.tableId);
}

/** Bounds on one evaluation of a plan by an untrusted caller. */
export interface EvaluationLimits {
  /** Rows a join fragment may return (default SQL_JOIN_ROWS_MAX): a join's fan-out is rows^n. */
  joinRowsMax?: number;
  /**
   * Called for every row a scan or join looks at, including those its filters drop (a join that
   * keeps nothing can still look at rows² of them); throws to stop the evaluation (a time budget).
   */
  tick?: () => void;
}

/** A reader whose every row handed to a join first calls `tick`. */
class TickingReader extends StateReader {
  readonly #tick: () => void;

  constructor(state: CommittedState, aux: AuxLookup | undefined, tick: () => void) {
    super(state, aux);
    this.#tick = tick;
  }

  override scan(table: TableSchema, version: Version, fn: SignedRowFn): void {
    const tick = this.#tick;
    super.scan(table, version, (row, sign) => {
      tick();
      fn(row, sign);
    });
  }

  override match(
    table: TableSchema,
    column: number,
    key: Comparable,
    version: Version,
    fn: SignedRowFn,
  ): void {
    const tick = this.#tick;
    super.match(table, column, key, version, (row, sign) => {
      tick();
      fn(row, sign);
    });
  }
}

/**
 * The current result of a plan, with multiplicities (one entry per fragment derivation; a join
 * returns its row once per joined tuple). `aux` gives the subscription index's hash indexes on
 * join columns without a storage index; without it such columns are hashed once per call.
 */
export function executePlan(
  plan: QueryPlan,
  state: CommittedState,
  aux?: AuxLookup,
  limits: EvaluationLimits = {},
): Uint8Array[] {
  if (plan.topN !== undefined) return topNRows(plan, state);
  const out: Uint8Array[] = [];
  const joinRowsMax = limits.joinRowsMax ?? SQL_JOIN_ROWS_MAX;
  let reader: StateReader | undefined;
  for (const fragment of plan.fragments) {
    if (fragment.never || fragment.table.isEvent) continue;
    if (fragment.kind === "join") {
      reader ??= limits.tick
        ? new TickingReader(state, aux, limits.tick)
        : new StateReader(state, aux);
      let joined = 0;
      evaluateJoin(
        fragment,
        reader,
        initialSeed(fragment),
        { kind: "version", version: CURRENT },
        () => CURRENT,
        (row) => {
          if (++joined > joinRowsMax) {
            throw new SqlError(
              `The query joins more than ${joinRowsMax} rows; add a join condition or a filter`,
              "limit",
            );
          }
          out.push(row);
        },
      );
      continue;
    }
    const tick = limits.tick;
    for (const row of candidateRows(fragment, state)) {
      tick?.();
      if (fragmentMatches(fragment, row)) out.push(row);
    }
  }
  return out;
}

/**
 * Every joined tuple of a join fragment over the committed state (one row per instance, in
 * FROM order), for callers that project columns of several tables (/sql).
 */
export function forEachJoinTuple(
  fragment: JoinFragment,
  state: CommittedState,
  fn: (tuple: readonly Uint8Array[]) => void,
): void {
  const reader = new StateReader(state);
  evaluateJoin(
    fragment,
    reader,
    initialSeed(fragment),
    { kind: "version", version: CURRENT },
    () => CURRENT,
    (_row, _sign, tuple) => fn(tuple),
  );
}

/**
 * Parse, check and plan a subscription-grammar query. Throws SqlError. Subscriptions
 * (`subscription: true`, the default) are held to SpacetimeDB's join rules; one-off queries
 * are not.
 */
export function compileSubscriptionQuery(
  sql: string,
  catalog: QueryCatalog,
  context: QueryContext,
  options: PlanOptions = { subscription: true },
): QueryPlan {
  const statement = parseSubscriptionQuery(sql);
  return planSelect(checkSelect(statement, catalog, context, { subscription: true }), options);
}

export interface OneOffResult {
  tableName: string;
  rows: Uint8Array[];
}

/** A WebSocket OneOffQuery: subscription grammar, evaluated once. Throws SqlError. */
export function runOneOffQuery(
  sql: string,
  state: CommittedState,
  context: QueryContext,
): OneOffResult {
  const plan = compileSubscriptionQuery(sql, state, context, { subscription: false });
  return { tableName: plan.returnTable.name, rows: executePlan(plan, state) };
}

/**
 * `SELECT * FROM *` expands to one query per table the caller can read, excluding event
 * tables and system tables (owner: private tables too). Returns undefined when `sql` is not that form.
 */
export function expandSelectStarFromStar(
  sql: string,
  state: CommittedState,
  context: QueryContext,
): string[] | undefined {
  if (!/^\s*SELECT\s+\*\s+FROM\s+\*\s*$/i.test(sql.trim())) return undefined;
  const out: string[] = [];
  for (const table of state.tables?.() ?? []) {
    if (table.isEvent || isSystemTableId(table.tableId)) continue;
    if (!table.isPublic && !context.isOwner) continue;
    out.push(`SELECT * FROM "${table.name.replaceAll('"', '""')}"`);
  }
  return out;
}
