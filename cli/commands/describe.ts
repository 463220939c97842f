/** `describe DATABASE [--json] [ENTITY_TYPE ENTITY_NAME]`: show a database's schema. */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { authHints, type CliContext, connect, projectConfig } from "../context.ts";
import { applyProjectDatabase } from "../project_config.ts";
import { CliError, UsageError } from "../errors.ts";
import {
  describeModuleText,
  describeReducerLine,
  describeTableLines,
  signatureOf,
  summariseModule,
} from "../schema_view.ts";

export const DESCRIBE_HELP = `Describe a database's schema: tables, reducers, procedures, views

Usage: describe [OPTIONS] <DATABASE> [ENTITY_TYPE ENTITY_NAME]

Arguments:
  <DATABASE>     Database name or identity
  [ENTITY_TYPE]  table, reducer, procedure or view
  [ENTITY_NAME]  Its name as the database knows it (snake_case by default)

Options:
      --json             Print the schema as SATS-JSON (RawModuleDefV10), as the server sends it
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
      --anonymous        Ask without your saved identity
  -h, --help             Print help

Examples:
  describe my-db
  describe my-db table person
  describe my-db --json reducer add`;

const FLAGS = {
  json: { type: "boolean" },
  server: { type: "string", short: "s" },
  anonymous: { type: "boolean" },
} as const;

const ENTITY_TYPES = ["table", "reducer", "procedure", "view"] as const;

export async function runDescribe(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("describe", args, FLAGS);
  const project = applyProjectDatabase(
    await projectConfig(ctx),
    parsed.positionals,
    "describe",
  );
  const positionals = project.positionals;
  const flags = {
    ...parsed.flags,
    server: parsed.flags.server ?? project.server,
    anonymous: parsed.flags.anonymous ?? project.anonymous,
  };
  expectPositionals("describe", positionals, {
    required: ["DATABASE"],
    optional: ["ENTITY_TYPE", "ENTITY_NAME"],
  });
  const [database, entityType, entityName] = positionals;
  if (entityType !== undefined) {
    if (!(ENTITY_TYPES as readonly string[]).includes(entityType)) {
      throw new UsageError(
        `Invalid entity_type '${entityType}'. Expected one of: ${ENTITY_TYPES.join(", ")}.`,
        "describe",
      );
    }
    if (entityName === undefined) {
      throw new UsageError(
        "the following required arguments were not provided: <ENTITY_NAME>",
        "describe",
      );
    }
  }
  const connection = await connect(ctx, { server: flags.server, anonymous: flags.anonymous });
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
  if (entityType === undefined) {
    if (flags.json) ctx.io.out(`${JSON.stringify(json, null, 2)}\n`);
    else ctx.io.out(describeModuleText(database, summarise(json)));
    return 0;
  }
  const module = summarise(json);
  const name = entityName!;
  const found = entityType === "table"
    ? module.tables.find((t) => t.name === name)
    : entityType === "reducer"
    ? module.reducers.find((r) => r.name === name)
    : entityType === "procedure"
    ? module.procedures.find((p) => p.name === name)
    : module.views.find((v) => v.name === name);
  if (!found) throw new CliError(`no such ${entityType}: '${name}' in database '${database}'`);
  if (flags.json) {
    ctx.io.out(`${JSON.stringify(found.raw, null, 2)}\n`);
    return 0;
  }
  if (entityType === "table") {
    ctx.io.out(`${describeTableLines(module.tables.find((t) => t.name === name)!).join("\n")}\n`);
  } else if (entityType === "reducer") {
    ctx.io.out(`${describeReducerLine(module.reducers.find((r) => r.name === name)!)}\n`);
  } else {
    const fn = found as {
      name: string;
      params: { name: string; type: string }[];
      returnType?: string;
    };
    ctx.io.out(`${signatureOf(fn)} -> ${fn.returnType ?? "()"}\n`);
  }
  return 0;
}

function summarise(json: unknown) {
  try {
    return summariseModule(json);
  } catch (error) {
    throw new CliError(
      `The server sent a schema this CLI cannot read: ${(error as Error).message}`,
      [
        "Use --json to see it raw.",
      ],
    );
  }
}
