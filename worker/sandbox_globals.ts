/**
 * Globals a database worker installs before it loads a tenant bundle, so that code generated at
 * run time is instrumented like the bundle itself (worker/instrument.ts) and nothing reachable
 * from tenant code can compile or run code without tick calls.
 *
 * Call once, inside the worker, after the host has captured every global it still needs
 * (postMessage, console, Atomics.wait, Deno.memoryUsage...) and before importing the bundle.
 * Installing mutates the realm for good: never call it on the main thread or in a test process.
 */
import { type Budget, createBudget, type MonotonicClock } from "./budget.ts";
import {
  type FunctionKind,
  type FunctionParts,
  importNameFor,
  instrumentFunctionParts,
  instrumentModule,
  instrumentScript,
} from "./instrument.ts";

/** Rewrites dynamically generated code; the default uses worker/instrument.ts. */
export interface DynamicCodeInstrumenter {
  /** Code given to `eval`. */
  script(source: string): string;
  /** Parameters and body given to Function / AsyncFunction / GeneratorFunction / ... */
  functionParts(kind: FunctionKind, parts: FunctionParts): FunctionParts;
}

export interface SandboxGlobalsOptions {
  /** Global name the instrumented code calls; random per load, e.g. randomTickName(). */
  tickName: string;
  /** The budget's tick function (worker/budget.ts). */
  tick: () => void;
  instrument?: DynamicCodeInstrumenter;
  /** Globals deleted because they run code that instrumentation cannot reach. */
  removeGlobals?: readonly string[];
}

/**
 * Deleted by default, each because it runs code the tick calls cannot reach:
 * `Deno` (Deno[Deno.internal].core.evalContext / compileFunction), `process`
 * (process.getBuiltinModule("node:vm")), `Buffer` (a lazy node getter that breaks once Deno is
 * gone), `Worker` (a nested worker runs an uninstrumented blob on its own thread),
 * `WebAssembly` (wasm loops have no ticks). The real SpacetimeDB host has none of these except
 * possibly WebAssembly.
 */
export const RUNAWAY_GLOBALS: readonly string[] = [
  "process",
  "Buffer",
  "Deno",
  "Worker",
  "WebAssembly",
];

/** Error text of the real host's Math.random getter (module-abi.md §1.3). */
export const MATH_RANDOM_MESSAGE =
  "Math.random is not available in SpacetimeDB modules. Use ctx.random instead.";

/** A fresh tick name such as `__lc_tick_3f9a...`, unguessable by tenant source. */
export function randomTickName(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `__lc_tick_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Installs the tick global, instrumenting code constructors and eval, and the removals. */
export function installSandboxGlobals(options: SandboxGlobalsOptions): void {
  const { tickName, tick } = options;
  const importName = importNameFor(tickName);
  const instrument = options.instrument ?? defaultInstrumenter(tickName);

  // Capture everything used at call time, so later tenant patches cannot reach it.
  const defineProperty = Object.defineProperty;
  const getPrototypeOf = Object.getPrototypeOf;
  const setPrototypeOf = Object.setPrototypeOf;
  const freeze = Object.freeze;
  const construct = Reflect.construct;
  const apply = Reflect.apply;
  const promiseReject = Promise.reject.bind(Promise);
  const originalEval = globalThis.eval;
  const originals: Record<FunctionKind, FunctionConstructor> = {
    normal: Function,
    async: getPrototypeOf(async function () {}).constructor,
    generator: getPrototypeOf(function* () {}).constructor,
    asyncGenerator: getPrototypeOf(async function* () {}).constructor,
  };

  const locked = { writable: false, enumerable: false, configurable: false };
  defineProperty(globalThis, tickName, { ...locked, value: tick });
  defineProperty(globalThis, importName, {
    ...locked,
    value: freeze(function blockedImport(specifier: unknown): Promise<never> {
      tick();
      let text: string;
      try {
        text = `${specifier}`;
      } catch (error) {
        return promiseReject(error);
      }
      return promiseReject(new TypeError(`Could not find module "${text}"`));
    }),
  });

  function toText(value: unknown): string {
    return `${value}`;
  }

  const wrappers = {} as Record<FunctionKind, FunctionConstructor>;
  for (const kind of ["normal", "async", "generator", "asyncGenerator"] as const) {
    const original = originals[kind];
    const wrapper = function (this: unknown, ...args: unknown[]): unknown {
      // ToString in argument order, as the engine does; no tenant-patchable array methods.
      let params = "";
      for (let i = 0; i < args.length - 1; i++) params += (i > 0 ? "," : "") + toText(args[i]);
      const body = args.length > 0 ? toText(args[args.length - 1]) : "";
      const parts = instrument.functionParts(kind, { params, body });
      const newTarget = new.target === undefined || new.target === wrapper ? original : new.target;
      return construct(original, [parts.params, parts.body], newTarget);
    } as unknown as FunctionConstructor;
    defineProperty(wrapper, "name", { value: original.name, configurable: true });
    defineProperty(wrapper, "length", { value: 1, configurable: true });
    defineProperty(wrapper, "prototype", { value: original.prototype, writable: false });
    wrappers[kind] = wrapper;
  }
  // %AsyncFunction%.[[Prototype]] is %Function%; point at the wrapper, not the original.
  for (const kind of ["async", "generator", "asyncGenerator"] as const) {
    setPrototypeOf(wrappers[kind], wrappers.normal);
  }
  for (const kind of ["normal", "async", "generator", "asyncGenerator"] as const) {
    defineProperty(originals[kind].prototype, "constructor", { ...locked, value: wrappers[kind] });
    freeze(wrappers[kind]);
  }
  defineProperty(globalThis, "Function", { ...locked, value: wrappers.normal });

  const evalWrapper = freeze(
    {
      eval(source: unknown): unknown {
        if (typeof source !== "string") return source;
        // An indirect call: global scope, like any eval that is not the %eval% intrinsic.
        return apply(originalEval, undefined, [instrument.script(source)]);
      },
    }.eval,
  );
  defineProperty(globalThis, "eval", { ...locked, value: evalWrapper });

  defineProperty(Math, "random", {
    get(): never {
      throw new TypeError(MATH_RANDOM_MESSAGE);
    },
    enumerable: false,
    configurable: true,
  });

  const atomicsWait = (Atomics as { wait?: unknown }).wait;
  if (typeof atomicsWait === "function") {
    // A wait on a buffer no one else holds blocks the thread with no tick to stop it.
    defineProperty(Atomics, "wait", {
      ...locked,
      value: freeze(function wait(): never {
        throw new TypeError("Atomics.wait is not available in SpacetimeDB modules");
      }),
    });
  }

  for (const name of options.removeGlobals ?? RUNAWAY_GLOBALS) {
    // Deleting, not reading: some (process, Buffer) are lazy getters that throw without Deno.
    if (!Reflect.deleteProperty(globalThis, name)) {
      throw new Error(`Could not remove global "${name}" from the sandbox`);
    }
  }
}

function defaultInstrumenter(tickName: string): DynamicCodeInstrumenter {
  const options = { tickName };
  return {
    script: (source) => instrumentScript(source, options),
    functionParts: (kind, parts) => instrumentFunctionParts(kind, parts, options),
  };
}

export interface RunawayProtectionOptions {
  clock: MonotonicClock;
  /** Runs a callback at the next macrotask; capture setTimeout before tenant code can patch it. */
  scheduleReset(callback: () => void): void;
  /** Budget for tenant code running outside any started call (microtasks, finalizers). */
  ambientBudgetMs: number;
  removeGlobals?: readonly string[];
  /** The tick name a prepared bundle was instrumented for (default: a fresh random one). */
  tickName?: string;
}

/** What randomTickName() returns; a prepared bundle's tick name must look like this. */
export const TICK_NAME_PATTERN = /^__lc_tick_[0-9a-f]{24}$/;

/** Everything a database worker needs: a budget, and the bundle instrumenter for its tick. */
export interface RunawayProtection {
  tickName: string;
  budget: Budget;
  /** Instruments the tenant bundle for this worker's tick name (parse + edit, ~60-170 ms). */
  instrumentBundle(source: string): string;
}

/**
 * One-call setup inside a database worker: random tick name, budget with an ambient guard,
 * sandbox globals installed. Call after capturing host globals, before loading the bundle.
 */
export function installRunawayProtection(options: RunawayProtectionOptions): RunawayProtection {
  if (options.tickName !== undefined && !TICK_NAME_PATTERN.test(options.tickName)) {
    throw new TypeError(`Invalid tick name "${options.tickName.slice(0, 64)}"`);
  }
  const tickName = options.tickName ?? randomTickName();
  const budget = createBudget(options.clock, {
    ambient: { budgetMs: options.ambientBudgetMs, scheduleReset: options.scheduleReset },
  });
  installSandboxGlobals({ tickName, tick: budget.tick, removeGlobals: options.removeGlobals });
  return {
    tickName,
    budget,
    instrumentBundle: (source) => instrumentModule(source, { tickName }),
  };
}

/**
 * The global object a module sees, by name: what SpacetimeDB's own host gives a module (a bare
 * V8 context: the ECMAScript built-ins and Intl, plus TextEncoder, TextDecoder and console,
 * module-abi.md §1.3), and nothing of Deno's. Names listed but absent in this V8 are fine.
 * WebAssembly is left out until wasm modules are supported (its loops have no ticks).
 */
export const GLOBAL_ALLOW_LIST: readonly string[] = [
  // Value properties and functions of the global object (ECMA-262 §19.1-19.2, Annex B).
  "globalThis",
  "Infinity",
  "NaN",
  "undefined",
  "eval",
  "isFinite",
  "isNaN",
  "parseFloat",
  "parseInt",
  "decodeURI",
  "decodeURIComponent",
  "encodeURI",
  "encodeURIComponent",
  "escape",
  "unescape",
  // Constructors and namespaces (ECMA-262 §19.3-19.4, ECMA-402).
  "AggregateError",
  "Array",
  "ArrayBuffer",
  "AsyncDisposableStack",
  "Atomics",
  "BigInt",
  "BigInt64Array",
  "BigUint64Array",
  "Boolean",
  "DataView",
  "Date",
  "DisposableStack",
  "Error",
  "EvalError",
  "FinalizationRegistry",
  "Float16Array",
  "Float32Array",
  "Float64Array",
  "Function",
  "Int8Array",
  "Int16Array",
  "Int32Array",
  "Intl",
  "Iterator",
  "JSON",
  "Map",
  "Math",
  "Number",
  "Object",
  "Promise",
  "Proxy",
  "RangeError",
  "ReferenceError",
  "Reflect",
  "RegExp",
  "Set",
  "SharedArrayBuffer",
  "String",
  "SuppressedError",
  "Symbol",
  "SyntaxError",
  "TypeError",
  "Uint8Array",
  "Uint8ClampedArray",
  "Uint16Array",
  "Uint32Array",
  "URIError",
  "WeakMap",
  "WeakRef",
  "WeakSet",
  // What SpacetimeDB's host adds (module-abi.md §1.3).
  "TextEncoder",
  "TextDecoder",
  "console",
];

/**
 * Reachable besides GLOBAL_ALLOW_LIST, as reachableGlobals() names them: what Deno's runtime
 * needs on the global object to dispatch its own events (see enforceGlobalAllowList). They give
 * tenant code nothing: dispatchEvent only reaches listeners the host registered before loading.
 */
export const RUNTIME_REACHABLE: readonly string[] = ["dispatchEvent", "@@[[webidl.brand]]", "@@"];

/** Members of allowed namespaces removed anyway: they can only block the thread. */
const BLOCKING_MEMBERS: readonly [object, string][] = [
  [Atomics, "wait"],
  [Atomics, "waitAsync"],
];

/** Every global a module can reach by name: own keys of the global object and its prototypes. */
export function reachableGlobals(): string[] {
  const names = new Set<string>();
  for (
    let object: object | null = globalThis;
    object !== null;
    object = Object.getPrototypeOf(object)
  ) {
    if (object === Object.prototype) break;
    for (const key of Reflect.ownKeys(object)) {
      names.add(typeof key === "symbol" ? `@@${key.description ?? ""}` : key);
    }
  }
  return [...names].sort();
}

/**
 * Reduces the global object to GLOBAL_ALLOW_LIST plus `extra` (the instrumentation's own
 * names): every other own key of the global object, string or symbol, is deleted and the
 * global object's prototype chain is cut to Object.prototype (in Deno it runs through
 * Window.prototype and EventTarget.prototype). Host code must have captured what it still
 * needs. Returns the keys that could not be removed (expected: none).
 */
export function enforceGlobalAllowList(extra: readonly string[]): string[] {
  const allowed = new Set([...GLOBAL_ALLOW_LIST, ...extra]);
  const eventTarget = EventTarget.prototype as unknown as Record<PropertyKey, unknown>;
  // Deno's runtime dispatches its own events (load, unhandledrejection, error, unload) on the
  // global object: it calls globalThis.dispatchEvent, which checks the global's WebIDL brand
  // (a symbol-keyed slot, and EventTarget.prototype in the chain) and reads its listeners from
  // another symbol-keyed slot (a Symbol() without description). Those stay; without them an uncaught error in
  // tenant code would kill the process ("dispatchEvent is not a function") instead of being
  // reported to the host's listeners.
  const runtimeSlots = new Set(
    Object.getOwnPropertySymbols(globalThis).filter((key) =>
      key.description === "[[webidl.brand]]" || !key.description
    ),
  );
  const stuck: string[] = [];
  // Deno defines some globals twice (deleting queueMicrotask once reveals another one), so
  // delete until nothing outside the list is left.
  for (let pass = 0; pass < 8; pass++) {
    const extraKeys = Reflect.ownKeys(globalThis).filter((key) =>
      typeof key === "symbol" ? !runtimeSlots.has(key) : !allowed.has(key)
    );
    if (extraKeys.length === 0) break;
    for (const key of extraKeys) Reflect.deleteProperty(globalThis, key);
  }
  for (const key of Reflect.ownKeys(globalThis)) {
    if (typeof key === "symbol" ? !runtimeSlots.has(key) : !allowed.has(key)) {
      stuck.push(String(key));
    }
  }
  // The global's prototype chain (Window.prototype, EventTarget.prototype in Deno) stays, since
  // Deno's event dispatch relies on it, but is emptied of everything except dispatchEvent and
  // the WebIDL brands.
  for (
    let object = Object.getPrototypeOf(globalThis);
    object !== null && object !== Object.prototype;
    object = Object.getPrototypeOf(object)
  ) {
    for (const key of Reflect.ownKeys(object)) {
      if (object === eventTarget && key === "dispatchEvent") continue;
      if (typeof key === "symbol" && key.description === "[[webidl.brand]]") continue;
      if (!Reflect.deleteProperty(object, key)) stuck.push(`prototype ${String(key)}`);
    }
  }
  for (const [owner, name] of BLOCKING_MEMBERS) Reflect.deleteProperty(owner, name);
  return stuck;
}
