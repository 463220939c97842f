/**
 * What the host needs from a module definition: table schemas with stable ids for
 * the datastore, and reducer/procedure lookups by canonical name. Derived from
 * the `__describe_module__` bytes on both sides of the worker boundary.
 */
import {
  decodeRawModuleDef,
  type Lifecycle,
  type ModuleDef,
  type ProcedureDef,
  type RawModuleDefV10,
  type ReducerDef,
  resolveModuleDef,
} from "../protocol/mod.ts";
import type { IndexSchema, TableSchema } from "../storage/mod.ts";

/** First id handed to user tables (ids below are left for system tables). */
export const FIRST_USER_TABLE_ID = 4096;

export type ReducerInfo = ReducerDef;
export type ProcedureInfo = ProcedureDef;

export interface ModuleInfo {
  raw: RawModuleDefV10;
  def: ModuleDef;
  tables: TableSchema[];
  tablesByName: Map<string, TableSchema>;
  /**
   * The table id of each view's backing table in SpacetimeDB, by canonical view name: views are
   * created after every table, in lexicographic order of their names (v1 clients and `st_view`).
   */
  viewTableIds: Map<string, number>;
  reducersByName: Map<string, ReducerInfo>;
  proceduresByName: Map<string, ProcedureInfo>;
  lifecycle: { init?: ReducerInfo; onConnect?: ReducerInfo; onDisconnect?: ReducerInfo };
}

export function moduleInfoFromDescribe(describe: Uint8Array): ModuleInfo {
  const raw = decodeRawModuleDef(describe);
  const def = resolveModuleDef(raw);
  const tables = tableSchemas(def);
  const reducerById = (id: number | undefined) =>
    id === undefined ? undefined : def.reducers.find((reducer) => reducer.id === id);
  const lifecycle = def.lifecycle as Partial<Record<Lifecycle, number>>;
  return {
    raw,
    def,
    tables,
    tablesByName: new Map(tables.map((table) => [table.name, table])),
    viewTableIds: viewTableIds(def, tables.length),
    reducersByName: new Map(def.reducers.map((reducer) => [reducer.name, reducer])),
    proceduresByName: new Map(def.procedures.map((procedure) => [procedure.name, procedure])),
    lifecycle: {
      init: reducerById(lifecycle.Init),
      onConnect: reducerById(lifecycle.OnConnect),
      onDisconnect: reducerById(lifecycle.OnDisconnect),
    },
  };
}

/** Views' table ids: after the `tableCount` tables, in lexicographic order of view names. */
export function viewTableIds(def: ModuleDef, tableCount: number): Map<string, number> {
  const names = def.views.map((view) => view.name).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return new Map(
    names.map((name, position) => [name, FIRST_USER_TABLE_ID + tableCount + position]),
  );
}

/**
 * Table and index ids follow the lexicographic order of canonical table names (the
 * order SpacetimeDB creates tables in), so they are the same on every start of the
 * same module.
 */
export function tableSchemas(def: ModuleDef): TableSchema[] {
  const sorted = [...def.tables].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let nextIndexId = 1;
  return sorted.map((table, position): TableSchema => {
    const uniqueConstraints = table.uniqueConstraints.map((constraint) => constraint.columns);
    const indexes = table.indexes.map((index): IndexSchema => ({
      indexId: nextIndexId++,
      name: index.name,
      sourceName: index.sourceName,
      accessorName: index.accessorName,
      algorithm: index.algorithm,
      columns: index.columns,
      unique: uniqueConstraints.some((columns) =>
        columns.every((column) => index.columns.includes(column))
      ),
    }));
    return {
      tableId: FIRST_USER_TABLE_ID + position,
      name: table.name,
      sourceName: table.sourceName,
      rowType: table.rowType,
      columnAccessors: table.columns.map((column) => column.sourceName),
      typespace: table.typespace,
      primaryKey: table.primaryKey === undefined ? [] : [table.primaryKey],
      indexes,
      uniqueConstraints,
      sequences: table.sequences.map((sequence) => ({
        column: sequence.column,
        start: sequence.start,
        min: sequence.minValue,
        max: sequence.maxValue,
        increment: sequence.increment,
      })),
      isPublic: table.isPublic,
      isEvent: table.isEvent,
    };
  });
}
