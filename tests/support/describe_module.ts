/**
 * Test helpers: bundle a TypeScript module written against `spacetimedb/server`
 * the way `spacetime build` would, and run its `__describe_module__` hook to get
 * the real BSATN `RawModuleDef` bytes.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../../worker/module_loader.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUNDLE_TIMEOUT_MS = 120_000;
const DESCRIBE_TIMEOUT_MS = 30_000;
const MODULE_HOOKS_SYMBOL_KEY = "SpacetimeDB.moduleHooks.v2";

async function listSourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && entry.name !== "node_modules" && entry.name !== "dist") {
      out.push(...await listSourceFiles(path));
    } else if (entry.isFile && /\.(ts|js|mjs|json)$/.test(entry.name)) {
      out.push(path);
    }
  }
  return out.sort();
}

async function sha256Hex(parts: (string | Uint8Array)[]): Promise<string> {
  const encoder = new TextEncoder();
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const total = chunks.reduce((n, c) => n + c.length + 1, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length + 1; // a zero separator
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The module library version deno.json pins (`spacetimedb/server`). */
export const PINNED_SPACETIMEDB_VERSION = "2.8.3";

/**
 * Bundle `entryTsPath` (and everything it imports) into one ESM file with the
 * `spacetime:sys@*` imports kept external. The result is cached under
 * `<tmp>/lightcone-bundles/<sha256 of the entry's folder>.js`. Returns the source.
 * `spacetimedb` picks another version of the module library than deno.json's pin
 * (resolved from npm through a config of its own, as a project pinning it would).
 */
export async function bundleModule(
  entryTsPath: string,
  options: { spacetimedb?: string } = {},
): Promise<string> {
  const entry = resolve(entryTsPath);
  const version = options.spacetimedb ?? PINNED_SPACETIMEDB_VERSION;
  if (!/^\d+\.\d+\.\d+$/.test(version)) {
    throw new TypeError(`Invalid spacetimedb version "${version}"`);
  }
  const files = await listSourceFiles(dirname(entry));
  const parts: (string | Uint8Array)[] = [entry, Deno.version.deno, `spacetimedb@${version}`];
  for (const file of files) parts.push(file, await Deno.readFile(file));
  const hash = await sha256Hex(parts);
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const cacheDir = join(tmp, "lightcone-bundles");
  const out = join(cacheDir, `${hash}.js`);
  try {
    return await Deno.readTextFile(out);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.mkdir(cacheDir, { recursive: true });
  const partial = `${out}.${crypto.randomUUID()}.partial`;
  const configArgs: string[] = [];
  if (version !== PINNED_SPACETIMEDB_VERSION) {
    // Written whole, then renamed: a concurrent bundle never reads a half-written config.
    const config = join(cacheDir, `deno-spacetimedb-${version}.json`);
    const partialConfig = `${config}.${crypto.randomUUID()}.partial`;
    await Deno.writeTextFile(
      partialConfig,
      JSON.stringify({
        imports: {
          spacetimedb: `npm:spacetimedb@${version}`,
          "spacetimedb/": `npm:/spacetimedb@${version}/`,
        },
        nodeModulesDir: "none",
      }),
    );
    await Deno.rename(partialConfig, config);
    configArgs.push("--config", config, "--no-lock");
  }
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      ...configArgs,
      "--quiet",
      "--platform",
      "browser",
      "--format",
      "esm",
      "--external",
      "spacetime:sys@2.0",
      "--external",
      "spacetime:sys@2.1",
      "-o",
      partial,
      entry,
    ],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(BUNDLE_TIMEOUT_MS),
  });
  const result = await command.output();
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr);
    throw new Error(`deno bundle failed for "${entry}": ${stderr}`);
  }
  // Rename is atomic, so concurrent test processes never read a half-written bundle.
  await Deno.rename(partial, out);
  return await Deno.readTextFile(out);
}

function shimModule(names: readonly string[], withHooks: boolean): string {
  const lines = names.map((name) =>
    `export function ${name}() { throw new Error("syscall ${name} is not available during describe"); }`
  );
  if (withHooks) {
    lines.push(
      `export const moduleHooks = Symbol.for(${JSON.stringify(MODULE_HOOKS_SYMBOL_KEY)});`,
    );
  }
  // console_log must not throw: the library may log while registering exports.
  return lines.join("\n").replace(
    /export function console_log\(\) \{[^}]*\}/,
    "export function console_log() {}",
  );
}

function dataUrl(source: string): string {
  return `data:text/javascript;charset=utf-8,${encodeURIComponent(source)}`;
}

/** Replace `spacetime:sys@2.0|2.1` import specifiers with data: URL shims. */
export function rewriteSysImports(bundleSource: string): string {
  const shims: Record<string, string> = {
    "2.0": dataUrl(shimModule(SYS_2_0_EXPORTS, true)),
    "2.1": dataUrl(shimModule(SYS_2_1_EXPORTS, false)),
  };
  return bundleSource.replace(
    /(\bfrom\s*|\bimport\s*)(["'])spacetime:sys@(\d+\.\d+)\2/g,
    (_match, keyword: string, _quote: string, version: string) => {
      const shim = shims[version];
      if (!shim) throw new Error(`Unsupported sys module version ${version}`);
      return `${keyword}${JSON.stringify(shim)}`;
    },
  );
}

const WORKER_SOURCE = `
self.onmessage = async (event) => {
  try {
    const url = URL.createObjectURL(new Blob([event.data], { type: "text/javascript" }));
    const ns = await import(url);
    const hooksFactory = ns.default?.[Symbol.for(${JSON.stringify(MODULE_HOOKS_SYMBOL_KEY)})];
    if (typeof hooksFactory !== "function") throw new Error("default export is not a Schema object");
    const hooks = hooksFactory.call(ns.default, ns);
    const bytes = hooks.__describe_module__();
    self.postMessage({ ok: true, bytes: new Uint8Array(bytes) });
  } catch (e) {
    self.postMessage({ ok: false, error: String(e?.stack ?? e) });
  }
};
`;

/**
 * Load a bundle (as produced by `bundleModule`) in a throwaway worker, with stub
 * syscalls, and return the bytes of `__describe_module__()`. The worker keeps the
 * library's global changes (it replaces `console`) out of the test process.
 */
export async function describeModule(bundleSource: string): Promise<Uint8Array> {
  const source = rewriteSysImports(bundleSource);
  const workerUrl = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const worker = new Worker(workerUrl, { type: "module" });
  try {
    const reply = await new Promise<{ ok: boolean; bytes?: Uint8Array; error?: string }>(
      (resolveReply, rejectReply) => {
        const timer = setTimeout(
          () => rejectReply(new Error(`describe timed out after ${DESCRIBE_TIMEOUT_MS} ms`)),
          DESCRIBE_TIMEOUT_MS,
        );
        worker.onmessage = (event) => {
          clearTimeout(timer);
          resolveReply(event.data);
        };
        worker.onerror = (event) => {
          clearTimeout(timer);
          event.preventDefault();
          rejectReply(new Error(`describe worker failed: ${event.message}`));
        };
        worker.postMessage(source);
      },
    );
    if (!reply.ok || !reply.bytes) throw new Error(`describe failed: ${reply.error}`);
    return reply.bytes;
  } finally {
    worker.terminate();
    URL.revokeObjectURL(workerUrl);
  }
}

/** Path of a fixture module's entry file: tests/fixtures/modules/<name>/index.ts. */
export function fixtureModulePath(name: string): string {
  return join(REPO_ROOT, "tests", "fixtures", "modules", name, "index.ts");
}

/** Bundle and describe a fixture module in one step. */
export async function describeFixtureModule(name: string): Promise<Uint8Array> {
  return await describeModule(await bundleModule(fixtureModulePath(name)));
}
