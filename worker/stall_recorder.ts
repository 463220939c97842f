/**
 * Event-loop stalls of a database process, by what ran: every task the process runs on its own
 * event loop (a request batch, a snapshot piece, a turn of schedules, any other message) is
 * timed with two clock readings, and one that held the loop for `STALL_THRESHOLD_MS` or more is
 * a stall. A garbage collection, a table growth step or a preemption by the OS inside a task
 * counts towards that task (a trace-gc run of bench/keynote/stall_probe.ts splits those).
 *
 * Stalls are rare, so they travel in a `scheduled` reply of their own (`stalls`: kind, ms
 * pairs) right after the task that stalled, and the server counts them in `/v1/metrics`
 * (`lightcone_database_stall_seconds{kind}`): an operator sees which part of the database
 * process holds up calls, and how often, without a profiler.
 */
import { STALL_KINDS, type StallKind } from "./messages.ts";

/** A task this long or longer is a stall (a call waiting behind it waits about as long). */
export const STALL_THRESHOLD_MS = 10;
/** Stalls held for one report at most; more before a report are counted in `dropped`. */
export const STALL_REPORT_MAX = 64;

const KIND_INDEX = new Map<StallKind, number>(STALL_KINDS.map((kind, i) => [kind, i]));

export class StallRecorder {
  readonly #now: () => number;
  readonly #thresholdMs: number;
  /** Nesting depth: only the outermost task is timed (its time includes the inner ones). */
  #depth = 0;
  #kind = 0;
  #startedMs = 0;
  /** (kind index, ms) pairs not yet reported. */
  #pending: number[] = [];
  /** Stalls not kept because `STALL_REPORT_MAX` were waiting (tests). */
  dropped = 0;

  constructor(now: () => number, thresholdMs = STALL_THRESHOLD_MS) {
    this.#now = now;
    this.#thresholdMs = thresholdMs;
  }

  /** A task of `kind` starts (nested calls count towards the outer task). */
  begin(kind: StallKind): void {
    if (this.#depth++ > 0) return;
    this.#kind = KIND_INDEX.get(kind)!;
    this.#startedMs = this.#now();
  }

  /** The task ends; true when it was a stall (then `take()` has something to report). */
  end(): boolean {
    if (this.#depth === 0 || --this.#depth > 0) return false;
    const ms = this.#now() - this.#startedMs;
    if (!(ms >= this.#thresholdMs)) return false;
    if (this.#pending.length >= 2 * STALL_REPORT_MAX) {
      this.dropped++;
      return false;
    }
    this.#pending.push(this.#kind, ms);
    return true;
  }

  /** Runs `task` as one task of `kind`; returns its result. */
  time<T>(kind: StallKind, task: () => T): T {
    this.begin(kind);
    try {
      return task();
    } finally {
      this.end();
    }
  }

  /** The stalls since the last call as (kind index, ms) pairs, or undefined when there were none. */
  take(): Float64Array | undefined {
    if (this.#pending.length === 0) return undefined;
    const pairs = Float64Array.from(this.#pending);
    this.#pending = [];
    return pairs;
  }
}
