/**
 * How a WebAssembly module travels through the server as a "bundle": the registry, the
 * module files on disk, the probe and the database process all carry a module as a string,
 * so a wasm binary is carried as a marker line and its base64 text. The marker starts with
 * a NUL character, which no JavaScript bundle can start with.
 */

// Captured at load: a database process later reduces its globals to an allow-list.
const hostBtoa = btoa;
const hostAtob = atob;

const WASM_BUNDLE_PREFIX = "\u0000lightcone:wasm-module\n";

/** The bundle string for the wasm binary `bytes`. */
export function wasmBundle(bytes: Uint8Array): string {
  const parts: string[] = [];
  const chunk = 0x8000;
  for (let at = 0; at < bytes.length; at += chunk) {
    parts.push(String.fromCharCode(...bytes.subarray(at, at + chunk)));
  }
  return WASM_BUNDLE_PREFIX + hostBtoa(parts.join(""));
}

/** True when `bundle` carries a wasm binary (made by wasmBundle). */
export function isWasmBundle(bundle: string): boolean {
  return bundle.startsWith(WASM_BUNDLE_PREFIX);
}

/** The wasm binary a bundle made by wasmBundle carries. */
export function wasmBundleBytes(bundle: string): Uint8Array {
  if (!isWasmBundle(bundle)) throw new TypeError("not a wasm module bundle");
  const text = hostAtob(bundle.slice(WASM_BUNDLE_PREFIX.length));
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
