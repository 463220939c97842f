/**
 * Lazy column access over BSATN row bytes: a predicate reads only the columns it needs, and
 * string/bytes columns are compared as views into the row, without decoding.
 */
import type { ProductType, Typespace } from "../protocol/mod.ts";
import { BinaryReader, skipValue } from "../protocol/mod.ts";
import { assert } from "../lib/assert.ts";
import type { Comparable, Scalar } from "./_scalar.ts";
import { scalarOf } from "./_scalar.ts";

type ReadComparable = (reader: BinaryReader) => Comparable;

function readerFor(scalar: Scalar): ReadComparable {
  switch (scalar.kind) {
    case "bool":
      return (r) => (r.readBool() ? 1 : 0);
    case "float":
      return scalar.bits === 32 ? (r) => r.readF32() : (r) => r.readF64();
    case "string":
    case "bytes":
      return (r) => {
        const length = r.readU32();
        const at = r.offset;
        r.skip(length);
        return r.bytes.subarray(at, at + length);
      };
    case "identity":
      return (r) => r.readU256();
    case "connectionId":
    case "uuid":
      return (r) => r.readU128();
    case "timestamp":
      return (r) => r.readI64();
    case "int":
      switch (scalar.tag) {
        case "I8":
          return (r) => r.readI8();
        case "U8":
          return (r) => r.readU8();
        case "I16":
          return (r) => r.readI16();
        case "U16":
          return (r) => r.readU16();
        case "I32":
          return (r) => r.readI32();
        case "U32":
          return (r) => r.readU32();
        case "I64":
          return (r) => r.readI64();
        case "U64":
          return (r) => r.readU64();
        case "I128":
          return (r) => r.readI128();
        case "U128":
          return (r) => r.readU128();
        case "I256":
          return (r) => r.readI256();
        case "U256":
          return (r) => r.readU256();
      }
  }
}

/** Byte widths of the numeric types that need no validation when skipped. */
const NUMBER_WIDTHS: Record<string, number | undefined> = {
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

/** Integers of at most 32 bits, read straight from the row bytes at a fixed offset. */
const SMALL_INT_CODES: Record<string, number | undefined> = {
  U8: 1,
  I8: 2,
  U16: 3,
  I16: 4,
  U32: 5,
  I32: 6,
};

function readSmallInt(code: number, b: Uint8Array, at: number): number {
  switch (code) {
    case 1:
      return b[at];
    case 2:
      return (b[at] << 24) >> 24;
    case 3:
      return b[at] | (b[at + 1] << 8);
    case 4:
      return ((b[at] | (b[at + 1] << 8)) << 16) >> 16;
    case 5:
      return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
    default:
      return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24);
  }
}

/** Per-table compiled knowledge of where columns are and how to read comparable ones. */
export class RowLayout {
  readonly #rowType: ProductType;
  readonly #typespace: Typespace;
  readonly #readers: (ReadComparable | undefined)[];
  readonly reader = new BinaryReader(new Uint8Array(0));
  /**
   * Per column: its offset when every column before it is a number (fixed width, nothing to
   * validate) and it is an integer of at most 32 bits, else -1; and that integer's code
   * (SMALL_INT_CODES). Routing reads such columns (ids, join keys) once per changed row, and
   * going through the reader costs a DataView per row.
   */
  readonly smallIntOffsets: Int32Array;
  readonly smallIntCodes: Uint8Array;

  constructor(rowType: ProductType, typespace: Typespace) {
    this.#rowType = rowType;
    this.#typespace = typespace;
    this.#readers = rowType.elements.map((e) => {
      const scalar = scalarOf(e.algebraicType, typespace);
      return scalar === undefined ? undefined : readerFor(scalar);
    });
    const count = rowType.elements.length;
    this.smallIntOffsets = new Int32Array(count).fill(-1);
    this.smallIntCodes = new Uint8Array(count);
    let at = 0;
    for (let c = 0; c < count; c++) {
      const tag = rowType.elements[c].algebraicType.tag;
      const code = SMALL_INT_CODES[tag];
      if (code !== undefined) {
        this.smallIntOffsets[c] = at;
        this.smallIntCodes[c] = code;
      }
      const width = NUMBER_WIDTHS[tag];
      if (width === undefined) break;
      at += width;
    }
  }

  get columnCount(): number {
    return this.#readers.length;
  }

  skip(column: number): void {
    skipValue(this.reader, this.#rowType.elements[column].algebraicType, this.#typespace);
  }

  read(column: number): Comparable {
    const read = this.#readers[column];
    assert(read !== undefined, `Column ${column} is not comparable`);
    return read(this.reader);
  }

  view(bytes: Uint8Array): RowView {
    return new RowView(this, bytes);
  }
}

/** One row; column values are decoded on first use and cached. */
export class RowView {
  readonly bytes: Uint8Array;
  readonly #layout: RowLayout;
  /** #offsets[i] is where column i starts, known for i < #offsets.length. */
  readonly #offsets: number[] = [0];
  readonly #values: (Comparable | undefined)[] = [];

  constructor(layout: RowLayout, bytes: Uint8Array) {
    this.#layout = layout;
    this.bytes = bytes;
  }

  value(column: number): Comparable {
    const cached = this.#values[column];
    if (cached !== undefined) return cached;
    const layout = this.#layout;
    const fixedAt = layout.smallIntOffsets[column];
    if (fixedAt >= 0 && fixedAt + 4 <= this.bytes.length) {
      const value = readSmallInt(layout.smallIntCodes[column], this.bytes, fixedAt);
      this.#values[column] = value;
      return value;
    }
    const reader = layout.reader;
    const offsets = this.#offsets;
    if (offsets.length <= column) {
      reader.reset(this.bytes, offsets[offsets.length - 1]);
      for (let c = offsets.length - 1; c < column; c++) {
        layout.skip(c);
        offsets.push(reader.offset);
      }
    }
    reader.reset(this.bytes, offsets[column]);
    const value = layout.read(column);
    if (offsets.length === column + 1) offsets.push(reader.offset);
    this.#values[column] = value;
    return value;
  }
}
