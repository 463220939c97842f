/** `server ping [SERVER]`, `server list`: check and show servers. */
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { CliConfig } from "../config.ts";
import type { CliContext } from "../context.ts";
import { ApiClient } from "../api_client.ts";
import { UsageError } from "../errors.ts";
import { formatTable } from "../table_format.ts";

export const SERVER_HELP = `Check and list servers

Usage: server <COMMAND>

Commands:
  ping [SERVER]  Check that a server answers (GET /v1/ping); SERVER is a URL or nickname
  list           Show the saved servers and which one is the default

Options:
  -h, --help  Print help

Examples:
  server ping
  server ping http://127.0.0.1:3000`;

export async function runServer(args: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "ping") {
    const { flags, positionals } = parseVerbArgs("server ping", rest, {
      server: { type: "string", short: "s" },
    });
    expectPositionals("server ping", positionals, { required: [], optional: ["SERVER"] });
    const config = await CliConfig.load(ctx.configPath);
    const { url } = config.resolveServer(positionals[0] ?? flags.server);
    const status = await new ApiClient(url, { fetch: ctx.fetch }).ping();
    if (status >= 200 && status < 300) {
      ctx.io.out(`Server is online: ${url}\n`);
      return 0;
    }
    ctx.io.err(`Server returned ${status}: ${url}\n`);
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
    ctx.io.out(formatTable(["DEFAULT", "HOSTNAME", "PROTOCOL", "NICKNAME"], rows));
    return 0;
  }
  throw new UsageError(
    sub === undefined
      ? "a server subcommand is required (ping, list)"
      : `unknown server subcommand '${sub}'`,
    "server",
  );
}
