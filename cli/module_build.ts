/**
 * Builds a TypeScript module project into one ESM file, DIR/dist/bundle.js, the way
 * `spacetime build` does: entry src/index.ts, everything bundled except the host's
 * `spacetime:sys@M.m` modules, inline source map; then the same three post-checks.
 * The bundler is `deno bundle`. npm packages resolve from the project's node_modules
 * when it has one, else from package.json through Deno's npm cache.
 */
import { CliError } from "./errors.ts";
import type { CliIo } from "./io.ts";

export interface BuildOptions {
  debug?: boolean;
  /** Skip `tsc --noEmit` even when node_modules/.bin/tsc exists. */
  skipTypeCheck?: boolean;
  /**
   * Do not wait for the type check: the bundle is ready as soon as it is built (unless the
   * check already failed by then), and `BuildResult.typeCheck` settles when the check ends
   * (`dev`). `build` and `publish` always wait.
   */
  deferTypeCheck?: boolean;
  /** Stops a deferred type check that is no longer wanted (its outcome is then "cancelled"). */
  signal?: AbortSignal;
}

/** How a type check ended. */
export type TypeCheckOutcome =
  | { status: "passed" }
  | { status: "failed"; report: string; error: CliError }
  | { status: "cancelled" };

export interface BuildResult {
  bundlePath: string;
  sizeBytes: number;
  /** `spacetime:sys@M.m` versions the bundle imports, sorted. */
  syscallVersions: string[];
  resolution: "deno.json" | "node_modules" | "package.json";
  /**
   * The type check: "skipped", "passed" (it finished before the bundle was handed out), or,
   * with `deferTypeCheck`, a promise of its outcome when it was still running.
   */
  typeCheck: "skipped" | "passed" | Promise<TypeCheckOutcome>;
}

const EXTERNAL_PATTERN = "spacetime:sys*";

export async function buildModule(
  projectDir: string,
  io: CliIo,
  options: BuildOptions = {},
): Promise<BuildResult> {
  const dir = await checkProjectDir(projectDir);
  const entry = `${dir}/src/index.ts`;
  if (!await isFile(entry)) {
    throw new CliError(`Could not find the module entry point '${entry}'`, [
      "A TypeScript module's code starts in src/index.ts inside the project directory.",
    ]);
  }
  const hasDenoJson = await isFile(`${dir}/deno.json`) || await isFile(`${dir}/deno.jsonc`);
  const hasPackageJson = await isFile(`${dir}/package.json`);
  if (!hasDenoJson && !hasPackageJson) {
    throw new CliError(
      `Could not detect the language of the module in '${dir}': it has no package.json`,
      ["Are you in a SpacetimeDB project directory? Use --project-path to point at it."],
    );
  }
  const tempDir = await Deno.makeTempDir({ prefix: "lightcone-build-" });
  const removeTemp = () => Deno.remove(tempDir, { recursive: true }).catch(() => {});
  /** Set when a deferred check still runs: it removes the temporary folder when it ends. */
  let deferred: Promise<TypeCheckOutcome> | undefined;
  try {
    const { args: resolutionArgs, resolution } = await resolutionFor(dir, tempDir, io, {
      hasDenoJson,
    });
    await Deno.mkdir(`${dir}/dist`, { recursive: true });
    const bundlePath = `${dir}/dist/bundle.js`;
    // Bundled next to its final place (the source map's paths are relative to it) and moved
    // there only when the type check passed too; both run at once.
    const pendingPath = `${dir}/dist/.bundle-${crypto.randomUUID()}.js`;
    const bundleArgs = [
      "bundle",
      ...resolutionArgs,
      "--no-lock",
      "--platform",
      "browser",
      "--format",
      "esm",
      "--sourcemap",
      "inline",
      "--external",
      EXTERNAL_PATTERN,
      ...(options.debug ? ["--keep-names"] : []),
      "--output",
      pendingPath,
      "src/index.ts",
    ];
    const bundling = new Deno.Command(Deno.execPath(), {
      args: bundleArgs,
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const checking = options.skipTypeCheck
      ? Promise.resolve(undefined)
      : typeCheck(dir, io, resolutionArgs, options.signal, options.deferTypeCheck);
    // With deferTypeCheck, the bundle does not wait for a check still running.
    let checkDone = false;
    checking.then(() => checkDone = true, () => checkDone = true);
    const [checked, bundled] = options.deferTypeCheck
      ? await Promise.allSettled([
        bundling.then(async () => {
          // Let a check that ends together with the bundle count as finished first.
          await new Promise((resolve) => setTimeout(resolve, 0));
          return checkDone ? await checking : "running" as const;
        }),
        bundling,
      ])
      : await Promise.allSettled([checking, bundling]);
    try {
      if (bundled.status === "rejected") throw bundled.reason;
      const output = bundled.value;
      // A file that does not parse or resolve is reported by the bundler, more precisely.
      if (!output.success) {
        throw bundleError(new TextDecoder().decode(output.stderr), dir, resolution);
      }
      if (checked.status === "rejected") throw checked.reason;
      if (checked.value === "running") {
        deferred = checking.then(
          (failure): TypeCheckOutcome =>
            options.signal?.aborted
              ? { status: "cancelled" }
              : failure === undefined
              ? { status: "passed" }
              : { status: "failed", ...failure },
          (error): TypeCheckOutcome => {
            if (options.signal?.aborted) return { status: "cancelled" };
            const message = error instanceof Error ? error.message : String(error);
            return {
              status: "failed",
              report: "",
              error: error instanceof CliError ? error : new CliError(message),
            };
          },
        ).finally(removeTemp);
      } else if (checked.value !== undefined) {
        io.err(checked.value.report);
        throw checked.value.error;
      }
      await Deno.rename(pendingPath, bundlePath);
    } finally {
      await Deno.remove(pendingPath).catch(() => {});
    }

    const text = await Deno.readTextFile(bundlePath);
    const syscallVersions = checkBundle(text);
    return {
      bundlePath,
      sizeBytes: new TextEncoder().encode(text).length,
      syscallVersions,
      resolution,
      typeCheck: options.skipTypeCheck ? "skipped" : deferred ?? "passed",
    };
  } finally {
    if (!deferred) await removeTemp();
  }
}

async function checkProjectDir(projectDir: string): Promise<string> {
  let stat;
  try {
    stat = await Deno.stat(projectDir);
  } catch {
    throw new CliError(
      `Module directory does not exist: '${projectDir}'. Check your --project-path flag`,
    );
  }
  if (!stat.isDirectory) {
    throw new CliError(`Module path '${projectDir}' exists but is not a directory`);
  }
  return await Deno.realPath(projectDir);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Type-checks the module before bundling: with the project's own `tsc --noEmit` when
 * node_modules/.bin/tsc exists (as SpacetimeDB's build does), else with `deno check` on
 * src/index.ts under the same import resolution as the bundle. Errors are printed as
 * `FILE:LINE:COL - error TSxxxx: message` with the code line. Resolves with that report and
 * the error to throw when the check failed.
 */
async function typeCheck(
  dir: string,
  io: CliIo,
  resolutionArgs: string[],
  signal?: AbortSignal,
  lowPriority = false,
): Promise<{ report: string; error: CliError } | undefined> {
  const tsc = `${dir}/node_modules/.bin/tsc`;
  const useTsc = await isFile(tsc);
  io.err(useTsc ? "Type-checking with tsc --noEmit...\n" : "Type-checking with deno check...\n");
  const command = useTsc ? tsc : Deno.execPath();
  const args = useTsc ? ["--noEmit", "--pretty", "false"] : [
    "check",
    ...resolutionArgs,
    "--no-lock",
    // Resolve relative imports as the bundler does (and tsc under "moduleResolution":
    // "bundler"): `./llm` and `./llm.js` find llm.ts, `./rules` finds rules/index.ts.
    "--sloppy-imports",
    "--quiet",
    "src/index.ts",
  ];
  // A check nobody waits for yields the CPU to the bundle and the publish (`dev`).
  const nice = lowPriority ? await niceCommand() : undefined;
  let output;
  try {
    output = await new Deno.Command(nice ?? command, {
      args: nice ? ["-n", "10", command, ...args] : args,
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
  } catch (error) {
    throw new CliError(`Could not run the type checker: ${(error as Error).message}`);
  }
  if (output.success) return undefined;
  const decoder = new TextDecoder();
  const text = decoder.decode(output.stdout) + decoder.decode(output.stderr);
  const diagnostics = useTsc ? tscDiagnostics(text, dir) : denoCheckDiagnostics(text, dir);
  const report = diagnostics.length === 0
    ? (text.endsWith("\n") ? text : `${text}\n`)
    : diagnostics.map((d) => `${formatDiagnostic(d)}\n`).join("");
  const count = diagnostics.length;
  const error = new CliError(
    count > 0
      ? `Type check failed: ${count} error${count === 1 ? "" : "s"}, the first at ${
        d0(diagnostics)
      }`
      : `Type check failed (${useTsc ? "tsc" : "deno check"} exited with code ${output.code})`,
    ["Fix the errors above, or pass --skip-type-check to build anyway."],
  );
  return { report, error };
}

/** coreutils' `nice`, where there is one. */
async function niceCommand(): Promise<string | undefined> {
  for (const path of ["/usr/bin/nice", "/bin/nice"]) {
    if (await isFile(path)) return path;
  }
  return undefined;
}

export interface TypeDiagnostic {
  /** Path relative to the module project when inside it. */
  file: string;
  line: number;
  column: number;
  code: string;
  message: string;
  /** The source line, when the checker printed it. */
  source?: string;
}

function d0(diagnostics: TypeDiagnostic[]): string {
  const d = diagnostics[0];
  return `${d.file}:${d.line}:${d.column}`;
}

export function formatDiagnostic(d: TypeDiagnostic): string {
  const head = `${d.file}:${d.line}:${d.column} - error ${d.code}: ${d.message}`;
  return d.source === undefined ? head : `${head}\n    ${d.source.trim()}`;
}

function relativeTo(dir: string, path: string): string {
  const plain = path.replace(/^file:\/\//, "");
  return plain.startsWith(`${dir}/`) ? plain.slice(dir.length + 1) : plain;
}

/** Parses `deno check` output (NO_COLOR): `TSxxxx [ERROR]: msg`, code frame, `at FILE:L:C`. */
export function denoCheckDiagnostics(text: string, dir: string): TypeDiagnostic[] {
  const lines = text.split("\n");
  const found: TypeDiagnostic[] = [];
  for (let i = 0; i < lines.length; i++) {
    const head = /^(TS\d+) \[ERROR\]: (.*)$/.exec(lines[i]);
    if (!head) continue;
    const messageLines = [head[2]];
    let source: string | undefined;
    for (let j = i + 1; j < lines.length && j < i + 12; j++) {
      const at = /^\s+at (.+):(\d+):(\d+)$/.exec(lines[j]);
      if (at) {
        found.push({
          file: relativeTo(dir, at[1]),
          line: Number(at[2]),
          column: Number(at[3]),
          code: head[1],
          message: messageLines.join(" "),
          source,
        });
        i = j;
        break;
      }
      if (source === undefined && /^\s*[~^]+\s*$/.test(lines[j + 1] ?? "")) source = lines[j];
      else if (source === undefined && lines[j].trim() !== "" && !/^\s*[~^]+\s*$/.test(lines[j])) {
        messageLines.push(lines[j].trim());
      }
    }
  }
  return found;
}

/** Parses `tsc --pretty false` output: `FILE(L,C): error TSxxxx: msg`. */
export function tscDiagnostics(text: string, dir: string): TypeDiagnostic[] {
  const found: TypeDiagnostic[] = [];
  for (const match of text.matchAll(/^(.+)\((\d+),(\d+)\): error (TS\d+): (.*)$/gm)) {
    found.push({
      file: relativeTo(dir, match[1]),
      line: Number(match[2]),
      column: Number(match[3]),
      code: match[4],
      message: match[5],
    });
  }
  return found;
}

async function resolutionFor(
  dir: string,
  tempDir: string,
  io: CliIo,
  project: { hasDenoJson: boolean },
): Promise<{ args: string[]; resolution: BuildResult["resolution"] }> {
  if (project.hasDenoJson) {
    const config = await isFile(`${dir}/deno.json`) ? `${dir}/deno.json` : `${dir}/deno.jsonc`;
    return { args: ["--config", config], resolution: "deno.json" };
  }
  const emptyConfig = `${tempDir}/deno.json`;
  if (await isDirectory(`${dir}/node_modules`)) {
    // An empty config keeps an enclosing deno.json (a workspace) out of the build;
    // "manual" resolves bare imports by walking up node_modules, as Node and npm do.
    await Deno.writeTextFile(emptyConfig, "{}\n");
    return {
      args: ["--config", emptyConfig, "--node-modules-dir=manual"],
      resolution: "node_modules",
    };
  }
  const imports = await importsFromPackageJson(`${dir}/package.json`);
  io.err(
    `Note: no node_modules in ${dir}; resolving the dependencies in package.json through ` +
      "Deno's npm cache (run `npm install` there to use your own node_modules).\n",
  );
  await Deno.writeTextFile(
    emptyConfig,
    JSON.stringify({ imports, nodeModulesDir: "none" }, null, 2) + "\n",
  );
  return { args: ["--config", emptyConfig], resolution: "package.json" };
}

/** The version of the module library this CLI is built and tested against. */
export const SPACETIMEDB_VERSION_FALLBACK = "2.8.3";

/** Maps package.json dependencies to `npm:` specifiers for an import map. */
export async function importsFromPackageJson(path: string): Promise<Record<string, string>> {
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new CliError(`Cannot read '${path}': ${(error as Error).message}`);
  }
  const imports: Record<string, string> = {};
  for (const field of ["dependencies", "devDependencies"]) {
    const deps = manifest[field];
    if (typeof deps !== "object" || deps === null) continue;
    for (const [name, range] of Object.entries(deps as Record<string, unknown>)) {
      if (typeof range !== "string") continue;
      const version = npmRangeOrFallback(name, range);
      if (version === undefined) continue;
      imports[name] = `npm:${name}@${version}`;
      imports[`${name}/`] = `npm:/${name}@${version}/`;
    }
  }
  return imports;
}

function npmRangeOrFallback(name: string, range: string): string | undefined {
  // workspace:, file:, link:, git URLs... have no meaning outside the package manager.
  if (/^[\^~<>=*0-9xX. |-]+$/.test(range) || range === "latest") return range;
  if (name === "spacetimedb") return SPACETIMEDB_VERSION_FALLBACK;
  return undefined;
}

const RESOLUTION_FAILURE =
  /Module not found|not a dependency|ERR_PACKAGE_PATH_NOT_EXPORTED|ERR_MODULE_NOT_FOUND|Could not (resolve|find)|Cannot find (module|package)|Relative import path/;

/** Turns `deno bundle` stderr into one error line plus the code frame as hints. */
export function bundleError(
  stderr: string,
  dir: string,
  resolution: BuildResult["resolution"],
): CliError {
  const lines = stderr.split("\n");
  const blocks: string[][] = [];
  for (const line of lines) {
    if (/^Stack backtrace:/.test(line)) break;
    if (/deno bundle.*experimental/.test(line) || /^error: bundling failed/.test(line)) continue;
    if (line.startsWith("error: ")) blocks.push([line.slice("error: ".length)]);
    else if (blocks.length > 0 && line.trim() !== "") blocks[blocks.length - 1].push(line);
  }
  if (blocks.length === 0) {
    const tail = lines.filter((l) => l.trim() !== "").slice(-3).join(" ");
    return new CliError(`Build failed: deno bundle exited with an error: ${tail}`);
  }
  const fileUrlPrefix = `file://${dir}/`;
  const relative = (text: string) => text.split(fileUrlPrefix).join("");
  const [first, ...rest] = blocks;
  const location = first.map((l) => /^\s*at (\S+)$/.exec(l)).find((m) => m !== null);
  const frame = first.filter((l) => !/^\s*at \S+$/.test(l)).slice(1).map(relative);
  const message = relative(first[0]);
  const where = location ? relative(location[1]).replace(/^file:\/\//, "") : undefined;
  const hints = [...frame];
  for (const block of rest) hints.push(relative(block.join(" ")));
  if (RESOLUTION_FAILURE.test(stderr)) {
    hints.push(
      "Module not found. You may have forgotten to install dependencies with your package " +
        "manager (e.g. `npm install`)" +
        (resolution === "node_modules" ? " or the package is missing from node_modules." : "."),
    );
  }
  return new CliError(`Build failed: ${where ? `${where}: ` : ""}${message}`, hints);
}

/** The three post-checks of the official build; returns the syscall versions. */
export function checkBundle(text: string): string[] {
  const versions = new Set<string>();
  const pattern = /(?:from\s*|import\s*)["']spacetime:sys@(\d+)\.(\d+)["']/g;
  for (const match of text.matchAll(pattern)) versions.add(`${match[1]}.${match[2]}`);
  if (versions.size === 0) {
    throw new CliError(
      "Your module doesn't import the `spacetimedb/server` package at all - this is likely a " +
        "mistake, as your module will not be able to interface with the SpacetimeDB host.",
    );
  }
  const majors = new Set([...versions].map((v) => v.split(".")[0]));
  if (majors.size > 1) {
    throw new CliError(
      `The module pulls in ${majors.size} different versions of the \`spacetimedb/server\` ` +
        `package (spacetime:sys@${[...versions].sort().join(", @")})`,
      ["Make sure only one version of the spacetimedb package is installed."],
    );
  }
  const hasDefaultExport = /^export\s+default\b/m.test(text) ||
    /^export\s*\{[^}]*\bas\s+default\b[^}]*\}/m.test(text);
  if ([...majors][0] !== "1" && !hasDefaultExport) {
    throw new CliError(
      "It seems like you haven't exported your schema. You must `export default schema(...);`",
      ["e.g. `const spacetimedb = schema({ person }); export default spacetimedb;`"],
    );
  }
  return [...versions].sort();
}
