/** BSATN encoding of comparable values (index point keys). */
import { BinaryWriter } from "../protocol/mod.ts";
import type { Comparable, Scalar } from "./_scalar.ts";

/** BSATN of one comparable value as the given scalar type (index keys). */
export function encodeComparable(value: Comparable, scalar: Scalar): Uint8Array {
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
