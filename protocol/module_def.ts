/**
 * `RawModuleDef` as produced by a module's `__describe_module__` hook: the BSATN
 * codec for the V10 layout (the only one the TypeScript library emits) and plain
 * TypeScript shapes for it. Field orders follow SpacetimeDB `RawModuleDefV10`.
 */
import type {
  AlgebraicType,
  ProductType,
  ProductTypeElement,
  SumTypeVariant,
  Typespace,
} from "./algebraic_type.ts";
import { ALGEBRAIC_TYPE_TAGS } from "./algebraic_type.ts";
import { BinaryReader, BinaryWriter, BsatnDecodeError } from "./bsatn.ts";

/** The module definition is malformed or violates a validation rule. */
export class ModuleDefError extends Error {
  override name = "ModuleDefError";
}

export type TableType = "System" | "User";
export type TableAccess = "Public" | "Private";
export type FunctionVisibility = "Private" | "ClientCallable";
export type Lifecycle = "Init" | "OnConnect" | "OnDisconnect";
export type CaseConversionPolicy = "None" | "SnakeCase";

export type RawIndexAlgorithm =
  | { tag: "BTree"; columns: number[] }
  | { tag: "Hash"; columns: number[] }
  | { tag: "Direct"; column: number };

export interface RawIndexDefV10 {
  sourceName: string | undefined;
  accessorName: string | undefined;
  algorithm: RawIndexAlgorithm;
}
export interface RawConstraintDefV10 {
  sourceName: string | undefined;
  data: { tag: "Unique"; columns: number[] };
}
export interface RawSequenceDefV10 {
  sourceName: string | undefined;
  column: number;
  start: bigint | undefined;
  minValue: bigint | undefined;
  maxValue: bigint | undefined;
  increment: bigint;
}
export interface RawColumnDefaultValueV10 {
  colId: number;
  /** BSATN of the default value at the column's type. */
  value: Uint8Array;
}
export interface RawTableDefV10 {
  sourceName: string;
  productTypeRef: number;
  primaryKey: number[];
  indexes: RawIndexDefV10[];
  constraints: RawConstraintDefV10[];
  sequences: RawSequenceDefV10[];
  tableType: TableType;
  tableAccess: TableAccess;
  defaultValues: RawColumnDefaultValueV10[];
  isEvent: boolean;
}
export interface RawScopedTypeNameV10 {
  scope: string[];
  sourceName: string;
}
export interface RawTypeDefV10 {
  sourceName: RawScopedTypeNameV10;
  ty: number;
  customOrdering: boolean;
}
export interface RawReducerDefV10 {
  sourceName: string;
  params: ProductType;
  visibility: FunctionVisibility;
  okReturnType: AlgebraicType;
  errReturnType: AlgebraicType;
}
export interface RawProcedureDefV10 {
  sourceName: string;
  params: ProductType;
  returnType: AlgebraicType;
  visibility: FunctionVisibility;
}
export interface RawViewDefV10 {
  sourceName: string;
  index: number;
  isPublic: boolean;
  isAnonymous: boolean;
  params: ProductType;
  returnType: AlgebraicType;
}
export interface RawScheduleDefV10 {
  sourceName: string | undefined;
  tableName: string;
  scheduleAtCol: number;
  functionName: string;
}
export interface RawLifeCycleReducerDefV10 {
  lifecycleSpec: Lifecycle;
  functionName: string;
}
export interface RawRowLevelSecurityDefV10 {
  sql: string;
}
export interface ExplicitNameEntry {
  kind: "Table" | "Function" | "Index";
  sourceName: string;
  canonicalName: string;
}
export interface RawHttpHandlerDefV10 {
  sourceName: string;
}
export const HTTP_METHOD_NAMES = [
  "Get",
  "Head",
  "Post",
  "Put",
  "Delete",
  "Connect",
  "Options",
  "Trace",
  "Patch",
] as const;
export type HttpMethod =
  | { tag: (typeof HTTP_METHOD_NAMES)[number] }
  | { tag: "Extension"; value: string };
export type MethodOrAny = { tag: "Any" } | { tag: "Method"; value: HttpMethod };
export interface RawHttpRouteDefV10 {
  handlerFunction: string;
  method: MethodOrAny;
  path: string;
}
export interface RawViewPrimaryKeyDefV10 {
  viewSourceName: string;
  columns: string[];
}
export interface RawSubmoduleV10 {
  namespace: string;
  module: RawModuleDefV10;
}

/** Section names in tag order (tag = index). */
export const SECTION_NAMES = [
  "Typespace",
  "Types",
  "Tables",
  "Reducers",
  "Procedures",
  "Views",
  "Schedules",
  "LifeCycleReducers",
  "RowLevelSecurity",
  "CaseConversionPolicy",
  "ExplicitNames",
  "HttpHandlers",
  "HttpRoutes",
  "ViewPrimaryKeys",
  "Submodules",
] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

/** The order the 2.x TypeScript library writes its sections in (all of them, always). */
export const LIBRARY_SECTION_ORDER: readonly SectionName[] = [
  "Typespace",
  "Types",
  "Tables",
  "Reducers",
  "Procedures",
  "Views",
  "ViewPrimaryKeys",
  "Schedules",
  "LifeCycleReducers",
  "HttpHandlers",
  "HttpRoutes",
  "RowLevelSecurity",
  "ExplicitNames",
  "CaseConversionPolicy",
  "Submodules",
];

/**
 * A V10 module definition with one field per section. A missing section reads as
 * empty (CaseConversionPolicy as SnakeCase). `sectionOrder` records which sections
 * were present and in what order, so encoding reproduces the input bytes.
 */
export interface RawModuleDefV10 {
  typespace: Typespace;
  types: RawTypeDefV10[];
  tables: RawTableDefV10[];
  reducers: RawReducerDefV10[];
  procedures: RawProcedureDefV10[];
  views: RawViewDefV10[];
  schedules: RawScheduleDefV10[];
  lifecycleReducers: RawLifeCycleReducerDefV10[];
  rowLevelSecurity: RawRowLevelSecurityDefV10[];
  caseConversionPolicy: CaseConversionPolicy;
  explicitNames: ExplicitNameEntry[];
  httpHandlers: RawHttpHandlerDefV10[];
  httpRoutes: RawHttpRouteDefV10[];
  viewPrimaryKeys: RawViewPrimaryKeyDefV10[];
  submodules: RawSubmoduleV10[];
  sectionOrder: SectionName[];
}

/** An empty V10 definition (every section empty, library section order). */
export function emptyRawModuleDefV10(): RawModuleDefV10 {
  return {
    typespace: [],
    types: [],
    tables: [],
    reducers: [],
    procedures: [],
    views: [],
    schedules: [],
    lifecycleReducers: [],
    rowLevelSecurity: [],
    caseConversionPolicy: "SnakeCase",
    explicitNames: [],
    httpHandlers: [],
    httpRoutes: [],
    viewPrimaryKeys: [],
    submodules: [],
    sectionOrder: [...LIBRARY_SECTION_ORDER],
  };
}

// ---------------------------------------------------------------------------------------
// Decoding

/** Nesting bound for types and submodules, so hostile input cannot blow the stack. */
const NESTING_DEPTH_MAX = 256;

function readArray<T>(r: BinaryReader, readItem: (r: BinaryReader) => T): T[] {
  const count = r.readU32();
  // Every item in a module def takes at least one byte.
  if (count > r.remaining) {
    throw new BsatnDecodeError(`Array of ${count} items cannot fit in ${r.remaining} bytes`);
  }
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(readItem(r));
  return out;
}

function readOption<T>(r: BinaryReader, readSome: (r: BinaryReader) => T): T | undefined {
  const tag = r.readU8();
  if (tag === 0) return readSome(r);
  if (tag === 1) return undefined;
  throw new BsatnDecodeError(`Invalid option tag ${tag} at offset ${r.offset - 1}`);
}

function readTag<const N extends readonly string[]>(
  r: BinaryReader,
  names: N,
  what: string,
): N[number] {
  const tag = r.readU8();
  const name = names[tag];
  if (name === undefined) {
    throw new BsatnDecodeError(`Invalid ${what} tag ${tag} at offset ${r.offset - 1}`);
  }
  return name;
}

function readU16Array(r: BinaryReader): number[] {
  return readArray(r, (x) => x.readU16());
}

/** Decode a BSATN `AlgebraicType` (the type meta-encoding). */
export function readAlgebraicType(r: BinaryReader, depth = 0): AlgebraicType {
  if (depth > NESTING_DEPTH_MAX) throw new BsatnDecodeError("Type nesting is too deep");
  const tag = readTag(r, ALGEBRAIC_TYPE_TAGS, "AlgebraicType");
  switch (tag) {
    case "Ref":
      return { tag, value: r.readU32() };
    case "Sum":
      return {
        tag,
        value: { variants: readArray(r, (x) => readElement(x, depth) as SumTypeVariant) },
      };
    case "Product":
      return { tag, value: readProductTypeAt(r, depth) };
    case "Array":
      return { tag, value: readAlgebraicType(r, depth + 1) };
    default:
      return { tag };
  }
}

function readElement(r: BinaryReader, depth: number): ProductTypeElement {
  const name = readOption(r, (x) => x.readString());
  return { name, algebraicType: readAlgebraicType(r, depth + 1) };
}

function readProductTypeAt(r: BinaryReader, depth: number): ProductType {
  return { elements: readArray(r, (x) => readElement(x, depth)) };
}

/** Decode a BSATN `ProductType` (a bare element array). */
export function readProductType(r: BinaryReader): ProductType {
  return readProductTypeAt(r, 0);
}

function readTable(r: BinaryReader): RawTableDefV10 {
  const sourceName = r.readString();
  const productTypeRef = r.readU32();
  const primaryKey = readU16Array(r);
  const indexes = readArray(r, (x): RawIndexDefV10 => {
    const sourceName = readOption(x, (y) => y.readString());
    const accessorName = readOption(x, (y) => y.readString());
    const algo = readTag(x, ["BTree", "Hash", "Direct"] as const, "index algorithm");
    const algorithm: RawIndexAlgorithm = algo === "Direct"
      ? { tag: algo, column: x.readU16() }
      : { tag: algo, columns: readU16Array(x) };
    return { sourceName, accessorName, algorithm };
  });
  const constraints = readArray(r, (x): RawConstraintDefV10 => {
    const sourceName = readOption(x, (y) => y.readString());
    readTag(x, ["Unique"] as const, "constraint");
    return { sourceName, data: { tag: "Unique", columns: readU16Array(x) } };
  });
  const sequences = readArray(r, (x): RawSequenceDefV10 => ({
    sourceName: readOption(x, (y) => y.readString()),
    column: x.readU16(),
    start: readOption(x, (y) => y.readI128()),
    minValue: readOption(x, (y) => y.readI128()),
    maxValue: readOption(x, (y) => y.readI128()),
    increment: x.readI128(),
  }));
  const tableType = readTag(r, ["System", "User"] as const, "table type");
  const tableAccess = readTag(r, ["Public", "Private"] as const, "table access");
  const defaultValues = readArray(r, (x) => ({ colId: x.readU16(), value: x.readBytes() }));
  const isEvent = r.readBool();
  return {
    sourceName,
    productTypeRef,
    primaryKey,
    indexes,
    constraints,
    sequences,
    tableType,
    tableAccess,
    defaultValues,
    isEvent,
  };
}

const VISIBILITIES = ["Private", "ClientCallable"] as const;

function readHttpMethod(r: BinaryReader): HttpMethod {
  const tag = readTag(r, [...HTTP_METHOD_NAMES, "Extension"] as const, "HTTP method");
  return tag === "Extension" ? { tag, value: r.readString() } : { tag };
}

function readModuleDefV10(r: BinaryReader, depth: number): RawModuleDefV10 {
  if (depth > NESTING_DEPTH_MAX) throw new BsatnDecodeError("Submodule nesting is too deep");
  const def = emptyRawModuleDefV10();
  def.sectionOrder = [];
  const count = r.readU32();
  for (let i = 0; i < count; i++) {
    const section = readTag(r, SECTION_NAMES, "module def section");
    if (def.sectionOrder.includes(section)) {
      throw new ModuleDefError(`Module def has the ${section} section twice`);
    }
    def.sectionOrder.push(section);
    switch (section) {
      case "Typespace":
        def.typespace = readArray(r, (x) => readAlgebraicType(x));
        break;
      case "Types":
        def.types = readArray(r, (x) => {
          const scope = readArray(x, (y) => y.readString());
          const sourceName = x.readString();
          return {
            sourceName: { scope, sourceName },
            ty: x.readU32(),
            customOrdering: x.readBool(),
          };
        });
        break;
      case "Tables":
        def.tables = readArray(r, readTable);
        break;
      case "Reducers":
        def.reducers = readArray(r, (x) => ({
          sourceName: x.readString(),
          params: readProductType(x),
          visibility: readTag(x, VISIBILITIES, "visibility"),
          okReturnType: readAlgebraicType(x),
          errReturnType: readAlgebraicType(x),
        }));
        break;
      case "Procedures":
        def.procedures = readArray(r, (x) => ({
          sourceName: x.readString(),
          params: readProductType(x),
          returnType: readAlgebraicType(x),
          visibility: readTag(x, VISIBILITIES, "visibility"),
        }));
        break;
      case "Views":
        def.views = readArray(r, (x) => ({
          sourceName: x.readString(),
          index: x.readU32(),
          isPublic: x.readBool(),
          isAnonymous: x.readBool(),
          params: readProductType(x),
          returnType: readAlgebraicType(x),
        }));
        break;
      case "Schedules":
        def.schedules = readArray(r, (x) => ({
          sourceName: readOption(x, (y) => y.readString()),
          tableName: x.readString(),
          scheduleAtCol: x.readU16(),
          functionName: x.readString(),
        }));
        break;
      case "LifeCycleReducers":
        def.lifecycleReducers = readArray(r, (x) => ({
          lifecycleSpec: readTag(x, ["Init", "OnConnect", "OnDisconnect"] as const, "lifecycle"),
          functionName: x.readString(),
        }));
        break;
      case "RowLevelSecurity":
        def.rowLevelSecurity = readArray(r, (x) => ({ sql: x.readString() }));
        break;
      case "CaseConversionPolicy":
        def.caseConversionPolicy = readTag(r, ["None", "SnakeCase"] as const, "case policy");
        break;
      case "ExplicitNames":
        def.explicitNames = readArray(r, (x) => {
          const kind = readTag(x, ["Table", "Function", "Index"] as const, "explicit name");
          return { kind, sourceName: x.readString(), canonicalName: x.readString() };
        });
        break;
      case "HttpHandlers":
        def.httpHandlers = readArray(r, (x) => ({ sourceName: x.readString() }));
        break;
      case "HttpRoutes":
        def.httpRoutes = readArray(r, (x) => {
          const handlerFunction = x.readString();
          const methodTag = readTag(x, ["Any", "Method"] as const, "method-or-any");
          const method: MethodOrAny = methodTag === "Any"
            ? { tag: "Any" }
            : { tag: "Method", value: readHttpMethod(x) };
          return { handlerFunction, method, path: x.readString() };
        });
        break;
      case "ViewPrimaryKeys":
        def.viewPrimaryKeys = readArray(r, (x) => ({
          viewSourceName: x.readString(),
          columns: readArray(x, (y) => y.readString()),
        }));
        break;
      case "Submodules":
        def.submodules = readArray(r, (x) => ({
          namespace: x.readString(),
          module: readModuleDefV10(x, depth + 1),
        }));
        break;
    }
  }
  return def;
}

/**
 * Decode the BSATN `RawModuleDef` returned by `__describe_module__`. Only V10 (tag 2)
 * is supported; all bytes must be consumed. Throws `BsatnDecodeError` on malformed
 * bytes and `ModuleDefError` on an unsupported version.
 */
export function decodeRawModuleDef(bytes: Uint8Array): RawModuleDefV10 {
  const r = new BinaryReader(bytes);
  const version = r.readU8();
  if (version === 0 || version === 1) {
    throw new ModuleDefError(
      `Module definition version ${version === 0 ? "V8" : "V9"} is not supported: ` +
        "only V10 (modules built with the spacetimedb 2.x TypeScript library) can be loaded",
    );
  }
  if (version !== 2) throw new ModuleDefError(`Unknown module definition version tag ${version}`);
  const def = readModuleDefV10(r, 0);
  r.expectEnd("module definition");
  return def;
}

// ---------------------------------------------------------------------------------------
// Encoding

function writeArray<T>(w: BinaryWriter, items: readonly T[], writeItem: (item: T) => void): void {
  w.writeU32(items.length);
  for (const item of items) writeItem(item);
}

function writeOption<T>(w: BinaryWriter, value: T | undefined, writeSome: (v: T) => void): void {
  if (value === undefined) w.writeU8(1);
  else {
    w.writeU8(0);
    writeSome(value);
  }
}

function writeTag(w: BinaryWriter, names: readonly string[], name: string): void {
  const tag = names.indexOf(name);
  if (tag < 0) throw new TypeError(`Unknown variant "${name}"`);
  w.writeU8(tag);
}

/** Encode an `AlgebraicType` with the type meta-encoding. */
export function writeAlgebraicType(w: BinaryWriter, type: AlgebraicType): void {
  writeTag(w, ALGEBRAIC_TYPE_TAGS, type.tag);
  switch (type.tag) {
    case "Ref":
      w.writeU32(type.value);
      break;
    case "Sum":
      writeArray(w, type.value.variants, (v) => writeElement(w, v));
      break;
    case "Product":
      writeProductType(w, type.value);
      break;
    case "Array":
      writeAlgebraicType(w, type.value);
      break;
  }
}

function writeElement(w: BinaryWriter, element: ProductTypeElement): void {
  writeOption(w, element.name, (n) => w.writeString(n));
  writeAlgebraicType(w, element.algebraicType);
}

export function writeProductType(w: BinaryWriter, product: ProductType): void {
  writeArray(w, product.elements, (e) => writeElement(w, e));
}

function writeU16Array(w: BinaryWriter, items: readonly number[]): void {
  writeArray(w, items, (v) => w.writeU16(v));
}

function writeTable(w: BinaryWriter, t: RawTableDefV10): void {
  w.writeString(t.sourceName);
  w.writeU32(t.productTypeRef);
  writeU16Array(w, t.primaryKey);
  writeArray(w, t.indexes, (i) => {
    writeOption(w, i.sourceName, (s) => w.writeString(s));
    writeOption(w, i.accessorName, (s) => w.writeString(s));
    writeTag(w, ["BTree", "Hash", "Direct"], i.algorithm.tag);
    if (i.algorithm.tag === "Direct") w.writeU16(i.algorithm.column);
    else writeU16Array(w, i.algorithm.columns);
  });
  writeArray(w, t.constraints, (c) => {
    writeOption(w, c.sourceName, (s) => w.writeString(s));
    w.writeU8(0);
    writeU16Array(w, c.data.columns);
  });
  writeArray(w, t.sequences, (s) => {
    writeOption(w, s.sourceName, (n) => w.writeString(n));
    w.writeU16(s.column);
    writeOption(w, s.start, (v) => w.writeI128(v));
    writeOption(w, s.minValue, (v) => w.writeI128(v));
    writeOption(w, s.maxValue, (v) => w.writeI128(v));
    w.writeI128(s.increment);
  });
  writeTag(w, ["System", "User"], t.tableType);
  writeTag(w, ["Public", "Private"], t.tableAccess);
  writeArray(w, t.defaultValues, (d) => {
    w.writeU16(d.colId);
    w.writeBytes(d.value);
  });
  w.writeBool(t.isEvent);
}

function writeModuleDefV10(w: BinaryWriter, def: RawModuleDefV10): void {
  writeArray(w, def.sectionOrder, (section) => {
    writeTag(w, SECTION_NAMES, section);
    switch (section) {
      case "Typespace":
        writeArray(w, def.typespace, (t) => writeAlgebraicType(w, t));
        break;
      case "Types":
        writeArray(w, def.types, (t) => {
          writeArray(w, t.sourceName.scope, (s) => w.writeString(s));
          w.writeString(t.sourceName.sourceName);
          w.writeU32(t.ty);
          w.writeBool(t.customOrdering);
        });
        break;
      case "Tables":
        writeArray(w, def.tables, (t) => writeTable(w, t));
        break;
      case "Reducers":
        writeArray(w, def.reducers, (x) => {
          w.writeString(x.sourceName);
          writeProductType(w, x.params);
          writeTag(w, VISIBILITIES, x.visibility);
          writeAlgebraicType(w, x.okReturnType);
          writeAlgebraicType(w, x.errReturnType);
        });
        break;
      case "Procedures":
        writeArray(w, def.procedures, (x) => {
          w.writeString(x.sourceName);
          writeProductType(w, x.params);
          writeAlgebraicType(w, x.returnType);
          writeTag(w, VISIBILITIES, x.visibility);
        });
        break;
      case "Views":
        writeArray(w, def.views, (x) => {
          w.writeString(x.sourceName);
          w.writeU32(x.index);
          w.writeBool(x.isPublic);
          w.writeBool(x.isAnonymous);
          writeProductType(w, x.params);
          writeAlgebraicType(w, x.returnType);
        });
        break;
      case "Schedules":
        writeArray(w, def.schedules, (x) => {
          writeOption(w, x.sourceName, (s) => w.writeString(s));
          w.writeString(x.tableName);
          w.writeU16(x.scheduleAtCol);
          w.writeString(x.functionName);
        });
        break;
      case "LifeCycleReducers":
        writeArray(w, def.lifecycleReducers, (x) => {
          writeTag(w, ["Init", "OnConnect", "OnDisconnect"], x.lifecycleSpec);
          w.writeString(x.functionName);
        });
        break;
      case "RowLevelSecurity":
        writeArray(w, def.rowLevelSecurity, (x) => w.writeString(x.sql));
        break;
      case "CaseConversionPolicy":
        writeTag(w, ["None", "SnakeCase"], def.caseConversionPolicy);
        break;
      case "ExplicitNames":
        writeArray(w, def.explicitNames, (x) => {
          writeTag(w, ["Table", "Function", "Index"], x.kind);
          w.writeString(x.sourceName);
          w.writeString(x.canonicalName);
        });
        break;
      case "HttpHandlers":
        writeArray(w, def.httpHandlers, (x) => w.writeString(x.sourceName));
        break;
      case "HttpRoutes":
        writeArray(w, def.httpRoutes, (x) => {
          w.writeString(x.handlerFunction);
          if (x.method.tag === "Any") w.writeU8(0);
          else {
            w.writeU8(1);
            const method = x.method.value;
            writeTag(w, [...HTTP_METHOD_NAMES, "Extension"], method.tag);
            if (method.tag === "Extension") w.writeString(method.value);
          }
          w.writeString(x.path);
        });
        break;
      case "ViewPrimaryKeys":
        writeArray(w, def.viewPrimaryKeys, (x) => {
          w.writeString(x.viewSourceName);
          writeArray(w, x.columns, (c) => w.writeString(c));
        });
        break;
      case "Submodules":
        writeArray(w, def.submodules, (x) => {
          w.writeString(x.namespace);
          writeModuleDefV10(w, x.module);
        });
        break;
    }
  });
}

/** Encode as BSATN `RawModuleDef::V10`, writing the sections listed in `sectionOrder`. */
export function encodeRawModuleDef(def: RawModuleDefV10): Uint8Array {
  const w = new BinaryWriter(4096);
  w.writeU8(2);
  writeModuleDefV10(w, def);
  return w.finish();
}
