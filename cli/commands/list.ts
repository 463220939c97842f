/** `list`: the databases owned by your saved identity on a server. */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { type CliContext, connect } from "../context.ts";
import { CliError } from "../errors.ts";
import { formatTable } from "../table_format.ts";

export const LIST_HELP = `List the databases you own on a server

Usage: list [OPTIONS]

Options:
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
  -h, --help             Print help`;

const FLAGS = { server: { type: "string", short: "s" } } as const;

export async function runList(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseVerbArgs("list", args, FLAGS);
  expectPositionals("list", positionals, { required: [] });
  const connection = await connect(ctx, { server: flags.server });
  if (connection.identity === undefined) {
    throw new CliError(`You are not logged in to ${connection.serverUrl}.`, [
      "Publishing a database logs you in; see `login --help`.",
    ]);
  }
  let identities: string[];
  try {
    identities = await connection.client.databasesOf(connection.identity);
  } catch (error) {
    if (error instanceof ApiError) {
      throw new CliError(`Listing databases failed: ${error.message} (HTTP ${error.status})`);
    }
    throw error;
  }
  if (identities.length === 0) {
    ctx.io.out(`No databases found for ${connection.identity}.\n`);
    return 0;
  }
  const rows: string[][] = [];
  for (const identity of identities) {
    let names: string[] = [];
    try {
      names = await connection.client.databaseNames(identity);
    } catch {
      // a database without names is listed by identity only
    }
    rows.push([names.join(", "), identity]);
  }
  ctx.io.out(`Associated databases for user ${connection.identity}:\n`);
  ctx.io.out(formatTable(["Database Name(s)", "Identity"], rows));
  return 0;
}
