/**
 * The CLI's own config file: saved servers and one token per server URL. JSON at
 * `--config-path`, else $LIGHTCONE_CLI_CONFIG, else $XDG_CONFIG_HOME/lightcone/cli.json
 * (default ~/.config/lightcone/cli.json). Kept apart from the official CLI's cli.toml so
 * the two never fight over one file.
 */
import { CliError } from "./errors.ts";
import type { CliIo } from "./io.ts";

export interface ServerConfig {
  nickname: string;
  /** host:port, without protocol. */
  host: string;
  protocol: "http" | "https";
  /** The server's public key (PEM) as `server add`/`fingerprint`/`edit` last fetched it. */
  ecdsa_public_key?: string;
}

export interface CliConfigData {
  default_server: string;
  server_configs: ServerConfig[];
  /** Token per server URL (protocol://host), so servers with different keys coexist. */
  tokens: Record<string, string>;
}

export const DEFAULT_SERVER_URL = "http://127.0.0.1:3000";

export function defaultConfigData(): CliConfigData {
  return {
    default_server: "local",
    server_configs: [{ nickname: "local", host: "127.0.0.1:3000", protocol: "http" }],
    tokens: {},
  };
}

/** Where the config lives for this environment. */
export function configPathFor(io: CliIo, explicitPath?: string): string {
  if (explicitPath) return explicitPath;
  const fromEnv = io.env("LIGHTCONE_CLI_CONFIG");
  if (fromEnv) return fromEnv;
  const xdg = io.env("XDG_CONFIG_HOME");
  if (xdg) return `${xdg}/lightcone/cli.json`;
  const home = io.env("HOME") ?? io.env("USERPROFILE");
  if (!home) {
    throw new CliError("Cannot find a config directory: HOME is not set", [
      "Pass --config-path FILE or set LIGHTCONE_CLI_CONFIG.",
    ]);
  }
  return `${home}/.config/lightcone/cli.json`;
}

export class CliConfig {
  #path: string;
  #data: CliConfigData;

  private constructor(path: string, data: CliConfigData) {
    this.#path = path;
    this.#data = data;
  }

  static async load(path: string): Promise<CliConfig> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return new CliConfig(path, defaultConfigData());
      throw new CliError(`Cannot read config file '${path}': ${(error as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new CliError(`Config file '${path}' is not valid JSON: ${(error as Error).message}`);
    }
    return new CliConfig(path, normalise(raw));
  }

  get path(): string {
    return this.#path;
  }

  get data(): Readonly<CliConfigData> {
    return this.#data;
  }

  tokenFor(serverUrl: string): string | undefined {
    return this.#data.tokens[serverUrl];
  }

  setToken(serverUrl: string, token: string | undefined): void {
    if (token === undefined) delete this.#data.tokens[serverUrl];
    else this.#data.tokens[serverUrl] = token;
  }

  /** Writes the file atomically (temp file + rename) and says so on stderr. */
  async save(io: CliIo): Promise<void> {
    io.err(`Saving config to ${this.#path}.\n`);
    const slash = this.#path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(this.#path.slice(0, slash), { recursive: true });
    const temporary = `${this.#path}.tmp-${crypto.randomUUID()}`;
    await Deno.writeTextFile(temporary, JSON.stringify(this.#data, null, 2) + "\n", {
      mode: 0o600,
    });
    await Deno.rename(temporary, this.#path);
  }

  /** Saves a server under a nickname; `makeDefault` also makes it the default. */
  addServer(server: ServerConfig, makeDefault: boolean): void {
    const byName = this.#data.server_configs.find((s) => s.nickname === server.nickname);
    if (byName) {
      throw new CliError(
        `Server nickname ${server.nickname} already in use: ${byName.protocol}://${byName.host}`,
      );
    }
    if (this.#data.server_configs.some((s) => s.host === server.host)) {
      throw new CliError(`Server already configured for host: ${server.host}`);
    }
    this.#data.server_configs.push(server);
    if (makeDefault) this.#data.default_server = server.nickname;
  }

  /** The saved server named by nickname or host, or an error naming the choices. */
  findServer(name: string): ServerConfig {
    const match = this.#data.server_configs.find((s) => s.nickname === name || s.host === name);
    if (!match) {
      throw new CliError(`No such saved server configuration: ${name}`, [
        `Saved servers: ${this.#data.server_configs.map((s) => s.nickname).join(", ") || "none"}`,
      ]);
    }
    return match;
  }

  setDefaultServer(name: string): void {
    const match = this.#data.server_configs.find((s) => s.nickname === name || s.host === name);
    if (!match) throw new CliError(`Cannot set default server to unknown server ${name}`);
    this.#data.default_server = match.nickname;
  }

  /**
   * Renames a saved server and/or points it at another URL (its saved token and fingerprint
   * belong to the old URL and are dropped). Checks the same clashes as `addServer`.
   */
  editServer(
    name: string,
    change: { nickname?: string; host?: string; protocol?: "http" | "https"; key?: string },
  ): ServerConfig {
    const match = this.findServer(name);
    const others = this.#data.server_configs.filter((s) => s !== match);
    if (change.nickname !== undefined) {
      const byName = others.find((s) => s.nickname === change.nickname);
      if (byName) {
        throw new CliError(
          `Server nickname ${change.nickname} already in use: ${byName.protocol}://${byName.host}`,
        );
      }
    }
    if (change.host !== undefined && others.some((s) => s.host === change.host)) {
      throw new CliError(`Server already configured for host: ${change.host}`);
    }
    const oldUrl = `${match.protocol}://${match.host}`;
    if (change.nickname !== undefined) {
      if (this.#data.default_server === match.nickname) {
        this.#data.default_server = change.nickname;
      }
      match.nickname = change.nickname;
    }
    if (change.host !== undefined) match.host = change.host;
    if (change.protocol !== undefined) match.protocol = change.protocol;
    if (`${match.protocol}://${match.host}` !== oldUrl) {
      delete this.#data.tokens[oldUrl];
      delete match.ecdsa_public_key;
    }
    if (change.key !== undefined) match.ecdsa_public_key = change.key;
    return match;
  }

  /** Forgets a saved server and its token. */
  removeServer(name: string): ServerConfig {
    const match = this.findServer(name);
    this.#data.server_configs = this.#data.server_configs.filter((s) => s !== match);
    delete this.#data.tokens[`${match.protocol}://${match.host}`];
    return match;
  }

  /**
   * Turns a `-s/--server` value (or the default) into a base URL. A value containing
   * "://" is used as is; otherwise it must be a saved nickname or host.
   */
  resolveServer(server: string | undefined): { url: string; label: string } {
    const wanted = server ?? this.#data.default_server;
    if (wanted.includes("://")) {
      const url = wanted.replace(/\/+$/, "");
      if (!/^https?:\/\/[^/]+$/.test(url)) {
        throw new CliError(`Invalid server URL: '${wanted}'`, [
          "Use the form http://HOST:PORT or https://HOST.",
        ]);
      }
      return { url, label: url };
    }
    const match = this.#data.server_configs.find((s) => s.nickname === wanted || s.host === wanted);
    if (!match) {
      throw new CliError(`No such saved server configuration: ${wanted}`, [
        `Pass the URL instead, e.g. -s http://${wanted.includes(":") ? wanted : "127.0.0.1:3000"}`,
      ]);
    }
    return { url: `${match.protocol}://${match.host}`, label: match.nickname };
  }
}

function normalise(raw: unknown): CliConfigData {
  const data = defaultConfigData();
  if (typeof raw !== "object" || raw === null) return data;
  const record = raw as Record<string, unknown>;
  if (typeof record.default_server === "string") data.default_server = record.default_server;
  if (Array.isArray(record.server_configs)) {
    data.server_configs = record.server_configs.filter(isServerConfig);
  }
  if (typeof record.tokens === "object" && record.tokens !== null) {
    for (const [url, token] of Object.entries(record.tokens)) {
      if (typeof token === "string") data.tokens[url] = token;
    }
  }
  return data;
}

function isServerConfig(value: unknown): value is ServerConfig {
  const v = value as ServerConfig;
  return typeof v === "object" && v !== null && typeof v.nickname === "string" &&
    typeof v.host === "string" && (v.protocol === "http" || v.protocol === "https");
}

/** Reads `hex_identity` from a JWT payload without checking the signature. */
export function identityOfToken(token: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - base64.length % 4) % 4);
    const payload = JSON.parse(new TextDecoder().decode(
      Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)),
    ));
    return typeof payload.hex_identity === "string" ? payload.hex_identity : undefined;
  } catch {
    return undefined;
  }
}
