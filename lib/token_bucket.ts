/**
 * A token bucket over a caller-supplied monotonic time: `ratePerS` tokens flow in per second up
 * to `capacity`; `take(n, nowMs)` spends n tokens or refuses without spending any. Used for
 * per-database byte rates (module log, commit log), where a refused amount is dropped or fails.
 */
export class TokenBucket {
  readonly ratePerS: number;
  readonly capacity: number;
  #tokens: number;
  #lastMs: number | undefined;

  constructor(ratePerS: number, capacity: number) {
    if (!(ratePerS > 0) || !Number.isFinite(ratePerS)) {
      throw new RangeError(`Token bucket rate "${ratePerS}" per second must be a positive number`);
    }
    if (!(capacity > 0) || !Number.isFinite(capacity)) {
      throw new RangeError(`Token bucket capacity "${capacity}" must be a positive number`);
    }
    this.ratePerS = ratePerS;
    this.capacity = capacity;
    this.#tokens = capacity;
  }

  /** Tokens available at `nowMs` (starts full). */
  available(nowMs: number): number {
    if (this.#lastMs === undefined) this.#lastMs = nowMs;
    const elapsedMs = nowMs - this.#lastMs;
    if (elapsedMs > 0) {
      this.#tokens = Math.min(this.capacity, this.#tokens + (elapsedMs * this.ratePerS) / 1000);
      this.#lastMs = nowMs;
    }
    return this.#tokens;
  }

  /** Spends `amount` tokens and returns true, or spends nothing and returns false. */
  take(amount: number, nowMs: number): boolean {
    if (this.available(nowMs) < amount) return false;
    this.#tokens -= amount;
    return true;
  }
}
