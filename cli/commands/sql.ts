/** `sql DATABASE [QUERY]`: one SQL query, or an interactive session when no query is given. */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { authHints, type CliContext, connect, type Connection, projectConfig } from "../context.ts";
import { applyProjectDatabase } from "../project_config.ts";
import { CliError, UsageError } from "../errors.ts";
import {
  formatDuration,
  parseSqlResponse,
  renderStatement,
  splitStatements,
  statsLine,
} from "../sql_format.ts";
import { parseJson } from "../../protocol/mod.ts";

export const SQL_HELP = `Run a SQL query on a database

Usage: sql [OPTIONS] <DATABASE> [QUERY]

Arguments:
  <DATABASE>  Database name or identity
  [QUERY]     The SQL query to run. Without it (or with --interactive), starts a session

Options:
      --interactive          Read queries from the terminal (or piped stdin), one result per query
      --format <FORMAT>      text (tables, default) or json (the server's response as is)
      --confirmed <BOOL>     true (default): answer once the state read is durable; false: at once
  -s, --server <SERVER>      Server URL or saved nickname (default: local)
      --anonymous            Query without your saved identity (public tables only)
  -h, --help                 Print help

Interactive session: a query ends with \`;\` and may span lines; each result is followed by
\`(N rows) [server: …]\` and \`Roundtrip time: …\`. Errors are printed and the session goes on.
\`.exit\`, \`\\q\`, \`quit\` or \`exit\` (or end of input) leaves; \`.clear\` clears the screen.

Examples:
  sql my-db "SELECT * FROM person"
  sql my-db "SELECT * FROM person WHERE name = 'Alice'" --format json
  echo "SELECT * FROM person;" | sql my-db --interactive`;

/** SpacetimeDB prints this on stderr before running `sql` and `subscribe`. */
export const UNSTABLE_WARNING =
  "WARNING: This command is UNSTABLE and subject to breaking changes.";

const FLAGS = {
  server: { type: "string", short: "s" },
  anonymous: { type: "boolean" },
  interactive: { type: "boolean" },
  format: { type: "string" },
  confirmed: { type: "string" },
} as const;

interface SqlOptions {
  format: "text" | "json";
  confirmed?: boolean;
}

export async function runSql(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("sql", args, FLAGS);
  const project = applyProjectDatabase(
    await projectConfig(ctx),
    parsed.positionals,
    "sql",
  );
  const positionals = project.positionals;
  const flags = {
    ...parsed.flags,
    server: parsed.flags.server ?? project.server,
    anonymous: parsed.flags.anonymous ?? project.anonymous,
  };
  expectPositionals("sql", positionals, { required: ["DATABASE"], optional: ["QUERY"] });
  const [database, query] = positionals;
  if (flags.interactive && query !== undefined) {
    throw new UsageError("the argument '--interactive' cannot be used with '[QUERY]'", "sql");
  }
  const format = flags.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`invalid value '${format}' for '--format': use text or json`, "sql");
  }
  let confirmed: boolean | undefined;
  if (flags.confirmed !== undefined) {
    if (flags.confirmed !== "true" && flags.confirmed !== "false") {
      throw new UsageError(
        `invalid value '${flags.confirmed}' for '--confirmed': use true or false`,
        "sql",
      );
    }
    confirmed = flags.confirmed === "true";
  }
  const options: SqlOptions = { format, confirmed };
  ctx.io.err(`${UNSTABLE_WARNING}\n\n`);
  const connection = await connect(ctx, { server: flags.server, anonymous: flags.anonymous });
  if (query === undefined) return await repl(ctx, connection, database, options);

  const { text } = await runOne(connection, database, query, options);
  ctx.io.out(text);
  return 0;
}

/** Sends one query; returns what to print. Failures are CliErrors with the server's text. */
async function runOne(
  connection: Connection,
  database: string,
  query: string,
  options: SqlOptions,
  withStats = false,
): Promise<{ text: string }> {
  let body: string;
  try {
    body = await connection.client.sql(database, query, { confirmed: options.confirmed });
  } catch (error) {
    throw sqlError(error, connection, database);
  }
  if (options.format === "json") return { text: body.endsWith("\n") ? body : body + "\n" };
  let json: unknown;
  try {
    json = parseJson(body);
  } catch {
    throw new CliError(`malformed sql response (not JSON): ${body.slice(0, 200)}`);
  }
  const results = parseSqlResponse(json);
  if (results.length === 0) return { text: "OK\n" };
  const blocks = results.map((result) =>
    renderStatement(result) + (withStats ? statsLine(result) + "\n" : "")
  );
  return { text: blocks.join("\n") };
}

function sqlError(error: unknown, connection: Connection, database: string): unknown {
  if (!(error instanceof ApiError)) return error;
  if (error.status === 404) {
    return new CliError(`failed to find database \`${database}\`.`);
  }
  return new CliError(error.message, authHints(error, connection));
}

const REPL_BANNER = `┌──────────────────────────────────────────────────────────┐
│ .exit: Exit the REPL                                     │
│ .clear: Clear the Screen                                 │
│                                                          │
│ End a query with ';' (it may span several lines).        │
└──────────────────────────────────────────────────────────┘
`;

const EXIT_COMMANDS = new Set([".exit", "\\q", "quit", "exit"]);

/**
 * The interactive session. Prompts and the banner are shown only on a terminal, so piped
 * input gives clean output. Each failed query prints `Error: …` and the session goes on.
 */
async function repl(
  ctx: CliContext,
  connection: Connection,
  database: string,
  options: SqlOptions,
): Promise<number> {
  const io = ctx.io;
  // Fail at once (not at the first query) when the database does not exist.
  try {
    await connection.client.databaseIdentity(database);
  } catch (error) {
    throw sqlError(error, connection, database);
  }
  if (io.interactive) io.out(REPL_BANNER);
  const prompt = `🪐${database}> `;
  const continuation = `${" ".repeat(database.length + 1)}-> `;
  let pending = "";
  while (true) {
    if (io.interactive) io.out(pending.trim() === "" ? prompt : continuation);
    const line = await readLineOrInterrupt(ctx);
    if (line === "interrupted") {
      io.err("Aborted!\n");
      return 0;
    }
    if (line === null) {
      // End of input: run what is left even without a final `;`.
      if (pending.trim() !== "") await runAndPrint(ctx, connection, database, pending, options);
      if (io.interactive) io.out("\n");
      return 0;
    }
    const command = line.trim();
    if (pending.trim() === "") {
      if (EXIT_COMMANDS.has(command) || EXIT_COMMANDS.has(command.replace(/;$/, ""))) return 0;
      if (command === ".clear") {
        if (io.colour) io.out("\x1b[2J\x1b[H");
        continue;
      }
    }
    const { statements, rest } = splitStatements(pending + line + "\n");
    pending = rest;
    for (const statement of statements) {
      await runAndPrint(ctx, connection, database, statement, options);
    }
  }
}

async function runAndPrint(
  ctx: CliContext,
  connection: Connection,
  database: string,
  statement: string,
  options: SqlOptions,
): Promise<void> {
  const started = performance.now();
  try {
    const { text } = await runOne(connection, database, statement.trim(), options, true);
    ctx.io.out(text);
    if (options.format === "text") {
      ctx.io.out(`Roundtrip time: ${formatDuration(performance.now() - started)}\n`);
    }
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    ctx.io.err(`Error: ${error.message}\n`);
    for (const hint of error.hints) ctx.io.err(`  ${hint}\n`);
  }
}

async function readLineOrInterrupt(ctx: CliContext): Promise<string | null | "interrupted"> {
  const signal = ctx.io.interrupt;
  if (signal.aborted) return "interrupted";
  let onAbort: () => void = () => {};
  const aborted = new Promise<"interrupted">((resolve) => {
    onAbort = () => resolve("interrupted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([ctx.io.readLine(), aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
