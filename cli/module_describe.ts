/**
 * Gets a module's definition from its bundle, as `spacetime generate` does with
 * `extract-schema`: the bundle runs in a child `deno` process with no permissions
 * beyond reading its own temporary folder, its `spacetime:sys@*` imports replaced by
 * stand-ins that refuse every syscall, and the `__describe_module__` hook's bytes
 * (BSATN RawModuleDef) come back on stdout as hex.
 */
import { dirname, join } from "node:path";
import { CliError } from "./errors.ts";
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../protocol/mod.ts";

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
      const hex = stdout.slice(3).trim();
      const bytes = new Uint8Array(hex.length / 2);
      for (let i = 0; i < bytes.length; i++) {
        bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
      }
      return bytes;
    }
    const reason = stdout.startsWith("ERROR ")
      ? stdout.slice(6)
      : new TextDecoder().decode(output.stderr).trim() || `exit code ${output.code}`;
    throw new CliError(`could not extract schema from '${bundlePath}': ${reason}`);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
