/**
 * Messages between the main thread (worker/host.ts) and a database worker
 * (worker/worker_main.ts). Requests travel in batches: one postMessage carries
 * every request queued since the last flush, and one reply carries every result.
 */

import type { DatabaseLimits } from "../lib/limits.ts";
import type { ProductType, Typespace } from "../protocol/mod.ts";

/** Sent once, first. */
export interface InitMessage {
  type: "init";
  /** The module bundle as published (UTF-8 JS source). */
  bundle: string;
  /** u256 identities as bigint (the form the module hooks take). */
  databaseIdentity: bigint;
  ownerIdentity: bigint;
  /** True on first publish: run the `init` lifecycle reducer. */
  runInit: boolean;
  /** Wall-clock micros for the init call. */
  timestampMicros: bigint;
  reducerBudgetMs: number;
  /** Per-database rates and sizes (lib/limits.ts); the defaults when absent. */
  limits?: DatabaseLimits;
  /** The database process's memory budget in MiB (for error messages). */
  memoryBudgetMb?: number;
  /** Datastore snapshot to start from (`Datastore.exportState`), when there is no commit log. */
  snapshot?: Uint8Array;
  /** Transaction offset the snapshot (or empty state) corresponds to. */
  snapshotTxOffset?: number;
  /** True when durability is on: the storage actor is on the process's storage channel. */
  durability?: boolean;
  /**
   * `__describe_module__` bytes of the schema the commit log starts with, when a migration
   * changed it since (else the log starts with this module's schema).
   */
  genesisDescribe?: Uint8Array;
  /**
   * True for a module update: when the recovered rows have another schema than this module's,
   * run the automatic migration (one transaction) instead of failing.
   */
  migrate?: boolean;
  /**
   * The bundle as an earlier process of this database prepared it (instrumented for its tick
   * name, imports rewritten): skips both parses at start (worker/isolation.ts "start-up").
   */
  prepared?: PreparedModule;
  /** Send the prepared bundle back (a `prepared` message before any tenant code runs). */
  wantPrepared?: boolean;
  /** Row schedules armed when the database hibernated, re-armed at their intended times. */
  resumeSchedules?: ResumedSchedule[];
  /** Read replica (`--follow`): every write fails with this text (EngineOptions.readOnly). */
  readOnly?: string;
}

/**
 * Read replica: transactions of the primary's log to apply, `count` length-prefixed records
 * (the commit payload layout) starting at log offset `firstTxOffset`. Answered by a
 * `scheduled` reply with their updates (its txOffset says how far the database got).
 */
export interface ReplicateMessage {
  type: "replicate";
  firstTxOffset: number;
  count: number;
  records: Uint8Array;
}

/** An armed row schedule, kept across hibernation (worker/engine.ts armedSchedules). */
export interface ResumedSchedule {
  tableId: number;
  scheduledId: bigint;
  intendedMicros: bigint;
}

/**
 * Asks an idle database process what hibernating it would lose: its pending schedules. The
 * reply is `hibernating`; the server then snapshots and stops the process (or keeps it, when
 * a schedule is due soon).
 */
export interface HibernateMessage {
  type: "hibernate";
}

export interface HibernatingReply {
  type: "hibernating";
  /** Wall-clock µs of the earliest pending schedule (row or immediate); -1 when none. */
  nextScheduleMicros: number;
  schedules: ResumedSchedule[];
  txOffset: number;
}

/** A bundle ready to import: instrumented for `tickName`, `spacetime:sys` imports rewritten. */
export interface PreparedModule {
  source: string;
  tickName: string;
}

/** Sent before the bundle is imported (no tenant code has run in the process yet). */
export interface PreparedReply extends PreparedModule {
  type: "prepared";
}

export type WorkerRequest =
  | CallReducerRequest
  | CallProcedureRequest
  | ConnectRequest
  | DisconnectRequest
  | SubscribeRequest
  | UnsubscribeRequest
  | OneOffQueryRequest
  | SqlRequest
  | ExportStateRequest;

export interface CallReducerRequest {
  kind: "call";
  id: number;
  /** Canonical reducer name. */
  reducer: string;
  args: Uint8Array;
  sender: bigint;
  connectionId: bigint;
  timestampMicros: bigint;
}

export interface CallProcedureRequest {
  kind: "procedure";
  id: number;
  procedure: string;
  args: Uint8Array;
  sender: bigint;
  connectionId: bigint;
  timestampMicros: bigint;
}

export interface ConnectRequest {
  kind: "connect";
  id: number;
  sender: bigint;
  connectionId: bigint;
  timestampMicros: bigint;
  /** JWT payload JSON the module can read with `ctx.senderAuth`. */
  jwtPayload: string;
  /**
   * A connection kept across a module hot swap: the new module learns its JWT payload, and
   * client_connected does not run again (it ran on the module the client connected to).
   */
  resumed?: boolean;
}

export interface DisconnectRequest {
  kind: "disconnect";
  id: number;
  sender: bigint;
  connectionId: bigint;
  timestampMicros: bigint;
}

export interface SubscribeRequest {
  kind: "subscribe";
  id: number;
  connectionId: bigint;
  querySetId: number;
  queries: string[];
  sender: bigint;
  isOwner: boolean;
  /**
   * The client source the view instances this subscription creates are charged to (the
   * connection's IP address, an IPv6 /64: server/ws/client_source.ts); absent for the owner.
   */
  source?: string;
}

export interface UnsubscribeRequest {
  kind: "unsubscribe";
  id: number;
  connectionId: bigint;
  querySetId: number;
  /** Return the set's rows as deletes (the SDK always asks for this). */
  sendDroppedRows: boolean;
}

export interface OneOffQueryRequest {
  kind: "query";
  id: number;
  sql: string;
  sender: bigint;
  isOwner: boolean;
}

/** One statement of the /sql grammar (HTTP `/sql`, PostgreSQL wire): a read or a write. */
export interface SqlRequest {
  kind: "sql";
  id: number;
  sql: string;
  sender: bigint;
  isOwner: boolean;
  /** Wall-clock micros, the timestamp of a DML transaction. */
  timestampMicros: bigint;
}

export interface ExportStateRequest {
  kind: "export";
  id: number;
}

export type CallStatus = "committed" | "failed_user" | "failed_internal";

export interface CallResult {
  kind: "call" | "connect" | "disconnect";
  id: number;
  status: CallStatus;
  /** The user error text, or the internal error text for the caller. */
  message?: string;
  /**
   * Committed: the call's own transaction. Failed: the database's committed offset when the
   * call ran (the newest state it could have read). The reply waits until it is durable.
   */
  txOffset: number;
  durationMicros: number;
}

export interface ProcedureResult {
  kind: "procedure";
  id: number;
  ok: boolean;
  /** BSATN of the return value. */
  value?: Uint8Array;
  message?: string;
  /** The database's committed offset when the procedure returned (its replies wait for it). */
  txOffset: number;
  durationMicros: number;
}

/** Rows of one query for one table, as BSATN rows. */
export interface QueryRows {
  table: string;
  rows: Uint8Array[];
}

export interface SubscribeResult {
  kind: "subscribe";
  id: number;
  ok: boolean;
  error?: string;
  /** One entry per query of the set, in order. */
  rows?: QueryRows[];
  /** Shared query ids for the set's queries (for routing deltas). */
  queryIds?: number[];
  txOffset: number;
}

export interface UnsubscribeResult {
  kind: "unsubscribe";
  id: number;
  ok: boolean;
  error?: string;
  rows?: QueryRows[];
  txOffset: number;
}

export interface OneOffQueryResult {
  kind: "query";
  id: number;
  ok: boolean;
  error?: string;
  rows?: QueryRows;
  txOffset: number;
}

export interface SqlResult {
  kind: "sql";
  id: number;
  ok: boolean;
  error?: string;
  /** The result's columns (a SELECT's projection; none for DML). */
  columns?: ProductType;
  /** The typespace the column types' Refs point into. */
  typespace?: Typespace;
  /** Result rows as BSATN of `columns`. */
  rows?: Uint8Array[];
  rowsInserted: number;
  rowsDeleted: number;
  rowsUpdated: number;
  /** A write: its own transaction; otherwise the committed offset the statement read. */
  txOffset: number;
}

export interface ExportStateResult {
  kind: "export";
  id: number;
  state: Uint8Array;
  txOffset: number;
}

export type WorkerResult =
  | CallResult
  | ProcedureResult
  | SubscribeResult
  | UnsubscribeResult
  | OneOffQueryResult
  | SqlResult
  | ExportStateResult;

/** Per-query changes caused by one committed transaction. */
export interface QueryDelta {
  queryId: number;
  table: string;
  /** Event-table rows go out as `EventTable` rows (inserts only, never cached). */
  isEvent: boolean;
  inserts: Uint8Array[];
  deletes: Uint8Array[];
  /**
   * The query failed for this transaction (its delta went over SUBSCRIPTION_DELTA_ROWS_MAX; no
   * rows then): the worker dropped every query set holding it, and each of their subscribers
   * gets a SubscriptionError without request id before the transaction's other updates.
   */
  error?: string;
}

export interface TxUpdate {
  kind: "update";
  txOffset: number;
  /** Request id of the call that produced it, if it was a call in this batch. */
  callId?: number;
  deltas: QueryDelta[];
}

/** One module log line, in SpacetimeDB's NDJSON shape. */
export interface LogLine {
  level: string;
  ts: number;
  function?: string;
  message: string;
  target?: string;
  filename?: string;
  line_number?: number;
}

export interface BatchMessage {
  type: "batch";
  /** Requests in execution order (reducer calls may travel in `calls` instead). */
  requests: WorkerRequest[];
  /** Reducer calls packed into a few arrays (worker/batch_codec.ts), merged into `requests`. */
  calls?: PackedCalls;
}

/**
 * Reducer calls of one batch without one object per call (structured clone pays per object):
 * `table` holds PACKED_CALL_FIELDS numbers per call, see worker/batch_codec.ts.
 */
export interface PackedCalls {
  table: Float64Array;
  /** Every call's args, back to back (its buffer is transferred). */
  args: Uint8Array<ArrayBuffer>;
  /** Distinct reducer names of the batch. */
  names: string[];
  /** Distinct callers of the batch: sender, connection id, sender, connection id, ... */
  callers: bigint[];
}

/** Results and transaction updates, in the order the worker produced them. */
export type BatchItem = WorkerResult | TxUpdate;

export interface BatchReply {
  type: "batch";
  /** Results and updates in order, except the reducer calls packed in `committed`. */
  items: BatchItem[];
  /**
   * Reducer calls that committed without any query delta, PACKED_RESULT_FIELDS numbers each
   * (worker/batch_codec.ts); each stands for a `CallResult` plus an empty `TxUpdate`.
   */
  committed?: Float64Array;
  /** The worker's transaction offset after the batch. */
  txOffset?: number;
  logs: LogLine[];
}

export interface ReadyReply {
  type: "ready";
  /** Raw `__describe_module__` bytes (BSATN RawModuleDef). */
  describe: Uint8Array;
  txOffset: number;
  logs: LogLine[];
}

export interface InitFailedReply {
  type: "init-failed";
  error: string;
  logs: LogLine[];
  /**
   * A `replicate` message's transactions could not be applied (they decode but do not replay):
   * the follower stops that database at once instead of retrying a message that crashes it
   * every time (worker/host.ts ReplayFailedError).
   */
  replayFailed?: true;
}

/**
 * Work the worker did on its own, outside any batch: scheduled reducers (schedule rows and
 * `volatile_nonatomic_schedule_immediate`). It answers no request, so it never counts as a
 * batch reply; its transactions are durable and reach subscribers like a batch's updates.
 */
export interface ScheduledReply {
  type: "scheduled";
  /** Transaction updates in commit order (none carries a callId). */
  items: TxUpdate[];
  txOffset: number;
  logs: LogLine[];
  /**
   * Event-loop stalls of the database process since its last report (worker/stall_recorder.ts):
   * (index into STALL_KINDS, milliseconds) pairs, at most STALL_REPORT_MAX of them.
   */
  stalls?: Float64Array;
}

/**
 * What held a database process's event loop in a stall: a request batch, a piece of a snapshot
 * being streamed (its capture included), a turn of scheduled runs, any other message.
 */
export const STALL_KINDS = ["batch", "snapshot", "schedule", "other"] as const;
export type StallKind = typeof STALL_KINDS[number];

/**
 * Procedures and HTTP handlers run in the database process's procedure thread
 * (worker/procedures.ts), outside the batch order: each is started by its own message and
 * answered by a `procedure-done` reply whenever it finishes, so a procedure waiting on HTTP
 * never holds up the batches behind it.
 */
export interface ProcedureStartMessage {
  type: "procedure-start";
  request: CallProcedureRequest | CallHttpHandlerRequest;
}

/** An HTTP request to one of the module's HTTP handlers (module-abi.md §5.6). */
export interface CallHttpHandlerRequest {
  kind: "http-handler";
  id: number;
  /** Position in the module's HttpHandlers section. */
  handlerId: number;
  method: string;
  /** The full external URI. */
  uri: string;
  headers: [string, Uint8Array][];
  body: Uint8Array;
  timestampMicros: bigint;
}

/** The outcome of an HTTP handler call. */
export interface HttpHandlerResult {
  kind: "http-handler";
  id: number;
  ok: boolean;
  /** When ok: the response. */
  status?: number;
  headers?: [string, Uint8Array][];
  body?: Uint8Array;
  /** When not ok: why. */
  message?: string;
  txOffset: number;
}

export interface ProcedureDoneReply {
  type: "procedure-done";
  result: ProcedureResult | HttpHandlerResult;
  /** Transactions its `withTx` calls committed that were not yet reported, in order. */
  items: TxUpdate[];
  txOffset: number;
  logs: LogLine[];
}

/**
 * The procedure thread pool (worker/procedures.ts) is about to start a thread or has stopped
 * one: the server sets the process's address-space cap for `extraThreads` threads beyond the
 * first (worker/isolation.ts), then answers with a `procedure-threads-set`; with `wantCode`
 * the answer carries the thread's code as one script (worker/procedure_bundle.ts), since the
 * process can no longer read files.
 */
export interface ProcedureThreadsMessage {
  type: "procedure-threads";
  extraThreads: number;
  wantCode: boolean;
}

/** The answer: the cap is set; the script when asked for, or why it could not be had. */
export interface ProcedureThreadsSetReply {
  type: "procedure-threads-set";
  source?: string;
  error?: string;
}

/** An outbound HTTP request of a procedure, performed by the server (server/outbound_http.ts). */
export interface OutboundHttpRequest {
  type: "http-request";
  requestId: number;
  method: string;
  uri: string;
  headers: [string, Uint8Array][];
  body: Uint8Array;
  timeoutMs: number;
}

export interface OutboundHttpResponse {
  type: "http-response";
  requestId: number;
  /** Set when the request failed or was refused (no response). */
  error?: string;
  status?: number;
  headers?: [string, Uint8Array][];
  body?: Uint8Array;
}

export type MainToWorker =
  | InitMessage
  | BatchMessage
  | ProcedureStartMessage
  | OutboundHttpResponse
  | ProcedureThreadsSetReply
  | HibernateMessage
  | ReplicateMessage;
export type WorkerToMain =
  | ReadyReply
  | InitFailedReply
  | BatchReply
  | ScheduledReply
  | ProcedureDoneReply
  | OutboundHttpRequest
  | ProcedureThreadsMessage
  | PreparedReply
  | HibernatingReply;
