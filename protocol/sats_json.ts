/**
 * SATS-JSON: the JSON forms SpacetimeDB's HTTP API uses.
 *
 * - typed output (`typedValueToJson`, `algebraicTypeToJson`, `rawModuleDefToJson`):
 *   named products are objects, sums `{"Variant": payload}`, unit `[]`;
 * - untyped output (`untypedValueToJson`, SQL rows and procedure results): products
 *   are arrays, sums `[tag, payload]`;
 * - input (`jsonToValue`) for `/call` arguments, lenient like the original.
 *
 * Big integers stay exact: `JsonValue` allows `bigint`, and `stringifyJson` writes
 * them as bare digits; `parseJson` keeps integers beyond 2^53 as bigint.
 */
import { fromHex, toHex } from "../lib/bytes.ts";
import type { AlgebraicType, ProductType, SumValue, Typespace, Value } from "./algebraic_type.ts";
import { resolveType } from "./bsatn.ts";
import type {
  MethodOrAny,
  RawIndexAlgorithm,
  RawModuleDefV10,
  RawTableDefV10,
  SectionName,
} from "./module_def.ts";
import type { ModuleDef } from "./names.ts";
import { optionInner, specialProductKind } from "./names.ts";

export type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A number to be written exactly as given (e.g. an f32 printed with f32 precision). */
export class JsonRawNumber {
  constructor(readonly text: string) {}
}
export type JsonOutput =
  | null
  | boolean
  | number
  | bigint
  | string
  | JsonRawNumber
  | JsonOutput[]
  | { [key: string]: JsonOutput };

const UNIT: JsonOutput[] = [];

// ---------------------------------------------------------------------------------------
// Writing

/** Format a float the way serde_json (ryu) does: `1.0`, `1e21`, NaN/inf as null. */
export function formatFloat(value: number, isF32 = false): string {
  if (!Number.isFinite(value)) return "null";
  let text: string;
  if (isF32) {
    text = String(value);
    for (let digits = 1; digits <= 9; digits++) {
      const candidate = Number(value.toPrecision(digits));
      if (Math.fround(candidate) === value) {
        text = String(candidate);
        break;
      }
    }
  } else {
    text = String(value);
  }
  if (Object.is(value, -0)) return "-0.0";
  text = text.replace("e+", "e");
  if (!/[.e]/.test(text)) text += ".0";
  return text;
}

/** Serialize to JSON text; bigints are written as exact integers. */
export function stringifyJson(value: JsonOutput): string {
  const parts: string[] = [];
  write(value, parts);
  return parts.join("");
}

function write(value: JsonOutput, out: string[]): void {
  if (value === null) out.push("null");
  else if (typeof value === "boolean") out.push(value ? "true" : "false");
  else if (typeof value === "number") out.push(Number.isFinite(value) ? String(value) : "null");
  else if (typeof value === "bigint") out.push(value.toString());
  else if (typeof value === "string") out.push(JSON.stringify(value));
  else if (value instanceof JsonRawNumber) out.push(value.text);
  else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, i) => {
      if (i > 0) out.push(",");
      write(item, out);
    });
    out.push("]");
  } else {
    out.push("{");
    let first = true;
    for (const [key, item] of Object.entries(value)) {
      if (!first) out.push(",");
      first = false;
      out.push(JSON.stringify(key), ":");
      write(item, out);
    }
    out.push("}");
  }
}

/** Arrays and objects nested deeper than this are refused by `parseJson`. */
export const JSON_DEPTH_MAX = 1024;

/**
 * Parse JSON text; integers outside the safe range become bigint (exact). One pass over the text
 * finds those integers (outside strings) and quotes them with a random marker, then plain
 * `JSON.parse` runs, and only if any were marked a walk turns them into bigints. A reviver with
 * the source text (the earlier way) cost ~1 µs per value on the main thread: an anonymous 8 MB
 * `/call` body of 4M numbers held it ~5 s. Nesting past JSON_DEPTH_MAX is refused in that pass.
 */
export function parseJson(text: string): JsonValue {
  const marked = markUnsafeIntegers(text);
  if (marked === undefined) return JSON.parse(text) as JsonValue;
  return reviveMarked(JSON.parse(marked.text), marked.marker);
}

const enum Char {
  Quote = 0x22,
  Backslash = 0x5c,
  Minus = 0x2d,
  Zero = 0x30,
  Nine = 0x39,
  OpenBracket = 0x5b,
  OpenBrace = 0x7b,
  CloseBracket = 0x5d,
  CloseBrace = 0x7d,
}

/** The text with unsafe integer literals quoted behind `marker`; undefined if there are none. */
function markUnsafeIntegers(text: string): { text: string; marker: string } | undefined {
  let pieces: string[] | undefined;
  let marker = "";
  let copied = 0;
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === Char.Quote) {
      // Skip the string (its escapes included); JSON.parse reports one left open.
      for (i++; i < length; i++) {
        const d = text.charCodeAt(i);
        if (d === Char.Backslash) i++;
        else if (d === Char.Quote) break;
      }
    } else if (c === Char.OpenBracket || c === Char.OpenBrace) {
      if (++depth > JSON_DEPTH_MAX) {
        throw new SyntaxError(`JSON nested deeper than ${JSON_DEPTH_MAX} levels`);
      }
    } else if (c === Char.CloseBracket || c === Char.CloseBrace) {
      depth--;
    } else if (c === Char.Minus || (c >= Char.Zero && c <= Char.Nine)) {
      let end = i + 1;
      let integer = true;
      for (; end < length; end++) {
        const d = text.charCodeAt(end);
        if (d >= Char.Zero && d <= Char.Nine) continue;
        // `.`, `e`, `E`, `+`, `-` inside a number: not an integer literal.
        if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === Char.Minus) {
          integer = false;
          continue;
        }
        break;
      }
      // Up to 15 digits is always a safe integer.
      if (integer && end - i > 15) {
        const literal = text.slice(i, end);
        if (/^-?\d+$/.test(literal) && !Number.isSafeInteger(Number(literal))) {
          if (pieces === undefined) {
            pieces = [];
            marker = `\u0000bigint-${crypto.randomUUID()}:`;
          }
          pieces.push(text.slice(copied, i), JSON.stringify(marker + literal));
          copied = end;
        }
      }
      i = end - 1;
    }
  }
  if (pieces === undefined) return undefined;
  pieces.push(text.slice(copied));
  return { text: pieces.join(""), marker };
}

/** Turns the marked strings of a parsed value into bigints (no recursion: nesting is deep). */
function reviveMarked(root: unknown, marker: string): JsonValue {
  const revive = (value: unknown): unknown =>
    typeof value === "string" && value.startsWith(marker)
      ? BigInt(value.slice(marker.length))
      : value;
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (value === null || typeof value !== "object") continue;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        value[i] = revive(value[i]);
        pending.push(value[i]);
      }
    } else {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        record[key] = revive(record[key]);
        pending.push(record[key]);
      }
    }
  }
  return revive(root) as JsonValue;
}

/** `0x` + minimal lowercase hex, `-0x…` for negatives (ethnum's serde form). */
function wideHex(value: bigint): string {
  return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
}

// ---------------------------------------------------------------------------------------
// Types

function optionJson<T>(value: T | undefined, map: (v: T) => JsonOutput): JsonOutput {
  return value === undefined ? { none: UNIT } : { some: map(value) };
}

/** `AlgebraicType` in SATS-JSON: `{"U32": []}`, `{"Array": T}`, `{"Product": {"elements": …}}`. */
export function algebraicTypeToJson(type: AlgebraicType): JsonOutput {
  switch (type.tag) {
    case "Ref":
      return { Ref: type.value };
    case "Array":
      return { Array: algebraicTypeToJson(type.value) };
    case "Product":
      return { Product: productTypeToJson(type.value) };
    case "Sum":
      return {
        Sum: {
          variants: type.value.variants.map((v) => ({
            name: optionJson(v.name, (n) => n),
            algebraic_type: algebraicTypeToJson(v.algebraicType),
          })),
        },
      };
    default:
      return { [type.tag]: UNIT };
  }
}

export function productTypeToJson(product: ProductType): JsonOutput {
  return {
    elements: product.elements.map((e) => ({
      name: optionJson(e.name, (n) => n),
      algebraic_type: algebraicTypeToJson(e.algebraicType),
    })),
  };
}

// ---------------------------------------------------------------------------------------
// Values

function scalarToJson(type: AlgebraicType, value: Value): JsonOutput | undefined {
  switch (type.tag) {
    case "U256":
    case "I256":
      return wideHex(value as bigint);
    case "F32":
      return new JsonRawNumber(formatFloat(value as number, true));
    case "F64":
      return new JsonRawNumber(formatFloat(value as number));
    case "Bool":
    case "String":
    case "U8":
    case "I8":
    case "U16":
    case "I16":
    case "U32":
    case "I32":
    case "U64":
    case "I64":
    case "U128":
    case "I128":
      return value as JsonOutput;
    default:
      return undefined;
  }
}

/**
 * Typed SATS-JSON (SpacetimeDB `ValueWithType`): products as objects keyed by field
 * name (so a unit payload is `{}`), sums as `{"name": payload}`. A product with an
 * unnamed field (which SpacetimeDB refuses to serialize) falls back to an array.
 */
export function typedValueToJson(
  type: AlgebraicType,
  value: Value,
  typespace: Typespace = [],
): JsonOutput {
  const resolved = resolveType(type, typespace);
  const scalar = scalarToJson(resolved, value);
  if (scalar !== undefined) return scalar;
  switch (resolved.tag) {
    case "Array":
      if (value instanceof Uint8Array) return toHex(value);
      return (value as Value[]).map((v) => typedValueToJson(resolved.value, v, typespace));
    case "Product": {
      const fields = value as Value[];
      const elements = resolved.value.elements;
      if (elements.every((e) => e.name !== undefined)) {
        const out: { [key: string]: JsonOutput } = {};
        elements.forEach((e, i) =>
          out[e.name!] = typedValueToJson(e.algebraicType, fields[i], typespace)
        );
        return out;
      }
      return elements.map((e, i) => typedValueToJson(e.algebraicType, fields[i], typespace));
    }
    case "Sum": {
      const sum = value as SumValue;
      const variant = resolved.value.variants[sum.tag];
      const payload = typedValueToJson(variant.algebraicType, sum.value, typespace);
      return variant.name === undefined ? [sum.tag, payload] : { [variant.name]: payload };
    }
    default:
      throw new TypeError(`Cannot convert a value of type ${resolved.tag} to JSON`);
  }
}

/** Untyped SATS-JSON (SQL rows): products as arrays, sums as `[tag, payload]`, bytes as hex. */
export function untypedValueToJson(
  type: AlgebraicType,
  value: Value,
  typespace: Typespace = [],
): JsonOutput {
  const resolved = resolveType(type, typespace);
  const scalar = scalarToJson(resolved, value);
  if (scalar !== undefined) return scalar;
  switch (resolved.tag) {
    case "Array":
      if (value instanceof Uint8Array) return toHex(value);
      return (value as Value[]).map((v) => untypedValueToJson(resolved.value, v, typespace));
    case "Product":
      return resolved.value.elements.map((e, i) =>
        untypedValueToJson(e.algebraicType, (value as Value[])[i], typespace)
      );
    case "Sum": {
      const sum = value as SumValue;
      const variant = resolved.value.variants[sum.tag];
      return [sum.tag, untypedValueToJson(variant.algebraicType, sum.value, typespace)];
    }
    default:
      throw new TypeError(`Cannot convert a value of type ${resolved.tag} to JSON`);
  }
}

// ---------------------------------------------------------------------------------------
// Input

/** A JSON argument does not match the expected type; `path` names the field. */
export class JsonValueError extends TypeError {
  override name = "JsonValueError";
  constructor(readonly path: string, readonly expected: string, readonly got: unknown) {
    super(`Invalid value at ${path || "(root)"}: expected ${expected}, got ${describeJson(got)}`);
  }
}

function describeJson(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "bigint") return value.toString();
  // Only the start is shown: never the whole value (a 4M-element array took ~1 s to stringify).
  const out: string[] = [];
  const text = previewJson(value, out, 61) ? out.join("") : String(value);
  return text.length > 60 ? text.slice(0, 60) + "…" : text;
}

/** Writes JSON text of `value` to `out` until about `budget` characters; false if not JSON. */
function previewJson(value: unknown, out: string[], budget: number): boolean {
  if (typeof value === "bigint") {
    out.push(value.toString());
    return true;
  }
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    if (text === undefined) return false;
    out.push(text.length > budget ? text.slice(0, budget) : text);
    return true;
  }
  let used = 0;
  const write = (text: string) => {
    out.push(text);
    used += text.length;
  };
  const entries: [string | undefined, unknown][] = Array.isArray(value)
    ? value.slice(0, budget).map((item) => [undefined, item])
    : Object.keys(value).slice(0, budget).map((
      key,
    ) => [key, (value as Record<string, unknown>)[key]]);
  write(Array.isArray(value) ? "[" : "{");
  for (let i = 0; i < entries.length && used < budget; i++) {
    if (i > 0) write(",");
    const [key, item] = entries[i];
    if (key !== undefined) write(JSON.stringify(key) + ":");
    const before = out.length;
    if (!previewJson(item, out, Math.max(1, budget - used))) write("null");
    for (let j = before; j < out.length; j++) used += out[j].length;
  }
  if (used < budget) write(Array.isArray(value) ? "]" : "}");
  return true;
}

const INT_RANGES: Record<string, [bigint, bigint]> = {
  U8: [0n, 0xffn],
  I8: [-0x80n, 0x7fn],
  U16: [0n, 0xffffn],
  I16: [-0x8000n, 0x7fffn],
  U32: [0n, 0xffff_ffffn],
  I32: [-0x8000_0000n, 0x7fff_ffffn],
  U64: [0n, (1n << 64n) - 1n],
  I64: [-(1n << 63n), (1n << 63n) - 1n],
  U128: [0n, (1n << 128n) - 1n],
  I128: [-(1n << 127n), (1n << 127n) - 1n],
  U256: [0n, (1n << 256n) - 1n],
  I256: [-(1n << 255n), (1n << 255n) - 1n],
};
const SMALL_INTS = new Set(["U8", "I8", "U16", "I16", "U32", "I32"]);

function parseIntegerJson(json: unknown, tag: string, path: string): bigint {
  let big: bigint | undefined;
  if (typeof json === "bigint") big = json;
  else if (typeof json === "number" && Number.isInteger(json)) big = BigInt(json);
  else if (typeof json === "string") {
    const text = json.trim();
    if (/^[+-]?\d+$/.test(text)) big = BigInt(text);
    else if (/^-?0x[0-9a-f]+$/i.test(text)) {
      big = text.startsWith("-") ? -BigInt(text.slice(1)) : BigInt(text);
    }
  }
  const [min, max] = INT_RANGES[tag];
  if (big === undefined || big < min || big > max) throw new JsonValueError(path, tag, json);
  return big;
}

function parseHexJson(json: unknown, path: string, expected: string): bigint {
  if (typeof json === "string") {
    const text = json.startsWith("0x") || json.startsWith("0X") ? json.slice(2) : json;
    if (/^[0-9a-fA-F]+$/.test(text)) return BigInt(`0x${text}`);
  }
  if (typeof json === "bigint") return json;
  if (typeof json === "number" && Number.isSafeInteger(json) && json >= 0) return BigInt(json);
  throw new JsonValueError(path, expected, json);
}

const SPECIAL_FIELD_BITS: Record<string, number> = {
  Identity: 256,
  ConnectionId: 128,
  Uuid: 128,
};

function isPlainObject(json: unknown): json is Record<string, unknown> {
  return typeof json === "object" && json !== null && !Array.isArray(json);
}

/**
 * Convert JSON (already parsed with `parseJson`) to a Value of `type`. Errors name the
 * field path (`args.player.name`) and the expected type.
 */
export function jsonToValue(
  type: AlgebraicType,
  json: unknown,
  typespace: Typespace = [],
  path = "",
): Value {
  const t = resolveType(type, typespace);
  switch (t.tag) {
    case "Bool":
      if (typeof json !== "boolean") throw new JsonValueError(path, "Bool", json);
      return json;
    case "String":
      if (typeof json !== "string") throw new JsonValueError(path, "String", json);
      return json;
    case "F32":
    case "F64":
      if (typeof json === "number") return json;
      if (typeof json === "bigint") return Number(json);
      if (typeof json === "string" && json.trim() !== "" && !Number.isNaN(Number(json))) {
        return Number(json);
      }
      throw new JsonValueError(path, t.tag, json);
    case "Array": {
      if (resolveType(t.value, typespace).tag === "U8" && typeof json === "string") {
        const text = json.startsWith("0x") ? json.slice(2) : json;
        if (!/^([0-9a-fA-F]{2})*$/.test(text)) throw new JsonValueError(path, "hex bytes", json);
        return fromHex(text);
      }
      if (!Array.isArray(json)) throw new JsonValueError(path, "an array", json);
      const items = json.map((item, i) => jsonToValue(t.value, item, typespace, `${path}[${i}]`));
      return resolveType(t.value, typespace).tag === "U8"
        ? Uint8Array.from(items as number[])
        : items;
    }
    case "Product":
      return productFromJson(t.value, json, typespace, path);
    case "Sum":
      return sumFromJson(t, json, typespace, path);
    default: {
      const big = parseIntegerJson(json, t.tag, path);
      return SMALL_INTS.has(t.tag) ? Number(big) : big;
    }
  }
}

function productFromJson(
  product: ProductType,
  json: unknown,
  typespace: Typespace,
  path: string,
): Value {
  const kind = specialProductKind(product);
  if (kind !== undefined) {
    const field = product.elements[0];
    let inner: unknown = json;
    if (Array.isArray(json) && json.length === 1) inner = json[0];
    else if (isPlainObject(json) && field.name! in json) inner = json[field.name!];
    if (kind in SPECIAL_FIELD_BITS) {
      const bits = SPECIAL_FIELD_BITS[kind];
      const value = parseHexJson(inner, path, kind);
      if (value >= 1n << BigInt(bits)) throw new JsonValueError(path, kind, json);
      return [value];
    }
    return [parseIntegerJson(inner, "I64", path)];
  }
  const elements = product.elements;
  if (Array.isArray(json)) {
    if (json.length !== elements.length) {
      throw new JsonValueError(path, `an array of ${elements.length} elements`, json);
    }
    return elements.map((e, i) =>
      jsonToValue(e.algebraicType, json[i], typespace, `${path}${path ? "." : ""}${e.name ?? i}`)
    );
  }
  if (isPlainObject(json)) {
    for (const key of Object.keys(json)) {
      if (!elements.some((e) => e.name === key)) {
        throw new JsonValueError(
          path,
          `an object with fields ${elements.map((e) => e.name).join(", ")}`,
          json,
        );
      }
    }
    return elements.map((e, i) => {
      const key = e.name ?? String(i);
      const childPath = `${path}${path ? "." : ""}${key}`;
      if (!(key in json)) {
        const t = resolveType(e.algebraicType, typespace);
        if (t.tag === "Sum" && optionInner(t.value) !== undefined) return { tag: 1, value: [] };
        throw new JsonValueError(childPath, "a value", undefined);
      }
      return jsonToValue(e.algebraicType, json[key], typespace, childPath);
    });
  }
  throw new JsonValueError(path, `a product (array or object) of ${elements.length} fields`, json);
}

function sumFromJson(
  t: {
    tag: "Sum";
    value: { variants: { name: string | undefined; algebraicType: AlgebraicType }[] };
  },
  json: unknown,
  typespace: Typespace,
  path: string,
): Value {
  const variants = t.value.variants;
  const inner = optionInner(t.value);
  if (inner !== undefined && json === null) return { tag: 1, value: [] };
  let tag: number | undefined;
  let payload: unknown;
  if (Array.isArray(json) && json.length === 2 && typeof json[0] === "number") {
    [tag, payload] = json as [number, unknown];
  } else if (isPlainObject(json) && Object.keys(json).length === 1) {
    const [key] = Object.keys(json);
    payload = json[key];
    tag = variants.findIndex((v) => v.name === key);
    if (tag < 0 && /^\d+$/.test(key)) tag = Number(key);
    if (tag < 0 && inner === undefined) {
      // Accept variant names in any case (`Circle` / `circle`).
      tag = variants.findIndex((v) => v.name?.toLowerCase() === key.toLowerCase());
    }
  } else if (typeof json === "string" && inner === undefined) {
    tag = variants.findIndex((v) => v.name === json);
    payload = [];
  } else if (inner !== undefined) {
    // A bare value for an option means `some`.
    return { tag: 0, value: jsonToValue(inner, json, typespace, path) };
  }
  if (tag === undefined || tag < 0 || tag >= variants.length) {
    const names = variants.map((v) => v.name ?? "?").join(" | ");
    throw new JsonValueError(path, `one of the variants ${names}`, json);
  }
  const variant = variants[tag];
  const variantType = resolveType(variant.algebraicType, typespace);
  if (variantType.tag === "Product" && variantType.value.elements.length === 0) {
    return { tag, value: [] };
  }
  return {
    tag,
    value: jsonToValue(
      variant.algebraicType,
      payload,
      typespace,
      `${path}${path ? "." : ""}${variant.name ?? tag}`,
    ),
  };
}

/** Parse a `/call` body (JSON text) into the BSATN-ready params product value. */
export function callArgumentsFromJson(
  params: ProductType,
  text: string,
  typespace: Typespace = [],
): Value[] {
  let json: JsonValue;
  try {
    json = parseJson(text);
  } catch (e) {
    throw new JsonValueError("", "valid JSON", (e as Error).message);
  }
  if (
    params.elements.length === 0 &&
    (json === null || (isPlainObject(json) && Object.keys(json).length === 0))
  ) {
    return [];
  }
  return productFromJson(params, json, typespace, "") as Value[];
}

// ---------------------------------------------------------------------------------------
// Module definitions

function unitVariant(name: string): JsonOutput {
  return { [name]: UNIT };
}

function algorithmJson(a: RawIndexAlgorithm): JsonOutput {
  return a.tag === "Direct"
    ? { Direct: { column: a.column } }
    : { [a.tag]: { columns: a.columns } };
}

function methodJson(m: MethodOrAny): JsonOutput {
  if (m.tag === "Any") return unitVariant("Any");
  const method = m.value;
  return {
    Method: method.tag === "Extension" ? { Extension: method.value } : unitVariant(method.tag),
  };
}

function tableJson(t: RawTableDefV10): JsonOutput {
  const str = (s: string) => s;
  return {
    source_name: t.sourceName,
    product_type_ref: t.productTypeRef,
    primary_key: t.primaryKey,
    indexes: t.indexes.map((i) => ({
      source_name: optionJson(i.sourceName, str),
      accessor_name: optionJson(i.accessorName, str),
      algorithm: algorithmJson(i.algorithm),
    })),
    constraints: t.constraints.map((c) => ({
      source_name: optionJson(c.sourceName, str),
      data: { Unique: { columns: c.data.columns } },
    })),
    sequences: t.sequences.map((s) => ({
      source_name: optionJson(s.sourceName, str),
      column: s.column,
      start: optionJson(s.start, (v) => v),
      min_value: optionJson(s.minValue, (v) => v),
      max_value: optionJson(s.maxValue, (v) => v),
      increment: s.increment,
    })),
    table_type: unitVariant(t.tableType),
    table_access: unitVariant(t.tableAccess),
    default_values: t.defaultValues.map((d) => ({ col_id: d.colId, value: toHex(d.value) })),
    is_event: t.isEvent,
  };
}

function sectionJson(def: RawModuleDefV10, section: SectionName): JsonOutput {
  switch (section) {
    case "Typespace":
      return { types: def.typespace.map(algebraicTypeToJson) };
    case "Types":
      return def.types.map((t) => ({
        source_name: { scope: t.sourceName.scope, source_name: t.sourceName.sourceName },
        ty: t.ty,
        custom_ordering: t.customOrdering,
      }));
    case "Tables":
      return def.tables.map(tableJson);
    case "Reducers":
      return def.reducers.map((r) => ({
        source_name: r.sourceName,
        params: productTypeToJson(r.params),
        visibility: unitVariant(r.visibility),
        ok_return_type: algebraicTypeToJson(r.okReturnType),
        err_return_type: algebraicTypeToJson(r.errReturnType),
      }));
    case "Procedures":
      return def.procedures.map((p) => ({
        source_name: p.sourceName,
        params: productTypeToJson(p.params),
        return_type: algebraicTypeToJson(p.returnType),
        visibility: unitVariant(p.visibility),
      }));
    case "Views":
      return def.views.map((v) => ({
        source_name: v.sourceName,
        index: v.index,
        is_public: v.isPublic,
        is_anonymous: v.isAnonymous,
        params: productTypeToJson(v.params),
        return_type: algebraicTypeToJson(v.returnType),
      }));
    case "Schedules":
      return def.schedules.map((s) => ({
        source_name: optionJson(s.sourceName, (n) => n),
        table_name: s.tableName,
        schedule_at_col: s.scheduleAtCol,
        function_name: s.functionName,
      }));
    case "LifeCycleReducers":
      return def.lifecycleReducers.map((l) => ({
        lifecycle_spec: unitVariant(l.lifecycleSpec),
        function_name: l.functionName,
      }));
    case "RowLevelSecurity":
      return def.rowLevelSecurity.map((r) => ({ sql: r.sql }));
    case "CaseConversionPolicy":
      return unitVariant(def.caseConversionPolicy);
    case "ExplicitNames":
      return {
        entries: def.explicitNames.map((e) => ({
          [e.kind]: { source_name: e.sourceName, canonical_name: e.canonicalName },
        })),
      };
    case "HttpHandlers":
      return def.httpHandlers.map((h) => ({ source_name: h.sourceName }));
    case "HttpRoutes":
      return def.httpRoutes.map((r) => ({
        handler_function: r.handlerFunction,
        method: methodJson(r.method),
        path: r.path,
      }));
    case "ViewPrimaryKeys":
      return def.viewPrimaryKeys.map((k) => ({
        view_source_name: k.viewSourceName,
        columns: k.columns,
      }));
    case "Submodules":
      return def.submodules.map((s) => ({
        namespace: s.namespace,
        module: rawModuleDefToJson(s.module),
      }));
  }
}

/** SATS-JSON of a `RawModuleDefV10` (field names as in the Rust structs). */
export function rawModuleDefToJson(def: RawModuleDefV10): JsonOutput {
  return { sections: def.sectionOrder.map((s) => ({ [s]: sectionJson(def, s) })) };
}

/**
 * The raw V10 definition SpacetimeDB rebuilds from a validated module for
 * `GET /schema?version=10`: canonical typespace and type names, generated
 * index/constraint/sequence/schedule names, validated visibilities, ExplicitNames
 * for every table and function, empty sections left out (ExplicitNames always kept).
 */
export function canonicalRawModuleDef(def: ModuleDef): RawModuleDefV10 {
  const own = <T extends { namespace: string }>(items: T[]) =>
    items.filter((i) => i.namespace === def.namespace);
  const tables = own(def.tables);
  const reducers = own(def.reducers);
  const procedures = own(def.procedures);
  const views = own(def.views);
  const types = own(def.types);
  const handlers = own(def.httpHandlers);
  const routes = own(def.httpRoutes);
  const rls = own(def.rowLevelSecurity);
  const local = (name: string) =>
    def.namespace === "" ? name : name.slice(def.namespace.length + 1);

  const out: RawModuleDefV10 = {
    typespace: def.typespace,
    types: types.map((t) => ({
      sourceName: { scope: t.scope, sourceName: t.name },
      ty: t.ty,
      customOrdering: t.customOrdering,
    })),
    tables: tables.map((t) => ({
      sourceName: local(t.sourceName),
      productTypeRef: t.productTypeRef,
      primaryKey: t.primaryKey === undefined ? [] : [t.primaryKey],
      indexes: t.indexes.map((i) => ({
        sourceName: local(i.sourceName),
        accessorName: i.accessorName,
        algorithm: i.algorithm === "direct"
          ? { tag: "Direct", column: i.columns[0] }
          : { tag: i.algorithm === "btree" ? "BTree" : "Hash", columns: i.columns },
      })),
      constraints: t.uniqueConstraints.map((c) => ({
        sourceName: c.name,
        data: { tag: "Unique", columns: c.columns },
      })),
      sequences: t.sequences.map((s) => ({
        sourceName: s.name,
        column: s.column,
        start: s.start,
        minValue: s.minValue,
        maxValue: s.maxValue,
        increment: s.increment,
      })),
      tableType: t.tableType,
      tableAccess: t.access,
      defaultValues: t.columns.filter((c) => c.defaultValue !== undefined)
        .map((c) => ({ colId: c.colId, value: c.defaultValue! })),
      isEvent: t.isEvent,
    })),
    reducers: reducers.map((r) => ({
      sourceName: local(r.sourceName),
      params: r.sourceParams,
      visibility: r.visibility,
      okReturnType: { tag: "Product", value: { elements: [] } },
      errReturnType: { tag: "String" },
    })),
    procedures: procedures.map((p) => ({
      sourceName: local(p.sourceName),
      params: p.sourceParams,
      returnType: p.returnType,
      visibility: p.visibility,
    })),
    views: views.map((v) => ({
      sourceName: local(v.sourceName),
      index: v.rawIndex,
      isPublic: v.isPublic,
      isAnonymous: v.isAnonymous,
      params: v.params,
      returnType: v.returnType,
    })),
    schedules: tables.filter((t) => t.schedule).map((t) => ({
      sourceName: t.schedule!.name,
      tableName: t.localName,
      scheduleAtCol: t.schedule!.atColumn,
      functionName: local(t.schedule!.functionName),
    })),
    lifecycleReducers: (["Init", "OnConnect", "OnDisconnect"] as const)
      .filter((kind) => def.lifecycle[kind] !== undefined)
      .map((kind) => ({
        lifecycleSpec: kind,
        functionName: def.reducers.find((r) => r.id === def.lifecycle[kind])!.localName,
      })),
    rowLevelSecurity: rls.map((r) => ({ sql: r.sql })),
    caseConversionPolicy: def.caseConversionPolicy,
    explicitNames: [
      ...tables.map((t) => ({
        kind: "Table" as const,
        sourceName: local(t.sourceName),
        canonicalName: t.localName,
      })),
      ...reducers.map((r) => ({
        kind: "Function" as const,
        sourceName: local(r.sourceName),
        canonicalName: r.localName,
      })),
      ...procedures.map((p) => ({
        kind: "Function" as const,
        sourceName: local(p.sourceName),
        canonicalName: p.localName,
      })),
      ...views.map((v) => ({
        kind: "Function" as const,
        sourceName: local(v.sourceName),
        canonicalName: v.localName,
      })),
    ],
    httpHandlers: handlers.map((h) => ({ sourceName: local(h.sourceName) })),
    httpRoutes: routes.map((r) => ({
      handlerFunction: local(r.handlerName),
      method: r.method,
      path: r.path,
    })),
    viewPrimaryKeys: views.filter((v) => v.returnKind !== "query" && v.primaryKey !== undefined)
      .map((v) => ({
        viewSourceName: local(v.sourceName),
        columns: [v.columns[v.primaryKey!].name],
      })),
    submodules: def.submodules.map((s) => ({
      namespace: s.namespace,
      module: canonicalRawModuleDef(s.module),
    })),
    sectionOrder: [],
  };
  const present: [SectionName, boolean][] = [
    ["Typespace", true],
    ["Types", out.types.length > 0],
    ["Tables", out.tables.length > 0],
    ["Reducers", out.reducers.length > 0],
    ["Procedures", out.procedures.length > 0],
    ["HttpHandlers", out.httpHandlers.length > 0],
    ["HttpRoutes", out.httpRoutes.length > 0],
    ["Views", out.views.length > 0],
    ["ViewPrimaryKeys", out.viewPrimaryKeys.length > 0],
    ["Schedules", out.schedules.length > 0],
    ["LifeCycleReducers", out.lifecycleReducers.length > 0],
    ["RowLevelSecurity", out.rowLevelSecurity.length > 0],
    ["ExplicitNames", true],
    ["Submodules", out.submodules.length > 0],
  ];
  out.sectionOrder = present.filter(([, p]) => p).map(([s]) => s);
  return out;
}

/** The JSON body of `GET /v1/database/:x/schema?version=10`. */
export function moduleDefToSchemaJson(def: ModuleDef): string {
  return stringifyJson(rawModuleDefToJson(canonicalRawModuleDef(def)));
}
