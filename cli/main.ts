/**
 * The CLI's entry: `runCli(["publish", "my-db", ...])` runs one verb and returns the exit
 * code (0 ok, 1 failure). User errors print `Error: <message>` and hints, never a stack.
 */
import { configPathFor } from "./config.ts";
import type { CliContext } from "./context.ts";
import { CliError, UsageError } from "./errors.ts";
import { type CliIo, terminalIo } from "./io.ts";
import { BUILD_HELP, runBuild } from "./commands/build.ts";
import { INIT_HELP, runInit } from "./commands/init.ts";
import { DEV_HELP, runDev } from "./commands/dev.ts";
import { RENAME_HELP, runRename } from "./commands/rename.ts";
import { GENERATE_HELP, runGenerate } from "./commands/generate.ts";
import { PUBLISH_HELP, runPublish } from "./commands/publish.ts";
import { CALL_HELP, runCall } from "./commands/call.ts";
import { LOGS_HELP, runLogs } from "./commands/logs.ts";
import { DESCRIBE_HELP, runDescribe } from "./commands/describe.ts";
import { DELETE_HELP, runDelete } from "./commands/delete.ts";
import { LIST_HELP, runList } from "./commands/list.ts";
import { runServer, SERVER_HELP, serverSubcommandHelp } from "./commands/server.ts";
import { LOGIN_HELP, LOGOUT_HELP, runLogin, runLogout } from "./commands/login.ts";
import { runSql, SQL_HELP } from "./commands/sql.ts";
import { runSubscribe, SUBSCRIBE_HELP } from "./commands/subscribe.ts";

export interface RunCliOptions {
  /** Defaults to the real terminal. */
  io?: CliIo;
  /** Replaces global fetch (tests). */
  fetch?: typeof fetch;
}

interface Verb {
  summary: string;
  help: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

const VERBS: Record<string, Verb> = {
  init: { summary: "Create a new project from a template", help: INIT_HELP, run: runInit },
  dev: {
    summary: "Rebuild, republish and regenerate bindings on every save",
    help: DEV_HELP,
    run: runDev,
  },
  build: { summary: "Build a module project into dist/bundle.js", help: BUILD_HELP, run: runBuild },
  publish: {
    summary: "Build and publish a module to a database (create or update)",
    help: PUBLISH_HELP,
    run: runPublish,
  },
  generate: {
    summary: "Generate client bindings (TypeScript) for a module",
    help: GENERATE_HELP,
    run: runGenerate,
  },
  call: { summary: "Call a reducer or procedure", help: CALL_HELP, run: runCall },
  sql: { summary: "Run a SQL query, or an interactive SQL session", help: SQL_HELP, run: runSql },
  subscribe: {
    summary: "Subscribe to SQL queries and print updates as JSON lines",
    help: SUBSCRIBE_HELP,
    run: runSubscribe,
  },
  logs: { summary: "Print or follow a database's log", help: LOGS_HELP, run: runLogs },
  describe: {
    summary: "Show a database's tables and reducers",
    help: DESCRIBE_HELP,
    run: runDescribe,
  },
  delete: { summary: "Delete a database", help: DELETE_HELP, run: runDelete },
  rename: { summary: "Give a database a new name", help: RENAME_HELP, run: runRename },
  list: { summary: "List the databases you own", help: LIST_HELP, run: runList },
  server: {
    summary: "Manage saved servers: add, list, set-default, remove, ping, fingerprint, edit, clear",
    help: SERVER_HELP,
    run: runServer,
  },
  login: { summary: "Get or show the identity used for a server", help: LOGIN_HELP, run: runLogin },
  logout: { summary: "Forget the saved token for a server", help: LOGOUT_HELP, run: runLogout },
};

export function mainHelp(): string {
  const width = Math.max(...Object.keys(VERBS).map((v) => v.length));
  return `Lightcone: a SpacetimeDB-compatible database server and its CLI

Usage: lightcone <COMMAND> [OPTIONS]

Commands:
  start       Start the server (see \`start --help\`)
${
    Object.entries(VERBS).map(([name, verb]) => `  ${name.padEnd(width)}  ${verb.summary}`).join(
      "\n",
    )
  }
  help        Print this message or the help of a command

Global options:
      --config-path <FILE>  CLI config file (default: ~/.config/lightcone/cli.json,
                            or $LIGHTCONE_CLI_CONFIG)
      --no-config           Ignore the project config (spacetime.json)
      --env <ENV>           Also read spacetime.<ENV>.json and spacetime.<ENV>.local.json
  -h, --help                Print help

A first session:
  lightcone start                 # terminal 1: the server on 127.0.0.1:3000
  lightcone init my-app           # a module, a client and spacetime.json in ./my-app
  cd my-app
  lightcone publish               # build spacetimedb/ and publish it (name from spacetime.json)
  lightcone generate              # client bindings in src/module_bindings
  lightcone call add Alice
  lightcone sql "SELECT * FROM person"
  lightcone dev                   # rebuild, republish, regenerate on every save

Install the command once from the repository: deno task install
`;
}

export async function runCli(args: string[], options: RunCliOptions = {}): Promise<number> {
  const io = options.io ?? terminalIo();
  try {
    const { rest, configPath, noConfig, env } = extractGlobalFlags(args);
    const [verbName, ...verbArgs] = rest;
    if (verbName === undefined || verbName === "-h" || verbName === "--help") {
      io.out(mainHelp());
      return verbName === undefined ? 1 : 0;
    }
    if (verbName === "help") {
      const topic = verbArgs[0];
      if (topic === undefined) io.out(mainHelp());
      else if (VERBS[topic]) io.out(`${VERBS[topic].help}\n`);
      else throw new UsageError(`unrecognized subcommand '${topic}'`);
      return 0;
    }
    const verb = VERBS[verbName];
    if (!verb) {
      throw new UsageError(`unrecognized subcommand '${verbName}'`);
    }
    if (verbArgs.includes("-h") || verbArgs.includes("--help")) {
      const terminator = verbArgs.indexOf("--");
      const helpAt = Math.max(verbArgs.indexOf("-h"), verbArgs.indexOf("--help"));
      if (terminator === -1 || helpAt < terminator) {
        const ownHelp = verbName === "server" ? serverSubcommandHelp(verbArgs) : undefined;
        io.out(`${ownHelp ?? verb.help}\n`);
        return 0;
      }
    }
    const ctx: CliContext = {
      io,
      configPath: configPathFor(io, configPath),
      fetch: options.fetch,
      noConfig,
      env,
    };
    return await verb.run(verbArgs, ctx);
  } catch (error) {
    return reportError(io, error);
  }
}

interface GlobalFlags {
  rest: string[];
  configPath?: string;
  noConfig: boolean;
  env?: string;
}

function extractGlobalFlags(args: string[]): GlobalFlags {
  const rest: string[] = [];
  let configPath: string | undefined;
  let noConfig = false;
  let env: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (arg === "--config-path") {
      configPath = args[++i];
      if (configPath === undefined) {
        throw new UsageError(
          "a value is required for '--config-path <FILE>' but none was supplied",
        );
      }
    } else if (arg.startsWith("--config-path=")) {
      configPath = arg.slice("--config-path=".length);
    } else if (arg === "--no-config") {
      noConfig = true;
    } else if (arg === "--env") {
      env = args[++i];
      if (env === undefined) {
        throw new UsageError("a value is required for '--env <ENV>' but none was supplied");
      }
    } else if (arg.startsWith("--env=")) {
      env = arg.slice("--env=".length);
    } else {
      rest.push(arg);
    }
  }
  return { rest, configPath, noConfig, env };
}

function reportError(io: CliIo, error: unknown): number {
  if (error instanceof CliError) {
    io.err(`Error: ${error.message}\n`);
    for (const hint of error.hints) io.err(`  ${hint}\n`);
    return 1;
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotFound) {
    io.err(`Error: ${(error as Error).message}\n`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.err(`Error: ${message}\n`);
  if (io.env("LIGHTCONE_CLI_DEBUG")) io.err(`${(error as Error)?.stack ?? ""}\n`);
  else io.err("  (unexpected; set LIGHTCONE_CLI_DEBUG=1 to see where it came from)\n");
  return 1;
}
