/**
 * `spacetime.json`, the project config (SpacetimeDB CLI spec §1.16): found by walking up from
 * the current directory; JSON with comments and trailing commas; layered
 * spacetime.json → spacetime.local.json → spacetime.<env>.json → spacetime.<env>.local.json
 * (later files replace top-level keys; `children` merge by index). The root object and each
 * of its `children` are database targets; children inherit the fields they do not set.
 * Paths in the files are relative to the directory of spacetime.json.
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { CliError, UsageError } from "./errors.ts";

export const PROJECT_CONFIG_FILE = "spacetime.json";

/** One database the project publishes to. Paths are absolute. */
export interface ProjectTarget {
  database?: string;
  server?: string;
  modulePath?: string;
  jsPath?: string;
  /** `bin-path` (alias `wasm-file`): a prebuilt module, WebAssembly or a JS bundle. */
  binPath?: string;
  buildOptions?: string;
  breakClients?: boolean;
  anonymous?: boolean;
}

/** One `generate` entry. Paths are absolute. */
export interface GenerateTarget {
  language: string;
  outDir: string;
  modulePath?: string;
  includePrivate?: boolean;
  importExtension?: string;
}

export interface ProjectConfig {
  /** Directory of spacetime.json. */
  dir: string;
  /** The files read, in layering order. */
  files: string[];
  targets: ProjectTarget[];
  generate: GenerateTarget[];
  /** `dev.run`: the client command `dev` starts. */
  devRun?: string;
}

const TARGET_KEYS = [
  "database",
  "server",
  "module-path",
  "js-path",
  "js-file",
  "bin-path",
  "wasm-file",
  "build-options",
  "break-clients",
  "anonymous",
  "anon-identity",
];
const ROOT_ONLY_KEYS = ["generate", "dev", "children"];
const REFUSED_KEYS: Record<string, string> = {
  parent: "child databases are not supported by Lightcone",
  organization: "organizations are not supported by Lightcone",
  "num-replicas": "replication is not supported by Lightcone",
  "native-aot": "only TypeScript modules are supported by Lightcone",
  "dotnet-version": "only TypeScript modules are supported by Lightcone",
};
const GENERATE_KEYS = ["language", "out-dir", "module-path", "include-private", "import-extension"];
const PATH_GROUP = ["module-path", "js-path", "js-file", "bin-path", "wasm-file"];

export interface LoadOptions {
  /** Directory to start the search from (default: the current directory). */
  from?: string;
  /** Also load spacetime.<env>.json and spacetime.<env>.local.json. */
  env?: string;
}

/** Finds and loads the project config; undefined when there is none up the tree. */
export async function loadProjectConfig(
  options: LoadOptions = {},
): Promise<ProjectConfig | undefined> {
  const dir = await findConfigDir(resolve(options.from ?? Deno.cwd()));
  if (dir === undefined) return undefined;
  const names = [PROJECT_CONFIG_FILE, "spacetime.local.json"];
  if (options.env !== undefined) {
    if (!/^[A-Za-z0-9_-]+$/.test(options.env)) {
      throw new UsageError(`invalid value '${options.env}' for '--env <ENV>'`);
    }
    names.push(`spacetime.${options.env}.json`, `spacetime.${options.env}.local.json`);
  }
  let merged: Record<string, unknown> = {};
  const files: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw new CliError(`Cannot read '${path}': ${(error as Error).message}`);
    }
    const value = parseJsonWithComments(text, path);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new CliError(`'${path}' must contain a JSON object`);
    }
    merged = layer(merged, value as Record<string, unknown>);
    files.push(path);
  }
  return interpret(dir, files, merged);
}

async function findConfigDir(start: string): Promise<string | undefined> {
  let dir = start;
  while (true) {
    try {
      if ((await Deno.stat(join(dir, PROJECT_CONFIG_FILE))).isFile) return dir;
    } catch {
      // not here
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function layer(base: Record<string, unknown>, top: Record<string, unknown>) {
  const out = { ...base, ...top };
  if (Array.isArray(base.children) && Array.isArray(top.children)) {
    const length = Math.max(base.children.length, top.children.length);
    out.children = Array.from({ length }, (_, i) => ({
      ...(base.children as Record<string, unknown>[])[i],
      ...(top.children as Record<string, unknown>[])[i],
    }));
  }
  return out;
}

/** JSON plus `//` and `/* *\/` comments and trailing commas (the subset of JSON5 configs use). */
export function parseJsonWithComments(text: string, path: string): unknown {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      out += text.slice(start, i + 1);
    } else if (ch === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (ch === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
      out += " ";
    } else out += ch;
  }
  out = out.replace(/,(\s*[}\]])/g, "$1");
  try {
    return JSON.parse(out);
  } catch (error) {
    throw new CliError(`'${path}' is not valid JSON: ${(error as Error).message}`);
  }
}

function checkKeys(object: Record<string, unknown>, allowed: string[], where: string): void {
  for (const key of Object.keys(object)) {
    if (key in REFUSED_KEYS) {
      throw new CliError(`Config key '${key}' in ${where} cannot be used: ${REFUSED_KEYS[key]}`);
    }
    if (!allowed.includes(key)) {
      throw new CliError(
        `Config key '${key}' is not supported in the config file. Available keys: ${
          allowed.join(", ")
        }`,
      );
    }
  }
}

function str(object: Record<string, unknown>, key: string): string | undefined {
  const value = object[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string") {
    throw new CliError(`Config key '${key}' must be a string, not ${JSON.stringify(value)}`);
  }
  return value;
}

function bool(object: Record<string, unknown>, key: string): boolean | undefined {
  const value = object[key];
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") {
    throw new CliError(`Config key '${key}' must be true or false, not ${JSON.stringify(value)}`);
  }
  return value;
}

function interpret(dir: string, files: string[], root: Record<string, unknown>): ProjectConfig {
  checkKeys(root, [...TARGET_KEYS, ...ROOT_ONLY_KEYS], "spacetime.json");
  const abs = (p: string | undefined) => p === undefined ? undefined : resolve(dir, p);
  const toTarget = (o: Record<string, unknown>): ProjectTarget => ({
    database: str(o, "database"),
    server: str(o, "server"),
    modulePath: abs(str(o, "module-path")),
    jsPath: abs(str(o, "js-path") ?? str(o, "js-file")),
    binPath: abs(str(o, "bin-path") ?? str(o, "wasm-file")),
    buildOptions: str(o, "build-options"),
    breakClients: bool(o, "break-clients"),
    anonymous: bool(o, "anonymous") ?? bool(o, "anon-identity"),
  });
  const targets: ProjectTarget[] = [];
  const visit = (object: Record<string, unknown>, inherited: Record<string, unknown>) => {
    const own: Record<string, unknown> = { ...object };
    const setsPath = PATH_GROUP.some((k) => own[k] !== undefined);
    for (const key of TARGET_KEYS) {
      if (key === "database" || own[key] !== undefined) continue;
      if (PATH_GROUP.includes(key) && setsPath) continue;
      if (inherited[key] !== undefined) own[key] = inherited[key];
    }
    if (own.database !== undefined) targets.push(toTarget(own));
    const children = object.children;
    if (children === undefined) return;
    if (!Array.isArray(children)) throw new CliError("Config key 'children' must be an array");
    for (const child of children) {
      if (typeof child !== "object" || child === null || Array.isArray(child)) {
        throw new CliError("Each entry of 'children' must be an object");
      }
      checkKeys(child as Record<string, unknown>, [...TARGET_KEYS, "children"], "children");
      visit(child as Record<string, unknown>, own);
    }
  };
  visit(root, {});
  // A config without any database still carries defaults (server, module-path).
  if (targets.length === 0) targets.push(toTarget(root));

  const generate: GenerateTarget[] = [];
  if (root.generate !== undefined) {
    if (!Array.isArray(root.generate)) throw new CliError("Config key 'generate' must be an array");
    for (const entry of root.generate) {
      if (typeof entry !== "object" || entry === null) {
        throw new CliError("Each entry of 'generate' must be an object");
      }
      const e = entry as Record<string, unknown>;
      checkKeys(e, GENERATE_KEYS, "generate");
      const language = str(e, "language");
      const outDir = str(e, "out-dir");
      if (language === undefined || outDir === undefined) {
        throw new CliError("Each entry of 'generate' needs 'language' and 'out-dir'");
      }
      generate.push({
        language,
        outDir: resolve(dir, outDir),
        modulePath: abs(str(e, "module-path")),
        includePrivate: bool(e, "include-private"),
        importExtension: str(e, "import-extension"),
      });
    }
  }
  let devRun: string | undefined;
  if (root.dev !== undefined) {
    if (typeof root.dev !== "object" || root.dev === null) {
      throw new CliError("Config key 'dev' must be an object");
    }
    checkKeys(root.dev as Record<string, unknown>, ["run"], "dev");
    devRun = str(root.dev as Record<string, unknown>, "run");
  }
  return { dir, files, targets, generate, devRun };
}

/** Databases named by the config. */
export function configuredDatabases(config: ProjectConfig): string[] {
  return config.targets.map((t) => t.database).filter((d): d is string => d !== undefined);
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(
    /\?/g,
    ".",
  );
  return new RegExp(`^${escaped}$`);
}

/**
 * The targets `publish`/`generate` act on: all of them without NAME; with NAME, those whose
 * database matches it as a glob, or, with exactly one target, that one under NAME.
 */
export function selectTargets(config: ProjectConfig, name: string | undefined): ProjectTarget[] {
  if (name === undefined) return config.targets;
  const pattern = globToRegExp(name);
  const matching = config.targets.filter((t) =>
    t.database !== undefined && pattern.test(t.database)
  );
  if (matching.length > 0) return matching;
  if (config.targets.length === 1) return [{ ...config.targets[0], database: name }];
  throw new CliError(
    `No database target matches '${name}'. Available databases: ${
      configuredDatabases(config).join(", ")
    }`,
  );
}

/** How a read command takes its database positional. */
export type DatabaseArgShape =
  /** `[DATABASE]` then nothing of its own that could be confused (logs, delete). */
  | "optional"
  /** `[DATABASE] <FUNCTION> [ARGS...]`, `[DATABASE] <QUERY>...`: the first positional is the
   * database only when it names a configured one. */
  | "leading"
  /** `[DATABASE] [QUERY]` (sql). */
  | "sql"
  /** `[DATABASE] [reducer|table NAME]` (describe). */
  | "describe";

/**
 * Puts the project's database in front of `positionals` when the command line does not name
 * one, and returns the project's server for that database (used when `-s` is not given).
 */
export function applyProjectDatabase(
  config: ProjectConfig | undefined,
  positionals: string[],
  shape: DatabaseArgShape,
): { positionals: string[]; server?: string; anonymous?: boolean } {
  if (config === undefined) return { positionals };
  const names = configuredDatabases(config);
  if (names.length === 0) return { positionals, server: config.targets[0]?.server };
  const first = positionals[0];
  const named = first !== undefined && names.includes(first);
  let omitted: boolean;
  if (shape === "optional") omitted = positionals.length === 0;
  else if (shape === "describe") {
    omitted = positionals.length === 0 || first === "reducer" || first === "table";
  } else if (shape === "sql") omitted = !named && positionals.length <= 1;
  else omitted = !named;
  if (!omitted) {
    const target = config.targets.find((t) => t.database === first);
    return { positionals, server: target?.server, anonymous: target?.anonymous };
  }
  if (names.length > 1) {
    throw new CliError(
      `Multiple databases found in config: ${names.join(", ")}. Please specify which database ` +
        `to use, or pass --no-config to use '${first ?? ""}' directly.`,
    );
  }
  const target = config.targets.find((t) => t.database === names[0])!;
  if (shape === "leading" && first !== undefined && /^[a-z0-9]+(-[a-z0-9]+)+$/.test(first)) {
    // Function names have no hyphens: this names a database that is not the project's.
    throw new CliError(
      `Database '${first}' is not in the config file. If you want to run against a database ` +
        "outside of the current project, pass --no-config.",
      [`The project's database is '${names[0]}' (${config.files.join(", ")}).`],
    );
  }
  return {
    positionals: [names[0], ...positionals],
    server: target.server,
    anonymous: target.anonymous,
  };
}

/** A path given on the command line, made absolute against the current directory. */
export function absoluteFromCwd(path: string): string {
  return isAbsolute(path) ? path : resolve(Deno.cwd(), path);
}
