/**
 * The HTTP API of a Lightcone (or SpacetimeDB) server, as the CLI uses it. One method per
 * route; failures become ApiError with the status and the server's text, and an
 * unreachable server becomes a CliError that says how to start one.
 */
import { CliError } from "./errors.ts";

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly body: string,
    readonly url: string,
    readonly method: string,
  ) {
    super(body.trim() !== "" ? body.trim() : `HTTP ${status} from ${method} ${url}`);
  }
}

export interface PublishSuccess {
  domain: string | null;
  database_identity: string;
  op: "created" | "updated";
}

export type PublishResult =
  | { Success: PublishSuccess }
  | { PermissionDenied: { name: string } };

export type PrePublishResult =
  | {
    AutoMigrate: {
      migrate_plan: string;
      break_clients: boolean;
      token: string;
      major_version_upgrade?: boolean;
    };
  }
  | { ManualMigrate: { reason: string; major_version_upgrade?: boolean } }
  /** The database does not exist yet (404). */
  | { NotFound: true };

/** What runs a module, as the publish routes' `host_type` names it. */
export type HostType = "Js" | "Wasm";

export interface PublishOptions {
  /** Js (a JavaScript bundle, the default) or Wasm (a WebAssembly binary). */
  hostType?: HostType;
  name?: string;
  clear?: boolean;
  migrationToken?: string;
  breakClients?: boolean;
}

/** One reducer/procedure call outcome (only 2xx; errors throw ApiError). */
export interface CallResult {
  status: number;
  body: string;
}

export class ApiClient {
  #baseUrl: string;
  #token: string | undefined;
  #fetch: typeof fetch;

  constructor(baseUrl: string, options: { token?: string; fetch?: typeof fetch } = {}) {
    this.#baseUrl = baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
  }

  get baseUrl(): string {
    return this.#baseUrl;
  }

  /** GET /v1/ping; returns the HTTP status (does not throw on non-2xx). */
  async ping(): Promise<number> {
    const response = await this.#request("GET", "/v1/ping", { checked: false });
    await response.body?.cancel();
    return response.status;
  }

  /** POST /v1/identity: a new identity and its long-lived token. */
  async createIdentity(): Promise<{ identity: string; token: string }> {
    const response = await this.#request("POST", "/v1/identity", { auth: false });
    const body = await readJson(response) as { identity?: unknown; token?: unknown };
    if (typeof body.identity !== "string" || typeof body.token !== "string") {
      throw new CliError(`The server answered POST /v1/identity without an identity and token`);
    }
    return { identity: body.identity, token: body.token };
  }

  /**
   * POST /v1/database/NAME/pre_publish. A 404 means the database is new. `colour` asks for
   * the migration plan with ANSI colours (for a terminal).
   */
  async prePublish(
    name: string,
    program: Uint8Array<ArrayBuffer>,
    options: { colour?: boolean; hostType?: HostType } = {},
  ): Promise<PrePublishResult> {
    const style = options.colour ? "AnsiColor" : "NoColor";
    const path = `/v1/database/${encodeURIComponent(name)}/pre_publish` +
      `?host_type=${options.hostType ?? "Js"}&style=${style}&pretty_print_style=${style}`;
    const response = await this.#request("POST", path, { body: program, checked: false });
    if (response.status === 404) {
      await response.body?.cancel();
      return { NotFound: true };
    }
    if (!response.ok) throw await apiErrorOf(response, "POST");
    return await readJson(response) as PrePublishResult;
  }

  /** PUT /v1/database/NAME (or POST /v1/database without a name) with the module. */
  async publish(
    program: Uint8Array<ArrayBuffer>,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const query = new URLSearchParams({ host_type: options.hostType ?? "Js" });
    if (options.clear) query.set("clear", "true");
    if (options.migrationToken !== undefined) {
      query.set("token", options.migrationToken);
      query.set("policy", "BreakClients");
    }
    const path = options.name === undefined
      ? `/v1/database?${query}`
      : `/v1/database/${encodeURIComponent(options.name)}?${query}`;
    const method = options.name === undefined ? "POST" : "PUT";
    const response = await this.#request(method, path, { body: program, checked: false });
    if (response.status === 401) {
      const text = await response.text();
      try {
        const parsed = JSON.parse(text);
        if (parsed && typeof parsed === "object" && "PermissionDenied" in parsed) {
          return parsed as PublishResult;
        }
      } catch {
        // not JSON: fall through to a plain error
      }
      throw new ApiError(401, text, response.url, method);
    }
    if (!response.ok) throw await apiErrorOf(response, method);
    return await readJson(response) as PublishResult;
  }

  /** POST /v1/database/DB/call/FUNCTION; `argsJson` is the JSON array text (kept verbatim). */
  async call(database: string, name: string, argsJson: string): Promise<CallResult> {
    const path = `/v1/database/${encodeURIComponent(database)}/call/${encodeURIComponent(name)}`;
    const response = await this.#request("POST", path, {
      body: argsJson,
      contentType: "application/json",
    });
    return { status: response.status, body: await response.text() };
  }

  /** GET /v1/database/DB/schema?version=10, falling back to 9 on a 4xx other than 404. */
  async schema(database: string): Promise<unknown> {
    const base = `/v1/database/${encodeURIComponent(database)}/schema`;
    const response = await this.#request("GET", `${base}?version=10`, { checked: false });
    if (response.ok) return await readJson(response);
    if (response.status >= 400 && response.status < 500 && response.status !== 404) {
      await response.body?.cancel();
      const fallback = await this.#request("GET", `${base}?version=9`);
      return await readJson(fallback);
    }
    throw await apiErrorOf(response, "GET");
  }

  /**
   * GET /v1/database/DB/http-allow (Lightcone): the hosts the database's procedures may fetch
   * from; undefined when the server does not say (not the owner, or another server).
   */
  async httpAllowList(database: string): Promise<string[] | undefined> {
    const path = `/v1/database/${encodeURIComponent(database)}/http-allow`;
    const response = await this.#request("GET", path, { checked: false });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await readJson(response) as { allow?: unknown };
    return Array.isArray(body.allow) ? body.allow.map(String) : undefined;
  }

  /**
   * POST /v1/database/DB/sql with the query as the body; returns the response text (JSON).
   * `confirmed: false` answers before the state read is durable.
   */
  async sql(
    database: string,
    query: string,
    options: { confirmed?: boolean } = {},
  ): Promise<string> {
    const suffix = options.confirmed === undefined ? "" : `?confirmed=${options.confirmed}`;
    const path = `/v1/database/${encodeURIComponent(database)}/sql${suffix}`;
    const response = await this.#request("POST", path, { body: query, contentType: "text/plain" });
    return await response.text();
  }

  /** The WebSocket URL of PATH (ws:// for http://, wss:// for https://). */
  websocketUrl(path: string): string {
    return `${this.#baseUrl.replace(/^http/, "ws")}${path}`;
  }

  /** Headers that carry this client's token, for requests made outside this class. */
  authHeaders(): Record<string, string> {
    return this.#token ? { Authorization: `Bearer ${this.#token}` } : {};
  }

  /** GET /v1/database/DB/identity: the database identity as 64 hex digits. */
  async databaseIdentity(database: string): Promise<string> {
    const path = `/v1/database/${encodeURIComponent(database)}/identity`;
    const response = await this.#request("GET", path, { auth: false });
    return (await response.text()).trim();
  }

  /** GET /v1/database/DB/names. */
  async databaseNames(database: string): Promise<string[]> {
    const path = `/v1/database/${encodeURIComponent(database)}/names`;
    const body = await readJson(await this.#request("GET", path)) as { names?: unknown };
    return Array.isArray(body.names) ? body.names.filter((n) => typeof n === "string") : [];
  }

  /** PUT /v1/database/DB/names with a JSON array: the database's new names. */
  async setDatabaseNames(database: string, names: string[]): Promise<void> {
    const path = `/v1/database/${encodeURIComponent(database)}/names`;
    const response = await this.#request("PUT", path, {
      body: JSON.stringify(names),
      contentType: "application/json",
    });
    await response.body?.cancel();
  }

  /** GET /v1/identity/ID/databases. */
  async databasesOf(identity: string): Promise<string[]> {
    const path = `/v1/identity/${encodeURIComponent(identity)}/databases`;
    const body = await readJson(await this.#request("GET", path)) as { identities?: unknown };
    return Array.isArray(body.identities)
      ? body.identities.filter((n) => typeof n === "string")
      : [];
  }

  /** DELETE /v1/database/DB. */
  async deleteDatabase(database: string): Promise<void> {
    const path = `/v1/database/${encodeURIComponent(database)}`;
    const response = await this.#request("DELETE", path);
    await response.body?.cancel();
  }

  /**
   * GET /v1/database/DB/logs: yields one raw NDJSON line at a time until the server
   * closes the stream or `signal` aborts.
   */
  async *logs(
    database: string,
    options: { numLines?: number; follow: boolean; signal?: AbortSignal },
  ): AsyncGenerator<string> {
    const query = new URLSearchParams({ follow: String(options.follow) });
    if (options.numLines !== undefined) query.set("num_lines", String(options.numLines));
    const path = `/v1/database/${encodeURIComponent(database)}/logs?${query}`;
    const response = await this.#request("GET", path, { signal: options.signal });
    if (!response.body) return;
    const decoder = new TextDecoder();
    let pending = "";
    const reader = response.body.getReader();
    try {
      while (true) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (options.signal?.aborted) return;
          throw error;
        }
        if (chunk.done) break;
        pending += decoder.decode(chunk.value, { stream: true });
        let newline;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line !== "") yield line;
        }
      }
      pending += decoder.decode();
      if (pending.trim() !== "") yield pending.trim();
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  async #request(
    method: string,
    path: string,
    options: {
      body?: BodyInit;
      contentType?: string;
      auth?: boolean;
      checked?: boolean;
      signal?: AbortSignal;
    } = {},
  ): Promise<Response> {
    const url = `${this.#baseUrl}${path}`;
    const headers = new Headers();
    if (options.auth !== false && this.#token) {
      headers.set("Authorization", `Bearer ${this.#token}`);
    }
    if (options.contentType) headers.set("Content-Type", options.contentType);
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: options.body,
        signal: options.signal,
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new CliError(`Cannot reach the server at ${this.#baseUrl}: ${conciseReason(error)}`, [
        "Is the server running? Start one with `deno task start` (or pass -s URL).",
      ]);
    }
    if (options.checked !== false && !response.ok) throw await apiErrorOf(response, method);
    return response;
  }
}

async function apiErrorOf(response: Response, method: string): Promise<ApiError> {
  const body = await response.text().catch(() => "");
  return new ApiError(response.status, body, response.url, method);
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(
      `The server sent something that is not JSON (HTTP ${response.status} from ${response.url}): ${
        text.slice(0, 200)
      }`,
    );
  }
}

function conciseReason(error: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = error; e instanceof Error && messages.length < 5; e = e.cause) {
    messages.push(e.message);
  }
  const all = messages.join(" ");
  if (/Connection refused|ECONNREFUSED/i.test(all)) return "connection refused";
  if (/dns error|failed to lookup|Name or service not known/i.test(all)) return "unknown host";
  return (messages.at(-1) ?? String(error)).split("\n")[0];
}
