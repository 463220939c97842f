/**
 * Bytes of large HTTP responses held for clients that have not read them yet, bounded per
 * database and server-wide (lib/limits.ts `HTTP_RESPONSE_BYTES_PENDING_MAX`,
 * `HTTP_HANDLER_RESPONSE_BYTES_PER_DATABASE_MAX`).
 *
 * A module's HTTP handler may answer up to HTTP_HANDLER_RESPONSE_BYTES_MAX, and the main thread
 * keeps that buffer until the client has taken all of it: anonymous clients that ask and never
 * read pinned 15 MiB each, and the database process, which produced the answers as fast as they
 * were asked, ran out of memory and crashed. So a handler call first reserves the largest answer
 * it may give (its size is unknown until it returns) from its database's share and the
 * server-wide total, keeps what the answer really is until the client has pulled the last chunk
 * (`meteredBody`, pull-driven: Deno asks for the next chunk when the socket takes it), and gives
 * it back then, when the client goes away, or after `sendTimeoutMs` (the connection is cut).
 * A call that finds no room waits up to `waitMs` in line, then fails with 503.
 */
import { OverloadedError } from "../lib/errors.ts";
import {
  HTTP_HANDLER_RESPONSE_BYTES_PER_DATABASE_MAX,
  HTTP_RESPONSE_BYTES_PENDING_MAX,
  HTTP_RESPONSE_ROOM_WAIT_MS,
  HTTP_RESPONSE_SEND_TIMEOUT_MS,
  HTTP_RESPONSE_WAITERS_MAX,
} from "../lib/limits.ts";

export interface ResponseBudgetOptions {
  /** Bytes held server-wide. */
  totalBytesMax?: number;
  /** Bytes held for one key (a database). */
  perKeyBytesMax?: number;
  /** How long a reservation waits for room before it fails. */
  waitMs?: number;
  /** Requests waiting for room at once, server-wide; one more fails at once. */
  waitersMax?: number;
  /** Time a client has to read a whole response before its connection is cut. */
  sendTimeoutMs?: number;
}

/** Bytes held for one response; `release()` is idempotent. */
export interface ResponseReservation {
  readonly bytes: number;
  /** Keeps only `bytes` (at most what was reserved) and gives the rest back. */
  shrink(bytes: number): void;
  release(): void;
}

interface Waiter {
  key: object;
  bytes: number;
  granted: boolean;
  grant: () => void;
}

export class ResponseBudget {
  readonly totalBytesMax: number;
  readonly perKeyBytesMax: number;
  readonly waitMs: number;
  readonly waitersMax: number;
  readonly sendTimeoutMs: number;
  #total = 0;
  #byKey = new Map<object, number>();
  #waiters: Waiter[] = [];
  /** Keys with their own per-key bound (e.g. /sql answers: the server-wide one only). */
  #perKeyMax = new WeakMap<object, number>();

  constructor(options: ResponseBudgetOptions = {}) {
    this.totalBytesMax = options.totalBytesMax ?? HTTP_RESPONSE_BYTES_PENDING_MAX;
    this.perKeyBytesMax = options.perKeyBytesMax ?? HTTP_HANDLER_RESPONSE_BYTES_PER_DATABASE_MAX;
    this.waitMs = options.waitMs ?? HTTP_RESPONSE_ROOM_WAIT_MS;
    this.waitersMax = options.waitersMax ?? HTTP_RESPONSE_WAITERS_MAX;
    this.sendTimeoutMs = options.sendTimeoutMs ?? HTTP_RESPONSE_SEND_TIMEOUT_MS;
  }

  /** Bytes held server-wide now (for tests and metrics). */
  get heldBytes(): number {
    return this.#total;
  }

  /** Bytes held for `key` now. */
  heldBytesOf(key: object): number {
    return this.#byKey.get(key) ?? 0;
  }

  /**
   * Reserves `bytes` for `key`, waiting in line (FIFO) for room; throws OverloadedError (503)
   * naming the bound when none comes within `waitMs` or too many already wait.
   */
  async reserve(
    key: object,
    bytes: number,
    what: string,
    options: { perKeyBytesMax?: number } = {},
  ): Promise<ResponseReservation> {
    if (options.perKeyBytesMax !== undefined) this.#perKeyMax.set(key, options.perKeyBytesMax);
    if (!this.#waiters.some((w) => w.key === key) && this.#fits(key, bytes)) {
      this.#add(key, bytes);
      return this.#reservation(key, bytes);
    }
    if (this.#waiters.length >= this.waitersMax) {
      throw new OverloadedError(this.#busyText(what, `${this.#waiters.length} requests wait`));
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waiter: Waiter = { key, bytes, granted: false, grant: () => {} };
    await new Promise<void>((resolve) => {
      waiter.grant = resolve;
      this.#waiters.push(waiter);
      timer = setTimeout(resolve, this.waitMs);
    });
    clearTimeout(timer);
    // Granted means counted: the bytes were added when it was let in (#wake).
    if (waiter.granted) return this.#reservation(key, bytes);
    this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
    // Its place in line may have held up requests behind it.
    this.#wake();
    throw new OverloadedError(this.#busyText(what, `waited ${this.waitMs} ms`));
  }

  /**
   * A body that gives `body` to the client chunk by chunk as the connection takes it and
   * releases `reservation` once it is all sent, the client is gone, or after `sendTimeoutMs`
   * (then the stream errors and Deno cuts the connection).
   */
  meteredBody(body: Uint8Array, reservation: ResponseReservation): ReadableStream<Uint8Array> {
    let rest: Uint8Array | undefined = body;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      clearTimeout(timer);
      rest = undefined;
      reservation.release();
    };
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        timer = setTimeout(() => {
          controller.error(new Error("The client did not read the response in time"));
          finish();
        }, this.sendTimeoutMs);
      },
      pull: (controller) => {
        if (rest === undefined) return;
        const chunk = rest.subarray(0, RESPONSE_CHUNK_BYTES);
        rest = rest.subarray(chunk.length);
        controller.enqueue(chunk);
        if (rest.length === 0) {
          controller.close();
          finish();
        }
      },
      cancel: () => finish(),
    }, { highWaterMark: 0 });
  }

  /**
   * Room under both bounds; an answer larger than a bound fits only when nothing else is held
   * under it (an owner's /sql over a large table is slow to read, not refused for good).
   */
  #fits(key: object, bytes: number): boolean {
    const held = this.#byKey.get(key) ?? 0;
    return (this.#total === 0 || this.#total + bytes <= this.totalBytesMax) &&
      (held === 0 || held + bytes <= (this.#perKeyMax.get(key) ?? this.perKeyBytesMax));
  }

  #reservation(key: object, bytes: number): ResponseReservation {
    let held = bytes;
    return {
      get bytes() {
        return held;
      },
      shrink: (keep: number) => {
        const next = Math.max(0, Math.min(held, keep));
        this.#add(key, next - held);
        held = next;
        this.#wake();
      },
      release: () => {
        if (held === 0) return;
        this.#add(key, -held);
        held = 0;
        this.#wake();
      },
    };
  }

  #add(key: object, bytes: number): void {
    this.#total += bytes;
    const next = (this.#byKey.get(key) ?? 0) + bytes;
    if (next === 0) this.#byKey.delete(key);
    else this.#byKey.set(key, next);
  }

  /**
   * Lets waiters in, in order; when the first does not fit, a later one of another database that
   * fits may go ahead (one full database must not hold up the others).
   */
  #wake(): void {
    for (let index = 0; index < this.#waiters.length;) {
      const waiter = this.#waiters[index];
      const blocked = index > 0 && this.#waiters.slice(0, index).some((w) => w.key === waiter.key);
      if (blocked || !this.#fits(waiter.key, waiter.bytes)) {
        index++;
        continue;
      }
      this.#waiters.splice(index, 1);
      this.#add(waiter.key, waiter.bytes);
      waiter.granted = true;
      waiter.grant();
    }
  }

  #busyText(what: string, why: string): string {
    return `Too many large HTTP responses wait for their clients to read them (${why}): ` +
      `${what} needs room for up to ${RESPONSE_ROOM_TEXT(this)}; try again later`;
  }
}

function RESPONSE_ROOM_TEXT(budget: ResponseBudget): string {
  return `its answer within ${budget.perKeyBytesMax} bytes per database and ` +
    `${budget.totalBytesMax} bytes server-wide`;
}

/** Chunk handed to Deno per pull. */
const RESPONSE_CHUNK_BYTES = 64 * 1024;
