/**
 * A database's module log: the newest lines in memory for `logs`, followers for
 * `logs --follow`, and an append-only NDJSON file in the database's directory so
 * the log outlives restarts.
 */
import { DATABASE_LOG_LINES_MAX } from "../lib/limits.ts";
import { log } from "../lib/log.ts";
import type { LogLine } from "../worker/mod.ts";

export class LogBuffer {
  #lines: string[] = [];
  #followers = new Set<(line: string) => void>();
  #closers = new Set<() => void>();
  #file: Deno.FsFile | undefined;
  #writeChain: Promise<void> = Promise.resolve();
  readonly #encoder = new TextEncoder();

  private constructor(file: Deno.FsFile | undefined, initial: string[]) {
    this.#file = file;
    this.#lines = initial.slice(-DATABASE_LOG_LINES_MAX);
  }

  /** Opens (or creates) the log file at `path` and loads its newest lines. */
  static async open(path: string | undefined): Promise<LogBuffer> {
    if (!path) return new LogBuffer(undefined, []);
    let initial: string[] = [];
    try {
      const text = await Deno.readTextFile(path);
      initial = text.split("\n").filter((line) => line.length > 0);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const file = await Deno.open(path, { create: true, append: true });
    return new LogBuffer(file, initial);
  }

  append(lines: LogLine[]): void {
    if (lines.length === 0) return;
    const encoded = lines.map((line) => JSON.stringify(line));
    for (const line of encoded) {
      this.#lines.push(line);
      for (const follower of this.#followers) follower(line);
    }
    if (this.#lines.length > DATABASE_LOG_LINES_MAX * 1.5) {
      this.#lines = this.#lines.slice(-DATABASE_LOG_LINES_MAX);
    }
    const file = this.#file;
    if (file) {
      const bytes = this.#encoder.encode(encoded.join("\n") + "\n");
      this.#writeChain = this.#writeChain.then(async () => {
        let written = 0;
        while (written < bytes.length) written += await file.write(bytes.subarray(written));
      }).catch((error) => log.warn("could not write module log", { error: String(error) }));
    }
  }

  /** The newest `count` lines (all when undefined). */
  tail(count: number | undefined): string[] {
    if (count === undefined) return this.#lines.slice();
    return count <= 0 ? [] : this.#lines.slice(-count);
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
