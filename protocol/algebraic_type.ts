/**
 * SATS algebraic types as plain data. Tag names and order follow the BSATN
 * meta-encoding of `AlgebraicType` (Ref=0, Sum=1, Product=2, Array=3, String=4,
 * Bool=5, I8..U256=6..17, F32=18, F64=19).
 */

export type PrimitiveTag =
  | "String"
  | "Bool"
  | "I8"
  | "U8"
  | "I16"
  | "U16"
  | "I32"
  | "U32"
  | "I64"
  | "U64"
  | "I128"
  | "U128"
  | "I256"
  | "U256"
  | "F32"
  | "F64";

/** The integer types. */
export type IntegerTag = Exclude<PrimitiveTag, "String" | "Bool" | "F32" | "F64">;

/** Width in bits of each integer type (the one table: SQL literals, sequences' ranges). */
export const INTEGER_BITS: Readonly<Record<IntegerTag, number>> = Object.freeze({
  I8: 8,
  U8: 8,
  I16: 16,
  U16: 16,
  I32: 32,
  U32: 32,
  I64: 64,
  U64: 64,
  I128: 128,
  U128: 128,
  I256: 256,
  U256: 256,
});

/** Whether `tag` names an integer type. */
export function isIntegerTag(tag: string): tag is IntegerTag {
  return Object.hasOwn(INTEGER_BITS, tag);
}

export type AlgebraicType =
  | { tag: "Ref"; value: number }
  | { tag: "Sum"; value: SumType }
  | { tag: "Product"; value: ProductType }
  | { tag: "Array"; value: AlgebraicType }
  | { tag: PrimitiveTag };

export interface ProductTypeElement {
  name: string | undefined;
  algebraicType: AlgebraicType;
}
export interface ProductType {
  elements: ProductTypeElement[];
}
export interface SumTypeVariant {
  name: string | undefined;
  algebraicType: AlgebraicType;
}
export interface SumType {
  variants: SumTypeVariant[];
}

/** Order of the tags in the BSATN encoding of `AlgebraicType`. */
export const ALGEBRAIC_TYPE_TAGS = [
  "Ref",
  "Sum",
  "Product",
  "Array",
  "String",
  "Bool",
  "I8",
  "U8",
  "I16",
  "U16",
  "I32",
  "U32",
  "I64",
  "U64",
  "I128",
  "U128",
  "I256",
  "U256",
  "F32",
  "F64",
] as const;

export type Typespace = AlgebraicType[];

/**
 * JS values used for decoded BSATN (the same shapes the spacetimedb library uses
 * where that is cheap):
 * - Bool -> boolean; I8..U32, F32, F64 -> number; I64..U256 -> bigint; String -> string
 * - Array<U8> -> Uint8Array; other arrays -> Value[]
 * - Product -> Value[] (positional, in element order)
 * - Sum -> { tag: number, value: Value } (value is [] for unit variants)
 * Special types (Identity, ConnectionId, Timestamp, TimeDuration, Uuid) are
 * single-field products and so decode to [bigint].
 */
export type Value =
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Value[]
  | SumValue;
export interface SumValue {
  tag: number;
  value: Value;
}

export const UNIT_PRODUCT: ProductType = { elements: [] };
