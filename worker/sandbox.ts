/**
 * Sets up the tenant sandbox inside a database worker, before the bundle loads:
 * deadline checks injected into the bundle and into code generated at run time
 * (worker/instrument.ts), a sticky per-call time budget (worker/budget.ts), and the
 * locked-down globals of worker/sandbox_globals.ts (no Deno, no Math.random, no
 * nested workers, no WebAssembly).
 */
import { isBudgetExceededError } from "./budget.ts";
import type { CallBudget } from "./engine.ts";
import { ModuleLoadError } from "./module_loader.ts";
import { importNameFor } from "./instrument.ts";
import { isWasmBundle } from "../wasm/mod.ts";
import { enforceGlobalAllowList, installRunawayProtection } from "./sandbox_globals.ts";

/** Time tenant code may run outside any call (microtasks, finalizers) before it is stopped. */
const AMBIENT_BUDGET_MS = 1000;

export interface PreparedSandbox {
  /** The instrumented bundle source to load. */
  source: string;
  /** The global the instrumented source calls (random per prepared bundle). */
  tickName: string;
  budget: CallBudget;
}

/**
 * Installs the sandbox and instruments `bundle`. Host code must have captured any
 * global it needs later (postMessage, setTimeout...) before calling this.
 */
export function prepareSandbox(
  bundle: string,
  host: {
    setTimeout: typeof setTimeout;
    monotonicMs: () => number;
    /** Arms the process watchdog for an outermost call (worker/isolation.ts). */
    arm?: (budgetMs: number, nowMs?: number) => void;
    disarm?: () => void;
  },
  /** The bundle already instrumented by an earlier process (skips the parse). */
  prepared?: { source: string; tickName: string },
): PreparedSandbox {
  const protection = installRunawayProtection({
    clock: { monotonicMs: host.monotonicMs },
    ambientBudgetMs: AMBIENT_BUDGET_MS,
    scheduleReset: (callback) => host.setTimeout(callback, 0),
    tickName: prepared?.tickName,
  });
  const budget = protection.budget;
  let source: string;
  try {
    // A WebAssembly module has no JavaScript to instrument (its loops are stopped by the
    // process watchdog, worker/isolation.ts).
    source = prepared
      ? prepared.source
      : isWasmBundle(bundle)
      ? bundle
      : protection.instrumentBundle(bundle);
  } catch (error) {
    throw new ModuleLoadError(
      `The module is not valid JavaScript: ${error instanceof Error ? error.message : error}`,
    );
  }
  const stuck = enforceGlobalAllowList([
    protection.tickName,
    importNameFor(protection.tickName),
  ]);
  if (stuck.length > 0) {
    throw new Error(`The sandbox could not remove these globals: ${stuck.join(", ")}`);
  }
  const arm = host.arm;
  const disarm = host.disarm;
  return {
    source,
    tickName: protection.tickName,
    budget: {
      start: (budgetMs, nowMs) => {
        if (budget.depth === 0) arm?.(budgetMs, nowMs);
        budget.start(budgetMs, nowMs);
      },
      stop: (nowMs) => {
        const exceeded = budget.stop(nowMs);
        if (budget.depth === 0) disarm?.();
        return exceeded;
      },
      isExceeded: (error) => isBudgetExceededError(error),
    },
  };
}
