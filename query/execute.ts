/**
 * Runs compiled plans against the committed state: initial subscription rows and one-off
 * queries. The state interface is what the storage datastore provides.
 */
import { BinaryWriter } from "../protocol/mod.ts";
import type { TableSchema } from "../storage/mod.ts";
import { checkSelect, type QueryCatalog, type QueryContext } from "./check.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import { fragmentMatches, planSelect, type QueryPlan, type SelectFragment } from "./plan.ts";
import type { Comparable, Scalar } from "./_scalar.ts";
import { scalarOf } from "./_scalar.ts";
import { isSystemTableId } from "./system_tables.ts";

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
}

/** BSATN of one comparable value as the given scalar type (index keys). */
export function encodeComparable(value: Comparable, scalar: Scalar): Uint8Array {
  const w = new BinaryWriter(16);
  switch (scalar.kind) {
    case "bool":
      w.writeBool(value === 1);
      break;
    case "float":
      if (scalar.bits === 32) w.writeF32(value as number);
      else w.writeF64(value as number);
      break;
    case "string":
    case "bytes":
      w.writeBytes(value as Uint8Array);
      break;
    case "identity":
      w.writeU256(value as bigint);
      break;
    case "connectionId":
    case "uuid":
      w.writeU128(value as bigint);
      break;
    case "timestamp":
      w.writeI64(value as bigint);
      break;
    case "int": {
      const v = value;
      switch (scalar.tag) {
        case "I8":
          w.writeI8(v as number);
          break;
        case "U8":
          w.writeU8(v as number);
          break;
        case "I16":
          w.writeI16(v as number);
          break;
        case "U16":
          w.writeU16(v as number);
          break;
        case "I32":
          w.writeI32(v as number);
          break;
        case "U32":
          w.writeU32(v as number);
          break;
        case "I64":
          w.writeI64(v as bigint);
          break;
        case "U64":
          w.writeU64(v as bigint);
          break;
        case "I128":
          w.writeI128(v as bigint);
          break;
        case "U128":
          w.writeU128(v as bigint);
          break;
        case "I256":
          w.writeI256(v as bigint);
          break;
        case "U256":
          w.writeU256(v as bigint);
          break;
      }
    }
  }
  return w.finish();
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

/** The current result of a plan, with multiplicities (one entry per fragment derivation). */
export function executePlan(plan: QueryPlan, state: CommittedState): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const fragment of plan.fragments) {
    if (fragment.never || fragment.table.isEvent) continue;
    for (const row of candidateRows(fragment, state)) {
      if (fragmentMatches(fragment, row)) out.push(row);
    }
  }
  return out;
}

/** Parse, check and plan a subscription-grammar query. Throws SqlError. */
export function compileSubscriptionQuery(
  sql: string,
  catalog: QueryCatalog,
  context: QueryContext,
): QueryPlan {
  const statement = parseSubscriptionQuery(sql);
  return planSelect(checkSelect(statement, catalog, context, { subscription: true }));
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
  const plan = compileSubscriptionQuery(sql, state, context);
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
