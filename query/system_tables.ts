/**
 * SpacetimeDB's system tables as /sql sees them (query-subscriptions.md §5): `st_table`,
 * `st_column`, `st_index`, `st_sequence`, `st_constraint`, `st_client`, `st_var`,
 * `st_scheduled`, `st_row_level_security`, `st_view`, `st_event_table` and the accessor tables,
 * with SpacetimeDB's table ids, column names and column types.
 *
 * `st_var` is a real table of the datastore (its rows are logged and recovered like any
 * table's: `SET row_limit` writes it); the others are computed from the module's schema when a
 * query reads them, so they are read-only.
 */
import {
  type AlgebraicType,
  BinaryWriter,
  encodeValueToBytes,
  type ProductType,
  type Value,
  writeAlgebraicType,
} from "../protocol/mod.ts";
import type { TableSchema } from "../storage/mod.ts";

/** Table ids below this are system tables (SpacetimeDB's reserved range; user tables start here). */
export const FIRST_USER_TABLE_ID = 4096;

export function isSystemTableId(tableId: number): boolean {
  return tableId < FIRST_USER_TABLE_ID;
}

/** What the system tables describe besides the table schemas themselves. */
export interface UserTableInfo {
  schema: TableSchema;
  /** Names of the unique constraints, parallel to `schema.uniqueConstraints`. */
  constraintNames: string[];
  /** Names of the sequences, parallel to `schema.sequences`. */
  sequenceNames: string[];
  /** Column accessor names (module source names), parallel to the row type's columns. */
  columnAccessors: string[];
  schedule: { name: string; functionName: string; atColumn: number } | undefined;
}

export interface SystemTableSource {
  userTables(): UserTableInfo[];
  /** Connected clients (`st_client`). */
  clients(): { identity: bigint; connectionId: bigint }[];
  /** Row-level security rules (`st_row_level_security`); filled once RLS exists. */
  rlsRules(): { tableId: number; sql: string }[];
  /** Views (`st_view`); filled once views exist. */
  views(): {
    viewId: number;
    name: string;
    tableId: number | undefined;
    isPublic: boolean;
    isAnonymous: boolean;
  }[];
}

const U16: AlgebraicType = { tag: "U16" };
const U32: AlgebraicType = { tag: "U32" };
const U128: AlgebraicType = { tag: "U128" };
const I128: AlgebraicType = { tag: "I128" };
const BOOL: AlgebraicType = { tag: "Bool" };
const STRING: AlgebraicType = { tag: "String" };
const BYTES: AlgebraicType = { tag: "Array", value: { tag: "U8" } };
const COL_LIST: AlgebraicType = { tag: "Array", value: U16 };
const UNIT: AlgebraicType = { tag: "Product", value: { elements: [] } };

function option(type: AlgebraicType): AlgebraicType {
  return {
    tag: "Sum",
    value: {
      variants: [{ name: "some", algebraicType: type }, { name: "none", algebraicType: UNIT }],
    },
  };
}
function product(fields: [string, AlgebraicType][]): AlgebraicType {
  return {
    tag: "Product",
    value: { elements: fields.map(([name, algebraicType]) => ({ name, algebraicType })) },
  };
}
const IDENTITY = product([["__identity__", { tag: "U256" }]]);
const CONNECTION_ID = product([["__connection_id__", U128]]);
const INDEX_ALGORITHM: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [
      { name: "Unused", algebraicType: U128 },
      { name: "BTree", algebraicType: product([["columns", COL_LIST]]) },
      { name: "Direct", algebraicType: product([["column", U16]]) },
      { name: "Hash", algebraicType: product([["columns", COL_LIST]]) },
    ],
  },
};
const CONSTRAINT_DATA: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [
      { name: "Unused", algebraicType: U128 },
      { name: "Unique", algebraicType: product([["columns", COL_LIST]]) },
    ],
  },
};
/** `StVarValue`: the value column of `st_var`. */
export const ST_VAR_VALUE: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: (
      ["Bool", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "I128", "U128", "F32", "F64"]
        .map((tag) => ({ name: tag, algebraicType: { tag } as AlgebraicType }))
    ).concat([{ name: "String", algebraicType: STRING }]),
  },
};
/** The tag of `U64` in ST_VAR_VALUE. */
export const ST_VAR_U64_TAG = 8;

function systemSchema(
  tableId: number,
  name: string,
  columns: [string, AlgebraicType][],
): TableSchema {
  return {
    tableId,
    name,
    sourceName: name,
    rowType: { elements: columns.map(([n, algebraicType]) => ({ name: n, algebraicType })) },
    typespace: [],
    primaryKey: [],
    indexes: [],
    uniqueConstraints: [],
    sequences: [],
    isPublic: true,
    isEvent: false,
  };
}

export const ST_VAR_TABLE_ID = 8;
export const ST_VAR_NAME = "st_var";
/** Index id of st_var's primary-key index (module index ids start at 1, so 0 is free). */
const ST_VAR_INDEX_ID = 0;

/** `st_var(name String primary key, value StVarValue)`: the one stored system table. */
export const ST_VAR_SCHEMA: TableSchema = {
  ...systemSchema(ST_VAR_TABLE_ID, ST_VAR_NAME, [["name", STRING], ["value", ST_VAR_VALUE]]),
  primaryKey: [0],
  uniqueConstraints: [[0]],
  indexes: [{
    indexId: ST_VAR_INDEX_ID,
    name: "st_var_name_idx_btree",
    sourceName: "st_var_name_idx_btree",
    accessorName: undefined,
    algorithm: "btree",
    columns: [0],
    unique: true,
  }],
};

interface VirtualTable {
  schema: TableSchema;
  rows(source: SystemTableSource, all: TableSchema[]): Value[][];
}

function colList(columns: readonly number[]): Value {
  return [...columns];
}

function typeBytes(type: AlgebraicType): Uint8Array {
  const w = new BinaryWriter(32);
  writeAlgebraicType(w, type);
  return w.finish();
}

function typeRange(type: AlgebraicType): [bigint, bigint] {
  const tag = type.tag;
  const bits = BigInt(Number(/\d+/.exec(tag)?.[0] ?? "64"));
  return tag.startsWith("I")
    ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n]
    : [0n, (1n << bits) - 1n];
}

const I128_MAX = (1n << 127n) - 1n;

function clampI128(value: bigint): bigint {
  return value > I128_MAX ? I128_MAX : value < -I128_MAX - 1n ? -I128_MAX - 1n : value;
}

const VIRTUAL_TABLES: VirtualTable[] = [
  {
    schema: systemSchema(1, "st_table", [
      ["table_id", U32],
      ["table_name", STRING],
      ["table_type", STRING],
      ["table_access", STRING],
      ["table_primary_key", option(COL_LIST)],
    ]),
    rows: (_source, all) =>
      all.map((t) => [
        t.tableId,
        t.name,
        isSystemTableId(t.tableId) ? "system" : "user",
        t.isPublic ? "public" : "private",
        t.primaryKey.length > 0 ? { tag: 0, value: colList(t.primaryKey) } : { tag: 1, value: [] },
      ]),
  },
  {
    schema: systemSchema(2, "st_column", [
      ["table_id", U32],
      ["col_pos", U16],
      ["col_name", STRING],
      ["col_type", BYTES],
    ]),
    rows: (_source, all) =>
      all.flatMap((t) =>
        t.rowType.elements.map((
          e,
          i,
        ) => [t.tableId, i, e.name ?? `col_${i}`, typeBytes(e.algebraicType)])
      ),
  },
  {
    schema: systemSchema(3, "st_sequence", [
      ["sequence_id", U32],
      ["sequence_name", STRING],
      ["table_id", U32],
      ["col_pos", U16],
      ["increment", I128],
      ["start", I128],
      ["min_value", I128],
      ["max_value", I128],
      ["allocated", I128],
    ]),
    rows: (source) => {
      let id = 0;
      return source.userTables().flatMap((info) =>
        info.schema.sequences.map((sequence, i) => {
          const type = info.schema.rowType.elements[sequence.column].algebraicType;
          const [typeMin, typeMax] = typeRange(type);
          const min = sequence.min ?? (sequence.increment > 0n ? 1n : typeMin);
          const max = sequence.max ?? (sequence.increment > 0n ? typeMax : -1n);
          const start = sequence.start ?? (sequence.increment > 0n ? min : max);
          return [
            ++id,
            info.sequenceNames[i] ?? `${info.schema.name}_seq_${i}`,
            info.schema.tableId,
            sequence.column,
            sequence.increment,
            clampI128(start),
            clampI128(min),
            clampI128(max),
            clampI128(start),
          ];
        })
      );
    },
  },
  {
    schema: systemSchema(4, "st_index", [
      ["index_id", U32],
      ["table_id", U32],
      ["index_name", STRING],
      ["index_algorithm", INDEX_ALGORITHM],
    ]),
    rows: (_source, all) =>
      all.flatMap((t) =>
        t.indexes.map((index) => [
          index.indexId,
          t.tableId,
          index.name,
          index.algorithm === "btree"
            ? { tag: 1, value: [colList(index.columns)] }
            : index.algorithm === "direct"
            ? { tag: 2, value: [index.columns[0]] }
            : { tag: 3, value: [colList(index.columns)] },
        ])
      ),
  },
  {
    schema: systemSchema(5, "st_constraint", [
      ["constraint_id", U32],
      ["constraint_name", STRING],
      ["table_id", U32],
      ["constraint_data", CONSTRAINT_DATA],
    ]),
    rows: (source) => {
      let id = 0;
      return source.userTables().flatMap((info) =>
        info.schema.uniqueConstraints.map((columns, i) => [
          ++id,
          info.constraintNames[i] ?? `${info.schema.name}_key_${i}`,
          info.schema.tableId,
          { tag: 1, value: [colList(columns)] },
        ])
      );
    },
  },
  {
    schema: systemSchema(7, "st_client", [["identity", IDENTITY], [
      "connection_id",
      CONNECTION_ID,
    ]]),
    rows: (source) => source.clients().map((c) => [[c.identity], [c.connectionId]]),
  },
  {
    schema: systemSchema(9, "st_scheduled", [
      ["schedule_id", U32],
      ["table_id", U32],
      ["reducer_name", STRING],
      ["schedule_name", STRING],
      ["at_column", U16],
    ]),
    rows: (source) => {
      let id = 0;
      return source.userTables().flatMap((info) =>
        info.schedule === undefined ? [] : [[
          ++id,
          info.schema.tableId,
          info.schedule.functionName,
          info.schedule.name,
          info.schedule.atColumn,
        ]]
      );
    },
  },
  {
    schema: systemSchema(10, "st_row_level_security", [["table_id", U32], ["sql", STRING]]),
    rows: (source) => source.rlsRules().map((rule) => [rule.tableId, rule.sql]),
  },
  {
    schema: systemSchema(12, "st_view", [
      ["view_id", U32],
      ["view_name", STRING],
      ["table_id", option(U32)],
      ["is_public", BOOL],
      ["is_anonymous", BOOL],
    ]),
    rows: (source) =>
      source.views().map((v) => [
        v.viewId,
        v.name,
        v.tableId === undefined ? { tag: 1, value: [] } : { tag: 0, value: v.tableId },
        v.isPublic,
        v.isAnonymous,
      ]),
  },
  {
    schema: systemSchema(17, "st_event_table", [["table_id", U32]]),
    rows: (source) =>
      source.userTables().filter((info) => info.schema.isEvent).map((
        info,
      ) => [info.schema.tableId]),
  },
  {
    schema: systemSchema(18, "st_table_accessor", [["table_name", STRING], [
      "accessor_name",
      STRING,
    ]]),
    rows: (source) => source.userTables().map((info) => [info.schema.name, info.schema.sourceName]),
  },
  {
    schema: systemSchema(19, "st_index_accessor", [["index_name", STRING], [
      "accessor_name",
      STRING,
    ]]),
    rows: (source) =>
      source.userTables().flatMap((info) =>
        info.schema.indexes.flatMap((index) =>
          index.accessorName === undefined ? [] : [[index.name, index.accessorName]]
        )
      ),
  },
  {
    schema: systemSchema(20, "st_column_accessor", [
      ["table_name", STRING],
      ["col_name", STRING],
      ["accessor_name", STRING],
    ]),
    rows: (source) =>
      source.userTables().flatMap((info) =>
        info.schema.rowType.elements.map((e, i) => [
          info.schema.name,
          e.name ?? `col_${i}`,
          info.columnAccessors[i] ?? e.name ?? `col_${i}`,
        ])
      ),
  },
];

const VIRTUAL_BY_ID = new Map(VIRTUAL_TABLES.map((t) => [t.schema.tableId, t]));
const VIRTUAL_BY_NAME = new Map(VIRTUAL_TABLES.map((t) => [t.schema.name, t]));

/** The computed (read-only) system tables' schemas. */
export function virtualSystemSchemas(): TableSchema[] {
  return VIRTUAL_TABLES.map((t) => t.schema);
}

export function virtualSystemTableId(name: string): number | undefined {
  return VIRTUAL_BY_NAME.get(name)?.schema.tableId;
}

export function virtualSystemSchema(tableId: number): TableSchema | undefined {
  return VIRTUAL_BY_ID.get(tableId)?.schema;
}

/**
 * The rows of a computed system table as BSATN, or undefined when `tableId` is not one.
 * `stored` lists the datastore's tables (user tables and st_var).
 */
export function virtualSystemRows(
  tableId: number,
  source: SystemTableSource,
  stored: TableSchema[],
): Uint8Array[] | undefined {
  const table = VIRTUAL_BY_ID.get(tableId);
  if (table === undefined) return undefined;
  const all = [...VIRTUAL_TABLES.map((t) => t.schema), ...stored].sort((a, b) =>
    a.tableId - b.tableId
  );
  const rowType = { tag: "Product" as const, value: table.schema.rowType };
  return table.rows(source, all).map((values) => encodeValueToBytes(rowType, values, []));
}

export type { ProductType };
