/** Time source passed into storage/, query/ and worker/ so simulations can replay. */

// Captured at load: a database process later removes `performance` from its globals.
const hostPerformance = performance;
export interface Clock {
  /** Wall-clock microseconds since the Unix epoch. */
  nowMicros(): bigint;
  /** Monotonic milliseconds, for budgets and durations. */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMicros: () => BigInt(Date.now()) * 1000n,
  monotonicMs: () => hostPerformance.now(),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(public micros = 1_700_000_000_000_000n, public monotonic = 0) {}
  nowMicros(): bigint {
    return this.micros;
  }
  monotonicMs(): number {
    return this.monotonic;
  }
  advanceMs(ms: number): void {
    this.monotonic += ms;
    this.micros += BigInt(Math.round(ms * 1000));
  }
}
