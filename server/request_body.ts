/**
 * Request bodies, read through a byte-capped stream reader. Never `req.text()` or
 * `req.arrayBuffer()`: Deno allocates those from the announced Content-Length before a byte
 * arrives, so requests that announce 16 MB and send nothing pin 16 MB each. Here memory follows
 * the bytes that really arrived; a body over its cap fails (413) as soon as the cap is crossed, a
 * Content-Length over the cap is refused before reading, a body that has not arrived in full
 * within the timeout fails (408), and server-wide bounds on bodies and bytes in flight answer
 * 503 instead of growing.
 */
import { concatBytes } from "../lib/bytes.ts";
import {
  BadRequestError,
  LimitExceededError,
  OverloadedError,
  RequestTimeoutError,
} from "../lib/errors.ts";
import {
  HTTP_BODIES_IN_FLIGHT_MAX,
  HTTP_BODY_BYTES_IN_FLIGHT_MAX,
  HTTP_BODY_TIMEOUT_MS_DEFAULT,
} from "../lib/limits.ts";

export interface RequestBodyOptions {
  /** Whole-body deadline in ms (default HTTP_BODY_TIMEOUT_MS_DEFAULT). */
  timeoutMs?: number;
  /** Bodies being received at once (default HTTP_BODIES_IN_FLIGHT_MAX). */
  bodiesMax?: number;
  /** Body bytes held at once over all bodies (default HTTP_BODY_BYTES_IN_FLIGHT_MAX). */
  bytesMax?: number;
}

const EMPTY = new Uint8Array(0);

/** One per server: reads bodies and keeps the server-wide counts. */
export class RequestBodyReader {
  readonly timeoutMs: number;
  readonly bodiesMax: number;
  readonly bytesMax: number;
  #bodies = 0;
  #bytes = 0;

  constructor(options: RequestBodyOptions = {}) {
    this.timeoutMs = positive(options.timeoutMs ?? HTTP_BODY_TIMEOUT_MS_DEFAULT, "timeoutMs");
    this.bodiesMax = positive(options.bodiesMax ?? HTTP_BODIES_IN_FLIGHT_MAX, "bodiesMax");
    this.bytesMax = positive(options.bytesMax ?? HTTP_BODY_BYTES_IN_FLIGHT_MAX, "bytesMax");
  }

  /** Bodies being received now (for tests and logs). */
  get bodiesInFlight(): number {
    return this.#bodies;
  }

  /** Refuses a request whose announced Content-Length is over `limitBytes` (413). */
  refuseAnnouncedOver(request: Request, limitBytes: number, what: string): number | undefined {
    const text = request.headers.get("content-length");
    if (text === null) return undefined;
    const announced = Number(text);
    // Deno rejects a malformed Content-Length before the handler runs.
    if (announced > limitBytes) {
      throw new LimitExceededError(`${what} in bytes (Content-Length)`, announced, limitBytes);
    }
    return announced;
  }

  /** Reads the whole body, at most `limitBytes`; `what` names it in errors ("request body"). */
  async read(request: Request, limitBytes: number, what: string): Promise<Uint8Array> {
    const announced = this.refuseAnnouncedOver(request, limitBytes, what);
    const body = request.body;
    if (body === null || announced === 0) return EMPTY;
    if (this.#bodies >= this.bodiesMax) {
      throw new OverloadedError(
        `The server is already receiving ${this.#bodies} request bodies, its limit: retry later`,
      );
    }
    this.#bodies++;
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let received = 0;
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new RequestTimeoutError(
            `The ${what} did not arrive within ${this.timeoutMs} ms (received ${received} bytes)`,
          ),
        );
      }, this.timeoutMs);
    });
    timedOut.catch(() => {});
    try {
      while (true) {
        const next = await Promise.race([reader.read().catch(unreadable), timedOut]);
        if (next.done) {
          done = true;
          break;
        }
        const chunk = next.value;
        received += chunk.byteLength;
        if (received > limitBytes) {
          throw new LimitExceededError(`${what} in bytes`, received, limitBytes);
        }
        if (this.#bytes + chunk.byteLength > this.bytesMax) {
          throw new OverloadedError(
            `The server holds ${this.#bytes} bytes of request bodies, its limit is ${this.bytesMax}: retry later`,
          );
        }
        this.#bytes += chunk.byteLength;
        chunks.push(chunk);
      }
    } finally {
      clearTimeout(timer);
      this.#bodies--;
      for (const chunk of chunks) this.#bytes -= chunk.byteLength;
      if (!done) reader.cancel().catch(() => {});
    }
    return concatBytes(chunks);
  }

  /** Reads the body as UTF-8 text (invalid sequences become U+FFFD, as `req.text()` does). */
  async readText(request: Request, limitBytes: number, what: string): Promise<string> {
    return new TextDecoder().decode(await this.read(request, limitBytes, what));
  }
}

/** The connection broke mid-body (the client went away): nobody may be left to answer. */
function unreadable(error: unknown): never {
  throw new BadRequestError(
    `The request body could not be read: ${error instanceof Error ? error.message : error}`,
  );
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  }
  return value;
}
