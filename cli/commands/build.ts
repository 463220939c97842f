/** `build [--project-path DIR] [-d]`: bundle DIR/src/index.ts into DIR/dist/bundle.js. */
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { join } from "node:path";
import { announceConfig, type CliContext, projectConfig } from "../context.ts";
import { buildModule, type BuildResult } from "../module_build.ts";
import type { CliIo } from "../io.ts";
import { CliError } from "../errors.ts";
import { hostTypeOfFile } from "../prebuilt_module.ts";

export const BUILD_HELP = `Build a TypeScript module into one JavaScript file (dist/bundle.js)

Usage: build [OPTIONS]

Options:
  -p, --project-path <DIR>  The module project (default: spacetime.json's module-path, else
                            ./spacetimedb if it exists, else .)
                            Alias: --module-path
  -d, --debug               Keep function and class names for readable stack traces
      --skip-type-check     Do not type-check first (with node_modules/.bin/tsc --noEmit when
                            the project has it, else with deno check)
  -h, --help                Print help

The entry point is <DIR>/src/index.ts. Everything is bundled except the host's
spacetime:sys@* modules. npm packages come from <DIR>/node_modules (run \`npm install\`),
or, without node_modules, from the versions in package.json via Deno's npm cache.
When spacetime.json names a prebuilt module (bin-path or wasm-file, e.g. a .wasm built by
cargo) and no module-path, there is nothing to build: the file is checked and named.

Examples:
  build --project-path ./spacetimedb
  build -p . --debug`;

const FLAGS = {
  "project-path": { type: "string", short: "p" },
  "module-path": { type: "string" },
  debug: { type: "boolean", short: "d" },
  "skip-type-check": { type: "boolean" },
} as const;

export async function runBuild(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseVerbArgs("build", args, FLAGS);
  expectPositionals("build", positionals, { required: [] });
  let given = flags["project-path"] ?? flags["module-path"];
  if (given === undefined) {
    const config = await projectConfig(ctx);
    if (config !== undefined) {
      announceConfig(ctx, config);
      const target = config.targets[0];
      if (target?.modulePath === undefined && target?.binPath !== undefined) {
        return await checkPrebuilt(target.binPath, ctx);
      }
      given = target?.modulePath ?? join(config.dir, "spacetimedb");
    }
  }
  const projectDir = await defaultProjectDir(given);
  await buildWithProgress(projectDir, ctx.io, {
    debug: flags.debug,
    skipTypeCheck: flags["skip-type-check"],
  });
  ctx.io.out("Build finished successfully.\n");
  return 0;
}

/**
 * spacetime.json names a prebuilt module (`bin-path`/`wasm-file`, e.g. a .wasm built by
 * cargo): there is nothing to build; the file is checked and described.
 */
async function checkPrebuilt(path: string, ctx: CliContext): Promise<number> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new CliError(`Cannot read '${path}': ${(error as Error).message}`);
  }
  const hostType = hostTypeOfFile(bytes, path, false);
  ctx.io.err(
    `Skipping build: spacetime.json names the prebuilt ${
      hostType === "Wasm" ? "WebAssembly module" : "JS bundle"
    } ${path} (${formatBytes(bytes.length)}); publish uploads it as it is\n`,
  );
  return 0;
}

/** `./spacetimedb` when it is a directory (the init layout), else the current directory. */
export async function defaultProjectDir(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  try {
    if ((await Deno.stat("spacetimedb")).isDirectory) return "spacetimedb";
  } catch {
    // not there: build the current directory
  }
  return ".";
}

export async function buildWithProgress(
  projectDir: string,
  io: CliIo,
  options: {
    debug?: boolean;
    skipTypeCheck?: boolean;
    deferTypeCheck?: boolean;
    signal?: AbortSignal;
  },
): Promise<BuildResult> {
  io.err(`Building module ${projectDir}...\n`);
  const result = await buildModule(projectDir, io, options);
  io.err(
    `Bundled ${formatBytes(result.sizeBytes)} to ${result.bundlePath} ` +
      `(host ABI spacetime:sys@${result.syscallVersions.join(", @")})\n`,
  );
  return result;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}
