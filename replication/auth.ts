/**
 * Message authentication (`--replication-key-file PATH` on both ends): the primary tags every
 * message with an HMAC-SHA256 under a shared secret; the replica checks the tag before it reads
 * anything else of the message, so whoever may publish on the subject without the key cannot
 * steer a replica.
 *
 *   Lc-Auth       hex HMAC-SHA256 over the message as the replica acts on it (messageText)
 *   Lc-Auth-Body  on every chunk of a chunked message: hex HMAC-SHA256 over the whole message
 *                 (its headers without the chunk ones, and the whole body), checked once the
 *                 chunks are put together
 *
 * The text signed is versioned and unambiguous: a fixed prefix, the subject, then every header
 * the replica reads, in a fixed order, as `name:value` lines (a header cannot hold a line
 * break; an absent one is an empty value), then the body. Lc-Prev-Seq (replication/stream.ts)
 * is among them: it ties a message to its place in the stream, so a replayed one is refused.
 */
import { concatBytes, fromHex, toHex } from "../lib/bytes.ts";
import {
  HEADER_AT_TX,
  HEADER_END_TX,
  HEADER_FIRST_TX,
  HEADER_KIND,
  HEADER_PREV_SEQ,
  HEADER_PRIMARY,
} from "./stream.ts";
import { HEADER_CHUNK, HEADER_CHUNK_BYTES, HEADER_CHUNK_SHA256 } from "./chunks.ts";

export const HEADER_AUTH = "Lc-Auth";
export const HEADER_AUTH_BODY = "Lc-Auth-Body";

/** The shortest secret taken (bytes): a short one is guessable from tagged messages. */
export const REPLICATION_KEY_BYTES_MIN = 16;
/** The longest key file read. */
const REPLICATION_KEY_FILE_BYTES_MAX = 4096;

const SIGNED_PREFIX = "lightcone-replication-v1\n";
/** Headers covered by Lc-Auth, in this order. */
const SIGNED_HEADERS = [
  HEADER_KIND,
  HEADER_FIRST_TX,
  HEADER_END_TX,
  HEADER_AT_TX,
  HEADER_PRIMARY,
  HEADER_PREV_SEQ,
  HEADER_CHUNK,
  HEADER_CHUNK_BYTES,
  HEADER_CHUNK_SHA256,
  HEADER_AUTH_BODY,
];
/** Headers covered by Lc-Auth-Body (the whole message: no chunk headers). */
const WHOLE_HEADERS = [HEADER_KIND, HEADER_FIRST_TX, HEADER_END_TX, HEADER_AT_TX, HEADER_PRIMARY];

export type HeaderReader = { get(name: string): string } | undefined;

/**
 * Reads the shared secret of `path` (surrounding white space dropped). Refused: a file that
 * the group or others may read (the secret is as good as published), a secret shorter than
 * REPLICATION_KEY_BYTES_MIN bytes, a file that is not a regular file.
 */
export async function loadReplicationKey(path: string): Promise<CryptoKey> {
  const flag = "--replication-key-file";
  const refused = (why: string) => new Error(`${flag} "${path}" ${why}`);
  const unreadable = (error: unknown) =>
    error instanceof Deno.errors.NotFound
      ? refused("does not exist")
      : refused(`cannot be read: ${(error as Error).message}`);
  // A first look by path only so that opening never blocks on a FIFO or a device; the checks
  // that count are made on the open handle, whose bytes are the ones read (the path may be
  // replaced in between).
  const preview = await Deno.stat(path).catch((error) => {
    throw unreadable(error);
  });
  if (!preview.isFile) throw refused("is not a regular file");
  const file = await Deno.open(path, { read: true }).catch((error) => {
    throw unreadable(error);
  });
  let bytes: Uint8Array;
  try {
    const info = await file.stat();
    if (!info.isFile) throw refused("is not a regular file");
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw refused(
        `may be read by its group or others (mode ${
          (info.mode & 0o777).toString(8).padStart(3, "0")
        }): make it readable by its owner only (chmod 600 "${path}")`,
      );
    }
    if (info.size > REPLICATION_KEY_FILE_BYTES_MAX) {
      throw refused(
        `is ${info.size} bytes, over the ${REPLICATION_KEY_FILE_BYTES_MAX} a key file may have`,
      );
    }
    // One byte more than allowed: a file that grew since fstat is refused, not cut short.
    const buffer = new Uint8Array(REPLICATION_KEY_FILE_BYTES_MAX + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = await file.read(buffer.subarray(length));
      if (read === null) break;
      length += read;
    }
    if (length > REPLICATION_KEY_FILE_BYTES_MAX) {
      throw refused(`grew past the ${REPLICATION_KEY_FILE_BYTES_MAX} bytes a key file may have`);
    }
    bytes = buffer.subarray(0, length);
  } finally {
    file.close();
  }
  const text = new TextDecoder().decode(bytes).trim();
  const secret = new TextEncoder().encode(text);
  if (secret.length < REPLICATION_KEY_BYTES_MIN) {
    throw refused(
      `holds a secret of ${secret.length} bytes: use at least ` +
        `${REPLICATION_KEY_BYTES_MIN} (e.g. openssl rand -hex 32)`,
    );
  }
  return await importReplicationKey(secret);
}

export function importReplicationKey(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    secret as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** What Lc-Auth covers of a message (or, `whole`, what Lc-Auth-Body covers). */
export function messageText(
  subject: string,
  headers: HeaderReader,
  body: Uint8Array,
  whole = false,
): Uint8Array {
  let head = SIGNED_PREFIX + (whole ? "whole\n" : "message\n") + subject + "\n";
  for (const name of whole ? WHOLE_HEADERS : SIGNED_HEADERS) {
    head += `${name}:${headers?.get(name) ?? ""}\n`;
  }
  head += "\n";
  return concatBytes([new TextEncoder().encode(head), body]);
}

export async function messageTag(
  key: CryptoKey,
  subject: string,
  headers: HeaderReader,
  body: Uint8Array,
  whole = false,
): Promise<string> {
  const tag = await crypto.subtle.sign(
    "HMAC",
    key,
    messageText(subject, headers, body, whole) as BufferSource,
  );
  return toHex(new Uint8Array(tag));
}

/**
 * Undefined when the message's tag (Lc-Auth, or with `whole` Lc-Auth-Body) is right, else
 * what is wrong with it. Compared in constant time (crypto.subtle.verify).
 */
export async function checkTag(
  key: CryptoKey,
  subject: string,
  headers: HeaderReader,
  body: Uint8Array,
  whole = false,
): Promise<string | undefined> {
  const name = whole ? HEADER_AUTH_BODY : HEADER_AUTH;
  const hex = headers?.get(name) ?? "";
  if (hex === "") return `a message without the ${name} header (unauthenticated)`;
  if (!/^[0-9a-f]{64}$/.test(hex)) return `a message whose ${name} header is not an HMAC-SHA256`;
  const good = await crypto.subtle.verify(
    "HMAC",
    key,
    fromHex(hex) as BufferSource,
    messageText(subject, headers, body, whole) as BufferSource,
  );
  return good ? undefined : `a message whose ${name} tag does not match (forged, or another key)`;
}
