/**
 * The v2 WebSocket message schema (`v2.bsatn.spacetimedb`) and the v3 framing
 * (`v3.bsatn.spacetimedb`: several v2 messages back to back per frame).
 * See spec/client-protocol.md §2. Pure: no I/O.
 *
 * Row lists are given as already-encoded row bytes and are copied, never
 * re-encoded. A row list that goes to many clients can be encoded once with
 * `encodeRowList()` and the result reused in every message.
 */

import { LimitExceededError } from "../lib/errors.ts";
import { utf8Length, WsDecodeError, WsReader, WsWriter } from "./_ws_codec.ts";

export { WsDecodeError };

export type WsVersion = "v2" | "v3";
export type Compression = "None" | "Brotli" | "Gzip";

// ---------------------------------------------------------------------------------------------
// Client -> server

export type UnsubscribeFlags = "Default" | "SendDroppedRows";

export type ClientMessage =
  | { tag: "Subscribe"; requestId: number; querySetId: number; queryStrings: string[] }
  | { tag: "Unsubscribe"; requestId: number; querySetId: number; flags: UnsubscribeFlags }
  | { tag: "OneOffQuery"; requestId: number; queryString: string }
  | { tag: "CallReducer"; requestId: number; flags: 0; reducer: string; args: Uint8Array }
  | { tag: "CallProcedure"; requestId: number; flags: 0; procedure: string; args: Uint8Array };

const CLIENT_TAGS = ["Subscribe", "Unsubscribe", "OneOffQuery", "CallReducer", "CallProcedure"];
const UNSUBSCRIBE_FLAGS: UnsubscribeFlags[] = ["Default", "SendDroppedRows"];

// ---------------------------------------------------------------------------------------------
// Server -> client

/** Encoded rows, one Uint8Array per row; or a row list encoded once with `encodeRowList()`. */
export type RowList = readonly Uint8Array[] | EncodedRowList;

export interface SingleTableRows {
  table: string;
  rows: RowList;
}
export interface QueryRows {
  tables: SingleTableRows[];
}
export type TableUpdateRows =
  | { tag: "PersistentTable"; inserts: RowList; deletes: RowList }
  | { tag: "EventTable"; events: RowList };
export interface TableUpdate {
  tableName: string;
  rows: TableUpdateRows[];
}
export interface QuerySetUpdate {
  querySetId: number;
  tables: TableUpdate[];
}
export interface TransactionUpdate {
  querySets: QuerySetUpdate[];
}
export type ReducerOutcome =
  | { tag: "Ok"; retValue: Uint8Array; transactionUpdate: TransactionUpdate }
  | { tag: "OkEmpty" }
  | { tag: "Err"; value: Uint8Array }
  | { tag: "InternalError"; value: string };
export type ProcedureStatus =
  | { tag: "Returned"; value: Uint8Array }
  | { tag: "InternalError"; value: string };
export type OneOffResult = { tag: "Ok"; value: QueryRows } | { tag: "Err"; value: string };

export type ServerMessage =
  | { tag: "InitialConnection"; identity: bigint; connectionId: bigint; token: string }
  | { tag: "SubscribeApplied"; requestId: number; querySetId: number; rows: QueryRows }
  | {
    tag: "UnsubscribeApplied";
    requestId: number;
    querySetId: number;
    rows: QueryRows | undefined;
  }
  | {
    tag: "SubscriptionError";
    requestId: number | undefined;
    querySetId: number;
    error: string;
  }
  | { tag: "TransactionUpdate"; querySets: QuerySetUpdate[] }
  | { tag: "OneOffQueryResult"; requestId: number; result: OneOffResult }
  | { tag: "ReducerResult"; requestId: number; timestampMicros: bigint; result: ReducerOutcome }
  | {
    tag: "ProcedureResult";
    status: ProcedureStatus;
    timestampMicros: bigint;
    totalHostExecutionDurationMicros: bigint;
    requestId: number;
  };

const SERVER_TAGS = [
  "InitialConnection",
  "SubscribeApplied",
  "UnsubscribeApplied",
  "SubscriptionError",
  "TransactionUpdate",
  "OneOffQueryResult",
  "ReducerResult",
  "ProcedureResult",
] as const;

// ---------------------------------------------------------------------------------------------
// Row lists

const U16_MAX = 0xffff;
const TWO_POW_32 = 2 ** 32;

/** A `BsatnRowList` (size hint + rows data) encoded once, to embed in many messages. */
export class EncodedRowList {
  /** The full BSATN of the BsatnRowList. */
  readonly bytes: Uint8Array;
  readonly rowCount: number;
  constructor(bytes: Uint8Array, rowCount: number) {
    this.bytes = bytes;
    this.rowCount = rowCount;
  }
}

/** FixedSize(len) when all rows share one non-zero length <= 65535; otherwise -1 (RowOffsets). */
function fixedRowSize(rows: readonly Uint8Array[]): number {
  if (rows.length === 0) return -1;
  const size = rows[0].length;
  if (size === 0 || size > U16_MAX) return -1;
  for (let i = 1; i < rows.length; i++) if (rows[i].length !== size) return -1;
  return size;
}

function rowListSize(list: RowList): number {
  if (list instanceof EncodedRowList) return list.bytes.length;
  let dataBytes = 0;
  for (const row of list) dataBytes += row.length;
  const hintBytes = fixedRowSize(list) > 0 ? 1 + 2 : 1 + 4 + 8 * list.length;
  return hintBytes + 4 + dataBytes;
}

function writeRowList(w: WsWriter, list: RowList): void {
  if (list instanceof EncodedRowList) {
    w.raw(list.bytes);
    return;
  }
  const fixed = fixedRowSize(list);
  let dataBytes = 0;
  if (fixed > 0) {
    w.u8(0);
    w.u16(fixed);
    dataBytes = fixed * list.length;
  } else {
    w.u8(1);
    w.u32(list.length);
    for (const row of list) {
      w.u32(dataBytes >>> 0);
      w.u32(Math.floor(dataBytes / TWO_POW_32));
      dataBytes += row.length;
    }
  }
  w.u32(dataBytes);
  for (const row of list) w.raw(row);
}

/** Encodes a row list once; embed the result in as many messages as needed. */
export function encodeRowList(rows: readonly Uint8Array[]): EncodedRowList {
  const w = new WsWriter(rowListSize(rows));
  writeRowList(w, rows);
  return new EncodedRowList(w.bytes, rows.length);
}

function readRowList(r: WsReader, what: string): Uint8Array[] {
  const hintTag = r.u8(`${what} size hint tag`);
  if (hintTag === 0) {
    const size = r.u16(`${what} fixed size`);
    const data = r.bytes(`${what} rows data`);
    if (size === 0) {
      if (data.length !== 0) r.fail(`${what}: FixedSize(0) with ${data.length} data bytes`);
      return [];
    }
    if (data.length % size !== 0) {
      r.fail(`${what}: ${data.length} data bytes are not a multiple of FixedSize(${size})`);
    }
    const rows: Uint8Array[] = new Array(data.length / size);
    for (let i = 0; i < rows.length; i++) rows[i] = data.subarray(i * size, (i + 1) * size);
    return rows;
  }
  if (hintTag === 1) {
    const count = r.arrayLength(8, `${what} row offsets`);
    const offsets: number[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const offset = r.u64(`${what} row offset`);
      if (offset > BigInt(Number.MAX_SAFE_INTEGER)) r.fail(`${what}: row offset out of range`);
      offsets[i] = Number(offset);
    }
    const data = r.bytes(`${what} rows data`);
    if (count === 0) {
      if (data.length !== 0) r.fail(`${what}: RowOffsets([]) with ${data.length} data bytes`);
      return [];
    }
    if (offsets[0] !== 0) r.fail(`${what}: first row offset is ${offsets[0]}, not 0`);
    const rows: Uint8Array[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const end = i + 1 < count ? offsets[i + 1] : data.length;
      if (end < offsets[i] || end > data.length) r.fail(`${what}: row offsets out of order`);
      rows[i] = data.subarray(offsets[i], end);
    }
    return rows;
  }
  return r.fail(`Unknown RowSizeHint tag ${hintTag}`);
}

// ---------------------------------------------------------------------------------------------
// Client message codec

/** Encoded size of one client message (without v3 framing). */
export function clientMessageSize(m: ClientMessage): number {
  switch (m.tag) {
    case "Subscribe": {
      let size = 1 + 4 + 4 + 4;
      for (const q of m.queryStrings) size += 4 + utf8Length(q);
      return size;
    }
    case "Unsubscribe":
      return 1 + 4 + 4 + 1;
    case "OneOffQuery":
      return 1 + 4 + 4 + utf8Length(m.queryString);
    case "CallReducer":
      return 1 + 4 + 1 + 4 + utf8Length(m.reducer) + 4 + m.args.length;
    case "CallProcedure":
      return 1 + 4 + 1 + 4 + utf8Length(m.procedure) + 4 + m.args.length;
  }
}

function writeClientMessage(w: WsWriter, m: ClientMessage): void {
  switch (m.tag) {
    case "Subscribe":
      w.u8(0);
      w.u32(m.requestId);
      w.u32(m.querySetId);
      w.u32(m.queryStrings.length);
      for (const q of m.queryStrings) w.string(q, utf8Length(q));
      return;
    case "Unsubscribe":
      w.u8(1);
      w.u32(m.requestId);
      w.u32(m.querySetId);
      w.u8(UNSUBSCRIBE_FLAGS.indexOf(m.flags));
      return;
    case "OneOffQuery":
      w.u8(2);
      w.u32(m.requestId);
      w.string(m.queryString, utf8Length(m.queryString));
      return;
    case "CallReducer":
      w.u8(3);
      w.u32(m.requestId);
      w.u8(m.flags);
      w.string(m.reducer, utf8Length(m.reducer));
      w.bytesWithLength(m.args);
      return;
    case "CallProcedure":
      w.u8(4);
      w.u32(m.requestId);
      w.u8(m.flags);
      w.string(m.procedure, utf8Length(m.procedure));
      w.bytesWithLength(m.args);
      return;
  }
}

/** One BSATN ClientMessage (a v2 frame, or one part of a v3 frame). */
export function encodeClientMessage(message: ClientMessage): Uint8Array {
  const w = new WsWriter(clientMessageSize(message));
  writeClientMessage(w, message);
  return w.bytes;
}

/** A client frame: v2 takes exactly one message, v3 one or more. */
export function encodeClientFrame(messages: readonly ClientMessage[]): Uint8Array {
  if (messages.length === 0) throw new RangeError("A client frame needs at least one message");
  let size = 0;
  for (const m of messages) size += clientMessageSize(m);
  const w = new WsWriter(size);
  for (const m of messages) writeClientMessage(w, m);
  return w.bytes;
}

function readReservedFlags(r: WsReader, what: string): 0 {
  const flags = r.u8(`${what} flags`);
  if (flags !== 0) r.fail(`${what} flags must be 0, got ${flags}`);
  return 0;
}

/** Recently decoded reducer / procedure names with their UTF-8 bytes, newest last. */
const recentNames: { bytes: Uint8Array; text: string }[] = [];
const RECENT_NAMES_MAX = 16;
const RECENT_NAME_BYTES_MAX = 128;
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `r.string(what)` for the name of a called reducer or procedure. A client calls the same few
 * names over and over, and comparing a few bytes is much cheaper than a TextDecoder call.
 */
function callTargetName(r: WsReader, what: string): string {
  const raw = r.bytes(what);
  const length = raw.length;
  for (let n = recentNames.length - 1; n >= 0; n--) {
    const known = recentNames[n].bytes;
    if (known.length !== length) continue;
    let i = 0;
    while (i < length && known[i] === raw[i]) i++;
    if (i === length) return recentNames[n].text;
  }
  let text: string;
  try {
    text = fatalUtf8.decode(raw);
  } catch {
    return r.fail(`Invalid UTF-8 in ${what}`);
  }
  if (length <= RECENT_NAME_BYTES_MAX) {
    if (recentNames.length >= RECENT_NAMES_MAX) recentNames.shift();
    recentNames.push({ bytes: raw.slice(), text });
  }
  return text;
}

function readClientMessage(r: WsReader): ClientMessage {
  const tag = r.u8("ClientMessage tag");
  switch (tag) {
    case 0: {
      const requestId = r.u32("request_id");
      const querySetId = r.u32("query_set_id");
      const count = r.arrayLength(4, "query_strings");
      const queryStrings: string[] = new Array(count);
      for (let i = 0; i < count; i++) queryStrings[i] = r.string("query string");
      return { tag: "Subscribe", requestId, querySetId, queryStrings };
    }
    case 1: {
      const requestId = r.u32("request_id");
      const querySetId = r.u32("query_set_id");
      const flagTag = r.u8("UnsubscribeFlags tag");
      const flags = UNSUBSCRIBE_FLAGS[flagTag];
      if (flags === undefined) r.fail(`Unknown UnsubscribeFlags tag ${flagTag}`);
      return { tag: "Unsubscribe", requestId, querySetId, flags };
    }
    case 2: {
      const requestId = r.u32("request_id");
      return { tag: "OneOffQuery", requestId, queryString: r.string("query_string") };
    }
    case 3: {
      const requestId = r.u32("request_id");
      const flags = readReservedFlags(r, "CallReducer");
      const reducer = callTargetName(r, "reducer");
      return { tag: "CallReducer", requestId, flags, reducer, args: r.bytes("args") };
    }
    case 4: {
      const requestId = r.u32("request_id");
      const flags = readReservedFlags(r, "CallProcedure");
      const procedure = callTargetName(r, "procedure");
      return { tag: "CallProcedure", requestId, flags, procedure, args: r.bytes("args") };
    }
    default:
      return r.fail(`Unknown ClientMessage tag ${tag} (known: ${CLIENT_TAGS.length})`);
  }
}

/**
 * Decodes one client WebSocket binary frame. v2: exactly one message; v3: one or more
 * back to back. Empty frames, truncated messages and trailing bytes throw WsDecodeError.
 * Byte arrays in the result (`args`) are views into `frame`. `sizes`, when given, gets the
 * encoded byte size of each message (what `clientMessageSize` would compute). A v3 frame with
 * more than `messagesMax` messages throws LimitExceededError.
 */
export function decodeClientFrame(
  frame: Uint8Array,
  version: WsVersion,
  sizes?: number[],
  messagesMax = Infinity,
): ClientMessage[] {
  const r = new WsReader(frame);
  if (r.remaining === 0) r.fail("Empty client frame");
  const messages: ClientMessage[] = [];
  do {
    // Checked before decoding the next message: a frame of tiny messages stops here.
    if (messages.length >= messagesMax) {
      throw new LimitExceededError("messages in one frame", messages.length + 1, messagesMax);
    }
    const start = r.offset;
    messages.push(readClientMessage(r));
    sizes?.push(r.offset - start);
  } while (version === "v3" && r.remaining > 0);
  if (r.remaining > 0) r.fail(`${r.remaining} trailing bytes after the client message`);
  return messages;
}

// ---------------------------------------------------------------------------------------------
// Server message codec: sizes

function queryRowsSize(q: QueryRows): number {
  let size = 4;
  for (const t of q.tables) size += 4 + utf8Length(t.table) + rowListSize(t.rows);
  return size;
}

function transactionUpdateSize(u: TransactionUpdate): number {
  let size = 4;
  for (const set of u.querySets) {
    size += 4 + 4;
    for (const table of set.tables) {
      size += 4 + utf8Length(table.tableName) + 4;
      for (const rows of table.rows) {
        size += 1 +
          (rows.tag === "PersistentTable"
            ? rowListSize(rows.inserts) + rowListSize(rows.deletes)
            : rowListSize(rows.events));
      }
    }
  }
  return size;
}

export function serverMessageSize(m: ServerMessage): number {
  switch (m.tag) {
    case "InitialConnection":
      return 1 + 32 + 16 + 4 + utf8Length(m.token);
    case "SubscribeApplied":
      return 1 + 4 + 4 + queryRowsSize(m.rows);
    case "UnsubscribeApplied":
      return 1 + 4 + 4 + 1 + (m.rows === undefined ? 0 : queryRowsSize(m.rows));
    case "SubscriptionError":
      return 1 + 1 + (m.requestId === undefined ? 0 : 4) + 4 + 4 + utf8Length(m.error);
    case "TransactionUpdate":
      return 1 + transactionUpdateSize(m);
    case "OneOffQueryResult":
      return 1 + 4 + 1 +
        (m.result.tag === "Ok" ? queryRowsSize(m.result.value) : 4 + utf8Length(m.result.value));
    case "ReducerResult": {
      const r = m.result;
      let outcome = 1;
      if (r.tag === "Ok") {
        outcome += 4 + r.retValue.length + transactionUpdateSize(r.transactionUpdate);
      } else if (r.tag === "Err") outcome += 4 + r.value.length;
      else if (r.tag === "InternalError") outcome += 4 + utf8Length(r.value);
      return 1 + 4 + 8 + outcome;
    }
    case "ProcedureResult": {
      const s = m.status;
      const status = 1 + 4 + (s.tag === "Returned" ? s.value.length : utf8Length(s.value));
      return 1 + status + 8 + 8 + 4;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Server message codec: writing

function writeQueryRows(w: WsWriter, q: QueryRows): void {
  w.u32(q.tables.length);
  for (const t of q.tables) {
    w.string(t.table, utf8Length(t.table));
    writeRowList(w, t.rows);
  }
}

function writeTransactionUpdate(w: WsWriter, u: TransactionUpdate): void {
  w.u32(u.querySets.length);
  for (const set of u.querySets) {
    w.u32(set.querySetId);
    w.u32(set.tables.length);
    for (const table of set.tables) {
      w.string(table.tableName, utf8Length(table.tableName));
      w.u32(table.rows.length);
      for (const rows of table.rows) {
        if (rows.tag === "PersistentTable") {
          w.u8(0);
          writeRowList(w, rows.inserts);
          writeRowList(w, rows.deletes);
        } else {
          w.u8(1);
          writeRowList(w, rows.events);
        }
      }
    }
  }
}

function writeServerMessage(w: WsWriter, m: ServerMessage): void {
  switch (m.tag) {
    case "InitialConnection":
      w.u8(0);
      w.uintWide(m.identity, 32);
      w.uintWide(m.connectionId, 16);
      w.string(m.token, utf8Length(m.token));
      return;
    case "SubscribeApplied":
      w.u8(1);
      w.u32(m.requestId);
      w.u32(m.querySetId);
      writeQueryRows(w, m.rows);
      return;
    case "UnsubscribeApplied":
      w.u8(2);
      w.u32(m.requestId);
      w.u32(m.querySetId);
      if (m.rows === undefined) w.u8(1);
      else {
        w.u8(0);
        writeQueryRows(w, m.rows);
      }
      return;
    case "SubscriptionError":
      w.u8(3);
      if (m.requestId === undefined) w.u8(1);
      else {
        w.u8(0);
        w.u32(m.requestId);
      }
      w.u32(m.querySetId);
      w.string(m.error, utf8Length(m.error));
      return;
    case "TransactionUpdate":
      w.u8(4);
      writeTransactionUpdate(w, m);
      return;
    case "OneOffQueryResult":
      w.u8(5);
      w.u32(m.requestId);
      if (m.result.tag === "Ok") {
        w.u8(0);
        writeQueryRows(w, m.result.value);
      } else {
        w.u8(1);
        w.string(m.result.value, utf8Length(m.result.value));
      }
      return;
    case "ReducerResult": {
      w.u8(6);
      w.u32(m.requestId);
      w.i64(m.timestampMicros);
      const r = m.result;
      switch (r.tag) {
        case "Ok":
          w.u8(0);
          w.bytesWithLength(r.retValue);
          writeTransactionUpdate(w, r.transactionUpdate);
          return;
        case "OkEmpty":
          w.u8(1);
          return;
        case "Err":
          w.u8(2);
          w.bytesWithLength(r.value);
          return;
        case "InternalError":
          w.u8(3);
          w.string(r.value, utf8Length(r.value));
          return;
      }
      return;
    }
    case "ProcedureResult":
      w.u8(7);
      if (m.status.tag === "Returned") {
        w.u8(0);
        w.bytesWithLength(m.status.value);
      } else {
        w.u8(1);
        w.string(m.status.value, utf8Length(m.status.value));
      }
      w.i64(m.timestampMicros);
      w.i64(m.totalHostExecutionDurationMicros);
      w.u32(m.requestId);
      return;
  }
}

/** One BSATN ServerMessage without the compression byte. */
export function encodeServerMessage(message: ServerMessage): Uint8Array {
  const w = new WsWriter(serverMessageSize(message));
  writeServerMessage(w, message);
  if (w.offset !== w.bytes.length) throw new RangeError("Server message size mismatch");
  return w.bytes;
}

/**
 * Encoded size of a ReducerResult with outcome Ok, an empty return value and no query-set
 * updates: what the caller of a reducer gets when its transaction changed none of its queries.
 */
export const COMMITTED_REDUCER_RESULT_BYTES = 1 + 4 + 8 + 1 + 4 + 4;

/**
 * Writes one uncompressed server frame whose size is known beforehand (compression byte 0,
 * then messages back to back), with a single allocation:
 *
 *   const frame = new ServerFrameWriter(serverMessageSize(a) + COMMITTED_REDUCER_RESULT_BYTES);
 *   frame.message(a);
 *   frame.committedReducerResult(requestId, timestampMicros);
 *   socket.send(frame.finish());
 */
export class ServerFrameWriter {
  readonly #w: WsWriter;

  /** `payloadBytes`: the sum of the sizes of the messages that will be written. */
  constructor(payloadBytes: number) {
    this.#w = new WsWriter(1 + payloadBytes);
    this.#w.u8(0);
  }

  message(message: ServerMessage): void {
    writeServerMessage(this.#w, message);
  }

  /** A ReducerResult: Ok, empty return value, no query-set updates. */
  committedReducerResult(requestId: number, timestampMicros: bigint): void {
    const w = this.#w;
    w.u8(6);
    w.u32(requestId);
    w.i64(timestampMicros);
    w.u8(0);
    w.u32(0);
    w.u32(0);
  }

  /** The frame; throws a RangeError when the written size differs from the announced one. */
  finish(): Uint8Array {
    if (this.#w.offset !== this.#w.bytes.length) {
      throw new RangeError(
        `Server frame size mismatch: wrote ${this.#w.offset} of ${this.#w.bytes.length} bytes`,
      );
    }
    return this.#w.bytes;
  }
}

/**
 * An uncompressed server frame: compression byte 0, then the messages back to back
 * (v2 clients must get exactly one message per frame; v3 clients accept several).
 * Built with a single allocation.
 */
export function encodeServerFrame(messages: readonly ServerMessage[]): Uint8Array {
  if (messages.length === 0) throw new RangeError("A server frame needs at least one message");
  let size = 1;
  for (const m of messages) size += serverMessageSize(m);
  const w = new WsWriter(size);
  w.u8(0);
  for (const m of messages) writeServerMessage(w, m);
  if (w.offset !== w.bytes.length) throw new RangeError("Server frame size mismatch");
  return w.bytes;
}

const COMPRESSION_TAGS: Record<Compression, number> = { None: 0, Brotli: 1, Gzip: 2 };
const STREAM_FORMATS = { Brotli: "brotli", Gzip: "gzip" } as const;

async function pipeThrough(bytes: Uint8Array, transform: TransformStream<Uint8Array, Uint8Array>) {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Recompresses an uncompressed frame from `encodeServerFrame()` with the given algorithm
 * (full gzip container, or brotli). "None" returns the frame unchanged.
 */
export async function compressServerFrame(
  frame: Uint8Array,
  compression: Compression,
): Promise<Uint8Array> {
  if (frame[0] !== 0) throw new RangeError("compressServerFrame takes an uncompressed frame");
  if (compression === "None") return frame;
  const body = await pipeThrough(
    frame.subarray(1),
    new CompressionStream(STREAM_FORMATS[compression]) as TransformStream<Uint8Array, Uint8Array>,
  );
  const out = new Uint8Array(1 + body.length);
  out[0] = COMPRESSION_TAGS[compression];
  out.set(body, 1);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Server message decoding (for tests, the CLI and our own clients)

function readQueryRows(r: WsReader): QueryRows {
  const count = r.arrayLength(4 + 1 + 4, "QueryRows.tables");
  const tables: SingleTableRows[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const table = r.string("table");
    tables[i] = { table, rows: readRowList(r, "rows") };
  }
  return { tables };
}

function readTransactionUpdate(r: WsReader): TransactionUpdate {
  const setCount = r.arrayLength(8, "query_sets");
  const querySets: QuerySetUpdate[] = new Array(setCount);
  for (let i = 0; i < setCount; i++) {
    const querySetId = r.u32("query_set_id");
    const tableCount = r.arrayLength(8, "tables");
    const tables: TableUpdate[] = new Array(tableCount);
    for (let j = 0; j < tableCount; j++) {
      const tableName = r.string("table_name");
      const rowsCount = r.arrayLength(1, "rows");
      const rows: TableUpdateRows[] = new Array(rowsCount);
      for (let k = 0; k < rowsCount; k++) {
        const tag = r.u8("TableUpdateRows tag");
        if (tag === 0) {
          const inserts = readRowList(r, "inserts");
          rows[k] = { tag: "PersistentTable", inserts, deletes: readRowList(r, "deletes") };
        } else if (tag === 1) {
          rows[k] = { tag: "EventTable", events: readRowList(r, "events") };
        } else r.fail(`Unknown TableUpdateRows tag ${tag}`);
      }
      tables[j] = { tableName, rows };
    }
    querySets[i] = { querySetId, tables };
  }
  return { querySets };
}

function readOptionTag(r: WsReader, what: string): boolean {
  const tag = r.u8(`${what} option tag`);
  if (tag > 1) r.fail(`Unknown Option tag ${tag} for ${what}`);
  return tag === 0;
}

function readServerMessage(r: WsReader): ServerMessage {
  const tag = r.u8("ServerMessage tag");
  switch (SERVER_TAGS[tag]) {
    case "InitialConnection": {
      const identity = r.uintWide(32, "identity");
      const connectionId = r.uintWide(16, "connection_id");
      return { tag: "InitialConnection", identity, connectionId, token: r.string("token") };
    }
    case "SubscribeApplied": {
      const requestId = r.u32("request_id");
      const querySetId = r.u32("query_set_id");
      return { tag: "SubscribeApplied", requestId, querySetId, rows: readQueryRows(r) };
    }
    case "UnsubscribeApplied": {
      const requestId = r.u32("request_id");
      const querySetId = r.u32("query_set_id");
      const rows = readOptionTag(r, "rows") ? readQueryRows(r) : undefined;
      return { tag: "UnsubscribeApplied", requestId, querySetId, rows };
    }
    case "SubscriptionError": {
      const requestId = readOptionTag(r, "request_id") ? r.u32("request_id") : undefined;
      const querySetId = r.u32("query_set_id");
      return { tag: "SubscriptionError", requestId, querySetId, error: r.string("error") };
    }
    case "TransactionUpdate":
      return { tag: "TransactionUpdate", ...readTransactionUpdate(r) };
    case "OneOffQueryResult": {
      const requestId = r.u32("request_id");
      const resultTag = r.u8("result tag");
      let result: OneOffResult;
      if (resultTag === 0) result = { tag: "Ok", value: readQueryRows(r) };
      else if (resultTag === 1) result = { tag: "Err", value: r.string("error") };
      else return r.fail(`Unknown Result tag ${resultTag}`);
      return { tag: "OneOffQueryResult", requestId, result };
    }
    case "ReducerResult": {
      const requestId = r.u32("request_id");
      const timestampMicros = r.i64("timestamp");
      const outcomeTag = r.u8("ReducerOutcome tag");
      let result: ReducerOutcome;
      if (outcomeTag === 0) {
        const retValue = r.bytes("ret_value");
        result = { tag: "Ok", retValue, transactionUpdate: readTransactionUpdate(r) };
      } else if (outcomeTag === 1) result = { tag: "OkEmpty" };
      else if (outcomeTag === 2) result = { tag: "Err", value: r.bytes("error") };
      else if (outcomeTag === 3) result = { tag: "InternalError", value: r.string("error") };
      else return r.fail(`Unknown ReducerOutcome tag ${outcomeTag}`);
      return { tag: "ReducerResult", requestId, timestampMicros, result };
    }
    case "ProcedureResult": {
      const statusTag = r.u8("ProcedureStatus tag");
      let status: ProcedureStatus;
      if (statusTag === 0) status = { tag: "Returned", value: r.bytes("return value") };
      else if (statusTag === 1) status = { tag: "InternalError", value: r.string("error") };
      else return r.fail(`Unknown ProcedureStatus tag ${statusTag}`);
      const timestampMicros = r.i64("timestamp");
      const totalHostExecutionDurationMicros = r.i64("total_host_execution_duration");
      const requestId = r.u32("request_id");
      return {
        tag: "ProcedureResult",
        status,
        timestampMicros,
        totalHostExecutionDurationMicros,
        requestId,
      };
    }
    default:
      return r.fail(`Unknown ServerMessage tag ${tag}`);
  }
}

/** Decodes the messages of an uncompressed payload (no compression byte). */
export function decodeServerPayload(payload: Uint8Array, version: WsVersion): ServerMessage[] {
  const r = new WsReader(payload);
  if (r.remaining === 0) r.fail("Empty server payload");
  const messages: ServerMessage[] = [];
  do {
    messages.push(readServerMessage(r));
  } while (version === "v3" && r.remaining > 0);
  if (r.remaining > 0) r.fail(`${r.remaining} trailing bytes after the server message`);
  return messages;
}

/** Decodes a whole server frame, decompressing it if its first byte says so. */
export async function decodeServerFrame(
  frame: Uint8Array,
  version: WsVersion,
): Promise<ServerMessage[]> {
  if (frame.length === 0) throw new WsDecodeError("Empty server frame", 0);
  const tag = frame[0];
  if (tag === 0) return decodeServerPayload(frame.subarray(1), version);
  if (tag !== 1 && tag !== 2) throw new WsDecodeError(`Unknown compression tag ${tag}`, 0);
  let payload: Uint8Array;
  try {
    payload = await pipeThrough(
      frame.subarray(1),
      new DecompressionStream(tag === 1 ? "brotli" : "gzip") as TransformStream<
        Uint8Array,
        Uint8Array
      >,
    );
  } catch (error) {
    throw new WsDecodeError(`Decompression failed: ${(error as Error).message}`, 1);
  }
  return decodeServerPayload(payload, version);
}
