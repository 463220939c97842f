/**
 * Messages bigger than the NATS server's `max_payload` (1 MiB by default): a module bundle, or
 * one commit bigger than that. The body goes out as consecutive messages on the database's
 * subject, each carrying the whole message's headers plus:
 *
 *   Lc-Chunk         i/n (0-based index, count)
 *   Lc-Chunk-Bytes   the whole body's length
 *   Lc-Chunk-Sha256  the whole body's SHA-256 (hex)
 *
 * Each chunk expects the previous one as the subject's last message, so nothing interleaves
 * them. A primary that failed part way (a crash, NATS gone) starts again at chunk 0; the
 * replica then drops what it had gathered. The replica checks index, count, length and hash
 * before it takes the body, and never holds more than CHUNKED_BODY_BYTES_MAX for a database.
 */
import { toHex } from "../lib/bytes.ts";
import type { HeaderReader } from "./auth.ts";

export const HEADER_CHUNK = "Lc-Chunk";
export const HEADER_CHUNK_BYTES = "Lc-Chunk-Bytes";
export const HEADER_CHUNK_SHA256 = "Lc-Chunk-Sha256";

/** The largest body a replica gathers from chunks (a 64 MiB module escaped in JSON fits). */
export const CHUNKED_BODY_BYTES_MAX = 512 * 1024 * 1024;
/** Room left in a message for its headers. */
export const CHUNK_HEADER_ROOM_BYTES = 8 * 1024;

/** A broken chunk sequence: the message cannot be taken. */
export class ChunkError extends Error {
  override name = "ChunkError";
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource)));
}

/** `body` cut in pieces of at most `chunkBytes`. */
export function splitBody(body: Uint8Array, chunkBytes: number): Uint8Array[] {
  if (!(chunkBytes > 0)) throw new RangeError(`chunk size ${chunkBytes}`);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += chunkBytes) {
    parts.push(body.subarray(at, Math.min(body.length, at + chunkBytes)));
  }
  return parts;
}

/** The chunk headers of piece `index` of `count`. */
export function chunkHeaders(
  index: number,
  count: number,
  totalBytes: number,
  sha256: string,
): [string, string][] {
  return [
    [HEADER_CHUNK, `${index}/${count}`],
    [HEADER_CHUNK_BYTES, String(totalBytes)],
    [HEADER_CHUNK_SHA256, sha256],
  ];
}

export interface ChunkInfo {
  index: number;
  count: number;
  totalBytes: number;
  sha256: string;
}

/** The chunk headers of a message, undefined for a whole message; ChunkError when malformed. */
export function chunkInfo(
  headers: HeaderReader,
): ChunkInfo | undefined {
  const chunk = headers?.get(HEADER_CHUNK) ?? "";
  if (chunk === "") return undefined;
  const match = /^(\d{1,9})\/(\d{1,9})$/.exec(chunk);
  const totalBytes = Number(headers!.get(HEADER_CHUNK_BYTES));
  const sha256 = headers!.get(HEADER_CHUNK_SHA256);
  if (!match) throw new ChunkError(`a chunk header "${chunk}" that is not index/count`);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index >= count) throw new ChunkError(`a chunk ${index} of ${count}`);
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
    throw new ChunkError(`a chunk whose ${HEADER_CHUNK_BYTES} header is not a length`);
  }
  if (totalBytes > CHUNKED_BODY_BYTES_MAX) {
    throw new ChunkError(
      `a chunked message of ${totalBytes} bytes, over the limit of ${CHUNKED_BODY_BYTES_MAX}`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new ChunkError(`a chunk whose ${HEADER_CHUNK_SHA256} header is not a SHA-256`);
  }
  return { index, count, totalBytes, sha256 };
}

/**
 * Gathers one database's chunks. `add` returns the whole body once its last chunk came (after
 * checking length and hash), undefined before; a chunk 0 starts over (the primary began the
 * message again); anything else out of order is a ChunkError.
 */
export class ChunkAssembler {
  #info: ChunkInfo | undefined;
  #body: Uint8Array | undefined;
  #filled = 0;
  #next = 0;
  /** Stream sequence of the first chunk gathered (what a restart must read again from). */
  startSeq = 0;

  get inProgress(): boolean {
    return this.#info !== undefined;
  }

  reset(): void {
    this.#info = undefined;
    this.#body = undefined;
    this.#filled = 0;
    this.#next = 0;
    this.startSeq = 0;
  }

  async add(seq: number, info: ChunkInfo, data: Uint8Array): Promise<Uint8Array | undefined> {
    if (info.index === 0) {
      this.reset();
      this.#info = info;
      this.#body = new Uint8Array(info.totalBytes);
      this.startSeq = seq;
    } else {
      const current = this.#info;
      if (current === undefined) {
        throw new ChunkError(`chunk ${info.index} of ${info.count} without the chunks before it`);
      }
      if (
        current.count !== info.count || current.totalBytes !== info.totalBytes ||
        current.sha256 !== info.sha256
      ) {
        this.reset();
        throw new ChunkError(`chunk ${info.index} of ${info.count} belongs to another message`);
      }
      if (info.index !== this.#next) {
        const expected = this.#next;
        this.reset();
        throw new ChunkError(`chunk ${info.index} of ${info.count} where ${expected} was due`);
      }
    }
    if (this.#filled + data.length > info.totalBytes) {
      this.reset();
      throw new ChunkError(`chunks longer than the announced ${info.totalBytes} bytes`);
    }
    this.#body!.set(data, this.#filled);
    this.#filled += data.length;
    this.#next = info.index + 1;
    if (this.#next < info.count) return undefined;
    const body = this.#body!;
    const filled = this.#filled;
    this.reset();
    if (filled !== info.totalBytes) {
      throw new ChunkError(`chunks of ${filled} bytes where ${info.totalBytes} were announced`);
    }
    if ((await sha256Hex(body)) !== info.sha256) {
      throw new ChunkError("a chunked message whose SHA-256 does not match its chunks");
    }
    return body;
  }
}
