/**
 * `generate --lang typescript [--out-dir DIR] [--project-path DIR | --bin-path FILE |
 * --database NAME]`: client bindings for a module, from its source, its bundle or wasm binary,
 * or a running database's schema. Writes only files whose content changed and removes stale
 * generated files (recognised by their first line) after asking; other files are never
 * touched.
 */
import { join, relative } from "node:path";
import {
  CodegenError,
  GENERATED_FILE_MARKER,
  type GeneratedFile,
  generateTypeScript,
} from "../../codegen/mod.ts";
import {
  decodeRawModuleDef,
  type ModuleDef,
  ModuleDefError,
  rawModuleDefFromJson,
  type RawModuleDefV10,
  resolveModuleDef,
} from "../../protocol/mod.ts";
import { ApiError } from "../api_client.ts";
import { expectPositionals, type FlagValues, parseVerbArgs } from "../args.ts";
import { announceConfig, authHints, type CliContext, connect, projectConfig } from "../context.ts";
import { CliError, UsageError } from "../errors.ts";
import { type CliIo, confirm } from "../io.ts";
import { describeBundle, describeWasmFile } from "../module_describe.ts";
import { isWasmFile } from "../prebuilt_module.ts";
import { buildWithProgress } from "./build.ts";

export const GENERATE_HELP = `Generate client bindings (TypeScript) for a module

Usage: generate [OPTIONS]

Options:
  -l, --lang <LANG>         Language of the bindings: typescript (alias: ts). Without it,
                            a package.json in the current directory means typescript
  -o, --out-dir <DIR>       Where the files go (default: src/module_bindings)
  -p, --project-path <DIR>  Build the module project in DIR and generate from it
                            (default: ./spacetimedb). Alias: --module-path
  -b, --bin-path <FILE>     Generate from an already built module instead of building:
                            a JS bundle (dist/bundle.js) or a WebAssembly module (.wasm,
                            loaded as publish would, without data). -j, --js-path
                            takes JS bundles only
      --database <NAME>     Generate from a running database's schema instead
  -s, --server <SERVER>     With --database: server URL or saved nickname (default: local)
      --anonymous           With --database: ask without your saved identity
      --include-private     Also generate private tables, reducers and procedures
      --import-extension <EXT>
                            Extension of the bindings' imports of each other: none
                            (default, as SpacetimeDB's), .ts (Deno) or .js (nodenext)
      --skip-type-check     When building: do not type-check first
  -y, --yes                 Delete stale generated files without asking
  -h, --help                Print help

Files are written only when their content changed. Files in the out dir that start
with the generated-file header but were not generated this time are listed and deleted
after confirmation; files without that header are never touched.

By default the bindings import each other without file extensions, as SpacetimeDB's
do: bundlers resolve that; Deno needs --sloppy-imports, or use --import-extension .ts.

Examples:
  generate --lang typescript --out-dir client/src/module_bindings --project-path spacetimedb
  generate -l ts -o bindings --bin-path spacetimedb/dist/bundle.js -y
  generate -l ts -o bindings --bin-path target/wasm32-unknown-unknown/release/my_module.wasm
  generate -l ts -o bindings --database my-db -s local`;

const FLAGS = {
  lang: { type: "string", short: "l" },
  "out-dir": { type: "string", short: "o" },
  "project-path": { type: "string", short: "p" },
  "module-path": { type: "string" },
  "bin-path": { type: "string", short: "b" },
  "js-path": { type: "string", short: "j" },
  database: { type: "string" },
  server: { type: "string", short: "s" },
  anonymous: { type: "boolean" },
  "include-private": { type: "boolean" },
  "import-extension": { type: "string" },
  "skip-type-check": { type: "boolean" },
  yes: { type: "boolean", short: "y" },
} as const;

const DEFAULT_OUT_DIR = join("src", "module_bindings");
const DEFAULT_PROJECT_DIR = "spacetimedb";

type GenerateFlags = {
  -readonly [K in keyof FlagValues<typeof FLAGS>]: FlagValues<typeof FLAGS>[K];
};

export async function runGenerate(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseVerbArgs("generate", args, FLAGS);
  expectPositionals("generate", positionals, { required: [] });
  const config = await projectConfig(ctx);
  const explicitSource = flags["project-path"] ?? flags["module-path"] ?? flags["bin-path"] ??
    flags["js-path"] ?? flags.database;
  if (config === undefined || (flags["out-dir"] !== undefined && explicitSource !== undefined)) {
    return await generateWith(flags, ctx);
  }
  announceConfig(ctx, config);
  const target = config.targets[0];
  const modulePath = target?.modulePath ?? join(config.dir, "spacetimedb");
  const entries = config.generate.length > 0 ? config.generate : [{
    language: "typescript",
    outDir: join(config.dir, DEFAULT_OUT_DIR),
    modulePath: undefined,
    includePrivate: undefined,
    importExtension: undefined,
  }];
  for (const entry of entries) {
    const merged: GenerateFlags = { ...flags };
    merged.lang ??= entry.language;
    merged["out-dir"] ??= entry.outDir;
    merged["include-private"] ??= entry.includePrivate;
    merged["import-extension"] ??= entry.importExtension;
    if (explicitSource === undefined) {
      const prebuilt = target?.jsPath ?? target?.binPath;
      if (prebuilt !== undefined && entry.modulePath === undefined) {
        merged["bin-path"] = prebuilt;
      } else merged["project-path"] = entry.modulePath ?? modulePath;
    }
    const code = await generateWith(merged, ctx);
    if (code !== 0) return code;
  }
  return 0;
}

/** Generates once, from fully resolved flags (no project config). */
export async function generateWith(flags: GenerateFlags, ctx: CliContext): Promise<number> {
  await checkLanguage(flags.lang, ctx.io);
  const importExtension = parseImportExtension(flags["import-extension"]);

  const projectPath = flags["project-path"] ?? flags["module-path"];
  const binPath = flags["bin-path"] ?? flags["js-path"];
  const sources = [
    projectPath !== undefined && "--project-path",
    binPath !== undefined && "--bin-path",
    flags.database !== undefined && "--database",
  ].filter((s): s is string => typeof s === "string");
  if (sources.length > 1) {
    throw new UsageError(`${sources.join(" and ")} cannot be used together`, "generate");
  }
  if (flags.database === undefined && (flags.server !== undefined || flags.anonymous)) {
    throw new UsageError("--server and --anonymous only apply with --database", "generate");
  }

  const raw = flags.database !== undefined
    ? await rawFromDatabase(ctx, flags.database, flags.server, flags.anonymous)
    : await rawFromModule(ctx.io, projectPath, binPath, {
      skipTypeCheck: flags["skip-type-check"],
      jsOnly: flags["js-path"] !== undefined && flags["bin-path"] === undefined,
    });
  const def = resolve(raw);
  let bindings;
  try {
    bindings = generateTypeScript(def, {
      includePrivate: flags["include-private"],
      importExtension,
    });
  } catch (error) {
    if (error instanceof CodegenError) throw new CliError(error.message);
    throw error;
  }
  if (bindings.skippedPrivateTables.length > 0) {
    ctx.io.err(
      `Skipping private tables during codegen: ${bindings.skippedPrivateTables.join(", ")}.\n`,
    );
  }
  const outDir = flags["out-dir"] ?? DEFAULT_OUT_DIR;
  await writeBindings(ctx.io, outDir, bindings.files);
  await removeStaleFiles(ctx.io, outDir, bindings.files, flags.yes ?? false);
  ctx.io.out("Generate finished successfully.\n");
  return 0;
}

function parseImportExtension(value: string | undefined): "" | ".ts" | ".js" {
  if (value === undefined || value === "none") return "";
  if (value === ".ts" || value === "ts") return ".ts";
  if (value === ".js" || value === "js") return ".js";
  throw new UsageError(
    `invalid value '${value}' for '--import-extension <EXT>': expected none, .ts or .js`,
    "generate",
  );
}

async function checkLanguage(lang: string | undefined, io: CliIo): Promise<void> {
  if (lang === undefined) {
    if (await isFile("package.json")) {
      io.err(
        "Detected client language 'typescript' from '.'. If this is not correct, pass --lang.\n",
      );
      return;
    }
    throw new UsageError(
      "the client language could not be detected (no package.json here): pass --lang typescript",
      "generate",
    );
  }
  if (["typescript", "ts", "TS"].includes(lang)) return;
  if (["csharp", "rust", "unrealcpp"].includes(lang)) {
    throw new CliError(`Bindings for --lang ${lang} are not supported: only typescript is`);
  }
  throw new UsageError(
    `invalid value '${lang}' for '--lang <LANG>': expected typescript`,
    "generate",
  );
}

async function rawFromModule(
  io: CliIo,
  projectPath: string | undefined,
  binPath: string | undefined,
  options: { skipTypeCheck: boolean | undefined; jsOnly: boolean },
): Promise<RawModuleDefV10> {
  let bundlePath: string;
  if (binPath !== undefined) {
    if (await isWasmFile(binPath)) {
      if (options.jsOnly) {
        throw new CliError(`'${binPath}' is a WebAssembly module, not a JS bundle`, [
          "Generate from it with --bin-path (-b).",
        ]);
      }
      io.err(`Skipping build. Instead we are inspecting the WebAssembly module ${binPath}\n`);
      return decode(await describeWasmFile(binPath, io));
    }
    io.err(`Skipping build. Instead we are inspecting ${binPath}\n`);
    bundlePath = binPath;
  } else {
    const dir = projectPath ?? DEFAULT_PROJECT_DIR;
    if (!await isDirectory(dir)) {
      throw new CliError(`Could not find module source at '${dir}'.`, [
        "Pass --project-path DIR, or --bin-path FILE to generate from a built bundle, " +
        "or --database NAME to generate from a running database.",
      ]);
    }
    io.err(`Generating TypeScript module bindings for module ${dir}\n`);
    bundlePath = (await buildWithProgress(dir, io, { skipTypeCheck: options.skipTypeCheck }))
      .bundlePath;
  }
  io.err(`Extracting schema from ${bundlePath}...\n`);
  return decode(await describeBundle(bundlePath));
}

function decode(bytes: Uint8Array): RawModuleDefV10 {
  try {
    return decodeRawModuleDef(bytes);
  } catch (error) {
    throw new CliError(`could not extract schema: ${(error as Error).message}`);
  }
}

async function rawFromDatabase(
  ctx: CliContext,
  database: string,
  server: string | undefined,
  anonymous: boolean | undefined,
): Promise<RawModuleDefV10> {
  const connection = await connect(ctx, { server, anonymous });
  ctx.io.err(`Fetching the schema of ${database} from ${connection.serverUrl}\n`);
  let json: unknown;
  try {
    json = await connection.client.schema(database);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new CliError(`failed to find database \`${database}\`.`, [
        `No database named '${database}' on ${connection.serverUrl}.`,
      ]);
    }
    if (error instanceof ApiError) {
      throw new CliError(
        `Fetching the schema failed: ${error.message} (HTTP ${error.status})`,
        authHints(error, connection),
      );
    }
    throw error;
  }
  try {
    return rawModuleDefFromJson(json);
  } catch (error) {
    if (error instanceof ModuleDefError) {
      throw new CliError(`The server sent a schema this CLI cannot read: ${error.message}`);
    }
    throw error;
  }
}

function resolve(raw: RawModuleDefV10): ModuleDef {
  try {
    return resolveModuleDef(raw);
  } catch (error) {
    if (error instanceof ModuleDefError) {
      throw new CliError(`The module definition is invalid: ${error.message}`);
    }
    throw error;
  }
}

/** Writes `files` under `outDir`, skipping files whose content is already the same. */
export async function writeBindings(
  io: CliIo,
  outDir: string,
  files: GeneratedFile[],
): Promise<void> {
  if (await exists(outDir) && !await isDirectory(outDir)) {
    throw new CliError(`The out dir '${outDir}' exists but is not a directory`);
  }
  await Deno.mkdir(outDir, { recursive: true });
  const madeDirs = new Set<string>();
  for (const file of files) {
    const path = join(outDir, ...file.path.split("/"));
    const dir = join(path, "..");
    if (!madeDirs.has(dir) && !await isDirectory(dir)) {
      io.err(`Creating directory ${dir}\n`);
      await Deno.mkdir(dir, { recursive: true });
    }
    madeDirs.add(dir);
    let current: string | undefined;
    try {
      current = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (current === file.text) continue;
    io.err(`Writing file ${path}\n`);
    await Deno.writeTextFile(path, file.text);
  }
}

/** Files under `dir` (recursively), as paths relative to it with `/` separators. */
async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) out.push(...await listFiles(dir, rel));
    else if (entry.isFile) out.push(rel);
  }
  return out.sort();
}

async function startsWithMarker(path: string): Promise<boolean> {
  const file = await Deno.open(path, { read: true });
  try {
    const marker = new TextEncoder().encode(GENERATED_FILE_MARKER);
    const head = new Uint8Array(marker.length);
    let filled = 0;
    while (filled < head.length) {
      const n = await file.read(head.subarray(filled));
      if (n === null) return false;
      filled += n;
    }
    return head.every((b, i) => b === marker[i]);
  } finally {
    file.close();
  }
}

/**
 * Deletes files under `outDir` (recursively) that start with the generated-file header
 * but are not in `files`, after asking unless `yes`. Other files are never touched.
 */
export async function removeStaleFiles(
  io: CliIo,
  outDir: string,
  files: GeneratedFile[],
  yes: boolean,
): Promise<void> {
  const generated = new Set(files.map((f) => f.path));
  const stale: string[] = [];
  for (const rel of await listFiles(outDir)) {
    if (generated.has(rel)) continue;
    const path = join(outDir, ...rel.split("/"));
    if (await startsWithMarker(path)) stale.push(path);
  }
  if (stale.length === 0) return;
  io.err("The following files were not generated by this command and will be deleted:\n");
  for (const path of stale) io.err(`  ${relative(".", path) || path}\n`);
  if (yes) {
    io.err("Skipping confirmation due to --yes\n");
  } else if (!await confirm(io, "Are you sure you want to delete these files?")) {
    io.err("Files not deleted.\n");
    return;
  }
  for (const path of stale) await Deno.remove(path);
  io.err(`Deleted ${stale.length} stale file${stale.length === 1 ? "" : "s"}.\n`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
