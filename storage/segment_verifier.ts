/**
 * Main-thread handle of the background check of old commit-log segments
 * (segment_verifier_worker.ts). `schedule(dbKey)` after a database recovered, or after a new
 * snapshot put more segments behind it: each segment is judged once per run of the server (sealed
 * segments never change), one database at a time, at a bounded read rate. The worker runs only
 * while there is work. A verdict is reported, never acted on: a database serving from its
 * snapshot is healthy, and its operator decides what to do about a damaged old segment.
 */
import { SEGMENT_VERIFY_BYTES_PER_S } from "../lib/limits.ts";
import { databaseDir, logDir, snapshotDir } from "./recovery.ts";
import type { SegmentVerdict } from "./segment_verify.ts";
import type { VerifierEvent, VerifyJob } from "./segment_verifier_worker.ts";

export type { SegmentVerdict };

export interface SegmentVerifierOptions {
  dataDir: string;
  /** Average read rate of the check (default SEGMENT_VERIFY_BYTES_PER_S). */
  bytesPerS?: number;
  /** Each segment's verdict, as it is decided. */
  onVerdict: (dbKey: string, verdict: SegmentVerdict) => void;
}

export class SegmentVerifier {
  readonly #options: SegmentVerifierOptions;
  #worker: Worker | undefined;
  /** Jobs posted to the worker and not yet done. */
  #outstanding = 0;
  /** Per database: segments judged in this run (ok or corrupt), not read again. */
  readonly #judged = new Map<string, Set<string>>();
  /** Databases with a job waiting or running (one job each at a time). */
  readonly #queued = new Set<string>();
  /** Databases scheduled again while their job ran: one more job when it ends. */
  readonly #again = new Set<string>();
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(options: SegmentVerifierOptions) {
    this.#options = options;
  }

  /**
   * Checks the database's segments wholly before its newest snapshot that are not judged yet.
   * A database with no snapshot or a single segment (most) has none: two directory listings
   * here tell, and no worker starts for it.
   */
  schedule(dbKey: string): void {
    if (this.#closed) return;
    if (this.#queued.has(dbKey)) {
      this.#again.add(dbKey);
      return;
    }
    this.#queued.add(dbKey);
    this.#outstanding++;
    void this.#mayHaveWork(dbKey).then((work) => {
      if (this.#closed || !this.#queued.has(dbKey)) return;
      if (work) this.#post(dbKey);
      else this.#onEvent({ kind: "done", dbKey });
    });
  }

  async #mayHaveWork(dbKey: string): Promise<boolean> {
    const dir = databaseDir(this.#options.dataDir, dbKey);
    const count = async (path: string, suffix: string) => {
      let found = 0;
      try {
        for await (const entry of Deno.readDir(path)) if (entry.name.endsWith(suffix)) found++;
      } catch {
        // No directory: nothing to check.
      }
      return found;
    };
    return await count(snapshotDir(dir), ".snap") > 0 && await count(logDir(dir), ".log") > 1;
  }

  #post(dbKey: string): void {
    const job: VerifyJob = {
      dbKey,
      dbDir: databaseDir(this.#options.dataDir, dbKey),
      skip: [...(this.#judged.get(dbKey) ?? [])],
      bytesPerS: this.#options.bytesPerS ?? SEGMENT_VERIFY_BYTES_PER_S,
    };
    this.#start().postMessage(job);
  }

  /** Forgets a deleted database (its segments are gone). */
  forget(dbKey: string): void {
    this.#judged.delete(dbKey);
    this.#again.delete(dbKey);
  }

  /** Resolves once no check is waiting or running (tests, shutdown). */
  idle(): Promise<void> {
    if (this.#outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): void {
    this.#closed = true;
    this.#stop();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL("./segment_verifier_worker.ts", import.meta.url), {
      type: "module",
      name: "lightcone-segment-verifier",
    });
    worker.onmessage = (event: MessageEvent<VerifierEvent>) => this.#onEvent(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      // Nothing is lost: the next schedule starts a new worker and re-reads what was not judged.
      this.#stop();
    };
    this.#worker = worker;
    return worker;
  }

  #onEvent(event: VerifierEvent): void {
    if (event.kind === "verdict") {
      const verdict = event.verdict;
      if (verdict.kind !== "unreadable") {
        let judged = this.#judged.get(event.dbKey);
        if (!judged) this.#judged.set(event.dbKey, judged = new Set());
        judged.add(verdict.path);
      }
      this.#options.onVerdict(event.dbKey, verdict);
      return;
    }
    if (event.kind === "error") {
      this.#options.onVerdict(event.dbKey, {
        kind: "unreadable",
        path: databaseDir(this.#options.dataDir, event.dbKey),
        error: event.message,
      });
    }
    this.#queued.delete(event.dbKey);
    this.#outstanding--;
    if (this.#again.delete(event.dbKey)) this.schedule(event.dbKey);
    if (this.#outstanding === 0) this.#stop();
  }

  #stop(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#outstanding = 0;
    this.#queued.clear();
    this.#again.clear();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
