/**
 * A database's module log: the newest lines in memory for `logs`, followers for
 * `logs --follow`, and an NDJSON file in the database's directory so the log
 * outlives restarts.
 *
 * Everything here is bounded, whatever the module logs (issue #15): each message is cut to
 * LOG_MESSAGE_CHARS_MAX (the worker does it too, but its replies are untrusted), lines over the
 * database's log rate are dropped with one "N log lines dropped" marker, the lines kept in memory
 * are bounded in count and characters, and the file is renamed to `<path>.1` once it reaches
 * its size limit, so at most two files of that size exist.
 */
import { concatBytes } from "../lib/bytes.ts";
import {
  DATABASE_LOG_LINES_MAX,
  LOG_FOLLOW_PENDING_CHARS_MAX,
  LOG_MESSAGE_CHARS_MAX,
  LOG_NAME_CHARS_MAX,
  MODULE_LOG_BURST_S,
  MODULE_LOG_BYTES_PER_S_DEFAULT,
  MODULE_LOG_FILE_BYTES_MAX,
  MODULE_LOG_MEMORY_CHARS_MAX,
} from "../lib/limits.ts";
import { log } from "../lib/log.ts";
import { TokenBucket } from "../lib/token_bucket.ts";
import { truncateText } from "../lib/truncate.ts";
import type { LogLine } from "../worker/mod.ts";

export interface LogBufferOptions {
  /** Log bytes per second this database may write (MODULE_LOG_BYTES_PER_S_DEFAULT). */
  bytesPerS?: number;
  /** Size at which the file is rotated (MODULE_LOG_FILE_BYTES_MAX). */
  fileBytesMax?: number;
  /** Characters of lines kept in memory (MODULE_LOG_MEMORY_CHARS_MAX). */
  memoryCharsMax?: number;
  /** Monotonic milliseconds, for the rate (performance.now). */
  monotonicMs?: () => number;
}

export class LogBuffer {
  /** Lines kept in memory, oldest first, from `#head` on (shifting a big array costs). */
  #lines: string[] = [];
  #head = 0;
  #memoryChars = 0;
  readonly #memoryCharsMax: number;
  #followers = new Set<(line: string) => void>();
  #closers = new Set<() => void>();
  #path: string | undefined;
  #file: Deno.FsFile | undefined;
  #fileBytes: number;
  readonly #fileBytesMax: number;
  #writeChain: Promise<void> = Promise.resolve();
  readonly #bucket: TokenBucket;
  #dropped = 0;
  readonly #encoder = new TextEncoder();

  private constructor(
    path: string | undefined,
    file: Deno.FsFile | undefined,
    fileBytes: number,
    initial: string[],
    options: LogBufferOptions,
  ) {
    this.#path = path;
    this.#file = file;
    this.#fileBytes = fileBytes;
    this.#fileBytesMax = options.fileBytesMax ?? MODULE_LOG_FILE_BYTES_MAX;
    this.#memoryCharsMax = options.memoryCharsMax ?? MODULE_LOG_MEMORY_CHARS_MAX;
    const bytesPerS = options.bytesPerS ?? MODULE_LOG_BYTES_PER_S_DEFAULT;
    this.#bucket = new TokenBucket(
      bytesPerS,
      bytesPerS * MODULE_LOG_BURST_S,
      options.monotonicMs ?? (() => performance.now()),
    );
    for (const line of initial) this.#remember(line);
  }

  /**
   * Opens (or creates) the log file at `path` and loads its newest lines (at most the memory
   * bound's worth is read, however big an old file is).
   */
  static async open(path: string | undefined, options: LogBufferOptions = {}): Promise<LogBuffer> {
    if (!path) return new LogBuffer(undefined, undefined, 0, [], options);
    const memoryCharsMax = options.memoryCharsMax ?? MODULE_LOG_MEMORY_CHARS_MAX;
    let initial: string[] = [];
    let file = await Deno.open(path, { create: true, read: true, append: true });
    let size = (await file.stat()).size;
    if (size > 0) {
      const readBytes = Math.min(size, memoryCharsMax);
      const bytes = new Uint8Array(readBytes);
      await file.seek(size - readBytes, Deno.SeekMode.Start);
      let read = 0;
      while (read < readBytes) {
        const n = await file.read(bytes.subarray(read));
        if (n === null) break;
        read += n;
      }
      const lines = new TextDecoder().decode(bytes.subarray(0, read)).split("\n");
      // The first line is partial unless the whole file was read.
      if (readBytes < size) lines.shift();
      initial = lines.filter((line) => line.length > 0);
    }
    const fileBytesMax = options.fileBytesMax ?? MODULE_LOG_FILE_BYTES_MAX;
    if (size >= fileBytesMax) {
      file.close();
      if (size <= 2 * fileBytesMax) {
        await Deno.rename(path, `${path}.1`);
        file = await Deno.open(path, { create: true, append: true });
        size = 0;
      } else {
        // A file from before the limit existed: keep only the lines just read.
        const kept = new TextEncoder().encode(initial.map((line) => line + "\n").join(""));
        await Deno.writeFile(path, kept);
        file = await Deno.open(path, { append: true });
        size = kept.length;
      }
    }
    return new LogBuffer(path, file, size, initial, options);
  }

  append(lines: LogLine[]): void {
    if (lines.length === 0) return;
    const accepted: Uint8Array[] = [];
    for (const line of lines) {
      const text = encodeLine(line);
      if (text === undefined) continue;
      const bytes = this.#encoder.encode(text + "\n");
      if (!this.#bucket.take(bytes.length)) {
        this.#dropped++;
        continue;
      }
      if (this.#dropped > 0) accepted.push(this.#accept(this.#droppedMarker(line.ts)));
      accepted.push(this.#accept(text, bytes));
    }
    if (accepted.length > 0) this.#write(accepted);
  }

  #droppedMarker(ts: unknown): string {
    const marker = JSON.stringify({
      level: "Warn",
      ts: typeof ts === "number" ? ts : Date.now() * 1000,
      message: `${this.#dropped} log lines dropped: the database logged more than its budget ` +
        `of ${this.#bucket.ratePerS} bytes/s`,
    });
    this.#dropped = 0;
    return marker;
  }

  /** Keeps `text` in memory, hands it to followers, and returns its bytes for the file. */
  #accept(text: string, bytes = this.#encoder.encode(text + "\n")): Uint8Array {
    this.#remember(text);
    for (const follower of this.#followers) follower(text);
    return bytes;
  }

  #remember(text: string): void {
    this.#lines.push(text);
    this.#memoryChars += text.length;
    while (
      this.#lines.length - this.#head > DATABASE_LOG_LINES_MAX ||
      (this.#memoryChars > this.#memoryCharsMax && this.#lines.length - this.#head > 1)
    ) {
      this.#memoryChars -= this.#lines[this.#head].length;
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#lines.length) {
      this.#lines = this.#lines.slice(this.#head);
      this.#head = 0;
    }
  }

  #write(chunks: Uint8Array[]): void {
    if (!this.#file) return;
    const bytes = concatBytes(chunks);
    this.#writeChain = this.#writeChain.then(async () => {
      if (this.#fileBytes > 0 && this.#fileBytes + bytes.length > this.#fileBytesMax) {
        await this.#rotate();
      }
      const file = this.#file;
      if (!file) return;
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      this.#fileBytes += written;
    }).catch((error) => log.warn("could not write module log", { error: String(error) }));
  }

  /** module.log becomes module.log.1 (replacing the older one); a new module.log starts. */
  async #rotate(): Promise<void> {
    const path = this.#path!;
    this.#file?.close();
    this.#file = undefined;
    await Deno.rename(path, `${path}.1`);
    this.#file = await Deno.open(path, { create: true, append: true });
    this.#fileBytes = 0;
  }

  /** The newest `count` lines (all when undefined). */
  tail(count: number | undefined): string[] {
    const start = count === undefined
      ? this.#head
      : Math.max(this.#head, this.#lines.length - Math.max(0, count));
    return count !== undefined && count <= 0 ? [] : this.#lines.slice(start);
  }

  /** Calls `listener` with each new line, and `onClose` when the log closes (database deleted). */
  follow(listener: (line: string) => void, onClose?: () => void): () => void {
    this.#followers.add(listener);
    if (onClose) this.#closers.add(onClose);
    return () => {
      this.#followers.delete(listener);
      if (onClose) this.#closers.delete(onClose);
    };
  }

  async close(): Promise<void> {
    await this.#writeChain;
    this.#file?.close();
    this.#file = undefined;
    this.#followers.clear();
    for (const closer of this.#closers) closer();
    this.#closers.clear();
  }
}

/**
 * Lines waiting for one `logs --follow` reader that reads slower than the database logs:
 * bounded in characters; lines that do not fit are dropped for this reader, and one marker line
 * says how many once there is room again.
 */
export class FollowQueue {
  readonly #charsMax: number;
  #lines: string[] = [];
  #chars = 0;
  #dropped = 0;

  constructor(charsMax = LOG_FOLLOW_PENDING_CHARS_MAX) {
    this.#charsMax = charsMax;
  }

  get empty(): boolean {
    return this.#lines.length === 0;
  }

  push(line: string): void {
    if (this.#chars + line.length > this.#charsMax) {
      this.#dropped++;
      return;
    }
    if (this.#dropped > 0) {
      const marker = JSON.stringify({
        level: "Warn",
        ts: Date.now() * 1000,
        message: `${this.#dropped} log lines dropped: this stream was read too slowly`,
      });
      this.#lines.push(marker);
      this.#chars += marker.length;
      this.#dropped = 0;
    }
    this.#lines.push(line);
    this.#chars += line.length;
  }

  /** Every queued line, oldest first; the queue is empty afterwards. */
  take(): string[] {
    const lines = this.#lines;
    this.#lines = [];
    this.#chars = 0;
    return lines;
  }
}

/**
 * The NDJSON text of a line from a worker, its strings cut to size; undefined for a line that is
 * not shaped like one (the worker is untrusted; init and ready replies are not checked upstream).
 */
function encodeLine(line: LogLine): string | undefined {
  if (typeof line !== "object" || line === null) return undefined;
  if (typeof line.level !== "string" || typeof line.message !== "string") return undefined;
  // SpacetimeDB's field order: level, ts, target, function, message.
  const out: Partial<LogLine> = {
    level: truncateText(line.level, LOG_NAME_CHARS_MAX),
    ts: typeof line.ts === "number" ? line.ts : 0,
  };
  if (typeof line.target === "string") out.target = truncateText(line.target, LOG_NAME_CHARS_MAX);
  if (typeof line.function === "string") {
    out.function = truncateText(line.function, LOG_NAME_CHARS_MAX);
  }
  out.message = truncateText(line.message, LOG_MESSAGE_CHARS_MAX);
  if (typeof line.filename === "string") {
    out.filename = truncateText(line.filename, LOG_NAME_CHARS_MAX);
  }
  if (typeof line.line_number === "number") out.line_number = line.line_number;
  return JSON.stringify(out);
}
