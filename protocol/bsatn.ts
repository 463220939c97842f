/**
 * BSATN: SpacetimeDB's binary, little-endian, not self-describing value encoding.
 *
 * `BinaryWriter`/`BinaryReader` handle the primitive encodings; the type-directed
 * functions (`encodeValue`, `decodeValue`, `skipValue`, `fixedSizeOf`,
 * `compileProductDecoder`) walk an `AlgebraicType` against the Value shapes of
 * algebraic_type.ts. Decoders and encoders are compiled once per type into closures
 * and cached, because rows are decoded on every changed row of every transaction.
 */
import type {
  AlgebraicType,
  ProductType,
  SumType,
  SumValue,
  Typespace,
  Value,
} from "./algebraic_type.ts";

/** The bytes are not valid BSATN for the expected type (truncated, bad tag, bad UTF-8...). */
export class BsatnDecodeError extends Error {
  override name = "BsatnDecodeError";
}

const INITIAL_CAPACITY_BYTES = 256;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;
const U256_MAX = (1n << 256n) - 1n;
const I64_MIN = -(1n << 63n);
const I128_MIN = -(1n << 127n);
const I256_MIN = -(1n << 255n);

/** Growable little-endian byte sink. */
export class BinaryWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #offset = 0;

  constructor(initialCapacityBytes = INITIAL_CAPACITY_BYTES) {
    this.#bytes = new Uint8Array(Math.max(8, initialCapacityBytes));
    this.#view = new DataView(this.#bytes.buffer);
  }

  /** Bytes written so far. */
  get offset(): number {
    return this.#offset;
  }

  #reserve(extraBytes: number): number {
    const at = this.#offset;
    const needed = at + extraBytes;
    if (needed > this.#bytes.length) {
      let capacity = this.#bytes.length * 2;
      while (capacity < needed) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#bytes.subarray(0, at));
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#offset = needed;
    return at;
  }

  writeBool(value: boolean): void {
    const at = this.#reserve(1);
    this.#bytes[at] = value ? 1 : 0;
  }
  writeU8(value: number): void {
    const at = this.#reserve(1);
    this.#bytes[at] = value;
  }
  writeI8(value: number): void {
    const at = this.#reserve(1);
    this.#view.setInt8(at, value);
  }
  writeU16(value: number): void {
    const at = this.#reserve(2);
    this.#view.setUint16(at, value, true);
  }
  writeI16(value: number): void {
    const at = this.#reserve(2);
    this.#view.setInt16(at, value, true);
  }
  writeU32(value: number): void {
    const at = this.#reserve(4);
    this.#view.setUint32(at, value, true);
  }
  writeI32(value: number): void {
    const at = this.#reserve(4);
    this.#view.setInt32(at, value, true);
  }
  writeU64(value: bigint): void {
    const at = this.#reserve(8);
    this.#view.setBigUint64(at, value, true);
  }
  writeI64(value: bigint): void {
    const at = this.#reserve(8);
    this.#view.setBigInt64(at, value, true);
  }
  writeU128(value: bigint): void {
    this.#writeWide(value, 2);
  }
  writeI128(value: bigint): void {
    this.#writeWide(BigInt.asUintN(128, value), 2);
  }
  writeU256(value: bigint): void {
    this.#writeWide(value, 4);
  }
  writeI256(value: bigint): void {
    this.#writeWide(BigInt.asUintN(256, value), 4);
  }
  #writeWide(unsigned: bigint, limbCount: number): void {
    const at = this.#reserve(limbCount * 8);
    let rest = unsigned;
    for (let i = 0; i < limbCount; i++) {
      this.#view.setBigUint64(at + i * 8, BigInt.asUintN(64, rest), true);
      rest >>= 64n;
    }
  }
  writeF32(value: number): void {
    const at = this.#reserve(4);
    this.#view.setFloat32(at, value, true);
  }
  writeF64(value: number): void {
    const at = this.#reserve(8);
    this.#view.setFloat64(at, value, true);
  }
  /** u32 byte length, then UTF-8. */
  writeString(value: string): void {
    const lengthAt = this.#reserve(4);
    // Worst case 3 bytes per UTF-16 code unit.
    const start = this.#reserve(value.length * 3);
    const { written } = textEncoder.encodeInto(value, this.#bytes.subarray(start));
    this.#offset = start + written;
    this.#view.setUint32(lengthAt, written, true);
  }
  /** u32 length, then the bytes (BSATN `Array<U8>`). */
  writeBytes(value: Uint8Array): void {
    this.writeU32(value.length);
    this.writeRawBytes(value);
  }
  /** The bytes with no length prefix. */
  writeRawBytes(value: Uint8Array): void {
    const at = this.#reserve(value.length);
    this.#bytes.set(value, at);
  }

  /** A copy of the bytes written so far; the writer may be reused after `reset()`. */
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#offset);
  }
  /** A view of the bytes written so far, valid until the next write or reset. */
  view(): Uint8Array {
    return this.#bytes.subarray(0, this.#offset);
  }
  reset(): void {
    this.#offset = 0;
  }
}

/** Little-endian reader over a byte array; every read checks bounds. */
export class BinaryReader {
  #bytes: Uint8Array;
  #view: DataView;
  #offset: number;

  constructor(bytes: Uint8Array, offset = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = offset;
  }

  /** Point the reader at new bytes (lets hot paths reuse one reader). */
  reset(bytes: Uint8Array, offset = 0): void {
    if (bytes !== this.#bytes) {
      this.#bytes = bytes;
      this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    this.#offset = offset;
  }

  get offset(): number {
    return this.#offset;
  }
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  #take(byteCount: number): number {
    const at = this.#offset;
    if (at + byteCount > this.#bytes.length) {
      throw new BsatnDecodeError(
        `Unexpected end of input: needed ${byteCount} bytes at offset ${at}, ` +
          `only ${this.#bytes.length - at} left`,
      );
    }
    this.#offset = at + byteCount;
    return at;
  }

  /** Advance without reading. */
  skip(byteCount: number): void {
    this.#take(byteCount);
  }

  /** Throw unless every byte was consumed. */
  expectEnd(what = "value"): void {
    if (this.#offset !== this.#bytes.length) {
      throw new BsatnDecodeError(
        `Trailing bytes after ${what}: consumed ${this.#offset} of ${this.#bytes.length}`,
      );
    }
  }

  readBool(): boolean {
    const byte = this.#bytes[this.#take(1)];
    if (byte === 0) return false;
    if (byte === 1) return true;
    throw new BsatnDecodeError(`Invalid bool byte ${byte} at offset ${this.#offset - 1}`);
  }
  readU8(): number {
    return this.#bytes[this.#take(1)];
  }
  readI8(): number {
    return this.#view.getInt8(this.#take(1));
  }
  readU16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }
  readI16(): number {
    return this.#view.getInt16(this.#take(2), true);
  }
  readU32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }
  readI32(): number {
    return this.#view.getInt32(this.#take(4), true);
  }
  readU64(): bigint {
    return this.#view.getBigUint64(this.#take(8), true);
  }
  readI64(): bigint {
    return this.#view.getBigInt64(this.#take(8), true);
  }
  readU128(): bigint {
    return this.#readWide(2);
  }
  readI128(): bigint {
    return BigInt.asIntN(128, this.#readWide(2));
  }
  readU256(): bigint {
    return this.#readWide(4);
  }
  readI256(): bigint {
    return BigInt.asIntN(256, this.#readWide(4));
  }
  #readWide(limbCount: number): bigint {
    const at = this.#take(limbCount * 8);
    let result = 0n;
    for (let i = limbCount - 1; i >= 0; i--) {
      result = (result << 64n) | this.#view.getBigUint64(at + i * 8, true);
    }
    return result;
  }
  readF32(): number {
    return this.#view.getFloat32(this.#take(4), true);
  }
  readF64(): number {
    return this.#view.getFloat64(this.#take(8), true);
  }
  readString(): string {
    const length = this.readU32();
    const at = this.#take(length);
    const bytes = this.#bytes;
    if (length <= 64) {
      // ASCII fast path: short identifiers and names dominate row data.
      let ascii = true;
      for (let i = at; i < at + length; i++) {
        if (bytes[i] >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        let text = "";
        for (let i = at; i < at + length; i++) text += String.fromCharCode(bytes[i]);
        return text;
      }
    }
    try {
      return textDecoder.decode(bytes.subarray(at, at + length));
    } catch {
      throw new BsatnDecodeError(`Invalid UTF-8 in string at offset ${at}`);
    }
  }
  /** u32 length then bytes; returns a copy. */
  readBytes(): Uint8Array {
    const length = this.readU32();
    return this.readRawBytes(length);
  }
  /** Exactly `byteCount` bytes; returns a copy. */
  readRawBytes(byteCount: number): Uint8Array {
    const at = this.#take(byteCount);
    return this.#bytes.slice(at, at + byteCount);
  }
}

// ---------------------------------------------------------------------------------------
// Type-directed encoding

export type Decoder = (reader: BinaryReader) => Value;
export type Encoder = (writer: BinaryWriter, value: Value) => void;
type Skipper = (reader: BinaryReader) => void;

/** Caches keyed by typespace, then by the type object. Refs resolve lazily (recursion). */
const decoderCache = new WeakMap<Typespace, WeakMap<AlgebraicType, Decoder>>();
const encoderCache = new WeakMap<Typespace, WeakMap<AlgebraicType, Encoder>>();
const skipperCache = new WeakMap<Typespace, WeakMap<AlgebraicType, Skipper>>();
const EMPTY_TYPESPACE: Typespace = [];

function cacheFor<T>(
  cache: WeakMap<Typespace, WeakMap<AlgebraicType, T>>,
  typespace: Typespace,
): WeakMap<AlgebraicType, T> {
  let byType = cache.get(typespace);
  if (!byType) {
    byType = new WeakMap();
    cache.set(typespace, byType);
  }
  return byType;
}

function resolveRef(typespace: Typespace, ref: number): AlgebraicType {
  const target = typespace[ref];
  if (target === undefined) {
    throw new RangeError(`Type reference ${ref} is outside the typespace of ${typespace.length}`);
  }
  return target;
}

/** Follow Refs until a non-Ref type. Throws on a cycle of pure Refs. */
export function resolveType(type: AlgebraicType, typespace: Typespace): AlgebraicType {
  let current = type;
  for (let hops = 0; current.tag === "Ref"; hops++) {
    if (hops > typespace.length) {
      throw new RangeError(`Type reference cycle at Ref ${current.value}`);
    }
    current = resolveRef(typespace, current.value);
  }
  return current;
}

export function isByteArrayType(type: AlgebraicType, typespace: Typespace): boolean {
  return type.tag === "Array" && resolveType(type.value, typespace).tag === "U8";
}

/** A decoder for `type`, compiled once and cached. */
export function compileDecoder(
  type: AlgebraicType,
  typespace: Typespace = EMPTY_TYPESPACE,
): Decoder {
  const byType = cacheFor(decoderCache, typespace);
  const cached = byType.get(type);
  if (cached) return cached;
  const decoder = buildDecoder(type, typespace);
  byType.set(type, decoder);
  return decoder;
}

function buildDecoder(type: AlgebraicType, typespace: Typespace): Decoder {
  switch (type.tag) {
    case "Ref": {
      let target: Decoder | undefined;
      return (r) => (target ??= compileDecoder(resolveRef(typespace, type.value), typespace))(r);
    }
    case "Bool":
      return (r) => r.readBool();
    case "U8":
      return (r) => r.readU8();
    case "I8":
      return (r) => r.readI8();
    case "U16":
      return (r) => r.readU16();
    case "I16":
      return (r) => r.readI16();
    case "U32":
      return (r) => r.readU32();
    case "I32":
      return (r) => r.readI32();
    case "U64":
      return (r) => r.readU64();
    case "I64":
      return (r) => r.readI64();
    case "U128":
      return (r) => r.readU128();
    case "I128":
      return (r) => r.readI128();
    case "U256":
      return (r) => r.readU256();
    case "I256":
      return (r) => r.readI256();
    case "F32":
      return (r) => r.readF32();
    case "F64":
      return (r) => r.readF64();
    case "String":
      return (r) => r.readString();
    case "Array": {
      if (isByteArrayType(type, typespace)) return (r) => r.readBytes();
      const element = compileDecoder(type.value, typespace);
      return (r) => {
        const count = r.readU32();
        // Every element takes at least 0 bytes, so cap the preallocation by what is left.
        const out: Value[] = [];
        for (let i = 0; i < count; i++) out.push(element(r));
        return out;
      };
    }
    case "Product":
      return productDecoder(type.value, typespace);
    case "Sum":
      return sumDecoder(type.value, typespace);
  }
}

function productDecoder(product: ProductType, typespace: Typespace): Decoder {
  const fields = product.elements.map((e) => compileDecoder(e.algebraicType, typespace));
  switch (fields.length) {
    case 0:
      return () => [];
    case 1: {
      const [a] = fields;
      return (r) => [a(r)];
    }
    case 2: {
      const [a, b] = fields;
      return (r) => {
        const first = a(r);
        return [first, b(r)];
      };
    }
    default:
      return (r) => {
        const out = new Array<Value>(fields.length);
        for (let i = 0; i < fields.length; i++) out[i] = fields[i](r);
        return out;
      };
  }
}

function sumDecoder(sum: SumType, typespace: Typespace): Decoder {
  const variants = sum.variants.map((v) => compileDecoder(v.algebraicType, typespace));
  return (r) => {
    const at = r.offset;
    const tag = r.readU8();
    const variant = variants[tag];
    if (variant === undefined) {
      throw new BsatnDecodeError(
        `Invalid sum tag ${tag} at offset ${at}: the type has ${variants.length} variants`,
      );
    }
    return { tag, value: variant(r) } satisfies SumValue;
  };
}

/** Decode one value of `type` from the reader's current position. */
export function decodeValue(
  reader: BinaryReader,
  type: AlgebraicType,
  typespace: Typespace = EMPTY_TYPESPACE,
): Value {
  return compileDecoder(type, typespace)(reader);
}

/** Decode exactly one value from `bytes`; trailing bytes are an error. */
export function decodeValueFromBytes(
  bytes: Uint8Array,
  type: AlgebraicType,
  typespace: Typespace = EMPTY_TYPESPACE,
): Value {
  const reader = new BinaryReader(bytes);
  const value = compileDecoder(type, typespace)(reader);
  reader.expectEnd();
  return value;
}

/**
 * Fast row decoder: `(bytes) => fields`. Trailing bytes are an error. One reader is
 * reused across calls (decoding never re-enters user code).
 */
export function compileProductDecoder(
  productType: ProductType,
  typespace: Typespace = EMPTY_TYPESPACE,
): (bytes: Uint8Array) => Value[] {
  const decode = productDecoder(productType, typespace);
  const reader = new BinaryReader(new Uint8Array(0));
  return (bytes) => {
    reader.reset(bytes);
    const row = decode(reader) as Value[];
    if (reader.offset !== bytes.length) reader.expectEnd("row");
    return row;
  };
}

// ---------------------------------------------------------------------------------------
// Encoding

function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  }
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  if (value === null) return "null";
  return typeof value === "object" ? "object" : `${typeof value} ${String(value)}`;
}

function smallIntEncoder(
  name: string,
  min: number,
  max: number,
  write: (w: BinaryWriter, v: number) => void,
): Encoder {
  return (w, v) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new TypeError(`Expected ${name}, got ${describe(v)}`);
    }
    write(w, v);
  };
}

function bigIntEncoder(
  name: string,
  min: bigint,
  max: bigint,
  write: (w: BinaryWriter, v: bigint) => void,
): Encoder {
  return (w, v) => {
    let big: bigint;
    if (typeof v === "bigint") big = v;
    else if (typeof v === "number" && Number.isSafeInteger(v)) big = BigInt(v);
    else throw new TypeError(`Expected ${name}, got ${describe(v)}`);
    if (big < min || big > max) {
      throw new TypeError(`Expected ${name}, got ${describe(v)} (out of range)`);
    }
    write(w, big);
  };
}

/** An encoder for `type`, compiled once and cached. Throws TypeError on a value of the wrong shape. */
export function compileEncoder(
  type: AlgebraicType,
  typespace: Typespace = EMPTY_TYPESPACE,
): Encoder {
  const byType = cacheFor(encoderCache, typespace);
  const cached = byType.get(type);
  if (cached) return cached;
  const encoder = buildEncoder(type, typespace);
  byType.set(type, encoder);
  return encoder;
}

function buildEncoder(type: AlgebraicType, typespace: Typespace): Encoder {
  switch (type.tag) {
    case "Ref": {
      let target: Encoder | undefined;
      return (w, v) =>
        (target ??= compileEncoder(resolveRef(typespace, type.value), typespace))(w, v);
    }
    case "Bool":
      return (w, v) => {
        if (typeof v !== "boolean") throw new TypeError(`Expected Bool, got ${describe(v)}`);
        w.writeBool(v);
      };
    case "U8":
      return smallIntEncoder("U8", 0, 0xff, (w, v) => w.writeU8(v));
    case "I8":
      return smallIntEncoder("I8", -0x80, 0x7f, (w, v) => w.writeI8(v));
    case "U16":
      return smallIntEncoder("U16", 0, 0xffff, (w, v) => w.writeU16(v));
    case "I16":
      return smallIntEncoder("I16", -0x8000, 0x7fff, (w, v) => w.writeI16(v));
    case "U32":
      return smallIntEncoder("U32", 0, 0xffff_ffff, (w, v) => w.writeU32(v));
    case "I32":
      return smallIntEncoder("I32", -0x8000_0000, 0x7fff_ffff, (w, v) => w.writeI32(v));
    case "U64":
      return bigIntEncoder("U64", 0n, U64_MAX, (w, v) => w.writeU64(v));
    case "I64":
      return bigIntEncoder("I64", I64_MIN, -I64_MIN - 1n, (w, v) => w.writeI64(v));
    case "U128":
      return bigIntEncoder("U128", 0n, U128_MAX, (w, v) => w.writeU128(v));
    case "I128":
      return bigIntEncoder("I128", I128_MIN, -I128_MIN - 1n, (w, v) => w.writeI128(v));
    case "U256":
      return bigIntEncoder("U256", 0n, U256_MAX, (w, v) => w.writeU256(v));
    case "I256":
      return bigIntEncoder("I256", I256_MIN, -I256_MIN - 1n, (w, v) => w.writeI256(v));
    case "F32":
      return (w, v) => {
        if (typeof v !== "number") throw new TypeError(`Expected F32, got ${describe(v)}`);
        w.writeF32(v);
      };
    case "F64":
      return (w, v) => {
        if (typeof v !== "number") throw new TypeError(`Expected F64, got ${describe(v)}`);
        w.writeF64(v);
      };
    case "String":
      return (w, v) => {
        if (typeof v !== "string") throw new TypeError(`Expected String, got ${describe(v)}`);
        w.writeString(v);
      };
    case "Array": {
      if (isByteArrayType(type, typespace)) {
        return (w, v) => {
          if (v instanceof Uint8Array) return w.writeBytes(v);
          if (Array.isArray(v)) return w.writeBytes(Uint8Array.from(v as number[]));
          throw new TypeError(`Expected Array<U8> (Uint8Array), got ${describe(v)}`);
        };
      }
      const element = compileEncoder(type.value, typespace);
      return (w, v) => {
        if (!Array.isArray(v)) throw new TypeError(`Expected Array, got ${describe(v)}`);
        w.writeU32(v.length);
        for (const item of v) element(w, item);
      };
    }
    case "Product": {
      const fields = type.value.elements.map((e) => compileEncoder(e.algebraicType, typespace));
      return (w, v) => {
        if (!Array.isArray(v) || v.length !== fields.length) {
          throw new TypeError(`Expected a product of ${fields.length} fields, got ${describe(v)}`);
        }
        for (let i = 0; i < fields.length; i++) fields[i](w, v[i]);
      };
    }
    case "Sum": {
      const variants = type.value.variants.map((e) => compileEncoder(e.algebraicType, typespace));
      return (w, v) => {
        const sum = v as SumValue;
        if (
          typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array ||
          typeof sum.tag !== "number" || variants[sum.tag] === undefined
        ) {
          throw new TypeError(
            `Expected a sum {tag, value} with tag < ${variants.length}, got ${describe(v)}`,
          );
        }
        w.writeU8(sum.tag);
        variants[sum.tag](w, sum.value);
      };
    }
  }
}

/** Encode `value` of `type` at the writer's position. Throws TypeError on a mismatch. */
export function encodeValue(
  writer: BinaryWriter,
  type: AlgebraicType,
  value: Value,
  typespace: Typespace = EMPTY_TYPESPACE,
): void {
  compileEncoder(type, typespace)(writer, value);
}

/** Encode one value into fresh bytes. */
export function encodeValueToBytes(
  type: AlgebraicType,
  value: Value,
  typespace: Typespace = EMPTY_TYPESPACE,
): Uint8Array {
  const writer = new BinaryWriter();
  compileEncoder(type, typespace)(writer, value);
  return writer.finish();
}

// ---------------------------------------------------------------------------------------
// Skipping and static sizes

const PRIMITIVE_SIZES: Partial<Record<AlgebraicType["tag"], number>> = {
  Bool: 1,
  U8: 1,
  I8: 1,
  U16: 2,
  I16: 2,
  U32: 4,
  I32: 4,
  U64: 8,
  I64: 8,
  U128: 16,
  I128: 16,
  U256: 32,
  I256: 32,
  F32: 4,
  F64: 8,
};

/** Advance past one value of `type` without materializing it (validates sum tags and bools). */
export function skipValue(
  reader: BinaryReader,
  type: AlgebraicType,
  typespace: Typespace = EMPTY_TYPESPACE,
): void {
  compileSkipper(type, typespace)(reader);
}

function compileSkipper(type: AlgebraicType, typespace: Typespace): Skipper {
  const byType = cacheFor(skipperCache, typespace);
  const cached = byType.get(type);
  if (cached) return cached;
  const skipper = buildSkipper(type, typespace);
  byType.set(type, skipper);
  return skipper;
}

function buildSkipper(type: AlgebraicType, typespace: Typespace): Skipper {
  switch (type.tag) {
    case "Ref": {
      let target: Skipper | undefined;
      return (r) => (target ??= compileSkipper(resolveRef(typespace, type.value), typespace))(r);
    }
    case "Bool":
      return (r) => void r.readBool();
    case "String":
      return (r) => void r.readString();
    case "Array": {
      const size = fixedSizeOf(type.value, typespace);
      if (size !== undefined) return (r) => r.skip(r.readU32() * size);
      const element = compileSkipper(type.value, typespace);
      return (r) => {
        const count = r.readU32();
        for (let i = 0; i < count; i++) element(r);
      };
    }
    case "Product": {
      const fields = type.value.elements.map((e) => compileSkipper(e.algebraicType, typespace));
      return (r) => {
        for (const field of fields) field(r);
      };
    }
    case "Sum": {
      const variants = type.value.variants.map((v) => compileSkipper(v.algebraicType, typespace));
      return (r) => {
        const at = r.offset;
        const tag = r.readU8();
        const variant = variants[tag];
        if (variant === undefined) {
          throw new BsatnDecodeError(
            `Invalid sum tag ${tag} at offset ${at}: the type has ${variants.length} variants`,
          );
        }
        variant(r);
      };
    }
    default: {
      const size = PRIMITIVE_SIZES[type.tag]!;
      return (r) => r.skip(size);
    }
  }
}

/**
 * The BSATN size of every value of `type`, if it is the same for all values
 * (primitives other than String, products of fixed types, sums whose variants all
 * have the same fixed size). Bool is fixed at 1 byte.
 */
export function fixedSizeOf(
  type: AlgebraicType,
  typespace: Typespace = EMPTY_TYPESPACE,
): number | undefined {
  return fixedSize(type, typespace, new Set());
}

/**
 * Sizes already computed, per typespace and type object (`null` = variable). Without it a
 * type whose fields share refs (Ref i = (a: Ref i+1, b: Ref i+1)) costs 2^depth. A result
 * computed while a Ref was being visited is still the type's own: a Ref that reaches a
 * visiting Ref lies on a cycle, and every type on a cycle is variable.
 */
const fixedSizeCache = new WeakMap<Typespace, WeakMap<AlgebraicType, number | null>>();

function fixedSize(
  type: AlgebraicType,
  typespace: Typespace,
  visiting: Set<number>,
): number | undefined {
  if (type.tag !== "Ref" && type.tag !== "Product" && type.tag !== "Sum") {
    return computeFixedSize(type, typespace, visiting);
  }
  const byType = cacheFor(fixedSizeCache, typespace);
  const cached = byType.get(type);
  if (cached !== undefined) return cached ?? undefined;
  const size = computeFixedSize(type, typespace, visiting);
  byType.set(type, size ?? null);
  return size;
}

function computeFixedSize(
  type: AlgebraicType,
  typespace: Typespace,
  visiting: Set<number>,
): number | undefined {
  switch (type.tag) {
    case "Ref": {
      // A recursive type cannot have a fixed size.
      if (visiting.has(type.value)) return undefined;
      visiting.add(type.value);
      const size = fixedSize(resolveRef(typespace, type.value), typespace, visiting);
      visiting.delete(type.value);
      return size;
    }
    case "String":
    case "Array":
      return undefined;
    case "Product": {
      let total = 0;
      for (const e of type.value.elements) {
        const size = fixedSize(e.algebraicType, typespace, visiting);
        if (size === undefined) return undefined;
        total += size;
      }
      return total;
    }
    case "Sum": {
      let payload: number | undefined;
      for (const v of type.value.variants) {
        const size = fixedSize(v.algebraicType, typespace, visiting);
        if (size === undefined) return undefined;
        if (payload === undefined) payload = size;
        else if (payload !== size) return undefined;
      }
      return 1 + (payload ?? 0);
    }
    default:
      return PRIMITIVE_SIZES[type.tag];
  }
}
