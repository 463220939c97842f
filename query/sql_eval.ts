/**
 * Runs /sql statements (query-subscriptions.md §1.4): SELECTs over any number of joined tables
 * (hash join on `a.x = b.y`, nested loop for cross joins, WHERE conjuncts applied as soon as
 * their tables are joined), projections, COUNT and LIMIT; the row limit of `SET row_limit`;
 * INSERT, UPDATE and DELETE against a write transaction the caller opens and commits.
 */
import { SQL_JOIN_ROWS_MAX } from "../lib/limits.ts";
import {
  BinaryReader,
  compileProductDecoder,
  encodeValueToBytes,
  fixedSizeOf,
  type ProductType,
  skipValue,
  type Typespace,
  type Value,
} from "../protocol/mod.ts";
import type { TableSchema } from "../storage/mod.ts";
import { type ColumnRef, type QueryCatalog, type QueryContext, type TypedExpr } from "./check.ts";
import { parseSqlStatement } from "./parse.ts";
import { compileTuplePredicate, conjuncts, layoutOf } from "./plan.ts";
import {
  checkSqlStatement,
  isDml,
  type SqlDmlPlan,
  type SqlPlan,
  type SqlSelectPlan,
} from "./sql_check.ts";
import { SqlError } from "./sql_error.ts";
import { estimateSelectRowsScanned, rowLimitError } from "./row_estimate.ts";
import type { RowView } from "./_row_decode.ts";
import { scalarOf, type ValueKey, valueKey } from "./_scalar.ts";

/** Committed data as /sql reads it: user tables, st_var and the computed system tables. */
export interface SqlState extends QueryCatalog {
  /** Every committed row of the table as BSATN (an event table has none). */
  rows(tableId: number): Iterable<Uint8Array>;
  rowCount(tableId: number): number;
  /** `SET row_limit`'s value (st_var), if set. */
  rowLimit(): bigint | undefined;
}

/** The write side of a DML statement: the open transaction of the database. */
export interface SqlWriteTx {
  /** Live rows of the table (committed and this transaction's). */
  scan(tableId: number): Uint8Array[];
  /** Inserts one row; false when an identical row was already there (set semantics). */
  insert(tableId: number, row: Uint8Array): boolean;
  /** Deletes these rows; returns how many were live. */
  delete(tableId: number, rows: Uint8Array[]): number;
}

export interface SqlSelectResult {
  columns: ProductType;
  typespace: Typespace;
  rows: Uint8Array[];
}

export interface SqlDmlCounts {
  rowsInserted: number;
  rowsDeleted: number;
  rowsUpdated: number;
}

function hex64(identity: bigint): string {
  return identity.toString(16).padStart(64, "0");
}

/**
 * Parses and types `sql` with the /sql grammar. A write by anyone but the owner is refused
 * after typing (so a mistyped statement reports its type error first, as SpacetimeDB does).
 */
export function compileSql(sql: string, catalog: QueryCatalog, context: QueryContext): SqlPlan {
  const plan = checkSqlStatement(parseSqlStatement(sql), catalog, context);
  if (isDml(plan) && !context.isOwner) {
    throw new SqlError(
      `Caller ${hex64(context.sender)} is not authorized to run SQL DML statements`,
      "name",
    );
  }
  return plan;
}

// --- SELECT ---------------------------------------------------------------------------------

/** The highest table instance an expression reads (-1 for a constant). */
function maxInstance(expr: TypedExpr): number {
  switch (expr.kind) {
    case "const":
      return -1;
    case "and":
    case "or":
      return Math.max(maxInstance(expr.left), maxInstance(expr.right));
    case "cmp":
      return Math.max(
        expr.left.kind === "col" ? expr.left.instance : -1,
        expr.right.kind === "col" ? expr.right.instance : -1,
      );
  }
}

/** The ON conditions and WHERE conjuncts of a plan, as one list. */
function allConjuncts(plan: SqlSelectPlan): TypedExpr[] {
  const out: TypedExpr[] = [];
  for (const join of plan.joins) {
    if (join.on === undefined) continue;
    const schema = plan.tables[join.on.left.instance].schema;
    const scalar = scalarOf(
      schema.rowType.elements[join.on.left.column].algebraicType,
      schema.typespace,
    )!;
    out.push({ kind: "cmp", op: "=", left: join.on.left, right: join.on.right, scalar });
  }
  return conjuncts(plan.where, out);
}

/** An equality `col(k) = col(j)` with j < k, usable as a hash join on instance k. */
function equiJoinOn(
  expr: TypedExpr,
  k: number,
): { probe: ColumnRef; build: ColumnRef } | undefined {
  if (expr.kind !== "cmp" || expr.op !== "=") return undefined;
  const { left, right } = expr;
  if (left.kind !== "col" || right.kind !== "col") return undefined;
  if (left.instance === k && right.instance < k) return { build: left, probe: right };
  if (right.instance === k && left.instance < k) return { build: right, probe: left };
  return undefined;
}

function tooManyRows(joinRowsMax: number): SqlError {
  return new SqlError(
    `The query joins more than ${joinRowsMax} rows; add a join condition or a filter`,
    "limit",
  );
}

export interface EvaluateOptions {
  /** Join tuples the query may build (default SQL_JOIN_ROWS_MAX). */
  joinRowsMax?: number;
  /**
   * Wall-time budget of the whole SELECT: rows scanned and filtered, hash tables built, pairs a
   * join looks at (not bounded by the tuples it keeps: a self-join of 40k rows whose filter
   * admits nothing looks at 1.6e9) and tuples projected all count, so the clock is read every
   * ROWS_PER_CLOCK_READ of them and the query fails past `deadlineMs`.
   */
  deadline?: SqlDeadline;
}

export interface SqlDeadline {
  /** Monotonic time (of `nowMs`) after which the query fails. */
  deadlineMs: number;
  nowMs: () => number;
  /** Named in the error. */
  budgetMs: number;
  /** The owner's budget (`--owner-sql-budget-ms`) rather than the reducer budget: named in the error. */
  owner: boolean;
}

const ROWS_PER_CLOCK_READ = 1 << 16;

/**
 * The error of a query stopped at its time budget, naming which budget it was and how to raise it
 * (/sql here; one-off queries and subscriptions in worker/subscription_host.ts).
 */
export function queryTimeBudgetError(budgetMs: number, owner: boolean): SqlError {
  return new SqlError(
    owner
      ? `The query exceeded the owner's SQL time budget of ${budgetMs} ms and was stopped; ` +
        `add a join condition or a filter, or raise the budget with the server's ` +
        `--owner-sql-budget-ms`
      : `The query exceeded its time budget of ${budgetMs} ms and was stopped; ` +
        `add a join condition or a filter (queries of callers other than the owner have the ` +
        `reducer budget, the server's --reducer-budget-ms)`,
    "limit",
  );
}

/** A function to call once per row the query touches: throws past the deadline. */
function budgetTicker(deadline: SqlDeadline | undefined): () => void {
  if (deadline === undefined) return () => {};
  let rowsToClockRead = ROWS_PER_CLOCK_READ;
  return () => {
    if (--rowsToClockRead > 0) return;
    rowsToClockRead = ROWS_PER_CLOCK_READ;
    if (deadline.nowMs() > deadline.deadlineMs) {
      throw queryTimeBudgetError(deadline.budgetMs, deadline.owner);
    }
  };
}

function instanceRows(schema: TableSchema, state: SqlState, tick: () => void): RowView[] {
  const layout = layoutOf(schema);
  const out: RowView[] = [];
  for (const bytes of state.rows(schema.tableId)) {
    tick();
    out.push(layout.view(bytes));
  }
  return out;
}

/** The joined tuples that satisfy every condition, in no particular order. */
function joinedTuples(
  plan: SqlSelectPlan,
  state: SqlState,
  stopAfter: number,
  joinRowsMax: number,
  tick: () => void,
): RowView[][] {
  const pending = allConjuncts(plan).map((expr) => ({ expr, at: maxInstance(expr) }));
  if (pending.some((p) => p.expr.kind === "const" && !p.expr.value)) return [];
  const filtersAt = (k: number) =>
    pending.filter((p) => p.at === k || (k === 0 && p.at < 0)).map((p) => ({
      expr: p.expr,
      test: compileTuplePredicate(p.expr),
    }));

  const last = plan.tables.length - 1;
  let tuples: RowView[][] = [];
  const first = filtersAt(0);
  for (const view of instanceRows(plan.tables[0].schema, state, tick)) {
    const tuple = [view];
    if (first.every((f) => f.test(tuple))) {
      tuples.push(tuple);
      if (last === 0 && tuples.length >= stopAfter) return tuples;
    }
  }
  for (let k = 1; k <= last && tuples.length > 0; k++) {
    const filters = filtersAt(k);
    const rows = instanceRows(plan.tables[k].schema, state, tick);
    let hashed: { probe: ColumnRef; build: ColumnRef } | undefined;
    let rest = filters;
    for (const filter of filters) {
      hashed = equiJoinOn(filter.expr, k);
      if (hashed) {
        rest = filters.filter((f) => f !== filter);
        break;
      }
    }
    const next: RowView[][] = [];
    const stop = k === last ? stopAfter : Infinity;
    const emit = (tuple: RowView[], view: RowView): boolean => {
      tick();
      const joined = [...tuple, view];
      if (!rest.every((f) => f.test(joined))) return false;
      next.push(joined);
      if (next.length > joinRowsMax) throw tooManyRows(joinRowsMax);
      return next.length >= stop;
    };
    if (hashed) {
      const { build, probe } = hashed;
      const table = new Map<ValueKey, RowView[]>();
      for (const view of rows) {
        tick();
        const key = valueKey(view.value(build.column));
        const bucket = table.get(key);
        if (bucket) bucket.push(view);
        else table.set(key, [view]);
      }
      outer: for (const tuple of tuples) {
        const bucket = table.get(valueKey(tuple[probe.instance].value(probe.column)));
        if (!bucket) continue;
        for (const view of bucket) if (emit(tuple, view)) break outer;
      }
    } else {
      outer: for (const tuple of tuples) {
        for (const view of rows) if (emit(tuple, view)) break outer;
      }
    }
    tuples = next;
  }
  return tuples;
}

type OffsetsOf = (bytes: Uint8Array) => number[];
const offsetReaders = new WeakMap<TableSchema, OffsetsOf>();

/**
 * Start offsets of each column in a row, plus the end: fixed-size columns are added up, the
 * others skipped with a reader (compiled once per schema).
 */
function offsetsOf(schema: TableSchema): OffsetsOf {
  let compiled = offsetReaders.get(schema);
  if (compiled) return compiled;
  const elements = schema.rowType.elements;
  const sizes = elements.map((e) => fixedSizeOf(e.algebraicType, schema.typespace));
  const reader = new BinaryReader(new Uint8Array(0));
  compiled = (bytes) => {
    const offsets = new Array<number>(elements.length + 1);
    offsets[0] = 0;
    let at = 0;
    for (let i = 0; i < elements.length; i++) {
      const size = sizes[i];
      if (size !== undefined) at += size;
      else {
        reader.reset(bytes, at);
        skipValue(reader, elements[i].algebraicType, schema.typespace);
        at = reader.offset;
      }
      offsets[i + 1] = at;
    }
    return offsets;
  };
  offsetReaders.set(schema, compiled);
  return compiled;
}

/** The result rows (or the count) of a one-table SELECT, without building join tuples. */
function singleTableRows(
  plan: SqlSelectPlan,
  state: SqlState,
  limit: number,
  tick: () => void,
): Uint8Array[] | number {
  const schema = plan.tables[0].schema;
  const output = plan.output;
  const where = plan.where;
  if (where?.kind === "const" && !where.value) return output.kind === "count" ? 0 : [];
  const test = where === undefined || where.kind === "const"
    ? undefined
    : compileTuplePredicate(where);
  if (output.kind === "count" && test === undefined) return state.rowCount(schema.tableId);
  const layout = layoutOf(schema);
  const tuple: RowView[] = [];
  const project = output.kind === "columns"
    ? projector(output.refs.map((r) => r.column), offsetsOf(schema))
    : undefined;
  const out: Uint8Array[] = [];
  let count = 0;
  for (const bytes of state.rows(schema.tableId)) {
    tick();
    if (test !== undefined) {
      tuple[0] = layout.view(bytes);
      if (!test(tuple)) continue;
    }
    if (output.kind === "count") count++;
    else {
      out.push(project ? project(bytes) : bytes);
      if (out.length >= limit) break;
    }
  }
  return output.kind === "count" ? count : out;
}

/** Copies the chosen columns of a row into a new row, in the chosen order. */
function projector(columns: number[], offsetsOf: OffsetsOf): (bytes: Uint8Array) => Uint8Array {
  return (bytes) => {
    const at = offsetsOf(bytes);
    let length = 0;
    for (const c of columns) length += at[c + 1] - at[c];
    const row = new Uint8Array(length);
    let pos = 0;
    for (const c of columns) {
      const start = at[c];
      const end = at[c + 1];
      // Columns are short: a loop beats a subarray view plus set().
      if (end - start <= 64) { for (let i = start; i < end; i++) row[pos++] = bytes[i]; }
      else {
        row.set(bytes.subarray(start, end), pos);
        pos += end - start;
      }
    }
    return row;
  };
}

function countRow(count: number): Uint8Array {
  const row = new Uint8Array(8);
  new DataView(row.buffer).setBigUint64(0, BigInt(count), true);
  return row;
}

/** The result rows of a SELECT as BSATN of `plan.columns`. */
export function evaluateSelect(
  plan: SqlSelectPlan,
  state: SqlState,
  options: EvaluateOptions = {},
): SqlSelectResult {
  const joinRowsMax = options.joinRowsMax ?? SQL_JOIN_ROWS_MAX;
  const tick = budgetTicker(options.deadline);
  const limit = plan.limit === undefined ? Infinity : Number(plan.limit);
  const output = plan.output;
  const result = (rows: Uint8Array[]) => ({
    columns: plan.columns,
    typespace: plan.typespace,
    rows,
  });
  if (plan.tables.length === 1) {
    if (limit === 0 && output.kind !== "count") return result([]);
    const rows = singleTableRows(plan, state, limit, tick);
    if (typeof rows !== "number") return result(rows);
    return result(limit >= 1 ? [countRow(rows)] : []);
  }
  if (output.kind === "count") {
    // LIMIT applies to the count's one output row, not to what is counted.
    const count = joinedTuples(plan, state, Infinity, joinRowsMax, tick).length;
    return result(limit >= 1 ? [countRow(count)] : []);
  }
  if (limit === 0) return result([]);
  const tuples = joinedTuples(plan, state, limit, joinRowsMax, tick);
  if (tuples.length > limit) tuples.length = limit;
  if (output.kind === "rows") return result(tuples.map((t) => t[output.instance].bytes));
  const offsets = new Map<RowView, number[]>();
  const rows = tuples.map((tuple) => {
    tick();
    const parts: Uint8Array[] = [];
    let length = 0;
    for (const ref of output.refs) {
      const view = tuple[ref.instance];
      let at = offsets.get(view);
      if (at === undefined) {
        at = offsetsOf(plan.tables[ref.instance].schema)(view.bytes);
        offsets.set(view, at);
      }
      const part = view.bytes.subarray(at[ref.column], at[ref.column + 1]);
      parts.push(part);
      length += part.length;
    }
    const row = new Uint8Array(length);
    let pos = 0;
    for (const part of parts) {
      row.set(part, pos);
      pos += part.length;
    }
    return row;
  });
  return result(rows);
}

/** `Estimated cardinality (N rows) exceeds limit (M rows)` for a non-owner over the row limit. */
export function checkRowLimit(plan: SqlSelectPlan, state: SqlState, context: QueryContext): void {
  if (context.isOwner) return;
  const limit = state.rowLimit();
  if (limit === undefined) return;
  const estimate = estimateSelectRowsScanned(plan, state);
  if (estimate > limit) throw rowLimitError(estimate, limit);
}

// --- DML ------------------------------------------------------------------------------------

function rowPredicate(schema: TableSchema, where: TypedExpr | undefined) {
  if (where === undefined) return () => true;
  const test = compileTuplePredicate(where);
  const layout = layoutOf(schema);
  return (bytes: Uint8Array) => test([layout.view(bytes)]);
}

function encoderFor(schema: TableSchema): (values: Value[]) => Uint8Array {
  const type = { tag: "Product" as const, value: schema.rowType };
  return (values) => encodeValueToBytes(type, values, schema.typespace);
}

/**
 * Applies INSERT, UPDATE or DELETE to `tx` (SpacetimeDB's semantics: set semantics on insert,
 * UPDATE deletes every matched row and then inserts the new ones). A constraint violation
 * throws from `tx`; the caller rolls back.
 */
export function executeDml(plan: SqlDmlPlan, tx: SqlWriteTx): SqlDmlCounts {
  const counts = { rowsInserted: 0, rowsDeleted: 0, rowsUpdated: 0 };
  const table = plan.table;
  switch (plan.kind) {
    case "insert": {
      const encode = encoderFor(table);
      for (const values of plan.rows) {
        if (tx.insert(table.tableId, encode(values))) counts.rowsInserted++;
      }
      return counts;
    }
    case "delete": {
      const matches = rowPredicate(table, plan.where);
      const doomed = tx.scan(table.tableId).filter(matches);
      counts.rowsDeleted = tx.delete(table.tableId, doomed);
      return counts;
    }
    case "update": {
      const matches = rowPredicate(table, plan.where);
      const matched = tx.scan(table.tableId).filter(matches);
      const decode = compileProductDecoder(table.rowType, table.typespace);
      const encode = encoderFor(table);
      const updated = matched.map((bytes) => {
        const values = decode(bytes) as Value[];
        for (const { column, value } of plan.assignments) values[column] = value;
        return encode(values);
      });
      tx.delete(table.tableId, matched);
      for (const row of updated) tx.insert(table.tableId, row);
      counts.rowsUpdated = matched.length;
      return counts;
    }
  }
}

export type { SqlPlan, SqlSelectPlan };
