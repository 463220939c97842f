/** Types for driver.mjs, the load driver shared by the Node HTTP client and the Deno SDK client. */

/** What one transfer call reports: committed, refused by the transfer's checks, or failed. */
export type Outcome = "ok" | "refused" | "failed";

export interface ErrorKinds {
  refused: number;
  failed: number;
  /** No answer within `timeoutMs`. */
  timeout: number;
  /** `send` threw (connection reset, protocol error). */
  transport: number;
}

export interface LoadOptions {
  pairs: { readonly from: Uint32Array; readonly to: Uint32Array };
  clientCount: number;
  /** 1 = closed loop; 40 = keynote-2's pipelined setting. */
  inflightPerClient: number;
  warmupMs: number;
  measureMs: number;
  /** Length of `ackedDelta` / `unknownCount`; account ids must be below it. */
  accountCount: number;
  /** Default 1. */
  amount?: number;
  /** Per transfer; default 15,000 as keynote-2. */
  timeoutMs?: number;
  /** How long to wait for timed-out transfers after the window; default timeoutMs + 5,000. */
  drainMs?: number;
  /** Sends one transfer over client `client`'s connection(s). Throw on transport errors. */
  send(client: number, from: number, to: number, amount: number): Promise<Outcome>;
  /** Clock in ms; default performance.now. */
  now?: () => number;
  onPhase?: (phase: "warmup" | "measure" | "drain") => void;
  /** Every acknowledged transfer of the window: ms since the window opened, its latency in ms. */
  trace?: (atMs: number, latencyMs: number) => void;
}

export interface LoadResult {
  /** Acknowledged transfers that completed inside the measured window. */
  committed: number;
  /** Non-acknowledged transfers that completed inside the measured window. */
  errors: number;
  errorKinds: ErrorKinds;
  /** Over warm-up, window and drain. */
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
  /** Timed-out transfers still unsettled when the drain ended. */
  undrained: number;
  /** Net amount per account over all acknowledged transfers. */
  ackedDelta: Int32Array;
  /** Per account: transfers touching it whose outcome was not an acknowledgement. */
  unknownCount: Int32Array;
}

export class LatencyHistogram {
  record(ms: number): void;
  get count(): number;
  get maxMs(): number;
  get meanMs(): number;
  quantileMs(q: number): number;
}

export function runLoad(options: LoadOptions): Promise<LoadResult>;
