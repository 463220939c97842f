/** The CLI, for main.ts: `runCli(Deno.args.slice(...))` returns the process exit code. */
export { runCli } from "./main.ts";
export type { RunCliOptions } from "./main.ts";
export { captureIo, type CliIo, terminalIo } from "./io.ts";
