/**
 * SpacetimeDB's v1 WebSocket protocol, BSATN flavour (`v1.bsatn.spacetimedb`), as SpacetimeDB
 * 2.x still accepts it and the 1.x SDKs speak it (client-api-messages websocket/v1.rs). One
 * message per frame in both directions; server frames start with the compression byte.
 * Variant and field order follow the Rust definitions.
 */
import { WsReader } from "./_ws_codec.ts";
import { EncodedRowList, encodeRowList, type RowList } from "./ws_v2.ts";

export type V1CallReducerFlags = "FullUpdate" | "NoSuccessNotify";

export type V1ClientMessage =
  | {
    tag: "CallReducer";
    reducer: string;
    args: Uint8Array;
    requestId: number;
    flags: V1CallReducerFlags;
  }
  | { tag: "Subscribe"; queryStrings: string[]; requestId: number }
  | { tag: "OneOffQuery"; messageId: Uint8Array; queryString: string }
  | { tag: "SubscribeSingle"; query: string; requestId: number; queryId: number }
  | { tag: "SubscribeMulti"; queryStrings: string[]; requestId: number; queryId: number }
  | { tag: "Unsubscribe"; requestId: number; queryId: number }
  | { tag: "UnsubscribeMulti"; requestId: number; queryId: number }
  | { tag: "CallProcedure"; procedure: string; args: Uint8Array; requestId: number };

/** One table's rows in a v1 update: a list of (deletes, inserts) pairs, one per query. */
export interface V1TableUpdate {
  tableId: number;
  tableName: string;
  updates: { deletes: RowList; inserts: RowList }[];
}

export type V1UpdateStatus =
  | { tag: "Committed"; tables: V1TableUpdate[] }
  | { tag: "Failed"; message: string }
  | { tag: "OutOfEnergy" };

export type V1ServerMessage =
  | {
    tag: "InitialSubscription";
    tables: V1TableUpdate[];
    requestId: number;
    durationMicros: bigint;
  }
  | {
    tag: "TransactionUpdate";
    status: V1UpdateStatus;
    timestampMicros: bigint;
    callerIdentity: bigint;
    callerConnectionId: bigint;
    reducerName: string;
    reducerId: number;
    args: Uint8Array;
    requestId: number;
    durationMicros: bigint;
  }
  | { tag: "TransactionUpdateLight"; requestId: number; tables: V1TableUpdate[] }
  | { tag: "IdentityToken"; identity: bigint; token: string; connectionId: bigint }
  | {
    tag: "OneOffQueryResponse";
    messageId: Uint8Array;
    error: string | undefined;
    tables: { tableName: string; rows: RowList }[];
    durationMicros: bigint;
  }
  | {
    tag: "SubscribeApplied" | "UnsubscribeApplied";
    requestId: number;
    durationMicros: bigint;
    queryId: number;
    table: V1TableUpdate;
  }
  | {
    tag: "SubscriptionError";
    durationMicros: bigint;
    requestId: number | undefined;
    queryId: number | undefined;
    tableId: number | undefined;
    error: string;
  }
  | {
    tag: "SubscribeMultiApplied" | "UnsubscribeMultiApplied";
    requestId: number;
    durationMicros: bigint;
    queryId: number;
    tables: V1TableUpdate[];
  }
  | {
    tag: "ProcedureResult";
    status: { tag: "Returned"; value: Uint8Array } | { tag: "InternalError"; value: string };
    timestampMicros: bigint;
    durationMicros: bigint;
    requestId: number;
  };

const CLIENT_TAGS = [
  "CallReducer",
  "Subscribe",
  "OneOffQuery",
  "SubscribeSingle",
  "SubscribeMulti",
  "Unsubscribe",
  "UnsubscribeMulti",
  "CallProcedure",
] as const;

const SERVER_TAGS = [
  "InitialSubscription",
  "TransactionUpdate",
  "TransactionUpdateLight",
  "IdentityToken",
  "OneOffQueryResponse",
  "SubscribeApplied",
  "UnsubscribeApplied",
  "SubscriptionError",
  "SubscribeMultiApplied",
  "UnsubscribeMultiApplied",
  "ProcedureResult",
] as const;

function readStrings(r: WsReader, what: string): string[] {
  const count = r.arrayLength(4, what);
  const out: string[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = r.string(`${what} element`);
  return out;
}

/** Decodes one v1 client frame (exactly one message); bad input throws WsDecodeError. */
export function decodeV1ClientMessage(frame: Uint8Array): V1ClientMessage {
  const r = new WsReader(frame);
  const tag = r.u8("ClientMessage tag");
  let message: V1ClientMessage;
  switch (CLIENT_TAGS[tag]) {
    case "CallReducer": {
      const reducer = r.string("reducer");
      const args = r.bytes("args");
      const requestId = r.u32("request_id");
      const flags = r.u8("CallReducerFlags");
      if (flags > 1) r.fail(`Unknown CallReducerFlags ${flags}`);
      message = {
        tag: "CallReducer",
        reducer,
        args,
        requestId,
        flags: flags === 0 ? "FullUpdate" : "NoSuccessNotify",
      };
      break;
    }
    case "Subscribe": {
      const queryStrings = readStrings(r, "query_strings");
      message = { tag: "Subscribe", queryStrings, requestId: r.u32("request_id") };
      break;
    }
    case "OneOffQuery": {
      const messageId = r.bytes("message_id");
      message = { tag: "OneOffQuery", messageId, queryString: r.string("query_string") };
      break;
    }
    case "SubscribeSingle": {
      const query = r.string("query");
      const requestId = r.u32("request_id");
      message = { tag: "SubscribeSingle", query, requestId, queryId: r.u32("query_id") };
      break;
    }
    case "SubscribeMulti": {
      const queryStrings = readStrings(r, "query_strings");
      const requestId = r.u32("request_id");
      message = { tag: "SubscribeMulti", queryStrings, requestId, queryId: r.u32("query_id") };
      break;
    }
    case "Unsubscribe":
    case "UnsubscribeMulti": {
      const requestId = r.u32("request_id");
      message = { tag: CLIENT_TAGS[tag], requestId, queryId: r.u32("query_id") } as V1ClientMessage;
      break;
    }
    case "CallProcedure": {
      const procedure = r.string("procedure");
      const args = r.bytes("args");
      const requestId = r.u32("request_id");
      const flags = r.u8("CallProcedureFlags");
      if (flags !== 0) r.fail(`Unknown CallProcedureFlags ${flags}`);
      message = { tag: "CallProcedure", procedure, args, requestId };
      break;
    }
    default:
      return r.fail(`Unknown v1 ClientMessage tag ${tag} (known: ${CLIENT_TAGS.length})`);
  }
  if (r.remaining > 0) r.fail(`${r.remaining} trailing bytes after the client message`);
  return message;
}

/** A growable little-endian writer (v1 messages are rare enough not to pre-size). */
class Writer {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  #at = 0;

  #room(count: number): number {
    if (this.#at + count > this.#bytes.length) {
      const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.#at + count));
      grown.set(this.#bytes.subarray(0, this.#at));
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    const at = this.#at;
    this.#at += count;
    return at;
  }

  // #room may replace the buffer: it is called before the buffer is read.
  u8(value: number): void {
    const at = this.#room(1);
    this.#bytes[at] = value;
  }
  u32(value: number): void {
    const at = this.#room(4);
    this.#view.setUint32(at, value, true);
  }
  u64(value: bigint): void {
    const at = this.#room(8);
    this.#view.setBigUint64(at, BigInt.asUintN(64, value), true);
  }
  i64(value: bigint): void {
    const at = this.#room(8);
    this.#view.setBigInt64(at, BigInt.asIntN(64, value), true);
  }
  /** Unsigned little-endian integer of `count` bytes (16: u128, 32: u256). */
  wide(value: bigint, count: number): void {
    const at = this.#room(count);
    let rest = value;
    for (let i = 0; i < count; i++) {
      this.#bytes[at + i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  }
  raw(bytes: Uint8Array): void {
    const at = this.#room(bytes.length);
    this.#bytes.set(bytes, at);
  }
  bytes(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }
  string(text: string): void {
    this.bytes(new TextEncoder().encode(text));
  }
  optionU32(value: number | undefined): void {
    if (value === undefined) this.u8(1);
    else {
      this.u8(0);
      this.u32(value);
    }
  }
  rowList(list: RowList): void {
    this.raw(list instanceof EncodedRowList ? list.bytes : encodeRowList(list).bytes);
  }
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#at);
  }
}

function rowCount(list: RowList): number {
  return list instanceof EncodedRowList ? list.rowCount : list.length;
}

function writeTableUpdate(w: Writer, table: V1TableUpdate): void {
  w.u32(table.tableId);
  w.string(table.tableName);
  let rows = 0n;
  for (const update of table.updates) {
    rows += BigInt(rowCount(update.deletes) + rowCount(update.inserts));
  }
  w.u64(rows);
  w.u32(table.updates.length);
  for (const update of table.updates) {
    w.u8(0); // CompressableQueryUpdate::Uncompressed
    w.rowList(update.deletes);
    w.rowList(update.inserts);
  }
}

function writeDatabaseUpdate(w: Writer, tables: V1TableUpdate[]): void {
  w.u32(tables.length);
  for (const table of tables) writeTableUpdate(w, table);
}

/** One server frame: compression byte 0 (none), then the message. */
export function encodeV1ServerFrame(message: V1ServerMessage): Uint8Array {
  const w = new Writer();
  w.u8(0);
  w.u8(SERVER_TAGS.indexOf(message.tag));
  switch (message.tag) {
    case "InitialSubscription":
      writeDatabaseUpdate(w, message.tables);
      w.u32(message.requestId);
      w.i64(message.durationMicros);
      break;
    case "TransactionUpdate":
      switch (message.status.tag) {
        case "Committed":
          w.u8(0);
          writeDatabaseUpdate(w, message.status.tables);
          break;
        case "Failed":
          w.u8(1);
          w.string(message.status.message);
          break;
        case "OutOfEnergy":
          w.u8(2);
          break;
      }
      w.i64(message.timestampMicros);
      w.wide(message.callerIdentity, 32);
      w.wide(message.callerConnectionId, 16);
      w.string(message.reducerName);
      w.u32(message.reducerId);
      w.bytes(message.args);
      w.u32(message.requestId);
      w.wide(0n, 16); // energy_quanta_used: not metered here
      w.i64(message.durationMicros);
      break;
    case "TransactionUpdateLight":
      w.u32(message.requestId);
      writeDatabaseUpdate(w, message.tables);
      break;
    case "IdentityToken":
      w.wide(message.identity, 32);
      w.string(message.token);
      w.wide(message.connectionId, 16);
      break;
    case "OneOffQueryResponse":
      w.bytes(message.messageId);
      if (message.error === undefined) w.u8(1);
      else {
        w.u8(0);
        w.string(message.error);
      }
      w.u32(message.tables.length);
      for (const table of message.tables) {
        w.string(table.tableName);
        w.rowList(table.rows);
      }
      w.i64(message.durationMicros);
      break;
    case "SubscribeApplied":
    case "UnsubscribeApplied":
      w.u32(message.requestId);
      w.u64(message.durationMicros);
      w.u32(message.queryId);
      w.u32(message.table.tableId);
      w.string(message.table.tableName);
      writeTableUpdate(w, message.table);
      break;
    case "SubscriptionError":
      w.u64(message.durationMicros);
      w.optionU32(message.requestId);
      w.optionU32(message.queryId);
      w.optionU32(message.tableId);
      w.string(message.error);
      break;
    case "SubscribeMultiApplied":
    case "UnsubscribeMultiApplied":
      w.u32(message.requestId);
      w.u64(message.durationMicros);
      w.u32(message.queryId);
      writeDatabaseUpdate(w, message.tables);
      break;
    case "ProcedureResult":
      if (message.status.tag === "Returned") {
        w.u8(0);
        w.bytes(message.status.value);
      } else {
        w.u8(2);
        w.string(message.status.value);
      }
      w.i64(message.timestampMicros);
      w.i64(message.durationMicros);
      w.u32(message.requestId);
      break;
  }
  return w.finish();
}
