/**
 * Prebuilt modules (`--bin-path`, spacetime.json's `bin-path`/`wasm-file`): a WebAssembly
 * binary is published with host type Wasm, anything else as a JavaScript bundle.
 */
import type { HostType } from "./api_client.ts";
import { CliError } from "./errors.ts";
import { isWasmBinary } from "../wasm/mod.ts";

/** The `\0asm` magic (isWasmBinary) and version 1 that start every WebAssembly binary. */
const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/**
 * The host type of a prebuilt module: Wasm for a WebAssembly binary, else Js. `--js-path` takes
 * JS bundles only; a truncated or foreign-version wasm header is refused here, not by the server.
 */
export function hostTypeOfFile(bytes: Uint8Array, path: string, jsOnly: boolean): HostType {
  if (!isWasmBinary(bytes)) return "Js";
  if (jsOnly) {
    throw new CliError(`'${path}' is a WebAssembly module, not a JS bundle`, [
      "Publish it with --bin-path (-b).",
    ]);
  }
  if (bytes.length < 8 || !WASM_HEADER.every((b, i) => bytes[i] === b)) {
    throw new CliError(
      `'${path}' starts like a WebAssembly module but is not a version 1 binary`,
    );
  }
  return "Wasm";
}

/** True when `path` starts with the WebAssembly magic number (a missing file is false). */
export async function isWasmFile(path: string): Promise<boolean> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path);
    const head = new Uint8Array(4);
    const read = await file.read(head) ?? 0;
    return read === 4 && isWasmBinary(head);
  } catch {
    return false;
  } finally {
    file?.close();
  }
}
