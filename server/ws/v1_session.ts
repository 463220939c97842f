/**
 * A `v1.bsatn.spacetimedb` connection (the 1.x SDKs) on top of the hub's v2 machinery: v1
 * client messages become v2 requests, and the v2 messages the hub queues for the client are
 * written as their v1 counterparts, the way SpacetimeDB 2.x answers a v1 client of a module
 * with a V10 definition:
 * - SubscribeMulti / SubscribeSingle / Unsubscribe(Multi) use the query id as the query set
 *   id; applied messages carry the rows as one TableUpdate per table.
 * - The caller of a reducer gets a full TransactionUpdate (status, reducer name/id/args and
 *   request id), also when it subscribes to nothing, unless it asked NoSuccessNotify and the
 *   reducer committed; everyone else gets TransactionUpdateLight, since V10 modules hide the
 *   reducer event from non-callers (module_subscription_manager.rs, send_v1_computed_queries).
 * - The legacy Subscribe (replace every subscription) is refused with a SubscriptionError.
 * Rows are sent per query set like v2 (a query shared by two query ids is sent twice, with
 * matching deletes), where SpacetimeDB counts it once per client: the client cache ends up
 * in the same state.
 */
import {
  type ClientMessage,
  decodeV1ClientMessage,
  encodeV1ServerFrame,
  type QuerySetUpdate,
  type RowList,
  type ServerMessage,
  type SingleTableRows,
  type V1ServerMessage,
  type V1TableUpdate,
} from "../../protocol/mod.ts";

const EMPTY_ROWS: RowList = [];

type Pending =
  | {
    kind: "call";
    requestId: number;
    reducer: string;
    args: Uint8Array;
    notifySuccess: boolean;
  }
  | { kind: "subscribe" | "unsubscribe"; requestId: number; single: boolean }
  | { kind: "query"; messageId: Uint8Array }
  | { kind: "procedure"; requestId: number };

/** What the session needs to know about the connection and its database. */
export interface V1Context {
  identity: bigint;
  connectionId: bigint;
  tableId(name: string): number;
  reducerId(name: string): number;
}

export class V1Session {
  /** Requests sent on as v2 messages, by the request id given to them. */
  readonly #pending = new Map<number, Pending>();
  /** Query ids subscribed with SubscribeSingle. */
  readonly #single = new Set<number>();
  #nextRequestId = 1;

  constructor(readonly context: V1Context) {}

  /**
   * Turns one client frame into the v2 request it stands for, or into a reply sent at once
   * (a refused request). Throws WsDecodeError on bad bytes.
   */
  decode(frame: Uint8Array): { request?: ClientMessage; reply?: Uint8Array } {
    const message = decodeV1ClientMessage(frame);
    const requestId = this.#nextRequestId++;
    switch (message.tag) {
      case "CallReducer":
        this.#pending.set(requestId, {
          kind: "call",
          requestId: message.requestId,
          reducer: message.reducer,
          args: message.args.slice(),
          notifySuccess: message.flags === "FullUpdate",
        });
        return {
          request: {
            tag: "CallReducer",
            requestId,
            flags: 0,
            reducer: message.reducer,
            args: message.args,
          },
        };
      case "CallProcedure":
        this.#pending.set(requestId, { kind: "procedure", requestId: message.requestId });
        return {
          request: {
            tag: "CallProcedure",
            requestId,
            flags: 0,
            procedure: message.procedure,
            args: message.args,
          },
        };
      case "SubscribeMulti":
      case "SubscribeSingle": {
        const single = message.tag === "SubscribeSingle";
        if (single) this.#single.add(message.queryId);
        else this.#single.delete(message.queryId);
        this.#pending.set(requestId, { kind: "subscribe", requestId: message.requestId, single });
        return {
          request: {
            tag: "Subscribe",
            requestId,
            querySetId: message.queryId,
            queryStrings: single ? [message.query] : message.queryStrings,
          },
        };
      }
      case "Unsubscribe":
      case "UnsubscribeMulti":
        this.#pending.set(requestId, {
          kind: "unsubscribe",
          requestId: message.requestId,
          single: this.#single.has(message.queryId),
        });
        return {
          request: {
            tag: "Unsubscribe",
            requestId,
            querySetId: message.queryId,
            flags: "SendDroppedRows",
          },
        };
      case "OneOffQuery":
        this.#pending.set(requestId, { kind: "query", messageId: message.messageId.slice() });
        return { request: { tag: "OneOffQuery", requestId, queryString: message.queryString } };
      case "Subscribe":
        return {
          reply: encodeV1ServerFrame({
            tag: "SubscriptionError",
            durationMicros: 0n,
            requestId: message.requestId,
            queryId: undefined,
            tableId: undefined,
            error:
              "The legacy Subscribe message is not supported by this server: use SubscribeMulti",
          }),
        };
    }
  }

  /** The IdentityToken that opens the connection. */
  identityToken(token: string): Uint8Array {
    return encodeV1ServerFrame({
      tag: "IdentityToken",
      identity: this.context.identity,
      token,
      connectionId: this.context.connectionId,
    });
  }

  /**
   * The v1 frame for a message the hub queued (`undefined` message: the plain committed
   * ReducerResult of `requestId`); undefined when v1 sends nothing for it.
   */
  encode(
    message: ServerMessage | undefined,
    requestId: number,
    timestampMicros: bigint,
  ): Uint8Array | undefined {
    const v1 = this.#translate(message, requestId, timestampMicros);
    return v1 === undefined ? undefined : encodeV1ServerFrame(v1);
  }

  #translate(
    message: ServerMessage | undefined,
    committedRequestId: number,
    committedTimestampMicros: bigint,
  ): V1ServerMessage | undefined {
    if (message === undefined) {
      return this.#callerUpdate(committedRequestId, committedTimestampMicros, {
        tag: "Committed",
        tables: [],
      });
    }
    switch (message.tag) {
      case "InitialConnection":
        return undefined; // identityToken() is sent instead
      case "ReducerResult": {
        const result = message.result;
        switch (result.tag) {
          case "Ok":
            return this.#callerUpdate(message.requestId, message.timestampMicros, {
              tag: "Committed",
              tables: this.#tablesOf(result.transactionUpdate.querySets),
            });
          case "OkEmpty":
            return this.#callerUpdate(message.requestId, message.timestampMicros, {
              tag: "Committed",
              tables: [],
            });
          case "Err":
            return this.#callerUpdate(message.requestId, message.timestampMicros, {
              tag: "Failed",
              message: bsatnStringText(result.value),
            });
          case "InternalError":
            return this.#callerUpdate(message.requestId, message.timestampMicros, {
              tag: "Failed",
              message: result.value,
            });
        }
        return undefined;
      }
      case "TransactionUpdate":
        return {
          tag: "TransactionUpdateLight",
          requestId: 0,
          tables: this.#tablesOf(message.querySets),
        };
      case "SubscribeApplied":
      case "UnsubscribeApplied": {
        const pending = this.#take(message.requestId);
        const subscribe = message.tag === "SubscribeApplied";
        const requestId = pending?.kind === "subscribe" || pending?.kind === "unsubscribe"
          ? pending.requestId
          : 0;
        const single = pending?.kind === "subscribe" || pending?.kind === "unsubscribe"
          ? pending.single
          : false;
        if (!subscribe) this.#single.delete(message.querySetId);
        const tables = this.#tablesOfRows(message.rows?.tables ?? [], subscribe);
        if (single) {
          const table = tables[0] ?? { tableId: 0, tableName: "", updates: [] };
          return {
            tag: subscribe ? "SubscribeApplied" : "UnsubscribeApplied",
            requestId,
            durationMicros: 0n,
            queryId: message.querySetId,
            table,
          };
        }
        return {
          tag: subscribe ? "SubscribeMultiApplied" : "UnsubscribeMultiApplied",
          requestId,
          durationMicros: 0n,
          queryId: message.querySetId,
          tables,
        };
      }
      case "SubscriptionError": {
        const pending = message.requestId === undefined ? undefined : this.#take(message.requestId);
        this.#single.delete(message.querySetId);
        return {
          tag: "SubscriptionError",
          durationMicros: 0n,
          requestId: pending?.kind === "subscribe" || pending?.kind === "unsubscribe"
            ? pending.requestId
            : undefined,
          queryId: message.querySetId,
          tableId: undefined,
          error: message.error,
        };
      }
      case "OneOffQueryResult": {
        const pending = this.#take(message.requestId);
        const messageId = pending?.kind === "query" ? pending.messageId : new Uint8Array();
        const result = message.result;
        return {
          tag: "OneOffQueryResponse",
          messageId,
          error: result.tag === "Err" ? result.value : undefined,
          tables: result.tag === "Ok"
            ? result.value.tables.map((table) => ({ tableName: table.table, rows: table.rows }))
            : [],
          durationMicros: 0n,
        };
      }
      case "ProcedureResult": {
        const pending = this.#take(message.requestId);
        return {
          tag: "ProcedureResult",
          status: message.status,
          timestampMicros: message.timestampMicros,
          durationMicros: message.totalHostExecutionDurationMicros,
          requestId: pending?.kind === "procedure" ? pending.requestId : 0,
        };
      }
    }
  }

  #take(requestId: number): Pending | undefined {
    const pending = this.#pending.get(requestId);
    this.#pending.delete(requestId);
    return pending;
  }

  #callerUpdate(
    requestId: number,
    timestampMicros: bigint,
    status: Extract<V1ServerMessage, { tag: "TransactionUpdate" }>["status"],
  ): V1ServerMessage | undefined {
    const pending = this.#take(requestId);
    if (pending?.kind !== "call") return undefined;
    if (status.tag === "Committed" && !pending.notifySuccess) return undefined;
    return {
      tag: "TransactionUpdate",
      status,
      timestampMicros,
      callerIdentity: this.context.identity,
      callerConnectionId: this.context.connectionId,
      reducerName: pending.reducer,
      reducerId: this.context.reducerId(pending.reducer),
      args: pending.args,
      requestId: pending.requestId,
      durationMicros: 0n,
    };
  }

  /** v2 query-set updates as v1 table updates: one per table, one entry per query. */
  #tablesOf(querySets: readonly QuerySetUpdate[]): V1TableUpdate[] {
    const byName = new Map<string, V1TableUpdate>();
    for (const set of querySets) {
      for (const table of set.tables) {
        const update = this.#tableUpdate(byName, table.tableName);
        for (const rows of table.rows) {
          update.updates.push(
            rows.tag === "PersistentTable"
              ? { deletes: rows.deletes, inserts: rows.inserts }
              : { deletes: EMPTY_ROWS, inserts: rows.events },
          );
        }
      }
    }
    return [...byName.values()];
  }

  /** Initial (inserts) or dropped (deletes) rows per query as v1 table updates. */
  #tablesOfRows(rows: readonly SingleTableRows[], inserted: boolean): V1TableUpdate[] {
    const byName = new Map<string, V1TableUpdate>();
    for (const entry of rows) {
      this.#tableUpdate(byName, entry.table).updates.push(
        inserted
          ? { deletes: EMPTY_ROWS, inserts: entry.rows }
          : { deletes: entry.rows, inserts: EMPTY_ROWS },
      );
    }
    return [...byName.values()];
  }

  #tableUpdate(byName: Map<string, V1TableUpdate>, tableName: string): V1TableUpdate {
    let update = byName.get(tableName);
    if (!update) {
      update = { tableId: this.context.tableId(tableName), tableName, updates: [] };
      byName.set(tableName, update);
    }
    return update;
  }
}

function bsatnStringText(bytes: Uint8Array): string {
  if (bytes.length < 4) return "";
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  return new TextDecoder().decode(bytes.subarray(4, 4 + length));
}
