/**
 * The value encoding of a database process's frames (worker/isolation.ts): a small structured
 * clone for exactly the shapes our messages use (plain objects, arrays, strings, numbers,
 * bigints, booleans, null/undefined, typed arrays, Maps, Sets). node:v8's serialize costs ~5 µs
 * for an empty object and ~14 µs for a Float64Array of 700 in Deno 2.9.6 (its host objects go
 * through JavaScript); here a typed array is one copy. Anything else (a Date, a class
 * instance with a prototype we do not know) makes `encodeWire` return undefined and the caller
 * falls back to node:v8.
 *
 * `decodeFramePayload` reads a frame payload (codec byte first), in the server and in the storage
 * worker, which gets commit frames from a database process as raw bytes.
 *
 * Decoding is for untrusted bytes (the database process runs tenant code): every read is
 * bounds-checked, nesting is limited, counts cannot exceed the bytes left, and no key can set a
 * prototype. Any violation throws.
 */

import { deserialize } from "node:v8";

/** First byte of a frame payload: which codec encoded the rest. */
export const CODEC_V8 = 0;
export const CODEC_WIRE = 1;

const T_UNDEFINED = 0;
const T_NULL = 1;
const T_FALSE = 2;
const T_TRUE = 3;
const T_F64 = 4;
const T_I32 = 5;
const T_STRING = 6;
const T_BIGINT = 7;
const T_ARRAY = 8;
const T_OBJECT = 9;
const T_TYPED = 10;
const T_MAP = 11;
const T_SET = 12;

/** Typed array kinds, by index in the encoding. */
const TYPED = [
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  Uint8ClampedArray,
] as const;

/** Nesting deeper than this is refused (our messages nest a few levels). */
const DEPTH_MAX = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const objectPrototype = Object.prototype;
const arrayIsArray = Array.isArray;
const getPrototypeOf = Object.getPrototypeOf;

class Unsupported extends Error {}

class Writer {
  bytes = new Uint8Array(4096);
  view = new DataView(this.bytes.buffer);
  at = 0;

  reserve(extra: number): void {
    const needed = this.at + extra;
    if (needed <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.at));
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer);
  }

  u8(value: number): void {
    this.reserve(1);
    this.bytes[this.at++] = value;
  }

  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.at, value, true);
    this.at += 4;
  }

  string(value: string): void {
    this.reserve(4 + value.length * 3);
    const { written } = encoder.encodeInto(value, this.bytes.subarray(this.at + 4));
    this.view.setUint32(this.at, written, true);
    this.at += 4 + written;
  }

  raw(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.reserve(bytes.length);
    this.bytes.set(bytes, this.at);
    this.at += bytes.length;
  }
}

function write(w: Writer, value: unknown, depth: number): void {
  if (depth > DEPTH_MAX) throw new Unsupported("too deep");
  switch (typeof value) {
    case "undefined":
      return w.u8(T_UNDEFINED);
    case "boolean":
      return w.u8(value ? T_TRUE : T_FALSE);
    case "number":
      if ((value | 0) === value && !(value === 0 && 1 / value < 0)) {
        w.reserve(5);
        w.bytes[w.at++] = T_I32;
        w.view.setInt32(w.at, value, true);
        w.at += 4;
      } else {
        w.reserve(9);
        w.bytes[w.at++] = T_F64;
        w.view.setFloat64(w.at, value, true);
        w.at += 8;
      }
      return;
    case "string":
      w.u8(T_STRING);
      return w.string(value);
    case "bigint": {
      // Sign, then 64-bit words, least significant first.
      let magnitude = value < 0n ? -value : value;
      let words = 0;
      for (let rest = magnitude; rest > 0n; rest >>= 64n) words++;
      if (words > 255) throw new Unsupported("bigint");
      w.reserve(3 + words * 8);
      w.bytes[w.at++] = T_BIGINT;
      w.bytes[w.at++] = value < 0n ? 1 : 0;
      w.bytes[w.at++] = words;
      for (let i = 0; i < words; i++) {
        w.view.setBigUint64(w.at, BigInt.asUintN(64, magnitude), true);
        w.at += 8;
        magnitude >>= 64n;
      }
      return;
    }
    case "object":
      break;
    default:
      throw new Unsupported(typeof value);
  }
  if (value === null) return w.u8(T_NULL);
  if (arrayIsArray(value)) {
    w.u8(T_ARRAY);
    w.u32(value.length);
    for (let i = 0; i < value.length; i++) write(w, value[i], depth + 1);
    return;
  }
  if (ArrayBuffer.isView(value)) {
    const kind = TYPED.indexOf(value.constructor as (typeof TYPED)[number]);
    if (kind < 0) throw new Unsupported("view");
    w.u8(T_TYPED);
    w.u8(kind);
    w.raw(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    return;
  }
  if (value instanceof Map) {
    w.u8(T_MAP);
    w.u32(value.size);
    for (const [key, item] of value) {
      write(w, key, depth + 1);
      write(w, item, depth + 1);
    }
    return;
  }
  if (value instanceof Set) {
    w.u8(T_SET);
    w.u32(value.size);
    for (const item of value) write(w, item, depth + 1);
    return;
  }
  const prototype = getPrototypeOf(value);
  if (prototype !== objectPrototype && prototype !== null) throw new Unsupported("class");
  const keys = Object.keys(value);
  w.u8(T_OBJECT);
  w.u32(keys.length);
  const record = value as Record<string, unknown>;
  for (const key of keys) {
    w.string(key);
    write(w, record[key], depth + 1);
  }
}

/** Encodes `value` after `prefix` bytes (left for the caller), or undefined if unsupported. */
export function encodeWire(value: unknown, prefix: number): Uint8Array | undefined {
  const w = new Writer();
  w.reserve(prefix);
  w.at = prefix;
  try {
    write(w, value, 0);
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
  return w.bytes.subarray(0, w.at);
}

class Reader {
  at = 0;
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u8(): number {
    if (this.at >= this.bytes.length) throw new RangeError("wire: truncated");
    return this.bytes[this.at++];
  }

  u32(): number {
    const value = this.view.getUint32(this.at, true);
    this.at += 4;
    return value;
  }

  /** A count of items that each take at least one byte. */
  count(): number {
    const n = this.u32();
    if (n > this.bytes.length - this.at) throw new RangeError("wire: count past the end");
    return n;
  }

  chunk(): Uint8Array {
    const length = this.u32();
    if (length > this.bytes.length - this.at) throw new RangeError("wire: length past the end");
    const out = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }

  string(): string {
    const chunk = this.chunk();
    // Short ASCII (object keys, names) without the decoder's call overhead.
    if (chunk.length <= 24) {
      let ascii = true;
      for (let i = 0; i < chunk.length; i++) if (chunk[i] > 0x7f) ascii = false;
      // `apply` on the typed array: a spread goes through the iterator protocol (~5× slower).
      if (ascii) return String.fromCharCode.apply(null, chunk as unknown as number[]);
    }
    return decoder.decode(chunk);
  }
}

function read(r: Reader, depth: number): unknown {
  if (depth > DEPTH_MAX) throw new RangeError("wire: nested too deep");
  const tag = r.u8();
  switch (tag) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_F64: {
      const value = r.view.getFloat64(r.at, true);
      r.at += 8;
      return value;
    }
    case T_I32: {
      const value = r.view.getInt32(r.at, true);
      r.at += 4;
      return value;
    }
    case T_STRING:
      return r.string();
    case T_BIGINT: {
      const negative = r.u8();
      const words = r.u8();
      if (negative > 1) throw new RangeError("wire: bad bigint sign");
      let value = 0n;
      const start = r.at;
      r.at += words * 8;
      if (r.at > r.bytes.length) throw new RangeError("wire: bigint past the end");
      for (let i = words - 1; i >= 0; i--) {
        value = (value << 64n) | r.view.getBigUint64(start + i * 8, true);
      }
      return negative ? -value : value;
    }
    case T_ARRAY: {
      const n = r.count();
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = read(r, depth + 1);
      return out;
    }
    case T_OBJECT: {
      const n = r.count();
      const out: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const key = r.string();
        const value = read(r, depth + 1);
        if (key === "__proto__") {
          Object.defineProperty(out, key, {
            value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else {
          out[key] = value;
        }
      }
      return out;
    }
    case T_TYPED: {
      const kind = r.u8();
      const type = TYPED[kind];
      if (type === undefined) throw new RangeError(`wire: unknown typed array ${kind}`);
      const chunk = r.chunk();
      if (chunk.length % type.BYTES_PER_ELEMENT !== 0) throw new RangeError("wire: ragged array");
      // A copy: aligned, and owning its buffer (it may be transferred on).
      const copy = chunk.slice();
      return type === Uint8Array ? copy : new type(copy.buffer);
    }
    case T_MAP: {
      const n = r.count();
      const out = new Map();
      for (let i = 0; i < n; i++) {
        const key = read(r, depth + 1);
        out.set(key, read(r, depth + 1));
      }
      return out;
    }
    case T_SET: {
      const n = r.count();
      const out = new Set();
      for (let i = 0; i < n; i++) out.add(read(r, depth + 1));
      return out;
    }
    default:
      throw new RangeError(`wire: unknown tag ${tag}`);
  }
}

/** Decodes one value that fills `bytes` exactly. */
export function decodeWire(bytes: Uint8Array): unknown {
  const r = new Reader(bytes);
  const value = read(r, 0);
  if (r.at !== bytes.length) throw new RangeError("wire: trailing bytes");
  return value;
}

/** The message of a frame payload (codec byte first); throws on malformed bytes. */
export function decodeFramePayload(payload: Uint8Array): unknown {
  if (payload.length === 0) throw new RangeError("empty frame");
  const body = payload.subarray(1);
  if (payload[0] === CODEC_WIRE) return decodeWire(body);
  if (payload[0] === CODEC_V8) return deserialize(body);
  throw new RangeError(`unknown frame codec ${payload[0]}`);
}
