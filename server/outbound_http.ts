/**
 * Outbound HTTP of procedures (`ctx.http.fetch`), the one door out of a database's sandbox.
 *
 * The database process has no network permission: it hands each request to the server, which
 * performs it here, only to hosts on the database's allow-list (`--http-allow`). Every hop is
 * checked before anything is sent: the URL's host against the list, then its DNS answers against
 * the special-purpose address ranges (private, loopback, link-local, ...), which are refused
 * unless the address itself is listed. The connection goes to the address that was checked (no
 * second lookup), redirects are followed here one by one and each target checked again, and the
 * response body is read up to a size limit. Every request is written to the module's log.
 */
import {
  OUTBOUND_HTTP_IN_FLIGHT_MAX,
  OUTBOUND_HTTP_PER_DATABASE_MAX,
  OUTBOUND_HTTP_REDIRECTS_MAX,
  OUTBOUND_HTTP_REQUEST_BYTES_MAX,
  OUTBOUND_HTTP_RESPONSE_BYTES_MAX,
  OUTBOUND_HTTP_TIMEOUT_MS_MAX,
} from "../lib/limits.ts";
import type { LogLine } from "../worker/mod.ts";

const FRAMING_HEADERS = new Set(["host", "content-length", "connection", "transfer-encoding"]);
/** Dropped when a redirect leaves the origin, as fetch does with Authorization. */
const CREDENTIAL_HEADERS = ["authorization", "cookie", "proxy-authorization"];

/** The operator flag that sets allow-lists; named in every refusal. */
export const HTTP_ALLOW_FLAG = "--http-allow";

/** A procedure's request as the database process sends it. */
export interface OutboundRequest {
  method: string;
  uri: string;
  headers: [string, Uint8Array][];
  body: Uint8Array;
  timeoutMs: number;
}

export type OutboundResult =
  | { ok: true; status: number; headers: [string, Uint8Array][]; body: Uint8Array }
  | { ok: false; error: string };

/** Resolves a host name to IP addresses (A and AAAA). */
export type Resolver = (hostname: string) => Promise<string[]>;

export interface OutboundHttpOptions {
  /** Allow-lists by database name or identity (hex), and `*` for every database. */
  allow: ReadonlyMap<string, readonly string[]>;
  resolve?: Resolver;
  /** Response bodies over this are refused (default OUTBOUND_HTTP_RESPONSE_BYTES_MAX). */
  responseBytesMax?: number;
  /** Requests in flight at once per database (default OUTBOUND_HTTP_PER_DATABASE_MAX). */
  perDatabaseMax?: number;
  /** Requests in flight at once in all (default OUTBOUND_HTTP_IN_FLIGHT_MAX). */
  inFlightMax?: number;
}

/**
 * Parses `--http-allow` values: `DB=HOST[,HOST...]`, where DB is a database name, identity or
 * `*` (every database), and HOST is a host name, an IP address, either with `:PORT`, or `*`
 * (any host whose addresses are public). Repeated flags add up.
 */
export function parseHttpAllow(values: readonly string[]): Map<string, string[]> {
  const allow = new Map<string, string[]>();
  for (const value of values) {
    const at = value.indexOf("=");
    const database = value.slice(0, at).trim();
    const hosts = value.slice(at + 1).split(",").map((host) => host.trim().toLowerCase())
      .filter((host) => host !== "");
    if (at <= 0 || database === "" || hosts.length === 0) {
      throw new TypeError(
        `Invalid ${HTTP_ALLOW_FLAG} "${value}": expected DATABASE=HOST[,HOST...] ` +
          `(DATABASE a name, an identity or *; HOST a host name or IP, optionally :PORT, or *)`,
      );
    }
    for (const host of hosts) {
      if (host !== "*" && parseEntry(host) === undefined) {
        throw new TypeError(`Invalid host "${host}" in ${HTTP_ALLOW_FLAG} "${value}"`);
      }
    }
    allow.set(database, [...(allow.get(database) ?? []), ...hosts]);
  }
  return allow;
}

export class OutboundHttp {
  readonly #allow: ReadonlyMap<string, readonly string[]>;
  readonly #resolve: Resolver;
  readonly #responseBytesMax: number;
  readonly #perDatabaseMax: number;
  readonly #inFlightMax: number;
  /** Requests in flight per database identity, and in all. */
  readonly #inFlight = new Map<string, number>();
  #inFlightTotal = 0;

  constructor(options: OutboundHttpOptions) {
    this.#allow = options.allow;
    this.#resolve = options.resolve ?? resolveWithDns;
    this.#responseBytesMax = options.responseBytesMax ?? OUTBOUND_HTTP_RESPONSE_BYTES_MAX;
    this.#perDatabaseMax = options.perDatabaseMax ?? OUTBOUND_HTTP_PER_DATABASE_MAX;
    this.#inFlightMax = options.inFlightMax ?? OUTBOUND_HTTP_IN_FLIGHT_MAX;
  }

  /** The allow-list entries that apply to a database (its own, then those for `*`). */
  allowListFor(database: { name?: string; identity: string }): string[] {
    const entries = [
      ...(database.name ? this.#allow.get(database.name) ?? [] : []),
      ...(this.#allow.get(database.identity) ?? []),
      ...(this.#allow.get("*") ?? []),
    ];
    return [...new Set(entries)];
  }

  /**
   * Performs `request` for `database`; never throws. `log` receives one module log line per
   * hop sent or refused.
   */
  async perform(
    database: { name?: string; identity: string },
    request: OutboundRequest,
    log: (line: LogLine) => void,
    /** Aborted when the database process that asked is gone: the request is stopped. */
    cancel?: AbortSignal,
  ): Promise<OutboundResult> {
    // The database process is untrusted: it may send requests without waiting for answers.
    const key = database.identity;
    const held = this.#inFlight.get(key) ?? 0;
    if (held >= this.#perDatabaseMax || this.#inFlightTotal >= this.#inFlightMax) {
      const error = held >= this.#perDatabaseMax
        ? `Too many outbound HTTP requests at once: this database has ${held} in flight ` +
          `(at most ${this.#perDatabaseMax}, one per procedure thread)`
        : `Too many outbound HTTP requests at once on this server ` +
          `(at most ${this.#inFlightMax}); try again later`;
      log(logLine("Warn", `outbound HTTP refused: ${error}`));
      return { ok: false, error };
    }
    this.#inFlight.set(key, held + 1);
    this.#inFlightTotal++;
    try {
      return await this.#perform(database, request, log, cancel);
    } finally {
      this.#inFlightTotal--;
      const left = (this.#inFlight.get(key) ?? 1) - 1;
      if (left === 0) this.#inFlight.delete(key);
      else this.#inFlight.set(key, left);
    }
  }

  async #perform(
    database: { name?: string; identity: string },
    request: OutboundRequest,
    log: (line: LogLine) => void,
    cancel: AbortSignal | undefined,
  ): Promise<OutboundResult> {
    const label = database.name ?? database.identity;
    const entries = this.allowListFor(database);
    const timeoutMs = Math.min(Math.max(0, request.timeoutMs), OUTBOUND_HTTP_TIMEOUT_MS_MAX);
    const deadline = Date.now() + timeoutMs;
    let url: URL;
    try {
      url = new URL(request.uri);
    } catch {
      return { ok: false, error: `Invalid URL "${cut(request.uri)}"` };
    }
    if (request.body.length > OUTBOUND_HTTP_REQUEST_BYTES_MAX) {
      return {
        ok: false,
        error: `The request body of ${request.body.length} bytes is over the limit of ` +
          `${OUTBOUND_HTTP_REQUEST_BYTES_MAX} bytes`,
      };
    }
    let method = request.method.toUpperCase();
    let body: Uint8Array | undefined = request.body.length > 0 ? request.body : undefined;
    const headers = new Headers();
    try {
      for (const [name, value] of request.headers) {
        // The connection's own framing is the server's to set.
        if (FRAMING_HEADERS.has(name.toLowerCase())) continue;
        headers.append(name, new TextDecoder().decode(value));
      }
    } catch (error) {
      return { ok: false, error: `Invalid request header: ${messageOf(error)}` };
    }
    for (let hop = 0;; hop++) {
      const startMs = performance.now();
      const checked = await this.#check(url, entries, label);
      if (!checked.ok) {
        log(logLine("Warn", `outbound HTTP ${method} ${url.host} refused: ${checked.error}`));
        return checked;
      }
      const left = deadline - Date.now();
      if (left <= 0) return { ok: false, error: `${sendError(url)}The request timed out` };
      const client = Deno.createHttpClient({
        // An IPv6 address must be bracketed here: a bare one fails to connect.
        proxy: {
          transport: "tcp",
          hostname: ipVersion(checked.address) === 6 ? `[${checked.address}]` : checked.address,
          port: checked.port,
        },
      });
      let response: Response;
      try {
        response = await fetch(url, {
          method,
          headers,
          body: body as BodyInit | undefined,
          redirect: "manual",
          client,
          signal: cancel
            ? AbortSignal.any([AbortSignal.timeout(left), cancel])
            : AbortSignal.timeout(left),
        });
      } catch (error) {
        client.close();
        const reason = sendError(url) +
          (isTimeout(error) ? `The request timed out after ${timeoutMs} ms` : cutError(error, url));
        log(logLine("Warn", `outbound HTTP ${method} ${url.host} failed: ${reason}`));
        return { ok: false, error: reason };
      }
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        client.close();
        log(logLine(
          "Info",
          `outbound HTTP ${method} ${url.host} ${response.status} in ${elapsed(startMs)} ms`,
        ));
        if (hop >= OUTBOUND_HTTP_REDIRECTS_MAX) {
          return { ok: false, error: `Too many redirects (over ${OUTBOUND_HTTP_REDIRECTS_MAX})` };
        }
        const origin = url.origin;
        try {
          url = new URL(location, url);
        } catch {
          return { ok: false, error: `Invalid redirect location "${cut(location)}"` };
        }
        // The module's credentials were meant for the origin it named, not for where it sends us.
        if (url.origin !== origin) { for (const name of CREDENTIAL_HEADERS) headers.delete(name); }
        // As fetch does: 303, and 301/302 after a POST, become a GET without a body.
        if (
          response.status === 303 ||
          ((response.status === 301 || response.status === 302) && method === "POST")
        ) {
          if (method !== "HEAD") method = "GET";
          body = undefined;
          headers.delete("content-type");
          headers.delete("content-length");
        }
        continue;
      }
      try {
        const bytes = await readCapped(response, this.#responseBytesMax);
        const responseHeaders: [string, Uint8Array][] = [];
        const encoder = new TextEncoder();
        response.headers.forEach((value, name) =>
          responseHeaders.push([name, encoder.encode(value)])
        );
        log(logLine(
          "Info",
          `outbound HTTP ${method} ${url.host} ${response.status} in ${elapsed(startMs)} ms`,
        ));
        return { ok: true, status: response.status, headers: responseHeaders, body: bytes };
      } catch (error) {
        const reason = isTimeout(error)
          ? `${sendError(url)}The request timed out after ${timeoutMs} ms`
          : messageOf(error);
        log(logLine("Warn", `outbound HTTP ${method} ${url.host} failed: ${reason}`));
        return { ok: false, error: reason };
      } finally {
        client.close();
      }
    }
  }

  /** Whether `url` may be fetched for this database, and the checked address to connect to. */
  async #check(
    url: URL,
    entries: string[],
    database: string,
  ): Promise<{ ok: true; address: string; port: number } | { ok: false; error: string }> {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return { ok: false, error: `Only http and https URLs can be fetched, not "${url.protocol}"` };
    }
    const host = hostOf(url);
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    const fix = `${HTTP_ALLOW_FLAG} ${database}=${host}`;
    if (entries.length === 0) {
      return {
        ok: false,
        error: `module outbound HTTP requests are disabled for database "${database}": ` +
          `the server operator can allow "${host}" with ${fix}`,
      };
    }
    const listed = entries.filter((entry) => entryMatches(entry, host, port));
    if (listed.length === 0) {
      return {
        ok: false,
        error: `"${host}" is not on the HTTP allow-list of database "${database}" ` +
          `(${entries.join(", ")}); the server operator can add it with ${fix}`,
      };
    }
    let addresses: string[];
    if (ipVersion(host) !== 0) addresses = [host];
    else if (host === "localhost" || host.endsWith(".localhost")) {
      addresses = ["127.0.0.1"]; // RFC 6761: always loopback, never looked up
    } else {
      try {
        addresses = await this.#resolve(host);
      } catch (error) {
        return {
          ok: false,
          error: `${sendError(url)}Could not resolve "${host}": ${messageOf(error)}`,
        };
      }
      if (addresses.length === 0) {
        return { ok: false, error: `${sendError(url)}"${host}" has no address` };
      }
    }
    for (const address of addresses) {
      const special = specialRange(address);
      if (special === undefined) continue;
      // Only the address itself on the list lets a special-purpose address through.
      if (entries.some((entry) => entry !== "*" && entryMatches(entry, address, port))) continue;
      const resolved = address === host ? "" : ` ("${host}" resolves to ${address})`;
      return {
        ok: false,
        error: `refusing to connect to private or special-purpose addresses: ${special} ` +
          `address ${address}${resolved}; the server operator can allow it by listing the ` +
          `address itself: ${HTTP_ALLOW_FLAG} ${database}=${address}`,
      };
    }
    return { ok: true, address: addresses[0], port };
  }
}

/** A–AAAA lookup with Deno's resolver. */
async function resolveWithDns(hostname: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([
    Deno.resolveDns(hostname, "A"),
    Deno.resolveDns(hostname, "AAAA"),
  ]);
  const addresses = [
    ...(v4.status === "fulfilled" ? v4.value : []),
    ...(v6.status === "fulfilled" ? v6.value : []),
  ];
  if (addresses.length === 0 && v4.status === "rejected") throw v4.reason;
  return addresses;
}

/** The URL's host without IPv6 brackets, lower case. */
function hostOf(url: URL): string {
  const host = url.hostname.toLowerCase();
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** `host`, `host:port`, `[v6]:port` or a bare IPv6 address. */
function parseEntry(entry: string): { host: string; port?: number } | undefined {
  let host = entry;
  let port: number | undefined;
  const bracket = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(entry);
  if (bracket) {
    host = bracket[1];
    port = bracket[2] === undefined ? undefined : Number(bracket[2]);
  } else if (ipVersion(entry) === 6) {
    host = entry;
  } else {
    const colon = entry.lastIndexOf(":");
    if (colon >= 0) {
      host = entry.slice(0, colon);
      port = Number(entry.slice(colon + 1));
      if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
    }
  }
  if (
    ipVersion(host) === 0 &&
    !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host)
  ) {
    return undefined;
  }
  return { host, port };
}

function entryMatches(entry: string, host: string, port: number): boolean {
  if (entry === "*") return true;
  const parsed = parseEntry(entry);
  if (!parsed) return false;
  return parsed.host === host && (parsed.port === undefined || parsed.port === port);
}

/** 4, 6, or 0 for a name. */
function ipVersion(host: string): 0 | 4 | 6 {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return 4;
  if (/^[0-9a-f]*:[0-9a-f]*:[0-9a-f:.]*$/.test(host)) return 6;
  return 0;
}

/** The special-purpose range (RFC 6890 and successors) an address is in, or undefined. */
export function specialRange(address: string): string | undefined {
  const version = ipVersion(address);
  if (version === 4) return specialV4(address.split(".").map(Number));
  if (version === 6) {
    const words = parseV6(address);
    if (!words) return "unparseable";
    const allZeroPrefix = words.slice(0, 5).every((word) => word === 0);
    // IPv4-mapped (::ffff:a.b.c.d, 0.0.0.0 included: Linux connects it to loopback) and
    // IPv4-compatible addresses are checked as IPv4.
    const mapped = allZeroPrefix && words[5] === 0xffff;
    const compatible = allZeroPrefix && words[5] === 0 && (words[6] !== 0 || words[7] > 1);
    if (mapped || compatible) {
      return specialV4([words[6] >> 8, words[6] & 255, words[7] >> 8, words[7] & 255]);
    }
    if (words.every((word) => word === 0)) return "unspecified";
    if (words.slice(0, 7).every((word) => word === 0) && words[7] === 1) return "loopback";
    if ((words[0] & 0xfe00) === 0xfc00) return "private (unique local)";
    if ((words[0] & 0xffc0) === 0xfe80) return "link-local";
    if ((words[0] & 0xffc0) === 0xfec0) return "site-local";
    if ((words[0] & 0xff00) === 0xff00) return "multicast";
    if (words[0] === 0x64 && words[1] === 0xff9b) return "NAT64";
    if (words[0] === 0x2001 && words[1] === 0x0db8) return "documentation";
    if (words[0] === 0x2002) return "6to4";
    if (words[0] === 0x2001 && words[1] < 0x200) return "special-purpose (2001::/23)";
    return undefined;
  }
  return "unparseable";
}

function specialV4(octets: number[]): string | undefined {
  const [a, b, c] = octets;
  if (octets.some((octet) => !(octet >= 0 && octet <= 255))) return "unparseable";
  if (a === 0) return "unspecified (0.0.0.0/8)";
  if (a === 10) return "private (10.0.0.0/8)";
  if (a === 127) return "loopback";
  if (a === 169 && b === 254) return "link-local";
  if (a === 172 && b >= 16 && b <= 31) return "private (172.16.0.0/12)";
  if (a === 192 && b === 168) return "private (192.168.0.0/16)";
  if (a === 100 && b >= 64 && b <= 127) return "shared (100.64.0.0/10)";
  if (a === 192 && b === 0 && c === 0) return "IETF protocol assignments (192.0.0.0/24)";
  if (a === 192 && b === 0 && c === 2) return "documentation";
  if (a === 198 && b === 51 && c === 100) return "documentation";
  if (a === 203 && b === 0 && c === 113) return "documentation";
  if (a === 198 && (b === 18 || b === 19)) return "benchmarking (198.18.0.0/15)";
  if (a >= 224 && a <= 239) return "multicast";
  if (a >= 240) return "reserved";
  return undefined;
}

/** Eight 16-bit words of an IPv6 address (an embedded IPv4 tail allowed), or undefined. */
function parseV6(address: string): number[] | undefined {
  let text = address;
  const v4 = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (v4) {
    const octets = v4[1].split(".").map(Number);
    if (octets.some((octet) => octet > 255)) return undefined;
    const high = ((octets[0] << 8) | octets[1]).toString(16);
    const low = ((octets[2] << 8) | octets[3]).toString(16);
    text = `${text.slice(0, -v4[1].length)}${high}:${low}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string) =>
    part === ""
      ? []
      : part.split(":").map((word) => /^[0-9a-f]{1,4}$/.test(word) ? parseInt(word, 16) : NaN);
  const head = parse(halves[0]);
  if (halves.length === 1) {
    return head.length === 8 && head.every((word) => word >= 0) ? head : undefined;
  }
  const rest = parse(halves[1]);
  if (head.length + rest.length > 7) return undefined;
  const words = [...head, ...new Array(8 - head.length - rest.length).fill(0), ...rest];
  return words.every((word) => word >= 0) ? words : undefined;
}

async function readCapped(response: Response, bytesMax: number): Promise<Uint8Array> {
  const announced = Number(response.headers.get("content-length") ?? "NaN");
  if (announced > bytesMax) {
    await response.body?.cancel();
    throw new RangeError(
      `The response body of ${announced} bytes is over the limit of ${bytesMax}`,
    );
  }
  if (!response.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > bytesMax) {
      await reader.cancel();
      throw new RangeError(`The response body is over the limit of ${bytesMax} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function logLine(level: string, message: string): LogLine {
  return { level, ts: Date.now() * 1000, message, target: "http", function: "http" };
}

function elapsed(startMs: number): number {
  return Math.round(performance.now() - startMs);
}

/**
 * The head of every error of a request that could not be sent or answered (name resolution,
 * connection, timeout), worded as SpacetimeDB's host words it (`error sending request for url
 * (URL)`), so module code that looks for the URL or "error" in an `HttpError` finds them. The URL
 * is shown without its query string, which may carry secrets.
 */
function sendError(url: URL): string {
  return `error sending request for url (${url.origin}${url.pathname}): `;
}

function isTimeout(error: unknown): boolean {
  return error instanceof DOMException &&
    (error.name === "TimeoutError" || error.name === "AbortError");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An error text without the URL's query string (it may carry secrets), cut to a length. */
function cutError(error: unknown, url: URL): string {
  let text = messageOf(error);
  if (url.search) text = text.split(url.search).join("");
  return cut(text);
}

function cut(text: string): string {
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
