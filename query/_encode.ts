/** BSATN encoding of comparable values (index point keys). */
import { BinaryWriter } from "../protocol/mod.ts";
import type { Comparable, Scalar } from "./_scalar.ts";

/** Little-endian byte counts of the integer types a JS number holds exactly (two's complement). */
const SMALL_INT_BYTES: Record<string, number | undefined> = {
  I8: 1,
  U8: 1,
  I16: 2,
  U16: 2,
  I32: 4,
  U32: 4,
};

/** Reused buffers of lookupKey(), by byte count. */
const SCRATCH: Uint8Array[] = [0, 1, 2, 3, 4].map((n) => new Uint8Array(n));

/**
 * `encodeComparable` for integers of at most 32 bits, written into a buffer shared by every
 * call: valid until the next call, for a key that is only looked up (never stored). Routing a
 * join subscription looks one such key up per changed row; a new Uint8Array costs ~0.3-1 µs in
 * Deno (an ArrayBuffer per array), more than the lookup. Undefined for other types.
 */
export function lookupKey(value: Comparable, scalar: Scalar): Uint8Array | undefined {
  if (scalar.kind !== "int" || typeof value !== "number") return undefined;
  const size = SMALL_INT_BYTES[scalar.tag];
  if (size === undefined) return undefined;
  const out = SCRATCH[size];
  let v = value;
  for (let i = 0; i < size; i++) {
    out[i] = v & 0xff;
    v >>= 8;
  }
  return out;
}

/** BSATN of one comparable value as the given scalar type (index keys). */
export function encodeComparable(value: Comparable, scalar: Scalar): Uint8Array {
  // Integers of at most 32 bits (most index keys) without a writer (three allocations).
  const small = lookupKey(value, scalar);
  if (small !== undefined) return small.slice();
  const w = new BinaryWriter(16);
  switch (scalar.kind) {
    case "bool":
      w.writeBool(value === 1);
      break;
    case "float":
      if (scalar.bits === 32) w.writeF32(value as number);
      else w.writeF64(value as number);
      break;
    case "string":
    case "bytes":
      w.writeBytes(value as Uint8Array);
      break;
    case "identity":
      w.writeU256(value as bigint);
      break;
    case "connectionId":
    case "uuid":
      w.writeU128(value as bigint);
      break;
    case "timestamp":
      w.writeI64(value as bigint);
      break;
    case "int": {
      const v = value;
      switch (scalar.tag) {
        case "I8":
          w.writeI8(v as number);
          break;
        case "U8":
          w.writeU8(v as number);
          break;
        case "I16":
          w.writeI16(v as number);
          break;
        case "U16":
          w.writeU16(v as number);
          break;
        case "I32":
          w.writeI32(v as number);
          break;
        case "U32":
          w.writeU32(v as number);
          break;
        case "I64":
          w.writeI64(v as bigint);
          break;
        case "U64":
          w.writeU64(v as bigint);
          break;
        case "I128":
          w.writeI128(v as bigint);
          break;
        case "U128":
          w.writeU128(v as bigint);
          break;
        case "I256":
          w.writeI256(v as bigint);
          break;
        case "U256":
          w.writeU256(v as bigint);
          break;
      }
    }
  }
  return w.finish();
}
