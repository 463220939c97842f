/**
 * Per-database metrics and their Prometheus text exposition (format 0.0.4), served by
 * `GET /v1/metrics`. Recording is on the hot path, so it only adds numbers: counters are plain
 * fields, a histogram is a fixed Float64Array of bucket counts found by a short linear scan.
 * Gauges (clients, queues, memory) are read when scraped, never maintained.
 */
import { type BatchItem, STALL_KINDS } from "../worker/mod.ts";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Reducer and procedure run time in µs (upper bounds, `le`). A call of a small module takes
 * 5-50 µs in the database process; 1 ms is a heavy call; the default budget stops a call at
 * seconds, so the top bounds show calls that are close to it.
 */
export const CALL_DURATION_BOUNDS_MICROS: readonly number[] = [
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  25_000,
  50_000,
  100_000,
  250_000,
  1_000_000,
  5_000_000,
];

/**
 * One commit log's fdatasync in µs: tens of µs on a fast NVMe or with `--in-memory` (no sync),
 * ~1-10 ms on an SSD, tens of ms on network or rotating disks; above 100 ms it is a stall.
 */
export const FSYNC_DURATION_BOUNDS_MICROS: readonly number[] = [
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  25_000,
  50_000,
  100_000,
  250_000,
  1_000_000,
];

/** Transactions one fdatasync made durable (group commit): powers of two up to 4096. */
export const FSYNC_BATCH_BOUNDS: readonly number[] = [
  1,
  2,
  4,
  8,
  16,
  32,
  64,
  128,
  256,
  512,
  1024,
  2048,
  4096,
];

/**
 * Time to wake a hibernated database in µs (process start, snapshot load, log suffix): ~0.1-0.3 s
 * for a small module on an idle machine; seconds mean a big state or a loaded host.
 */
export const WAKE_DURATION_BOUNDS_MICROS: readonly number[] = [
  50_000,
  100_000,
  150_000,
  200_000,
  300_000,
  500_000,
  750_000,
  1_000_000,
  2_000_000,
  5_000_000,
  10_000_000,
];

/**
 * One event-loop stall of a database process in µs (a task of 10 ms or more, see
 * worker/stall_recorder.ts): a call arriving meanwhile waits about that long on top of its own
 * time, so these are the tail's own-process share.
 */
export const STALL_DURATION_BOUNDS_MICROS: readonly number[] = [
  10_000,
  20_000,
  50_000,
  100_000,
  200_000,
  500_000,
  1_000_000,
  5_000_000,
];

/**
 * A WebSocket reducer call on the server in µs, from its frame's dispatch on the main thread: the
 * keynote's calls take ~1-3 ms end to end at 1-5 in flight per client, 10-25 ms at 20-40, so the
 * bounds are fine from 0.25 to 50 ms (a p50 and a p99 can be read off to a bucket).
 */
export const CALL_LATENCY_BOUNDS_MICROS: readonly number[] = [
  250,
  500,
  750,
  1_000,
  1_500,
  2_000,
  3_000,
  4_000,
  5_000,
  7_500,
  10_000,
  15_000,
  20_000,
  30_000,
  40_000,
  50_000,
  75_000,
  100_000,
  250_000,
  1_000_000,
];

/** Counts per bucket (not cumulative; the +Inf bucket last), the sum and count of observations. */
export class Histogram {
  readonly bounds: readonly number[];
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new RangeError("Histogram bounds must increase");
    }
    this.bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.buckets[i]++;
    this.sum += value;
    this.count++;
  }
}

/** What one database recorded since the server started (it survives worker restarts). */
export class DatabaseMetrics {
  transactionsCommitted = 0;
  /** Replies handed on from the database process (request batches, scheduled runs, procedures). */
  replies = 0;
  reducerCallsCommitted = 0;
  reducerCallsFailedUser = 0;
  reducerCallsFailedInternal = 0;
  readonly reducerDuration = new Histogram(CALL_DURATION_BOUNDS_MICROS);
  procedureCallsOk = 0;
  procedureCallsFailed = 0;
  readonly procedureDuration = new Histogram(CALL_DURATION_BOUNDS_MICROS);
  readonly fsyncDuration = new Histogram(FSYNC_DURATION_BOUNDS_MICROS);
  readonly fsyncBatch = new Histogram(FSYNC_BATCH_BOUNDS);
  restarts = 0;
  commitLogBytes = 0;
  /**
   * Commit-log segments before the newest snapshot (recovery does not read them) checked in the
   * background: intact, and corrupt (storage/segment_verifier.ts; each logged as an error).
   */
  commitLogSegmentsVerified = 0;
  commitLogSegmentsCorrupt = 0;
  /** Times the database was hibernated, and woken (with how long each wake took). */
  hibernations = 0;
  wakes = 0;
  readonly wakeDuration = new Histogram(WAKE_DURATION_BOUNDS_MICROS);
  /**
   * WebSocket reducer calls: dispatch → the database process's answer handled on the main thread
   * (`callReply`: the host's queue, the pipes, the batch in the database process), and dispatch →
   * the result written to the socket (`callSent`: plus the wait for the fsync and the outbox).
   */
  readonly callReply = new Histogram(CALL_LATENCY_BOUNDS_MICROS);
  readonly callSent = new Histogram(CALL_LATENCY_BOUNDS_MICROS);
  /** A request batch sent to the database process → its reply on the main thread. */
  readonly batchRoundTrip = new Histogram(CALL_LATENCY_BOUNDS_MICROS);
  /** Event-loop stalls of the database process, one histogram per STALL_KINDS entry. */
  readonly stallDuration: readonly Histogram[] = STALL_KINDS.map(() =>
    new Histogram(STALL_DURATION_BOUNDS_MICROS)
  );

  /** The newest transaction offset seen: the counter adds how far each batch moved it. */
  #txOffset = 0;

  /**
   * One batch's results and updates, as the database worker reported them. Transactions are
   * counted by how far the offsets move (a reducer call that changed no subscribed query comes
   * back packed, with no update item, and procedures commit inside `withTx`).
   */
  recordItems(items: readonly BatchItem[]): void {
    this.replies++;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const txOffset = (item as { txOffset?: number }).txOffset;
      if (typeof txOffset === "number" && txOffset > this.#txOffset) {
        this.transactionsCommitted += txOffset - this.#txOffset;
        this.#txOffset = txOffset;
      }
      if (item.kind === "call") {
        this.reducerDuration.observe(item.durationMicros);
        if (item.status === "committed") this.reducerCallsCommitted++;
        else if (item.status === "failed_user") this.reducerCallsFailedUser++;
        else this.reducerCallsFailedInternal++;
      } else if (item.kind === "procedure") {
        this.procedureDuration.observe(item.durationMicros);
        if (item.ok) this.procedureCallsOk++;
        else this.procedureCallsFailed++;
      }
    }
  }

  /**
   * A database process started: it replayed the log up to `logEndTxOffset`, then committed
   * transactions of its own before it was ready (init, clearing connections left by a crash),
   * which no batch reported.
   */
  countStartup(readyTxOffset: number, logEndTxOffset: number): void {
    if (readyTxOffset > logEndTxOffset) {
      this.transactionsCommitted += readyTxOffset - logEndTxOffset;
    }
    this.#txOffset = readyTxOffset;
  }

  /** Stalls the database process reported: (index into STALL_KINDS, ms) pairs, checked. */
  recordStalls(pairs: Float64Array): void {
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      this.stallDuration[pairs[i]]?.observe(pairs[i + 1] * 1000);
    }
  }

  /** A hibernated database woke in `durationMs`. */
  recordWake(durationMs: number): void {
    this.wakes++;
    this.wakeDuration.observe(durationMs * 1000);
  }

  /** One flush of the database's commit log. */
  recordFsync(syncMs: number, txCount: number, bytes: number): void {
    this.commitLogBytes += bytes;
    this.fsyncDuration.observe(syncMs * 1000);
    this.fsyncBatch.observe(txCount);
  }
}

/** Everything sampled for one database at scrape time. */
export interface DatabaseSample {
  /** The `database` label: its first name, else its identity in hex. */
  label: string;
  metrics: DatabaseMetrics;
  up: boolean;
  /** Its hibernation state (server/database_registry.ts HibernationState). */
  hibernation: "awake" | "hibernating" | "hibernated" | "waking";
  durableTxOffset: number;
  clients: number;
  subscriptions: number;
  outboundBytes: number;
  outboxMessages: number;
  queuedRequests: number;
  batchesInFlight: number;
  /** Resident memory of the database process, when it could be read. */
  residentBytes: number | undefined;
}

/** A label value as the exposition format wants it: backslash, quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** The exposition text of every database's metrics, one family after another. */
export function renderMetrics(
  samples: readonly DatabaseSample[],
  server?: { heapUsedBytes: number; residentBytes: number },
): string {
  const out: string[] = [];
  if (server) {
    // The server process itself (main thread, storage worker): what hibernated databases cost.
    out.push(
      "# HELP lightcone_server_heap_used_bytes V8 heap in use on the server's main thread (databases, hub, routes)",
      "# TYPE lightcone_server_heap_used_bytes gauge",
      `lightcone_server_heap_used_bytes ${formatNumber(server.heapUsedBytes)}`,
      "# HELP lightcone_server_resident_memory_bytes Resident set size of the server process",
      "# TYPE lightcone_server_resident_memory_bytes gauge",
      `lightcone_server_resident_memory_bytes ${formatNumber(server.residentBytes)}`,
    );
  }
  const labels = samples.map((sample) => `database="${escapeLabelValue(sample.label)}"`);
  const family = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: (sample: DatabaseSample) => number | undefined,
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    samples.forEach((sample, i) => {
      const v = value(sample);
      if (v !== undefined) out.push(`${name}{${labels[i]}} ${formatNumber(v)}`);
    });
  };
  const statusFamily = (
    name: string,
    help: string,
    label: string,
    values: (sample: DatabaseSample) => [string, number][],
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    samples.forEach((sample, i) => {
      for (const [status, v] of values(sample)) {
        out.push(`${name}{${labels[i]},${label}="${status}"} ${formatNumber(v)}`);
      }
    });
  };
  const histogramLines = (name: string, label: string, h: Histogram, scale: number) => {
    let cumulative = 0;
    for (let b = 0; b < h.bounds.length; b++) {
      cumulative += h.buckets[b];
      out.push(`${name}_bucket{${label},le="${formatNumber(h.bounds[b] / scale)}"} ${cumulative}`);
    }
    cumulative += h.buckets[h.bounds.length];
    out.push(`${name}_bucket{${label},le="+Inf"} ${cumulative}`);
    out.push(`${name}_sum{${label}} ${formatNumber(h.sum / scale)}`);
    out.push(`${name}_count{${label}} ${h.count}`);
  };
  /** One histogram family: per database, one series per `[extra label, pick]` pair. */
  const labelledHistogram = (
    name: string,
    help: string,
    series: readonly (readonly [string, (metrics: DatabaseMetrics) => Histogram])[],
    scale: number,
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    samples.forEach((sample, i) => {
      for (const [label, pick] of series) {
        histogramLines(
          name,
          label ? `${labels[i]},${label}` : labels[i],
          pick(sample.metrics),
          scale,
        );
      }
    });
  };
  const histogram = (
    name: string,
    help: string,
    pick: (metrics: DatabaseMetrics) => Histogram,
    scale: number,
  ) => labelledHistogram(name, help, [["", pick]], scale);

  family(
    "lightcone_database_up",
    "gauge",
    "1 while the database serves (hibernated ones included), 0 while it is stopped (crashed, storage failed)",
    (s) => s.up ? 1 : 0,
  );
  family(
    "lightcone_database_hibernated",
    "gauge",
    "1 while the database is hibernated (no process; woken by the next request, connection or schedule)",
    (s) => s.hibernation === "hibernated" ? 1 : 0,
  );
  family(
    "lightcone_database_hibernations_total",
    "counter",
    "Times the database was hibernated after being idle (--hibernate-after-s)",
    (s) => s.metrics.hibernations,
  );
  family(
    "lightcone_commit_log_segments_verified_total",
    "counter",
    "Commit-log segments before the newest snapshot (not read by recovery) checked in the background and found intact",
    (s) => s.metrics.commitLogSegmentsVerified,
  );
  family(
    "lightcone_commit_log_segments_corrupt_total",
    "counter",
    "Commit-log segments before the newest snapshot found corrupt by the background check (each logged as an error naming file and byte); the database keeps serving from its snapshot",
    (s) => s.metrics.commitLogSegmentsCorrupt,
  );
  family(
    "lightcone_database_wakes_total",
    "counter",
    "Times the hibernated database was woken",
    (s) => s.metrics.wakes,
  );
  histogram(
    "lightcone_database_wake_seconds",
    "Time from the wake-up trigger until the woken database serves (process start, snapshot, log suffix)",
    (m) => m.wakeDuration,
    1e6,
  );
  family(
    "lightcone_transactions_committed_total",
    "counter",
    "Transactions committed (reducer calls, lifecycle reducers, schedules)",
    (s) => s.metrics.transactionsCommitted,
  );
  family(
    "lightcone_database_replies_total",
    "counter",
    "Replies from the database process (one per request batch, scheduled turn or procedure result): transactions per reply is the batch size",
    (s) => s.metrics.replies,
  );
  family(
    "lightcone_durable_tx_offset",
    "gauge",
    "Transactions known to be on disk",
    (s) => s.durableTxOffset,
  );
  statusFamily(
    "lightcone_reducer_calls_total",
    "Reducer calls answered, by outcome",
    "status",
    (s) => [
      ["committed", s.metrics.reducerCallsCommitted],
      ["failed_user", s.metrics.reducerCallsFailedUser],
      ["failed_internal", s.metrics.reducerCallsFailedInternal],
    ],
  );
  family(
    "lightcone_reducer_calls_failed_total",
    "counter",
    "Reducer calls that failed (the reducer threw, or an internal error)",
    (s) => s.metrics.reducerCallsFailedUser + s.metrics.reducerCallsFailedInternal,
  );
  histogram(
    "lightcone_reducer_duration_seconds",
    "Run time of reducer calls in the database process",
    (m) => m.reducerDuration,
    1e6,
  );
  statusFamily(
    "lightcone_procedure_calls_total",
    "Procedure calls answered, by outcome",
    "status",
    (s) => [["ok", s.metrics.procedureCallsOk], ["failed", s.metrics.procedureCallsFailed]],
  );
  histogram(
    "lightcone_procedure_duration_seconds",
    "Run time of procedure calls in the database process",
    (m) => m.procedureDuration,
    1e6,
  );
  histogram(
    "lightcone_commitlog_fsync_seconds",
    "Duration of one fdatasync of the commit log (one per storage flush that had writes)",
    (m) => m.fsyncDuration,
    1e6,
  );
  histogram(
    "lightcone_commitlog_fsync_transactions",
    "Transactions made durable by one fdatasync (group commit batch size)",
    (m) => m.fsyncBatch,
    1,
  );
  family(
    "lightcone_commitlog_written_bytes_total",
    "counter",
    "Transaction record bytes written to the commit log and made durable",
    (s) => s.metrics.commitLogBytes,
  );
  family(
    "lightcone_websocket_clients",
    "gauge",
    "WebSocket connections open to the database",
    (s) => s.clients,
  );
  family(
    "lightcone_subscriptions",
    "gauge",
    "Query sets subscribed by the database's WebSocket clients",
    (s) => s.subscriptions,
  );
  family(
    "lightcone_websocket_outbound_bytes",
    "gauge",
    "Bytes written to the database's WebSocket clients and not yet sent by the socket",
    (s) => s.outboundBytes,
  );
  family(
    "lightcone_websocket_outbox_messages",
    "gauge",
    "Messages queued for the database's WebSocket clients (waiting for durability or a frame)",
    (s) => s.outboxMessages,
  );
  family(
    "lightcone_host_queued_requests",
    "gauge",
    "Requests queued on the main thread for the next batch to the database process",
    (s) => s.queuedRequests,
  );
  family(
    "lightcone_host_batches_in_flight",
    "gauge",
    "Batches sent to the database process and not yet answered (at most 4)",
    (s) => s.batchesInFlight,
  );
  family(
    "lightcone_database_resident_memory_bytes",
    "gauge",
    "Resident set size of the database process (VmRSS)",
    (s) => s.residentBytes,
  );
  labelledHistogram(
    "lightcone_websocket_call_seconds",
    "WebSocket reducer calls on the server, from the frame's dispatch on the main thread: until the database process's answer is handled (stage reply) and until the result is written to the socket after its transaction is durable (stage sent)",
    [['stage="reply"', (m) => m.callReply], ['stage="sent"', (m) => m.callSent]],
    1e6,
  );
  histogram(
    "lightcone_host_batch_seconds",
    "A request batch from being sent to the database process until its reply arrived on the main thread (pipes, the process's queue, its work on the batch)",
    (m) => m.batchRoundTrip,
    1e6,
  );
  labelledHistogram(
    "lightcone_database_stall_seconds",
    "Event-loop stalls of the database process (one task of 10 ms or more), by what ran: a request batch, a snapshot piece, scheduled runs, another message",
    STALL_KINDS.map((kind, k) => [`kind="${kind}"`, (m) => m.stallDuration[k]] as const),
    1e6,
  );
  family(
    "lightcone_database_restarts_total",
    "counter",
    "Times the database process was restarted after it crashed",
    (s) => s.metrics.restarts,
  );
  out.push("");
  return out.join("\n");
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** VmRSS of process `pid` in bytes, from /proc (Linux); undefined where unreadable. */
export async function residentBytes(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
