/**
 * What one WebSocket client may have sent and not yet been answered for: raw frames held until
 * client_connected finishes, and decoded requests waiting for the database. Deno's WebSocket has
 * no backpressure (a server socket reads as fast as the peer writes), so the only bound on a
 * client that floods is to close it: the hub closes it (1008) as soon as a frame would take its
 * held bytes over the budget. One maximal message always fits (WS_MESSAGE_BYTES_MAX).
 */
import { WS_INBOUND_BYTES_MAX } from "../../lib/limits.ts";

export class InboundBudget {
  #held = 0;

  constructor(readonly bytesMax: number = WS_INBOUND_BYTES_MAX) {}

  /** Bytes received and not yet answered. */
  get held(): number {
    return this.#held;
  }

  /** Takes `bytes` for a frame just received; false (nothing taken) if over the budget. */
  take(bytes: number): boolean {
    if (this.#held + bytes > this.bytesMax) return false;
    this.#held += bytes;
    return true;
  }

  /** A request was answered (or dropped): its bytes are free again. */
  release(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes);
  }

  /** The close reason for a frame of `bytes` that did not fit. */
  refusal(bytes: number, beforeConnect: boolean): string {
    return beforeConnect
      ? `Sent ${
        this.#held + bytes
      } bytes before the connection was accepted; limit ${this.bytesMax}`
      : `Sent ${this.#held + bytes} bytes not yet answered; limit ${this.bytesMax}`;
  }
}
