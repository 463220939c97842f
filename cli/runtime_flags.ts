/**
 * The Deno flags the server process runs with: the one definition that `lightcone start`
 * (installed by cli/install.ts), `deno task start` and `deno task cli` share
 * (tests/e2e/global_cli_test.ts checks that deno.json's tasks carry exactly these).
 * `--unstable-worker-options` is not here: deno.json's `"unstable": ["worker-options"]`
 * turns it on for every command that uses the repo's config.
 */

/** V8 options of the server process: the regexp fallback engine for catastrophic backtracking. */
export const SERVER_V8_FLAGS = ["--enable-experimental-regexp-engine-on-excessive-backtracks"];

/** `deno run` flags of the server (and of the CLI, which is the same program). */
export const SERVER_DENO_FLAGS = ["-A", `--v8-flags=${SERVER_V8_FLAGS.join(",")}`];

/**
 * True when this process was started with SERVER_V8_FLAGS (Linux: read from
 * /proc/self/cmdline); undefined where that cannot be known.
 */
export function hasServerV8Flags(): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  let cmdline: string;
  try {
    cmdline = Deno.readTextFileSync("/proc/self/cmdline");
  } catch {
    return undefined;
  }
  const given = cmdline.split("\0").filter((a) => a.startsWith("--v8-flags="))
    .flatMap((a) => a.slice("--v8-flags=".length).split(","));
  return SERVER_V8_FLAGS.every((flag) => given.includes(flag));
}
