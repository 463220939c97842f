/** `server add|list|set-default|remove|ping`: the servers saved in the CLI config. */
import { ApiClient } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { CliConfig } from "../config.ts";
import type { CliContext } from "../context.ts";
import { CliError, UsageError } from "../errors.ts";
import { confirm } from "../io.ts";
import { formatTable } from "../table_format.ts";

const ADD_HELP = `Save a server under a nickname

Usage: server add <NAME> --url <URL> [OPTIONS]

Options:
      --url <URL>         http://HOST:PORT or https://HOST
  -d, --default           Make it the default server
      --no-fingerprint    Do not contact the server (it need not be running)
  -h, --help              Print help

Without --no-fingerprint the server must answer (GET /v1/identity/public-key); its public
key is printed so you can compare it with what the server's operator tells you.

Examples:
  server add staging --url https://db.example.com -d
  server add lan --url http://192.168.1.20:3000 --no-fingerprint`;

const LIST_HELP = `Show the saved servers; *** marks the default

Usage: server list

Options:
  -h, --help  Print help`;

const SET_DEFAULT_HELP = `Make a saved server the default (used when -s is not given)

Usage: server set-default <SERVER>

Arguments:
  <SERVER>  Nickname or host of a saved server

Options:
  -h, --help  Print help

Examples:
  server set-default local`;

const REMOVE_HELP = `Forget a saved server and the token saved for it

Usage: server remove <SERVER> [OPTIONS]

Arguments:
  <SERVER>  Nickname or host of a saved server

Options:
  -y, --yes   Do not ask for confirmation
  -h, --help  Print help

Examples:
  server remove staging -y`;

const PING_HELP = `Check that a server answers (GET /v1/ping)

Usage: server ping [SERVER]

Arguments:
  [SERVER]  URL or saved nickname (default: the default server)

Options:
  -h, --help  Print help

Examples:
  server ping
  server ping http://127.0.0.1:3000`;

const SUBCOMMANDS: Record<string, { help: string; summary: string }> = {
  add: { help: ADD_HELP, summary: "Save a server under a nickname" },
  list: { help: LIST_HELP, summary: "Show the saved servers and which one is the default" },
  "set-default": { help: SET_DEFAULT_HELP, summary: "Make a saved server the default" },
  remove: { help: REMOVE_HELP, summary: "Forget a saved server and its token" },
  ping: { help: PING_HELP, summary: "Check that a server answers" },
};

export const SERVER_HELP = `Manage the servers the CLI knows

Usage: server <COMMAND>

Commands:
${Object.entries(SUBCOMMANDS).map(([name, s]) => `  ${name.padEnd(12)} ${s.summary}`).join("\n")}

Options:
  -h, --help  Print help (\`server <COMMAND> --help\` for a command's own)

Examples:
  server list
  server add staging --url https://db.example.com
  server ping`;

/** The help text of `server SUB`, for `server SUB --help`. */
export function serverSubcommandHelp(args: string[]): string | undefined {
  const sub = args[0];
  return sub !== undefined && SUBCOMMANDS[sub] ? SUBCOMMANDS[sub].help : undefined;
}

export async function runServer(args: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = args;
  const io = ctx.io;
  if (sub === "ping") {
    const { flags, positionals } = parseVerbArgs("server ping", rest, {
      server: { type: "string", short: "s" },
    });
    expectPositionals("server ping", positionals, { required: [], optional: ["SERVER"] });
    const config = await CliConfig.load(ctx.configPath);
    const { url } = config.resolveServer(positionals[0] ?? flags.server);
    let status;
    try {
      status = await new ApiClient(url, { fetch: ctx.fetch }).ping();
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw new CliError(`Server could not be reached: ${url} (${(error as Error).message})`);
    }
    if (status >= 200 && status < 300) {
      io.out(`Server is online: ${url}\n`);
      return 0;
    }
    io.err(`Server returned ${status}: ${url}\n`);
    return 1;
  }
  if (sub === "list") {
    const { positionals } = parseVerbArgs("server list", rest, {});
    expectPositionals("server list", positionals, { required: [] });
    const config = await CliConfig.load(ctx.configPath);
    const rows = config.data.server_configs.map((s) => [
      s.nickname === config.data.default_server ? "***" : "",
      s.host,
      s.protocol,
      s.nickname,
    ]);
    io.out(formatTable(["DEFAULT", "HOSTNAME", "PROTOCOL", "NICKNAME"], rows));
    return 0;
  }
  if (sub === "add") {
    const { flags, positionals } = parseVerbArgs("server add", rest, {
      url: { type: "string" },
      default: { type: "boolean", short: "d" },
      "no-fingerprint": { type: "boolean" },
    });
    expectPositionals("server add", positionals, { required: ["NAME"] });
    if (flags.url === undefined) {
      throw new UsageError(
        "the following required arguments were not provided: --url <URL>",
        "server add",
      );
    }
    const match = /^(https?):\/\/([^/\s]+)\/*$/.exec(flags.url);
    if (!match) {
      throw new CliError(`Invalid url: ${flags.url}`, [
        "Use the form http://HOST:PORT or https://HOST.",
      ]);
    }
    const [, protocol, host] = match;
    const nickname = positionals[0];
    if (nickname.includes("://")) throw new CliError(`Invalid server nickname: ${nickname}`);
    const config = await CliConfig.load(ctx.configPath);
    // Checked before contacting the server, so a clash is reported even when it is down.
    config.addServer({ nickname, host, protocol: protocol as "http" | "https" }, false);
    if (!flags["no-fingerprint"]) {
      const url = `${protocol}://${host}`;
      let key: string;
      try {
        const response = await (ctx.fetch ?? fetch)(`${url}/v1/identity/public-key`);
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        key = await response.text();
      } catch (error) {
        throw new CliError(`Unable to retrieve fingerprint for server: ${url}`, [
          `Is the server running? (${
            (error as Error).message
          }) Pass --no-fingerprint to add it anyway.`,
        ]);
      }
      io.out(`For server ${url}, got fingerprint:\n${key.trimEnd()}\n`);
    }
    if (flags.default) config.setDefaultServer(nickname);
    await config.save(io);
    io.out(`Host: ${host}\nProtocol: ${protocol}\n`);
    if (flags.default) io.out(`Default server: ${nickname}\n`);
    return 0;
  }
  if (sub === "set-default") {
    const { positionals } = parseVerbArgs("server set-default", rest, {});
    expectPositionals("server set-default", positionals, { required: ["SERVER"] });
    const config = await CliConfig.load(ctx.configPath);
    config.setDefaultServer(positionals[0]);
    await config.save(io);
    io.out(`Default server: ${config.data.default_server}\n`);
    return 0;
  }
  if (sub === "remove") {
    const { flags, positionals } = parseVerbArgs("server remove", rest, {
      yes: { type: "boolean", short: "y" },
    });
    expectPositionals("server remove", positionals, { required: ["SERVER"] });
    const config = await CliConfig.load(ctx.configPath);
    const server = config.findServer(positionals[0]);
    if (!flags.yes) {
      const proceed = await confirm(
        io,
        `Remove server ${server.nickname} (${server.protocol}://${server.host}) and its saved token?`,
      );
      if (!proceed) throw new CliError("Aborting", ["Pass -y to remove without a question."]);
    }
    config.removeServer(positionals[0]);
    if (config.data.default_server === server.nickname) {
      io.err(
        `Note: ${server.nickname} was the default server; pick another with \`server set-default\`.\n`,
      );
    }
    await config.save(io);
    io.out(`Removed server ${server.nickname}\n`);
    return 0;
  }
  throw new UsageError(
    sub === undefined
      ? "a server subcommand is required (add, list, set-default, remove, ping)"
      : `unknown server subcommand '${sub}'`,
    "server",
  );
}
