/**
 * Test helpers for storage/: a reference BSATN encoder, random values and the SATS order as a
 * plain comparator, all written independently of the code under test.
 */
import type { SumValue, Value } from "../protocol/algebraic_type.ts";
import type { Random } from "../lib/random.ts";
import type { ColumnType } from "./row_layout.ts";
import type { TableSchema } from "./schema.ts";
import { DatastoreError, type DatastoreErrorCode } from "./datastore_error.ts";

/** Asserts that `fn` throws a DatastoreError with `code`. */
export function throwsCode(fn: () => unknown, code: DatastoreErrorCode): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof DatastoreError && error.code === code) return;
    throw new Error(`Expected DatastoreError ${code}, got ${String(error)}`);
  }
  throw new Error(`Expected DatastoreError ${code}, nothing was thrown`);
}

export function encode(type: ColumnType, value: Value): Uint8Array {
  const out: number[] = [];
  write(type, value, out);
  return new Uint8Array(out);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function writeInt(value: bigint, size: number, out: number[]): void {
  for (let i = 0; i < size; i++) {
    out.push(Number(value & 0xffn));
    value >>= 8n;
  }
}

function write(type: ColumnType, value: Value, out: number[]): void {
  switch (type.kind) {
    case "bool":
      out.push(value ? 1 : 0);
      return;
    case "int":
      writeInt(BigInt(value as number | bigint), type.size, out);
      return;
    case "float": {
      const bytes = new Uint8Array(type.size);
      const view = new DataView(bytes.buffer);
      if (type.size === 4) view.setFloat32(0, value as number, true);
      else view.setFloat64(0, value as number, true);
      out.push(...bytes);
      return;
    }
    case "string": {
      const bytes = new TextEncoder().encode(value as string);
      writeInt(BigInt(bytes.length), 4, out);
      out.push(...bytes);
      return;
    }
    case "bytes": {
      const bytes = value as Uint8Array;
      writeInt(BigInt(bytes.length), 4, out);
      out.push(...bytes);
      return;
    }
    case "array": {
      const items = value as Value[];
      writeInt(BigInt(items.length), 4, out);
      for (const item of items) write(type.elem, item, out);
      return;
    }
    case "product":
      type.fields.forEach((f, i) => write(f, (value as Value[])[i], out));
      return;
    case "sum": {
      const sum = value as SumValue;
      out.push(sum.tag);
      write(type.variants[sum.tag], sum.value, out);
      return;
    }
  }
}

const FLOAT_SPECIALS = [0, -0, NaN, Infinity, -Infinity, 1, -1, 0.5, -2.5, 1e-310, -1e-310];

export function randomValue(type: ColumnType, random: Random, depth = 0): Value {
  const pick = (n: number) => Math.floor(random.next() * n);
  switch (type.kind) {
    case "bool":
      return random.next() < 0.5;
    case "int": {
      const bits = BigInt(type.size * 8);
      let value: bigint;
      if (random.next() < 0.3) {
        value = BigInt(pick(7) - 3); // small values collide often
      } else {
        const bytes = random.fill(new Uint8Array(type.size));
        value = 0n;
        for (const byte of bytes) value = (value << 8n) | BigInt(byte);
      }
      value = type.signed
        ? BigInt.asIntN(Number(bits), value)
        : BigInt.asUintN(Number(bits), value);
      return type.size <= 4 ? Number(value) : value;
    }
    case "float": {
      let value = random.next() < 0.4
        ? FLOAT_SPECIALS[pick(FLOAT_SPECIALS.length)]
        : (random.next() - 0.5) * 10 ** (pick(20) - 10);
      if (type.size === 4) value = Math.fround(value);
      return value;
    }
    case "string": {
      const alphabet = ["a", "b", "", "\u0000", "é", "z", "\u{1F600}", "ab"];
      let text = "";
      for (let n = pick(4); n > 0; n--) text += alphabet[pick(alphabet.length)];
      return text;
    }
    case "bytes": {
      const bytes = new Uint8Array(pick(4));
      for (let i = 0; i < bytes.length; i++) bytes[i] = [0, 1, 0x7f, 0xff][pick(4)];
      return bytes;
    }
    case "array": {
      const items: Value[] = [];
      for (let n = depth > 2 ? 0 : pick(4); n > 0; n--) {
        items.push(randomValue(type.elem, random, depth + 1));
      }
      return items;
    }
    case "product":
      return type.fields.map((f) => randomValue(f, random, depth + 1));
    case "sum": {
      const tag = pick(type.variants.length);
      return { tag, value: randomValue(type.variants[tag], random, depth + 1) };
    }
  }
}

function compareFloat(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (Number.isNaN(b)) return -1;
  return a < b ? -1 : a > b ? 1 : 0; // -0 == +0
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** SATS `Ord` on decoded values. */
export function compareValues(type: ColumnType, a: Value, b: Value): number {
  switch (type.kind) {
    case "bool":
      return Number(a) - Number(b);
    case "int": {
      const x = BigInt(a as number | bigint);
      const y = BigInt(b as number | bigint);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    case "float":
      return compareFloat(a as number, b as number);
    case "string": {
      const encoder = new TextEncoder();
      return compareBytes(encoder.encode(a as string), encoder.encode(b as string));
    }
    case "bytes":
      return compareBytes(a as Uint8Array, b as Uint8Array);
    case "array": {
      const x = a as Value[];
      const y = b as Value[];
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareValues(type.elem, x[i], y[i]);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    }
    case "product": {
      for (let i = 0; i < type.fields.length; i++) {
        const c = compareValues(type.fields[i], (a as Value[])[i], (b as Value[])[i]);
        if (c !== 0) return c;
      }
      return 0;
    }
    case "sum": {
      const x = a as SumValue;
      const y = b as SumValue;
      if (x.tag !== y.tag) return x.tag - y.tag;
      return compareValues(type.variants[x.tag], x.value, y.value);
    }
  }
}

/** A table schema with sensible defaults for tests. */
export function tableSchema(
  fields: Partial<TableSchema> & Pick<TableSchema, "tableId" | "name" | "rowType">,
): TableSchema {
  return {
    sourceName: fields.name,
    typespace: [],
    primaryKey: [],
    indexes: [],
    uniqueConstraints: [],
    sequences: [],
    isPublic: true,
    isEvent: false,
    ...fields,
  };
}
