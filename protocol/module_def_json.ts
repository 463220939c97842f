/**
 * The inverse of `rawModuleDefToJson`: reads the SATS-JSON `RawModuleDefV10` that
 * `GET /v1/database/:name/schema?version=10` returns back into a `RawModuleDefV10`,
 * so a client (the CLI's `generate --database`) can work from a running database.
 */
import type { AlgebraicType, ProductType } from "./algebraic_type.ts";
import { ALGEBRAIC_TYPE_TAGS } from "./algebraic_type.ts";
import {
  emptyRawModuleDefV10,
  HTTP_METHOD_NAMES,
  type HttpMethod,
  type MethodOrAny,
  ModuleDefError,
  type RawIndexAlgorithm,
  type RawModuleDefV10,
  type RawTableDefV10,
  SECTION_NAMES,
  type SectionName,
} from "./module_def.ts";

type Json = Record<string, unknown>;

/** Nesting bound for types and submodules, so hostile input cannot blow the stack. */
const NESTING_DEPTH_MAX = 256;

function fail(path: string, message: string): never {
  throw new ModuleDefError(`Schema JSON at ${path}: ${message}`);
}

function object(value: unknown, path: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(path, "expected an object");
  }
  return value as Json;
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, "expected an array");
  return value;
}

function string(value: unknown, path: string): string {
  if (typeof value !== "string") fail(path, "expected a string");
  return value;
}

function integer(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    fail(path, "expected a non-negative integer");
  }
  return value;
}

function bigInteger(value: unknown, path: string): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  fail(path, "expected an integer");
}

function boolean(value: unknown, path: string): boolean {
  if (typeof value !== "boolean") fail(path, "expected true or false");
  return value;
}

/** A SATS-JSON sum value: `{"Variant": payload}`. */
function variant(value: unknown, path: string): [string, unknown] {
  const obj = object(value, path);
  const keys = Object.keys(obj);
  if (keys.length !== 1) fail(path, "expected an object with exactly one key (a sum variant)");
  return [keys[0], obj[keys[0]]];
}

function unitVariant<const N extends readonly string[]>(
  value: unknown,
  names: N,
  path: string,
): N[number] {
  const [name] = variant(value, path);
  if (!names.includes(name)) fail(path, `unknown variant "${name}"`);
  return name;
}

function option<T>(value: unknown, path: string, some: (v: unknown) => T): T | undefined {
  const [name, payload] = variant(value, path);
  if (name === "none") return undefined;
  if (name === "some") return some(payload);
  fail(path, `expected "some" or "none", got "${name}"`);
}

function fromHex(value: unknown, path: string): Uint8Array {
  const text = string(value, path);
  if (!/^([0-9a-fA-F]{2})*$/.test(text)) fail(path, "expected hex bytes");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function algebraicTypeFromJson(value: unknown, path = "type", depth = 0): AlgebraicType {
  if (depth > NESTING_DEPTH_MAX) fail(path, "type nesting is too deep");
  const [tag, payload] = variant(value, path);
  switch (tag) {
    case "Ref":
      return { tag, value: integer(payload, `${path}.Ref`) };
    case "Array":
      return { tag, value: algebraicTypeFromJson(payload, `${path}.Array`, depth + 1) };
    case "Product":
      return { tag, value: productTypeFromJson(payload, `${path}.Product`, depth + 1) };
    case "Sum": {
      const variants = array(object(payload, `${path}.Sum`).variants, `${path}.Sum.variants`);
      return {
        tag,
        value: {
          variants: variants.map((v, i) => element(v, `${path}.Sum.variants[${i}]`, depth)),
        },
      };
    }
    default:
      if (!(ALGEBRAIC_TYPE_TAGS as readonly string[]).includes(tag)) {
        fail(path, `unknown type "${tag}"`);
      }
      return { tag: tag as Exclude<AlgebraicType["tag"], "Ref" | "Array" | "Product" | "Sum"> };
  }
}

function element(value: unknown, path: string, depth: number) {
  const obj = object(value, path);
  return {
    name: option(obj.name, `${path}.name`, (n) => string(n, `${path}.name`)),
    algebraicType: algebraicTypeFromJson(obj.algebraic_type, `${path}.algebraic_type`, depth + 1),
  };
}

export function productTypeFromJson(value: unknown, path = "product", depth = 0): ProductType {
  const elements = array(object(value, path).elements, `${path}.elements`);
  return { elements: elements.map((e, i) => element(e, `${path}.elements[${i}]`, depth)) };
}

function columns(value: unknown, path: string): number[] {
  return array(value, path).map((c, i) => integer(c, `${path}[${i}]`));
}

function algorithm(value: unknown, path: string): RawIndexAlgorithm {
  const [tag, payload] = variant(value, path);
  const obj = object(payload, `${path}.${tag}`);
  if (tag === "Direct") return { tag, column: integer(obj.column, `${path}.Direct.column`) };
  if (tag === "BTree" || tag === "Hash") {
    return { tag, columns: columns(obj.columns, `${path}.${tag}.columns`) };
  }
  fail(path, `unknown index algorithm "${tag}"`);
}

function table(value: unknown, path: string): RawTableDefV10 {
  const t = object(value, path);
  const optString = (v: unknown, p: string) => option(v, p, (s) => string(s, p));
  return {
    sourceName: string(t.source_name, `${path}.source_name`),
    productTypeRef: integer(t.product_type_ref, `${path}.product_type_ref`),
    primaryKey: columns(t.primary_key, `${path}.primary_key`),
    indexes: array(t.indexes, `${path}.indexes`).map((x, i) => {
      const p = `${path}.indexes[${i}]`;
      const index = object(x, p);
      return {
        sourceName: optString(index.source_name, `${p}.source_name`),
        accessorName: optString(index.accessor_name, `${p}.accessor_name`),
        algorithm: algorithm(index.algorithm, `${p}.algorithm`),
      };
    }),
    constraints: array(t.constraints, `${path}.constraints`).map((x, i) => {
      const p = `${path}.constraints[${i}]`;
      const c = object(x, p);
      const [tag, payload] = variant(c.data, `${p}.data`);
      if (tag !== "Unique") fail(`${p}.data`, `unknown constraint "${tag}"`);
      return {
        sourceName: optString(c.source_name, `${p}.source_name`),
        data: {
          tag: "Unique" as const,
          columns: columns(object(payload, `${p}.data.Unique`).columns, `${p}.data.columns`),
        },
      };
    }),
    sequences: array(t.sequences, `${path}.sequences`).map((x, i) => {
      const p = `${path}.sequences[${i}]`;
      const s = object(x, p);
      const optBig = (v: unknown, q: string) => option(v, q, (n) => bigInteger(n, q));
      return {
        sourceName: optString(s.source_name, `${p}.source_name`),
        column: integer(s.column, `${p}.column`),
        start: optBig(s.start, `${p}.start`),
        minValue: optBig(s.min_value, `${p}.min_value`),
        maxValue: optBig(s.max_value, `${p}.max_value`),
        increment: bigInteger(s.increment, `${p}.increment`),
      };
    }),
    tableType: unitVariant(t.table_type, ["System", "User"] as const, `${path}.table_type`),
    tableAccess: unitVariant(
      t.table_access,
      ["Public", "Private"] as const,
      `${path}.table_access`,
    ),
    defaultValues: array(t.default_values ?? [], `${path}.default_values`).map((x, i) => {
      const p = `${path}.default_values[${i}]`;
      const d = object(x, p);
      return { colId: integer(d.col_id, `${p}.col_id`), value: fromHex(d.value, `${p}.value`) };
    }),
    isEvent: t.is_event === undefined ? false : boolean(t.is_event, `${path}.is_event`),
  };
}

const VISIBILITIES = ["Private", "ClientCallable"] as const;

function method(value: unknown, path: string): MethodOrAny {
  const [tag, payload] = variant(value, path);
  if (tag === "Any") return { tag };
  if (tag !== "Method") fail(path, `unknown method "${tag}"`);
  const [name, inner] = variant(payload, `${path}.Method`);
  if (name === "Extension") {
    return { tag, value: { tag: "Extension", value: string(inner, `${path}.Method.Extension`) } };
  }
  if (!(HTTP_METHOD_NAMES as readonly string[]).includes(name)) {
    fail(path, `unknown HTTP method "${name}"`);
  }
  return { tag, value: { tag: name } as HttpMethod };
}

function section(
  def: RawModuleDefV10,
  name: SectionName,
  value: unknown,
  path: string,
  depth: number,
) {
  const list = (f: (item: Json, p: string) => void) =>
    array(value, path).forEach((x, i) => f(object(x, `${path}[${i}]`), `${path}[${i}]`));
  switch (name) {
    case "Typespace":
      def.typespace = array(object(value, path).types, `${path}.types`)
        .map((t, i) => algebraicTypeFromJson(t, `${path}.types[${i}]`));
      break;
    case "Types":
      list((t, p) => {
        const scoped = object(t.source_name, `${p}.source_name`);
        def.types.push({
          sourceName: {
            scope: array(scoped.scope, `${p}.source_name.scope`).map((s) => string(s, p)),
            sourceName: string(scoped.source_name, `${p}.source_name.source_name`),
          },
          ty: integer(t.ty, `${p}.ty`),
          customOrdering: boolean(t.custom_ordering, `${p}.custom_ordering`),
        });
      });
      break;
    case "Tables":
      def.tables = array(value, path).map((t, i) => table(t, `${path}[${i}]`));
      break;
    case "Reducers":
      list((r, p) =>
        def.reducers.push({
          sourceName: string(r.source_name, `${p}.source_name`),
          params: productTypeFromJson(r.params, `${p}.params`),
          visibility: unitVariant(r.visibility, VISIBILITIES, `${p}.visibility`),
          okReturnType: algebraicTypeFromJson(r.ok_return_type, `${p}.ok_return_type`),
          errReturnType: algebraicTypeFromJson(r.err_return_type, `${p}.err_return_type`),
        })
      );
      break;
    case "Procedures":
      list((r, p) =>
        def.procedures.push({
          sourceName: string(r.source_name, `${p}.source_name`),
          params: productTypeFromJson(r.params, `${p}.params`),
          returnType: algebraicTypeFromJson(r.return_type, `${p}.return_type`),
          visibility: unitVariant(r.visibility, VISIBILITIES, `${p}.visibility`),
        })
      );
      break;
    case "Views":
      list((v, p) =>
        def.views.push({
          sourceName: string(v.source_name, `${p}.source_name`),
          index: integer(v.index, `${p}.index`),
          isPublic: boolean(v.is_public, `${p}.is_public`),
          isAnonymous: boolean(v.is_anonymous, `${p}.is_anonymous`),
          params: productTypeFromJson(v.params, `${p}.params`),
          returnType: algebraicTypeFromJson(v.return_type, `${p}.return_type`),
        })
      );
      break;
    case "Schedules":
      list((s, p) =>
        def.schedules.push({
          sourceName: option(s.source_name, `${p}.source_name`, (n) => string(n, p)),
          tableName: string(s.table_name, `${p}.table_name`),
          scheduleAtCol: integer(s.schedule_at_col, `${p}.schedule_at_col`),
          functionName: string(s.function_name, `${p}.function_name`),
        })
      );
      break;
    case "LifeCycleReducers":
      list((l, p) =>
        def.lifecycleReducers.push({
          lifecycleSpec: unitVariant(
            l.lifecycle_spec,
            ["Init", "OnConnect", "OnDisconnect"] as const,
            `${p}.lifecycle_spec`,
          ),
          functionName: string(l.function_name, `${p}.function_name`),
        })
      );
      break;
    case "RowLevelSecurity":
      list((r, p) => def.rowLevelSecurity.push({ sql: string(r.sql, `${p}.sql`) }));
      break;
    case "CaseConversionPolicy":
      def.caseConversionPolicy = unitVariant(value, ["None", "SnakeCase"] as const, path);
      break;
    case "ExplicitNames":
      array(object(value, path).entries, `${path}.entries`).forEach((e, i) => {
        const p = `${path}.entries[${i}]`;
        const [kind, payload] = variant(e, p);
        if (kind !== "Table" && kind !== "Function" && kind !== "Index") {
          fail(p, `unknown explicit name kind "${kind}"`);
        }
        const entry = object(payload, `${p}.${kind}`);
        def.explicitNames.push({
          kind,
          sourceName: string(entry.source_name, `${p}.source_name`),
          canonicalName: string(entry.canonical_name, `${p}.canonical_name`),
        });
      });
      break;
    case "HttpHandlers":
      list((h, p) => def.httpHandlers.push({ sourceName: string(h.source_name, p) }));
      break;
    case "HttpRoutes":
      list((r, p) =>
        def.httpRoutes.push({
          handlerFunction: string(r.handler_function, `${p}.handler_function`),
          method: method(r.method, `${p}.method`),
          path: string(r.path, `${p}.path`),
        })
      );
      break;
    case "ViewPrimaryKeys":
      list((k, p) =>
        def.viewPrimaryKeys.push({
          viewSourceName: string(k.view_source_name, `${p}.view_source_name`),
          columns: array(k.columns, `${p}.columns`).map((c) => string(c, `${p}.columns`)),
        })
      );
      break;
    case "Submodules":
      list((s, p) =>
        def.submodules.push({
          namespace: string(s.namespace, `${p}.namespace`),
          module: readModule(s.module, `${p}.module`, depth + 1),
        })
      );
      break;
  }
}

function readModule(value: unknown, path: string, depth: number): RawModuleDefV10 {
  if (depth > NESTING_DEPTH_MAX) fail(path, "submodule nesting is too deep");
  const obj = object(value, path);
  if (!("sections" in obj)) {
    fail(path, 'no "sections": this is not a RawModuleDefV10 (a V9 schema?)');
  }
  const def = emptyRawModuleDefV10();
  def.sectionOrder = [];
  array(obj.sections, `${path}.sections`).forEach((s, i) => {
    const p = `${path}.sections[${i}]`;
    const [name, payload] = variant(s, p);
    if (!(SECTION_NAMES as readonly string[]).includes(name)) fail(p, `unknown section "${name}"`);
    const sectionName = name as SectionName;
    if (def.sectionOrder.includes(sectionName)) fail(p, `the ${name} section appears twice`);
    def.sectionOrder.push(sectionName);
    section(def, sectionName, payload, `${p}.${name}`, depth);
  });
  return def;
}

/**
 * Reads a SATS-JSON `RawModuleDefV10` (`{"sections": [...]}`, Rust field names).
 * Throws `ModuleDefError` naming the JSON path of the first problem.
 */
export function rawModuleDefFromJson(value: unknown): RawModuleDefV10 {
  return readModule(value, "$", 0);
}
