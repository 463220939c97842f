/**
 * The background check of old commit-log segments (segment_verify.ts), in a worker of its own so
 * neither the main thread nor the storage actor spends a moment on it. Jobs come one database at
 * a time from segment_verifier.ts; each segment's verdict goes back as it is decided, and after
 * each segment the worker sleeps long enough to keep its average read rate at `bytesPerS`.
 */
import { denoFs } from "./fs_layer.ts";
import {
  segmentsBeforeNewestSnapshot,
  type SegmentVerdict,
  verifySegment,
} from "./segment_verify.ts";

/** Main thread -> verifier worker. */
export interface VerifyJob {
  dbKey: string;
  dbDir: string;
  /** Segments already judged in this run of the server: not read again. */
  skip: string[];
  bytesPerS: number;
}

/** Verifier worker -> main thread. */
export type VerifierEvent =
  | { kind: "verdict"; dbKey: string; verdict: SegmentVerdict }
  | { kind: "done"; dbKey: string }
  | { kind: "error"; dbKey: string; message: string };

interface WorkerScope {
  postMessage(message: VerifierEvent): void;
  onmessage: ((event: MessageEvent<VerifyJob>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

const jobs: VerifyJob[] = [];
let running = false;

async function run(): Promise<void> {
  running = true;
  while (jobs.length > 0) {
    const job = jobs.shift()!;
    try {
      const skip = new Set(job.skip);
      for (const segment of segmentsBeforeNewestSnapshot(denoFs, job.dbDir)) {
        if (skip.has(segment.path)) continue;
        const started = performance.now();
        const verdict = verifySegment(denoFs, segment);
        scope.postMessage({ kind: "verdict", dbKey: job.dbKey, verdict });
        const bytes = verdict.kind === "unreadable" ? 0 : verdict.bytes;
        const restMs = (bytes / job.bytesPerS) * 1000 - (performance.now() - started);
        if (restMs > 0) await new Promise((resolve) => setTimeout(resolve, restMs));
      }
      scope.postMessage({ kind: "done", dbKey: job.dbKey });
    } catch (error) {
      scope.postMessage({
        kind: "error",
        dbKey: job.dbKey,
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  running = false;
}

scope.onmessage = (event) => {
  jobs.push(event.data);
  if (!running) void run();
};
