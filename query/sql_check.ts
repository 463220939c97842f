/**
 * Name resolution and typing of the /sql grammar (query-subscriptions.md §1.4-§1.6): SELECT
 * with projections, aliases, `COUNT(*) AS n`, LIMIT and joins of any number of tables, and the
 * statements INSERT, UPDATE, DELETE, SET and SHOW. WHERE clauses are typed by the subscription
 * checker (check.ts), so both grammars read literals alike; the results differ: a /sql query
 * has its own column list, not a table's row type.
 */
import type { AlgebraicType, ProductType, Typespace, Value } from "../protocol/mod.ts";
import { resolveType } from "../protocol/mod.ts";
import type { TableSchema } from "../storage/mod.ts";
import {
  type CheckedJoin,
  Checker,
  columnByName,
  type ColumnRef,
  type QueryCatalog,
  type QueryContext,
  type TableInstance,
  type TypedExpr,
} from "./check.ts";
import type {
  DeleteStatement,
  InsertStatement,
  LiteralExpr,
  SelectStatement,
  SetStatement,
  ShowStatement,
  SqlStatement,
  UpdateStatement,
} from "./parse.ts";
import { SqlError } from "./sql_error.ts";
import { formatType, scalarOf } from "./_scalar.ts";
import { literalValue, parseDecimalInteger } from "./_literal.ts";
import { isSystemTableId, ST_VAR_NAME, ST_VAR_U64_TAG } from "./system_tables.ts";

const U64: AlgebraicType = { tag: "U64" };
const U64_MAX = (1n << 64n) - 1n;

/** What a /sql SELECT returns per joined tuple. */
export type SqlOutput =
  | { kind: "rows"; instance: number }
  | { kind: "columns"; refs: ColumnRef[] }
  | { kind: "count" };

export interface SqlSelectPlan {
  kind: "select";
  tables: TableInstance[];
  joins: CheckedJoin[];
  where: TypedExpr | undefined;
  output: SqlOutput;
  /** The result's columns (names and types). */
  columns: ProductType;
  /** The typespace the column types' Refs point into. */
  typespace: Typespace;
  limit: bigint | undefined;
}

export interface SqlInsertPlan {
  kind: "insert";
  table: TableSchema;
  /** One value list per row, in table column order. */
  rows: Value[][];
}

export interface SqlUpdatePlan {
  kind: "update";
  table: TableSchema;
  assignments: { column: number; value: Value }[];
  where: TypedExpr | undefined;
}

export interface SqlDeletePlan {
  kind: "delete";
  table: TableSchema;
  where: TypedExpr | undefined;
}

export type SqlDmlPlan = SqlInsertPlan | SqlUpdatePlan | SqlDeletePlan;
export type SqlPlan = SqlSelectPlan | SqlDmlPlan;

function typeError(message: string): SqlError {
  return new SqlError(message, "type");
}
function nameError(message: string): SqlError {
  return new SqlError(message, "name");
}

/** Types a /sql statement. SET becomes an INSERT into st_var, SHOW a SELECT on it (§1.4). */
export function checkSqlStatement(
  statement: SqlStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlPlan {
  switch (statement.kind) {
    case "select":
      return checkSqlSelect(statement, catalog, context);
    case "insert":
      return checkInsert(statement, catalog, context);
    case "update":
      return checkUpdate(statement, catalog, context);
    case "delete":
      return checkDelete(statement, catalog, context);
    case "set":
      return checkSet(statement, catalog, context);
    case "show":
      return checkShow(statement, catalog, context);
  }
}

/** True for statements that write (owner only). */
export function isDml(plan: SqlPlan): plan is SqlDmlPlan {
  return plan.kind !== "select";
}

export function checkSqlSelect(
  statement: SelectStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlSelectPlan {
  // SpacetimeDB's order: FROM (each JOIN's ON sees the tables up to it), WHERE, projection,
  // LIMIT; so the first error reported is the one it reports.
  const checker = new Checker(catalog, context);
  checker.addTable(statement.from.name, statement.from.alias);
  const tables = checker.tables;
  const joins: CheckedJoin[] = statement.joins.map((join) => {
    if (tables.some((t) => t.alias === join.table.alias)) {
      throw nameError(`Duplicate name \`${join.table.alias}\``);
    }
    const instance = checker.addTable(join.table.name, join.table.alias);
    if (join.on === undefined) return { instance, on: undefined };
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
    return { instance, on: { left, right } };
  });
  const where = statement.where === undefined ? undefined : checker.checkBool(statement.where);

  let output: SqlOutput;
  let columns: ProductType;
  const projection = statement.projection;
  switch (projection.kind) {
    case "star":
      if (statement.joins.length > 0) {
        throw new SqlError("SELECT * is not supported for joins", "type");
      }
      output = { kind: "rows", instance: 0 };
      columns = tables[0].schema.rowType;
      break;
    case "tableStar": {
      const instance = checker.instanceOf(projection.table);
      output = { kind: "rows", instance };
      columns = tables[instance].schema.rowType;
      break;
    }
    case "count":
      output = { kind: "count" };
      columns = { elements: [{ name: projection.alias, algebraicType: U64 }] };
      break;
    case "columns": {
      const refs: ColumnRef[] = [];
      const elements: ProductType["elements"] = [];
      const names = new Set<string>();
      for (const item of projection.items) {
        const ref = checker.resolveField(item.field);
        const name = item.alias ?? item.field.column;
        if (names.has(name)) throw nameError(`Duplicate name \`${name}\``);
        names.add(name);
        refs.push(ref);
        const schema = tables[ref.instance].schema;
        elements.push({ name, algebraicType: schema.rowType.elements[ref.column].algebraicType });
      }
      output = { kind: "columns", refs };
      columns = { elements };
      break;
    }
  }

  let limit: bigint | undefined;
  if (statement.limit !== undefined) {
    const value = parseDecimalInteger(statement.limit);
    if (value === undefined || value < 0n || value > U64_MAX) {
      throw typeError(
        `The literal expression \`${statement.limit}\` cannot be parsed as type \`U64\``,
      );
    }
    limit = value;
  }
  const typespace = tables.find((t) => t.schema.typespace.length > 0)?.schema.typespace ?? [];
  return { kind: "select", tables, joins, where, output, columns, typespace, limit };
}

/** The table a DML statement writes, resolved like a FROM table (private = absent). */
function dmlTable(name: string, catalog: QueryCatalog, context: QueryContext): TableSchema {
  const checker = new Checker(catalog, context);
  checker.addTable(name, name);
  const schema = checker.tables[0].schema;
  if (isSystemTableId(schema.tableId) && schema.name !== ST_VAR_NAME) {
    throw new SqlError(
      `\`${schema.name}\` is a system table; DML on it is not supported`,
      "unsupported",
    );
  }
  return schema;
}

/**
 * A literal assigned by INSERT or UPDATE SET: stricter than in WHERE (§1.4): a string only
 * for a String column, a bool only for a Bool column; numbers and hex parse as the column type.
 */
function assignedValue(lit: LiteralExpr, type: AlgebraicType, typespace: Typespace): Value {
  const resolved = resolveType(type, typespace);
  const typeText = formatType(type, typespace);
  if (lit.lit === "bool") {
    if (resolved.tag === "Bool") return lit.text === "true";
    throw typeError(`Unexpected type: (expected) Bool != ${typeText} (inferred)`);
  }
  if (lit.lit === "str") {
    if (resolved.tag === "String") return lit.text;
    throw typeError(`Unexpected type: (expected) String != ${typeText} (inferred)`);
  }
  const scalar = scalarOf(type, typespace);
  const value = scalar === undefined ? undefined : literalValue(lit, scalar);
  if (value === undefined || scalar === undefined) {
    throw typeError(
      `The literal expression \`${lit.text}\` cannot be parsed as type \`${typeText}\``,
    );
  }
  switch (scalar.kind) {
    case "bool":
      return value === 1;
    case "string":
      return new TextDecoder().decode(value as Uint8Array);
    case "bytes":
      return value as Uint8Array;
    case "identity":
    case "connectionId":
    case "timestamp":
    case "uuid":
      return [value as bigint];
    default:
      return value as number | bigint;
  }
}

function checkInsert(
  statement: InsertStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlInsertPlan {
  const table = dmlTable(statement.table, catalog, context);
  const columns = table.rowType.elements;
  if (statement.columns.length !== columns.length) {
    throw typeError(
      `The number of fields (${statement.columns.length}) in the INSERT does not match the ` +
        `number of columns (${columns.length}) of the table \`${table.name}\``,
    );
  }
  const rows = statement.rows.map((row) => {
    if (row.length !== columns.length) {
      throw typeError(
        `Inserting a row with ${row.length} values into \`${table.name}\` which has ` +
          `${columns.length} fields`,
      );
    }
    // The k-th value goes to the k-th column whatever the names say (SpacetimeDB does so).
    return row.map((lit, i) => assignedValue(lit, columns[i].algebraicType, table.typespace));
  });
  return { kind: "insert", table, rows };
}

function checkUpdate(
  statement: UpdateStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlUpdatePlan {
  const table = dmlTable(statement.table, catalog, context);
  const assignments = statement.assignments.map(({ column, value }) => {
    const index = columnByName(table, column);
    if (index < 0) throw nameError(`\`${table.name}\` does not have a field \`${column}\``);
    const type = table.rowType.elements[index].algebraicType;
    return { column: index, value: assignedValue(value, type, table.typespace) };
  });
  return { kind: "update", table, assignments, where: dmlWhere(statement, catalog, context) };
}

function checkDelete(
  statement: DeleteStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlDeletePlan {
  const table = dmlTable(statement.table, catalog, context);
  return { kind: "delete", table, where: dmlWhere(statement, catalog, context) };
}

/** The WHERE of UPDATE/DELETE: the table name as written is the only qualifier. */
function dmlWhere(
  statement: UpdateStatement | DeleteStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): TypedExpr | undefined {
  if (statement.where === undefined) return undefined;
  const checker = new Checker(catalog, context);
  checker.addTable(statement.table, statement.table);
  return checker.checkBool(statement.where);
}

const SYSTEM_VARIABLES = new Set(["row_limit"]);

function checkSet(
  statement: SetStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlInsertPlan {
  if (!SYSTEM_VARIABLES.has(statement.name)) {
    throw nameError(`${statement.name} is not a valid system variable`);
  }
  const lit = statement.value;
  if (lit.lit === "bool") throw typeError("Unexpected type: (expected) U64 != Bool (inferred)");
  if (lit.lit === "str") throw typeError("Unexpected type: (expected) U64 != String (inferred)");
  if (lit.lit === "hex") {
    throw typeError("Unexpected type: (expected) U64 != Array<U8> (inferred)");
  }
  const value = parseDecimalInteger(lit.text);
  if (value === undefined || value < 0n || value > U64_MAX) {
    throw typeError(`The literal expression \`${lit.text}\` cannot be parsed as type \`U64\``);
  }
  const table = dmlTable(ST_VAR_NAME, catalog, { ...context, isOwner: true });
  return { kind: "insert", table, rows: [[statement.name, { tag: ST_VAR_U64_TAG, value }]] };
}

function checkShow(
  statement: ShowStatement,
  catalog: QueryCatalog,
  context: QueryContext,
): SqlSelectPlan {
  if (!SYSTEM_VARIABLES.has(statement.name)) {
    throw nameError(`${statement.name} is not a valid system variable`);
  }
  // SELECT value FROM st_var WHERE name = '<var>'
  const checker = new Checker(catalog, { ...context, isOwner: true });
  checker.addTable(ST_VAR_NAME, ST_VAR_NAME);
  const where = checker.checkBool({
    kind: "cmp",
    op: "=",
    left: { kind: "field", table: undefined, column: "name", start: 0, end: 0 },
    right: { kind: "lit", lit: "str", text: statement.name, start: 0, end: 0 },
    start: 0,
    end: 0,
  });
  const schema = checker.tables[0].schema;
  return {
    kind: "select",
    tables: checker.tables,
    joins: [],
    where,
    output: { kind: "columns", refs: [{ kind: "col", instance: 0, column: 1 }] },
    columns: {
      elements: [{ name: "value", algebraicType: schema.rowType.elements[1].algebraicType }],
    },
    typespace: [],
    limit: undefined,
  };
}
