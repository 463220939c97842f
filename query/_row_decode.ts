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

/** Per-table compiled knowledge of where columns are and how to read comparable ones. */
export class RowLayout {
  readonly #rowType: ProductType;
  readonly #typespace: Typespace;
  readonly #readers: (ReadComparable | undefined)[];
  readonly reader = new BinaryReader(new Uint8Array(0));

  constructor(rowType: ProductType, typespace: Typespace) {
    this.#rowType = rowType;
    this.#typespace = typespace;
    this.#readers = rowType.elements.map((e) => {
      const scalar = scalarOf(e.algebraicType, typespace);
      return scalar === undefined ? undefined : readerFor(scalar);
    });
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
