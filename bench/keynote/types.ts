/** Shapes shared by the keynote orchestrator, the baseline side and the Lightcone side. */
import type { BalanceReport } from "./balance_check.ts";
import type { CpuReport } from "./proc_cpu.mjs";
import type { ErrorKinds } from "./driver.mjs";
import type { TransferPairs } from "./workload.ts";

export type LoadMode = "closed" | "pipelined";

/** One measured run of one system: what every side receives. */
export interface RunOptions {
  alpha: number;
  mode: LoadMode;
  clientCount: number;
  /** 1 for closed; `inflight` flag (default 40) for pipelined. */
  inflightPerClient: number;
  warmupMs: number;
  measureMs: number;
  timeoutMs: number;
  accountCount: number;
  initialBalance: number;
  amount: number;
  pairs: TransferPairs;
  /** The same pairs, encoded (workload.ts encodePairs), for the Node client. */
  pairsPath: string;
  /** A scratch directory this run may use; removed by the orchestrator. */
  workDir: string;
  /** The repository root (absolute path, no trailing slash). */
  repoRoot: string;
  /** Lightcone only: extra `main.ts start` flags (e.g. `--snapshot-interval-tx 250000`). */
  serverArgs?: string[];
  /** Lightcone only: ledger rows inserted before the run (the append-heavy variant's table). */
  ledgerRows?: number;
}

/** What the load driver measured, without the per-account arrays. */
export interface LoadSummary {
  committed: number;
  errors: number;
  errorKinds: ErrorKinds;
  totalErrorKinds: ErrorKinds;
  firstError?: string;
  tps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
  perSecondTps: number[];
  measuredMs: number;
  totalSent: number;
  totalAcked: number;
  undrained: number;
}

export interface SystemResult {
  /** Stable key: "lightcone", "sqlite", "sqlite-wal", "pg", "pg-immediate". */
  systemKey: string;
  /** Display name, e.g. "Node + SQLite (defaults: DELETE journal, synchronous FULL)". */
  systemName: string;
  alpha: number;
  mode: LoadMode;
  clientCount: number;
  inflightPerClient: number;
  /** "ok": measured and the balance check passed; "failed": it ran but something broke. */
  status: "ok" | "failed" | "skipped";
  reason?: string;
  load?: LoadSummary;
  balance?: BalanceReport;
  cpu?: CpuReport | null;
  /** Settings and versions the system reported about itself. */
  info?: Record<string, unknown>;
  /** Machine busy % (all cores) just before the run; high means other load shared the machine. */
  startBusyPercent?: number;
  /** With --reps > 1, on the median row: the TPS of every repetition, in run order. */
  runTps?: number[];
  /** Server-side counters (PostgreSQL retries). */
  serverStats?: Record<string, unknown>;
}
