// Test harness run inside a `permissions: "none"` Worker by worker/sandbox_globals_test.ts and
// worker/instrument_test.ts. It installs the sandbox globals with a real budget, then runs
// tenant-like modules sent as source text and reports how each call ended.
import { createBudget, isBudgetExceededError } from "../budget.ts";
import { instrumentModule } from "../instrument.ts";
import { installRunawayProtection } from "../sandbox_globals.ts";
import { SYS_2_0_EXPORTS } from "../module_loader.ts";

export type HarnessRequest =
  | { id: number; op: "run"; source: string; instrument: boolean; budgetMs: number }
  | { id: number; op: "probe"; source: string }
  | { id: number; op: "reach" }
  | {
    id: number;
    op: "describe";
    source: string;
    instrument: boolean;
    /** Each reducer's budget (a reducer expected to finish gets one no loaded machine outlasts). */
    reducers: { name: string; args: Uint8Array; budgetMs: number }[];
  };

export interface CallOutcome {
  ok: boolean;
  value?: unknown;
  errorName?: string;
  errorMessage?: string;
  budgetError: boolean;
  exceeded: boolean;
  elapsedMs: number;
}

export type HarnessResponse =
  | { id: number; op: "run"; outcome: CallOutcome }
  | { id: number; op: "probe"; value: unknown; error?: string }
  | { id: number; op: "reach"; visited: number; found: string[] }
  | {
    id: number;
    op: "describe";
    describe: Uint8Array;
    outcomes: Record<string, CallOutcome>;
    exportNames: string[];
  }
  | { id: number; op: "error"; message: string };

interface WorkerScope {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent<HarnessRequest>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;
const post = scope.postMessage.bind(scope);
const now = performance.now.bind(performance);
const clock = { monotonicMs: now };
const setTimeoutFn = setTimeout;
const createObjectUrl = URL.createObjectURL.bind(URL);
const BlobClass = Blob;
// Everything that compiles or runs code without ticks, captured before the sandbox hides it.
const forbidden = new Map<unknown, string>();
forbidden.set(Function, "Function");
forbidden.set(Object.getPrototypeOf(async function () {}).constructor, "AsyncFunction");
forbidden.set(Object.getPrototypeOf(function* () {}).constructor, "GeneratorFunction");
forbidden.set(Object.getPrototypeOf(async function* () {}).constructor, "AsyncGeneratorFunction");
forbidden.set(globalThis.eval, "eval");
forbidden.set(Atomics.wait, "Atomics.wait");
const denoGlobal = (globalThis as { Deno?: Record<symbol, { core?: unknown }> }).Deno;
forbidden.set(denoGlobal, "Deno");
const denoInternal = (denoGlobal as unknown as { internal: symbol }).internal;
forbidden.set(denoGlobal?.[denoInternal]?.core, "Deno core");
forbidden.set((globalThis as { Worker?: unknown }).Worker, "Worker");
forbidden.set((globalThis as { WebAssembly?: unknown }).WebAssembly, "WebAssembly");
// Running without the sandbox (`?plain`) gives the reference behaviour for comparisons.
const sandboxed = !new URL(import.meta.url).searchParams.has("plain");
const { budget, tickName } = sandboxed
  ? installRunawayProtection({
    clock,
    ambientBudgetMs: 200,
    scheduleReset: (callback) => setTimeoutFn(callback, 0),
  })
  : { budget: createBudget(clock), tickName: "__lc_tick_unused" };

/** Walks properties, accessors and prototypes from globalThis and tenant-creatable values. */
function reach(): { visited: number; found: string[] } {
  const roots: unknown[] = [
    globalThis,
    async function () {},
    function* () {},
    async function* () {},
    class {},
    (() => {}).bind(null),
    Promise.resolve(),
    /x/g,
    new Error("x"),
    [].values(),
    new Map().entries(),
    (function* () {})(),
    (async function* () {})(),
    new Uint8Array(1),
    new WeakRef({}),
    new FinalizationRegistry(() => {}),
    new DisposableStack(),
    new Intl.DateTimeFormat(),
    "".matchAll(/x/g),
  ];
  const seen = new Set<unknown>();
  const found = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const value = queue.pop();
    if ((typeof value !== "object" && typeof value !== "function") || value === null) continue;
    if (seen.has(value)) continue;
    seen.add(value);
    const name = forbidden.get(value);
    if (name !== undefined) found.add(name);
    queue.push(Object.getPrototypeOf(value));
    for (const key of Reflect.ownKeys(value)) {
      let descriptor: PropertyDescriptor | undefined;
      try {
        descriptor = Object.getOwnPropertyDescriptor(value, key);
      } catch {
        continue;
      }
      if (descriptor === undefined) continue;
      queue.push(descriptor.value, descriptor.get, descriptor.set);
    }
  }
  return { visited: seen.size, found: [...found] };
}

// Unhandled rejections from runaway microtasks must not close the worker.
globalThis.addEventListener("unhandledrejection", (event) => event.preventDefault());

function importSource(source: string): Promise<Record<string, unknown>> {
  const url = createObjectUrl(new BlobClass([source], { type: "text/javascript" }));
  return import(url);
}

/**
 * Module loading (import, `__describe_module__`, a probe) runs under this budget rather than the
 * 200 ms ambient guard, as the real host loads under MODULE_LOAD_TIMEOUT_MS: evaluating the
 * spacetimedb bundle's top level can take longer than 200 ms on a loaded machine.
 */
const LOAD_BUDGET_MS = 60_000;

async function loading<T>(load: () => Promise<T>): Promise<T> {
  budget.start(LOAD_BUDGET_MS);
  try {
    return await load();
  } finally {
    budget.stop();
  }
}

async function timed(run: () => unknown, budgetMs: number): Promise<CallOutcome> {
  const startedMs = now();
  budget.start(budgetMs);
  try {
    let value = run();
    if (value instanceof Promise) value = await value;
    return { ok: true, value, budgetError: false, exceeded: false, elapsedMs: now() - startedMs };
  } catch (error) {
    const e = error as { name?: unknown; message?: unknown };
    return {
      ok: false,
      errorName: String(e?.name),
      errorMessage: String(e?.message),
      budgetError: isBudgetExceededError(error),
      exceeded: budget.exceeded,
      elapsedMs: now() - startedMs,
    };
  } finally {
    budget.stop();
  }
}

function shimUrl(names: readonly string[], withHooks: boolean): string {
  // Id lookups and logging answer trivially; anything touching data throws.
  const lines = names.map((name) =>
    /_id_from_name$|^console_/.test(name)
      ? `export function ${name}() { return 0; }`
      : `export function ${name}() { throw new Error("syscall ${name} is not available in tests"); }`
  );
  if (withHooks) lines.push(`export const moduleHooks = Symbol.for("SpacetimeDB.moduleHooks.v2");`);
  return `data:text/javascript,${encodeURIComponent(lines.join("\n"))}`;
}

async function describe(
  request: Extract<HarnessRequest, { op: "describe" }>,
): Promise<HarnessResponse> {
  let source = request.instrument ? instrumentModule(request.source, { tickName }) : request.source;
  source = source
    .replaceAll(`"spacetime:sys@2.0"`, JSON.stringify(shimUrl(SYS_2_0_EXPORTS, true)))
    .replaceAll(`"spacetime:sys@2.1"`, JSON.stringify(shimUrl(["datastore_clear"], false)));
  const { ns, hooks, describeBytes } = await loading(async () => {
    const ns = await importSource(source);
    const schema = ns.default as Record<symbol, (ns: unknown) => Record<string, unknown>>;
    const hooks = schema[Symbol.for("SpacetimeDB.moduleHooks.v2")](ns);
    const describeHook = hooks.__describe_module__ as () => Uint8Array;
    return { ns, hooks, describeBytes: describeHook.call(hooks) };
  });
  const exportNames = Object.keys(ns).filter((name) => name !== "default");
  const outcomes: Record<string, CallOutcome> = {};
  const callReducer = hooks.__call_reducer__ as (...args: unknown[]) => void;
  for (const reducer of request.reducers) {
    const reducerId = exportNames.indexOf(reducer.name);
    const view = new DataView(reducer.args.buffer, reducer.args.byteOffset, reducer.args.length);
    outcomes[reducer.name] = await timed(
      () => callReducer.call(hooks, reducerId, 0n, 0n, 0n, view),
      reducer.budgetMs,
    );
  }
  return { id: request.id, op: "describe", describe: describeBytes, outcomes, exportNames };
}

async function handle(request: HarnessRequest): Promise<HarnessResponse> {
  switch (request.op) {
    case "run": {
      const source = request.instrument
        ? instrumentModule(request.source, { tickName })
        : request.source;
      const ns = await loading(() => importSource(source));
      const run = ns.run as () => unknown;
      return { id: request.id, op: "run", outcome: await timed(run, request.budgetMs) };
    }
    case "probe": {
      // Runs instrumented source whose `probe()` returns a structured-clonable value.
      const ns = await loading(() => importSource(instrumentModule(request.source, { tickName })));
      try {
        const value = await loading(async () => await (ns.probe as () => unknown)());
        return { id: request.id, op: "probe", value };
      } catch (error) {
        return { id: request.id, op: "probe", value: undefined, error: String(error) };
      }
    }
    case "describe":
      return await describe(request);
    case "reach":
      return { id: request.id, op: "reach", ...reach() };
  }
}

scope.onmessage = async (event: MessageEvent<HarnessRequest>) => {
  try {
    post(await handle(event.data));
  } catch (error) {
    post({ id: event.data.id, op: "error", message: String((error as Error)?.stack ?? error) });
  }
};
post({ id: 0, op: "ready" });
