/**
 * Order-preserving ("memcomparable") index keys built straight from BSATN bytes.
 *
 * A key is either a JS number (one column of type bool or an integer up to 32 bits) or a
 * binary string whose UTF-16 code units compare in SATS order with `<`:
 * - integers: big-endian bytes, sign bit flipped for signed types (one code unit per byte);
 * - floats: IEEE bits mapped to a total order (-0 == +0, every NaN equal and above +inf);
 * - strings and byte arrays: each byte b as b+1, terminated by 0;
 * - arrays: 1 before each element, terminated by 0 (so shorter sorts first);
 * - sums: the tag byte, then the payload; products: fields concatenated.
 * Every value encoding is prefix-free, so concatenated columns compare lexicographically.
 * Code units never exceed 256, so KEY_MAX ("\uffff") sorts after every key sharing a prefix.
 */
import { decodeError } from "./datastore_error.ts";
import { checkUtf8, type ColumnType, readU32, type RowLayout } from "./row_layout.ts";

export type Key = number | string;

/** Sorts after every encoded key that starts with the same prefix. */
export const KEY_MAX = "\uffff";

/** Element count above which an array of zero-size elements is refused as malformed. */
const ZERO_SIZE_ELEMENTS_MAX = 1 << 20;

let codes = new Uint16Array(256);
let codeCount = 0;

function push(code: number): void {
  if (codeCount === codes.length) {
    const bigger = new Uint16Array(codes.length * 2);
    bigger.set(codes);
    codes = bigger;
  }
  codes[codeCount++] = code;
}

/** Turns the pushed code units into a string and resets the buffer. */
function takeString(): string {
  const count = codeCount;
  codeCount = 0;
  if (count <= 4096) {
    return String.fromCharCode.apply(null, codes.subarray(0, count) as unknown as number[]);
  }
  let text = "";
  for (let i = 0; i < count; i += 4096) {
    const chunk = codes.subarray(i, Math.min(i + 4096, count));
    text += String.fromCharCode.apply(null, chunk as unknown as number[]);
  }
  return text;
}

function pushFloat32Bits(bits: number): void {
  // Canonicalize: all NaNs to one positive NaN, -0 to +0; then map to an unsigned order.
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) bits = 0x7fc00000;
  else if (bits === 0x80000000) bits = 0;
  bits = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
  push(bits >>> 24);
  push((bits >>> 16) & 0xff);
  push((bits >>> 8) & 0xff);
  push(bits & 0xff);
}

function pushFloat64Bits(high: number, low: number): void {
  const exponentAllOnes = (high & 0x7ff00000) === 0x7ff00000;
  if (exponentAllOnes && ((high & 0x000fffff) !== 0 || low !== 0)) {
    high = 0x7ff80000;
    low = 0;
  } else if (high === 0x80000000 && low === 0) {
    high = 0;
  }
  if (high & 0x80000000) {
    high = ~high >>> 0;
    low = ~low >>> 0;
  } else {
    high = (high | 0x80000000) >>> 0;
  }
  push(high >>> 24);
  push((high >>> 16) & 0xff);
  push((high >>> 8) & 0xff);
  push(high & 0xff);
  push(low >>> 24);
  push((low >>> 16) & 0xff);
  push((low >>> 8) & 0xff);
  push(low & 0xff);
}

/**
 * Validates one BSATN value of `type` at `pos` (reading no further than `end`), pushes its key
 * encoding and returns the position after it.
 */
function encodeValue(type: ColumnType, bytes: Uint8Array, pos: number, end: number): number {
  switch (type.kind) {
    case "int": {
      const size = type.size;
      if (pos + size > end) throw decodeError("Unexpected end of BSATN input");
      const top = pos + size - 1;
      push(type.signed ? bytes[top] ^ 0x80 : bytes[top]);
      for (let i = top - 1; i >= pos; i--) push(bytes[i]);
      return pos + size;
    }
    case "bool":
      if (pos >= end) throw decodeError("Unexpected end of BSATN input");
      if (bytes[pos] > 1) throw decodeError(`Invalid bool byte '${bytes[pos]}'`);
      push(bytes[pos]);
      return pos + 1;
    case "float":
      if (pos + type.size > end) throw decodeError("Unexpected end of BSATN input");
      if (type.size === 4) pushFloat32Bits(readU32(bytes, pos));
      else pushFloat64Bits(readU32(bytes, pos + 4), readU32(bytes, pos));
      return pos + type.size;
    case "string":
    case "bytes": {
      if (pos + 4 > end) throw decodeError("Unexpected end of BSATN input");
      const length = readU32(bytes, pos);
      const start = pos + 4;
      const stop = start + length;
      if (stop > end) throw decodeError("Unexpected end of BSATN input");
      if (type.kind === "string") checkUtf8(bytes, start, stop);
      for (let i = start; i < stop; i++) push(bytes[i] + 1);
      push(0);
      return stop;
    }
    case "array": {
      if (pos + 4 > end) throw decodeError("Unexpected end of BSATN input");
      const count = readU32(bytes, pos);
      pos += 4;
      if (type.elem.size === 0 ? count > ZERO_SIZE_ELEMENTS_MAX : count > end - pos) {
        throw decodeError(`Array count '${count}' exceeds the input`);
      }
      for (let i = 0; i < count; i++) {
        push(1);
        pos = encodeValue(type.elem, bytes, pos, end);
      }
      push(0);
      return pos;
    }
    case "product":
      for (const field of type.fields) pos = encodeValue(field, bytes, pos, end);
      return pos;
    case "sum": {
      if (pos >= end) throw decodeError("Unexpected end of BSATN input");
      const tag = bytes[pos];
      const variant = type.variants[tag];
      if (variant === undefined) throw decodeError(`Invalid sum tag '${tag}'`);
      push(tag);
      return encodeValue(variant, bytes, pos + 1, end);
    }
  }
}

function isNumericKeyType(type: ColumnType): boolean {
  return type.kind === "bool" || (type.kind === "int" && type.size <= 4);
}

/** Reads a bool or <= 32-bit integer as a number. */
function readSmall(type: ColumnType, bytes: Uint8Array, pos: number): number {
  if (type.kind === "bool") {
    if (bytes[pos] > 1) throw decodeError(`Invalid bool byte '${bytes[pos]}'`);
    return bytes[pos];
  }
  const signed = type.kind === "int" && type.signed;
  switch (type.size) {
    case 1:
      return signed ? (bytes[pos] << 24) >> 24 : bytes[pos];
    case 2: {
      const value = bytes[pos] | (bytes[pos + 1] << 8);
      return signed ? (value << 16) >> 16 : value;
    }
    default: {
      const value = bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) |
        (bytes[pos + 3] << 24);
      return signed ? value : value >>> 0;
    }
  }
}

/** Reads the key of the row starting at `bytes[base]` (base is 0 unless the layout is fixed-size). */
type RowKeyReader = (bytes: Uint8Array, base: number) => Key;

function makeRowReader(
  layout: RowLayout,
  columns: number[],
  types: readonly ColumnType[],
): RowKeyReader {
  if (columns.length === 1) {
    const type = types[0];
    const offset = layout.fixedOffsets[columns[0]];
    if (offset >= 0 && isNumericKeyType(type)) {
      const signed = type.kind === "int" && type.signed;
      if (type.kind === "bool" || type.size === 1) {
        return signed
          ? (bytes, base) => (bytes[base + offset] << 24) >> 24
          : (bytes, base) => bytes[base + offset];
      }
      if (type.size === 2) {
        return signed
          ? (bytes, base) => {
            const at = base + offset;
            return ((bytes[at] | (bytes[at + 1] << 8)) << 16) >> 16;
          }
          : (bytes, base) => {
            const at = base + offset;
            return bytes[at] | (bytes[at + 1] << 8);
          };
      }
      return signed
        ? (bytes, base) => {
          const at = base + offset;
          return bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
        }
        : (bytes, base) => {
          const at = base + offset;
          return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) |
            (bytes[at + 3] << 24)) >>> 0;
        };
    }
    if (isNumericKeyType(type)) {
      const column = columns[0];
      return (row) => readSmall(type, row, layout.columnStart(row, column));
    }
    if (offset >= 0 && type.kind === "int") {
      const flip = type.signed ? 0x80 : 0;
      const size = type.size;
      return (bytes, base) => {
        const start = base + offset;
        const top = start + size - 1;
        codeCount = 0;
        push(bytes[top] ^ flip);
        for (let i = top - 1; i >= start; i--) push(bytes[i]);
        return takeString();
      };
    }
  }
  const rowSize = layout.rowSize;
  if (rowSize >= 0) {
    const offsets = columns.map((c) => layout.fixedOffsets[c]);
    return (bytes, base) => {
      codeCount = 0;
      for (let i = 0; i < columns.length; i++) {
        encodeValue(types[i], bytes, base + offsets[i], base + rowSize);
      }
      return takeString();
    };
  }
  return (row) => {
    codeCount = 0;
    for (let i = 0; i < columns.length; i++) {
      encodeValue(types[i], row, layout.columnStart(row, columns[i]), row.length);
    }
    return takeString();
  };
}

/** A half-open key interval [lo, hi). */
export interface KeyRange {
  lo: Key;
  hi: Key;
}

/** Builds keys for one ordered column list of a table. */
export class KeyCodec {
  /** True when keys are numbers (one bool or <= 32-bit integer column). */
  readonly numeric: boolean;
  /** True when keys are 8-code-unit strings of one 64-bit integer column (key64_map.ts). */
  readonly int64: boolean;
  readonly columns: readonly number[];
  readonly types: readonly ColumnType[];
  /** The key of a valid row of the table. */
  readonly fromRow: (row: Uint8Array) => Key;
  /**
   * The key of the valid row at `bytes[base, base + rowSize)`; for tables whose rows are all
   * the same size (`layout.rowSize >= 0`) only.
   */
  readonly fromRowAt: (bytes: Uint8Array, base: number) => Key;

  constructor(layout: RowLayout, columns: number[]) {
    this.columns = columns;
    this.types = columns.map((c) => layout.columns[c]);
    this.numeric = columns.length === 1 && isNumericKeyType(this.types[0]);
    this.int64 = columns.length === 1 && this.types[0].kind === "int" && this.types[0].size === 8;
    const reader = makeRowReader(layout, columns, this.types);
    this.fromRowAt = reader;
    this.fromRow = (row) => reader(row, 0);
  }

  /** The key of `bytes[pos, end)`, the concatenated BSATN of all key columns. */
  fromBsatn(bytes: Uint8Array, pos: number, end: number): Key {
    if (this.numeric) {
      const type = this.types[0];
      if (end - pos !== type.size) {
        throw decodeError(`Key is ${end - pos} bytes, expected ${type.size}`);
      }
      return readSmall(type, bytes, pos);
    }
    codeCount = 0;
    for (const type of this.types) pos = encodeValue(type, bytes, pos, end);
    if (pos !== end) {
      codeCount = 0;
      throw decodeError(`Key has ${end - pos} trailing bytes`);
    }
    return takeString();
  }

  /**
   * The key interval of a range scan (module-abi.md §2.4): `buf` holds the prefix (BSATN of the
   * first `prefixElems` key columns), then the start and end `Bound`s of the next column.
   * Returns null for an empty interval.
   */
  range(
    buf: Uint8Array,
    prefixLen: number,
    prefixElems: number,
    rstartLen: number,
    rendLen: number,
  ): KeyRange | null {
    const columnCount = this.columns.length;
    if (columnCount === 1 && prefixElems !== 0) {
      throw decodeError("Range prefix given for a single-column index");
    }
    if (prefixElems >= columnCount) {
      throw decodeError(`Range prefix of ${prefixElems} columns on a ${columnCount}-column index`);
    }
    if (prefixElems === 0 && prefixLen !== 0) {
      throw decodeError("Range prefix bytes without elements");
    }
    const total = prefixLen + rstartLen + rendLen;
    if (total > buf.length) throw decodeError("Range bounds exceed the buffer");
    codeCount = 0;
    let pos = 0;
    for (let i = 0; i < prefixElems; i++) pos = encodeValue(this.types[i], buf, pos, prefixLen);
    if (pos !== prefixLen) {
      codeCount = 0;
      throw decodeError(`Range prefix has ${prefixLen - pos} trailing bytes`);
    }
    const prefix = takeString();
    const type = this.types[prefixElems];
    const startEnd = prefixLen + rstartLen;
    const start = this.#bound(type, buf, prefixLen, startEnd);
    const end = rendLen === 0 ? start : this.#bound(type, buf, startEnd, total);
    if (this.numeric) {
      const lo = start.tag === 2
        ? -Infinity
        : start.tag === 0
        ? start.value as number
        : (start.value as number) + 1;
      const hi = end.tag === 2
        ? Infinity
        : end.tag === 0
        ? (end.value as number) + 1
        : end.value as number;
      return lo < hi ? { lo, hi } : null;
    }
    const lo = start.tag === 2
      ? prefix
      : start.tag === 0
      ? prefix + start.value
      : prefix + start.value + KEY_MAX;
    const hi = end.tag === 2
      ? prefix + KEY_MAX
      : end.tag === 0
      ? prefix + end.value + KEY_MAX
      : prefix + end.value;
    return lo < hi ? { lo, hi } : null;
  }

  #bound(
    type: ColumnType,
    buf: Uint8Array,
    pos: number,
    end: number,
  ): { tag: number; value: Key } {
    if (pos >= end) throw decodeError("Missing range bound");
    const tag = buf[pos];
    if (tag === 2) {
      if (end !== pos + 1) throw decodeError("Unbounded range bound has trailing bytes");
      return { tag, value: 0 };
    }
    if (tag > 2) throw decodeError(`Invalid range bound tag '${tag}'`);
    if (this.numeric) {
      if (end - pos - 1 !== type.size) throw decodeError("Range bound has the wrong size");
      return { tag, value: readSmall(type, buf, pos + 1) };
    }
    const stop = encodeValue(type, buf, pos + 1, end);
    if (stop !== end) {
      codeCount = 0;
      throw decodeError(`Range bound has ${end - stop} trailing bytes`);
    }
    return { tag, value: takeString() };
  }
}

/** FNV-1a over the bytes: the bucket of a row in content-addressed lookups. */
export function hashBytes(bytes: Uint8Array): number {
  return hashByteRange(bytes, 0, bytes.length);
}

/** `hashBytes(bytes.subarray(start, end))` without the view. */
export function hashByteRange(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 16777619);
  return hash >>> 0;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  const length = a.length;
  if (length !== b.length) return false;
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `bytes[start, start + other.length)` equals `other`. */
export function bytesEqualAt(bytes: Uint8Array, start: number, other: Uint8Array): boolean {
  const length = other.length;
  for (let i = 0; i < length; i++) if (bytes[start + i] !== other[i]) return false;
  return true;
}
