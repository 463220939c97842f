/** What every command gets: the terminal, the config file, and a way to reach a server. */
import { QUOTA_REACHED_PREFIX } from "../lib/errors.ts";
import { ApiClient, type ApiError } from "./api_client.ts";
import { CliConfig, identityOfToken } from "./config.ts";
import type { CliIo } from "./io.ts";
import { loadProjectConfig, type ProjectConfig } from "./project_config.ts";

export interface CliContext {
  io: CliIo;
  /** Path of the CLI config file (resolved by runCli). */
  configPath: string;
  /** Replaces global fetch (tests). */
  fetch?: typeof fetch;
  /** `--no-config`: ignore spacetime.json. */
  noConfig?: boolean;
  /** `--env ENV`: also load spacetime.ENV.json and spacetime.ENV.local.json. */
  env?: string;
}

/** The project config (spacetime.json) for this command, unless --no-config. */
export async function projectConfig(
  ctx: CliContext,
  options: { env?: string } = {},
): Promise<ProjectConfig | undefined> {
  if (ctx.noConfig) return undefined;
  return await loadProjectConfig({ env: options.env ?? ctx.env });
}

/** Prints `Using configuration from FILE` for each file of the project config. */
export function announceConfig(ctx: CliContext, config: ProjectConfig | undefined): void {
  for (const file of config?.files ?? []) ctx.io.err(`Using configuration from ${file}\n`);
}

export interface Connection {
  client: ApiClient;
  config: CliConfig;
  serverUrl: string;
  serverLabel: string;
  /** The identity of the token in use, when there is one. */
  identity?: string;
}

/**
 * Resolves `-s` and the token for that server. With `login: true` and no saved token, asks
 * the server for a new identity (POST /v1/identity) and saves its token, so the same user
 * can publish again later as the owner.
 */
export async function connect(
  ctx: CliContext,
  options: { server?: string; anonymous?: boolean; login?: boolean },
): Promise<Connection> {
  const config = await CliConfig.load(ctx.configPath);
  const { url, label } = config.resolveServer(options.server);
  let token = options.anonymous ? undefined : config.tokenFor(url);
  if (token && options.login && isLoopback(url) && !await tokenAccepted(ctx, url, token)) {
    // A local server with new keys (a new data dir): the saved token can never work there
    // again, so get a new identity rather than fail every command (remote servers keep the
    // token and the 401 hint: that could be a configuration problem worth seeing).
    ctx.io.err(
      `The token saved for ${url} was not signed by this server (it has new keys, e.g. a new ` +
        "data dir); logging in again with a new identity.\n",
    );
    token = undefined;
  }
  if (!token && options.login && !options.anonymous) {
    const anonymousClient = new ApiClient(url, { fetch: ctx.fetch });
    const issued = await anonymousClient.createIdentity();
    token = issued.token;
    config.setToken(url, token);
    await config.save(ctx.io);
    ctx.io.err(
      `We have logged in directly to your target server (${url}).\n` +
        `Logged in with identity ${issued.identity}\n`,
    );
  }
  return {
    client: new ApiClient(url, { token, fetch: ctx.fetch }),
    config,
    serverUrl: url,
    serverLabel: label,
    identity: token ? identityOfToken(token) : undefined,
  };
}

/** Hints for a 401/403 so users know what ownership and saved tokens mean. */
export function authHints(error: ApiError, connection: Connection): string[] {
  if (error.status === 401 && connection.identity !== undefined) {
    return [
      `The server rejected the token saved for ${connection.serverUrl} (its keys may have ` +
      "changed, e.g. it was started with a new data dir).",
      `Run \`logout -s ${connection.serverUrl}\` to forget it; the next publish gets a new identity.`,
    ];
  }
  // A 403 for a server-wide bound (`Database quota reached: …`) names its flag itself; it is
  // not about who owns the database.
  if (error.status === 403 && !error.message.startsWith(QUOTA_REACHED_PREFIX)) {
    return [
      connection.identity
        ? `You are identity ${connection.identity}; only the database's owner may do this.`
        : "You are not logged in to this server, and only the database's owner may do this.",
    ];
  }
  return [];
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "localhost" || host === "127.0.0.1" || host === "[::1]";
}

/** Asks the server whether it accepts `token` (GET /v1/identity/ID/verify); true if unsure. */
async function tokenAccepted(ctx: CliContext, url: string, token: string): Promise<boolean> {
  const identity = identityOfToken(token);
  if (identity === undefined) return true;
  try {
    const response = await (ctx.fetch ?? fetch)(`${url}/v1/identity/${identity}/verify`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    await response.body?.cancel();
    return response.status !== 401;
  } catch {
    return true; // unreachable: the command itself reports that
  }
}
