/** Every bound in one place, with its unit in the name and why it is what it is. */

/** Largest module bundle accepted by publish. Real bundles are 250 KB-2 MB. */
export const MODULE_BYTES_MAX = 64 * 1024 * 1024;
/** Largest HTTP request body other than a module (reducer args, SQL). */
export const HTTP_BODY_BYTES_MAX = 16 * 1024 * 1024;
/** Largest client WebSocket message; SpacetimeDB allows 32 MiB. */
export const WS_MESSAGE_BYTES_MAX = 32 * 1024 * 1024;
/** Outbound bytes queued for one client before it is disconnected as too slow. */
export const WS_OUTBOUND_BYTES_MAX = 64 * 1024 * 1024;
/** Reducer calls one connection may have in flight; SpacetimeDB closes at 16384. */
export const WS_PENDING_CALLS_MAX = 16384;
/** Query sets one connection may hold at once. */
export const WS_QUERY_SETS_MAX = 4096;
/** Uncompressed payload per outbound v3 frame before starting a new frame. */
export const WS_FRAME_PAYLOAD_BYTES_TARGET = 512 * 1024;
/** Default time budget for one reducer call before it is stopped and rolled back. */
export const REDUCER_TIME_BUDGET_MS_DEFAULT = 10_000;
/**
 * Memory budget of one database process: its V8 heap cap, and the address space it may add
 * past its loaded runtime (ArrayBuffers and table data included; worker/isolation.ts).
 */
export const DATABASE_MEMORY_MB_DEFAULT = 512;
/** How long a module's describe/top-level evaluation may take at publish. */
export const MODULE_LOAD_TIMEOUT_MS = 30_000;
/** SQL text length accepted by subscribe and /sql. */
export const SQL_BYTES_MAX = 64 * 1024;
/** Lines kept in memory per database log for `logs`. */
export const DATABASE_LOG_LINES_MAX = 10_000;
/** Size a commit-log segment is preallocated to before a new one is started. */
export const LOG_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Zero-filled bytes a log segment is extended by ahead of the write position (fdatasync then needs no size update). */
export const LOG_PREALLOCATE_BYTES = 4 * 1024 * 1024;
/** Payload bytes one database's drained batch is split at into separate commits (each synced before the next). */
export const LOG_COMMIT_PAYLOAD_BYTES_TARGET = 16 * 1024 * 1024;
/** Commit payload bytes sent per message while streaming a log to a database worker at recovery. */
export const LOG_REPLAY_CHUNK_BYTES = 4 * 1024 * 1024;
/** Snapshots kept per database; older ones are deleted after a new one is durable. */
export const SNAPSHOTS_KEPT = 2;
/**
 * Durable transactions between automatic snapshots of a database (as SpacetimeDB), overridable with
 * `--snapshot-interval-tx`. A snapshot blocks its database while the state is copied (~100 ms per
 * 100k rows); a restart replays at most this many transactions (~130k/s: bench/recovery_bench.ts).
 */
export const SNAPSHOT_INTERVAL_TX = 1_000_000;
/** Nesting depth of a SQL WHERE expression; SpacetimeDB's parser stops near 1,600 levels. */
export const SQL_EXPR_DEPTH_MAX = 1_000;
/** How long a call, SQL query or new WebSocket waits for a database's module update before a 503. */
export const UPDATE_WAIT_MS_MAX = 30_000;

// --- Per-database hard limits (issue #15): what one tenant can make the server hold or write ---

/**
 * Characters of one module log message; longer ones are cut here (marked as truncated) in the
 * worker, and a reply carrying a longer one stops the database. Stack traces and JSON dumps fit.
 */
export const LOG_MESSAGE_CHARS_MAX = 64 * 1024;
/** Characters of a log line's function/target name (a reducer name) and level. */
export const LOG_NAME_CHARS_MAX = 1024;
/**
 * Module log characters one worker reply may carry (a line counts its message, names and
 * LOG_LINE_OVERHEAD_CHARS); lines beyond are dropped in the worker with one marker. Bounds what
 * one reply can make the main thread hold, whatever the module logs between two replies.
 */
export const LOG_REPLY_CHARS_MAX = 1024 * 1024;
/** What each log line is charged on top of its text (its JSON fields), so empty lines count. */
export const LOG_LINE_OVERHEAD_CHARS = 64;
/**
 * Default module log rate per database, in bytes per second (`--module-log-kb-per-s`). Lines
 * over the rate are dropped, and one "N lines dropped" marker says so. A chatty module logging a
 * 100-byte line per call at 5,000 calls/s stays under it.
 */
export const MODULE_LOG_BYTES_PER_S_DEFAULT = 1024 * 1024;
/** Module log bytes a database may write in a burst above its rate (the bucket's size). */
export const MODULE_LOG_BURST_S = 8;
/** Size at which module.log is renamed to module.log.1 (replacing it): at most twice this on disk. */
export const MODULE_LOG_FILE_BYTES_MAX = 16 * 1024 * 1024;
/** Characters of module log kept in memory per database for `logs` (besides DATABASE_LOG_LINES_MAX). */
export const MODULE_LOG_MEMORY_CHARS_MAX = 2 * 1024 * 1024;
/**
 * Characters queued for one `logs --follow` stream that reads slower than the database logs;
 * beyond, new lines are dropped for that stream with one marker.
 */
export const LOG_FOLLOW_PENDING_CHARS_MAX = 1024 * 1024;

/**
 * Default largest commit record of one transaction, in bytes (`--tx-max-mb`). A transaction whose
 * record would be larger fails and commits nothing. Four times the largest HTTP body, so any
 * reducer call a client can send can also write its arguments and a few rows of the same size.
 */
export const TX_RECORD_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/**
 * Default commit-log growth rate per database, in bytes per second (`--commit-log-mb-per-s`). A
 * transaction that would exceed it fails and commits nothing. The keynote workload writes about
 * 100 bytes per transaction: 16 MiB/s is far above what one database worker commits of real work.
 */
export const COMMIT_LOG_BYTES_PER_S_DEFAULT = 16 * 1024 * 1024;
/** Seconds of commit-log rate a database may spend in a burst (the bucket's size, at least one max transaction). */
export const COMMIT_LOG_BURST_S = 8;
/**
 * Slack the storage worker allows a database worker over its commit-log bucket before it decides
 * the worker is not enforcing its own budget (it is untrusted) and stops that database's writes.
 */
export const COMMIT_LOG_STORAGE_SLACK = 2;

/**
 * `volatile_nonatomic_schedule_immediate` requests one database may have pending; the next
 * fails with a clear error. A reducer loop can otherwise queue without bound.
 */
export const SCHEDULE_IMMEDIATE_PENDING_MAX = 10_000;
/** Argument bytes held by one database's pending immediate schedules (each copied at the call). */
export const SCHEDULE_IMMEDIATE_PENDING_BYTES_MAX = 64 * 1024 * 1024;

/** The per-database rates and sizes an operator can set; the defaults are above. */
export interface DatabaseLimits {
  moduleLogBytesPerS: number;
  commitLogBytesPerS: number;
  txRecordBytesMax: number;
}

export const DATABASE_LIMITS_DEFAULT: Readonly<DatabaseLimits> = Object.freeze({
  moduleLogBytesPerS: MODULE_LOG_BYTES_PER_S_DEFAULT,
  commitLogBytesPerS: COMMIT_LOG_BYTES_PER_S_DEFAULT,
  txRecordBytesMax: TX_RECORD_BYTES_MAX_DEFAULT,
});

/** The commit-log bucket's size for `limits`: COMMIT_LOG_BURST_S of rate, at least one max transaction. */
export function commitLogBurstBytes(limits: DatabaseLimits): number {
  return Math.max(limits.txRecordBytesMax, limits.commitLogBytesPerS * COMMIT_LOG_BURST_S);
}
