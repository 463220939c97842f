/**
 * A token bucket: `ratePerS` tokens flow in per second up to `capacity`; `take(n)` spends n
 * tokens or refuses without spending any. Used for per-database byte rates (module log, commit
 * log), where a refused amount is dropped or fails.
 *
 * A caller that has just read the clock may pass that reading (`nowMs`) instead of having the
 * bucket read it again: on a hot path such as every commit, a clock read (~0.1-0.3 µs through
 * `performance.now()`) costs more than the rest of the check.
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

  /** Tokens available now (or at `nowMs`, a reading of the same clock). */
  available(nowMs = this.#monotonicMs()): number {
    const elapsedMs = nowMs - this.#lastMs;
    if (elapsedMs > 0) {
      this.#tokens = Math.min(this.capacity, this.#tokens + (elapsedMs * this.ratePerS) / 1000);
      this.#lastMs = nowMs;
    }
    return this.#tokens;
  }

  /** Spends `amount` tokens and returns true, or spends nothing and returns false. */
  take(amount: number, nowMs?: number): boolean {
    // Always refill first: time that passed while the bucket was full must not be credited
    // after this take (a full bucket that waited 10 s would otherwise let two bursts through).
    if (this.available(nowMs) < amount) return false;
    this.#tokens -= amount;
    return true;
  }
}
