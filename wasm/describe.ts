/**
 * A module's definition without a database: `lightcone generate --bin-path X.wasm` (cli/) runs
 * a WebAssembly module in a throwaway host that holds no data, to read what its
 * `__describe_module__` returns. The module is loaded exactly as at publish (loadWasmModule: the
 * same import and export checks, the same memory cap, initialisers run, a declared view's
 * missing export and procedures and HTTP handlers refused by name); its host calls get no datastore: every one that needs a
 * transaction fails with the errno a call outside a transaction gets, console output goes to
 * `onLog`, and the database identity is zero (there is no database).
 *
 * The untrusted module runs in its own `deno` process with no permissions
 * (wasm/describe_main.ts, started by the CLI), whose V8 heap and address space (RLIMIT_DATA)
 * are capped like a database process's and which the CLI kills when it overruns the module load
 * timeout.
 */
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../protocol/mod.ts";
import { loadWasmModule, type WasmSyscalls } from "./host.ts";

/** The errno text of a call outside a transaction (the wasm host maps it to code 2). */
const NOT_IN_TRANSACTION = "ABI call can only be made while in a transaction";

/**
 * The entry the CLI runs in a child process (wasm/describe_main.ts). A function, not a constant:
 * this module is also part of the procedure threads' bundle (worker/procedure_bundle.ts), which
 * runs from a `blob:` URL against which no relative URL resolves.
 */
export function wasmDescribeEntry(): URL {
  return new URL("./describe_main.ts", import.meta.url);
}

export interface WasmDescribeOptions {
  /** The memory budget a database would give the module (its memory may grow to this). */
  memoryBudgetMb: number;
  /** The module's console output (level as the ABI numbers it: 0 error … 5 panic). */
  onLog?: (level: number, message: string) => void;
}

/** Syscalls with no datastore behind them: only what describing a module can use. */
export function describeOnlySyscalls(
  onLog?: (level: number, message: string) => void,
): WasmSyscalls {
  const refuse = () => {
    throw new Error(NOT_IN_TRANSACTION);
  };
  const v20: Record<string, unknown> = {};
  for (const name of SYS_2_0_EXPORTS) v20[name] = refuse;
  let timers = 0;
  Object.assign(v20, {
    console_log: (level: number, message: string) => onLog?.(level, message),
    console_timer_start: () => ++timers,
    console_timer_end: () => {},
    identity: () => 0n,
    volatile_nonatomic_schedule_immediate: () => {
      throw new Error(
        "volatile_nonatomic_schedule_immediate: there is no database while the module is described",
      );
    },
  });
  const v21: Record<string, unknown> = {};
  for (const name of SYS_2_1_EXPORTS) v21[name] = refuse;
  return { v20, v21 };
}

/**
 * Loads the wasm binary `bytes` as publish would and returns its `__describe_module__` bytes
 * (BSATN RawModuleDef). Throws WasmModuleError (refused) or WasmTrapError (trapped).
 */
export function describeWasmModule(bytes: Uint8Array, options: WasmDescribeOptions): Uint8Array {
  const hooks = loadWasmModule(bytes, describeOnlySyscalls(options.onLog), {
    memoryBudgetMb: options.memoryBudgetMb,
  });
  return hooks.__describe_module__();
}
