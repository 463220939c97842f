/**
 * The reducer runs a database asked for with `volatile_nonatomic_schedule_immediate`, waiting to
 * run after the current transaction. Bounded in entries and bytes (lib/limits.ts): a module
 * calling it in a loop gets a clear error once the queue is full, instead of growing the worker
 * without bound. Entries leave through `shift()`/`drain()`, which give their room back.
 */
import {
  SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX,
  SCHEDULE_IMMEDIATE_PENDING_MAX,
} from "../lib/limits.ts";

export interface ImmediateRun {
  reducer: string;
  args: Uint8Array;
}

/** What one entry is charged: its arguments, its name, and a fixed overhead. */
function entryBytes(run: ImmediateRun): number {
  return run.args.byteLength + run.reducer.length * 2 + 64;
}

export class ImmediateQueue {
  readonly #entriesMax: number;
  readonly #bytesMax: number;
  #runs: ImmediateRun[] = [];
  #bytes = 0;

  constructor(
    entriesMax = SCHEDULE_IMMEDIATE_PENDING_MAX,
    bytesMax = SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX,
  ) {
    this.#entriesMax = entriesMax;
    this.#bytesMax = bytesMax;
  }

  get length(): number {
    return this.#runs.length;
  }

  /** Throws before taking `args` when they could never fit (so they are not copied first). */
  checkArgs(byteLength: number): void {
    if (byteLength > this.#bytesMax) {
      throw new RangeError(
        `volatile_nonatomic_schedule_immediate: ${byteLength} bytes of arguments is over the ` +
          `limit of ${this.#bytesMax} bytes pending per database`,
      );
    }
  }

  /** Queues `run`, or throws a RangeError naming the limit when the queue is full. */
  push(run: ImmediateRun): void {
    const bytes = entryBytes(run);
    if (this.#runs.length >= this.#entriesMax) {
      throw new RangeError(
        `volatile_nonatomic_schedule_immediate: ${this.#runs.length} reducer runs are already ` +
          `pending for this database (limit ${this.#entriesMax})`,
      );
    }
    if (this.#bytes + bytes > this.#bytesMax) {
      throw new RangeError(
        `volatile_nonatomic_schedule_immediate: the pending reducer runs of this database would ` +
          `hold ${this.#bytes + bytes} bytes (limit ${this.#bytesMax})`,
      );
    }
    this.#runs.push(run);
    this.#bytes += bytes;
  }

  /** The oldest pending run, removed from the queue. */
  shift(): ImmediateRun | undefined {
    const run = this.#runs.shift();
    if (run !== undefined) this.#bytes -= entryBytes(run);
    return run;
  }

  /** Every pending run, oldest first; the queue is empty afterwards. */
  drain(): ImmediateRun[] {
    const runs = this.#runs;
    this.#runs = [];
    this.#bytes = 0;
    return runs;
  }
}
