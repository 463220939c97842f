/** SATS-JSON <-> BSATN for `/call`: reducer and procedure arguments and procedure results. */
import {
  callArgumentsFromJson,
  decodeValueFromBytes,
  encodeValueToBytes,
  JsonValueError,
  type ProductType,
  stringifyJson,
  untypedValueToJson,
} from "../protocol/mod.ts";
import { BadRequestError } from "../lib/errors.ts";
import type { ModuleInfo, ProcedureInfo } from "../worker/mod.ts";

/** Parses the JSON body of a call into the BSATN of the parameter product. */
export function encodeCallArguments(
  module: ModuleInfo,
  params: ProductType,
  text: string,
): Uint8Array {
  try {
    const value = callArgumentsFromJson(params, text, module.def.typespace);
    return encodeValueToBytes({ tag: "Product", value: params }, value, module.def.typespace);
  } catch (error) {
    if (
      error instanceof JsonValueError || error instanceof TypeError || error instanceof RangeError
    ) {
      throw new BadRequestError(`Invalid arguments: ${error.message}`);
    }
    throw error;
  }
}

/** A procedure's BSATN return value as untyped SATS-JSON text. */
export function procedureReturnToJson(
  module: ModuleInfo,
  procedure: ProcedureInfo,
  bytes: Uint8Array,
): string {
  const typespace = procedure.typespace ?? module.def.typespace;
  const value = decodeValueFromBytes(bytes, procedure.returnType, typespace);
  return stringifyJson(untypedValueToJson(procedure.returnType, value, typespace));
}
