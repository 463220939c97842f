/**
 * Row layout: a per-table compiled view of the row type that finds column byte spans in BSATN
 * row bytes without decoding values, and validates rows (bounds, bool bytes, sum tags, UTF-8).
 * Columns before the first variable-size column sit at constant offsets.
 */
import type { AlgebraicType, ProductType, Typespace } from "../protocol/mod.ts";
import { decodeError } from "./datastore_error.ts";

/** A type with Refs resolved. `size` is the fixed encoded size, or -1 when variable. */
export type ColumnType =
  | { kind: "bool"; size: number }
  | { kind: "int"; size: number; signed: boolean }
  | { kind: "float"; size: number }
  | { kind: "string"; size: number }
  | { kind: "bytes"; size: number }
  | { kind: "array"; size: number; elem: ColumnType }
  | { kind: "product"; size: number; fields: ColumnType[] }
  | { kind: "sum"; size: number; variants: ColumnType[] };

/** Element count above which an array of zero-size elements is refused as malformed. */
const ZERO_SIZE_ELEMENTS_MAX = 1 << 20;

const INT_SIZES: Record<string, [number, boolean]> = {
  I8: [1, true],
  U8: [1, false],
  I16: [2, true],
  U16: [2, false],
  I32: [4, true],
  U32: [4, false],
  I64: [8, true],
  U64: [8, false],
  I128: [16, true],
  U128: [16, false],
  I256: [32, true],
  U256: [32, false],
};

/** Resolves Refs against `typespace` (recursive types allowed) and computes fixed sizes. */
export function compileType(type: AlgebraicType, typespace: Typespace): ColumnType {
  const byRef = new Map<number, ColumnType>();
  const compiled = compileInner(type, typespace, byRef, new Set());
  computeSize(compiled, new Set());
  return compiled;
}

function compileInner(
  type: AlgebraicType,
  typespace: Typespace,
  byRef: Map<number, ColumnType>,
  following: Set<number>,
): ColumnType {
  switch (type.tag) {
    case "Ref": {
      const known = byRef.get(type.value);
      if (known) return known;
      const target = typespace[type.value];
      if (target === undefined) throw new RangeError(`Type ref '${type.value}' is out of range`);
      if (target.tag === "Product" || target.tag === "Sum") {
        // Register the node before filling it so that recursive refs find it.
        const node: ColumnType = target.tag === "Product"
          ? { kind: "product", size: -2, fields: [] }
          : { kind: "sum", size: -2, variants: [] };
        byRef.set(type.value, node);
        const filled = compileInner(target, typespace, byRef, following);
        if (node.kind === "product" && filled.kind === "product") node.fields = filled.fields;
        if (node.kind === "sum" && filled.kind === "sum") node.variants = filled.variants;
        return node;
      }
      if (following.has(type.value)) throw new RangeError(`Type ref '${type.value}' is a cycle`);
      following.add(type.value);
      const resolved = compileInner(target, typespace, byRef, following);
      following.delete(type.value);
      byRef.set(type.value, resolved);
      return resolved;
    }
    case "Product":
      return {
        kind: "product",
        size: -2,
        fields: type.value.elements.map((e) =>
          compileInner(e.algebraicType, typespace, byRef, following)
        ),
      };
    case "Sum":
      return {
        kind: "sum",
        size: -2,
        variants: type.value.variants.map((v) =>
          compileInner(v.algebraicType, typespace, byRef, following)
        ),
      };
    case "Array": {
      const elem = compileInner(type.value, typespace, byRef, following);
      if (elem.kind === "int" && elem.size === 1 && !elem.signed) {
        return { kind: "bytes", size: -1 };
      }
      return { kind: "array", size: -2, elem };
    }
    case "String":
      return { kind: "string", size: -1 };
    case "Bool":
      return { kind: "bool", size: 1 };
    case "F32":
      return { kind: "float", size: 4 };
    case "F64":
      return { kind: "float", size: 8 };
    default: {
      const [size, signed] = INT_SIZES[type.tag];
      return { kind: "int", size, signed };
    }
  }
}

function computeSize(type: ColumnType, visiting: Set<ColumnType>): number {
  if (type.size !== -2) return type.size;
  if (visiting.has(type)) return -1; // recursive: never fixed
  visiting.add(type);
  let size = -1;
  if (type.kind === "product") {
    size = 0;
    for (const field of type.fields) {
      const fieldSize = computeSize(field, visiting);
      if (fieldSize < 0 || size < 0) size = -1;
      else size += fieldSize;
    }
  } else if (type.kind === "sum") {
    let payload = -3;
    for (const variant of type.variants) {
      const variantSize = computeSize(variant, visiting);
      if (payload === -3) payload = variantSize;
      else if (payload !== variantSize) payload = -1;
    }
    size = payload >= 0 ? 1 + payload : -1;
  } else if (type.kind === "array") {
    computeSize(type.elem, visiting);
  }
  visiting.delete(type);
  type.size = size;
  return size;
}

/** True when every byte pattern of this fixed size is a valid value (no bools, sums). */
export function isPlain(type: ColumnType): boolean {
  switch (type.kind) {
    case "int":
    case "float":
      return true;
    case "product":
      return type.size >= 0 && type.fields.every(isPlain);
    default:
      return false;
  }
}

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

export function readU32(bytes: Uint8Array, pos: number): number {
  return (bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24)) >>>
    0;
}

/** Checks that `bytes[start, end)` is valid UTF-8 (only called when a high byte is present). */
export function checkUtf8(bytes: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    if (bytes[i] >= 0x80) {
      try {
        utf8Fatal.decode(bytes.subarray(start, end));
      } catch {
        throw decodeError("Invalid UTF-8 in a string value");
      }
      return;
    }
  }
}

/**
 * Validates one value of `type` starting at `pos` (reading no further than `end`) and returns
 * the position just after it. Throws DecodeError on malformed bytes.
 */
export function skipValue(type: ColumnType, bytes: Uint8Array, pos: number, end: number): number {
  switch (type.kind) {
    case "int":
    case "float": {
      const next = pos + type.size;
      if (next > end) throw decodeError("Unexpected end of BSATN input");
      return next;
    }
    case "bool":
      if (pos >= end) throw decodeError("Unexpected end of BSATN input");
      if (bytes[pos] > 1) throw decodeError(`Invalid bool byte '${bytes[pos]}'`);
      return pos + 1;
    case "string":
    case "bytes": {
      if (pos + 4 > end) throw decodeError("Unexpected end of BSATN input");
      const length = readU32(bytes, pos);
      const start = pos + 4;
      if (start + length > end) throw decodeError("Unexpected end of BSATN input");
      if (type.kind === "string") checkUtf8(bytes, start, start + length);
      return start + length;
    }
    case "array": {
      if (pos + 4 > end) throw decodeError("Unexpected end of BSATN input");
      const count = readU32(bytes, pos);
      pos += 4;
      if (type.elem.size > 0) {
        if (pos + count * type.elem.size > end) throw decodeError("Unexpected end of BSATN input");
        if (isPlain(type.elem)) return pos + count * type.elem.size;
      } else if (type.elem.size === 0) {
        if (count > ZERO_SIZE_ELEMENTS_MAX) {
          throw decodeError(`Array count '${count}' is too large`);
        }
      } else if (count > end - pos) {
        throw decodeError("Unexpected end of BSATN input");
      }
      for (let i = 0; i < count; i++) pos = skipValue(type.elem, bytes, pos, end);
      return pos;
    }
    case "product":
      for (const field of type.fields) pos = skipValue(field, bytes, pos, end);
      return pos;
    case "sum": {
      if (pos >= end) throw decodeError("Unexpected end of BSATN input");
      const variant = type.variants[bytes[pos]];
      if (variant === undefined) throw decodeError(`Invalid sum tag '${bytes[pos]}'`);
      return skipValue(variant, bytes, pos + 1, end);
    }
  }
}

/** Column spans of a table's rows. */
export class RowLayout {
  readonly columns: ColumnType[];
  /** Constant start offset of each column, or -1 once a variable-size column precedes it. */
  readonly fixedOffsets: number[];
  /** Total row size when every column is fixed-size, else -1. */
  readonly rowSize: number;
  readonly #plain: boolean;
  /** Columns that need checking in a fixed-size row (bools, sums). */
  readonly #checkedColumns: number[];

  constructor(rowType: ProductType, typespace: Typespace) {
    this.columns = rowType.elements.map((e) => compileType(e.algebraicType, typespace));
    this.fixedOffsets = [];
    let offset = 0;
    for (const column of this.columns) {
      this.fixedOffsets.push(offset);
      offset = offset >= 0 && column.size >= 0 ? offset + column.size : -1;
    }
    this.rowSize = offset;
    this.#plain = this.rowSize >= 0 && this.columns.every(isPlain);
    this.#checkedColumns = [];
    this.columns.forEach((c, i) => {
      if (!isPlain(c)) this.#checkedColumns.push(i);
    });
  }

  /** Throws DecodeError unless `row` is exactly one well-formed row. */
  validate(row: Uint8Array): void {
    if (this.rowSize >= 0) {
      if (row.length !== this.rowSize) {
        throw decodeError(`Row is ${row.length} bytes, expected ${this.rowSize}`);
      }
      if (this.#plain) return;
      for (const col of this.#checkedColumns) {
        const start = this.fixedOffsets[col];
        skipValue(this.columns[col], row, start, start + this.columns[col].size);
      }
      return;
    }
    const end = this.rowEnd(row, 0, row.length);
    if (end !== row.length) throw decodeError(`Row has ${row.length - end} trailing bytes`);
  }

  /** `validate` of the fixed-size row at `bytes[base, base + rowSize)` (rowSize >= 0 only). */
  validateFixedAt(bytes: Uint8Array, base: number): void {
    if (this.#plain) return;
    for (const col of this.#checkedColumns) {
      const start = base + this.fixedOffsets[col];
      skipValue(this.columns[col], bytes, start, start + this.columns[col].size);
    }
  }

  /** Validates one row starting at `pos` and returns where it ends. */
  rowEnd(bytes: Uint8Array, pos: number, end: number): number {
    if (this.#plain) {
      const next = pos + this.rowSize;
      if (next > end) throw decodeError("Unexpected end of BSATN input");
      return next;
    }
    for (const column of this.columns) pos = skipValue(column, bytes, pos, end);
    return pos;
  }

  /** Start offset of column `col` in a valid row. */
  columnStart(row: Uint8Array, col: number): number {
    const fixed = this.fixedOffsets[col];
    if (fixed >= 0) return fixed;
    let last = col;
    while (this.fixedOffsets[last] < 0) last--;
    let pos = this.fixedOffsets[last];
    for (let i = last; i < col; i++) pos = skipValue(this.columns[i], row, pos, row.length);
    return pos;
  }
}
