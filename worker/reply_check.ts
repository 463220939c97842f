/**
 * A database worker also runs tenant code, which can patch built-ins our worker
 * code relies on (Array.prototype.push, postMessage...). So the main thread treats
 * everything a worker sends as untrusted: `checkWorkerReply` says what is wrong
 * with a reply, and the host stops that database instead of crashing the server.
 */
import {
  LOG_LINE_OVERHEAD_CHARS,
  LOG_MESSAGE_CHARS_MAX,
  LOG_NAME_CHARS_MAX,
  LOG_REPLY_CHARS_MAX,
} from "../lib/limits.ts";
import { LOG_MARKER_CHARS_MAX, logLineChars } from "./log_limiter.ts";
import { type LogLine, STALL_KINDS } from "./messages.ts";
import { STALL_REPORT_MAX } from "./stall_recorder.ts";

const ITEM_KINDS = new Set([
  "call",
  "connect",
  "disconnect",
  "procedure",
  "subscribe",
  "unsubscribe",
  "query",
  "sql",
  "export",
  "update",
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isCount(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isOptionalString(value: unknown): boolean {
  return value === undefined || typeof value === "string";
}

function isByteArrayList(value: unknown): boolean {
  return Array.isArray(value) && value.every((row) => row instanceof Uint8Array);
}

function isQueryRows(value: unknown): boolean {
  return isObject(value) && typeof value.table === "string" && isByteArrayList(value.rows);
}

/** Why `item` is not a well-formed batch item, or undefined when it is. */
export function checkBatchItem(item: unknown): string | undefined {
  if (!isObject(item)) return "an item is not an object";
  if (!ITEM_KINDS.has(item.kind as string)) return `unknown item kind ${String(item.kind)}`;
  if (item.kind === "update") {
    if (!isCount(item.txOffset)) return "update.txOffset is not a count";
    if (item.callId !== undefined && !isCount(item.callId)) return "update.callId is not a count";
    if (!Array.isArray(item.deltas)) return "update.deltas is not an array";
    for (const delta of item.deltas) {
      if (
        !isObject(delta) || !isCount(delta.queryId) || typeof delta.table !== "string" ||
        typeof delta.isEvent !== "boolean" || !isByteArrayList(delta.inserts) ||
        !isByteArrayList(delta.deletes) || !isOptionalString(delta.error) ||
        (typeof delta.error === "string" && delta.error.length > LOG_MESSAGE_CHARS_MAX)
      ) return "update.deltas holds a malformed delta";
    }
    return undefined;
  }
  if (!isCount(item.id)) return `${item.kind}.id is not a count`;
  if (!isOptionalString(item.message) || !isOptionalString(item.error)) {
    return `${item.kind} carries a non-string message`;
  }
  // The worker cuts error texts to LOG_MESSAGE_CHARS_MAX (module_loader.ts describeError).
  const longest = Math.max(
    typeof item.message === "string" ? item.message.length : 0,
    typeof item.error === "string" ? item.error.length : 0,
  );
  if (longest > LOG_MESSAGE_CHARS_MAX * 2) {
    return `${item.kind} carries a message longer than ${LOG_MESSAGE_CHARS_MAX * 2} characters`;
  }
  switch (item.kind) {
    case "call":
    case "connect":
    case "disconnect":
      if (!["committed", "failed_user", "failed_internal"].includes(item.status as string)) {
        return `${item.kind}.status is not a call status`;
      }
      if (!isCount(item.txOffset)) return `${item.kind}.txOffset is not a count`;
      return isCount(item.durationMicros) ? undefined : "call.durationMicros is bad";
    case "procedure":
      if (typeof item.ok !== "boolean") return "procedure.ok is not a boolean";
      if (!isCount(item.txOffset)) return "procedure.txOffset is not a count";
      if (item.value !== undefined && !(item.value instanceof Uint8Array)) {
        return "procedure.value is not bytes";
      }
      return isCount(item.durationMicros) ? undefined : "procedure.durationMicros is bad";
    case "subscribe":
    case "unsubscribe":
    case "query":
      if (typeof item.ok !== "boolean") return `${item.kind}.ok is not a boolean`;
      if (!isCount(item.txOffset)) return `${item.kind}.txOffset is not a count`;
      if (item.kind === "query") {
        return item.rows === undefined || isQueryRows(item.rows) ? undefined : "query.rows is bad";
      }
      if (item.rows !== undefined && !(Array.isArray(item.rows) && item.rows.every(isQueryRows))) {
        return `${item.kind}.rows is bad`;
      }
      if (
        item.queryIds !== undefined &&
        !(Array.isArray(item.queryIds) && item.queryIds.every(isCount))
      ) return "subscribe.queryIds is bad";
      return undefined;
    case "sql":
      if (typeof item.ok !== "boolean") return "sql.ok is not a boolean";
      if (!isCount(item.txOffset)) return "sql.txOffset is not a count";
      if (![item.rowsInserted, item.rowsDeleted, item.rowsUpdated].every(isCount)) {
        return "sql counts are bad";
      }
      if (item.rows !== undefined && !isByteArrayList(item.rows)) return "sql.rows is bad";
      if (
        item.columns !== undefined &&
        !(isObject(item.columns) && Array.isArray(item.columns.elements))
      ) return "sql.columns is bad";
      if (item.typespace !== undefined && !Array.isArray(item.typespace)) {
        return "sql.typespace is bad";
      }
      return undefined;
    case "export":
      return item.state instanceof Uint8Array && isCount(item.txOffset)
        ? undefined
        : "export is malformed";
  }
  return undefined;
}

/** Why an HTTP handler result from the procedure thread is malformed, or undefined. */
export function checkHttpHandlerResult(result: unknown): string | undefined {
  if (!isObject(result) || result.kind !== "http-handler") return "not an HTTP handler result";
  if (!isCount(result.id) || !isCount(result.txOffset) || typeof result.ok !== "boolean") {
    return "http-handler result is malformed";
  }
  if (!isOptionalString(result.message)) return "http-handler.message is not a string";
  if (!result.ok) return undefined;
  const status = result.status;
  if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 999) {
    return "http-handler.status is not an HTTP status";
  }
  if (!(result.body instanceof Uint8Array)) return "http-handler.body is not bytes";
  const headers = result.headers;
  if (
    !Array.isArray(headers) ||
    !headers.every((pair) =>
      Array.isArray(pair) && typeof pair[0] === "string" && pair[1] instanceof Uint8Array
    )
  ) return "http-handler.headers is malformed";
  return undefined;
}

/**
 * Why a log line list is malformed or over the worker's own bounds (worker/log_limiter.ts:
 * message and name lengths, characters per reply), or undefined. The worker shares its thread
 * with tenant code, which could switch those bounds off.
 */
export function checkLogLines(lines: unknown): string | undefined {
  if (!Array.isArray(lines)) return "logs is not an array";
  let chars = 0;
  for (const line of lines) {
    if (
      !isObject(line) || typeof line.level !== "string" || typeof line.message !== "string" ||
      typeof line.ts !== "number" || !isOptionalString(line.function) ||
      !isOptionalString(line.target)
    ) return "a log line is malformed";
    const logLine = line as unknown as LogLine;
    if (logLine.message.length > LOG_MESSAGE_CHARS_MAX) {
      return `a log message has ${logLine.message.length} characters (limit ${LOG_MESSAGE_CHARS_MAX})`;
    }
    if (
      logLine.level.length > LOG_NAME_CHARS_MAX ||
      (logLine.function?.length ?? 0) > LOG_NAME_CHARS_MAX ||
      (logLine.target?.length ?? 0) > LOG_NAME_CHARS_MAX
    ) return `a log line's level or function name is over ${LOG_NAME_CHARS_MAX} characters`;
    chars += logLineChars(logLine);
  }
  if (chars > LOG_REPLY_CHARS_MAX + LOG_MARKER_CHARS_MAX + LOG_LINE_OVERHEAD_CHARS) {
    return `the reply carries ${chars} characters of log (limit ${LOG_REPLY_CHARS_MAX})`;
  }
  return undefined;
}

/** Why a reply's `stalls` is malformed, or undefined (see ScheduledReply.stalls). */
export function checkStalls(stalls: unknown): string | undefined {
  if (!(stalls instanceof Float64Array)) return "stalls is not a Float64Array";
  if (stalls.length % 2 !== 0 || stalls.length > 2 * STALL_REPORT_MAX) {
    return `stalls has ${stalls.length} numbers`;
  }
  for (let i = 0; i < stalls.length; i += 2) {
    const kind = stalls[i];
    const ms = stalls[i + 1];
    if (!Number.isInteger(kind) || kind < 0 || kind >= STALL_KINDS.length) {
      return `stall kind ${kind} is unknown`;
    }
    if (!Number.isFinite(ms) || ms < 0) return `stall of ${ms} ms`;
  }
  return undefined;
}
