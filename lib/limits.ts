/** Every bound in one place, with its unit in the name and why it is what it is. */

/** Largest module bundle accepted by publish. Real bundles are 250 KB-2 MB. */
export const MODULE_BYTES_MAX = 64 * 1024 * 1024;
/** Largest HTTP request body other than a module (reducer args, SQL). */
export const HTTP_BODY_BYTES_MAX = 16 * 1024 * 1024;
/*
 * The front door (server/request_body.ts). Bodies are read chunk by chunk as they arrive, never
 * with `req.text()`/`arrayBuffer()`: Deno 2.9 allocates those from the announced Content-Length,
 * so 1,000 requests announcing 16 MB and never sending it pinned GiBs. Deno.serve (2.9.6) has no
 * header-read, keep-alive or idle timeout and no way to close a connection from a handler; the
 * timeouts below are enforced beside it by server/conn_reaper.ts (ARCHITECTURE "The front door").
 */
/**
 * A connection must deliver a whole request header block within this time of opening, and one
 * with no request in flight is closed this long after its last response (server/conn_reaper.ts
 * enforces both beside Deno.serve, which has neither). WebSockets are exempt: Deno pings them
 * and closes one that does not answer (`idleTimeout` in server/ws/hub.ts).
 */
export const HTTP_HEADER_TIMEOUT_MS_DEFAULT = 20_000;
export const HTTP_IDLE_TIMEOUT_MS_DEFAULT = 30_000;
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
/**
 * Open WebSocket connections from one client source (an IP address, an IPv6 /64:
 * server/ws/client_source.ts) and in all. A connection is held as long as its peer answers pings
 * and costs a file descriptor and ~40 KB; there was no bound, so one anonymous address could
 * open connections until the server ran out of file descriptors (new connections, database
 * processes and commit-log segments then fail for every database). Past either the upgrade is
 * refused with 503.
 */
export const WS_CONNECTIONS_PER_SOURCE_MAX = 1_000;
export const WS_CONNECTIONS_MAX = 10_000;
/**
 * How long an upgraded WebSocket may stay CONNECTING. In Deno 2.9 a peer that goes away while the
 * upgrade completes fires neither open nor close: such clients stayed in the hub (and in the
 * connection counts above) forever. After this they are dropped.
 */
export const WS_OPEN_TIMEOUT_MS = 10_000;
/**
 * Characters of subscribed SQL text the hub keeps (to subscribe each set again after a module
 * update) for one client source's connections, and for all. Query sets are bounded per connection
 * (WS_QUERY_SETS_MAX) but each may name queries up to SQL_BYTES_MAX, and texts that differ only
 * in spacing share one live query in the database, so its bounds do not cover them: one
 * connection of 4,096 sets of a 60 KB query held ~250 MB of the main thread. Past either a
 * Subscribe is refused.
 */
export const WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX = 8 * 1024 * 1024;
export const WS_QUERY_TEXT_CHARS_TOTAL_MAX = 128 * 1024 * 1024;
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
/**
 * Wall time the database owner's SQL may run (`--owner-sql-budget-ms`): a /sql SELECT (the
 * dashboard's console and the PostgreSQL port included), a one-off query or a subscription's
 * initial rows. The database thread answers nothing else meanwhile (reducer calls wait), so even
 * the owner's cross join of two large tables must stop; others get the reducer budget. Same as
 * the reducer budget's default: long enough for any scan of a database that fits in memory.
 */
export const OWNER_SQL_BUDGET_MS_DEFAULT = 10_000;
/** SQL text length accepted by subscribe and /sql. */
export const SQL_BYTES_MAX = 64 * 1024;
/**
 * Join tuples a /sql SELECT may build (query/sql_eval.ts): a cross join of two 10k-row tables
 * is 100M tuples, which would exhaust the database process; past this the query is refused.
 */
export const SQL_JOIN_ROWS_MAX = 5_000_000;
/**
 * Join tuples one live query's delta may produce for one transaction (query/delta.ts). A join
 * on a non-unique column fans out: a self-join over an empty table followed by one insert of k
 * equal rows is k² delta rows, enough to exhaust the database process. Past this the query is
 * dropped and its subscribers get a SubscriptionError; the writer's transaction stands.
 */
export const SUBSCRIPTION_DELTA_ROWS_MAX = 1_000_000;
/**
 * Rows one live query's joins may look at for one transaction's delta, kept or filtered out
 * (query/delta.ts): the rows found for each table after the changed one. A join whose WHERE
 * rejects nearly every joined row emits little but may look at rows² all the same. Past this
 * the query is dropped like one over SUBSCRIPTION_DELTA_ROWS_MAX. Measured on the loaded 2-core
 * dev machine: ~0.3 µs a row looked at and filtered out, ~0.33 µs a delta row built (netted,
 * before encoding), so this bound is ~1.5 s of one transaction, and every kept row counts here
 * too: a delta row is also kept in memory and sent, hence its smaller bound.
 */
export const SUBSCRIPTION_DELTA_EXAMINED_ROWS_MAX = 5_000_000;
/**
 * Bytes of rows one reply of a database process may carry in query results: subscriptions'
 * initial rows, unsubscribes' dropped rows, one-off and /sql results and subscription deltas,
 * added up over a batch (or a schedule turn, a procedure's transactions, replicated ones). Each
 * result refers to rows the datastore already holds until the reply is encoded, which copies
 * them: an anonymous client's one frame of 64 subscriptions to a public 40 MB table, or 200
 * distinct subscriptions over a table that a 4 MB write then touched, asked the 512 MiB process
 * for GiBs and crashed it. Past this the first result of a reply is still answered whole (a big
 * table can still be subscribed to); a later one is refused with a "retry" error (subscribe,
 * unsubscribe, queries) or its live query is dropped like one over SUBSCRIPTION_DELTA_ROWS_MAX
 * (deltas, older live queries first). Twice the largest transaction record.
 */
export const QUERY_RESULT_BYTES_PER_REPLY_MAX = 128 * 1024 * 1024;
/**
 * Distinct live queries of one database (subscribers of the same query share one) and the
 * characters of their SQL text, summed. A live query's plan, routing entries and index state stay
 * in the database process while subscribed: measured ~7 KB for a short query and ~80 bytes per
 * character of a long OR chain (500 distinct 3.2 KB queries held 133 MB). Before these bounds one
 * anonymous frame of 4,096 such subscriptions, or ~80 connections of 4,096 short ones, crashed
 * the 512 MiB process. Past either a subscription that needs a new live query is refused; ones
 * that share a live query are not. Twice the 10,000 `WHERE id = k` subscriptions that the
 * routing is built for.
 */
export const SUBSCRIPTION_LIVE_QUERIES_MAX = 20_000;
export const SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX = 1024 * 1024;
/**
 * Per-sender view instances (one per subscribed identity, worker/views.ts) that may read one
 * table whole in a database. Every write to that table re-runs each of them inside the writer's
 * transaction, and anonymous connections mint identities for free: a view scanning 20k rows
 * cost a write 80 ms with 1 subscriber and 1.6 s with 200, so ~1,250 connections would make every
 * write fail its time budget. Past this a new sender's subscription to such a view is refused;
 * instances that read index points (re-run only when their key is written) are not counted.
 * 256 keeps a write's worst case near a second on such a view while admitting a few hundred
 * distinct signed-in users of a naive (scan-and-filter) view; an index-point view has no cap here.
 */
export const VIEW_INSTANCES_READING_TABLE_MAX = 256;
/**
 * The share of VIEW_INSTANCES_READING_TABLE_MAX one client source may take (worker/views.ts): the
 * server charges the instances a WebSocket subscription creates to the client's IP address (an
 * IPv6 /64), so a flood of fresh anonymous identities from one address stops here instead of
 * filling the whole cap and locking every other client out; filling the cap now takes eight
 * sources. 32 still admits a NAT or an office of users of a naive (scan-and-filter) view.
 */
export const VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX = 32;
/** Live per-sender view instances in one database (each holds its rows and read set). */
export const VIEW_SENDER_INSTANCES_MAX = 16_384;
/** Lines kept in memory per database log for `logs`. */
export const DATABASE_LOG_LINES_MAX = 10_000;
/** Size a commit-log segment is preallocated to before a new one is started. */
export const LOG_SEGMENT_BYTES = 64 * 1024 * 1024;
/** How far ahead of the write position a log segment is zero-filled (fdatasync then needs no size update); the fill grows with each commit, not in one lump. */
export const LOG_PREALLOCATE_BYTES = 4 * 1024 * 1024;
/** Payload bytes one database's drained batch is split at into separate commits (each synced before the next). */
export const LOG_COMMIT_PAYLOAD_BYTES_TARGET = 16 * 1024 * 1024;
/**
 * Rate at which the background check (storage/segment_verifier.ts) reads commit-log segments
 * that recovery never reads (wholly before the newest snapshot): one 64 MiB segment per two
 * seconds at most, in a worker of its own, so a server start with many databases keeps its disk
 * and cores for recovery and commits.
 */
export const SEGMENT_VERIFY_BYTES_PER_S = 32 * 1024 * 1024;
/** Commit payload bytes sent per message while streaming a log to a database worker at recovery. */
export const LOG_REPLAY_CHUNK_BYTES = 4 * 1024 * 1024;
/** Snapshots kept per database; older ones are deleted after a new one is durable. */
export const SNAPSHOTS_KEPT = 2;
/**
 * Durable transactions between automatic snapshots of a database (as SpacetimeDB), overridable with
 * `--snapshot-interval-tx`. Taking one costs O(pages) (copy-on-write row pages); the rows are sent
 * to the storage worker in pieces between batches and fsynced off its thread. A restart replays at
 * most this many transactions (bench/recovery_bench.ts).
 */
export const SNAPSHOT_INTERVAL_TX = 1_000_000;
/**
 * Commit-log bytes between automatic snapshots (whichever of this and SNAPSHOT_INTERVAL_TX comes
 * first), so a database with large transactions also gets snapshots and a bounded replay;
 * overridable with `--snapshot-interval-mb`.
 */
export const SNAPSHOT_INTERVAL_BYTES = 256 * 1024 * 1024;
/** Nesting depth of a SQL WHERE expression; SpacetimeDB's parser stops near 1,600 levels. */
export const SQL_EXPR_DEPTH_MAX = 1_000;
/**
 * Table instances in one join subscription. SpacetimeDB allows 2; we maintain any number with
 * exact deltas when every join is an index join (query-subscriptions.md §2.1, issue #11 item 6).
 * Each changed table costs one delta term per instance, each walking the other instances'
 * indexes, so the bound keeps a single transaction's work predictable.
 */
export const SUBSCRIPTION_JOIN_TABLES_MAX = 8;
/**
 * Largest `LIMIT n` of an `ORDER BY … LIMIT n` (top-N) subscription or one-off query. A window
 * keeps up to 2n rows in memory (the rows sent plus a buffer for the ones that follow) and its
 * initial rows go out in one message; 10,000 keeps both bounded while covering leaderboards.
 */
export const TOPN_LIMIT_MAX = 10_000;
/**
 * Row-level security fragments one query may expand to (query/rls.ts): one per combination of
 * rules over the instances it reads, so rules^instances; an anonymous client joining a table
 * with 3 rules 30 times would otherwise make the worker build 3^30 plans.
 */
export const RLS_FRAGMENTS_MAX = 1_024;
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
 * transaction that would exceed it fails and commits nothing. A keynote transfer's record is 212
 * bytes and one database process commits up to ~130k of them per second (~27 MiB/s): 64 MiB/s
 * (~316k transfers/s) leaves real work room and still stops a runaway writer. At 16 MiB/s (the
 * old default) the keynote's own load was refused once its burst was spent (bench/RESULTS.md).
 */
export const COMMIT_LOG_BYTES_PER_S_DEFAULT = 64 * 1024 * 1024;
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

/**
 * Procedure threads per database (`--procedure-threads`): procedures and HTTP handlers of one
 * database run this many at once (one waiting on HTTP holds up only its own thread). The first
 * thread lives as long as the process; more start on demand (each ~12.6 MiB RSS idle, ~0.2 s to
 * start) and stop after `--procedure-idle-s` without a call.
 */
export const PROCEDURE_THREADS_DEFAULT = 4;
/** Largest `--procedure-threads`: each thread has a pair in the process watchdog. */
export const PROCEDURE_THREADS_MAX = 16;
/**
 * Procedure and HTTP handler calls of one database that may wait for a thread
 * (`--procedure-queue`); one more fails at once with an error naming both limits. Generous:
 * calls held during a module update arrive together (tests/e2e/update_wait_test.ts fires one
 * every 15 ms for seconds), and what a waiting call holds is already bounded by the front door
 * (HTTP bodies in flight, WebSocket inbound bytes).
 */
export const PROCEDURE_QUEUE_DEFAULT = 1024;
/**
 * A procedure thread beyond the first is stopped after this long without a call
 * (`--procedure-idle-s`): a thread with the module loaded holds ~21 MiB, and restarting one costs
 * its first caller ~0.2-1.7 s, so a database with bursts of slow calls keeps them for a while.
 */
export const PROCEDURE_IDLE_S_DEFAULT = 30;
/** The per-database rates and sizes an operator can set; the defaults are above. */
export interface DatabaseLimits {
  moduleLogBytesPerS: number;
  commitLogBytesPerS: number;
  txRecordBytesMax: number;
  /** Procedures and HTTP handlers run at once (`--procedure-threads`, 1 to PROCEDURE_THREADS_MAX). */
  procedureThreads: number;
  /** Calls that may wait for a procedure thread (`--procedure-queue`). */
  procedureQueue: number;
  /** Seconds without a call after which a procedure thread beyond the first stops. */
  procedureIdleS: number;
  /** Wall time the owner's SQL queries may run (`--owner-sql-budget-ms`). */
  ownerSqlBudgetMs: number;
}

export const DATABASE_LIMITS_DEFAULT: Readonly<DatabaseLimits> = Object.freeze({
  moduleLogBytesPerS: MODULE_LOG_BYTES_PER_S_DEFAULT,
  commitLogBytesPerS: COMMIT_LOG_BYTES_PER_S_DEFAULT,
  txRecordBytesMax: TX_RECORD_BYTES_MAX_DEFAULT,
  procedureThreads: PROCEDURE_THREADS_DEFAULT,
  procedureQueue: PROCEDURE_QUEUE_DEFAULT,
  procedureIdleS: PROCEDURE_IDLE_S_DEFAULT,
  ownerSqlBudgetMs: OWNER_SQL_BUDGET_MS_DEFAULT,
});

/** The commit-log bucket's size for `limits`: COMMIT_LOG_BURST_S of rate, at least one max transaction. */
export function commitLogBurstBytes(
  limits: Pick<DatabaseLimits, "txRecordBytesMax" | "commitLogBytesPerS">,
): number {
  return Math.max(limits.txRecordBytesMax, limits.commitLogBytesPerS * COMMIT_LOG_BURST_S);
}
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
/**
 * Largest message before authentication (the password: a token; PostgreSQL allows 64 KiB for
 * an authentication message too): 1,024 unauthenticated connections then hold at most 64 MiB,
 * not PG_MESSAGE_BYTES_MAX each.
 */
export const PG_PASSWORD_BYTES_MAX = 64 * 1024;
/** Time a PostgreSQL wire client has to authenticate, as PostgreSQL's authentication_timeout. */
export const PG_STARTUP_TIMEOUT_MS = 60_000;
/** Open PostgreSQL wire connections at once; more are refused with FATAL 53300 (too_many_connections). */
export const PG_CONNECTIONS_MAX = 1024;
/**
 * PostgreSQL connections one client address may hold (`--pg-connections-per-address`): anonymous
 * tokens are free to mint, so without it one client could take all PG_CONNECTIONS_MAX. One more
 * is refused with SQLSTATE 53300 before its startup packet.
 */
export const PG_CONNECTIONS_PER_ADDRESS_MAX = 64;
/**
 * Seconds an authenticated PostgreSQL session may wait for its client's next message before it
 * is ended with SQLSTATE 57P05 (`--pg-idle-timeout-s`; 0 = never). PostgreSQL's own
 * `idle_session_timeout` is off by default, but its connections are not free to open.
 */
export const PG_IDLE_TIMEOUT_S_DEFAULT = 600;
/**
 * Prepared statements one PostgreSQL wire session keeps (Parse with a name), and the SQL text
 * its statements and portals hold together: without a bound an anonymous client pinned ~300 MB
 * of the server's heap with 3,000 Parse messages. 1 MiB holds thousands of ordinary statements
 * and 16 maximal ones (SQL_BYTES_MAX).
 */
export const PG_STATEMENTS_MAX = 1024;
export const PG_SESSION_SQL_BYTES_MAX = 1024 * 1024;
/**
 * Portals (Bind) one session keeps at once: each may hold a whole statement result until it is
 * executed or closed, so a few (drivers use the unnamed one, or a handful of cursors).
 */
export const PG_PORTALS_MAX = 16;
/**
 * Output a session has queued for a client that does not read before it stops reading the next
 * message (TCP pushes back on the client): 2.6 KB of pipelined queries made the server queue
 * ~680 MiB of answers for a client that never read.
 */
export const PG_OUTPUT_PENDING_BYTES_MAX = 1024 * 1024;

/**
 * Outbound HTTP requests one database may have in flight at once: one per procedure thread
 * (PROCEDURE_THREADS_MAX). The database process is untrusted and could send more requests than
 * it has threads; each holds a connection and up to OUTBOUND_HTTP_RESPONSE_BYTES_MAX on the
 * server's main thread, so more are refused at once.
 */
export const OUTBOUND_HTTP_PER_DATABASE_MAX = 16;
/** The same for all databases together. */
export const OUTBOUND_HTTP_IN_FLIGHT_MAX = 256;
/** Outbound HTTP from procedures (`ctx.http.fetch`): SpacetimeDB's default timeout. */
export const OUTBOUND_HTTP_TIMEOUT_MS_DEFAULT = 30_000;
/** A request's own timeout is clamped to this, as in SpacetimeDB. */
export const OUTBOUND_HTTP_TIMEOUT_MS_MAX = 180_000;
/** Largest outbound response body a procedure receives; it must fit the procedure's memory. */
export const OUTBOUND_HTTP_RESPONSE_BYTES_MAX = 16 * 1024 * 1024;
/** Largest outbound request body a procedure may send (it crosses the process's pipe). */
export const OUTBOUND_HTTP_REQUEST_BYTES_MAX = 16 * 1024 * 1024;
/**
 * Body of an HTTP handler's response (server/routes/http_handlers.ts): the main thread holds it
 * until the client has read it, and a database's reply frames may carry up to twice its memory
 * budget, so without this a module could pin hundreds of MiB per request on the main thread.
 */
export const HTTP_HANDLER_RESPONSE_BYTES_MAX = 16 * 1024 * 1024;
/**
 * Bytes of HTTP handler responses one database may have in flight: reserved at the largest
 * answer (HTTP_HANDLER_RESPONSE_BYTES_MAX) while the handler runs, then its real size until the
 * client has read it all (server/response_budget.ts). Four maximal answers, as many as the
 * default procedure threads: anonymous clients that asked for 15 MiB answers and never read them
 * had the database process produce them without end until it crashed out of memory.
 */
export const HTTP_HANDLER_RESPONSE_BYTES_PER_DATABASE_MAX = 4 * HTTP_HANDLER_RESPONSE_BYTES_MAX;
/**
 * Bytes of large HTTP responses (handler answers) held server-wide for clients that have not read
 * them yet: a bound on slow readers that holds without the root-only idle reaper.
 */
export const HTTP_RESPONSE_BYTES_PENDING_MAX = 256 * 1024 * 1024;
/** How long a request waits in line for room under those bounds before it fails with 503. */
export const HTTP_RESPONSE_ROOM_WAIT_MS = 5_000;
/** Requests waiting for that room at once, server-wide; one more fails with 503 at once. */
export const HTTP_RESPONSE_WAITERS_MAX = 1024;
/**
 * Time a client has to read a whole large response (16 MiB is ~1 s at 128 Mbit/s); past it the
 * connection is cut and its bytes given back, so a reader that stalls cannot hold them forever.
 */
export const HTTP_RESPONSE_SEND_TIMEOUT_MS = 120_000;
/** Redirects followed per request, each hop checked against the allow-list. */
export const OUTBOUND_HTTP_REDIRECTS_MAX = 10;
/**
 * A procedure's `withTx` holds the database's transaction: reducers wait behind it. Its body
 * gets the reducer budget; a gap this long between two of its syscalls ends it (rolled back).
 */
export const PROCEDURE_TX_SYSCALL_GAP_MS_MAX = 5_000;
/**
 * Idle time after which a database with no connections, calls or schedules due soon is
 * hibernated (`--hibernate-after-s`; 0 = never): an idle database process holds ~100 MiB RSS,
 * a hibernated one only its main-thread bookkeeping, and waking it costs one process start
 * (~0.2 s). Five minutes keeps a database that is used now and then awake.
 */
export const HIBERNATE_AFTER_S_DEFAULT = 300;
/**
 * A hibernated database with a schedule is woken this long before the schedule is due, so
 * the process is ready when it fires (a start takes ~0.2 s, more on a loaded machine).
 */
export const HIBERNATE_WAKE_LEAD_MS = 2_000;
/** Hibernations or boot-time recoveries run at once (each is a process stop or start). */
export const HIBERNATION_CONCURRENCY_MAX = 4;
/**
 * A database that crashed more than 3 times within a minute restarts after this pause, doubled
 * for each further pause in a row up to CRASH_PAUSE_MAX_MS (server/database_registry.ts).
 */
export const CRASH_PAUSE_MS = 60_000;
export const CRASH_PAUSE_MAX_MS = 16 * 60_000;
