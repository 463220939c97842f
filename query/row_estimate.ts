/**
 * The row limit (`SET row_limit`): the rows a query is expected to scan, estimated the way
 * SpacetimeDB estimates the physical plan it would pick (query-subscriptions.md §1.4). One
 * estimate serves every caller: subscriptions and one-off queries (a compiled QueryPlan) and
 * /sql SELECTs (a checked SqlSelectPlan), each first reduced to an `EstimateShape`.
 *
 * - a table scan: the table's row count; an index point scan: rows / distinct keys of that index
 *   (0 for an empty table); a one-table /sql `SELECT *` (or `t.*`) with a LIMIT whose WHERE is
 *   empty or taken whole by an index point scan: its LIMIT (SpacetimeDB merges the limit into
 *   that scan; under a column list, a COUNT or a filter left over the limit counts for nothing);
 * - a filter adds its input's estimate again (WHERE conjuncts an index point scan does not use);
 * - a join of `lhs` with a probe table: with an index on the probe's join column,
 *   lhs scanned + lhs rows × (1 if the column is unique, else rows / distinct keys); without
 *   one, both inputs scanned + lhs rows × probe rows (lhs rows when unique); a cross join the
 *   product; WHERE conjuncts over several tables filter the joined rows (added again);
 * - a query's fragments (one per row-level security rule) add up, and so do the new queries of
 *   one subscribe request.
 *
 * An index point scan uses, as SpacetimeDB's IxScanFromPredicates does, an index of at most
 * POINT_INDEX_COLUMNS_MAX columns all fixed by `column = constant` conjuncts (rows / distinct
 * keys of all its columns): the widest, and on a tie the first in the table's index order
 * (wider indexes are left to the filter).
 *
 * Where ours differs: we do not model index range scans (a range on an indexed column counts as
 * a filter: 2 × rows where SpacetimeDB says rows) nor SpacetimeDB's reordering of joins beyond
 * the first join's swap (its left side is the table that received a WHERE conjunct); an index
 * join probes only a one-column index on the join column (SpacetimeDB also takes an index whose
 * last column is the join column and whose leading columns the probe side's WHERE fixes); the
 * table's index order is the module def's (and index ids'), where SpacetimeDB's comes from a hash
 * map of the module def, so a tie between equally wide indexes may pick another one.
 */
import type { TableSchema } from "../storage/mod.ts";
import type { CommittedState } from "./execute.ts";
import type { Fragment, JoinCondition, QueryPlan } from "./plan.ts";
import {
  collectEqualities,
  conjuncts,
  type Equality,
  joinConditions,
  layoutOf,
  splitJoinWhere,
} from "./plan.ts";
import type { SqlSelectPlan } from "./sql_check.ts";
import { SqlError } from "./sql_error.ts";
import { valueKey } from "./_scalar.ts";

/** The widest index SpacetimeDB turns WHERE equalities into a point scan of (its rules.rs). */
export const POINT_INDEX_COLUMNS_MAX = 3;

/** The committed rows the estimate counts. */
export interface EstimateRows {
  rowCount(tableId: number): number;
  rows(tableId: number): Iterable<Uint8Array>;
}

/** One table instance of a query, as the estimate sees it. */
export interface EstimateInstance {
  table: TableSchema;
  /** Columns fixed by top-level `column = constant` conjuncts on this instance, in WHERE order. */
  equalities: readonly { column: number }[];
  /** Top-level WHERE conjuncts that read only this instance (0: none). */
  conjuncts: number;
}

/** A query (one fragment of it) reduced to what the estimate reads. */
export interface EstimateShape {
  /** Table instances in FROM order. */
  instances: readonly EstimateInstance[];
  /** The `ON a.x = b.y` conditions. */
  conditions: readonly JoinCondition[];
  /** Whether WHERE conjuncts read two or more instances (they filter the joined tuples). */
  residual: boolean;
  /**
   * The LIMIT of a one-table `SELECT *` (or `t.*`): the estimate when no filter is left over the
   * table or index scan (SpacetimeDB's PushLimit merges the limit into that scan).
   */
  limit?: bigint;
}

/** The rows every fragment of `plan` is expected to scan, summed. */
export function estimatePlanRowsScanned(plan: QueryPlan, state: CommittedState): bigint {
  const rows = committedRows(state);
  let total = 0n;
  for (const fragment of plan.fragments) {
    total += estimateRowsScanned(fragmentShape(fragment), rows);
  }
  return total;
}

/** The rows a /sql SELECT is expected to scan (before row-level security, as SpacetimeDB). */
export function estimateSelectRowsScanned(plan: SqlSelectPlan, state: EstimateRows): bigint {
  return estimateRowsScanned(selectShape(plan), state);
}

/** SpacetimeDB's refusal of a non-owner's query over the row limit. */
export function rowLimitError(estimate: bigint, limit: bigint): SqlError {
  return new SqlError(
    `Estimated cardinality (${estimate} rows) exceeds limit (${limit} rows)`,
    "limit",
  );
}

function fragmentShape(fragment: Fragment): EstimateShape {
  if (fragment.kind === "select") {
    const conjuncts = fragment.predicate === undefined ? 0 : fragment.conjuncts ?? 2;
    return {
      instances: [{ table: fragment.table, equalities: fragment.equalities, conjuncts }],
      conditions: [],
      residual: false,
    };
  }
  return {
    instances: fragment.instances.map((i) => ({
      table: i.table,
      equalities: i.equalities,
      conjuncts: i.predicate === undefined ? 0 : i.conjuncts ?? 2,
    })),
    conditions: fragment.conditions,
    residual: fragment.residual !== undefined,
  };
}

function selectShape(plan: SqlSelectPlan): EstimateShape {
  if (plan.tables.length === 1) {
    const equalities: Equality[] = [];
    collectEqualities(plan.where, equalities);
    const count = conjuncts(plan.where).length;
    return {
      instances: [{ table: plan.tables[0].schema, equalities, conjuncts: count }],
      conditions: [],
      residual: false,
      limit: plan.output.kind === "rows" ? plan.limit : undefined,
    };
  }
  const { perInstance, residual } = splitJoinWhere(plan.where, plan.tables.length);
  return {
    instances: plan.tables.map((t, i) => {
      const equalities: Equality[] = [];
      for (const conjunct of perInstance[i]) collectEqualities(conjunct, equalities);
      return { table: t.schema, equalities, conjuncts: perInstance[i].length };
    }),
    conditions: joinConditions(plan.joins),
    residual: residual.length > 0,
  };
}

/** The committed state's rows, counted by iterating them. */
function committedRows(state: CommittedState): EstimateRows {
  return {
    rowCount(tableId) {
      let count = 0;
      for (const _ of state.committedRows(tableId)) count++;
      return count;
    },
    rows: (tableId) => state.committedRows(tableId),
  };
}

interface Estimate {
  /** Rows scanned to produce the output. */
  scanned: bigint;
  /** Rows the step outputs. */
  rows: bigint;
  /** A lone table or index scan, no filter left over it (a LIMIT can merge into it). */
  unfiltered?: boolean;
}

/** The rows one query shape is expected to scan. */
export function estimateRowsScanned(shape: EstimateShape, state: EstimateRows): bigint {
  const counts = new Map<number, bigint>();
  const rowCount = (table: TableSchema) => {
    let count = counts.get(table.tableId);
    if (count === undefined) {
      count = BigInt(state.rowCount(table.tableId));
      counts.set(table.tableId, count);
    }
    return count;
  };
  const context: EstimateContext = { state, rowCount };
  const instances = shape.instances;
  if (instances.length === 1) {
    const only = instances[0];
    if (only.conjuncts === 0 && shape.limit !== undefined) return shape.limit;
    const scan = scanEstimate(only, context);
    return shape.limit !== undefined && scan.unfiltered ? shape.limit : scan.scanned;
  }
  return joinEstimate(shape, context);
}

interface EstimateContext {
  state: EstimateRows;
  rowCount: (table: TableSchema) => bigint;
}

function scanEstimate(input: EstimateInstance, context: EstimateContext): Estimate {
  const count = context.rowCount(input.table);
  if (input.conjuncts === 0) return { scanned: count, rows: count, unfiltered: true };
  // The index of at most POINT_INDEX_COLUMNS_MAX columns with the most columns, all fixed by
  // equalities; on a tie, the first in the table's index order.
  const fixed = new Set(input.equalities.map((eq) => eq.column));
  let best: readonly number[] | undefined;
  for (const index of input.table.indexes) {
    const columns = index.columns;
    if (columns.length === 0 || columns.length > POINT_INDEX_COLUMNS_MAX) continue;
    if (!columns.every((c) => fixed.has(c))) continue;
    if (best === undefined || columns.length > best.length) best = columns;
  }
  if (best === undefined) return { scanned: count * 2n, rows: count }; // filter over a scan
  const probed = indexRowEstimate(input.table, best, context);
  // An index point scan, then a filter for any conjunct the index did not take.
  const rest = input.conjuncts - best.length;
  return { scanned: rest > 0 ? probed * 2n : probed, rows: probed, unfiltered: rest === 0 };
}

function joinEstimate(shape: EstimateShape, context: EstimateContext): bigint {
  const instances = shape.instances;
  const filtered = (i: EstimateInstance) => i.conjuncts > 0;
  const order = instances.map((_, k) => k);
  // SpacetimeDB swaps the sides of the first join (the innermost of a left-deep tree) when only
  // its right side is filtered, whatever joins follow.
  if (!filtered(instances[0]) && filtered(instances[1])) [order[0], order[1]] = [1, 0];
  const joined = new Set<number>([order[0]]);
  const scan = (k: number) => scanEstimate(instances[k], context);
  const first = scan(order[0]);
  let scanned = first.scanned;
  let rows = first.rows;
  for (const k of order.slice(1)) {
    const probe = instances[k];
    const condition = shape.conditions.find((c) =>
      (c.left.instance === k && joined.has(c.right.instance)) ||
      (c.right.instance === k && joined.has(c.left.instance))
    );
    joined.add(k);
    if (condition === undefined) { // a cross join: nested loops
      const other = scan(k);
      scanned += other.scanned + rows * other.rows;
      rows *= other.rows;
      continue;
    }
    const column = condition.left.instance === k ? condition.left.column : condition.right.column;
    const unique = probe.table.uniqueConstraints.some((c) => c.length === 1 && c[0] === column);
    const indexed = probe.table.indexes.some((i) =>
      i.columns.length === 1 && i.columns[0] === column
    );
    if (indexed) {
      const perRow = unique ? 1n : indexRowEstimate(probe.table, [column], context);
      scanned += unique ? rows : rows * perRow;
      rows *= perRow;
      if (filtered(probe)) scanned += rows; // the probe side's WHERE, after the join
    } else {
      const other = scan(k);
      scanned += other.scanned + (unique ? rows : rows * other.rows);
      if (!unique) rows *= other.rows;
    }
  }
  if (shape.residual) scanned += rows;
  return scanned;
}

/** Rows one key of an index on `columns` is expected to hold: rows / distinct keys. */
function indexRowEstimate(
  table: TableSchema,
  columns: readonly number[],
  context: EstimateContext,
): bigint {
  const count = context.rowCount(table);
  if (count === 0n) return 0n;
  if (
    table.uniqueConstraints.some((c) =>
      c.length === columns.length && c.every((x) => columns.includes(x))
    )
  ) {
    return 1n;
  }
  const layout = layoutOf(table);
  const keys = new Set<string>();
  for (const bytes of context.state.rows(table.tableId)) {
    const view = layout.view(bytes);
    keys.add(columns.map((c) => String(valueKey(view.value(c)))).join("\u0000"));
  }
  return count / BigInt(keys.size);
}
