/**
 * The module log inside a database worker, bounded: each message is cut to
 * LOG_MESSAGE_CHARS_MAX, the lines held until the next reply to LOG_REPLY_CHARS_MAX, and the
 * lines kept to the database's log rate (a token bucket). Dropped lines are reported by one
 * marker line per reply. The main thread checks all of this again (worker/reply_check.ts):
 * tenant code shares this worker and could undo it.
 */
import {
  LOG_LINE_OVERHEAD_CHARS,
  LOG_MESSAGE_CHARS_MAX,
  LOG_NAME_CHARS_MAX,
  LOG_REPLY_CHARS_MAX,
  MODULE_LOG_BURST_S,
} from "../lib/limits.ts";
import { TokenBucket } from "../lib/token_bucket.ts";
import { truncateText } from "../lib/truncate.ts";
import type { LogLine } from "./messages.ts";

/** What a line is charged against the reply and rate budgets, in characters. */
export function logLineChars(line: LogLine): number {
  return line.message.length + line.level.length + (line.function?.length ?? 0) +
    (line.target?.length ?? 0) + LOG_LINE_OVERHEAD_CHARS;
}

/** The marker's own characters are not charged; this bounds them for the main thread's check. */
export const LOG_MARKER_CHARS_MAX = 256;

export class ModuleLogLimiter {
  readonly #bucket: TokenBucket;
  #lines: LogLine[] = [];
  #chars = 0;
  #dropped = 0;

  constructor(bytesPerS: number, monotonicMs: () => number) {
    this.#bucket = new TokenBucket(bytesPerS, bytesPerS * MODULE_LOG_BURST_S, monotonicMs);
  }

  /** Keeps `line` (its message cut to size) if both budgets allow, else counts it as dropped. */
  push(line: LogLine): void {
    line.message = truncateText(line.message, LOG_MESSAGE_CHARS_MAX);
    if (line.function !== undefined) {
      line.function = truncateText(line.function, LOG_NAME_CHARS_MAX);
    }
    if (line.target !== undefined) line.target = truncateText(line.target, LOG_NAME_CHARS_MAX);
    const chars = logLineChars(line);
    if (
      this.#chars + chars > LOG_REPLY_CHARS_MAX ||
      !this.#bucket.take(chars)
    ) {
      this.#dropped++;
      return;
    }
    this.#chars += chars;
    this.#lines.push(line);
  }

  /** Takes the lines kept since the last call, then a marker if any were dropped. */
  drain(tsMicros: number): LogLine[] {
    const lines = this.#lines;
    if (this.#dropped > 0) {
      lines.push({
        level: "Warn",
        ts: tsMicros,
        message: `${this.#dropped} log lines dropped: the module logged more than its budget ` +
          `of ${this.#bucket.ratePerS} bytes/s (${LOG_REPLY_CHARS_MAX} characters per batch)`,
      });
      this.#dropped = 0;
    }
    this.#lines = [];
    this.#chars = 0;
    return lines;
  }
}
