/**
 * The JetStream layout both ends agree on: one stream, one subject per database, four message
 * kinds, told apart by headers.
 *
 *   stream  LIGHTCONE, subjects lightcone.*.log (file storage, limits retention)
 *   subject lightcone.<database identity hex>.log
 *   log     Lc-Kind: log, Lc-First-Tx, Lc-End-Tx: whole commits [first, end) exactly as they
 *           lie in the primary's commit log (framed, CRC32C each; storage/commitlog/frame.ts)
 *   module  Lc-Kind: module, Lc-At-Tx: the module that runs from log offset At-Tx on; the body
 *           is JSON { owner, names, bundle }
 *   delete  Lc-Kind: delete: the primary deleted the database (its earlier messages are purged)
 *   takeover Lc-Kind: takeover, Lc-At-Tx: a promoted replica (`--promote`) is the database's
 *           primary from log offset At-Tx on (its log's end), under its own Lc-Primary; the body
 *           is JSON { previousPrimary, promotedAt, discarded? }. Every later message is the new
 *           primary's; the old one, seeing it, stops publishing and refuses writes (fenced)
 *   every   Lc-Primary: the primary's id (random, kept in its data directory);
 *           Nats-Msg-Id: <identity>:<primary>:<first>-<end> or
 *           <identity>:<primary>:module:<at>:<bundle hash>, <identity>:takeover:<primary>
 *           (JetStream drops a republished message within its duplicate window; the primary's
 *           id keeps a promoted replica's message from being taken for the old primary's)
 *           Nats-Expected-Last-Subject-
 *           Sequence: the sequence of the database's previous message (two primaries cannot
 *           interleave one database's log: the second publish is refused)
 *           Lc-Prev-Seq: the stream sequence of the database's previous message (0: none), as
 *           expected by Nats-Expected-Last-Subject-Sequence; covered by the tag, it makes a
 *           captured message useless later (a replica with the key refuses a message that does
 *           not follow the last one it took of that database)
 *           Lc-Auth (with --replication-key-file): HMAC-SHA256 tag, replication/auth.ts
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

export const STREAM_NAME = "LIGHTCONE";
export const SUBJECT_PREFIX = "lightcone.";
export const SUBJECT_SUFFIX = ".log";

export const HEADER_KIND = "Lc-Kind";
export const HEADER_FIRST_TX = "Lc-First-Tx";
export const HEADER_END_TX = "Lc-End-Tx";
export const HEADER_AT_TX = "Lc-At-Tx";
export const HEADER_PRIMARY = "Lc-Primary";
export const HEADER_PREV_SEQ = "Lc-Prev-Seq";

/** Body of a `module` message. */
export interface ModuleBody {
  owner: string;
  names: string[];
  bundle: string;
}

export function subjectOf(dbKey: string): string {
  return `${SUBJECT_PREFIX}${dbKey}${SUBJECT_SUFFIX}`;
}

/** The database identity of a subject, or undefined for a subject that is not ours. */
export function dbKeyOf(subject: string): string | undefined {
  if (!subject.startsWith(SUBJECT_PREFIX) || !subject.endsWith(SUBJECT_SUFFIX)) return undefined;
  const key = subject.slice(SUBJECT_PREFIX.length, subject.length - SUBJECT_SUFFIX.length);
  return /^[0-9a-f]{64}$/.test(key) ? key : undefined;
}

/**
 * `nats://[user:password@|token@]host[:port]` (or `tls://…`: TLS required, the server's
 * certificate checked against the system's roots or `--nats-ca`) as the server string the rest
 * of the code passes around: `host:port`, with the credentials (still percent-encoded) in front
 * when there are some, and `tls://` in front of all for TLS.
 */
export function parseNatsUrl(text: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`${flag} "${redactUrl(text)}" is not a URL: use nats://host:port`);
  }
  if (/(^|[?&])tls/i.test(url.search.slice(1))) {
    throw new RangeError(
      `${flag}: TLS options in the query are not supported; use tls://host:port, or ` +
        `nats://host:port with --nats-ca FILE`,
    );
  }
  if ((url.protocol !== "nats:" && url.protocol !== "tls:") || url.hostname === "") {
    throw new RangeError(
      `${flag} "${redactUrl(text)}" must be nats://host:port or tls://host:port ` +
        `(or with user:password@ before the host)`,
    );
  }
  if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "") {
    throw new RangeError(`${flag} "${redactUrl(text)}" must not have a path or query`);
  }
  if (url.password !== "" && url.username === "") {
    throw new RangeError(`${flag}: a password needs a user name (nats://user:password@host)`);
  }
  const credentials = url.username === ""
    ? ""
    : `${url.username}${url.password === "" ? "" : `:${url.password}`}@`;
  const scheme = url.protocol === "tls:" ? TLS_PREFIX : "";
  return `${scheme}${credentials}${url.hostname}:${url.port || "4222"}`;
}

const TLS_PREFIX = "tls://";

/** What a server string's credentials are, for the client; `tls`: TLS is required. */
export function natsCredentials(
  server: string,
): { servers: string; user?: string; pass?: string; token?: string; tls?: true } {
  const tls = server.startsWith(TLS_PREFIX);
  if (tls) server = server.slice(TLS_PREFIX.length);
  const flags: { tls?: true } = tls ? { tls: true } : {};
  const at = server.lastIndexOf("@");
  if (at < 0) return { servers: server, ...flags };
  const userinfo = server.slice(0, at);
  const servers = server.slice(at + 1);
  const colon = userinfo.indexOf(":");
  if (colon < 0) return { servers, token: decodeURIComponent(userinfo), ...flags };
  return {
    servers,
    user: decodeURIComponent(userinfo.slice(0, colon)),
    pass: decodeURIComponent(userinfo.slice(colon + 1)),
    ...flags,
  };
}

/** A server string without its credentials (for logs and messages): `[tls://]host:port`. */
export function natsDisplay(server: string): string {
  const scheme = server.startsWith(TLS_PREFIX) ? TLS_PREFIX : "";
  return scheme + server.slice(server.lastIndexOf("@") + 1).replace(TLS_PREFIX, "");
}

/** `nats://host:port` or `tls://host:port`, without credentials. */
export function natsUrlDisplay(server: string): string {
  const display = natsDisplay(server);
  return display.startsWith(TLS_PREFIX) ? display : `nats://${display}`;
}

function redactUrl(text: string): string {
  return text.replace(/\/\/[^@/]*@/, "//…@");
}

/**
 * Connects for good: the client reconnects by itself; the first attempt is retried too.
 * `ca` (PEM, `--nats-ca`): TLS is required and the server's certificate must chain to it; a
 * `tls://` server string without it requires TLS checked against the system's roots.
 */
export function connectNats(
  server: string,
  name: string,
  options: { ca?: string } = {},
): Promise<NatsConnection> {
  const { tls, ...credentials } = natsCredentials(server);
  return connect({
    ...credentials,
    ...(options.ca !== undefined ? { tls: { ca: options.ca } } : tls ? { tls: {} } : {}),
    name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
  });
}

/** Creates the stream unless it exists (both ends call it; the first one wins). */
export async function ensureStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(STREAM_NAME);
    return;
  } catch (error) {
    if (!/not found/i.test(String((error as Error).message))) throw error;
  }
  try {
    await jsm.streams.add({
      name: STREAM_NAME,
      subjects: [`${SUBJECT_PREFIX}*${SUBJECT_SUFFIX}`],
    });
  } catch (error) {
    // Another server created it meanwhile.
    if (!/already in use|exists/i.test(String((error as Error).message))) throw error;
  }
}

export type { NatsConnection };
