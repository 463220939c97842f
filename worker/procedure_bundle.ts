/**
 * The procedure thread's code as one script (server side): a database process starts its first
 * procedure thread from our files while it may still read them, and every later one of its pool
 * (worker/procedures.ts) from this script, which it asks the server for once
 * (`thread-code-request`), since by then it can read nothing. Bundled with `deno bundle` on
 * first use and kept for the server's lifetime (~0.4 s, ~260 KB).
 */
import { log } from "../lib/log.ts";

const THREAD_ENTRY = new URL("./procedure_thread.ts", import.meta.url);
/** lib/host_paths.ts finds the host's code directory from its own URL; a blob: URL has none. */
const HOST_PATHS_URL = new URL("../lib/host_paths.ts", import.meta.url).href;
const REPO_ROOT = new URL("..", import.meta.url);

let cached: Promise<string> | undefined;

/** The bundled thread code (one bundle per server, shared by every database). */
export function procedureThreadSource(): Promise<string> {
  cached ??= bundle().catch((error) => {
    cached = undefined;
    throw error;
  });
  return cached;
}

async function bundle(): Promise<string> {
  const started = performance.now();
  const directory = await Deno.makeTempDir({ prefix: "lightcone-procedure-thread-" });
  const output = `${directory}/procedure_thread.js`;
  try {
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "deno", "-o", output, THREAD_ENTRY.pathname],
      cwd: REPO_ROOT.pathname,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(
        `bundling the procedure thread failed: ${new TextDecoder().decode(result.stderr).trim()}`,
      );
    }
    const source = await Deno.readTextFile(output);
    // The one use of import.meta.url in the thread's graph is lib/host_paths.ts's: it gets the
    // URL that module has on disk, so stacks are cleaned of host paths as in the first thread.
    const uses = source.split("import.meta.url").length - 1;
    if (uses !== 1) {
      throw new Error(
        `the procedure thread bundle uses import.meta.url ${uses} times; expected 1 (lib/host_paths.ts)`,
      );
    }
    log.info("procedure thread bundled", {
      bytes: source.length,
      durationMs: Math.round(performance.now() - started),
    });
    return source.replace("import.meta.url", JSON.stringify(HOST_PATHS_URL));
  } finally {
    await Deno.remove(directory, { recursive: true }).catch(() => {});
  }
}
