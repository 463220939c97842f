/** Every bound in one place, with its unit in the name and why it is what it is. */

/** Largest module bundle accepted by publish. Real bundles are 250 KB-2 MB. */
export const MODULE_BYTES_MAX = 64 * 1024 * 1024;
/** Largest HTTP request body other than a module (reducer args, SQL). */
export const HTTP_BODY_BYTES_MAX = 16 * 1024 * 1024;
/*
 * The front door (server/request_body.ts). Bodies are read chunk by chunk as they arrive, never
 * with `req.text()`/`arrayBuffer()`: Deno 2.9 allocates those from the announced Content-Length,
 * so 1,000 requests announcing 16 MB and never sending it pinned GiBs. What Deno.serve (2.9.6)
 * does not let us bound, measured on this machine: it has no header-read, keep-alive or idle
 * timeout option (a connection that sends nothing, half a header block, or stays idle after a
 * response is still open after 130 s), and no way to close a connection from a handler (after a
 * 408/413 the connection stays open until the client sends the rest or goes). Such connections
 * cost ~6 KB (idle) to ~16 KB (4 KB of header) each; the process's open-file limit bounds them.
 * (`keepAliveTimeout`, proposed in denoland/deno#34172, is ignored by 2.9.6.)
 */
/** Time a request body may take to arrive in full before the request fails with 408. */
export const HTTP_BODY_TIMEOUT_MS_DEFAULT = 30_000;
/**
 * Request bodies being received at once, server-wide; one more is refused with 503. A stalled
 * body costs ~0.1 MB of Deno and Hono state until its timeout.
 */
export const HTTP_BODIES_IN_FLIGHT_MAX = 1024;
/**
 * Body bytes received and held at once, server-wide (a body counts until its handler has it).
 * A body that would go over fails with 503: this, not the per-body caps, bounds body memory.
 */
export const HTTP_BODY_BYTES_IN_FLIGHT_MAX = 512 * 1024 * 1024;
/**
 * Largest client WebSocket message; SpacetimeDB allows 32 MiB. Deno assembles a whole message
 * before JS sees it (up to 64 MiB, its own cap; no option lowers it), so this is checked before
 * decoding, not before receiving.
 */
export const WS_MESSAGE_BYTES_MAX = 32 * 1024 * 1024;
/**
 * Inbound bytes one WebSocket client may have outstanding: frames held until client_connected
 * finishes plus requests handed to the database and not yet answered. Two maximal messages:
 * a client that floods (Deno's WebSocket cannot push back on a socket) is closed with 1008 as
 * soon as it is over, instead of growing the main thread's memory and work without bound.
 */
export const WS_INBOUND_BYTES_MAX = 2 * WS_MESSAGE_BYTES_MAX;
/** The same over all clients of the server: a client whose frame would go over is closed (1013). */
export const WS_INBOUND_BYTES_TOTAL_MAX = 512 * 1024 * 1024;
/**
 * Messages in one v3 frame, checked while decoding: a frame of millions of tiny messages stops
 * here. More than this many would go over WS_PENDING_CALLS_MAX anyway (the TS SDK cuts its
 * frames at 256 KiB, ~17,000 of the smallest calls).
 */
export const WS_FRAME_MESSAGES_MAX = 16384;
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
/**
 * Databases one server hosts at most (`--max-databases`). An idle database costs ~36-45 MiB (its
 * process or worker, runtime and tables; ARCHITECTURE.md "Isolation"), so 100 of them fit a host
 * with 8 GiB with room for their data. Anonymous identities cost nothing to mint, so this cap, not
 * the per-identity one, bounds an anonymous flood of publishes.
 */
export const DATABASES_MAX_DEFAULT = 100;
/**
 * Databases one identity may own (`--max-databases-per-identity`): one client cannot take the
 * whole server-wide quota under one identity (tests and the CLI need a handful).
 */
export const DATABASES_PER_IDENTITY_MAX_DEFAULT = 10;
/** Largest PostgreSQL wire message after startup (a Query carries SQL of at most SQL_BYTES_MAX). */
export const PG_MESSAGE_BYTES_MAX = 1024 * 1024;
/** Largest PostgreSQL startup packet; PostgreSQL itself allows 10,000 bytes. */
export const PG_STARTUP_BYTES_MAX = 10_000;
/** Time a PostgreSQL wire client has to authenticate, as PostgreSQL's authentication_timeout. */
export const PG_STARTUP_TIMEOUT_MS = 60_000;
/** Open PostgreSQL wire connections at once; more are refused with FATAL 53300 (too_many_connections). */
export const PG_CONNECTIONS_MAX = 1024;
