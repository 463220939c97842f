/**
 * SpacetimeDB column types as PostgreSQL types, and values in PostgreSQL's text format.
 * The mapping follows SpacetimeDB's pg server (query-subscriptions.md §7): String -> varchar,
 * Bool -> bool, U8/I8/I16 -> int2, U16/I32 -> int4, U32/I64 -> int8, wider integers ->
 * numeric, F32/F64 -> float4/float8, bytes/Identity/ConnectionId -> bytea (`\x…`),
 * Uuid -> uuid, simple enums -> anyenum (the variant name), other sums and products -> json.
 * Where SpacetimeDB's text would not parse as the type it declares, the text follows
 * PostgreSQL instead, so drivers such as `pg` read the values: Timestamp is timestamptz in
 * PostgreSQL's ISO style (`2023-11-14 22:13:20.123456+00`; SpacetimeDB sends RFC 3339 as
 * timestamp), TimeDuration an interval in the `postgres` style (`-00:00:01.5`; SpacetimeDB
 * sends ISO 8601), and arrays of primitives PostgreSQL arrays (`{1,2}`); other arrays json.
 */
import { toHex } from "../../lib/bytes.ts";
import {
  type AlgebraicType,
  optionInner,
  type ProductType,
  resolveType,
  specialProductKind,
  type SumType,
  type SumValue,
  type Typespace,
  type Value,
} from "../../protocol/mod.ts";

/** pg_type OIDs used here. */
export const PG_TYPE = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  json: 114,
  float4: 700,
  float8: 701,
  boolArray: 1000,
  int2Array: 1005,
  int4Array: 1007,
  varcharArray: 1015,
  int8Array: 1016,
  float4Array: 1021,
  float8Array: 1022,
  varchar: 1043,
  timestamptz: 1184,
  interval: 1186,
  numericArray: 1231,
  numeric: 1700,
  anyarray: 2277,
  uuid: 2950,
  anyenum: 3500,
} as const;

const TYPE_SIZE: Record<number, number> = {
  [PG_TYPE.bool]: 1,
  [PG_TYPE.int2]: 2,
  [PG_TYPE.int4]: 4,
  [PG_TYPE.int8]: 8,
  [PG_TYPE.float4]: 4,
  [PG_TYPE.float8]: 8,
  [PG_TYPE.timestamptz]: 8,
  [PG_TYPE.interval]: 16,
  [PG_TYPE.uuid]: 16,
};

export interface ColumnCodec {
  typeOid: number;
  /** pg_type.typlen (-1: variable length). */
  typeSize: number;
  /** The value in PostgreSQL text format. */
  text(value: Value): string;
}

/** How one column of `type` is described and written. */
export function columnCodec(type: AlgebraicType, typespace: Typespace): ColumnCodec {
  const [typeOid, text] = codecOf(resolveType(type, typespace), typespace);
  return { typeOid, typeSize: TYPE_SIZE[typeOid] ?? -1, text };
}

type Codec = [number, (value: Value) => string];

function codecOf(type: AlgebraicType, typespace: Typespace): Codec {
  switch (type.tag) {
    case "String":
      return [PG_TYPE.varchar, (value) => value as string];
    case "Bool":
      return [PG_TYPE.bool, (value) => (value ? "t" : "f")];
    case "U8":
    case "I8":
    case "I16":
      return [PG_TYPE.int2, String];
    case "U16":
    case "I32":
      return [PG_TYPE.int4, String];
    case "U32":
    case "I64":
      return [PG_TYPE.int8, String];
    case "U64":
    case "I128":
    case "U128":
    case "I256":
    case "U256":
      return [PG_TYPE.numeric, String];
    case "F32":
      return [PG_TYPE.float4, (value) => floatText(value as number, true)];
    case "F64":
      return [PG_TYPE.float8, (value) => floatText(value as number, false)];
    case "Array":
      return arrayCodec(resolveType(type.value, typespace), typespace);
    case "Product": {
      const special = specialProductKind(type.value);
      if (special !== undefined) return specialCodec(special);
      return [PG_TYPE.json, (value) => jsonText(type, value, typespace)];
    }
    case "Sum":
      if (isSimpleEnum(type.value)) {
        const names = type.value.variants.map((variant, i) => variant.name ?? String(i));
        return [PG_TYPE.anyenum, (value) => names[(value as SumValue).tag]];
      }
      return [PG_TYPE.json, (value) => jsonText(type, value, typespace)];
    case "Ref":
      return codecOf(resolveType(type, typespace), typespace);
  }
}

function specialCodec(kind: NonNullable<ReturnType<typeof specialProductKind>>): Codec {
  const inner = (value: Value) => (value as Value[])[0] as bigint;
  switch (kind) {
    case "Identity":
      return [PG_TYPE.bytea, (value) => "\\x" + inner(value).toString(16).padStart(64, "0")];
    case "ConnectionId":
      return [PG_TYPE.bytea, (value) => "\\x" + inner(value).toString(16).padStart(32, "0")];
    case "Timestamp":
      return [PG_TYPE.timestamptz, (value) => timestampText(inner(value))];
    case "TimeDuration":
      return [PG_TYPE.interval, (value) => durationText(inner(value))];
    case "Uuid":
      return [PG_TYPE.uuid, (value) => uuidText(inner(value))];
  }
}

const ARRAY_TYPE: Partial<Record<AlgebraicType["tag"], number>> = {
  String: PG_TYPE.varcharArray,
  Bool: PG_TYPE.boolArray,
  I8: PG_TYPE.int2Array,
  I16: PG_TYPE.int2Array,
  U16: PG_TYPE.int4Array,
  I32: PG_TYPE.int4Array,
  U32: PG_TYPE.int8Array,
  I64: PG_TYPE.int8Array,
  U64: PG_TYPE.numericArray,
  I128: PG_TYPE.numericArray,
  U128: PG_TYPE.numericArray,
  I256: PG_TYPE.numericArray,
  U256: PG_TYPE.numericArray,
  F32: PG_TYPE.float4Array,
  F64: PG_TYPE.float8Array,
};

function arrayCodec(element: AlgebraicType, typespace: Typespace): Codec {
  if (element.tag === "U8") return [PG_TYPE.bytea, (value) => byteaText(value as Uint8Array)];
  const oid = ARRAY_TYPE[element.tag];
  if (oid === undefined) {
    const arrayType: AlgebraicType = { tag: "Array", value: element };
    return [PG_TYPE.anyarray, (value) => jsonText(arrayType, value, typespace)];
  }
  const [, elementText] = codecOf(element, typespace);
  return [
    oid,
    (value) =>
      "{" + (value as Value[]).map((item) => arrayElement(elementText(item))).join(",") + "}",
  ];
}

/** An element of an array literal, quoted when PostgreSQL's array parser needs it. */
function arrayElement(text: string): string {
  if (text !== "" && !/[{}",\\\s]/.test(text) && text.toUpperCase() !== "NULL") return text;
  return '"' + text.replace(/[\\"]/g, (c) => "\\" + c) + '"';
}

function isSimpleEnum(sum: SumType): boolean {
  return sum.variants.length > 0 && optionInner(sum) === undefined &&
    sum.variants.every((variant) =>
      variant.algebraicType.tag === "Product" && variant.algebraicType.value.elements.length === 0
    );
}

function byteaText(bytes: Uint8Array): string {
  return "\\x" + toHex(bytes);
}

/** Shortest text that reads back as the same float; NaN and infinities as PostgreSQL spells them. */
function floatText(value: number, isF32: boolean): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (Object.is(value, -0)) return "-0";
  if (isF32) {
    for (let digits = 1; digits <= 9; digits++) {
      const candidate = Number(value.toPrecision(digits));
      if (Math.fround(candidate) === value) return String(candidate);
    }
  }
  return String(value);
}

const MICROS_PER_SECOND = 1_000_000n;

/** PostgreSQL's ISO output of a timestamptz in UTC: `2023-11-14 22:13:20.123456+00`. */
function timestampText(micros: bigint): string {
  let seconds = micros / MICROS_PER_SECOND;
  let fraction = micros % MICROS_PER_SECOND;
  if (fraction < 0n) {
    fraction += MICROS_PER_SECOND;
    seconds -= 1n;
  }
  const milliseconds = Number(seconds) * 1000;
  // Date covers ±8.64e15 ms; an i64 of microseconds reaches a little further.
  if (Math.abs(milliseconds) > 8.64e15) return String(micros);
  const iso = new Date(milliseconds).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const base = iso.slice(0, iso.indexOf(".")).replace("T", " ");
  return `${base}${fractionText(fraction)}+00`;
}

/** PostgreSQL's `postgres`-style interval of a number of microseconds: `-01:02:03.5`. */
function durationText(micros: bigint): string {
  const sign = micros < 0n ? "-" : "";
  const magnitude = micros < 0n ? -micros : micros;
  const totalSeconds = magnitude / MICROS_PER_SECOND;
  const hours = totalSeconds / 3600n;
  const minutes = (totalSeconds / 60n) % 60n;
  const seconds = totalSeconds % 60n;
  const two = (n: bigint) => n.toString().padStart(2, "0");
  return `${sign}${two(hours)}:${two(minutes)}:${two(seconds)}${
    fractionText(magnitude % MICROS_PER_SECOND)
  }`;
}

/** `.ffffff` without trailing zeros; empty for zero. */
function fractionText(micros: bigint): string {
  return micros === 0n ? "" : "." + micros.toString().padStart(6, "0").replace(/0+$/, "");
}

function uuidText(value: bigint): string {
  const hex = value.toString(16).padStart(32, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/** JSON text of a product, sum or array, as SpacetimeDB's psql formatter writes it. */
function jsonText(type: AlgebraicType, value: Value, typespace: Typespace): string {
  const resolved = resolveType(type, typespace);
  switch (resolved.tag) {
    case "String":
      return JSON.stringify(value);
    case "Bool":
      return value ? "true" : "false";
    case "F32":
    case "F64": {
      const number = value as number;
      return Number.isFinite(number) ? floatText(number, resolved.tag === "F32") : "null";
    }
    case "Array": {
      const element = resolveType(resolved.value, typespace);
      if (element.tag === "U8") return JSON.stringify(byteaText(value as Uint8Array));
      return "[" +
        (value as Value[]).map((item) => jsonText(element, item, typespace)).join(", ") + "]";
    }
    case "Product":
      return productJson(resolved.value, value as Value[], typespace);
    case "Sum": {
      const sum = value as SumValue;
      const variant = resolved.value.variants[sum.tag];
      if (isSimpleEnum(resolved.value)) return JSON.stringify(variant.name ?? String(sum.tag));
      return `{${JSON.stringify(variant.name ?? String(sum.tag))}: ${
        jsonText(variant.algebraicType, sum.value, typespace)
      }}`;
    }
    case "Ref":
      return jsonText(resolved, value, typespace);
    default:
      return String(value);
  }
}

function productJson(product: ProductType, values: Value[], typespace: Typespace): string {
  const special = specialProductKind(product);
  if (special !== undefined) return JSON.stringify(specialCodec(special)[1](values));
  const fields = product.elements.map((element, i) =>
    `${JSON.stringify(element.name ?? `col_${i}`)}: ${
      jsonText(element.algebraicType, values[i], typespace)
    }`
  );
  return "{" + fields.join(", ") + "}";
}
