/**
 * Canonical names. Modules describe themselves with *source* names (JS export and
 * accessor names); the host derives the *canonical* names that clients, SQL and
 * system tables use, and validates the definition. This mirrors SpacetimeDB's
 * `schema::def::validate::v10` rules; `resolveModuleDef` is the one entry point.
 */
import type { AlgebraicType, ProductType, SumType, Typespace } from "./algebraic_type.ts";
import { BinaryReader, BsatnDecodeError, decodeValue, resolveType } from "./bsatn.ts";
import type {
  CaseConversionPolicy,
  FunctionVisibility,
  Lifecycle,
  MethodOrAny,
  RawModuleDefV10,
  RawTableDefV10,
  RawTypeDefV10,
  TableAccess,
  TableType,
} from "./module_def.ts";
import { ModuleDefError } from "./module_def.ts";
import type { Value } from "./algebraic_type.ts";

// ---------------------------------------------------------------------------------------
// Case conversion (Rust convert_case 0.6 with its default boundaries)

function isUpper(c: string): boolean {
  return c.toUpperCase() !== c.toLowerCase() && c === c.toUpperCase();
}
function isLower(c: string): boolean {
  return c.toUpperCase() !== c.toLowerCase() && c === c.toLowerCase();
}
function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/**
 * Split an identifier into words on `_`, `-` and space (consumed), and between
 * lower→Upper, Upper→digit, digit→Upper, digit→lower, lower→digit, and before the
 * last capital of an acronym followed by a lowercase letter (`ABc` → `A|Bc`).
 * Empty words are dropped.
 */
export function splitWords(identifier: string): string[] {
  const words: string[] = [];
  for (const part of identifier.split(/[_\- ]/)) {
    const chars = Array.from(part);
    let start = 0;
    for (let i = 1; i < chars.length; i++) {
      const a = chars[i - 1];
      const b = chars[i];
      const twoBoundary = (isLower(a) && isUpper(b)) ||
        (isUpper(a) && isDigit(b)) ||
        (isDigit(a) && isUpper(b)) ||
        (isDigit(a) && isLower(b)) ||
        (isLower(a) && isDigit(b));
      const acronymBoundary = i + 1 < chars.length && isUpper(a) && isUpper(b) &&
        isLower(chars[i + 1]);
      if (twoBoundary || acronymBoundary) {
        words.push(chars.slice(start, i).join(""));
        start = i;
      }
    }
    words.push(chars.slice(start).join(""));
  }
  return words.filter((w) => w.length > 0);
}

function capitalize(word: string): string {
  const [first = "", ...rest] = Array.from(word);
  return first.toUpperCase() + rest.join("").toLowerCase();
}

/** `oneU8` → `one_u_8`, `CreatePlayer1` → `create_player_1`, `IOStream` → `io_stream`. */
export function toSnakeCase(identifier: string): string {
  return splitWords(identifier).map((w) => w.toLowerCase()).join("_");
}

/** `player_name` → `PlayerName`, `IOStream` → `IoStream`. */
export function toPascalCase(identifier: string): string {
  return splitWords(identifier).map(capitalize).join("");
}

/** `PlayerName` → `playerName`, `red_delicious` → `redDelicious`. */
export function toCamelCase(identifier: string): string {
  return splitWords(identifier)
    .map((w, i) => (i === 0 ? w.toLowerCase() : capitalize(w)))
    .join("");
}

// ---------------------------------------------------------------------------------------
// Special types

const SPECIAL_PRODUCT_FIELDS: Record<string, AlgebraicType["tag"]> = {
  __identity__: "U256",
  __connection_id__: "U128",
  __timestamp_micros_since_unix_epoch__: "I64",
  __time_duration_micros__: "I64",
  __uuid__: "U128",
};

export type SpecialProductKind =
  | "Identity"
  | "ConnectionId"
  | "Timestamp"
  | "TimeDuration"
  | "Uuid";
const SPECIAL_PRODUCT_KINDS: Record<string, SpecialProductKind> = {
  __identity__: "Identity",
  __connection_id__: "ConnectionId",
  __timestamp_micros_since_unix_epoch__: "Timestamp",
  __time_duration_micros__: "TimeDuration",
  __uuid__: "Uuid",
};

/** Identity, ConnectionId, Timestamp, TimeDuration or Uuid, if `product` is one of them. */
export function specialProductKind(product: ProductType): SpecialProductKind | undefined {
  if (product.elements.length !== 1) return undefined;
  const [only] = product.elements;
  if (only.name === undefined) return undefined;
  const tag = SPECIAL_PRODUCT_FIELDS[only.name];
  return tag !== undefined && only.algebraicType.tag === tag
    ? SPECIAL_PRODUCT_KINDS[only.name]
    : undefined;
}

function isUnit(type: AlgebraicType): boolean {
  return type.tag === "Product" && type.value.elements.length === 0;
}

/** The payload type if `sum` is `Option<T>` (`some(T) | none`). */
export function optionInner(sum: SumType): AlgebraicType | undefined {
  const [some, none] = sum.variants;
  return sum.variants.length === 2 && some.name === "some" && none.name === "none" &&
      isUnit(none.algebraicType)
    ? some.algebraicType
    : undefined;
}

export function isScheduleAt(type: AlgebraicType): boolean {
  if (type.tag !== "Sum" || type.value.variants.length !== 2) return false;
  const [interval, time] = type.value.variants;
  return interval.name === "Interval" && time.name === "Time" &&
    interval.algebraicType.tag === "Product" &&
    specialProductKind(interval.algebraicType.value) === "TimeDuration" &&
    time.algebraicType.tag === "Product" &&
    specialProductKind(time.algebraicType.value) === "Timestamp";
}

function isResultSum(sum: SumType): boolean {
  return sum.variants.length === 2 && sum.variants[0].name === "ok" &&
    sum.variants[1].name === "err";
}

/** Special types are left alone by case conversion. */
export function isSpecialType(type: AlgebraicType): boolean {
  if (type.tag === "Product") return specialProductKind(type.value) !== undefined;
  if (type.tag === "Sum") {
    return optionInner(type.value) !== undefined || isScheduleAt(type) || isResultSum(type.value);
  }
  return false;
}

function convertTypeNames(
  type: AlgebraicType,
  fieldCase: (s: string) => string,
  variantCase: (s: string) => string,
): AlgebraicType {
  if (isSpecialType(type)) return type;
  switch (type.tag) {
    case "Product":
      return {
        tag: "Product",
        value: {
          elements: type.value.elements.map((e) => ({
            name: e.name === undefined ? undefined : fieldCase(e.name),
            algebraicType: convertTypeNames(e.algebraicType, fieldCase, variantCase),
          })),
        },
      };
    case "Sum":
      return {
        tag: "Sum",
        value: {
          variants: type.value.variants.map((v) => ({
            name: v.name === undefined ? undefined : variantCase(v.name),
            algebraicType: convertTypeNames(v.algebraicType, fieldCase, variantCase),
          })),
        },
      };
    case "Array":
      return { tag: "Array", value: convertTypeNames(type.value, fieldCase, variantCase) };
    default:
      return type;
  }
}

/** Column names → snake_case, enum variants → camelCase (identity under policy None). */
export function convertTypespaceNames(
  typespace: Typespace,
  policy: CaseConversionPolicy,
): Typespace {
  if (policy === "None") return typespace;
  return typespace.map((t) => convertTypeNames(t, toSnakeCase, toCamelCase));
}

// ---------------------------------------------------------------------------------------
// The resolved module definition

export type IndexAlgorithmName = "btree" | "hash" | "direct";

export interface ColumnDef {
  colId: number;
  /** Canonical column name (snake_case by default). */
  name: string;
  /** The name used in the module source. */
  sourceName: string;
  type: AlgebraicType;
  /** BSATN of the default value, if the column has one. */
  defaultValue: Uint8Array | undefined;
}
export interface IndexDef {
  /** Canonical name, e.g. `person_age_idx_btree` (qualified `ns.` in submodules). */
  name: string;
  /** Source name as the library asks for it in `index_id_from_name` (qualified). */
  sourceName: string;
  accessorName: string | undefined;
  algorithm: IndexAlgorithmName;
  columns: number[];
}
export interface UniqueConstraintDef {
  name: string;
  columns: number[];
}
export interface SequenceDef {
  name: string;
  column: number;
  start: bigint | undefined;
  minValue: bigint | undefined;
  maxValue: bigint | undefined;
  increment: bigint;
}
export interface ScheduleDef {
  /** `{table}_sched`. */
  name: string;
  atColumn: number;
  idColumn: number;
  /** Canonical (qualified) name of the reducer or procedure to call. */
  functionName: string;
  functionKind: "reducer" | "procedure";
}
export interface TableDef {
  /** Canonical name, qualified with `ns.` for submodule tables. */
  name: string;
  /** Accessor/source name, qualified with `ns.` for submodule tables. */
  sourceName: string;
  /** Canonical name without the namespace. */
  localName: string;
  /** Dotted namespace path of the owning module; "" for the root. */
  namespace: string;
  productTypeRef: number;
  /** Row type with canonical column names (Refs inside columns point into `typespace`). */
  rowType: ProductType;
  /** The owning module's typespace, with canonical names. */
  typespace: Typespace;
  columns: ColumnDef[];
  primaryKey: number | undefined;
  indexes: IndexDef[];
  uniqueConstraints: UniqueConstraintDef[];
  sequences: SequenceDef[];
  schedule: ScheduleDef | undefined;
  tableType: TableType;
  access: TableAccess;
  isPublic: boolean;
  isEvent: boolean;
}
export interface ReducerDef {
  /** Position in the flattened reducer list: the id passed to `__call_reducer__`. */
  id: number;
  name: string;
  sourceName: string;
  localName: string;
  namespace: string;
  /** Params with canonical (converted) names in the element names. */
  params: ProductType;
  /** Params exactly as the module declared them (source names). */
  sourceParams: ProductType;
  typespace: Typespace;
  lifecycle: Lifecycle | undefined;
  visibility: FunctionVisibility;
}
export interface ProcedureDef {
  id: number;
  name: string;
  sourceName: string;
  localName: string;
  namespace: string;
  params: ProductType;
  sourceParams: ProductType;
  returnType: AlgebraicType;
  typespace: Typespace;
  visibility: FunctionVisibility;
}
export interface ViewDef {
  /** Id for `__call_view__` / `__call_view_anon__` (separate spaces for the two kinds). */
  id: number;
  /** The raw `index` the module declared. */
  rawIndex: number;
  name: string;
  sourceName: string;
  localName: string;
  namespace: string;
  isPublic: boolean;
  isAnonymous: boolean;
  params: ProductType;
  returnType: AlgebraicType;
  /** `array` for `Array(Ref)`, `option` for `Option(Ref)`, `query` for `{__query__: Ref}`. */
  returnKind: "array" | "option" | "query";
  productTypeRef: number;
  rowType: ProductType;
  columns: ColumnDef[];
  primaryKey: number | undefined;
  typespace: Typespace;
}
export interface TypeDef {
  /** Canonical scoped name, e.g. `Namespace.Shape` is scope ["Namespace"], name "Shape". */
  name: string;
  scope: string[];
  sourceName: string;
  sourceScope: string[];
  ty: number;
  customOrdering: boolean;
  namespace: string;
}
export interface HttpHandlerDef {
  id: number;
  name: string;
  sourceName: string;
  namespace: string;
}
export interface HttpRouteDef {
  /** Canonical (qualified) handler name. */
  handlerName: string;
  handlerId: number;
  method: MethodOrAny;
  path: string;
  namespace: string;
}
export interface RowLevelSecurityDef {
  sql: string;
  namespace: string;
}

/**
 * A validated module definition. The flat lists hold the whole tree (the root's
 * items first, then each submodule's, depth-first, with `ns.`-qualified names);
 * `submodules` keeps the tree for re-serialisation.
 */
export interface ModuleDef {
  namespace: string;
  caseConversionPolicy: CaseConversionPolicy;
  /** This module's typespace with canonical names. */
  typespace: Typespace;
  /** This module's typespace as declared (source names). */
  sourceTypespace: Typespace;
  types: TypeDef[];
  tables: TableDef[];
  reducers: ReducerDef[];
  procedures: ProcedureDef[];
  views: ViewDef[];
  rowLevelSecurity: RowLevelSecurityDef[];
  httpHandlers: HttpHandlerDef[];
  httpRoutes: HttpRouteDef[];
  /** Reducer ids of the root's lifecycle reducers. */
  lifecycle: Partial<Record<Lifecycle, number>>;
  submodules: { namespace: string; module: ModuleDef }[];
}

/** Lookups over a resolved definition (by canonical or source name). */
export function findTable(def: ModuleDef, name: string): TableDef | undefined {
  return def.tables.find((t) => t.name === name) ?? def.tables.find((t) => t.sourceName === name);
}
export function findReducer(def: ModuleDef, name: string): ReducerDef | undefined {
  return def.reducers.find((r) => r.name === name);
}
export function findProcedure(def: ModuleDef, name: string): ProcedureDef | undefined {
  return def.procedures.find((p) => p.name === name);
}

// ---------------------------------------------------------------------------------------
// Validation and resolution

const INTEGER_TAGS = new Set<AlgebraicType["tag"]>([
  "I8",
  "U8",
  "I16",
  "U16",
  "I32",
  "U32",
  "I64",
  "U64",
  "I128",
  "U128",
  "I256",
  "U256",
]);
const NAMESPACE_BYTES_MAX = 63;
const ROUTE_PATH_PATTERN = /^(\/[a-z0-9\-_~/]*)?$/;
const IDENTIFIER_PATTERN = /^[\p{XID_Start}_][\p{XID_Continue}]*$/u;

function qualify(namespace: string, name: string): string {
  return namespace === "" ? name : `${namespace}.${name}`;
}

interface ModuleScope {
  raw: RawModuleDefV10;
  namespace: string;
  policy: CaseConversionPolicy;
  caseName: (s: string) => string;
  typespace: Typespace;
  explicitTables: Map<string, string>;
  explicitFunctions: Map<string, string>;
  explicitIndexes: Map<string, string>;
  /** Global namespace: tables, indexes, constraints, sequences, schedules. */
  globalNames: Set<string>;
}

function fail(scope: ModuleScope, message: string): never {
  const where = scope.namespace === "" ? "" : ` (in submodule "${scope.namespace}")`;
  throw new ModuleDefError(`${message}${where}`);
}

/**
 * Names clients, SQL and generated bindings show may not hold control characters (C0, DEL, C1):
 * a hostile module's table or column named with a terminal escape reached the terminal of anyone
 * who described its database or queried it with the CLI. (SpacetimeDB requires identifiers;
 * Lightcone accepts other printable names, which codegen quotes or refuses.)
 */
function checkPrintableName(scope: ModuleScope, what: string, name: string): void {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) {
    fail(scope, `${what} ${JSON.stringify(name)} contains a control character`);
  }
}

function addGlobalName(scope: ModuleScope, name: string): void {
  if (scope.globalNames.has(name)) fail(scope, `Duplicate name "${name}" in the module`);
  scope.globalNames.add(name);
}

function resolveTableName(scope: ModuleScope, source: string): string {
  return scope.explicitTables.get(source) ?? scope.caseName(source);
}
function resolveFunctionName(scope: ModuleScope, source: string): string {
  return scope.explicitFunctions.get(source) ?? scope.caseName(source);
}

function productAt(scope: ModuleScope, ref: number, owner: string): ProductType {
  const type = scope.typespace[ref];
  if (type === undefined || type.tag !== "Product") {
    fail(scope, `"${owner}" refers to type ${ref}, which is not a product type in the typespace`);
  }
  return type.value;
}

function checkColumns(
  scope: ModuleScope,
  table: string,
  columns: number[],
  count: number,
  what: string,
) {
  const seen = new Set<number>();
  for (const col of columns) {
    if (!Number.isInteger(col) || col < 0 || col >= count) {
      fail(scope, `${what} of table "${table}" refers to column ${col}, which does not exist`);
    }
    if (seen.has(col)) fail(scope, `${what} of table "${table}" lists column ${col} twice`);
    seen.add(col);
  }
}

function isSimpleEnum(type: AlgebraicType, typespace: Typespace): boolean {
  const resolved = type.tag === "Ref" ? typespace[type.value] : type;
  return resolved?.tag === "Sum" && resolved.value.variants.every((v) => isUnit(v.algebraicType));
}

function resolveTable(scope: ModuleScope, raw: RawTableDefV10): TableDef {
  const rowType = productAt(scope, raw.productTypeRef, raw.sourceName);
  const sourceRow = scope.raw.typespace[raw.productTypeRef] as {
    tag: "Product";
    value: ProductType;
  };
  const localName = resolveTableName(scope, raw.sourceName);
  checkPrintableName(scope, "Table name", raw.sourceName);
  checkPrintableName(scope, "Table name", localName);
  if (raw.tableType !== "System" && localName.startsWith("st_")) {
    fail(
      scope,
      `Table name "${localName}" is reserved: names starting with "st_" are for system tables`,
    );
  }
  const count = rowType.elements.length;
  const columns: ColumnDef[] = rowType.elements.map((e, colId) => {
    const sourceName = sourceRow.value.elements[colId].name;
    if (sourceName === undefined || e.name === undefined) {
      fail(scope, `Column ${colId} of table "${raw.sourceName}" has no name`);
    }
    checkPrintableName(scope, `Column of table "${localName}"`, sourceName);
    checkPrintableName(scope, `Column of table "${localName}"`, e.name);
    return { colId, name: e.name, sourceName, type: e.algebraicType, defaultValue: undefined };
  });
  const columnNames = (cols: number[]) => cols.map((c) => columns[c].name).join("_");

  addGlobalName(scope, raw.sourceName);
  if (localName !== raw.sourceName) addGlobalName(scope, localName);

  const indexes: IndexDef[] = raw.indexes.map((index) => {
    const cols = index.algorithm.tag === "Direct"
      ? [index.algorithm.column]
      : index.algorithm.columns;
    const algorithm = index.algorithm.tag.toLowerCase() as IndexAlgorithmName;
    checkColumns(scope, raw.sourceName, cols, count, `Index "${index.sourceName ?? "?"}"`);
    const generated = `${localName}_${columnNames(cols)}_idx_${algorithm}`;
    const sourceName = index.sourceName ?? generated;
    addGlobalName(scope, sourceName);
    const name = scope.explicitIndexes.get(sourceName) ?? generated;
    if (name !== sourceName) addGlobalName(scope, name);
    if (algorithm === "direct") {
      const type = columns[cols[0]].type;
      const ok = ["U8", "U16", "U32", "U64"].includes(type.tag) ||
        isSimpleEnum(type, scope.typespace);
      if (!ok) {
        fail(
          scope,
          `Direct index "${name}" is on column "${columns[cols[0]].name}" of type ${type.tag}; ` +
            "direct indexes need U8, U16, U32, U64 or a simple enum",
        );
      }
    }
    for (const shown of [name, sourceName, index.accessorName ?? ""]) {
      checkPrintableName(scope, `Index of table "${localName}"`, shown);
    }
    return { name, sourceName, accessorName: index.accessorName, algorithm, columns: cols };
  });

  const uniqueConstraints: UniqueConstraintDef[] = raw.constraints.map((c) => {
    const name = `${localName}_${columnNames(c.data.columns)}_key`;
    checkColumns(scope, raw.sourceName, c.data.columns, count, `Unique constraint "${name}"`);
    addGlobalName(scope, name);
    return { name, columns: c.data.columns };
  });
  const sameSet = (a: number[], b: number[]) =>
    a.length === b.length && a.every((x) => b.includes(x));
  for (const c of uniqueConstraints) {
    if (!indexes.some((i) => sameSet(i.columns, c.columns))) {
      fail(
        scope,
        `Unique constraint "${c.name}" on columns [${c.columns}] has no index on exactly those columns`,
      );
    }
  }

  if (raw.primaryKey.length > 1) {
    fail(scope, `Table "${raw.sourceName}" has a multi-column primary key, which is not supported`);
  }
  const primaryKey = raw.primaryKey[0];
  if (primaryKey !== undefined) {
    checkColumns(scope, raw.sourceName, [primaryKey], count, "The primary key");
    if (!uniqueConstraints.some((c) => sameSet(c.columns, [primaryKey]))) {
      fail(
        scope,
        `Primary key column "${
          columns[primaryKey].name
        }" of table "${raw.sourceName}" has no unique constraint`,
      );
    }
  }

  const sequenceColumns = new Set<number>();
  const sequences: SequenceDef[] = raw.sequences.map((s) => {
    const name = s.sourceName ?? `${localName}_${columns[s.column]?.name ?? `col_${s.column}`}_seq`;
    checkColumns(scope, raw.sourceName, [s.column], count, `Sequence "${name}"`);
    const type = columns[s.column].type;
    if (!INTEGER_TAGS.has(type.tag)) {
      fail(
        scope,
        `Sequence "${name}" is on column "${columns[s.column].name}" of type ${type.tag}; ` +
          "auto-increment needs an integer column",
      );
    }
    if (sequenceColumns.has(s.column)) {
      fail(
        scope,
        `Column "${
          columns[s.column].name
        }" of table "${raw.sourceName}" has more than one sequence`,
      );
    }
    sequenceColumns.add(s.column);
    const le = (lo: bigint | undefined, hi: bigint | undefined) =>
      lo === undefined || hi === undefined || lo <= hi;
    if (!(le(s.minValue, s.start) && le(s.start, s.maxValue) && le(s.minValue, s.maxValue))) {
      fail(
        scope,
        `Sequence "${name}" has an invalid range: min ${s.minValue}, start ${s.start}, max ${s.maxValue}`,
      );
    }
    addGlobalName(scope, name);
    return {
      name,
      column: s.column,
      start: s.start,
      minValue: s.minValue,
      maxValue: s.maxValue,
      increment: s.increment,
    };
  });

  for (const d of raw.defaultValues) {
    const column = columns[d.colId];
    if (column === undefined) {
      fail(scope, `Default value for missing column ${d.colId} of table "${raw.sourceName}"`);
    }
    try {
      const reader = new BinaryReader(d.value);
      decodeValue(reader, column.type, scope.typespace);
      reader.expectEnd("default value");
    } catch (e) {
      if (!(e instanceof BsatnDecodeError)) throw e;
      fail(
        scope,
        `Default value of column "${column.name}" of table "${raw.sourceName}" is malformed: ${e.message}`,
      );
    }
    column.defaultValue = d.value;
  }

  return {
    name: qualify(scope.namespace, localName),
    sourceName: qualify(scope.namespace, raw.sourceName),
    localName,
    namespace: scope.namespace,
    productTypeRef: raw.productTypeRef,
    rowType,
    typespace: scope.typespace,
    columns,
    primaryKey,
    indexes: indexes.map((i) => ({
      ...i,
      name: qualify(scope.namespace, i.name),
      sourceName: qualify(scope.namespace, i.sourceName),
    })),
    uniqueConstraints,
    sequences,
    schedule: undefined,
    tableType: raw.tableType,
    access: raw.tableAccess,
    isPublic: raw.tableAccess === "Public",
    isEvent: raw.isEvent,
  };
}

function convertParams(scope: ModuleScope, params: ProductType, owner: string): ProductType {
  return {
    elements: params.elements.map((e, i) => {
      if (e.name === undefined) fail(scope, `Parameter ${i} of "${owner}" has no name`);
      checkPrintableName(scope, `Parameter of "${owner}"`, e.name);
      return { name: scope.caseName(e.name), algebraicType: e.algebraicType };
    }),
  };
}

function viewReturn(
  type: AlgebraicType,
): { kind: "array" | "option" | "query"; ref: number } | undefined {
  if (type.tag === "Array" && type.value.tag === "Ref") {
    return { kind: "array", ref: type.value.value };
  }
  if (type.tag === "Sum") {
    const inner = optionInner(type.value);
    if (inner?.tag === "Ref") return { kind: "option", ref: inner.value };
  }
  if (
    type.tag === "Product" && type.value.elements.length === 1 &&
    type.value.elements[0].name === "__query__" &&
    type.value.elements[0].algebraicType.tag === "Ref"
  ) {
    return { kind: "query", ref: type.value.elements[0].algebraicType.value };
  }
  return undefined;
}

function resolveTypeDef(scope: ModuleScope, raw: RawTypeDefV10): TypeDef {
  const caseType = scope.policy === "None" ? (s: string) => s : toPascalCase;
  if (scope.typespace[raw.ty] === undefined) {
    fail(
      scope,
      `Type "${raw.sourceName.sourceName}" refers to type ${raw.ty}, which is not in the typespace`,
    );
  }
  return {
    name: caseType(raw.sourceName.sourceName),
    scope: raw.sourceName.scope.map(caseType),
    sourceName: raw.sourceName.sourceName,
    sourceScope: raw.sourceName.scope,
    ty: raw.ty,
    customOrdering: raw.customOrdering,
    namespace: scope.namespace,
  };
}

interface Counters {
  reducers: number;
  procedures: number;
  views: number;
  anonymousViews: number;
  httpHandlers: number;
}

function resolveModule(raw: RawModuleDefV10, namespace: string, counters: Counters): ModuleDef {
  const policy = raw.caseConversionPolicy;
  const scope: ModuleScope = {
    raw,
    namespace,
    policy,
    caseName: policy === "None" ? (s) => s : toSnakeCase,
    typespace: convertTypespaceNames(raw.typespace, policy),
    explicitTables: new Map(),
    explicitFunctions: new Map(),
    explicitIndexes: new Map(),
    globalNames: new Set(),
  };
  // Field and variant names of every type (rows, arguments, enums) are shown as they are.
  const walk = (type: AlgebraicType | undefined): void => {
    if (type?.tag === "Product") {
      for (const e of type.value.elements) {
        if (e.name !== undefined) checkPrintableName(scope, "Field name", e.name);
        walk(e.algebraicType);
      }
    } else if (type?.tag === "Sum") {
      for (const v of type.value.variants) {
        if (v.name !== undefined) checkPrintableName(scope, "Variant name", v.name);
        walk(v.algebraicType);
      }
    } else if (type?.tag === "Array") walk(type.value);
  };
  raw.typespace.forEach(walk);
  for (const entry of raw.explicitNames) {
    checkPrintableName(scope, "Name", entry.canonicalName);
    const map = entry.kind === "Table"
      ? scope.explicitTables
      : entry.kind === "Function"
      ? scope.explicitFunctions
      : scope.explicitIndexes;
    map.set(entry.sourceName, entry.canonicalName);
  }

  const tables = raw.tables.map((t) => resolveTable(scope, t));

  const functionNames = new Set<string>();
  const claimFunctionName = (name: string) => {
    if (functionNames.has(name)) fail(scope, `Duplicate function name "${name}"`);
    functionNames.add(name);
  };

  const reducers: ReducerDef[] = raw.reducers.map((r) => {
    const localName = resolveFunctionName(scope, r.sourceName);
    if (!isUnit(r.okReturnType) || r.errReturnType.tag !== "String") {
      fail(scope, `Reducer "${r.sourceName}" must return Result<(), String>`);
    }
    return {
      id: -1,
      name: qualify(namespace, localName),
      sourceName: qualify(namespace, r.sourceName),
      localName,
      namespace,
      params: convertParams(scope, r.params, r.sourceName),
      sourceParams: r.params,
      typespace: scope.typespace,
      lifecycle: undefined,
      visibility: r.visibility,
    };
  });
  const procedures: ProcedureDef[] = raw.procedures.map((p) => {
    const localName = resolveFunctionName(scope, p.sourceName);
    return {
      id: -1,
      name: qualify(namespace, localName),
      sourceName: qualify(namespace, p.sourceName),
      localName,
      namespace,
      params: convertParams(scope, p.params, p.sourceName),
      sourceParams: p.params,
      returnType: p.returnType,
      typespace: scope.typespace,
      visibility: p.visibility,
    };
  });
  const views: ViewDef[] = raw.views.map((v) => {
    const ret = viewReturn(v.returnType);
    if (!ret) {
      fail(
        scope,
        `View "${v.sourceName}" must return an array or option of a row type, got ${v.returnType.tag}`,
      );
    }
    const rowType = productAt(scope, ret.ref, v.sourceName);
    const sourceRow = scope.raw.typespace[ret.ref] as { tag: "Product"; value: ProductType };
    const localName = resolveFunctionName(scope, v.sourceName);
    addGlobalName(scope, localName);
    return {
      id: -1,
      rawIndex: v.index,
      name: qualify(namespace, localName),
      sourceName: qualify(namespace, v.sourceName),
      localName,
      namespace,
      isPublic: v.isPublic,
      isAnonymous: v.isAnonymous,
      params: convertParams(scope, v.params, v.sourceName),
      returnType: v.returnType,
      returnKind: ret.kind,
      productTypeRef: ret.ref,
      rowType,
      columns: rowType.elements.map((e, colId) => {
        const sourceName = sourceRow.value.elements[colId].name;
        if (e.name === undefined || sourceName === undefined) {
          fail(scope, `Column ${colId} of view "${v.sourceName}" has no name`);
        }
        checkPrintableName(scope, `Column of view "${localName}"`, sourceName);
        checkPrintableName(scope, `Column of view "${localName}"`, e.name);
        return { colId, name: e.name, sourceName, type: e.algebraicType, defaultValue: undefined };
      }),
      primaryKey: undefined,
      typespace: scope.typespace,
    };
  });
  for (const f of [...reducers, ...procedures, ...views]) {
    const what = reducers.includes(f as ReducerDef)
      ? "Reducer name"
      : procedures.includes(f as ProcedureDef)
      ? "Procedure name"
      : "View name";
    checkPrintableName(scope, what, f.localName);
    checkPrintableName(
      scope,
      what,
      f.sourceName.slice(namespace === "" ? 0 : namespace.length + 1),
    );
    claimFunctionName(f.localName);
  }

  // Lifecycle reducers.
  const lifecycle: Partial<Record<Lifecycle, number>> = {};
  const lifecycleLocal: Partial<Record<Lifecycle, ReducerDef>> = {};
  for (const l of raw.lifecycleReducers) {
    const name = resolveFunctionName(scope, l.functionName);
    const reducer = reducers.find((r) => r.localName === name);
    if (!reducer) {
      fail(scope, `Lifecycle ${l.lifecycleSpec} names "${l.functionName}", which is not a reducer`);
    }
    if (lifecycleLocal[l.lifecycleSpec]) {
      fail(scope, `Lifecycle ${l.lifecycleSpec} is assigned twice`);
    }
    if (reducer.lifecycle) fail(scope, `Reducer "${reducer.localName}" is assigned two lifecycles`);
    if (namespace !== "") {
      fail(scope, `Lifecycle reducer "${l.functionName}" is not allowed in a submodule`);
    }
    reducer.lifecycle = l.lifecycleSpec;
    reducer.visibility = "Private";
    lifecycleLocal[l.lifecycleSpec] = reducer;
  }

  // Schedules.
  for (const s of raw.schedules) {
    const tableName = resolveTableName(scope, s.tableName);
    const table = tables.find((t) => t.localName === tableName);
    if (!table) fail(scope, `Schedule names table "${s.tableName}", which does not exist`);
    const name = `${tableName}_sched`;
    addGlobalName(scope, name);
    if (table.schedule) fail(scope, `Table "${tableName}" has more than one schedule`);
    const at = table.columns[s.scheduleAtCol];
    const pk = table.primaryKey === undefined ? undefined : table.columns[table.primaryKey];
    if (!at || !isScheduleAt(at.type) || !pk || pk.type.tag !== "U64") {
      fail(
        scope,
        `Scheduled table "${tableName}" needs a ScheduleAt column at position ${s.scheduleAtCol} ` +
          "and a U64 primary key",
      );
    }
    const functionName = resolveFunctionName(scope, s.functionName);
    const reducer = reducers.find((r) => r.localName === functionName);
    const procedure = procedures.find((p) => p.localName === functionName);
    const target = reducer ?? procedure;
    if (!target) {
      fail(
        scope,
        `Schedule "${name}" calls "${s.functionName}", which is not a reducer or procedure`,
      );
    }
    const params = target.sourceParams.elements;
    if (
      params.length !== 1 || params[0].algebraicType.tag !== "Ref" ||
      params[0].algebraicType.value !== table.productTypeRef
    ) {
      fail(
        scope,
        `Scheduled function "${functionName}" must take exactly one argument of the row type of "${tableName}"`,
      );
    }
    if (procedure && !isUnit(procedure.returnType)) {
      fail(scope, `Scheduled procedure "${functionName}" must return unit`);
    }
    target.visibility = "Private";
    table.schedule = {
      name,
      atColumn: s.scheduleAtCol,
      idColumn: table.primaryKey!,
      functionName: target.name,
      functionKind: reducer ? "reducer" : "procedure",
    };
  }

  // View primary keys (by source view and column names).
  const seenViewKeys = new Set<string>();
  for (const k of raw.viewPrimaryKeys) {
    if (seenViewKeys.has(k.viewSourceName)) {
      fail(scope, `View "${k.viewSourceName}" has two primary keys`);
    }
    seenViewKeys.add(k.viewSourceName);
    if (k.columns.length > 1) {
      fail(scope, `View "${k.viewSourceName}" has a multi-column primary key`);
    }
    if (k.columns.length === 0) continue;
    const view = views.find((v) => v.sourceName === qualify(namespace, k.viewSourceName));
    if (!view) fail(scope, `Primary key names view "${k.viewSourceName}", which does not exist`);
    const column = view.columns.find((c) => c.sourceName === k.columns[0]);
    if (!column) {
      fail(
        scope,
        `Primary key of view "${k.viewSourceName}" names a missing column "${k.columns[0]}"`,
      );
    }
    view.primaryKey = column.colId;
  }
  for (const view of views) {
    if (view.returnKind !== "query" || view.primaryKey !== undefined) continue;
    const keys = new Set(
      tables.filter((t) => t.productTypeRef === view.productTypeRef && t.primaryKey !== undefined)
        .map((t) => t.primaryKey),
    );
    if (keys.size === 1) view.primaryKey = [...keys][0];
  }

  // Types.
  const typeNames = new Set<string>();
  const types = raw.types.map((t) => {
    const def = resolveTypeDef(scope, t);
    for (const part of [...def.scope, def.name, ...def.sourceScope, def.sourceName]) {
      checkPrintableName(scope, "Type name", part);
    }
    const full = [...def.scope, def.name].join(".");
    if (typeNames.has(full)) fail(scope, `Duplicate type name "${full}"`);
    typeNames.add(full);
    return def;
  });

  // HTTP handlers and routes.
  const httpHandlers: HttpHandlerDef[] = raw.httpHandlers.map((h) => {
    const localName = resolveFunctionName(scope, h.sourceName);
    return {
      id: -1,
      name: qualify(namespace, localName),
      sourceName: qualify(namespace, h.sourceName),
      namespace,
    };
  });
  const handlerNames = new Set<string>();
  for (const h of httpHandlers) {
    if (handlerNames.has(h.name)) fail(scope, `Duplicate HTTP handler name "${h.name}"`);
    handlerNames.add(h.name);
  }
  const httpRoutes: HttpRouteDef[] = raw.httpRoutes.map((r) => {
    if (!ROUTE_PATH_PATTERN.test(r.path)) {
      fail(
        scope,
        `HTTP route path "${r.path}" is invalid: use "/" followed by a-z, 0-9, -, _, ~ and /`,
      );
    }
    const handlerName = qualify(namespace, resolveFunctionName(scope, r.handlerFunction));
    if (!handlerNames.has(handlerName)) {
      fail(scope, `HTTP route "${r.path}" names a missing handler "${r.handlerFunction}"`);
    }
    return { handlerName, handlerId: -1, method: r.method, path: r.path, namespace };
  });
  httpRoutes.forEach((route, i) => {
    for (const earlier of httpRoutes.slice(0, i)) {
      const overlap = earlier.path === route.path &&
        (earlier.method.tag === "Any" || route.method.tag === "Any" ||
          JSON.stringify(earlier.method) === JSON.stringify(route.method));
      if (overlap) fail(scope, `Duplicate HTTP route for path "${route.path}"`);
    }
  });

  // Ids: this module's functions come before its submodules' (depth-first).
  for (const r of reducers) r.id = counters.reducers++;
  for (const p of procedures) p.id = counters.procedures++;
  for (const v of views) v.id = v.isAnonymous ? counters.anonymousViews++ : counters.views++;
  for (const h of httpHandlers) h.id = counters.httpHandlers++;
  for (const [kind, reducer] of Object.entries(lifecycleLocal)) {
    lifecycle[kind as Lifecycle] = reducer.id;
  }

  const rowLevelSecurity = raw.rowLevelSecurity.map((r) => ({ sql: r.sql, namespace }));

  // Submodules.
  const submodules: { namespace: string; module: ModuleDef }[] = [];
  const seenNamespaces = new Set<string>();
  for (const sub of raw.submodules) {
    if (new TextEncoder().encode(sub.namespace).length > NAMESPACE_BYTES_MAX) {
      fail(
        scope,
        `Submodule namespace "${sub.namespace}" is longer than ${NAMESPACE_BYTES_MAX} bytes`,
      );
    }
    if (!IDENTIFIER_PATTERN.test(sub.namespace)) {
      fail(scope, `Submodule namespace "${sub.namespace}" is not a valid identifier`);
    }
    if (seenNamespaces.has(sub.namespace)) {
      fail(scope, `Duplicate submodule namespace "${sub.namespace}"`);
    }
    seenNamespaces.add(sub.namespace);
    submodules.push({
      namespace: sub.namespace,
      module: resolveModule(sub.module, qualify(namespace, sub.namespace), counters),
    });
  }

  const handlerIds = new Map<string, number>();
  const def: ModuleDef = {
    namespace,
    caseConversionPolicy: policy,
    typespace: scope.typespace,
    sourceTypespace: raw.typespace,
    types,
    tables,
    reducers,
    procedures,
    views,
    rowLevelSecurity,
    httpHandlers,
    httpRoutes,
    lifecycle,
    submodules,
  };
  for (const { module } of submodules) {
    def.tables = def.tables.concat(module.tables);
    def.reducers = def.reducers.concat(module.reducers);
    def.procedures = def.procedures.concat(module.procedures);
    def.views = def.views.concat(module.views);
    def.types = def.types.concat(module.types);
    def.rowLevelSecurity = def.rowLevelSecurity.concat(module.rowLevelSecurity);
    def.httpHandlers = def.httpHandlers.concat(module.httpHandlers);
    def.httpRoutes = def.httpRoutes.concat(module.httpRoutes);
  }
  for (const h of def.httpHandlers) handlerIds.set(h.name, h.id);
  for (const r of httpRoutes) r.handlerId = handlerIds.get(r.handlerName)!;
  return def;
}

/**
 * Validate a raw V10 definition and derive canonical names, ids and resolved row
 * types. Throws `ModuleDefError` naming the first problem found.
 */
export function resolveModuleDef(raw: RawModuleDefV10): ModuleDef {
  return resolveModule(raw, "", {
    reducers: 0,
    procedures: 0,
    views: 0,
    anonymousViews: 0,
    httpHandlers: 0,
  });
}

/** Decode a column's default value (BSATN) to a Value. */
export function decodeDefaultValue(table: TableDef, column: ColumnDef): Value | undefined {
  if (column.defaultValue === undefined) return undefined;
  return decodeValue(new BinaryReader(column.defaultValue), column.type, table.typespace);
}

/** The canonical type of a column after following Refs (for quick checks). */
export function resolvedColumnType(table: TableDef, colId: number): AlgebraicType {
  return resolveType(table.columns[colId].type, table.typespace);
}
