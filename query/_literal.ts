/**
 * Literal text -> value of a column type (query-subscriptions.md §1.6). Literals have no type of
 * their own: `30`, `'30'` and `0x30` all become whatever the compared column needs. Wide
 * integers are parsed exactly from the text, never through Number.
 */
import type { LiteralExpr } from "./parse.ts";
import type { Comparable, Scalar } from "./_scalar.ts";

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
const EXPONENT_ABS_MAX = 1000;

/** Exact integer value of a decimal text (exponent allowed), or undefined if not integral. */
export function parseDecimalInteger(text: string): bigint | undefined {
  const match = DECIMAL.exec(text);
  if (match === null) return undefined;
  const [, sign, whole, fraction = "", exponentText = "0"] = match;
  if (whole === "" && fraction === "") return undefined;
  const digits = (whole + fraction).replace(/^0+/, "");
  if (digits === "") return 0n;
  const exponent = Number(exponentText) - fraction.length;
  if (!Number.isFinite(exponent) || Math.abs(exponent) > EXPONENT_ABS_MAX) return undefined;
  let value: bigint;
  if (exponent >= 0) value = BigInt(digits) * 10n ** BigInt(exponent);
  else {
    const cut = digits.length + exponent;
    const dropped = cut > 0 ? digits.slice(cut) : digits;
    if (!/^0*$/.test(dropped)) return undefined;
    value = cut > 0 ? BigInt(digits.slice(0, cut)) : 0n;
  }
  return sign === "-" ? -value : value;
}

function parseFloatText(text: string): number | undefined {
  if (DECIMAL.test(text) && /\d/.test(text)) return Number(text);
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(text);
  if (special === null) return undefined;
  if (special[2].toLowerCase() === "nan") return NaN;
  return special[1] === "-" ? -Infinity : Infinity;
}

function hexToBytes(digits: string): Uint8Array | undefined {
  if (digits.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(digits)) return undefined;
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function stripHexPrefix(text: string): string {
  return /^0x/i.test(text) ? text.slice(2) : text;
}

function hexOfLength(digits: string, length: number): bigint | undefined {
  if (digits.length !== length || !/^[0-9A-Fa-f]+$/.test(digits)) return undefined;
  return BigInt(`0x${digits}`);
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** RFC 3339 with a mandatory offset -> microseconds since the epoch (fraction truncated). */
export function parseTimestampMicros(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) {
    return undefined;
  }
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  let micros = BigInt(date.getTime()) * 1000n;
  const fraction = (m[7] ?? "").slice(0, 6).padEnd(6, "0");
  micros += BigInt(fraction);
  if (m[8] === undefined) {
    const offsetMinutes = Number(m[10]) * 60 + Number(m[11]);
    const signed = m[9] === "-" ? -offsetMinutes : offsetMinutes;
    micros -= BigInt(signed) * 60_000_000n;
  }
  return micros;
}

function parseUuid(text: string): bigint | undefined {
  let t = text;
  if (/^urn:uuid:/i.test(t)) t = t.slice(9);
  else if (t.startsWith("{") && t.endsWith("}")) t = t.slice(1, -1);
  else if (/^0x/i.test(t)) t = t.slice(2);
  if (/^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/.test(t)) {
    t = t.replaceAll("-", "");
  }
  return hexOfLength(t, 32);
}

function intRange(scalar: Extract<Scalar, { kind: "int" }>): [bigint, bigint] {
  const bits = BigInt(scalar.bits);
  return scalar.signed ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n] : [0n, (1n << bits) - 1n];
}

/** The literal's value as `scalar`, or undefined when its text does not parse as that type. */
export function literalValue(lit: LiteralExpr, scalar: Scalar): Comparable | undefined {
  if (lit.lit === "bool") {
    return scalar.kind === "bool" ? (lit.text === "true" ? 1 : 0) : undefined;
  }
  const text = lit.text;
  switch (scalar.kind) {
    case "bool":
      return undefined;
    case "int": {
      const value = parseDecimalInteger(text);
      if (value === undefined) return undefined;
      const [min, max] = intRange(scalar);
      if (value < min || value > max) return undefined;
      return scalar.bits > 32 ? value : Number(value);
    }
    case "float": {
      if (lit.lit === "hex" && !/^\d+$/.test(text)) return undefined;
      const value = parseFloatText(text);
      if (value === undefined) return undefined;
      return scalar.bits === 32 ? Math.fround(value) : value;
    }
    case "string":
      return new TextEncoder().encode(text);
    case "bytes":
      return hexToBytes(lit.lit === "str" ? stripHexPrefix(text) : text);
    case "identity":
      return hexOfLength(lit.lit === "str" ? stripHexPrefix(text) : text, 64);
    case "connectionId":
      return hexOfLength(lit.lit === "str" ? stripHexPrefix(text) : text, 32);
    case "timestamp":
      return lit.lit === "str" ? parseTimestampMicros(text) : undefined;
    case "uuid":
      return lit.lit === "hex" ? hexOfLength(text, 32) : parseUuid(text);
  }
}

/** The text SpacetimeDB puts in "The literal expression `...` cannot be parsed" (hex: no prefix). */
export function literalText(lit: LiteralExpr): string {
  return lit.text;
}
