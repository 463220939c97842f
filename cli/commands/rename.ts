/** `rename --to NEW DATABASE`: gives a database a new name (PUT /v1/database/DB/names). */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { join } from "node:path";
import { authHints, type CliContext, connect, projectConfig } from "../context.ts";
import { applyProjectDatabase, parseJsonWithComments } from "../project_config.ts";
import { CliError, UsageError } from "../errors.ts";
import { validateDatabaseName } from "./publish.ts";

export const RENAME_HELP = `Give a database a new name (its identity and data stay)

Usage: rename --to <NEW_NAME> [DATABASE]

Arguments:
  [DATABASE]  The database's identity or current name (default: the project's, from
              spacetime.json; its spacetime.local.json is then updated to the new name)

Options:
      --to <NEW_NAME>    The new name; the old name is released
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
  -y, --yes              Run non-interactively (log in without asking)
  -h, --help             Print help

Only the database's owner may rename it. Clients and configs that use the old name must
be changed (e.g. spacetime.local.json).

Examples:
  rename --to chat-prod chat-dev
  rename --to my-db c200...`;

const FLAGS = {
  to: { type: "string" },
  server: { type: "string", short: "s" },
  yes: { type: "boolean", short: "y" },
} as const;

export async function runRename(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("rename", args, FLAGS);
  const config = await projectConfig(ctx);
  const project = applyProjectDatabase(config, parsed.positionals, "optional");
  const positionals = project.positionals;
  const flags = { ...parsed.flags, server: parsed.flags.server ?? project.server };
  expectPositionals("rename", positionals, { required: ["DATABASE"] });
  if (flags.to === undefined) {
    throw new UsageError(
      "the following required arguments were not provided: --to <NEW_NAME>",
      "rename",
    );
  }
  const newName = flags.to;
  validateDatabaseName(newName);
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(newName)) {
    throw new CliError("database names cannot be identities");
  }
  const connection = await connect(ctx, { server: flags.server, login: true });
  const database = positionals[0];
  let identity: string;
  try {
    identity = await connection.client.databaseIdentity(database);
    await connection.client.setDatabaseNames(database, [newName]);
  } catch (error) {
    if (error instanceof ApiError) {
      if (error.status === 404) throw new CliError(`Database ${database} not found`);
      if (error.status === 403) {
        throw new CliError(
          `You cannot rename ${database} because it is owned by another identity.`,
          authHints(error, connection),
        );
      }
      throw new CliError(`Renaming failed with status ${error.status}: ${error.message}`);
    }
    throw error;
  }
  ctx.io.out(`Name set to ${newName} for identity ${identity}.\n`);
  if (config !== undefined && parsed.positionals.length === 0) {
    await updateLocalConfig(config.dir, database, newName, ctx);
  }
  return 0;
}

/** Points spacetime.local.json at the new name when it named the old one. */
async function updateLocalConfig(dir: string, from: string, to: string, ctx: CliContext) {
  const path = join(dir, "spacetime.local.json");
  let value: Record<string, unknown>;
  try {
    value = parseJsonWithComments(await Deno.readTextFile(path), path) as Record<string, unknown>;
  } catch {
    ctx.io.err(`Note: spacetime.json still names ${from}; change it to ${to}.\n`);
    return;
  }
  if (value.database !== from) return;
  await Deno.writeTextFile(path, JSON.stringify({ ...value, database: to }, null, 2) + "\n");
  ctx.io.err(`Updated ${path}: database ${to}\n`);
}
