/**
 * The WebAssembly module host: runs a module built for SpacetimeDB's wasm ABI (the
 * `spacetime_10.0` … `spacetime_10.5` import namespaces; Rust, C#, C++ or C modules) on the
 * same datastore syscalls a JavaScript module uses (worker/sys_abi.ts). Each import copies its
 * arguments out of the module's linear memory, calls the JS-flavoured syscall, and writes
 * results and errno codes back the way the wasm ABI specifies. The result is a hooks object of
 * the same shape a JavaScript module's library returns, so the engine runs both alike.
 *
 * Checked before anything runs (a failure names what is wrong): every import is one this host
 * provides, with the ABI's function type; the module defines and exports one memory, whose
 * declared sizes fit the database's memory budget (the binary is rewritten so the memory's
 * maximum is that budget: memory.grow fails past it); `__describe_module__` and
 * `__call_reducer__` exist with the ABI's types; a module declaring views exports
 * `__call_view__` (per-sender views) and `__call_view_anon__` (anonymous views) with the ABI's
 * types; the module declares no procedures or HTTP handlers (not supported for wasm modules yet).
 */
import { decodeRawModuleDef, type RawModuleDefV10, resolveModuleDef } from "../protocol/mod.ts";
import {
  capMemories,
  formatFuncType,
  type FuncType,
  inspectWasm,
  sameFuncType,
  type ValueType,
  WasmFormatError,
  type WasmModuleInfo,
} from "./binary.ts";

// Captured at load: a database process removes WebAssembly from its globals before tenant
// code runs (worker/sandbox_globals.ts); the host keeps its own reference.
const HostWebAssembly = WebAssembly;

export const WASM_PAGE_BYTES = 65536;
/** wasm32's largest memory. */
const WASM32_PAGES_MAX = 65536;
/** Bytes a bytes sink (describe output, error message) may collect. */
const SINK_BYTES_MAX = 16 * 1024 * 1024;
/** Bytes of one console_log message decoded; the rest is cut with a marker. */
const LOG_MESSAGE_BYTES_MAX = 256 * 1024;
/**
 * A trap while the memory is this close to its cap is reported as running out of memory (a
 * module whose memory.grow failed typically traps in its allocator right after).
 */
const OUT_OF_MEMORY_SLACK_PAGES = 256;

/** A module the host refuses to load, with the reason. */
export class WasmModuleError extends Error {
  override name = "WasmModuleError";
}

/** The module trapped (unreachable, out-of-bounds access, …) or misused a host call. */
export class WasmTrapError extends Error {
  override name = "WasmTrapError";
}

/** What the host needs from the surrounding worker: the syscalls of worker/sys_abi.ts. */
export interface WasmSyscalls {
  v20: Record<string, unknown>;
  v21: Record<string, unknown>;
}

/** The hooks object (worker/module_loader.ts ModuleHooks) for a wasm module. */
export interface WasmModuleHooks {
  __describe_module__(): Uint8Array;
  __get_error_constructor__(code: number): new (message: string) => Error;
  readonly __sender_error_class__: new (message: string) => Error;
  __call_reducer__(
    reducerId: number,
    sender: bigint,
    connectionId: bigint,
    timestamp: bigint,
    args: DataView,
  ): unknown;
  __call_view__(id: number, sender: bigint, args: Uint8Array): unknown;
  __call_view_anon__(id: number, args: Uint8Array): unknown;
  __call_procedure__(
    id: number,
    sender: bigint,
    connectionId: bigint,
    timestamp: bigint,
    args: Uint8Array,
  ): Uint8Array;
}

export interface WasmLoadOptions {
  /** The database's memory budget: the module's memory may grow to this many MiB. */
  memoryBudgetMb: number;
}

// --- the ABI: imports and their function types --------------------------------------------

const I32 = 0x7f;
const I64 = 0x7e;
const fn = (params: ValueType[], results: ValueType[]): FuncType => ({ params, results });
const RANGE_SCAN = fn([I32, I32, I32, I32, I32, I32, I32, I32, I32], [I32]);

/** Every import the host provides, by namespace, with its function type. */
export const WASM_ABI_IMPORTS: Record<string, Record<string, FuncType>> = {
  "spacetime_10.0": {
    table_id_from_name: fn([I32, I32, I32], [I32]),
    index_id_from_name: fn([I32, I32, I32], [I32]),
    datastore_table_row_count: fn([I32, I32], [I32]),
    datastore_table_scan_bsatn: fn([I32, I32], [I32]),
    datastore_index_scan_range_bsatn: RANGE_SCAN,
    datastore_btree_scan_bsatn: RANGE_SCAN,
    datastore_delete_by_index_scan_range_bsatn: RANGE_SCAN,
    datastore_delete_by_btree_scan_bsatn: RANGE_SCAN,
    datastore_delete_all_by_eq_bsatn: fn([I32, I32, I32, I32], [I32]),
    row_iter_bsatn_advance: fn([I32, I32, I32], [I32]),
    row_iter_bsatn_close: fn([I32], [I32]),
    datastore_insert_bsatn: fn([I32, I32, I32], [I32]),
    datastore_update_bsatn: fn([I32, I32, I32, I32], [I32]),
    volatile_nonatomic_schedule_immediate: fn([I32, I32, I32, I32], []),
    bytes_sink_write: fn([I32, I32, I32], [I32]),
    bytes_source_read: fn([I32, I32, I32], [I32]),
    console_log: fn([I32, I32, I32, I32, I32, I32, I32, I32], []),
    console_timer_start: fn([I32, I32], [I32]),
    console_timer_end: fn([I32], [I32]),
    identity: fn([I32], []),
  },
  "spacetime_10.1": {
    bytes_source_remaining_length: fn([I32, I32], [I32]),
  },
  "spacetime_10.2": {
    get_jwt: fn([I32, I32], [I32]),
  },
  "spacetime_10.3": {
    procedure_sleep_until: fn([I64], [I64]),
    procedure_start_mut_tx: fn([I32], [I32]),
    procedure_commit_mut_tx: fn([], [I32]),
    procedure_abort_mut_tx: fn([], [I32]),
    procedure_http_request: fn([I32, I32, I32, I32, I32], [I32]),
  },
  "spacetime_10.4": {
    datastore_index_scan_point_bsatn: fn([I32, I32, I32, I32], [I32]),
    datastore_delete_by_index_scan_point_bsatn: fn([I32, I32, I32, I32], [I32]),
  },
  "spacetime_10.5": {
    datastore_clear: fn([I32, I32], [I32]),
  },
};

const DESCRIBE_TYPE = fn([I32], []);
const CALL_REDUCER_TYPE = fn([I32, I64, I64, I64, I64, I64, I64, I64, I32, I32], [I32]);
const SETUP_TYPE = fn([I32], [I32]);
/** `__call_view__(id, sender as 4 × u64, args source, result sink) -> code`. */
const CALL_VIEW_TYPE = fn([I32, I64, I64, I64, I64, I32, I32], [I32]);
/** `__call_view_anon__(id, args source, result sink) -> code`. */
const CALL_VIEW_ANON_TYPE = fn([I32, I32, I32], [I32]);
const NO_ARGS_TYPE = fn([], []);

/** errno values (SpacetimeDB's errno table; worker/sys_abi.ts has the same). */
const NO_SUCH_BYTES = 8;
const NO_SPACE = 9;
const BUFFER_TOO_SMALL = 11;
/** A reducer's return code for "failed, the message is in the error sink". */
const CALL_FAILURE = 1;
/** A view's return codes: 0, the sink holds the rows (BSATN array, the older ABI); 2, it holds
 * a ViewResultHeader then its payload (the current ABI); 1 is CALL_FAILURE. */
const VIEW_ROWS_ONLY = 0;
const VIEW_HEADER_FIRST = 2;

/** The errno texts of SpacetimeDB, so an errno error made before the hooks exist is known. */
const ERRNO_BY_MESSAGE = new Map<string, number>([
  ["ABI called by host returned an error", 1],
  ["ABI call can only be made while in a transaction", 2],
  ["Couldn't decode the BSATN to the expected type", 3],
  ["No such table", 4],
  ["No such index", 5],
  ["The provided row iterator is not valid", 6],
  ["The provided console timer does not exist", 7],
  ["The provided bytes source or sink is not valid", 8],
  ["The provided sink has no more space left", 9],
  ["The Index does not support range scans", 10],
  ["The provided buffer is not large enough to store the data", 11],
  ["Value with given unique identifier already exists", 12],
  ["Specified delay in scheduling row was too long", 13],
  ["The index was not unique", 14],
  ["The row was not found, e.g., in an update call", 15],
  ["The auto-increment sequence overflowed", 16],
  ["Attempted async or blocking op while holding open a transaction", 17],
  ["Not in an anonymous transaction. Called by a reducer?", 18],
  ["ABI call can only be made while within a mutable transaction", 19],
  ["ABI call can only be made while within a read-only transaction", 20],
  ["The HTTP request failed", 21],
]);

/** An errno error of the syscalls; the import returns `code` to the module. */
class WasmErrnoError extends Error {
  override name = "WasmErrnoError";
  code = 0;
}

/** A reducer that returned CALL_FAILURE: its message goes to the caller. */
class WasmReducerError extends Error {
  override name = "ReducerError";
}

const errnoClasses = new Map<number, new (message: string) => Error>();
function errnoClass(code: number): new (message: string) => Error {
  let cls = errnoClasses.get(code);
  if (cls === undefined) {
    cls = class extends WasmErrnoError {
      override code = code;
    };
    errnoClasses.set(code, cls);
  }
  return cls;
}

/** The errno an exception of a syscall stands for, or undefined (then the call traps). */
function errnoOf(error: unknown): number | undefined {
  if (error instanceof WasmErrnoError) return error.code;
  if (error instanceof Error && error.constructor === Error) {
    return ERRNO_BY_MESSAGE.get(error.message);
  }
  return undefined;
}

/** Checks a module's imports, exports and memory against the ABI and the memory cap. */
export function checkWasmModule(info: WasmModuleInfo, maxPages: number): void {
  for (const item of info.imports) {
    const what = `"${item.module}"."${item.name}"`;
    if (item.kind !== "function") {
      throw new WasmModuleError(
        `The module imports the ${item.kind} ${what}: a SpacetimeDB module imports only host ` +
          "functions (it defines and exports its own memory)",
      );
    }
    const namespace = WASM_ABI_IMPORTS[item.module];
    const version = /^spacetime_(\d+)\.(\d+)$/.exec(item.module);
    if (namespace === undefined && version !== null) {
      throw new WasmModuleError(
        `The module imports ${what}: ABI version ${version[1]}.${version[2]} is not supported ` +
          `(this host implements spacetime_10.0 … spacetime_10.5); was it built for a newer ` +
          "SpacetimeDB?",
      );
    }
    if (namespace === undefined) {
      throw new WasmModuleError(
        `The module imports ${what} from the unknown namespace "${item.module}": this host ` +
          `provides ${Object.keys(WASM_ABI_IMPORTS).join(", ")}`,
      );
    }
    const expected = namespace[item.name];
    if (expected === undefined) {
      throw new WasmModuleError(
        `The module imports ${what}, which this host does not provide (unknown function in ` +
          `the ${item.module} ABI)`,
      );
    }
    if (!sameFuncType(item.type, expected)) {
      throw new WasmModuleError(
        `The module imports ${what} with the type ${formatFuncType(item.type)}; the ABI's is ` +
          formatFuncType(expected),
      );
    }
  }
  const exported = new Map(info.exports.map((e) => [e.name, e]));
  const memoryExport = exported.get("memory");
  if (memoryExport?.kind !== "memory") {
    throw new WasmModuleError('The module does not export its memory as "memory"');
  }
  const requireFunction = (name: string, type: FuncType) => {
    const item = exported.get(name);
    if (item === undefined || item.kind !== "function") {
      throw new WasmModuleError(`The module does not export the function ${name}`);
    }
    if (!sameFuncType(item.type, type)) {
      throw new WasmModuleError(
        `The module's ${name} has the type ${formatFuncType(item.type)}; the ABI's is ` +
          formatFuncType(type),
      );
    }
  };
  requireFunction("__describe_module__", DESCRIBE_TYPE);
  requireFunction("__call_reducer__", CALL_REDUCER_TYPE);
  if (exported.has("__setup__")) requireFunction("__setup__", SETUP_TYPE);
  if (exported.has("__call_view__")) requireFunction("__call_view__", CALL_VIEW_TYPE);
  if (exported.has("__call_view_anon__")) {
    requireFunction("__call_view_anon__", CALL_VIEW_ANON_TYPE);
  }
  if (exported.has("_initialize")) requireFunction("_initialize", NO_ARGS_TYPE);
  for (const name of exported.keys()) {
    if (name.startsWith("__preinit__")) requireFunction(name, NO_ARGS_TYPE);
  }
  if (info.memories.length !== 1) {
    throw new WasmModuleError(
      `The module defines ${info.memories.length} memories; a SpacetimeDB module defines one`,
    );
  }
  const memory = info.memories[0];
  const mib = (pages: number) => `${(pages * WASM_PAGE_BYTES / 1048576).toFixed(2)} MiB`;
  if (memory.initialPages > maxPages) {
    throw new WasmModuleError(
      `The module's memory starts at ${memory.initialPages} pages (${mib(memory.initialPages)}), ` +
        `more than the database's memory budget allows (${maxPages} pages, ${mib(maxPages)})`,
    );
  }
  if (memory.maximumPages !== undefined && memory.maximumPages > maxPages) {
    throw new WasmModuleError(
      `The module's memory declares a maximum of ${memory.maximumPages} pages ` +
        `(${mib(memory.maximumPages)}), more than the database's memory budget allows ` +
        `(${maxPages} pages, ${mib(maxPages)})`,
    );
  }
}

/** Pages of wasm memory a database with `memoryBudgetMb` gives its module. */
export function memoryPagesFor(memoryBudgetMb: number): number {
  return Math.max(
    1,
    Math.min(WASM32_PAGES_MAX, Math.floor(memoryBudgetMb * 1048576 / WASM_PAGE_BYTES)),
  );
}

/**
 * Compiles and instantiates `bytes`, runs its initialisers (`_initialize`, `__preinit__*`,
 * `__setup__`), and returns its hooks. Throws WasmModuleError when the module is refused.
 */
export function loadWasmModule(
  bytes: Uint8Array,
  sys: WasmSyscalls,
  options: WasmLoadOptions,
): WasmModuleHooks {
  const maxPages = memoryPagesFor(options.memoryBudgetMb);
  let info: WasmModuleInfo;
  try {
    info = inspectWasm(bytes);
  } catch (error) {
    if (error instanceof WasmFormatError) {
      throw new WasmModuleError(`The module is not a valid WebAssembly module: ${error.message}`);
    }
    throw error;
  }
  checkWasmModule(info, maxPages);
  let module: WebAssembly.Module;
  try {
    module = new HostWebAssembly.Module(capMemories(bytes, maxPages) as Uint8Array<ArrayBuffer>);
  } catch (error) {
    throw new WasmModuleError(
      `The module is not a valid WebAssembly module: ${
        error instanceof Error ? error.message : error
      }`,
    );
  }
  const host = new WasmHost(module, sys, maxPages, info);
  host.instantiate();
  const def = decodeRawModuleDef(host.describe);
  refuseUnsupported(def);
  host.setViews(checkViewExports(def, info));
  return host.hooks();
}

/**
 * The declared views' `RawViewDefV10.index` (what SpacetimeDB passes to the view exports), by
 * the engine's view id (protocol/names.ts numbers per-sender and anonymous views apart, a
 * module's own before its submodules'). A declared view whose export is missing refuses the
 * module, by the view's name.
 */
function checkViewExports(
  def: RawModuleDefV10,
  info: WasmModuleInfo,
): { sender: number[]; anonymous: number[] } {
  const sender: number[] = [];
  const anonymous: number[] = [];
  for (const view of resolveModuleDef(def).views) {
    const exportName = view.isAnonymous ? "__call_view_anon__" : "__call_view__";
    if (!info.exports.some((e) => e.name === exportName && e.kind === "function")) {
      throw new WasmModuleError(
        `The module declares the ${view.isAnonymous ? "anonymous" : "per-sender"} view ` +
          `${view.sourceName} but does not export ${exportName}`,
      );
    }
    (view.isAnonymous ? anonymous : sender)[view.id] = view.rawIndex;
  }
  return { sender, anonymous };
}

/** Refuses, by name, what this slice does not run for wasm modules. */
function refuseUnsupported(def: RawModuleDefV10): void {
  const refuse = (what: string, names: string[]) => {
    if (names.length === 0) return;
    throw new WasmModuleError(
      `The module declares ${what} (${names.join(", ")}): wasm modules with ${what} are not ` +
        "supported yet (reducers, tables, indexes, schedules, lifecycle reducers, row-level " +
        "security and views are)",
    );
  };
  refuse("procedures", def.procedures.map((p) => p.sourceName));
  refuse("HTTP handlers", def.httpHandlers.map((h) => h.sourceName));
}

interface Exports {
  memory: WebAssembly.Memory;
  __describe_module__(sink: number): void;
  __call_reducer__(
    id: number,
    s0: bigint,
    s1: bigint,
    s2: bigint,
    s3: bigint,
    c0: bigint,
    c1: bigint,
    timestamp: bigint,
    args: number,
    err: number,
  ): number;
  __setup__?(sink: number): number;
  _initialize?(): void;
  __call_view__?(
    id: number,
    s0: bigint,
    s1: bigint,
    s2: bigint,
    s3: bigint,
    args: number,
    sink: number,
  ): number;
  __call_view_anon__?(id: number, args: number, sink: number): number;
  [name: string]: unknown;
}

const MASK64 = (1n << 64n) - 1n;

/**
 * `value` as `count` u64 words, least significant first: how the ABI passes an identity (4) or
 * a connection id (2).
 */
function u64Words(value: bigint, count: 4): [bigint, bigint, bigint, bigint];
function u64Words(value: bigint, count: 2): [bigint, bigint];
function u64Words(value: bigint, count: number): bigint[] {
  const bits = BigInt.asUintN(64 * count, value);
  const words: bigint[] = [];
  for (let i = 0; i < count; i++) words.push((bits >> BigInt(64 * i)) & MASK64);
  return words;
}
const utf8Lossy = new TextDecoder("utf-8");

/**
 * Whether `memory` can still grow by OUT_OF_MEMORY_SLACK_PAGES: the process's address-space cap
 * (worker/isolation.ts) can stop a module's memory below its own maximum. Only asked of an
 * instance that trapped, which is thrown away (and its memory with it).
 */
function canGrow(memory: WebAssembly.Memory | undefined): boolean {
  if (memory === undefined) return true;
  try {
    memory.grow(OUT_OF_MEMORY_SLACK_PAGES);
    return true;
  } catch {
    return false;
  }
}

/** V8's stack overflow: a RangeError, not a WebAssembly.RuntimeError, even in wasm code. */
function isStackOverflow(error: unknown): error is RangeError {
  return error instanceof RangeError && /Maximum call stack size exceeded/.test(error.message);
}

class WasmHost {
  #exports: Exports | undefined;
  /** Set when a call trapped: the instance's state is unknown, a fresh one is made. */
  #broken = false;
  #sources = new Map<number, { bytes: Uint8Array; at: number }>();
  #sinks = new Map<number, { chunks: Uint8Array[]; bytes: number }>();
  #nextHandle = 1;
  /** What the first instance's __describe_module__ wrote. */
  describe: Uint8Array = new Uint8Array(0);
  /** The scratch buffer the syscalls read from and write into (resized to each call's size). */
  #scratch = new ArrayBuffer(0, { maxByteLength: 16 * 1024 * 1024 });

  constructor(
    readonly module: WebAssembly.Module,
    readonly sys: WasmSyscalls,
    readonly maxPages: number,
    readonly info: WasmModuleInfo,
  ) {}

  instantiate(): void {
    // No exports while the start function (if any) runs: host calls must not reach the
    // previous instance's memory.
    this.#exports = undefined;
    this.#broken = true;
    let instance: WebAssembly.Instance;
    try {
      instance = new HostWebAssembly.Instance(this.module, this.#imports());
    } catch (error) {
      if (error instanceof HostWebAssembly.RuntimeError || isStackOverflow(error)) {
        throw new WasmTrapError(
          `The module trapped while it was instantiated (segments, start function): ${error.message}`,
        );
      }
      throw error;
    }
    const exports = instance.exports as unknown as Exports;
    this.#exports = exports;
    this.#broken = false;
    this.#guard(() => {
      exports._initialize?.();
      const preinits = this.info.exports.map((e) => e.name).filter((n) =>
        n.startsWith("__preinit__")
      ).sort();
      for (const name of preinits) (exports[name] as () => void)();
      if (exports.__setup__) {
        const sink = this.#newSink();
        const code = exports.__setup__(sink);
        const message = this.#takeSink(sink);
        if (code !== 0) {
          throw new WasmModuleError(
            `The module's __setup__ failed: ${
              code === CALL_FAILURE ? utf8Lossy.decode(message) : `code ${code}`
            }`,
          );
        }
      }
      // Every instance is described once, as SpacetimeDB's host does: a module library may set
      // up its reducer table there (the Rust one does, and panics when described twice).
      const sink = this.#newSink();
      exports.__describe_module__(sink);
      const describe = this.#takeSink(sink);
      if (this.#described) return;
      this.describe = describe;
      this.#described = true;
    });
  }

  #described = false;

  hooks(): WasmModuleHooks {
    const unsupported = (what: string) => () => {
      throw new WasmModuleError(`wasm modules cannot run ${what} yet`);
    };
    return {
      __describe_module__: () => this.describe.slice(),
      __get_error_constructor__: (code) => errnoClass(code),
      __sender_error_class__: WasmReducerError,
      __call_reducer__: (id, sender, connectionId, timestamp, args) => {
        const argBytes = new Uint8Array(args.buffer, args.byteOffset, args.byteLength).slice();
        const { code, output } = this.#run(
          argBytes,
          (exports, source, sink) =>
            exports.__call_reducer__(
              id,
              ...u64Words(sender, 4),
              ...u64Words(connectionId, 2),
              timestamp,
              source,
              sink,
            ),
        );
        if (code === 0) return undefined;
        if (code === CALL_FAILURE) throw new WasmReducerError(utf8Lossy.decode(output));
        throw new WasmTrapError(`__call_reducer__ returned the unknown code ${code}`);
      },
      __call_view__: (id, sender, args) => {
        const index = this.#views.sender[id];
        if (index === undefined) throw new WasmTrapError(`No per-sender view with id ${id}`);
        return this.#callView(
          "__call_view__",
          args,
          (exports, source, sink) =>
            exports.__call_view__!(index, ...u64Words(sender, 4), source, sink),
        );
      },
      __call_view_anon__: (id, args) => {
        const index = this.#views.anonymous[id];
        if (index === undefined) throw new WasmTrapError(`No anonymous view with id ${id}`);
        return this.#callView(
          "__call_view_anon__",
          args,
          (exports, source, sink) => exports.__call_view_anon__!(index, source, sink),
        );
      },
      __call_procedure__: unsupported("procedures"),
    };
  }

  #views: { sender: number[]; anonymous: number[] } = { sender: [], anonymous: [] };

  setViews(views: { sender: number[]; anonymous: number[] }): void {
    this.#views = views;
  }

  /**
   * Runs a view export and returns what a JS module's view hook returns: `{ data }`, a
   * ViewResultHeader followed by its payload. Rows written by the older ABI (code 0) get the
   * RowData header; a failure (code 1) throws its message (a view's failure is an internal
   * error of the surrounding operation, as for JS views).
   */
  #callView(
    name: string,
    args: Uint8Array,
    call: (exports: Exports, source: number, sink: number) => number,
  ): { data: Uint8Array } {
    const { code, output: result } = this.#run(args.slice(), call);
    if (code === VIEW_HEADER_FIRST) return { data: result };
    if (code === VIEW_ROWS_ONLY) {
      const data = new Uint8Array(result.length + 1);
      data[0] = 0; // ViewResultHeader::RowData
      data.set(result, 1);
      return { data };
    }
    if (code === CALL_FAILURE) throw new WasmReducerError(utf8Lossy.decode(result));
    throw new WasmTrapError(`${name} returned the unknown code ${code}`);
  }

  /**
   * Calls an export with the arguments `args` (a bytes source, 0 when empty; the module owns
   * the array) and a fresh sink: returns its code and what it wrote to the sink. Guarded: a trap
   * marks the instance broken.
   */
  #run(
    args: Uint8Array,
    call: (exports: Exports, source: number, sink: number) => number,
  ): { code: number; output: Uint8Array } {
    const exports = this.#ready();
    const source = args.length > 0 ? this.#newSource(args) : 0;
    const sink = this.#newSink();
    const code = this.#guard(() => call(exports, source, sink));
    const output = this.#takeSink(sink);
    this.#sources.clear();
    return { code, output };
  }

  #ready(): Exports {
    if (this.#broken || this.#exports === undefined) this.instantiate();
    return this.#exports!;
  }

  /** Runs a call into the module; a trap marks the instance broken and is reported clearly. */
  #guard<T>(call: () => T): T {
    try {
      return call();
    } catch (error) {
      this.#broken = true;
      this.#sources.clear();
      this.#sinks.clear();
      if (error instanceof HostWebAssembly.RuntimeError) throw this.#trapError(error);
      if (isStackOverflow(error)) {
        // Deep recursion in the module (or in a host call it made at that depth): a trap like
        // any other, not an allocation failure of the database.
        throw new WasmTrapError(`The module trapped: call stack exhausted (${error.message})`);
      }
      throw error;
    }
  }

  #trapError(error: Error): Error {
    const memory = this.#exports?.memory;
    const pages = (memory?.buffer.byteLength ?? 0) / WASM_PAGE_BYTES;
    const mib = (p: number) => Math.round(p * WASM_PAGE_BYTES / 1048576);
    if (pages + OUT_OF_MEMORY_SLACK_PAGES >= this.maxPages || !canGrow(memory)) {
      // The engine reports this as the call running out of memory (worker/engine.ts).
      return new RangeError(
        `wasm memory allocation failed: the module's memory is at ${pages} of its ` +
          `${this.maxPages} pages (${mib(pages)} of ${mib(this.maxPages)} MiB, the database's ` +
          `memory budget), cannot grow further, and the module trapped: ${error.message}`,
      );
    }
    return new WasmTrapError(`The module trapped: ${error.message}`);
  }

  // --- bytes sources and sinks ------------------------------------------------------------

  #newSource(bytes: Uint8Array): number {
    const id = this.#nextHandle++;
    this.#sources.set(id, { bytes, at: 0 });
    return id;
  }

  #newSink(): number {
    const id = this.#nextHandle++;
    this.#sinks.set(id, { chunks: [], bytes: 0 });
    return id;
  }

  #takeSink(id: number): Uint8Array {
    const sink = this.#sinks.get(id);
    this.#sinks.delete(id);
    if (sink === undefined) return new Uint8Array(0);
    const out = new Uint8Array(sink.bytes);
    let at = 0;
    for (const chunk of sink.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  // --- memory access --------------------------------------------------------------------

  #memory(call: string): ArrayBuffer {
    if (this.#exports === undefined) {
      // Only while `new Instance` runs the module's start function.
      throw new WasmTrapError(
        `${call}: host calls from the module's start function are not supported (its memory ` +
          "is not exported yet)",
      );
    }
    return this.#exports.memory.buffer as ArrayBuffer;
  }

  /** A view of module memory [ptr, ptr + len); traps when out of bounds. */
  #slice(ptr: number, len: number, call: string): Uint8Array {
    const buffer = this.#memory(call);
    if (ptr + len > buffer.byteLength) {
      throw new WasmTrapError(
        `${call}: the buffer [${ptr}, ${ptr + len}) is outside the module's memory ` +
          `(${buffer.byteLength} bytes)`,
      );
    }
    return new Uint8Array(buffer, ptr, len);
  }

  #readU32(ptr: number, call: string): number {
    const bytes = this.#slice(ptr >>> 0, 4, call);
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  }

  #writeU32(ptr: number, value: number, call: string): void {
    const bytes = this.#slice(ptr >>> 0, 4, call);
    new DataView(bytes.buffer, bytes.byteOffset, 4).setUint32(0, value >>> 0, true);
  }

  #writeU64(ptr: number, value: bigint, call: string): void {
    const bytes = this.#slice(ptr >>> 0, 8, call);
    new DataView(bytes.buffer, bytes.byteOffset, 8).setBigUint64(
      0,
      BigInt.asUintN(64, value),
      true,
    );
  }

  /** An ArrayBuffer of exactly `len` bytes holding a copy of module memory [ptr, ptr + len). */
  #scratchCopy(ptr: number, len: number, call: string): ArrayBuffer {
    // Bounds first: a length the memory cannot hold must not size a host allocation.
    const source = this.#slice(ptr >>> 0, len >>> 0, call);
    const buffer = this.#scratchOf(len >>> 0);
    new Uint8Array(buffer).set(source);
    return buffer;
  }

  #scratchOf(len: number): ArrayBuffer {
    if (len <= this.#scratch.maxByteLength) {
      this.#scratch.resize(len);
      return this.#scratch;
    }
    return new ArrayBuffer(len);
  }

  #string(ptr: number, len: number, call: string): string {
    return utf8Lossy.decode(this.#slice(ptr >>> 0, len >>> 0, call));
  }

  // --- the imports ------------------------------------------------------------------------

  #imports(): WebAssembly.Imports {
    const v20 = this.sys.v20 as Record<string, (...args: unknown[]) => unknown>;
    const v21 = this.sys.v21 as Record<string, (...args: unknown[]) => unknown>;
    /** Runs a syscall; its errno error becomes the return code, anything else traps. */
    const errno = (body: () => void): number => {
      try {
        body();
        return 0;
      } catch (error) {
        const code = errnoOf(error);
        if (code === undefined) throw error;
        return code;
      }
    };
    const rangeScan = (name: string, syscall: string) =>
    (
      index: number,
      prefixPtr: number,
      prefixLen: number,
      prefixElems: number,
      rstartPtr: number,
      rstartLen: number,
      rendPtr: number,
      rendLen: number,
      out: number,
    ) =>
      errno(() => {
        // Bounds first: lengths the memory cannot hold must not size a host allocation.
        const prefix = this.#slice(prefixPtr >>> 0, prefixLen >>> 0, name);
        const rstart = this.#slice(rstartPtr >>> 0, rstartLen >>> 0, name);
        const rend = this.#slice(rendPtr >>> 0, rendLen >>> 0, name);
        const buffer = this.#scratchOf(prefix.length + rstart.length + rend.length);
        const view = new Uint8Array(buffer);
        view.set(prefix, 0);
        view.set(rstart, prefix.length);
        view.set(rend, prefix.length + rstart.length);
        const result = v20[syscall](
          index >>> 0,
          buffer,
          prefixLen >>> 0,
          prefixElems & 0xffff,
          rstartLen >>> 0,
          rendLen >>> 0,
        ) as number;
        this.#writeU32(out, result, name);
      });
    /** insert / update: the row is written back with the generated columns. */
    const writeRow =
      (name: string, run: (buffer: ArrayBuffer, len: number) => number) =>
      (rowPtr: number, lenPtr: number) =>
        errno(() => {
          const len = this.#readU32(lenPtr, name);
          const buffer = this.#scratchCopy(rowPtr, len, name);
          const generated = run(buffer, len);
          this.#slice(rowPtr >>> 0, generated, name).set(new Uint8Array(buffer, 0, generated));
          this.#writeU32(lenPtr, generated, name);
        });

    const v10_0 = {
      table_id_from_name: (ptr: number, len: number, out: number) =>
        errno(() => {
          const id = v20.table_id_from_name(this.#string(ptr, len, "table_id_from_name"));
          this.#writeU32(out, id as number, "table_id_from_name");
        }),
      index_id_from_name: (ptr: number, len: number, out: number) =>
        errno(() => {
          const id = v20.index_id_from_name(this.#string(ptr, len, "index_id_from_name"));
          this.#writeU32(out, id as number, "index_id_from_name");
        }),
      datastore_table_row_count: (table: number, out: number) =>
        errno(() => {
          const count = v20.datastore_table_row_count(table >>> 0) as bigint;
          this.#writeU64(out, count, "datastore_table_row_count");
        }),
      datastore_table_scan_bsatn: (table: number, out: number) =>
        errno(() => {
          const iter = v20.datastore_table_scan_bsatn(table >>> 0) as number;
          this.#writeU32(out, iter, "datastore_table_scan_bsatn");
        }),
      datastore_index_scan_range_bsatn: rangeScan(
        "datastore_index_scan_range_bsatn",
        "datastore_index_scan_range_bsatn",
      ),
      datastore_btree_scan_bsatn: rangeScan(
        "datastore_btree_scan_bsatn",
        "datastore_index_scan_range_bsatn",
      ),
      datastore_delete_by_index_scan_range_bsatn: rangeScan(
        "datastore_delete_by_index_scan_range_bsatn",
        "datastore_delete_by_index_scan_range_bsatn",
      ),
      datastore_delete_by_btree_scan_bsatn: rangeScan(
        "datastore_delete_by_btree_scan_bsatn",
        "datastore_delete_by_index_scan_range_bsatn",
      ),
      datastore_delete_all_by_eq_bsatn: (table: number, ptr: number, len: number, out: number) =>
        errno(() => {
          const name = "datastore_delete_all_by_eq_bsatn";
          const buffer = this.#scratchCopy(ptr, len, name);
          const count = v20.datastore_delete_all_by_eq_bsatn(table >>> 0, buffer, len >>> 0);
          this.#writeU32(out, count as number, name);
        }),
      row_iter_bsatn_advance: (iter: number, bufPtr: number, lenPtr: number): number => {
        const name = "row_iter_bsatn_advance";
        const capacity = this.#readU32(lenPtr, name);
        this.#slice(bufPtr >>> 0, capacity, name); // bounds
        const buffer = this.#scratchOf(Math.min(capacity, this.#scratch.maxByteLength));
        let result: number;
        try {
          result = v20.row_iter_bsatn_advance(iter >>> 0, buffer) as number;
        } catch (error) {
          const tooSmall = (error as { __buffer_too_small__?: number })?.__buffer_too_small__;
          if (typeof tooSmall === "number") {
            this.#writeU32(lenPtr, tooSmall, name);
            return BUFFER_TOO_SMALL;
          }
          const code = errnoOf(error);
          if (code === undefined) throw error;
          return code;
        }
        const written = Math.abs(result);
        this.#slice(bufPtr >>> 0, written, name).set(new Uint8Array(buffer, 0, written));
        this.#writeU32(lenPtr, written, name);
        // Negative (or zero): the iterator is exhausted and gone.
        return result > 0 ? 0 : -1;
      },
      row_iter_bsatn_close: (iter: number) =>
        errno(() => {
          v20.row_iter_bsatn_close(iter >>> 0);
        }),
      datastore_insert_bsatn: (table: number, rowPtr: number, lenPtr: number) =>
        writeRow(
          "datastore_insert_bsatn",
          (buffer, len) => v20.datastore_insert_bsatn(table >>> 0, buffer, len) as number,
        )(rowPtr, lenPtr),
      datastore_update_bsatn: (table: number, index: number, rowPtr: number, lenPtr: number) =>
        writeRow(
          "datastore_update_bsatn",
          (buffer, len) =>
            v20.datastore_update_bsatn(table >>> 0, index >>> 0, buffer, len) as number,
        )(
          rowPtr,
          lenPtr,
        ),
      volatile_nonatomic_schedule_immediate: (
        namePtr: number,
        nameLen: number,
        argsPtr: number,
        argsLen: number,
      ) => {
        const name = "volatile_nonatomic_schedule_immediate";
        const reducer = this.#string(namePtr, nameLen, name);
        v20.volatile_nonatomic_schedule_immediate(
          reducer,
          this.#slice(argsPtr >>> 0, argsLen >>> 0, name).slice(),
        );
      },
      bytes_sink_write: (sinkId: number, ptr: number, lenPtr: number): number => {
        const name = "bytes_sink_write";
        const sink = this.#sinks.get(sinkId >>> 0);
        if (sink === undefined) return NO_SUCH_BYTES;
        const len = this.#readU32(lenPtr, name);
        if (sink.bytes + len > SINK_BYTES_MAX) return NO_SPACE;
        sink.chunks.push(this.#slice(ptr >>> 0, len, name).slice());
        sink.bytes += len;
        return 0;
      },
      bytes_source_read: (sourceId: number, ptr: number, lenPtr: number): number => {
        const name = "bytes_source_read";
        const source = this.#sources.get(sourceId >>> 0);
        if (source === undefined) return NO_SUCH_BYTES;
        const capacity = this.#readU32(lenPtr, name);
        const n = Math.min(capacity, source.bytes.length - source.at);
        this.#slice(ptr >>> 0, n, name).set(source.bytes.subarray(source.at, source.at + n));
        source.at += n;
        this.#writeU32(lenPtr, n, name);
        if (source.at < source.bytes.length) return 0;
        this.#sources.delete(sourceId >>> 0);
        return -1;
      },
      console_log: (
        level: number,
        _targetPtr: number,
        _targetLen: number,
        _filePtr: number,
        _fileLen: number,
        _line: number,
        messagePtr: number,
        messageLen: number,
      ) => {
        const len = messageLen >>> 0;
        const kept = Math.min(len, LOG_MESSAGE_BYTES_MAX);
        let message = this.#string(messagePtr, kept, "console_log");
        if (kept < len) message += `… [${len - kept} bytes truncated]`;
        v20.console_log(level & 0xff, message);
      },
      console_timer_start: (ptr: number, len: number): number =>
        v20.console_timer_start(this.#string(ptr, len, "console_timer_start")) as number,
      console_timer_end: (id: number) =>
        errno(() => {
          v20.console_timer_end(id >>> 0);
        }),
      identity: (out: number) => {
        const id = BigInt.asUintN(256, v20.identity() as bigint);
        const bytes = this.#slice(out >>> 0, 32, "identity");
        for (let i = 0; i < 32; i++) bytes[i] = Number((id >> BigInt(8 * i)) & 0xffn);
      },
    };
    const v10_1 = {
      bytes_source_remaining_length: (sourceId: number, out: number): number => {
        const source = this.#sources.get(sourceId >>> 0);
        if (source === undefined) return NO_SUCH_BYTES;
        this.#writeU32(out, source.bytes.length - source.at, "bytes_source_remaining_length");
        return 0;
      },
    };
    const v10_2 = {
      get_jwt: (connectionIdPtr: number, out: number) =>
        errno(() => {
          const bytes = this.#slice(connectionIdPtr >>> 0, 16, "get_jwt");
          let connectionId = 0n;
          for (let i = 15; i >= 0; i--) connectionId = (connectionId << 8n) | BigInt(bytes[i]);
          const payload = v20.get_jwt_payload(connectionId) as Uint8Array;
          const source = payload.length > 0 ? this.#newSource(payload.slice()) : 0;
          this.#writeU32(out, source, "get_jwt");
        }),
    };
    const v10_3 = {
      procedure_sleep_until: (): bigint => {
        throw new WasmTrapError("procedure_sleep_until: wasm modules cannot run procedures yet");
      },
      procedure_start_mut_tx: (out: number) =>
        errno(() => {
          const micros = v20.procedure_start_mut_tx() as bigint;
          this.#writeU64(out, micros, "procedure_start_mut_tx");
        }),
      procedure_commit_mut_tx: () =>
        errno(() => {
          v20.procedure_commit_mut_tx();
        }),
      procedure_abort_mut_tx: () =>
        errno(() => {
          v20.procedure_abort_mut_tx();
        }),
      procedure_http_request: () =>
        errno(() => {
          v20.procedure_http_request();
        }),
    };
    const pointCall =
      (name: string, syscall: string) => (index: number, ptr: number, len: number, out: number) =>
        errno(() => {
          const buffer = this.#scratchCopy(ptr, len, name);
          const result = v20[syscall](index >>> 0, buffer, len >>> 0) as number;
          this.#writeU32(out, result, name);
        });
    const v10_4 = {
      datastore_index_scan_point_bsatn: pointCall(
        "datastore_index_scan_point_bsatn",
        "datastore_index_scan_point_bsatn",
      ),
      datastore_delete_by_index_scan_point_bsatn: pointCall(
        "datastore_delete_by_index_scan_point_bsatn",
        "datastore_delete_by_index_scan_point_bsatn",
      ),
    };
    const v10_5 = {
      datastore_clear: (table: number, out: number) =>
        errno(() => {
          const count = v21.datastore_clear(table >>> 0) as bigint;
          this.#writeU64(out, count, "datastore_clear");
        }),
    };
    return {
      "spacetime_10.0": v10_0,
      "spacetime_10.1": v10_1,
      "spacetime_10.2": v10_2,
      "spacetime_10.3": v10_3,
      "spacetime_10.4": v10_4,
      "spacetime_10.5": v10_5,
    };
  }
}
