/**
 * Name resolution and type checking of a parsed SELECT against the table schemas
 * (query-subscriptions.md §1.5, §1.6). Literals are converted to the type of the column they
 * are compared with; `:sender` is bound to the caller's identity.
 */
import type { AlgebraicType, Typespace } from "../protocol/mod.ts";
import type { TableSchema } from "../storage/mod.ts";
import type { CmpOp, Expr, FieldExpr, LiteralExpr, Operand, SelectStatement } from "./parse.ts";
import { SqlError } from "./sql_error.ts";
import { type Comparable, formatType, type Scalar, scalarOf } from "./_scalar.ts";
import { literalValue } from "./_literal.ts";

/**
 * A column's position by name: its accessor (source) name first, then its canonical name, as
 * SpacetimeDB resolves columns (query-subscriptions.md §1.5); -1 when neither matches.
 */
export function columnByName(schema: TableSchema, name: string): number {
  const accessor = schema.columnAccessors?.indexOf(name) ?? -1;
  if (accessor >= 0) return accessor;
  return schema.rowType.elements.findIndex((e) => e.name === name);
}

/** The catalog the checker reads: table lookup by name (canonical, then accessor) and schemas. */
export interface QueryCatalog {
  tableIdFromName(name: string): number | undefined;
  schema(tableId: number): TableSchema | undefined;
}

export interface QueryContext {
  /** The caller's identity; `:sender` binds to it. */
  sender: bigint;
  /** The database owner reads private tables and bypasses RLS. */
  isOwner: boolean;
}

/** One table in FROM (a self-join has two instances of one table). */
export interface TableInstance {
  schema: TableSchema;
  alias: string;
}

export interface ColumnRef {
  kind: "col";
  /** Index into CheckedSelect.tables. */
  instance: number;
  column: number;
}
export interface ValueRef {
  kind: "value";
  value: Comparable;
}
export type TypedOperand = ColumnRef | ValueRef;

export type TypedExpr =
  | { kind: "cmp"; op: CmpOp; left: TypedOperand; right: TypedOperand; scalar: Scalar }
  | { kind: "and" | "or"; left: TypedExpr; right: TypedExpr }
  | { kind: "const"; value: boolean };

export interface CheckedJoin {
  /** Instance joined in (index into tables); it joins on a column of an earlier instance. */
  instance: number;
  on: { left: ColumnRef; right: ColumnRef } | undefined;
}

/**
 * A top-level WHERE conjunct of the form `column <op> literal-or-:sender` (either order), as
 * SpacetimeDB's optimizer pushes it down onto its table before choosing join sides (§2.1 rule 6).
 * Computed from the WHERE as written, before constant folding.
 */
export interface PushedConjunct {
  instance: number;
  column: number;
  op: CmpOp;
}

export interface CheckedSelect {
  tables: TableInstance[];
  joins: CheckedJoin[];
  /** The instance whose whole rows are returned. */
  returns: number;
  where: TypedExpr | undefined;
  /** The WHERE's pushable conjuncts (for the subscription join-index rule). */
  pushed: PushedConjunct[];
  /** True when `:sender` appears: results depend on the caller. */
  usesSender: boolean;
  /** `ORDER BY … LIMIT n` of a top-N query (single table; topn.ts), absent otherwise. */
  topN?: CheckedTopN;
}

/** A top-N query's sort keys (columns of instance 0, in ORDER BY order) and its LIMIT. */
export interface CheckedTopN {
  keys: { column: number; descending: boolean }[];
  limit: number;
}

const SUBSCRIPTION_PROJECTION_ERROR =
  "Column projections are not supported in subscriptions; Subscriptions must return a table type";

function nameError(message: string): SqlError {
  return new SqlError(message, "name");
}
function typeError(message: string): SqlError {
  return new SqlError(message, "type");
}

function noSuchTable(name: string): SqlError {
  return nameError(`no such table: \`${name}\`. If the table exists, it may be marked private.`);
}

interface ColumnInfo {
  type: AlgebraicType;
  typespace: Typespace;
  scalar: Scalar | undefined;
}

export class Checker {
  readonly #catalog: QueryCatalog;
  readonly #context: QueryContext;
  readonly tables: TableInstance[] = [];
  usesSender = false;

  constructor(catalog: QueryCatalog, context: QueryContext) {
    this.#catalog = catalog;
    this.#context = context;
  }

  addTable(name: string, alias: string): number {
    const tableId = this.#catalog.tableIdFromName(name);
    const schema = tableId === undefined ? undefined : this.#catalog.schema(tableId);
    if (schema === undefined || (!schema.isPublic && !this.#context.isOwner)) {
      throw noSuchTable(name);
    }
    if (this.tables.some((t) => t.alias === alias)) throw nameError(`Duplicate name \`${alias}\``);
    this.tables.push({ schema, alias });
    return this.tables.length - 1;
  }

  instanceOf(alias: string): number {
    const index = this.tables.findIndex((t) => t.alias === alias);
    if (index < 0) throw nameError(`\`${alias}\` is not in scope`);
    return index;
  }

  resolveField(field: FieldExpr): ColumnRef {
    const instance = field.table === undefined ? 0 : this.instanceOf(field.table);
    const schema = this.tables[instance].schema;
    const column = columnByName(schema, field.column);
    if (column < 0) throw nameError(`\`${field.column}\` is not in scope`);
    return { kind: "col", instance, column };
  }

  columnInfo(ref: ColumnRef): ColumnInfo {
    const schema = this.tables[ref.instance].schema;
    const type = schema.rowType.elements[ref.column].algebraicType;
    return { type, typespace: schema.typespace, scalar: scalarOf(type, schema.typespace) };
  }

  /** A WHERE expression in a Bool position. */
  checkBool(expr: Expr): TypedExpr {
    switch (expr.kind) {
      case "and":
      case "or": {
        const left = this.checkBool(expr.left);
        const right = this.checkBool(expr.right);
        return foldLogic(expr.kind, left, right);
      }
      case "cmp":
        return this.#checkCmp(expr.op, expr.left, expr.right);
      case "lit": {
        if (expr.lit === "bool") return { kind: "const", value: expr.text === "true" };
        throw literalError(expr, "Bool");
      }
      case "param":
        throw typeError("Unexpected type: (expected) (__identity__: U256) != Bool (inferred)");
      case "field": {
        const ref = this.resolveField(expr);
        const info = this.columnInfo(ref);
        if (info.scalar?.kind !== "bool") {
          throw typeError(
            `Unexpected type: (expected) ${
              formatType(info.type, info.typespace)
            } != Bool (inferred)`,
          );
        }
        return {
          kind: "cmp",
          op: "=",
          left: ref,
          right: { kind: "value", value: 1 },
          scalar: info.scalar,
        };
      }
    }
  }

  #checkCmp(op: CmpOp, left: Operand, right: Operand): TypedExpr {
    if (
      left.kind === "lit" && right.kind === "lit" && left.lit === "bool" && right.lit === "bool"
    ) {
      return { kind: "const", value: applyOp(op, compareBools(left.text, right.text)) };
    }
    if (left.kind !== "field") {
      // The right side is typed first and the left one is read as its type.
      if (right.kind !== "field") {
        if (left.kind === "param" && right.kind === "lit") {
          throw typeError("Cannot resolve type for literal expression");
        }
        if (right.kind === "param" && left.kind === "lit") {
          const value = this.#operandAs(left, identityInfo(), "(__identity__: U256)");
          return constantCmp(op, value, this.#sender());
        }
        if (left.kind === "param" && right.kind === "param") {
          return { kind: "const", value: applyOp(op, 0) };
        }
        throw typeError("Cannot resolve type for literal expression");
      }
      const ref = this.resolveField(right);
      const info = this.columnInfo(ref);
      const value = this.#operandAs(left, info, formatType(info.type, info.typespace));
      return { kind: "cmp", op, left: { kind: "value", value }, right: ref, scalar: info.scalar! };
    }
    const leftRef = this.resolveField(left);
    const leftInfo = this.columnInfo(leftRef);
    const leftType = formatType(leftInfo.type, leftInfo.typespace);
    if (right.kind === "field") {
      const rightRef = this.resolveField(right);
      const rightInfo = this.columnInfo(rightRef);
      const rightType = formatType(rightInfo.type, rightInfo.typespace);
      if (leftType !== rightType) {
        throw typeError(`Unexpected type: (expected) ${leftType} != ${rightType} (inferred)`);
      }
      if (leftInfo.scalar === undefined) {
        throw typeError(`Invalid binary operator \`${op}\` for type \`${leftType}\``);
      }
      return { kind: "cmp", op, left: leftRef, right: rightRef, scalar: leftInfo.scalar };
    }
    const value = this.#operandAs(right, leftInfo, leftType);
    return {
      kind: "cmp",
      op,
      left: leftRef,
      right: { kind: "value", value },
      scalar: leftInfo.scalar!,
    };
  }

  #sender(): Comparable {
    this.usesSender = true;
    return this.#context.sender;
  }

  /** A literal or `:sender` read as the type of the column it is compared with. */
  #operandAs(
    operand: LiteralExpr | { kind: "param" },
    info: ColumnInfo,
    typeText: string,
  ): Comparable {
    if (operand.kind === "param") {
      if (info.scalar?.kind === "identity") return this.#sender();
      if (info.scalar?.kind === "bytes") return identityBytes(this.#sender() as bigint);
      throw typeError(`Unexpected type: (expected) (__identity__: U256) != ${typeText} (inferred)`);
    }
    const value = info.scalar === undefined ? undefined : literalValue(operand, info.scalar);
    if (value === undefined) throw literalError(operand, typeText);
    return value;
  }
}

function identityInfo(): ColumnInfo {
  return { type: { tag: "U256" }, typespace: [], scalar: { kind: "identity" } };
}

/** `:sender` against a byte-array column: the identity's 32 bytes, little-endian. */
function identityBytes(identity: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let rest = identity;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

function literalError(lit: LiteralExpr, typeText: string): SqlError {
  return typeError(
    `The literal expression \`${lit.text}\` cannot be parsed as type \`${typeText}\``,
  );
}

function compareBools(a: string, b: string): number {
  return a === b ? 0 : a === "true" ? 1 : -1;
}

export function applyOp(op: CmpOp, order: number): boolean {
  switch (op) {
    case "=":
      return order === 0;
    case "<>":
      return order !== 0;
    case "<":
      return order < 0;
    case "<=":
      return order <= 0;
    case ">":
      return order > 0;
    case ">=":
      return order >= 0;
  }
}

function constantCmp(op: CmpOp, left: Comparable, right: Comparable): TypedExpr {
  const order = left === right ? 0 : (left as bigint) < (right as bigint) ? -1 : 1;
  return { kind: "const", value: applyOp(op, order) };
}

export function foldLogic(kind: "and" | "or", left: TypedExpr, right: TypedExpr): TypedExpr {
  if (left.kind === "const") {
    if (kind === "and") return left.value ? right : left;
    return left.value ? left : right;
  }
  if (right.kind === "const") {
    if (kind === "and") return right.value ? left : right;
    return right.value ? right : left;
  }
  return { kind, left, right };
}

export interface CheckOptions {
  /** Subscriptions and one-off queries must return whole rows of one table. */
  subscription: boolean;
}

/** Resolves names and types of a parsed SELECT. Throws SqlError with SpacetimeDB's messages. */
export function checkSelect(
  statement: SelectStatement,
  catalog: QueryCatalog,
  context: QueryContext,
  options: CheckOptions = { subscription: true },
): CheckedSelect {
  const checker = new Checker(catalog, context);
  checker.addTable(statement.from.name, statement.from.alias);
  const joinInstances = statement.joins.map((j) => checker.addTable(j.table.name, j.table.alias));

  let returns = 0;
  const projection = statement.projection;
  if (projection.kind === "star") {
    if (statement.joins.length > 0) {
      throw new SqlError("SELECT * is not supported for joins", "type");
    }
  } else if (projection.kind === "tableStar") {
    returns = checker.instanceOf(projection.table);
  } else if (options.subscription) {
    throw new SqlError(SUBSCRIPTION_PROJECTION_ERROR, "type");
  } else {
    throw new SqlError(`Unsupported: column projections are not implemented yet`, "unsupported");
  }

  const joins: CheckedJoin[] = statement.joins.map((join, i) => {
    if (join.on === undefined) return { instance: joinInstances[i], on: undefined };
    const left = checker.resolveField(join.on.left);
    const right = checker.resolveField(join.on.right);
    const leftInfo = checker.columnInfo(left);
    const rightInfo = checker.columnInfo(right);
    const leftType = formatType(leftInfo.type, leftInfo.typespace);
    const rightType = formatType(rightInfo.type, rightInfo.typespace);
    if (leftType !== rightType) {
      throw typeError(`Unexpected type: (expected) ${leftType} != ${rightType} (inferred)`);
    }
    if (leftInfo.scalar === undefined) {
      throw typeError(`Invalid binary operator \`=\` for type \`${leftType}\``);
    }
    return { instance: joinInstances[i], on: { left, right } };
  });

  const where = statement.where === undefined ? undefined : checker.checkBool(statement.where);
  const pushed: PushedConjunct[] = [];
  collectPushed(statement.where, checker, pushed);
  const checked: CheckedSelect = {
    tables: checker.tables,
    joins,
    returns,
    where,
    pushed,
    usesSender: checker.usesSender,
  };
  if (statement.orderBy !== undefined) checked.topN = checkOrderBy(statement, checker);
  return checked;
}

/**
 * The ORDER BY columns of a top-N query (the parser allowed it: one table, a LIMIT in range).
 * Each must be a column of a type SQL can compare (§1.7), ordered as the B-tree indexes order it.
 */
function checkOrderBy(statement: SelectStatement, checker: Checker): CheckedTopN {
  const keys = statement.orderBy!.map((item) => {
    const ref = checker.resolveField(item.field);
    const info = checker.columnInfo(ref);
    if (info.scalar === undefined) {
      throw typeError(
        `Cannot ORDER BY \`${item.field.column}\`: values of type ` +
          `\`${formatType(info.type, info.typespace)}\` have no order`,
      );
    }
    return { column: ref.column, descending: item.descending };
  });
  return { keys, limit: Number(statement.limit) };
}

/** Each comparison with its sides swapped: `a < b` is `b > a`. */
export const FLIPPED_OPS: Record<CmpOp, CmpOp> = {
  "=": "=",
  "<>": "<>",
  "<": ">",
  "<=": ">=",
  ">": "<",
  ">=": "<=",
};

/** Top-level AND conjuncts `field op constant` / `constant op field` (names already resolved). */
function collectPushed(expr: Expr | undefined, checker: Checker, out: PushedConjunct[]): void {
  if (expr === undefined) return;
  if (expr.kind === "and") {
    collectPushed(expr.left, checker, out);
    collectPushed(expr.right, checker, out);
    return;
  }
  if (expr.kind !== "cmp") return;
  const constant = (o: Operand) => o.kind === "lit" || o.kind === "param";
  if (expr.left.kind === "field" && constant(expr.right)) {
    const ref = checker.resolveField(expr.left);
    out.push({ instance: ref.instance, column: ref.column, op: expr.op });
  } else if (expr.right.kind === "field" && constant(expr.left)) {
    const ref = checker.resolveField(expr.right);
    out.push({ instance: ref.instance, column: ref.column, op: FLIPPED_OPS[expr.op] });
  }
}
