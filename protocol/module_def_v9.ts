/**
 * `GET /schema?version=9`: the V9 shape SpacetimeDB derives from a validated module
 * (`From<ModuleDef> for RawModuleDefV9`). V9 has no submodules, HTTP handlers or
 * event tables, so those are dropped, as in the original.
 */
import { toHex } from "../lib/bytes.ts";
import type { RawModuleDefV10 } from "./module_def.ts";
import type { ModuleDef } from "./names.ts";
import { resolveModuleDef } from "./names.ts";
import {
  algebraicTypeToJson,
  type JsonOutput,
  productTypeToJson,
  stringifyJson,
} from "./sats_json.ts";

function some(value: JsonOutput): JsonOutput {
  return { some: value };
}
function optional<T>(value: T | undefined, map: (v: T) => JsonOutput): JsonOutput {
  return value === undefined ? { none: [] } : some(map(value));
}
function unitVariant(name: string): JsonOutput {
  return { [name]: [] };
}

/** SATS-JSON of the V9 definition of the root module of `def`. */
export function moduleDefToV9Json(def: ModuleDef): JsonOutput {
  const own = <T extends { namespace: string }>(items: T[]) =>
    items.filter((i) => i.namespace === "");
  const tables = own(def.tables);
  const lifecycleOf = (id: number) =>
    (Object.entries(def.lifecycle) as [string, number][]).find(([, rid]) => rid === id)?.[0];
  return {
    typespace: { types: def.typespace.map(algebraicTypeToJson) },
    tables: tables.map((t) => ({
      name: t.name,
      product_type_ref: t.productTypeRef,
      primary_key: t.primaryKey === undefined ? [] : [t.primaryKey],
      indexes: t.indexes.map((i) => ({
        name: some(i.name),
        accessor_name: optional(i.accessorName, (a) => a),
        algorithm: i.algorithm === "direct"
          ? { Direct: { column: i.columns[0] } }
          : { [i.algorithm === "btree" ? "BTree" : "Hash"]: { columns: i.columns } },
      })),
      constraints: t.uniqueConstraints.map((c) => ({
        name: some(c.name),
        data: { Unique: { columns: c.columns } },
      })),
      sequences: t.sequences.map((s) => ({
        name: some(s.name),
        column: s.column,
        start: optional(s.start, (v) => v),
        min_value: optional(s.minValue, (v) => v),
        max_value: optional(s.maxValue, (v) => v),
        increment: s.increment,
      })),
      schedule: optional(t.schedule, (s) => ({
        name: some(s.name),
        reducer_name: s.functionName,
        scheduled_at_column: s.atColumn,
      })),
      table_type: unitVariant(t.tableType),
      table_access: unitVariant(t.access),
    })),
    reducers: own(def.reducers).map((r) => ({
      name: r.name,
      params: productTypeToJson(r.sourceParams),
      lifecycle: optional(lifecycleOf(r.id), unitVariant),
    })),
    types: own(def.types).map((t) => ({
      name: { scope: t.scope, name: t.name },
      ty: t.ty,
      custom_ordering: t.customOrdering,
    })),
    misc_exports: [
      ...tables.flatMap((t) =>
        t.columns.filter((c) => c.defaultValue !== undefined).map((c) => ({
          ColumnDefaultValue: { table: t.name, col_id: c.colId, value: toHex(c.defaultValue!) },
        }))
      ),
      ...own(def.procedures).map((p) => ({
        Procedure: {
          name: p.name,
          params: productTypeToJson(p.sourceParams),
          return_type: algebraicTypeToJson(p.returnType),
        },
      })),
      ...own(def.views).map((v) => ({
        View: {
          name: v.name,
          index: v.rawIndex,
          is_public: v.isPublic,
          is_anonymous: v.isAnonymous,
          params: productTypeToJson(v.params),
          return_type: algebraicTypeToJson(v.returnType),
        },
      })),
    ],
    row_level_security: own(def.rowLevelSecurity).map((r) => ({ sql: r.sql })),
  };
}

/** V9 schema JSON for a raw V10 definition (validates it first). */
export function rawModuleDefV10ToV9Json(raw: RawModuleDefV10): JsonOutput {
  return moduleDefToV9Json(resolveModuleDef(raw));
}

/** The JSON body of `GET /v1/database/:x/schema?version=9`. */
export function moduleDefToV9SchemaJson(def: ModuleDef): string {
  return stringifyJson(moduleDefToV9Json(def));
}
