/** `delete DATABASE [-y]`: delete a database and all its data (owner only). */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { authHints, type CliContext, connect, projectConfig } from "../context.ts";
import { applyProjectDatabase } from "../project_config.ts";
import { CliError } from "../errors.ts";
import { confirm } from "../io.ts";

export const DELETE_HELP = `Delete a database and all of its data

Usage: delete [OPTIONS] <DATABASE>

Arguments:
  <DATABASE>  Database name or identity

Options:
  -y, --yes              Do not ask for confirmation
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
  -h, --help             Print help

Only the database's owner may delete it. This cannot be undone.

Examples:
  delete my-db
  delete my-db -y`;

const FLAGS = {
  yes: { type: "boolean", short: "y" },
  server: { type: "string", short: "s" },
} as const;

export async function runDelete(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("delete", args, FLAGS);
  const project = applyProjectDatabase(
    await projectConfig(ctx),
    parsed.positionals,
    "optional",
  );
  const positionals = project.positionals;
  const flags = {
    ...parsed.flags,
    server: parsed.flags.server ?? project.server,
  };
  expectPositionals("delete", positionals, { required: ["DATABASE"] });
  const [database] = positionals;
  const connection = await connect(ctx, { server: flags.server });
  let identity: string;
  try {
    identity = await connection.client.databaseIdentity(database);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new CliError(`failed to find database \`${database}\`.`, [
        `No database named '${database}' on ${connection.serverUrl}.`,
      ]);
    }
    throw error;
  }
  if (!flags.yes) {
    const sure = await confirm(
      ctx.io,
      `Are you sure you want to delete database ${database} (${identity})? This action cannot be undone.`,
    );
    if (!sure) {
      ctx.io.err("Aborting\n");
      return 1;
    }
  }
  try {
    await connection.client.deleteDatabase(database);
  } catch (error) {
    if (error instanceof ApiError) {
      throw new CliError(
        `Deleting '${database}' failed: ${error.message} (HTTP ${error.status})`,
        authHints(error, connection),
      );
    }
    throw error;
  }
  ctx.io.out(`Deleted database ${database} (${identity}).\n`);
  return 0;
}
