/**
 * The storage actor's check that a database worker keeps to its commit-log limits. The worker
 * enforces them itself (worker/engine.ts refuses an oversized or over-rate transaction before it
 * commits), but it shares its thread with tenant code and is untrusted: an append with a record
 * over the size limit, or more bytes than the worker's own bucket could have let through (with
 * COMMIT_LOG_STORAGE_SLACK), means the worker no longer enforces them, and the actor stops that
 * database's writes.
 */
import { COMMIT_LOG_STORAGE_SLACK, commitLogBurstBytes } from "../lib/limits.ts";
import { TokenBucket } from "../lib/token_bucket.ts";

export interface CommitLimits {
  /** Largest commit record of one transaction, in bytes. */
  txRecordBytesMax: number;
  /** Commit-log bytes per second. */
  commitLogBytesPerS: number;
}

export class CommitBudgetCheck {
  readonly #limits: CommitLimits;
  readonly #bucket: TokenBucket;

  constructor(limits: CommitLimits, monotonicMs: () => number) {
    this.#limits = limits;
    const burst = commitLogBurstBytes(limits);
    this.#bucket = new TokenBucket(
      limits.commitLogBytesPerS * COMMIT_LOG_STORAGE_SLACK,
      burst * COMMIT_LOG_STORAGE_SLACK,
      monotonicMs,
    );
  }

  /**
   * Why an append of `recordCount` length-prefixed records in `payload` breaks the limits, or
   * undefined. The layout itself is checked by the log writer.
   */
  check(payload: Uint8Array, recordCount: number): string | undefined {
    const recordMax = this.#limits.txRecordBytesMax * COMMIT_LOG_STORAGE_SLACK;
    let at = 0;
    for (let i = 0; i < recordCount && at + 4 <= payload.length; i++) {
      const length = (payload[at] | (payload[at + 1] << 8) | (payload[at + 2] << 16) |
        (payload[at + 3] << 24)) >>> 0;
      if (length > recordMax) {
        return `a transaction of ${length} bytes is over the limit of ` +
          `${this.#limits.txRecordBytesMax} bytes per transaction`;
      }
      at += 4 + length;
    }
    if (!this.#bucket.take(payload.length)) {
      return `${payload.length} bytes are over the commit log rate of ` +
        `${this.#limits.commitLogBytesPerS} bytes/s`;
    }
    return undefined;
  }
}
