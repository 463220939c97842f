/** `login show`, `login --token JWT`, `logout`: the token saved per server. */
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { CliConfig, identityOfToken } from "../config.ts";
import { type CliContext, connect } from "../context.ts";
import { UsageError } from "../errors.ts";

export const LOGIN_HELP = `Manage the identity (token) the CLI uses for a server

Usage: login [OPTIONS]
       login show [--token]
       logout [OPTIONS]

Options:
      --token <JWT>      Save this token for the server instead of asking the server for one
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
  -h, --help             Print help

Without --token, \`login\` asks the server for a new identity (POST /v1/identity). Tokens are
saved per server in the CLI config. \`publish\` logs in the same way when needed.

Examples:
  login show
  login -s http://127.0.0.1:3000
  logout`;

export const LOGOUT_HELP = `Forget the token saved for a server

Usage: logout [OPTIONS]

Options:
  -s, --server <SERVER>  Server URL or saved nickname (default: local)
  -h, --help             Print help

The identity itself stays valid on the server; without its token you can no longer act as
it (e.g. update the databases it owns). The next \`publish\` or \`login\` gets a new identity.

Examples:
  logout
  logout -s http://127.0.0.1:3000`;

export async function runLogin(args: string[], ctx: CliContext): Promise<number> {
  if (args[0] === "show") {
    const { flags, positionals } = parseVerbArgs("login show", args.slice(1), {
      token: { type: "boolean" },
      server: { type: "string", short: "s" },
    });
    expectPositionals("login show", positionals, { required: [] });
    const config = await CliConfig.load(ctx.configPath);
    const { url } = config.resolveServer(flags.server);
    const token = config.tokenFor(url);
    if (!token) {
      ctx.io.out(`You are not logged in to ${url}. Run \`login\` to log in.\n`);
      return 0;
    }
    ctx.io.out(
      `You are logged in to ${url} as ${identityOfToken(token) ?? "(unknown identity)"}\n`,
    );
    if (flags.token) ctx.io.out(`Your auth token (don't share this!) is ${token}\n`);
    return 0;
  }
  const { flags, positionals } = parseVerbArgs("login", args, {
    token: { type: "string" },
    server: { type: "string", short: "s" },
  });
  expectPositionals("login", positionals, { required: [] });
  if (flags.token !== undefined) {
    const config = await CliConfig.load(ctx.configPath);
    const { url } = config.resolveServer(flags.server);
    config.setToken(url, flags.token);
    await config.save(ctx.io);
    const identity = identityOfToken(flags.token);
    ctx.io.out(identity ? `Logged in with identity ${identity}\n` : "Token saved.\n");
    return 0;
  }
  const config = await CliConfig.load(ctx.configPath);
  const { url } = config.resolveServer(flags.server);
  config.setToken(url, undefined);
  await config.save(ctx.io);
  await connect(ctx, { server: flags.server, login: true });
  return 0;
}

export async function runLogout(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals } = parseVerbArgs("logout", args, {
    server: { type: "string", short: "s" },
  });
  expectPositionals("logout", positionals, { required: [] });
  if (positionals.length > 0) throw new UsageError("logout takes no arguments", "logout");
  const config = await CliConfig.load(ctx.configPath);
  const { url } = config.resolveServer(flags.server);
  const token = config.tokenFor(url);
  if (!token) {
    ctx.io.out(`You are not logged in to ${url}.\n`);
    return 0;
  }
  config.setToken(url, undefined);
  await config.save(ctx.io);
  ctx.io.out(`Logged out of ${url} (identity ${identityOfToken(token) ?? "unknown"}).\n`);
  return 0;
}
