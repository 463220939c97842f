/**
 * Gets a module's definition from its bundle, as `spacetime generate` does with
 * `extract-schema`: the bundle runs in a child `deno` process with no permissions
 * beyond reading its own temporary folder, its `spacetime:sys@*` imports replaced by
 * stand-ins that refuse every syscall, and the `__describe_module__` hook's bytes
 * (BSATN RawModuleDef) come back on stdout as hex. A WebAssembly module (describeWasmFile) runs
 * in a child process of its own too, loaded by the server's wasm host (wasm/describe.ts).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CliError } from "./errors.ts";
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../protocol/mod.ts";
import { wasmDescribeEntry } from "../wasm/mod.ts";
import { fromHex } from "../lib/bytes.ts";
import { canLimitData, dataSegmentBytes, setDataLimit } from "../lib/process_limits.ts";
import {
  DATABASE_MEMORY_MB_DEFAULT,
  MODULE_BYTES_MAX,
  MODULE_LOAD_TIMEOUT_MS,
} from "../lib/limits.ts";

const DESCRIBE_TIMEOUT_MS = 60_000;
const MODULE_HOOKS_SYMBOL_KEY = "SpacetimeDB.moduleHooks.v2";
const SYS_IMPORT =
  /\bimport\s*(\*\s*as\s+[\w$]+|\{[^}]*\})\s*from\s*(["'])spacetime:sys@(\d+\.\d+)\2/g;
/**
 * The host ABI's functions (module-abi.md): the library reads some of them off a
 * namespace import while it loads, so every one needs a stand-in.
 */
const SYSCALLS: Record<string, readonly string[]> = {
  "2.0": SYS_2_0_EXPORTS,
  "2.1": SYS_2_1_EXPORTS,
};

function shimSource(names: Set<string>): string {
  const lines: string[] = [];
  for (const name of [...names].sort()) {
    if (name === "moduleHooks") {
      lines.push(
        `export const moduleHooks = Symbol.for(${JSON.stringify(MODULE_HOOKS_SYMBOL_KEY)});`,
      );
    } else if (name.startsWith("console_")) {
      lines.push(`export function ${name}() { return 0; }`);
    } else {
      lines.push(
        `export function ${name}() { throw new Error("syscall ${name} is not available while describing a module"); }`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** Rewrites `spacetime:sys@M.m` imports to local shim files; returns the shims to write. */
export function rewriteSysImports(source: string): { source: string; shims: Map<string, string> } {
  const namesByVersion = new Map<string, Set<string>>();
  const rewritten = source.replace(
    SYS_IMPORT,
    (_match, clause: string, _quote: string, version: string) => {
      const names = namesByVersion.get(version) ?? new Set(SYSCALLS[version] ?? []);
      namesByVersion.set(version, names);
      if (clause.startsWith("{")) {
        for (const part of clause.slice(1, -1).split(",")) {
          const name = part.trim().split(/\s+as\s+/)[0];
          if (/^[\w$]+$/.test(name)) names.add(name);
        }
      }
      return `import ${clause} from "./sys_${version.replace(".", "_")}.js"`;
    },
  );
  const shims = new Map<string, string>();
  for (const [version, names] of namesByVersion) {
    if (version === "2.0") names.add("moduleHooks");
    shims.set(`sys_${version.replace(".", "_")}.js`, shimSource(names));
  }
  return { source: rewritten, shims };
}

const DRIVER = `
const out = Deno.stdout;
const fail = (message) => { out.writeSync(new TextEncoder().encode("ERROR " + message)); Deno.exit(3); };
let ns;
try {
  ns = await import("./bundle.js");
} catch (e) {
  fail("the bundle threw while loading: " + (e?.stack ?? e));
}
const factory = ns.default?.[Symbol.for(${JSON.stringify(MODULE_HOOKS_SYMBOL_KEY)})];
if (typeof factory !== "function") {
  fail("the bundle's default export is not a schema (export default schema({...}))");
}
let bytes;
try {
  bytes = factory.call(ns.default, ns).__describe_module__();
} catch (e) {
  fail("__describe_module__ threw: " + (e?.stack ?? e));
}
if (!(bytes instanceof Uint8Array)) fail("__describe_module__ did not return bytes");
let hex = "";
for (const b of bytes) hex += b.toString(16).padStart(2, "0");
out.writeSync(new TextEncoder().encode("OK " + hex));
`;

/** Runs the bundle at `bundlePath` and returns its `__describe_module__` bytes. */
export async function describeBundle(bundlePath: string): Promise<Uint8Array> {
  let source: string;
  try {
    source = await Deno.readTextFile(bundlePath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`The module bundle '${bundlePath}' does not exist`, [
        "Build it with `build`, or pass --project-path to build from source.",
      ]);
    }
    throw error;
  }
  const dir = await Deno.makeTempDir({ prefix: "lightcone-describe-" });
  try {
    const { source: rewritten, shims } = rewriteSysImports(source);
    await Deno.writeTextFile(join(dir, "bundle.js"), rewritten);
    for (const [name, text] of shims) await Deno.writeTextFile(join(dir, name), text);
    await Deno.writeTextFile(join(dir, "driver.js"), DRIVER);
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-config",
        "--no-lock",
        "--no-prompt",
        `--allow-read=${dir}`,
        join(dir, "driver.js"),
      ],
      cwd: dirname(join(dir, "driver.js")),
      env: { NO_COLOR: "1" },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(DESCRIBE_TIMEOUT_MS),
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    if (stdout.startsWith("OK ")) {
      return fromHex(stdout.slice(3).trim());
    }
    const reason = stdout.startsWith("ERROR ")
      ? stdout.slice(6)
      : new TextDecoder().decode(output.stderr).trim() || `exit code ${output.code}`;
    throw new CliError(`could not extract schema from '${bundlePath}': ${reason}`);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** How long the wasm describe process may take to start (compile our code) before loading. */
const WASM_DESCRIBE_START_TIMEOUT_MS = 120_000;

export interface WasmDescribeLimits {
  /** The memory budget the module is loaded with (a database's default). */
  memoryMb?: number;
  /** How long loading and describing may take once the process runs (publish's load timeout). */
  loadTimeoutMs?: number;
  /** The largest module definition taken (bytes; default MODULE_BYTES_MAX). */
  definitionBytesMax?: number;
  /** Tests: called with the process id once its address space is capped, before the module. */
  onCapped?: (pid: number) => void | Promise<void>;
}

/**
 * Caps the describe process's address space (RLIMIT_DATA) at what it maps now, its own code
 * loaded, plus the memory budget, as the server caps a database process (worker/isolation.ts),
 * so an allocation outside the V8 heap and the wasm memory cannot take the machine's memory
 * either. Where it cannot be set (no `prlimit`, not Linux) the heap and wasm caps stay alone.
 */
async function capDescribeProcess(
  pid: number,
  memoryMb: number,
  io: { err(text: string): void },
): Promise<void> {
  if (!canLimitData()) return;
  try {
    const base = await dataSegmentBytes(pid);
    if (base === undefined) return;
    const bytes = base + Math.floor(memoryMb) * 1024 * 1024;
    await setDataLimit(pid, bytes, bytes);
  } catch (error) {
    // The process may have ended already (its output says why); otherwise say so and go on.
    if (!(error instanceof Deno.errors.NotFound)) {
      io.err(`warning: could not cap the describe process's memory: ${(error as Error).message}\n`);
    }
  }
}

/**
 * Runs the WebAssembly module at `wasmPath` as publish would, in a throwaway host with no data
 * (wasm/describe.ts): a child `deno` process with no permissions at all, its V8 heap, its
 * address space (on top of what it maps with its own code loaded) and the module's memory capped
 * at a database's memory budget, killed when loading and describing
 * overrun publish's module load timeout. Returns the `__describe_module__` bytes.
 */
export async function describeWasmFile(
  wasmPath: string,
  io: { err(text: string): void },
  limits: WasmDescribeLimits = {},
): Promise<Uint8Array> {
  const memoryMb = limits.memoryMb ?? DATABASE_MEMORY_MB_DEFAULT;
  const loadTimeoutMs = limits.loadTimeoutMs ?? MODULE_LOAD_TIMEOUT_MS;
  const definitionBytesMax = limits.definitionBytesMax ?? MODULE_BYTES_MAX;
  let bytes: Uint8Array;
  try {
    const stat = await Deno.stat(wasmPath);
    if (stat.size > MODULE_BYTES_MAX) {
      throw new CliError(
        `'${wasmPath}' is ${stat.size} bytes, more than a module may be (${MODULE_BYTES_MAX})`,
      );
    }
    bytes = await Deno.readFile(wasmPath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`The module '${wasmPath}' does not exist`);
    }
    throw error;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-config",
      "--no-lock",
      "--no-prompt",
      `--v8-flags=--max-old-space-size=${Math.floor(memoryMb)}`,
      fileURLToPath(wasmDescribeEntry()),
      String(memoryMb),
    ],
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut: string | undefined;
  const stop = (what: string) => {
    timedOut ??= what;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  };
  const arm = (ms: number, what: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => stop(what), ms);
  };
  arm(WASM_DESCRIBE_START_TIMEOUT_MS, "the describe process did not start");
  const stderr = new Response(child.stderr).text();
  const hello = Promise.withResolvers<void>();
  const stdout = (async () => {
    const decoder = new TextDecoder();
    let text = "";
    let said = false;
    let ready = false;
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (!said && text.startsWith("HELLO\n")) {
        said = true;
        text = text.slice(6);
        hello.resolve();
      }
      if (said && !ready && text.startsWith("READY\n")) {
        ready = true;
        text = text.slice(6);
        arm(
          loadTimeoutMs,
          `loading and describing the module took longer than ${loadTimeoutMs} ms ` +
            "(the module load timeout of publish)",
        );
      }
      // "OK " and the definition in hex: a module must not make the CLI hold more.
      if (text.length > (ready ? 3 : 15) + 2 * definitionBytesMax) {
        stop(`the module's definition is larger than ${definitionBytesMax} bytes`);
        text = "";
        break;
      }
    }
    return text + decoder.decode();
  })();
  try {
    const writer = child.stdin.getWriter();
    // The module is sent once the process has capped address space (or has ended: its output
    // says why).
    if (await Promise.race([hello.promise.then(() => true), stdout.then(() => false)])) {
      await capDescribeProcess(child.pid, memoryMb, io);
      await limits.onCapped?.(child.pid);
      await writer.write(bytes).catch(() => {});
    }
    await writer.close().catch(() => {});
    const [out, err, status] = await Promise.all([stdout, stderr, child.status]);
    for (const line of err.split("\n")) {
      if (line.startsWith("[module ")) io.err(`${line}\n`);
    }
    if (timedOut !== undefined) {
      throw new CliError(`could not extract schema from '${wasmPath}': ${timedOut}`);
    }
    if (out.startsWith("OK ")) return fromHex(out.slice(3).trim());
    const reason = out.startsWith("ERROR ") ? out.slice(6) : describeCrash(err, status, memoryMb);
    throw new CliError(`could not extract schema from '${wasmPath}': ${reason}`);
  } finally {
    clearTimeout(timer);
  }
}

function describeCrash(stderr: string, status: Deno.CommandStatus, memoryMb: number): string {
  const text = stderr.split("\n").filter((line) => !line.startsWith("[module ")).join("\n")
    .trim();
  if (/heap out of memory|Allocation failed/i.test(text)) {
    return `the module ran out of memory (the budget is ${memoryMb} MiB)`;
  }
  return text ||
    `the describe process ended with ${
      status.signal ? `signal ${status.signal}` : `exit code ${status.code}`
    }`;
}
