/**
 * Compiles a checked SELECT into a QueryPlan: a list of fragments, each a predicate over rows
 * of one table plus the `column = value` conjuncts used for routing and index lookups
 * (query-subscriptions.md §8.2). Two queries with the same plan key return the same rows, so
 * the key is what subscriptions are shared by.
 */
import type { TableSchema } from "../storage/mod.ts";
import type { CmpOp } from "./parse.ts";
import type { CheckedSelect, TypedExpr, TypedOperand } from "./check.ts";
import { applyOp } from "./check.ts";
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

/** `SELECT * FROM table WHERE predicate`. Joins will add a semijoin fragment kind. */
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
}
export type Fragment = SelectFragment;

export interface QueryPlan {
  /** Canonical text of the plan; equal keys give equal results. */
  key: string;
  /** The table whose rows the query returns. */
  returnTable: TableSchema;
  fragments: Fragment[];
  usesSender: boolean;
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

const FLIPPED: Record<CmpOp, CmpOp> = {
  "=": "=",
  "<>": "<>",
  "<": ">",
  "<=": ">=",
  ">": "<",
  ">=": "<=",
};

/** Puts the column on the left when one side is a constant. */
function normalizeCmp(expr: Extract<TypedExpr, { kind: "cmp" }>) {
  if (expr.left.kind === "value" && expr.right.kind === "col") {
    return { ...expr, op: FLIPPED[expr.op], left: expr.right, right: expr.left };
  }
  return expr;
}

function operandKey(operand: TypedOperand): string {
  return operand.kind === "col" ? `c${operand.column}` : formatComparable(operand.value);
}

function exprKey(expr: TypedExpr): string {
  switch (expr.kind) {
    case "const":
      return expr.value ? "true" : "false";
    case "and":
    case "or":
      return `(${exprKey(expr.left)} ${expr.kind} ${exprKey(expr.right)})`;
    case "cmp": {
      const e = normalizeCmp(expr);
      return `(${operandKey(e.left)} ${e.op} ${operandKey(e.right)})`;
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

function compilePredicate(expr: TypedExpr): RowPredicate {
  switch (expr.kind) {
    case "const": {
      const value = expr.value;
      return () => value;
    }
    case "and": {
      const left = compilePredicate(expr.left);
      const right = compilePredicate(expr.right);
      return (row) => left(row) && right(row);
    }
    case "or": {
      const left = compilePredicate(expr.left);
      const right = compilePredicate(expr.right);
      return (row) => left(row) || right(row);
    }
    case "cmp": {
      const e = normalizeCmp(expr);
      const op = e.op;
      const compare = comparatorFor(e.scalar);
      if (e.left.kind !== "col") {
        const value = applyOp(op, compare(e.left.value, (e.right as { value: Comparable }).value));
        return () => value;
      }
      const column = e.left.column;
      if (e.right.kind === "value") {
        const value = e.right.value;
        const exact = e.scalar.kind !== "float" && typeof value !== "object";
        if (exact && op === "=") return (row) => row.value(column) === value;
        if (exact && op === "<>") return (row) => row.value(column) !== value;
        return (row) => applyOp(op, compare(row.value(column), value));
      }
      const other = e.right.column;
      return (row) => applyOp(op, compare(row.value(column), row.value(other)));
    }
  }
}

function collectEqualities(expr: TypedExpr | undefined, out: Equality[]): void {
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

/** Builds the plan of a checked query. Joins are refused until semijoin fragments exist. */
export function planSelect(checked: CheckedSelect): QueryPlan {
  if (checked.tables.length > 1) {
    throw new SqlError("Unsupported: joins are not implemented yet", "plan");
  }
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
  };
  const key = `select ${table.tableId} where ${where === undefined ? "true" : exprKey(where)}`;
  return { key, returnTable: table, fragments: [fragment], usesSender: checked.usesSender };
}

/** Whether `bytes` is a row of the fragment's result. */
export function fragmentMatches(fragment: SelectFragment, bytes: Uint8Array): boolean {
  if (fragment.never) return false;
  if (fragment.predicate === undefined) return true;
  return fragment.predicate(fragment.layout.view(bytes));
}
