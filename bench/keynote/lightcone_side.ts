import type { RunOptions, SystemResult } from "./types.ts";
export function runLightcone(_options: RunOptions): Promise<SystemResult> {
  return Promise.reject(new Error("not yet"));
}
