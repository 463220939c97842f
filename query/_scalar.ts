/**
 * The column types SQL can compare, how their values are represented while evaluating
 * (`Comparable`), how they order (§1.7) and how they print in error messages (SATS notation).
 */
import type { AlgebraicType, IntegerTag, Typespace } from "../protocol/mod.ts";
import { INTEGER_BITS, resolveType } from "../protocol/mod.ts";

export type IntTag = IntegerTag;

/**
 * A comparable column type. Representation of values (`Comparable`):
 * bool -> 0/1; ints up to 32 bits and floats -> number; wider ints, identity, connectionId,
 * timestamp (µs) and uuid -> bigint; string and bytes -> their raw (UTF-8) bytes, which
 * compare in SATS order byte by byte.
 */
export type Scalar =
  | { kind: "bool" }
  | { kind: "int"; tag: IntTag; bits: number; signed: boolean }
  | { kind: "float"; bits: 32 | 64 }
  | { kind: "string" }
  | { kind: "bytes" }
  | { kind: "identity" }
  | { kind: "connectionId" }
  | { kind: "timestamp" }
  | { kind: "uuid" };

export type Comparable = number | bigint | Uint8Array;

const SPECIAL_PRODUCTS: Record<string, [Scalar["kind"], string]> = {
  __identity__: ["identity", "U256"],
  __connection_id__: ["connectionId", "U128"],
  __timestamp_micros_since_unix_epoch__: ["timestamp", "I64"],
  __uuid__: ["uuid", "U128"],
};

/** The comparable scalar for a column type, or undefined when SQL cannot compare it. */
export function scalarOf(type: AlgebraicType, typespace: Typespace): Scalar | undefined {
  const t = resolveType(type, typespace);
  switch (t.tag) {
    case "Bool":
      return { kind: "bool" };
    case "F32":
      return { kind: "float", bits: 32 };
    case "F64":
      return { kind: "float", bits: 64 };
    case "String":
      return { kind: "string" };
    case "Array":
      return resolveType(t.value, typespace).tag === "U8" ? { kind: "bytes" } : undefined;
    case "Product": {
      const elements = t.value.elements;
      if (elements.length !== 1 || elements[0].name === undefined) return undefined;
      const special = SPECIAL_PRODUCTS[elements[0].name];
      if (special === undefined) return undefined;
      const inner = resolveType(elements[0].algebraicType, typespace);
      return inner.tag === special[1] ? { kind: special[0] } as Scalar : undefined;
    }
    case "Sum":
    case "Ref":
      return undefined;
    default: {
      const tag = t.tag as IntTag;
      return { kind: "int", tag, bits: INTEGER_BITS[tag], signed: tag.startsWith("I") };
    }
  }
}

/** True when values of this scalar are bigints. */
export function isBigScalar(scalar: Scalar): boolean {
  switch (scalar.kind) {
    case "int":
      return scalar.bits > 32;
    case "identity":
    case "connectionId":
    case "timestamp":
    case "uuid":
      return true;
    default:
      return false;
  }
}

const FORMAT_DEPTH_MAX = 16;

/** SATS notation used in SpacetimeDB's messages: `U8`, `Array<String>`, `(__identity__: U256)`. */
export function formatType(type: AlgebraicType, typespace: Typespace, depth = 0): string {
  if (depth > FORMAT_DEPTH_MAX) return "...";
  const t = type.tag === "Ref" ? resolveType(type, typespace) : type;
  switch (t.tag) {
    case "Array":
      return `Array<${formatType(t.value, typespace, depth + 1)}>`;
    case "Product":
      return `(${
        t.value.elements.map((e, i) =>
          `${e.name ?? i}: ${formatType(e.algebraicType, typespace, depth + 1)}`
        ).join(", ")
      })`;
    case "Sum":
      return `(${
        t.value.variants.map((v, i) =>
          `${v.name ?? i}: ${formatType(v.algebraicType, typespace, depth + 1)}`
        ).join(" | ")
      })`;
    case "Ref":
      return `Ref(${t.value})`;
    default:
      return t.tag;
  }
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Total order on numbers: -0 equals +0, NaN equals NaN and sorts above everything. */
export function compareNumbers(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
}

export function compareComparable(a: Comparable, b: Comparable): number {
  if (typeof a === "number") return compareNumbers(a, b as number);
  if (typeof a === "bigint") return a < (b as bigint) ? -1 : a > (b as bigint) ? 1 : 0;
  return compareBytes(a, b as Uint8Array);
}

/**
 * A Map key that is equal for equal values of one scalar: numbers and bigints stand for
 * themselves (Map's SameValueZero matches the float order's -0 = +0 and NaN = NaN); bytes
 * become a string with one char per byte.
 */
export type ValueKey = number | bigint | string;

export function valueKey(value: Comparable): ValueKey {
  if (typeof value !== "object") return value;
  return bytesToKey(value);
}

/** Printable form of a value, used in canonical plan keys. */
export function formatComparable(value: Comparable): string {
  if (typeof value === "number") return Object.is(value, -0) ? "0" : String(value);
  if (typeof value === "bigint") return `${value}n`;
  return `x${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** One char per byte; `apply` on a typed array avoids the iterator protocol of a spread. */
export function bytesToKey(bytes: Uint8Array): string {
  if (bytes.length <= 4096) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let key = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    key += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return key;
}
