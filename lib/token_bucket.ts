/**
 * A token bucket: `ratePerS` tokens flow in per second up to `capacity`; `take(n)` spends n
 * tokens or refuses without spending any. Used for per-database byte rates (module log, commit
 * log), where a refused amount is dropped or fails.
 *
 * The clock is read only when the tokens on hand do not cover a take (or for `available()`):
 * on a hot path such as every commit, a clock read costs more than the rest of the check, and
 * skipping a refill only undercounts the tokens until the next one.
 */
export class TokenBucket {
  readonly ratePerS: number;
  readonly capacity: number;
  readonly #monotonicMs: () => number;
  #tokens: number;
  #lastMs: number;

  /** Starts full. `monotonicMs`: a monotonic clock in milliseconds. */
  constructor(ratePerS: number, capacity: number, monotonicMs: () => number) {
    if (!(ratePerS > 0) || !Number.isFinite(ratePerS)) {
      throw new RangeError(`Token bucket rate "${ratePerS}" per second must be a positive number`);
    }
    if (!(capacity > 0) || !Number.isFinite(capacity)) {
      throw new RangeError(`Token bucket capacity "${capacity}" must be a positive number`);
    }
    this.ratePerS = ratePerS;
    this.capacity = capacity;
    this.#monotonicMs = monotonicMs;
    this.#tokens = capacity;
    this.#lastMs = monotonicMs();
  }

  /** Tokens available now. */
  available(): number {
    const nowMs = this.#monotonicMs();
    const elapsedMs = nowMs - this.#lastMs;
    if (elapsedMs > 0) {
      this.#tokens = Math.min(this.capacity, this.#tokens + (elapsedMs * this.ratePerS) / 1000);
      this.#lastMs = nowMs;
    }
    return this.#tokens;
  }

  /** Spends `amount` tokens and returns true, or spends nothing and returns false. */
  take(amount: number): boolean {
    // Always refill first: time that passed while the bucket was full must not be credited
    // after this take (a full bucket that waited 10 s would otherwise let two bursts through).
    if (this.available() < amount) return false;
    this.#tokens -= amount;
    return true;
  }
}
