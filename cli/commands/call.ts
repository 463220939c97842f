/** `call DATABASE FUNCTION [ARGS...]`: run a reducer or procedure over HTTP. */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { authHints, type CliContext, connect, type Connection, projectConfig } from "../context.ts";
import { applyProjectDatabase } from "../project_config.ts";
import { CliError } from "../errors.ts";
import {
  type ColumnSummary,
  type FunctionSummary,
  type ModuleSummary,
  signatureOf,
  similarName,
  summariseModule,
} from "../schema_view.ts";

export const CALL_HELP = `Call a reducer or procedure of a database

Usage: call [OPTIONS] <DATABASE> <FUNCTION> [ARGS]...

Arguments:
  <DATABASE>  Database name or identity
  <FUNCTION>  Reducer or procedure, by its database name (say_hello for \`export const sayHello\`)
  [ARGS]...   One JSON value per parameter: 42, true, '"text"', '[1,2]', '{"some": 5}'.
              String parameters also take bare text: call my-db add Alice

Options:
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
      --anonymous        Call without your saved identity
  -h, --help             Print help

Reducers print nothing on success; procedures print their return value as JSON.

Examples:
  call my-db add Alice
  call my-db set_score '"Alice"' 42
  call my-db move -- -5 10`;

const FLAGS = {
  server: { type: "string", short: "s" },
  anonymous: { type: "boolean" },
} as const;

export async function runCall(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("call", args, FLAGS);
  const project = applyProjectDatabase(
    await projectConfig(ctx),
    parsed.positionals,
    "leading",
  );
  const positionals = project.positionals;
  const flags = {
    ...parsed.flags,
    server: parsed.flags.server ?? project.server,
    anonymous: parsed.flags.anonymous ?? project.anonymous,
  };
  expectPositionals("call", positionals, {
    required: ["DATABASE", "FUNCTION"],
    rest: true,
  });
  const [database, name, ...rawArgs] = positionals;
  const connection = await connect(ctx, { server: flags.server, anonymous: flags.anonymous });

  const module = await fetchSchemaOrUndefined(connection, database);
  const target = module ? findFunction(module, name) : undefined;
  if (module && !target) {
    throw await noSuchFunction(connection, database, name, module);
  }
  if (target && target.kind === "reducer" && target.fn.lifecycle) {
    throw new CliError(
      `\`${name}\` is the ${target.fn.lifecycle} lifecycle reducer; the database runs it itself`,
    );
  }
  const argsJson = target
    ? encodeArgs(name, target.fn, rawArgs, target.kind)
    : `[${rawArgs.map((a) => encodeLoose(a)).join(",")}]`;

  let result;
  try {
    result = await connection.client.call(database, name, argsJson);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 530) {
      throw new CliError(
        `${
          target?.kind === "procedure" ? "Procedure" : "Reducer"
        } \`${name}\` failed: ${error.message}`,
      );
    }
    if (error.status === 404) {
      if (module) throw await noSuchFunction(connection, database, name, module);
      throw new CliError(`Call failed: ${error.message} (HTTP 404)`, [
        `Check the database name with \`describe ${database}\`.`,
      ]);
    }
    if (error.status === 400 && target) {
      throw new CliError(
        `Invalid arguments provided for ${target.kind} \`${name}\`: ${error.message}`,
        [`The ${target.kind} has the following signature:`, `\t${signatureOf(target.fn)}`],
      );
    }
    throw new CliError(
      `Call failed: ${error.message} (HTTP ${error.status})`,
      authHints(error, connection),
    );
  }
  if (result.body.trim() !== "") ctx.io.out(`${result.body.trimEnd()}\n`);
  return 0;
}

async function fetchSchemaOrUndefined(
  connection: Connection,
  database: string,
): Promise<ModuleSummary | undefined> {
  let json;
  try {
    json = await connection.client.schema(database);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new CliError(`failed to find database \`${database}\`.`, [
        `No database named '${database}' on ${connection.serverUrl}. Create it with \`publish ${database}\`.`,
      ]);
    }
    if (error instanceof ApiError) return undefined; // call anyway, without the argument checks
    throw error;
  }
  try {
    return summariseModule(json);
  } catch {
    return undefined;
  }
}

function findFunction(
  module: ModuleSummary,
  name: string,
): { kind: "reducer" | "procedure"; fn: FunctionSummary } | undefined {
  const reducer = module.reducers.find((r) => r.name === name);
  if (reducer) return { kind: "reducer", fn: reducer };
  const procedure = module.procedures.find((p) => p.name === name);
  if (procedure) return { kind: "procedure", fn: procedure };
  return undefined;
}

async function noSuchFunction(
  connection: Connection,
  database: string,
  name: string,
  module: ModuleSummary,
): Promise<CliError> {
  let identity = "";
  try {
    identity = await connection.client.databaseIdentity(database);
  } catch {
    // identity is only decoration here
  }
  const message = `No such reducer OR procedure \`${name}\` for database \`${database}\`` +
    (identity ? ` resolving to identity \`${identity}\`.` : ".");
  const callableReducers = module.reducers.filter((r) => r.callable).map((r) => r.name);
  const procedures = module.procedures.filter((p) => p.callable).map((p) => p.name);
  const hints: string[] = [];
  const similarReducer = similarName(name, callableReducers);
  const similarProcedure = similarReducer ? undefined : similarName(name, procedures);
  if (similarReducer) hints.push(`A reducer with a similar name exists: \`${similarReducer}\``);
  else if (similarProcedure) {
    hints.push(`A procedure with a similar name exists: \`${similarProcedure}\``);
  } else if (callableReducers.length === 0) hints.push("The database has no reducers.");
  else {
    hints.push("Here are some existing reducers:");
    for (const reducer of callableReducers.slice(0, 10)) hints.push(`- ${reducer}`);
    if (callableReducers.length > 10) {
      hints.push(`... (${callableReducers.length - 10} reducers not shown)`);
    }
  }
  return new CliError(message, hints);
}

/** Encodes CLI arguments as a JSON array text, checked against the parameter list. */
export function encodeArgs(
  name: string,
  fn: FunctionSummary,
  rawArgs: string[],
  kind: "reducer" | "procedure" = "reducer",
): string {
  if (rawArgs.length !== fn.params.length) {
    throw new CliError(`Invalid arguments provided for ${kind} \`${name}\``, [
      `${fn.params.length} parameters were expected, but ${rawArgs.length} were provided.`,
      `The ${kind} has the following signature:`,
      `\t${signatureOf(fn)}`,
    ]);
  }
  return `[${rawArgs.map((arg, i) => encodeArg(name, fn, fn.params[i], arg)).join(",")}]`;
}

const HEX_ID = /^(0x)?[0-9a-fA-F]+$/;

/** One argument as JSON text; the original text is kept so big integers stay exact. */
function encodeArg(
  name: string,
  fn: FunctionSummary,
  param: ColumnSummary,
  arg: string,
): string {
  if (param.type === "String" && !isJsonString(arg)) return JSON.stringify(arg);
  if ((param.type === "Identity" || param.type === "ConnectionId") && HEX_ID.test(arg)) {
    return JSON.stringify(arg.startsWith("0x") ? arg : `0x${arg}`);
  }
  try {
    JSON.parse(arg);
    return arg;
  } catch {
    // A bare word for an enum parameter means its unit variant: `call db set_mode Fast`.
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(arg) && param.type.includes("|")) {
      return JSON.stringify({ [arg]: [] });
    }
    throw new CliError(
      `Argument \`${param.name}\` (${param.type}) is not valid JSON: '${arg}'`,
      [`The function has the following signature:`, `\t${signatureOf(fn)}`, quotingHint(name)],
    );
  }
}

function quotingHint(name: string): string {
  return `Strings inside JSON need quotes: call <db> ${name} '"text"'`;
}

function isJsonString(arg: string): boolean {
  if (!arg.startsWith('"')) return false;
  try {
    return typeof JSON.parse(arg) === "string";
  } catch {
    return false;
  }
}

/** Without a schema: JSON when it parses, else the text as a string. */
function encodeLoose(arg: string): string {
  try {
    JSON.parse(arg);
    return arg;
  } catch {
    return JSON.stringify(arg);
  }
}
