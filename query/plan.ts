/**
 * Compiles a checked SELECT into a QueryPlan: a list of fragments, each a predicate over rows
 * of one table plus the `column = value` conjuncts used for routing and index lookups
 * (query-subscriptions.md §8.2). Two queries with the same plan key return the same rows, so
 * the key is what subscriptions are shared by.
 */
import { SUBSCRIPTION_JOIN_TABLES_MAX } from "../lib/limits.ts";
import type { TableSchema } from "../storage/mod.ts";
import type { CheckedJoin, CheckedSelect, TypedExpr, TypedOperand } from "./check.ts";
import { applyOp, FLIPPED_OPS } from "./check.ts";
import { SqlError } from "./sql_error.ts";
import { RowLayout, type RowView } from "./_row_decode.ts";
import {
  type Comparable,
  compareBytes,
  compareComparable,
  compareNumbers,
  formatComparable,
  type Scalar,
  type ValueKey,
  valueKey,
} from "./_scalar.ts";

export type RowPredicate = (row: RowView) => boolean;

export interface Equality {
  column: number;
  value: Comparable;
  key: ValueKey;
}

/**
 * `SELECT * FROM table WHERE predicate`: the rows of one table that pass a predicate. Its delta
 * is the filtered table delta (no netting needed).
 */
export interface SelectFragment {
  kind: "select";
  table: TableSchema;
  layout: RowLayout;
  /** Undefined when every row matches. */
  predicate: RowPredicate | undefined;
  /** The WHERE clause is constantly false: nothing ever matches. */
  never: boolean;
  /** Top-level `column = constant` conjuncts. */
  equalities: Equality[];
  /** How many top-level WHERE conjuncts the predicate has (the row-limit estimate). */
  conjuncts?: number;
}

/** One table instance of a join fragment with the WHERE conjuncts that read only it. */
export interface PlanInstance {
  table: TableSchema;
  /** The alias (or table name) the query gave it. */
  alias: string;
  layout: RowLayout;
  /** The conjuncts over this instance alone; undefined when there are none. */
  predicate: RowPredicate | undefined;
  /** Top-level `column = constant` conjuncts on this instance (index lookups, routing). */
  equalities: Equality[];
  /** How many top-level WHERE conjuncts read only this instance (the row-limit estimate). */
  conjuncts?: number;
}

/** A column of one instance of a join fragment. */
export interface InstanceColumn {
  instance: number;
  column: number;
}

/** An equi-join condition `left = right` between two instances (an `ON a.x = b.y`). */
export interface JoinCondition {
  left: InstanceColumn;
  right: InstanceColumn;
}

/** A predicate over one tuple of rows, indexed by instance. */
export type TuplePredicate = (rows: readonly RowView[]) => boolean;

/**
 * `SELECT t.* FROM t JOIN u ON ... [JOIN ...] WHERE ...`: bag semantics, i.e. the returned
 * instance's row once per joined tuple that passes every predicate (query-subscriptions.md
 * §0.3). Evaluation lives in `_join.ts` (initial rows, one-off queries) and `delta.ts`
 * (incremental Z-set deltas); both accept any number of instances and conditions, including
 * none (a cross join).
 */
export interface JoinFragment {
  kind: "join";
  instances: PlanInstance[];
  conditions: JoinCondition[];
  /** The WHERE conjuncts that read two or more instances; undefined when there are none. */
  residual: TuplePredicate | undefined;
  /** The instance whose rows are returned. */
  returns: number;
  /** The WHERE clause is constantly false: nothing ever matches. */
  never: boolean;
  /** The returned table (`instances[returns].table`). */
  table: TableSchema;
}

export type Fragment = SelectFragment | JoinFragment;

/**
 * A compiled query: one or more fragments whose results are added as bags (row-level security
 * will OR rules as extra fragments). Fragments are evaluated separately and never netted
 * against each other (§2.5).
 */
export interface QueryPlan {
  /** Canonical text of the plan; equal keys give equal results. */
  key: string;
  /** The table whose rows the query returns. */
  returnTable: TableSchema;
  fragments: Fragment[];
  usesSender: boolean;
  /**
   * Top-N queries (`ORDER BY … LIMIT n`, topn.ts): one select fragment whose rows are sorted
   * and cut to the first `limit`; subscriptions keep a shared window per plan key.
   */
  topN?: TopNSpec;
}

/**
 * The order of a top-N plan: the ORDER BY columns with their directions, then the primary key
 * ascending (when the table has one), then the row's BSATN bytes: a total order on rows.
 */
export interface TopNSpec {
  keys: { column: number; descending: boolean }[];
  primaryKey: number[];
  limit: number;
}

const layouts = new WeakMap<TableSchema, RowLayout>();

/** The (cached) row layout of a table schema. */
export function layoutOf(schema: TableSchema): RowLayout {
  let layout = layouts.get(schema);
  if (layout === undefined) {
    layout = new RowLayout(schema.rowType, schema.typespace);
    layouts.set(schema, layout);
  }
  return layout;
}

/** Puts the column on the left when one side is a constant. */
function normalizeCmp(expr: Extract<TypedExpr, { kind: "cmp" }>) {
  if (expr.left.kind === "value" && expr.right.kind === "col") {
    return { ...expr, op: FLIPPED_OPS[expr.op], left: expr.right, right: expr.left };
  }
  return expr;
}

function operandKey(operand: TypedOperand, qualified: boolean): string {
  if (operand.kind !== "col") return formatComparable(operand.value);
  return qualified ? `i${operand.instance}c${operand.column}` : `c${operand.column}`;
}

function exprKey(expr: TypedExpr, qualified = false): string {
  switch (expr.kind) {
    case "const":
      return expr.value ? "true" : "false";
    case "and":
    case "or":
      return `(${exprKey(expr.left, qualified)} ${expr.kind} ${exprKey(expr.right, qualified)})`;
    case "cmp": {
      const e = normalizeCmp(expr);
      return `(${operandKey(e.left, qualified)} ${e.op} ${operandKey(e.right, qualified)})`;
    }
  }
}

function comparatorFor(scalar: Scalar): (a: Comparable, b: Comparable) => number {
  switch (scalar.kind) {
    case "float":
      return compareNumbers as (a: Comparable, b: Comparable) => number;
    case "string":
    case "bytes":
      return compareBytes as (a: Comparable, b: Comparable) => number;
    default:
      return compareComparable;
  }
}

/** How a compiled WHERE reads one column operand from its input (a row, or a tuple of rows). */
type ColumnReader<Input> = (instance: number, column: number) => (input: Input) => Comparable;

/**
 * The one WHERE compiler (subscriptions, one-off queries, `/sql` SELECT and DML): a typed
 * expression to a closure over `Input`. A comparison of a column with a constant that is not a
 * float or a byte string tests identity directly (`===`), its hot path.
 */
function compileWhere<Input>(
  expr: TypedExpr,
  read: ColumnReader<Input>,
): (input: Input) => boolean {
  switch (expr.kind) {
    case "const": {
      const value = expr.value;
      return () => value;
    }
    case "and": {
      const left = compileWhere(expr.left, read);
      const right = compileWhere(expr.right, read);
      return (input) => left(input) && right(input);
    }
    case "or": {
      const left = compileWhere(expr.left, read);
      const right = compileWhere(expr.right, read);
      return (input) => left(input) || right(input);
    }
    case "cmp": {
      const e = normalizeCmp(expr);
      const op = e.op;
      const compare = comparatorFor(e.scalar);
      if (e.left.kind !== "col") {
        const value = applyOp(op, compare(e.left.value, (e.right as { value: Comparable }).value));
        return () => value;
      }
      const left = read(e.left.instance, e.left.column);
      if (e.right.kind === "value") {
        const value = e.right.value;
        const exact = e.scalar.kind !== "float" && typeof value !== "object";
        if (exact && op === "=") return (input) => left(input) === value;
        if (exact && op === "<>") return (input) => left(input) !== value;
        return (input) => applyOp(op, compare(left(input), value));
      }
      const right = read(e.right.instance, e.right.column);
      return (input) => applyOp(op, compare(left(input), right(input)));
    }
  }
}

const readRow: ColumnReader<RowView> = (_instance, column) => (row) => row.value(column);
const readTuple: ColumnReader<readonly RowView[]> = (instance, column) => (rows) =>
  rows[instance].value(column);

/** A predicate over the rows of one instance (every column it reads belongs to that instance). */
function compilePredicate(expr: TypedExpr): RowPredicate {
  return compileWhere(expr, readRow);
}

/** A predicate over a tuple of rows (columns of several instances). */
export function compileTuplePredicate(expr: TypedExpr): TuplePredicate {
  return compileWhere(expr, readTuple);
}

/** The top-level `column = constant` conjuncts of `expr`, in WHERE order. */
export function collectEqualities(expr: TypedExpr | undefined, out: Equality[]): void {
  if (expr === undefined) return;
  if (expr.kind === "and") {
    collectEqualities(expr.left, out);
    collectEqualities(expr.right, out);
  } else if (expr.kind === "cmp") {
    const e = normalizeCmp(expr);
    if (e.op === "=" && e.left.kind === "col" && e.right.kind === "value") {
      out.push({ column: e.left.column, value: e.right.value, key: valueKey(e.right.value) });
    }
  }
}

/** The top-level AND conjuncts of a (folded) WHERE. */
export function conjuncts(expr: TypedExpr | undefined, out: TypedExpr[] = []): TypedExpr[] {
  if (expr === undefined) return out;
  if (expr.kind === "and") {
    conjuncts(expr.left, out);
    conjuncts(expr.right, out);
  } else out.push(expr);
  return out;
}

function instancesOf(expr: TypedExpr, out: Set<number>): Set<number> {
  if (expr.kind === "and" || expr.kind === "or") {
    instancesOf(expr.left, out);
    instancesOf(expr.right, out);
  } else if (expr.kind === "cmp") {
    if (expr.left.kind === "col") out.add(expr.left.instance);
    if (expr.right.kind === "col") out.add(expr.right.instance);
  }
  return out;
}

function andAll(exprs: TypedExpr[]): TypedExpr | undefined {
  let out: TypedExpr | undefined;
  for (const e of exprs) out = out === undefined ? e : { kind: "and", left: out, right: e };
  return out;
}

export interface PlanOptions {
  /**
   * Subscriptions (not one-off queries) must pass SpacetimeDB's join rules: an index on the
   * probe side of every join, no event table as the lookup side, at most two tables (§2.1).
   */
  subscription: boolean;
}

const REQUIRE_INDEXES = "Subscriptions require indexes on join columns";

function planError(message: string): SqlError {
  return new SqlError(message, "plan");
}

/**
 * SpacetimeDB's effective rule (§2.1 rule 6): joins form a left-deep tree in FROM order; the
 * probe side of each join is the newly joined table, except that the first join swaps when its
 * left table received no pushed WHERE conjunct and its right one did. The probe table needs an
 * index whose last column is its join column and whose other columns are fixed by pushed
 * equality conjuncts. Then no event table may be a probe side. SpacetimeDB then refuses more
 * than two tables; we accept up to SUBSCRIPTION_JOIN_TABLES_MAX (a deliberate extension: every
 * join still needs its index, and the deltas stay exact, see delta.ts).
 */
function checkSubscriptionJoins(checked: CheckedSelect): void {
  const pushedOn = (instance: number) => checked.pushed.some((p) => p.instance === instance);
  const probes: number[] = [];
  checked.joins.forEach((join, k) => {
    if (join.on === undefined) throw planError(REQUIRE_INDEXES);
    const { left, right } = join.on;
    const newSide = left.instance === join.instance
      ? left
      : right.instance === join.instance
      ? right
      : undefined;
    const oldSide = newSide === left ? right : left;
    if (newSide === undefined || oldSide.instance >= join.instance) {
      throw planError(REQUIRE_INDEXES);
    }
    let probe = newSide;
    if (k === 0 && !pushedOn(oldSide.instance) && pushedOn(newSide.instance)) probe = oldSide;
    const fixed = new Set(
      checked.pushed.filter((p) => p.instance === probe.instance && p.op === "=").map((p) =>
        p.column
      ),
    );
    const table = checked.tables[probe.instance].schema;
    const indexed = table.indexes.some((index) => {
      const columns = index.columns;
      if (columns.length === 0 || columns[columns.length - 1] !== probe.column) return false;
      return columns.slice(0, -1).every((c) => fixed.has(c));
    });
    if (!indexed) throw planError(REQUIRE_INDEXES);
    probes.push(probe.instance);
  });
  if (probes.some((instance) => checked.tables[instance].schema.isEvent)) {
    throw planError("Event tables cannot be used as the lookup table in subscription joins");
  }
  if (checked.tables.length > SUBSCRIPTION_JOIN_TABLES_MAX) {
    throw planError(`Invalid number of tables in subscription: ${checked.tables.length}`);
  }
}

/** Builds the plan of a checked query; subscriptions are held to SpacetimeDB's join rules. */
export function planSelect(
  checked: CheckedSelect,
  options: PlanOptions = { subscription: true },
): QueryPlan {
  if (checked.topN !== undefined) return planTopN(checked);
  if (checked.tables.length === 1) return planSingle(checked);
  if (options.subscription) checkSubscriptionJoins(checked);
  return planJoin(checked);
}

function planSingle(checked: CheckedSelect): QueryPlan {
  const table = checked.tables[0].schema;
  const where = checked.where;
  const never = where?.kind === "const" && !where.value;
  const always = where === undefined || (where.kind === "const" && where.value);
  const equalities: Equality[] = [];
  if (!never) collectEqualities(where, equalities);
  const fragment: SelectFragment = {
    kind: "select",
    table,
    layout: layoutOf(table),
    predicate: always || never ? undefined : compilePredicate(where!),
    never,
    equalities,
    conjuncts: always || never ? 0 : conjuncts(where).length,
  };
  const key = `select ${table.tableId} where ${where === undefined ? "true" : exprKey(where)}`;
  return { key, returnTable: table, fragments: [fragment], usesSender: checked.usesSender };
}

/** A top-N query: the single-table plan, sorted and cut (its key names the order and limit). */
function planTopN(checked: CheckedSelect): QueryPlan {
  const topN = checked.topN!;
  if (checked.tables.length !== 1) {
    // The parser refuses joins; row-level security expansions are merged or refused first.
    throw planError("ORDER BY ... LIMIT subscriptions read exactly one table");
  }
  const table = checked.tables[0].schema;
  if (table.isEvent) {
    throw planError(
      `ORDER BY ... LIMIT is not supported on event table \`${table.name}\`: its rows do not stay`,
    );
  }
  const plan = planSingle(checked);
  const order = topN.keys.map((k) => `c${k.column} ${k.descending ? "desc" : "asc"}`).join(",");
  return {
    ...plan,
    key: `${plan.key} order ${order} limit ${topN.limit}`,
    topN: { keys: topN.keys, primaryKey: table.primaryKey, limit: topN.limit },
  };
}

/**
 * A join's WHERE split into the conjuncts that read one instance (per instance) and the rest
 * (the residual over tuples); a constantly false WHERE gives none.
 */
export function splitJoinWhere(
  where: TypedExpr | undefined,
  instanceCount: number,
): { perInstance: TypedExpr[][]; residual: TypedExpr[] } {
  const never = where?.kind === "const" && !where.value;
  const perInstance: TypedExpr[][] = Array.from({ length: instanceCount }, () => []);
  const residual: TypedExpr[] = [];
  for (const conjunct of never ? [] : conjuncts(where)) {
    if (conjunct.kind === "const") continue; // folding leaves only a lone `true` here
    const used = instancesOf(conjunct, new Set());
    if (used.size === 1) perInstance[[...used][0]].push(conjunct);
    else residual.push(conjunct);
  }
  return { perInstance, residual };
}

/** The `ON a.x = b.y` conditions of a query's joins (a cross join has none). */
export function joinConditions(joins: readonly CheckedJoin[]): JoinCondition[] {
  const conditions: JoinCondition[] = [];
  for (const join of joins) {
    if (join.on === undefined) continue;
    const { left, right } = join.on;
    conditions.push({
      left: { instance: left.instance, column: left.column },
      right: { instance: right.instance, column: right.column },
    });
  }
  return conditions;
}

function planJoin(checked: CheckedSelect): QueryPlan {
  const where = checked.where;
  const never = where?.kind === "const" && !where.value;
  const { perInstance, residual } = splitJoinWhere(where, checked.tables.length);
  const instances: PlanInstance[] = checked.tables.map((t, i) => {
    const expr = andAll(perInstance[i]);
    const equalities: Equality[] = [];
    collectEqualities(expr, equalities);
    return {
      table: t.schema,
      alias: t.alias,
      layout: layoutOf(t.schema),
      predicate: expr === undefined ? undefined : compilePredicate(expr),
      equalities,
      conjuncts: perInstance[i].length,
    };
  });
  const conditions = joinConditions(checked.joins);
  const residualExpr = andAll(residual);
  const fragment: JoinFragment = {
    kind: "join",
    instances,
    conditions,
    residual: residualExpr === undefined ? undefined : compileTuplePredicate(residualExpr),
    returns: checked.returns,
    never,
    table: checked.tables[checked.returns].schema,
  };
  const key = [
    `join returns ${checked.returns}`,
    `from ${checked.tables.map((t) => t.schema.tableId).join(",")}`,
    `on ${
      conditions.map((c) =>
        `i${c.left.instance}c${c.left.column}=i${c.right.instance}c${c.right.column}`
      ).join(",")
    }`,
    `where ${
      never
        ? "false"
        : perInstance.map((list) => list.map((e) => exprKey(e, true)).join("&")).join("|")
    }`,
    `residual ${residual.map((e) => exprKey(e, true)).join("&")}`,
  ].join(" ");
  return {
    key,
    returnTable: fragment.table,
    fragments: [fragment],
    usesSender: checked.usesSender,
  };
}

/** Whether `bytes` is a row of a single-table fragment's result. */
export function fragmentMatches(fragment: SelectFragment, bytes: Uint8Array): boolean {
  if (fragment.never) return false;
  if (fragment.predicate === undefined) return true;
  return fragment.predicate(fragment.layout.view(bytes));
}
