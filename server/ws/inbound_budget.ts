/**
 * What WebSocket clients may have sent and not yet been answered for: raw frames held until
 * client_connected finishes, and decoded requests waiting for the database. Deno's WebSocket has
 * no backpressure (a server socket reads as fast as the peer writes), so the only bound on a
 * client that floods is to close it: the hub closes it as soon as a frame would take its held
 * bytes over its budget (1008) or all clients' held bytes over the server's (1013, retry later).
 * One maximal message always fits (WS_MESSAGE_BYTES_MAX).
 */
import { WS_INBOUND_BYTES_MAX, WS_INBOUND_BYTES_TOTAL_MAX } from "../../lib/limits.ts";

export class InboundBudget {
  #held = 0;

  /** `server`: the budget shared by all clients, charged with everything this one takes. */
  constructor(readonly bytesMax: number, readonly server?: InboundBudget) {}

  /** The server-wide budget. */
  static forServer(bytesMax = WS_INBOUND_BYTES_TOTAL_MAX): InboundBudget {
    return new InboundBudget(bytesMax);
  }

  /** A client's budget, charging `server` too. */
  static forClient(server: InboundBudget, bytesMax = WS_INBOUND_BYTES_MAX): InboundBudget {
    return new InboundBudget(bytesMax, server);
  }

  /** Bytes received and not yet answered. */
  get held(): number {
    return this.#held;
  }

  /**
   * Takes `bytes` for a frame just received. Returns undefined if taken, else the close code and
   * reason (nothing taken).
   */
  take(bytes: number, beforeConnect: boolean): { code: number; reason: string } | undefined {
    if (this.#held + bytes > this.bytesMax) {
      const what = beforeConnect ? "before the connection was accepted" : "not yet answered";
      return {
        code: 1008,
        reason: `Sent ${this.#held + bytes} bytes ${what}; limit ${this.bytesMax}`,
      };
    }
    const server = this.server;
    if (server && server.#held + bytes > server.bytesMax) {
      return {
        code: 1013,
        reason: `Server holds ${server.#held} bytes of client requests; limit ${server.bytesMax}`,
      };
    }
    this.#held += bytes;
    if (server) server.#held += bytes;
    return undefined;
  }

  /** A request was answered (or dropped): its bytes are free again. */
  release(bytes: number): void {
    const freed = Math.min(bytes, this.#held);
    this.#held -= freed;
    if (this.server) this.server.#held -= freed;
  }

  /** The client went: everything it held is free (its answers will not be counted). */
  releaseAll(): void {
    this.release(this.#held);
  }
}
