/**
 * Messages between a database process's main thread (worker/procedures.ts) and its procedure
 * thread (worker/procedure_thread.ts).
 */
import type { HttpHeaderList } from "../protocol/mod.ts";
import type {
  CallHttpHandlerRequest,
  CallProcedureRequest,
  HttpHandlerResult,
  LogLine,
  ProcedureResult,
} from "./messages.ts";

/** Doorbell slots of the shared Int32Array. */
export const BELL_TO_THREAD = 0;
export const BELL_TO_DATABASE = 1;
/** Rung when a call is queued on the call port. */
export const BELL_CALL = 2;
/** Rung by the thread after each message on its async port (the database thread polls it). */
export const BELL_ASYNC = 3;
/** Int32 slots of the doorbell. */
export const BELL_SLOTS = 4;

/** Syscalls that write into the caller's buffer: its bytes travel back to the thread. */
export const WRITE_BACK_SYSCALLS: ReadonlySet<string> = new Set([
  "row_iter_bsatn_advance",
  "datastore_insert_bsatn",
  "datastore_update_bsatn",
]);

/** The first message the thread receives (on its global `onmessage`). */
export interface ThreadInit {
  asyncPort: MessagePort;
  syncPort: MessagePort;
  /** Calls (`DatabaseToThread` "call"), taken one at a time with receiveMessageOnPort. */
  callPort: MessagePort;
  bell: Int32Array;
  /**
   * The thread's [deadline, budget] pair of the process watchdog (worker/isolation.ts
   * `procedureWatchdogSlots`), armed while a call's code runs: a call stuck inside a builtin
   * gets the process killed, as a reducer does.
   */
  watchdog?: Float64Array;
}

/** Loads the tenant bundle; the names and ids are the database thread's datastore's. */
export interface ThreadLoad {
  type: "load";
  bundle: string;
  /** The bundle as an earlier process prepared it (instrumented, imports rewritten). */
  prepared?: { source: string; tickName: string };
  databaseIdentity: bigint;
  tableIds: Record<string, number>;
  indexIds: Record<string, number>;
  budgetMs: number;
  loadTimeoutMs: number;
}

export type DatabaseToThread =
  | ThreadLoad
  | { type: "call"; request: CallProcedureRequest | CallHttpHandlerRequest; functionId: number };

export type ThreadToDatabase =
  | { type: "started" }
  | { type: "loaded"; logs: LogLine[] }
  | { type: "load-failed"; error: string; logs: LogLine[] }
  | {
    type: "tx-open";
    name: string;
    sender: bigint;
    connectionId: bigint;
    args: Uint8Array;
    logs: LogLine[];
  }
  | {
    type: "http";
    method: string;
    uri: string;
    headers: HttpHeaderList;
    body: Uint8Array;
    timeoutMs: number;
    logs: LogLine[];
  }
  | { type: "done"; result: ProcedureResult | HttpHandlerResult; logs: LogLine[] };

/** A syscall made inside the transaction, on the sync port. */
export interface SyscallRequest {
  name: string;
  args: unknown[];
}

/** Its answer: a value, an errno error, a thrown plain value, or the end of the transaction. */
export interface SyscallAnswer {
  value?: unknown;
  errno?: number;
  message?: string;
  thrown?: unknown;
  /** Bytes of buffer arguments the syscall wrote into, by argument position. */
  writeBack?: [number, ArrayBuffer][];
  /** The transaction is over (committed, rolled back, or ended by the database). */
  txEnded?: boolean;
}

/** Answer to a blocking request that is not a syscall (tx-open, http). */
export interface RemoteReply {
  ok: boolean;
  message?: string;
  status?: number;
  headers?: HttpHeaderList;
  body?: Uint8Array;
}
