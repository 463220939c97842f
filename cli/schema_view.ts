/**
 * Reads the SATS-JSON module schema from GET /schema (RawModuleDefV10, or V9 as a
 * fallback) into a small summary the CLI prints and searches: tables with columns,
 * reducers with signatures, procedures, views. Accepts both snake_case (Rust field names,
 * what SpacetimeDB sends) and camelCase field names.
 */

export interface ColumnSummary {
  name: string;
  type: string;
}

export interface TableSummary {
  name: string;
  isPublic: boolean;
  isSystem: boolean;
  isEvent: boolean;
  columns: ColumnSummary[];
  primaryKey: string[];
  indexes: { name: string; algorithm: string; columns: string[] }[];
  uniqueConstraints: { name: string; columns: string[] }[];
  autoIncrement: string[];
  scheduledReducer?: string;
  raw: unknown;
}

export interface FunctionSummary {
  name: string;
  params: ColumnSummary[];
  /** Client callable (not a lifecycle or scheduled-only reducer). */
  callable: boolean;
  lifecycle?: string;
  returnType?: string;
  raw: unknown;
}

export interface ViewSummary {
  name: string;
  isPublic: boolean;
  isAnonymous: boolean;
  params: ColumnSummary[];
  returnType: string;
  raw: unknown;
}

export interface ModuleSummary {
  version: 9 | 10;
  tables: TableSummary[];
  reducers: FunctionSummary[];
  procedures: FunctionSummary[];
  views: ViewSummary[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads `obj[snake]`, else `obj[camel]`. */
function field(obj: unknown, snake: string): unknown {
  if (!isObject(obj)) return undefined;
  if (snake in obj) return obj[snake];
  const camel = snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  return obj[camel];
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A SATS-JSON sum value `{"Variant": payload}` -> [variant, payload]. */
function variantOf(value: unknown): [string, unknown] | undefined {
  if (typeof value === "string") return [value, []];
  if (!isObject(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) {
    if ("tag" in value && typeof value.tag === "string") return [value.tag, value.value];
    return undefined;
  }
  return [keys[0], value[keys[0]]];
}

/** `{"some": x}` / `{"none": []}` / plain x / null -> x or undefined. */
function optionOf(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  const variant = variantOf(value);
  if (variant && variant[0] === "some") return variant[1];
  if (variant && variant[0] === "none") return undefined;
  return value;
}

function optionalString(value: unknown): string | undefined {
  const inner = optionOf(value);
  return typeof inner === "string" ? inner : undefined;
}

/** Splits an identifier into words like Rust's convert_case (acronyms, digits). */
export function splitWords(name: string): string[] {
  const words: string[] = [];
  for (const part of name.split(/[_\-\s]+/)) {
    if (part === "") continue;
    const matches = part.match(/[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+/g);
    if (matches) words.push(...matches);
  }
  return words;
}

export function toSnakeCase(name: string): string {
  return splitWords(name).map((w) => w.toLowerCase()).join("_");
}

interface NameContext {
  snakeCase: boolean;
  explicit: Map<string, string>;
  typeNames: Map<number, string>;
  typespace: unknown[];
}

function canonical(ctx: NameContext, sourceName: string): string {
  const explicit = ctx.explicit.get(sourceName);
  if (explicit !== undefined) return explicit;
  return ctx.snakeCase ? toSnakeCase(sourceName) : sourceName;
}

/** Renders a SATS-JSON AlgebraicType the way a user writes it: `Array<U32>`, `Option<String>`. */
export function renderType(type: unknown, typeNames: Map<number, string> = new Map()): string {
  const variant = variantOf(type);
  if (!variant) return "?";
  const [tag, payload] = variant;
  switch (tag) {
    case "Ref":
      return typeNames.get(Number(payload)) ?? `&${payload}`;
    case "Array": {
      const inner = renderType(payload, typeNames);
      return inner === "U8" ? "Bytes" : `Array<${inner}>`;
    }
    case "Product": {
      const elements = asArray(field(payload, "elements"));
      if (elements.length === 1) {
        const special = SPECIAL_PRODUCTS[optionalString(field(elements[0], "name")) ?? ""];
        if (special) return special;
      }
      if (elements.length === 0) return "()";
      return `(${
        elements.map((e) =>
          `${optionalString(field(e, "name")) ?? "_"}: ${
            renderType(field(e, "algebraic_type"), typeNames)
          }`
        ).join(", ")
      })`;
    }
    case "Sum": {
      const variants = asArray(field(payload, "variants"));
      const names = variants.map((v) => optionalString(field(v, "name")) ?? "_");
      if (names.length === 2 && names[0] === "some" && names[1] === "none") {
        return `Option<${renderType(field(variants[0], "algebraic_type"), typeNames)}>`;
      }
      if (names.length === 2 && names[0] === "ok" && names[1] === "err") {
        return `Result<${renderType(field(variants[0], "algebraic_type"), typeNames)}, ${
          renderType(field(variants[1], "algebraic_type"), typeNames)
        }>`;
      }
      if (names.length === 2 && names[0] === "Interval" && names[1] === "Time") {
        return "ScheduleAt";
      }
      if (variants.length === 0) return "Never";
      return variants.map((v, i) => {
        const inner = renderType(field(v, "algebraic_type"), typeNames);
        return inner === "()" ? names[i] : `${names[i]}(${inner})`;
      }).join(" | ");
    }
    default:
      return tag;
  }
}

const SPECIAL_PRODUCTS: Record<string, string> = {
  __identity__: "Identity",
  __connection_id__: "ConnectionId",
  __timestamp_micros_since_unix_epoch__: "Timestamp",
  __time_duration_micros__: "TimeDuration",
  __uuid__: "Uuid",
};

function paramsOf(ctx: NameContext, productType: unknown): ColumnSummary[] {
  return asArray(field(productType, "elements")).map((element, i) => ({
    name: optionalString(field(element, "name")) ?? `arg${i}`,
    type: renderType(field(element, "algebraic_type"), ctx.typeNames),
  }));
}

function columnsOfRef(ctx: NameContext, ref: unknown): ColumnSummary[] {
  const rowType = ctx.typespace[Number(ref)];
  const variant = variantOf(rowType);
  if (!variant || variant[0] !== "Product") return [];
  return paramsOf(ctx, variant[1]);
}

function indexColumns(algorithm: unknown): { algorithm: string; columns: number[] } {
  const variant = variantOf(algorithm);
  if (!variant) return { algorithm: "?", columns: [] };
  const [tag, payload] = variant;
  const columns = Array.isArray(payload)
    ? payload.map(Number)
    : isObject(payload) && Array.isArray(payload.columns)
    ? payload.columns.map(Number)
    : [Number(payload)];
  return { algorithm: tag.toLowerCase(), columns };
}

function tableOf(ctx: NameContext, raw: unknown, version: 9 | 10): TableSummary {
  const sourceName = String(field(raw, version === 10 ? "source_name" : "name") ?? "?");
  const name = version === 10 ? canonical(ctx, sourceName) : sourceName;
  const columns = columnsOfRef(ctx, field(raw, "product_type_ref"));
  const columnName = (i: number) => columns[i]?.name ?? `#${i}`;
  const access = variantOf(field(raw, "table_access"))?.[0];
  const tableType = variantOf(field(raw, "table_type"))?.[0];
  const indexes = asArray(field(raw, "indexes")).map((index) => {
    const { algorithm, columns: ids } = indexColumns(field(index, "algorithm"));
    const indexName = optionalString(field(index, version === 10 ? "source_name" : "name")) ??
      optionalString(field(index, "accessor_name")) ?? "";
    return { name: indexName, algorithm, columns: ids.map(columnName) };
  });
  const uniqueConstraints = asArray(field(raw, "constraints")).map((constraint) => {
    const data = variantOf(field(constraint, "data"));
    const ids = asArray(field(data?.[1], "columns")).map(Number);
    const constraintName =
      optionalString(field(constraint, version === 10 ? "source_name" : "name")) ?? "";
    return { name: constraintName, columns: ids.map(columnName) };
  });
  const autoIncrement = asArray(field(raw, "sequences")).map((s) =>
    columnName(Number(field(s, "column")))
  );
  return {
    name,
    isPublic: access === "Public",
    isSystem: tableType === "System",
    isEvent: field(raw, "is_event") === true,
    columns,
    primaryKey: asArray(field(raw, "primary_key")).map((i) => columnName(Number(i))),
    indexes,
    uniqueConstraints,
    autoIncrement,
    raw,
  };
}

/** Normalises the /schema response; throws TypeError when it is neither V10 nor V9. */
export function summariseModule(json: unknown): ModuleSummary {
  if (isObject(json) && Array.isArray(json.sections)) return summariseV10(json.sections);
  if (isObject(json) && (Array.isArray(json.tables) || Array.isArray(json.reducers))) {
    return summariseV9(json);
  }
  throw new TypeError("The schema is neither a RawModuleDefV10 nor a RawModuleDefV9");
}

function summariseV10(sections: unknown[]): ModuleSummary {
  const bySection = new Map<string, unknown>();
  for (const section of sections) {
    const variant = variantOf(section);
    if (variant) bySection.set(variant[0], variant[1]);
  }
  const policy = variantOf(bySection.get("CaseConversionPolicy"))?.[0] ?? "SnakeCase";
  const ctx: NameContext = {
    snakeCase: policy === "SnakeCase",
    explicit: new Map(),
    typeNames: new Map(),
    typespace: asArray(field(bySection.get("Typespace"), "types")),
  };
  for (const entry of asArray(field(bySection.get("ExplicitNames"), "entries"))) {
    const variant = variantOf(entry);
    const source = field(variant?.[1], "source_name");
    const canonicalName = field(variant?.[1], "canonical_name");
    if (typeof source === "string" && typeof canonicalName === "string") {
      ctx.explicit.set(source, canonicalName);
    }
  }
  for (const typeDef of asArray(bySection.get("Types"))) {
    const scoped = field(typeDef, "source_name");
    const name = typeof scoped === "string" ? scoped : field(scoped, "source_name");
    const scope = asArray(field(scoped, "scope")).map(String);
    if (typeof name === "string") {
      ctx.typeNames.set(Number(field(typeDef, "ty")), [...scope, name].join("."));
    }
  }
  const lifecycles = new Map<string, string>();
  for (const entry of asArray(bySection.get("LifeCycleReducers"))) {
    const spec = variantOf(field(entry, "lifecycle_spec"))?.[0];
    const fn = field(entry, "function_name");
    if (typeof spec === "string" && typeof fn === "string") lifecycles.set(fn, spec);
  }
  const schedules = new Map<string, string>();
  for (const entry of asArray(bySection.get("Schedules"))) {
    const table = field(entry, "table_name");
    const fn = field(entry, "function_name");
    if (typeof table === "string" && typeof fn === "string") schedules.set(table, fn);
  }
  const tables = asArray(bySection.get("Tables")).map((raw) => {
    const table = tableOf(ctx, raw, 10);
    const sourceName = String(field(raw, "source_name"));
    const scheduled = schedules.get(sourceName) ?? schedules.get(table.name);
    if (scheduled) table.scheduledReducer = canonical(ctx, scheduled);
    return table;
  });
  const reducers = asArray(bySection.get("Reducers")).map((raw) => {
    const sourceName = String(field(raw, "source_name") ?? "?");
    const visibility = variantOf(field(raw, "visibility"))?.[0] ?? "ClientCallable";
    const lifecycle = lifecycles.get(sourceName) ?? lifecycles.get(canonical(ctx, sourceName));
    return {
      name: canonical(ctx, sourceName),
      params: paramsOf(ctx, field(raw, "params")),
      callable: visibility !== "Private" && lifecycle === undefined,
      lifecycle,
      raw,
    };
  });
  const procedures = asArray(bySection.get("Procedures")).map((raw) => ({
    name: canonical(ctx, String(field(raw, "source_name") ?? "?")),
    params: paramsOf(ctx, field(raw, "params")),
    callable: variantOf(field(raw, "visibility"))?.[0] !== "Private",
    returnType: renderType(field(raw, "return_type"), ctx.typeNames),
    raw,
  }));
  const views = asArray(bySection.get("Views")).map((raw) => ({
    name: canonical(ctx, String(field(raw, "source_name") ?? "?")),
    isPublic: field(raw, "is_public") === true,
    isAnonymous: field(raw, "is_anonymous") === true,
    params: paramsOf(ctx, field(raw, "params")),
    returnType: renderType(field(raw, "return_type"), ctx.typeNames),
    raw,
  }));
  return { version: 10, tables, reducers, procedures, views };
}

function summariseV9(json: Json): ModuleSummary {
  const ctx: NameContext = {
    snakeCase: false,
    explicit: new Map(),
    typeNames: new Map(),
    typespace: asArray(field(json.typespace, "types")),
  };
  for (const typeDef of asArray(json.types)) {
    const scoped = field(typeDef, "name");
    const name = field(scoped, "name");
    if (typeof name === "string") ctx.typeNames.set(Number(field(typeDef, "ty")), name);
  }
  const tables = asArray(json.tables).map((raw) => tableOf(ctx, raw, 9));
  const reducers = asArray(json.reducers).map((raw) => {
    const lifecycle = variantOf(optionOf(field(raw, "lifecycle")))?.[0];
    return {
      name: String(field(raw, "name") ?? "?"),
      params: paramsOf(ctx, field(raw, "params")),
      callable: lifecycle === undefined,
      lifecycle,
      raw,
    };
  });
  return { version: 9, tables, reducers, procedures: [], views: [] };
}

export function signatureOf(fn: { name: string; params: ColumnSummary[] }): string {
  return `${fn.name}(${fn.params.map((p) => `${p.name}: ${p.type}`).join(", ")})`;
}

/** Human-readable `describe` output. */
export function describeModuleText(database: string, module: ModuleSummary): string {
  const lines: string[] = [`Database ${database} (module def v${module.version})`, ""];
  const userTables = module.tables.filter((t) => !t.isSystem);
  lines.push(`Tables (${userTables.length}):`);
  if (userTables.length === 0) lines.push("  (none)");
  for (const table of userTables) lines.push(...describeTableLines(table), "");
  if (userTables.length > 0) lines.pop();
  lines.push("", `Reducers (${module.reducers.length}):`);
  if (module.reducers.length === 0) lines.push("  (none)");
  for (const reducer of module.reducers) lines.push(`  ${describeReducerLine(reducer)}`);
  if (module.procedures.length > 0) {
    lines.push("", `Procedures (${module.procedures.length}):`);
    for (const procedure of module.procedures) {
      lines.push(`  ${signatureOf(procedure)} -> ${procedure.returnType}`);
    }
  }
  if (module.views.length > 0) {
    lines.push("", `Views (${module.views.length}):`);
    for (const view of module.views) {
      const flags = [
        view.isPublic ? "public" : "private",
        ...(view.isAnonymous ? ["anonymous"] : []),
      ];
      lines.push(`  ${signatureOf(view)} -> ${view.returnType} (${flags.join(", ")})`);
    }
  }
  return lines.join("\n") + "\n";
}

export function describeReducerLine(reducer: FunctionSummary): string {
  const notes = [];
  if (reducer.lifecycle) notes.push(`lifecycle: ${reducer.lifecycle}`);
  else if (!reducer.callable) notes.push("private");
  return `${signatureOf(reducer)}${notes.length > 0 ? `  [${notes.join(", ")}]` : ""}`;
}

export function describeTableLines(table: TableSummary): string[] {
  const flags = [table.isPublic ? "public" : "private"];
  if (table.isEvent) flags.push("event");
  if (table.scheduledReducer) flags.push(`scheduled: ${table.scheduledReducer}`);
  const lines = [`  ${table.name} (${flags.join(", ")})`];
  const width = Math.max(0, ...table.columns.map((c) => c.name.length));
  for (const column of table.columns) {
    const notes = [];
    if (table.primaryKey.includes(column.name)) notes.push("primary key");
    if (table.autoIncrement.includes(column.name)) notes.push("auto-inc");
    if (
      table.uniqueConstraints.some((u) => u.columns.length === 1 && u.columns[0] === column.name)
    ) {
      if (!table.primaryKey.includes(column.name)) notes.push("unique");
    }
    lines.push(
      `    ${column.name.padEnd(width)}  ${column.type}${
        notes.length > 0 ? `  [${notes.join(", ")}]` : ""
      }`,
    );
  }
  for (const index of table.indexes) {
    lines.push(`    index ${index.name} on [${index.columns.join(", ")}] (${index.algorithm})`);
  }
  return lines;
}

/** Case-insensitive closeness for "did you mean" hints. */
export function similarName(wanted: string, candidates: string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[_\-]/g, "");
  const exact = candidates.find((c) => squash(c) === squash(wanted));
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(squash(wanted), squash(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const limit = Math.max(1, Math.floor(wanted.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}
