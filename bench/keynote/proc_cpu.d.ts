/** Types for proc_cpu.mjs: CPU accounting from /proc. */

export interface CpuReport {
  seconds: number;
  cores: number;
  /** Per watched process tree, % of one core; null when the process was not found. */
  processPercent: Record<string, number | null>;
  /**
   * Per watched root process (not its children), % of one core per thread name: "main" is the
   * process's own thread, "gc" V8's helper threads, Deno workers are "worker-N" in start order.
   */
  threadPercent?: Record<string, Record<string, number>>;
  /** Whole machine, % of all cores; null off Linux. */
  machine: { busyPercent: number; iowaitPercent: number; stealPercent: number } | null;
}

export interface CpuSample {
  stop(): CpuReport;
}

/** Starts measuring the named process trees (name -> root pid) and the machine. */
export function startCpuSample(roots: Record<string, number>): CpuSample;
