/** The WebAssembly module host (SpacetimeDB's wasm ABI over the worker's syscalls). */
export {
  checkWasmModule,
  loadWasmModule,
  memoryPagesFor,
  WASM_ABI_IMPORTS,
  WASM_PAGE_BYTES,
  type WasmLoadOptions,
  WasmModuleError,
  type WasmModuleHooks,
  type WasmSyscalls,
  WasmTrapError,
} from "./host.ts";
export { isWasmBundle, wasmBundle, wasmBundleBytes } from "./bundle.ts";
export { capMemories, inspectWasm, isWasmBinary, type WasmModuleInfo } from "./binary.ts";
export {
  describeOnlySyscalls,
  describeWasmModule,
  wasmDescribeEntry,
  type WasmDescribeOptions,
} from "./describe.ts";
