/**
 * The row limit (`SET row_limit`) for subscriptions and one-off queries: the rows a compiled
 * QueryPlan is expected to scan, estimated the way SpacetimeDB estimates the physical plan it
 * would pick (query-subscriptions.md §1.4):
 *
 * - a table scan: the table's row count; an index point scan: rows / distinct keys of that index
 *   (0 for an empty table);
 * - a filter adds its input's estimate again (WHERE conjuncts an index point scan does not use);
 * - a join of `lhs` with a probe table: with an index on the probe's join column,
 *   lhs scanned + lhs rows × (1 if the column is unique, else rows / distinct keys); without
 *   one, both inputs scanned + lhs rows × probe rows (lhs rows when unique); a cross join the
 *   product;
 * - a query's fragments (one per row-level security rule) add up, and so do the new queries of
 *   one subscribe request.
 *
 * Where ours differs: we do not model index range scans (a range on an indexed column counts as
 * a filter: 2 × rows where SpacetimeDB says rows) nor SpacetimeDB's reordering of joins beyond
 * the first join's swap (its left side is the table that received a WHERE conjunct).
 */
import type { TableSchema } from "../storage/mod.ts";
import type { CommittedState } from "./execute.ts";
import type { Fragment, JoinFragment, PlanInstance, QueryPlan } from "./plan.ts";
import { layoutOf } from "./plan.ts";
import { SqlError } from "./sql_error.ts";
import { valueKey } from "./_scalar.ts";

/** The rows every fragment of `plan` is expected to scan, summed. */
export function estimatePlanRowsScanned(plan: QueryPlan, state: CommittedState): bigint {
  let total = 0n;
  for (const fragment of plan.fragments) total += estimateFragment(fragment, state);
  return total;
}

/** SpacetimeDB's refusal of a non-owner's query over the row limit. */
export function rowLimitError(estimate: bigint, limit: bigint): SqlError {
  return new SqlError(
    `Estimated cardinality (${estimate} rows) exceeds limit (${limit} rows)`,
    "limit",
  );
}

interface Estimate {
  /** Rows scanned to produce the output. */
  scanned: bigint;
  /** Rows the step outputs. */
  rows: bigint;
}

function estimateFragment(fragment: Fragment, state: CommittedState): bigint {
  if (fragment.kind === "select") {
    return scanEstimate(
      {
        table: fragment.table,
        equalities: fragment.equalities,
        conjuncts: fragment.predicate === undefined ? 0 : fragment.conjuncts ?? 2,
      },
      state,
    ).scanned;
  }
  return joinEstimate(fragment, state);
}

interface ScanInput {
  table: TableSchema;
  equalities: readonly { column: number }[];
  /** Top-level WHERE conjuncts on this table (0: none). */
  conjuncts: number;
}

function scanEstimate(input: ScanInput, state: CommittedState): Estimate {
  const count = rowCount(input.table, state);
  if (input.conjuncts === 0) return { scanned: count, rows: count };
  const fixed = new Set(input.equalities.map((eq) => eq.column));
  let best: readonly number[] | undefined;
  for (const index of input.table.indexes) {
    const columns = index.columns;
    if (columns.length === 0 || !columns.every((c) => fixed.has(c))) continue;
    if (best === undefined || columns.length > best.length) best = columns;
  }
  if (best === undefined) return { scanned: count * 2n, rows: count }; // filter over a scan
  const probed = indexRowEstimate(input.table, best, state);
  // An index point scan, then a filter for any conjunct the index did not take.
  const rest = input.conjuncts - best.length;
  return { scanned: rest > 0 ? probed * 2n : probed, rows: probed };
}

function joinEstimate(fragment: JoinFragment, state: CommittedState): bigint {
  const instances = fragment.instances;
  const filtered = (i: PlanInstance) => i.predicate !== undefined;
  const order = instances.map((_, k) => k);
  if (order.length === 2 && !filtered(instances[0]) && filtered(instances[1])) order.reverse();
  const joined = new Set<number>([order[0]]);
  const scan = (k: number) =>
    scanEstimate({
      table: instances[k].table,
      equalities: instances[k].equalities,
      conjuncts: instances[k].predicate === undefined ? 0 : instances[k].conjuncts ?? 2,
    }, state);
  const first = scan(order[0]);
  let scanned = first.scanned;
  let rows = first.rows;
  for (const k of order.slice(1)) {
    const probe = instances[k];
    const condition = fragment.conditions.find((c) =>
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
      const perRow = unique ? 1n : indexRowEstimate(probe.table, [column], state);
      scanned += unique ? rows : rows * perRow;
      rows *= perRow;
      if (probe.predicate !== undefined) scanned += rows; // the probe side's WHERE, after the join
    } else {
      const other = scan(k);
      scanned += other.scanned + (unique ? rows : rows * other.rows);
      if (!unique) rows *= other.rows;
    }
  }
  if (fragment.residual !== undefined) scanned += rows;
  return scanned;
}

function rowCount(table: TableSchema, state: CommittedState): bigint {
  let count = 0;
  for (const _ of state.committedRows(table.tableId)) count++;
  return BigInt(count);
}

/** Rows one key of an index on `columns` is expected to hold: rows / distinct keys. */
function indexRowEstimate(
  table: TableSchema,
  columns: readonly number[],
  state: CommittedState,
): bigint {
  const count = rowCount(table, state);
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
  for (const bytes of state.committedRows(table.tableId)) {
    const view = layout.view(bytes);
    keys.add(columns.map((c) => String(valueKey(view.value(c)))).join("\u0000"));
  }
  return count / BigInt(keys.size);
}
