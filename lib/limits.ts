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
/** Largest PostgreSQL wire message after startup (a Query carries SQL of at most SQL_BYTES_MAX). */
export const PG_MESSAGE_BYTES_MAX = 1024 * 1024;
/** Largest PostgreSQL startup packet; PostgreSQL itself allows 10,000 bytes. */
export const PG_STARTUP_BYTES_MAX = 10_000;
/** Time a PostgreSQL wire client has to authenticate, as PostgreSQL's authentication_timeout. */
export const PG_STARTUP_TIMEOUT_MS = 60_000;
/** Open PostgreSQL wire connections at once; more are refused with FATAL 53300 (too_many_connections). */
export const PG_CONNECTIONS_MAX = 1024;
