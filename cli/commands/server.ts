/**
 * `server add|list|set-default|remove|ping|fingerprint|edit|clear`: the servers saved in the CLI
 * config, and the local server's data directory.
 */
import { ApiClient } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { CliConfig } from "../config.ts";
import type { CliContext } from "../context.ts";
import { CliError, UsageError } from "../errors.ts";
import { confirm } from "../io.ts";
import { formatTable } from "../table_format.ts";
import { devDataDir } from "./dev.ts";

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

const FINGERPRINT_HELP = `Fetch a saved server's public key and save it when it changed

Usage: server fingerprint <SERVER> [OPTIONS]

Arguments:
  <SERVER>  Nickname or host of a saved server

Options:
  -y, --yes   Save a changed key without asking
  -h, --help  Print help

The key (GET /v1/identity/public-key) is compared with the one saved by \`server add\`,
\`fingerprint\` or \`edit\`; a different key means the server signs tokens with another key
(a new data directory, or another server at that address).

Examples:
  server fingerprint local`;

const EDIT_HELP = `Rename a saved server or point it at another URL

Usage: server edit <SERVER> [OPTIONS]

Arguments:
  <SERVER>  Nickname or host of a saved server

Options:
      --new-name <NAME>   Its new nickname
      --url <URL>         Its new URL (http://HOST:PORT or https://HOST); the token and key
                          saved for the old URL are forgotten
      --no-fingerprint    With --url: do not contact the new server
  -y, --yes               Do not ask for confirmation
  -h, --help              Print help

Examples:
  server edit staging --new-name prod -y
  server edit lan --url http://192.168.1.30:3000 --no-fingerprint`;

const CLEAR_HELP = `Delete the local server's data directory (every local database, for good)

Usage: server clear [OPTIONS]

Options:
      --data-dir <DIR>  The data directory (default: the one \`dev\` starts a server with:
                        $LIGHTCONE_DATA_DIR, else $XDG_DATA_HOME/lightcone/data or
                        ~/.local/share/lightcone/data)
  -y, --yes             Do not ask for confirmation
  -h, --help            Print help

Refused while the default server is local and answers (deleting a running server's files loses
what it has not written yet): stop it first.

Examples:
  server clear -y
  server clear --data-dir ./lightcone-data`;

const SUBCOMMANDS: Record<string, { help: string; summary: string }> = {
  add: { help: ADD_HELP, summary: "Save a server under a nickname" },
  list: { help: LIST_HELP, summary: "Show the saved servers and which one is the default" },
  "set-default": { help: SET_DEFAULT_HELP, summary: "Make a saved server the default" },
  remove: { help: REMOVE_HELP, summary: "Forget a saved server and its token" },
  ping: { help: PING_HELP, summary: "Check that a server answers" },
  fingerprint: { help: FINGERPRINT_HELP, summary: "Fetch and save a server's public key" },
  edit: { help: EDIT_HELP, summary: "Rename a saved server or change its URL" },
  clear: { help: CLEAR_HELP, summary: "Delete the local server's data directory" },
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
    const { protocol, host } = parseServerUrl(flags.url);
    const nickname = positionals[0];
    if (nickname.includes("://")) throw new CliError(`Invalid server nickname: ${nickname}`);
    const config = await CliConfig.load(ctx.configPath);
    // Checked before contacting the server, so a clash is reported even when it is down.
    config.addServer({ nickname, host, protocol: protocol as "http" | "https" }, false);
    if (!flags["no-fingerprint"]) {
      const url = `${protocol}://${host}`;
      const key = await fetchFingerprint(ctx, url);
      io.out(`For server ${url}, got fingerprint:\n${key.trimEnd()}\n`);
      config.editServer(nickname, { key });
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
  if (sub === "fingerprint") {
    const { flags, positionals } = parseVerbArgs("server fingerprint", rest, {
      yes: { type: "boolean", short: "y" },
    });
    expectPositionals("server fingerprint", positionals, { required: ["SERVER"] });
    const config = await CliConfig.load(ctx.configPath);
    const server = config.findServer(positionals[0]);
    const url = `${server.protocol}://${server.host}`;
    const key = await fetchFingerprint(ctx, url);
    io.out(`For server ${url}, got fingerprint:\n${key.trimEnd()}\n`);
    if (server.ecdsa_public_key === key) {
      io.out(`Fingerprint is unchanged for server ${server.nickname}\n`);
      return 0;
    }
    if (server.ecdsa_public_key !== undefined) {
      io.err(
        `The fingerprint of server ${server.nickname} has changed: it now signs tokens with ` +
          "another key (a new data directory, or another server at that address).\n",
      );
      if (!flags.yes && !await confirm(io, "Continue?")) {
        throw new CliError("Aborting", ["Pass -y to save the new fingerprint without asking."]);
      }
    }
    config.editServer(server.nickname, { key });
    await config.save(io);
    io.out(`Saved the fingerprint of server ${server.nickname}\n`);
    return 0;
  }
  if (sub === "edit") {
    const { flags, positionals } = parseVerbArgs("server edit", rest, {
      "new-name": { type: "string" },
      url: { type: "string" },
      "no-fingerprint": { type: "boolean" },
      yes: { type: "boolean", short: "y" },
    });
    expectPositionals("server edit", positionals, { required: ["SERVER"] });
    if (flags["new-name"] === undefined && flags.url === undefined) {
      throw new UsageError("nothing to change: pass --new-name and/or --url", "server edit");
    }
    if (flags["no-fingerprint"] && flags.url === undefined) {
      throw new UsageError("--no-fingerprint only applies with --url", "server edit");
    }
    const newName = flags["new-name"];
    if (newName !== undefined && (newName === "" || newName.includes("://"))) {
      throw new CliError(`Invalid server nickname: ${newName}`);
    }
    const config = await CliConfig.load(ctx.configPath);
    const server = config.findServer(positionals[0]);
    const parsed = flags.url === undefined ? undefined : parseServerUrl(flags.url);
    const oldUrl = `${server.protocol}://${server.host}`;
    const lines: string[] = [];
    if (newName !== undefined) lines.push(`Nickname: ${server.nickname} -> ${newName}`);
    if (parsed) lines.push(`URL: ${oldUrl} -> ${parsed.protocol}://${parsed.host}`);
    let key: string | undefined;
    if (parsed && !flags["no-fingerprint"]) {
      key = await fetchFingerprint(ctx, `${parsed.protocol}://${parsed.host}`);
      lines.push(`New fingerprint:\n${key.trimEnd()}`);
    }
    io.out(`${lines.join("\n")}\n`);
    if (!flags.yes && !await confirm(io, "Continue?")) {
      throw new CliError("Aborting", ["Pass -y to edit without a question."]);
    }
    const edited = config.editServer(server.nickname, {
      nickname: newName,
      host: parsed?.host,
      protocol: parsed?.protocol,
      key,
    });
    await config.save(io);
    io.out(`Edited server ${edited.nickname} (${edited.protocol}://${edited.host})\n`);
    return 0;
  }
  if (sub === "clear") {
    const { flags, positionals } = parseVerbArgs("server clear", rest, {
      "data-dir": { type: "string" },
      yes: { type: "boolean", short: "y" },
    });
    expectPositionals("server clear", positionals, { required: [] });
    const dir = flags["data-dir"] ?? devDataDir(io);
    const config = await CliConfig.load(ctx.configPath);
    const { url } = config.resolveServer(undefined);
    if (["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname)) {
      const answers = await new ApiClient(url, { fetch: ctx.fetch }).ping().then(
        (status) => status < 500,
        () => false,
      );
      if (answers) {
        throw new CliError(`A server is running at ${url}; stop it before clearing its data`, [
          "Deleting the files of a running server loses what it has not written yet.",
        ]);
      }
    }
    let exists = true;
    try {
      await Deno.stat(dir);
    } catch {
      exists = false;
    }
    if (!exists) {
      io.out(`Local data directory ${dir} does not exist: nothing to clear\n`);
      return 0;
    }
    io.out(`Data directory: ${dir}\n`);
    if (
      !flags.yes &&
      !await confirm(io, "Are you sure you want to delete all data from the local database?")
    ) {
      throw new CliError("Aborting", ["Pass -y to delete without a question."]);
    }
    await Deno.remove(dir, { recursive: true });
    io.out(`Deleted all data from ${dir}\n`);
    return 0;
  }
  throw new UsageError(
    sub === undefined
      ? "a server subcommand is required (add, list, set-default, remove, ping, fingerprint, " +
        "edit, clear)"
      : `unknown server subcommand '${sub}'`,
    "server",
  );
}

/** `http://HOST:PORT` or `https://HOST` (trailing slashes allowed) as protocol and host. */
function parseServerUrl(url: string): { protocol: "http" | "https"; host: string } {
  const match = /^(https?):\/\/([^/\s]+)\/*$/.exec(url);
  if (!match) {
    throw new CliError(`Invalid url: ${url}`, ["Use the form http://HOST:PORT or https://HOST."]);
  }
  return { protocol: match[1] as "http" | "https", host: match[2] };
}

/** The server's public key (PEM), or a clear error when it does not answer. */
async function fetchFingerprint(ctx: CliContext, url: string): Promise<string> {
  try {
    const response = await (ctx.fetch ?? fetch)(`${url}/v1/identity/public-key`);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status}`);
    }
    return await response.text();
  } catch (error) {
    throw new CliError(`Unable to retrieve fingerprint for server: ${url}`, [
      `Is the server running? (${(error as Error).message}) Pass --no-fingerprint to go on anyway.`,
    ]);
  }
}
