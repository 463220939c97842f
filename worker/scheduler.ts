/**
 * The pending schedules of one database: one binary min-heap ordered by due time (then by
 * arming order), plus a map from (table id, scheduled id) to its live entry. The database
 * worker keeps one host timer for the earliest entry, never one per row, so 100,000 pending
 * schedules cost a heap slot and a map entry each. Cancelling marks the entry dead and drops
 * it from the map; dead entries leave the heap when they reach the top, or all at once when
 * they outnumber the live ones. Pure data structure: times are passed in (wall-clock µs).
 */

import {
  SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX,
  SCHEDULE_IMMEDIATE_PENDING_MAX,
} from "../lib/limits.ts";

/** A schedule row's timer: fires the table's reducer with the row, if the row still exists. */
export interface RowEntry {
  kind: "row";
  tableId: number;
  scheduledId: bigint;
  /** The time the run is intended for (µs since the Unix epoch). */
  intendedMicros: bigint;
  dueMicros: number;
  sequence: number;
  cancelled: boolean;
}

/** A `volatile_nonatomic_schedule_immediate` request: runs once, as soon as possible. */
export interface ImmediateEntry {
  kind: "immediate";
  reducer: string;
  args: Uint8Array;
  dueMicros: number;
  sequence: number;
  cancelled: boolean;
}

export type ScheduleEntry = RowEntry | ImmediateEntry;

/** What one immediate run is charged against the byte bound: arguments, name, overhead. */
function immediateBytes(reducer: string, args: Uint8Array): number {
  return args.byteLength + reducer.length * 2 + 64;
}

export interface ScheduleQueueOptions {
  /** Immediate runs pending at once (lib/limits.ts SCHEDULE_IMMEDIATE_PENDING_MAX). */
  immediateMax?: number;
  /** Bytes held by pending immediate runs (SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX). */
  immediateBytesMax?: number;
}

export class ScheduleQueue {
  #heap: ScheduleEntry[] = [];
  #byRow = new Map<number, Map<bigint, RowEntry>>();
  #live = 0;
  #immediate = 0;
  #immediateBytes = 0;
  readonly #immediateMax: number;
  readonly #immediateBytesMax: number;
  #nextSequence = 0;

  constructor(options: ScheduleQueueOptions = {}) {
    this.#immediateMax = options.immediateMax ?? SCHEDULE_IMMEDIATE_PENDING_MAX;
    this.#immediateBytesMax = options.immediateBytesMax ?? SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX;
  }

  /** Armed row schedules plus queued immediate runs. */
  get size(): number {
    return this.#live;
  }

  /** Queued immediate runs (for the bound on `volatile_nonatomic_schedule_immediate`). */
  get immediateCount(): number {
    return this.#immediate;
  }

  /** Arms (or re-arms, replacing the old timer) the schedule of one row. */
  arm(tableId: number, scheduledId: bigint, intendedMicros: bigint, dueMicros: number): void {
    this.cancel(tableId, scheduledId);
    const entry: RowEntry = {
      kind: "row",
      tableId,
      scheduledId,
      intendedMicros,
      dueMicros,
      sequence: this.#nextSequence++,
      cancelled: false,
    };
    let rows = this.#byRow.get(tableId);
    if (!rows) this.#byRow.set(tableId, rows = new Map());
    rows.set(scheduledId, entry);
    this.#push(entry);
  }

  /** Disarms the schedule of one row; nothing happens when it is not armed. */
  cancel(tableId: number, scheduledId: bigint): void {
    const rows = this.#byRow.get(tableId);
    const entry = rows?.get(scheduledId);
    if (!entry) return;
    rows!.delete(scheduledId);
    entry.cancelled = true;
    this.#live--;
    // Dead entries may take at most half the heap.
    if (this.#heap.length > 64 && this.#live < this.#heap.length / 2) this.#compact();
  }

  isArmed(tableId: number, scheduledId: bigint): boolean {
    return this.#byRow.get(tableId)?.has(scheduledId) ?? false;
  }

  /**
   * Throws before a `volatile_nonatomic_schedule_immediate` copies arguments this big: they
   * could never fit the byte bound.
   */
  checkImmediateArgs(byteLength: number): void {
    if (byteLength > this.#immediateBytesMax) {
      throw new RangeError(
        `volatile_nonatomic_schedule_immediate: ${byteLength} bytes of arguments is over the ` +
          `limit of ${this.#immediateBytesMax} bytes pending per database`,
      );
    }
  }

  /**
   * Queues an immediate run, or throws a RangeError naming the limit when the database already
   * has SCHEDULE_IMMEDIATE_PENDING_MAX runs or SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX bytes pending
   * (a module calling it in a loop would otherwise grow the worker without bound).
   */
  pushImmediate(reducer: string, args: Uint8Array, nowMicros: number): void {
    if (this.#immediate >= this.#immediateMax) {
      throw new RangeError(
        `volatile_nonatomic_schedule_immediate: ${this.#immediate} reducer runs are already ` +
          `pending for this database (limit ${this.#immediateMax})`,
      );
    }
    const bytes = immediateBytes(reducer, args);
    if (this.#immediateBytes + bytes > this.#immediateBytesMax) {
      throw new RangeError(
        `volatile_nonatomic_schedule_immediate: the pending reducer runs of this database would ` +
          `hold ${this.#immediateBytes + bytes} bytes (limit ${this.#immediateBytesMax})`,
      );
    }
    this.#immediate++;
    this.#immediateBytes += bytes;
    this.#push({
      kind: "immediate",
      reducer,
      args,
      dueMicros: nowMicros,
      sequence: this.#nextSequence++,
      cancelled: false,
    });
  }

  /** Every armed row schedule (table id, scheduled id, intended time), in no particular order. */
  armedRows(): { tableId: number; scheduledId: bigint; intendedMicros: bigint }[] {
    const rows = [];
    for (const [tableId, entries] of this.#byRow) {
      for (const entry of entries.values()) {
        rows.push({
          tableId,
          scheduledId: entry.scheduledId,
          intendedMicros: entry.intendedMicros,
        });
      }
    }
    return rows;
  }

  /** Due time of the earliest live entry, or undefined when nothing is pending. */
  nextDueMicros(): number | undefined {
    this.#dropDeadTop();
    return this.#heap.length > 0 ? this.#heap[0].dueMicros : undefined;
  }

  /** Takes the earliest live entry if it is due at `nowMicros`; it is no longer armed. */
  popDue(nowMicros: number): ScheduleEntry | undefined {
    this.#dropDeadTop();
    const top = this.#heap[0];
    if (top === undefined || top.dueMicros > nowMicros) return undefined;
    this.#pop();
    this.#live--;
    if (top.kind === "row") this.#byRow.get(top.tableId)!.delete(top.scheduledId);
    else {
      this.#immediate--;
      this.#immediateBytes -= immediateBytes(top.reducer, top.args);
    }
    return top;
  }

  #dropDeadTop(): void {
    while (this.#heap.length > 0 && this.#heap[0].cancelled) this.#pop();
  }

  #push(entry: ScheduleEntry): void {
    this.#live++;
    const heap = this.#heap;
    heap.push(entry);
    let at = heap.length - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!before(entry, heap[parent])) break;
      heap[at] = heap[parent];
      at = parent;
    }
    heap[at] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    this.#siftDown(last, 0);
  }

  #siftDown(entry: ScheduleEntry, start: number): void {
    const heap = this.#heap;
    const length = heap.length;
    let at = start;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= length) break;
      if (child + 1 < length && before(heap[child + 1], heap[child])) child++;
      if (!before(heap[child], entry)) break;
      heap[at] = heap[child];
      at = child;
    }
    heap[at] = entry;
  }

  #compact(): void {
    const live = this.#heap.filter((entry) => !entry.cancelled);
    this.#heap = live;
    for (let at = (live.length >> 1) - 1; at >= 0; at--) this.#siftDown(live[at], at);
  }
}

function before(a: ScheduleEntry, b: ScheduleEntry): boolean {
  return a.dueMicros < b.dueMicros || (a.dueMicros === b.dueMicros && a.sequence < b.sequence);
}

/**
 * The next tick of an interval schedule: the first point strictly after `nowMicros` on the
 * grid `lastIntendedMicros + k * interval` (k ≥ 1), so missed ticks are skipped and the grid
 * does not drift. A zero interval fires again at its last intended time.
 */
export function nextIntervalTick(
  lastIntendedMicros: bigint,
  intervalMicros: bigint,
  nowMicros: bigint,
): bigint {
  const interval = intervalMicros < 0n ? -intervalMicros : intervalMicros;
  if (interval === 0n) return lastIntendedMicros;
  const elapsed = nowMicros - lastIntendedMicros;
  const ticks = elapsed <= 0n ? 1n : elapsed / interval + 1n;
  return lastIntendedMicros + interval * ticks;
}
