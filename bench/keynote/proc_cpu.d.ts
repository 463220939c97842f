/** Types for proc_cpu.mjs: CPU accounting from /proc. */

export interface CpuReport {
  seconds: number;
  cores: number;
  /** Per watched process tree, % of one core; null when the process was not found. */
  processPercent: Record<string, number | null>;
  /** Whole machine, % of all cores; null off Linux. */
  machine: { busyPercent: number; iowaitPercent: number; stealPercent: number } | null;
}

export interface CpuSample {
  stop(): CpuReport;
}

/** Starts measuring the named process trees (name -> root pid) and the machine. */
export function startCpuSample(roots: Record<string, number>): CpuSample;
