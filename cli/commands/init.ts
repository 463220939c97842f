/**
 * `init [PROJECT_NAME]`: a new project from one of templates/ — a module in spacetimedb/,
 * spacetime.json (server, module path, bindings), spacetime.local.json (the database name),
 * .env.local (what the client connects to) and, unless --server-only, a client.
 */
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { CliConfig } from "../config.ts";
import type { CliContext } from "../context.ts";
import { CliError, UsageError } from "../errors.ts";
import { clientEnvLines } from "./dev.ts";
import { SPACETIMEDB_VERSION_FALLBACK } from "../module_build.ts";

export const INIT_HELP = `Create a new project from a template

Usage: init [OPTIONS] [PROJECT_NAME]

Arguments:
  [PROJECT_NAME]  Name of the project; also the folder (./PROJECT_NAME) and the start
                  of the database name (PROJECT_NAME-xxxxx)

Options:
  -t, --template <ID>         basic (default) or chat; \`-t\` alone lists the templates
      --lang <LANG>           typescript (the only module language; implies basic)
      --project-path <PATH>   Where to create the project (default: ./PROJECT_NAME)
      --database <NAME>       Database name (default: PROJECT_NAME-<5 random characters>)
  -s, --server <SERVER>       Server the project publishes to (default: the CLI's default)
      --server-only           Only the module (spacetimedb/) and spacetime.json, no client
      --local                 Accepted for compatibility: projects always start local
      --non-interactive       Never ask; PROJECT_NAME is then required
  -h, --help                  Print help

The module's dependencies come from npm (spacetimedb@${SPACETIMEDB_VERSION_FALLBACK}); \`npm install\` in
spacetimedb/ is optional (without node_modules the build uses Deno's npm cache).

Examples:
  init my-app                    basic template in ./my-app
  init chat-app --template chat  a chat module and a terminal chat client
  init -t                        list the templates`;

const FLAGS = {
  template: { type: "string", short: "t" },
  lang: { type: "string" },
  "project-path": { type: "string" },
  database: { type: "string" },
  server: { type: "string", short: "s" },
  "server-only": { type: "boolean" },
  local: { type: "boolean" },
  "non-interactive": { type: "boolean" },
} as const;

const TEMPLATES_DIR = fileURLToPath(new URL("../../templates/", import.meta.url));
const DATABASE_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;

interface TemplateInfo {
  id: string;
  description: string;
}

export async function listTemplates(): Promise<TemplateInfo[]> {
  const found: TemplateInfo[] = [];
  for await (const entry of Deno.readDir(TEMPLATES_DIR)) {
    if (!entry.isDirectory) continue;
    const meta = JSON.parse(
      await Deno.readTextFile(join(TEMPLATES_DIR, entry.name, "template.json")),
    ) as { description?: string };
    found.push({ id: entry.name, description: meta.description ?? "" });
  }
  return found.sort((a, b) => a.id.localeCompare(b.id));
}

export async function runInit(args: string[], ctx: CliContext): Promise<number> {
  const io = ctx.io;
  // `-t`/`--template` without a value lists the templates.
  const last = args[args.length - 1];
  if (last === "-t" || last === "--template") {
    io.out("Available templates:\n");
    for (const t of await listTemplates()) io.out(`  ${t.id.padEnd(8)} ${t.description}\n`);
    io.out("\nCreate a project: init <PROJECT_NAME> --template <id>\n");
    return 0;
  }
  const { flags, positionals } = parseVerbArgs("init", args, FLAGS);
  expectPositionals("init", positionals, { required: [], optional: ["PROJECT_NAME"] });
  if (flags.template !== undefined && flags.lang !== undefined) {
    throw new UsageError(
      "Cannot specify both --template and --lang. Language is determined by the template.",
      "init",
    );
  }
  if (flags.lang !== undefined && !["typescript", "ts", "TS"].includes(flags.lang)) {
    throw new CliError(
      `--lang ${flags.lang} is not supported: Lightcone runs TypeScript modules only`,
    );
  }
  const templateId = flags.template ?? "basic";
  const templates = await listTemplates();
  if (!templates.some((t) => t.id === templateId)) {
    throw new CliError(`Unknown template '${templateId}'`, [
      `Available templates: ${templates.map((t) => t.id).join(", ")}`,
    ]);
  }

  let projectName = positionals[0];
  if (projectName === undefined) {
    if (flags["non-interactive"] || !io.interactive) {
      throw new UsageError("PROJECT_NAME is required in non-interactive mode", "init");
    }
    io.err("Project name [my-spacetime-app]: ");
    projectName = (await io.readLine())?.trim() || "my-spacetime-app";
  }
  const slug = kebab(projectName);
  if (slug === "") {
    throw new CliError(`Project name '${projectName}' has no letters or digits to name it by`);
  }
  const projectDir = resolve(flags["project-path"] ?? slug);
  const database = flags.database ?? `${slug}-${randomSuffix()}`;
  if (!DATABASE_NAME.test(database)) {
    throw new CliError(`invalid database name '${database}'`, [
      "Names are lowercase letters and digits, with single hyphens between them (e.g. my-db-2).",
    ]);
  }
  await ensureEmpty(projectDir, flags["server-only"] ?? false);

  const config = await CliConfig.load(ctx.configPath);
  const serverName = flags.server ?? config.data.default_server;
  const { url: serverUrl } = config.resolveServer(serverName);

  const vars: Record<string, string> = {
    project_name: slug,
    spacetimedb_version: SPACETIMEDB_VERSION_FALLBACK,
  };
  const source = join(TEMPLATES_DIR, templateId);
  const written: string[] = [];
  await copyTemplate(source, projectDir, vars, {
    only: flags["server-only"] ? ["spacetimedb", "_gitignore"] : undefined,
    written,
  });

  const spacetimeJson: Record<string, unknown> = {
    server: serverName,
    "module-path": "./spacetimedb",
  };
  if (!flags["server-only"]) {
    spacetimeJson.generate = [{ language: "typescript", "out-dir": "./src/module_bindings" }];
    spacetimeJson.dev = { run: "deno task client" };
  }
  await writeNew(join(projectDir, "spacetime.json"), spacetimeJson, written);
  await writeNew(join(projectDir, "spacetime.local.json"), { database }, written);
  if (!flags["server-only"]) {
    await Deno.writeTextFile(
      join(projectDir, ".env.local"),
      clientEnvLines(database, serverUrl).join("\n") + "\n",
    );
    written.push(join(projectDir, ".env.local"));
  }

  const shown = relative(Deno.cwd(), projectDir) || ".";
  io.out(`Created project '${slug}' from template '${templateId}' in ${shown}\n`);
  io.out(`Database name: ${database} (in spacetime.local.json), server: ${serverName}\n\n`);
  io.out("Next steps:\n");
  io.out(`  cd ${shown}\n`);
  io.out("  lightcone start              # in another terminal, unless a server is running\n");
  io.out(`  lightcone publish            # build spacetimedb/ and publish it as ${database}\n`);
  if (!flags["server-only"]) {
    io.out("  lightcone generate           # client bindings in src/module_bindings\n");
    io.out(
      templateId === "chat"
        ? "  deno task client             # chat: type lines, /name NAME sets your name\n"
        : "  deno task client Alice       # add Alice and list everyone\n",
    );
  }
  io.out("Or run `lightcone dev`: it rebuilds, republishes and regenerates on every save.\n");
  return 0;
}

function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase().replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

function randomSuffix(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join("");
}

async function ensureEmpty(dir: string, serverOnly: boolean): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw new CliError(`Cannot read '${dir}': ${(error as Error).message}`);
  }
  if (entries.length === 0) return;
  if (serverOnly && entries.some((e) => e.name === "spacetimedb")) {
    throw new CliError(`A SpacetimeDB module already exists in the target directory: ${dir}`);
  }
  throw new CliError(`Cannot create new SpacetimeDB project in non-empty directory: ${dir}`);
}

/** Copies a template directory, filling in {{var}} placeholders; `_gitignore` becomes `.gitignore`. */
async function copyTemplate(
  from: string,
  to: string,
  vars: Record<string, string>,
  options: { only?: string[]; written: string[] },
): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.name === "template.json") continue;
    if (options.only && !options.only.includes(entry.name)) continue;
    const target = join(to, entry.name === "_gitignore" ? ".gitignore" : entry.name);
    if (entry.isDirectory) {
      await copyTemplate(join(from, entry.name), target, vars, { written: options.written });
    } else {
      const text = await Deno.readTextFile(join(from, entry.name));
      await Deno.writeTextFile(
        target,
        text.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => vars[key] ?? whole),
      );
      options.written.push(target);
    }
  }
}

async function writeNew(path: string, value: unknown, written: string[]): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value, null, 2) + "\n");
  written.push(path);
}
