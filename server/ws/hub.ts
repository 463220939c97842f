/**
 * WebSocket clients of every database: the subscribe endpoint, message dispatch,
 * and fan-out of transaction updates. Each database batch reply is turned into at
 * most one frame per v3 client; row lists are encoded once per query delta and
 * shared by every subscriber (client-protocol.md §2, deno-feasibility.md §3).
 */
import type { Context } from "hono";
import { brotliCompressSync, gzipSync } from "node:zlib";
import type { AuthService } from "../../auth/mod.ts";
import { LimitExceededError } from "../../lib/errors.ts";
import {
  WS_CONNECTIONS_MAX,
  WS_CONNECTIONS_PER_SOURCE_MAX,
  WS_FRAME_MESSAGES_MAX,
  WS_MESSAGE_BYTES_MAX,
  WS_OPEN_TIMEOUT_MS,
  WS_OUTBOUND_BYTES_MAX,
  WS_PENDING_CALLS_MAX,
  WS_QUERY_SETS_MAX,
  WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX,
  WS_QUERY_TEXT_CHARS_TOTAL_MAX,
} from "../../lib/limits.ts";
import { redactHostPaths } from "../../lib/host_paths.ts";
import { log } from "../../lib/log.ts";
import { BadRequestError, OverloadedError } from "../../lib/errors.ts";
import {
  type ClientMessage,
  COMMITTED_REDUCER_RESULT_BYTES,
  type Compression,
  decodeClientFrame,
  encodeRowList,
  encodeServerFrame,
  type QuerySetUpdate,
  ServerFrameWriter,
  type ServerMessage,
  serverMessageSize,
  type TableUpdate,
  type WsVersion,
} from "../../protocol/mod.ts";
import type { BatchItem, DatabaseHost, QueryRows } from "../../worker/mod.ts";
import type { AppEnv } from "../app.ts";
import type { Database, DatabaseRegistry } from "../database_registry.ts";
import { randomConnectionId } from "../routes/database.ts";
import { clientSource } from "./client_source.ts";
import { clientHostname, peerHostname, type TrustedProxies } from "../../lib/client_address.ts";
import { InboundBudget } from "./inbound_budget.ts";
import { V1Session } from "./v1_session.ts";

/**
 * The tokens of a Sec-WebSocket-Protocol value (RFC 6455 §4.1: a comma-separated list with
 * optional whitespace; several header lines arrive joined with ", ").
 */
export function offeredProtocols(header: string | null): string[] {
  if (header === null) return [];
  return header.split(",").map((token) => token.replace(/^[ \t]+|[ \t]+$/g, "")).filter((t) =>
    t !== ""
  );
}

const PROTOCOLS: [string, WsVersion | "v1"][] = [
  ["v3.bsatn.spacetimedb", "v3"],
  ["v2.bsatn.spacetimedb", "v2"],
  ["v1.bsatn.spacetimedb", "v1"],
];
/** SpacetimeDB's legacy JSON protocol, refused with a clear message. */
const V1_PROTOCOLS = ["v1.json.spacetimedb"];
const COMPRESSIONS = new Set(["None", "Brotli", "Gzip"]);
const CLOSE_REASON_BYTES_MAX = 123;
const FRAME_PAYLOAD_BYTES_TARGET = 512 * 1024;
const EMPTY_BYTES = new Uint8Array(0);
/**
 * A v3 frame answers at most this many bytes of the client's calls. A pipelining client sends
 * its next calls when the answers arrive, all those of one frame in one frame of its own; Deno's
 * WebSocket client (the official SDK on Deno) leaves Nagle on and writes a frame over 1 KiB as
 * two send() calls, so such a frame waits for our delayed ACK, ~40 ms. Cutting our frames keeps
 * a client that re-sends calls of the same size under 1 KiB per frame.
 */
const ANSWERED_BYTES_PER_FRAME_MAX = 960;

/** What a WebSocket request sent to a database worker was for. */
class WsOrigin {
  /** Set once the caller's ReducerResult went out with its transaction update. */
  answered = false;

  constructor(
    readonly client: Client,
    readonly kind: "call" | "procedure" | "subscribe" | "unsubscribe" | "query" | "resubscribe",
    readonly requestId: number,
    /** When the request arrived (calls and procedures; 0n otherwise). */
    readonly timestampMicros: bigint,
    /** Encoded size of the call message (for frame cutting, see ANSWERED_BYTES_PER_FRAME_MAX). */
    readonly callBytes: number,
    /** Subscribe and unsubscribe only. */
    readonly querySetId = 0,
    /** Encoded size of the request, held in the client's InboundBudget until answered. */
    readonly inboundBytes = callBytes,
    /** `performance.now()` when its frame was dispatched (calls; 0 otherwise), for metrics. */
    readonly receivedMs = 0,
  ) {}
}

/**
 * A message waiting in a client's outbox. Without `message` it stands for the commonest one: the
 * ReducerResult (Ok, no return value, no query-set updates) of `requestId`, written straight into
 * the frame without building a message object.
 */
class Outgoing {
  constructor(
    readonly message: ServerMessage | undefined,
    /** Transaction offset the message was computed from (confirmed reads wait for it). */
    readonly txOffset: number,
    /** Encoded size of the client's call this message answers (0 for other messages). */
    readonly answeredBytes: number,
    readonly requestId = 0,
    readonly timestampMicros = 0n,
    /** A reducer call's result: when the call's frame was dispatched (0: not a call result). */
    readonly receivedMs = 0,
  ) {}

  get byteLength(): number {
    return this.message === undefined
      ? COMMITTED_REDUCER_RESULT_BYTES
      : serverMessageSize(this.message);
  }
}

type CallFields = Parameters<DatabaseHost["submitReducerCall"]>[0];

/** A decoded client frame: its messages and their encoded sizes. */
interface ClientFrame {
  messages: ClientMessage[];
  sizes: number[];
}

class Client {
  readonly querySets = new Map<number, number[]>();
  /** The queries of each query set, to subscribe them again after a module hot swap. */
  readonly queryStrings = new Map<number, string[]>();
  /** Frames received while the database's module was being swapped, still encoded. */
  paused: Uint8Array[] | undefined;
  /** The JWT claims the module reads as `ctx.senderAuth` (handed to a hot-swapped module). */
  jwtPayload = "";
  /** What its subscriptions' view instances are charged to (client_source.ts); none for the owner. */
  source: string | undefined;
  /** The source its connection is counted under (WS_CONNECTIONS_PER_SOURCE_MAX), owner too. */
  connectionSource = "";
  /** Frames received before client_connected finished, still encoded. */
  early: Uint8Array[] | undefined = [];
  /** Bytes received and not yet answered (early frames included). */
  readonly inbound: InboundBudget;
  outbox: Outgoing[] = [];
  /** In the hub's held set of its database: messages wait for a transaction to be durable. */
  held = false;
  pendingCalls = 0;
  closed = false;
  /** client_connected committed: client_disconnected must run when it goes. */
  connected = false;
  /** client_connected is running: the connection id stays taken until it is undone. */
  connecting = false;
  /** A v1.bsatn client: its messages are translated to and from v2 (version is "v2"). */
  v1: V1Session | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly database: Database,
    readonly identity: bigint,
    readonly connectionId: bigint,
    readonly version: WsVersion,
    readonly compression: Compression,
    readonly confirmed: boolean,
    readonly isOwner: boolean,
    /**
     * Ends the connection's admission (Database.admit): called once InitialConnection is sent
     * or the handshake failed, so an update waits for handshakes in progress instead of
     * closing them before their first message. Idempotent.
     */
    readonly handshakeDone: () => void,
    serverInbound: InboundBudget,
  ) {
    this.inbound = InboundBudget.forClient(serverInbound);
  }
}

/** What WsHub.clientStats reports per database. */
export interface WsClientStats {
  clients: number;
  subscriptions: number;
  outboundBytes: number;
  outboxMessages: number;
}

/** Per database: which clients subscribe to which shared query ids, under which query sets. */
type Routing = Map<number, Map<Client, number[]>>;

export class WsHub {
  readonly #clients = new Set<Client>();
  /** Open connections per client source (WS_CONNECTIONS_PER_SOURCE_MAX). */
  readonly #connectionsPerSource = new Map<string, number>();
  /** Characters of kept query texts per client source and in all (WS_QUERY_TEXT_CHARS_*). */
  readonly #queryTextCharsPerSource = new Map<string, number>();
  #queryTextCharsTotal = 0;
  readonly #routing = new Map<Database, Routing>();
  /** Per database: clients holding messages until a transaction is durable. */
  readonly #held = new Map<Database, Set<Client>>();
  /** Per database: the client holding each connection id. */
  readonly #liveConnections = new Map<Database, Map<bigint, Client>>();
  /** Databases whose module is being swapped: their clients' frames wait (resumeDatabase). */
  readonly #paused = new Set<Database>();

  readonly #compress: boolean;
  readonly #trustedProxies: TrustedProxies | undefined;
  /** WebSockets one client source may hold (`--ws-connections-per-address`). */
  readonly #connectionsPerSourceMax: number;
  /** Inbound bytes held for all clients (inbound_budget.ts). */
  readonly #inbound = InboundBudget.forServer();
  /** Reused for every reducer call: the host copies what it needs before returning. */
  readonly #call: CallFields = {
    reducer: "",
    args: EMPTY_BYTES,
    sender: 0n,
    connectionId: 0n,
    timestampMicros: 0n,
  };

  /**
   * `compress`: honour the client's `compression=Gzip|Brotli` by compressing every
   * frame of that connection. Off by default: the official TS SDK decompresses each
   * frame in its own async task, so frames that decompress at different speeds can be
   * applied out of order (client-protocol.md §2.10); uncompressed frames (tag 0) are
   * always legal.
   */
  constructor(
    options: {
      auth: AuthService;
      compress?: boolean;
      trustedProxies?: TrustedProxies;
      /** Default WS_CONNECTIONS_PER_SOURCE_MAX. */
      connectionsPerSourceMax?: number;
    },
  ) {
    this.#compress = options.compress ?? false;
    this.#trustedProxies = options.trustedProxies;
    this.#connectionsPerSourceMax = options.connectionsPerSourceMax ??
      WS_CONNECTIONS_PER_SOURCE_MAX;
  }

  attach(_registry: DatabaseRegistry): void {}

  /** Resolves once `txOffset` of `database` is durable. */
  durable(database: Database, txOffset: number | undefined): Promise<void> {
    return database.whenDurable(txOffset);
  }

  /** `handshakeDone`: see Client.handshakeDone. */
  upgrade(c: Context<AppEnv>, database: Database, handshakeDone: () => void = () => {}): Response {
    const query = new URL(c.req.url).searchParams;
    const compression = query.get("compression") ?? "Brotli";
    if (!COMPRESSIONS.has(compression)) {
      throw new BadRequestError(`Invalid compression "${compression}": use None, Brotli or Gzip`);
    }
    const chosenConnectionId = connectionIdParam(query.get("connection_id"));
    // `light` only trims v1 transaction updates sent to non-callers (SpacetimeDB's
    // `tx_update_full`); v2/v3 messages are the same either way. Validated, then unused.
    booleanParam(query, "light");
    const offered = offeredProtocols(c.req.raw.headers.get("sec-websocket-protocol"));
    const chosen = PROTOCOLS.find(([name]) => offered.includes(name));
    if (!chosen) {
      // SpacetimeDB 2.x still accepts v1.json too (client-api routes/subscribe.rs); Lightcone
      // does not speak it and says so.
      const legacy = offered.filter((name) => V1_PROTOCOLS.includes(name));
      throw new BadRequestError(
        `no valid protocol selected: offer ${
          PROTOCOLS.map(([name]) => name).join(" or ")
        } in Sec-WebSocket-Protocol${
          legacy.length > 0 ? ` (${legacy.join(", ")}: not supported by this server)` : ""
        }`,
      );
    }
    if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket") {
      throw new BadRequestError("Expected a WebSocket upgrade request");
    }
    const auth = c.get("auth");
    // Read before the upgrade: Deno's request info throws "Request closed" after it.
    const peerSource = clientSource(
      clientHostname(
        peerHostname(c.env),
        c.req.header("x-forwarded-for"),
        this.#trustedProxies,
      ),
    );
    const source = database.isOwner(auth.identity) ? undefined : peerSource;
    const connectionSource = peerSource ?? "";
    if (this.#clients.size >= WS_CONNECTIONS_MAX) {
      throw new OverloadedError(
        `Too many WebSocket connections: ${this.#clients.size} open, the limit is ` +
          `${WS_CONNECTIONS_MAX} (WS_CONNECTIONS_MAX); retry later`,
      );
    }
    const fromSource = this.#connectionsPerSource.get(connectionSource) ?? 0;
    if (fromSource >= this.#connectionsPerSourceMax) {
      throw new OverloadedError(
        `Too many WebSocket connections from this address: ${fromSource} open, the limit is ` +
          `${this.#connectionsPerSourceMax} (--ws-connections-per-address); close some first`,
      );
    }
    // Deno's own protocol check splits the header on ", " exactly, so a list without spaces
    // (Node's `ws` sends "a,b") would fail there: the choice is made above and set here.
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout: 30 });
    response.headers.set("sec-websocket-protocol", chosen[0]);
    socket.binaryType = "arraybuffer";
    const client = new Client(
      socket,
      database,
      auth.identity.toBigInt(),
      chosenConnectionId ?? randomConnectionId(),
      chosen[1] === "v1" ? "v2" : chosen[1],
      compression as Compression,
      // Confirmed reads are on by default for v2/v3, off for v1 (as in SpacetimeDB).
      (query.get("confirmed") ?? (chosen[1] === "v1" ? "false" : "true")) !== "false",
      database.isOwner(auth.identity),
      handshakeDone,
      this.#inbound,
    );
    if (chosen[1] === "v1") {
      client.v1 = new V1Session({
        identity: client.identity,
        connectionId: client.connectionId,
        tableId: (name) =>
          database.module.tablesByName.get(name)?.tableId ??
            database.module.viewTableIds.get(name) ?? 0,
        reducerId: (name) => database.module.reducersByName.get(name)?.id ?? 0,
      });
    }
    client.jwtPayload = auth.payloadJson;
    client.source = source;
    client.connectionSource = connectionSource;
    this.#clients.add(client);
    this.#connectionsPerSource.set(connectionSource, fromSource + 1);
    // A connection id names one live connection of a database (SpacetimeDB keys
    // st_connection_credentials by it): a second connection with the same id is refused.
    const live = this.#liveConnectionsOf(database);
    const taken = live.has(client.connectionId);
    if (!taken) live.set(client.connectionId, client);
    // A peer gone while the upgrade completes fires neither open nor close (Deno 2.9).
    const openTimer = setTimeout(() => {
      if (socket.readyState !== WebSocket.CONNECTING) return;
      this.#onClose(client);
    }, WS_OPEN_TIMEOUT_MS);
    Deno.unrefTimer(openTimer);
    socket.onopen = () => {
      clearTimeout(openTimer);
      taken
        ? this.#close(
          client,
          1008,
          `Connection refused: connection id ${
            connectionIdHex(client.connectionId)
          } is already connected`,
        )
        : this.#onOpen(client, auth.token, auth.payloadJson);
    };
    socket.onmessage = (event) => this.#onMessage(client, event);
    socket.onclose = () => {
      clearTimeout(openTimer);
      this.#onClose(client);
    };
    socket.onerror = () => {};
    return response;
  }

  /** Handles a database batch: results and transaction updates, in worker order. */
  onEvents(database: Database, items: BatchItem[], originOf: (id: number) => unknown): void {
    const routing = this.#routing.get(database);
    const touched = new Set<Client>();
    let txOffset = 0;
    /** One clock reading per batch, taken at the first call result (metrics). */
    let nowMs = 0;
    const observeReply = (origin: WsOrigin) => {
      if (origin.receivedMs === 0) return;
      if (nowMs === 0) nowMs = performance.now();
      database.metrics.callReply.observe((nowMs - origin.receivedMs) * 1000);
    };
    for (const item of items) {
      if (item.kind === "update") {
        txOffset = item.txOffset;
        const origin = item.callId === undefined ? undefined : asWsOrigin(originOf(item.callId));
        if (routing) this.#dropFailedSets(routing, item.deltas, txOffset, touched);
        const perClient = routing ? fanOut(routing, item.deltas) : new Map();
        if (origin && origin.kind === "call" && !origin.client.closed) {
          origin.answered = true;
          observeReply(origin);
          const sets = perClient.get(origin.client);
          perClient.delete(origin.client);
          if (sets === undefined) {
            this.#queueCommitted(origin, txOffset, touched);
          } else {
            this.#queue(
              origin.client,
              {
                tag: "ReducerResult",
                requestId: origin.requestId,
                timestampMicros: origin.timestampMicros,
                result: {
                  tag: "Ok",
                  retValue: EMPTY_BYTES,
                  transactionUpdate: { querySets: sets },
                },
              },
              txOffset,
              touched,
              origin.callBytes,
              origin.receivedMs,
            );
          }
          origin.client.pendingCalls--;
        }
        for (const [client, querySets] of perClient) {
          this.#queue(client, { tag: "TransactionUpdate", querySets }, txOffset, touched);
        }
        continue;
      }
      const origin = asWsOrigin(originOf(item.id));
      if (!origin || origin.client.closed) continue;
      const client = origin.client;
      client.inbound.release(origin.inboundBytes);
      switch (item.kind) {
        case "call":
          if (origin.answered) break;
          client.pendingCalls--;
          observeReply(origin);
          if (item.status === "committed") {
            // Committed without any query delta: the worker sent no update for it.
            this.#queueCommitted(origin, item.txOffset ?? 0, touched);
            break;
          }
          this.#queue(
            client,
            {
              tag: "ReducerResult",
              requestId: origin.requestId,
              timestampMicros: origin.timestampMicros,
              result: item.status === "failed_user"
                ? { tag: "Err", value: bsatnString(item.message ?? "") }
                : { tag: "InternalError", value: item.message ?? "The reducer failed" },
            },
            // Rolled back, but it may have read another client's commit that is not durable yet.
            item.txOffset,
            touched,
            origin.callBytes,
            origin.receivedMs,
          );
          break;
        case "procedure":
          client.pendingCalls--;
          this.#queue(
            client,
            {
              tag: "ProcedureResult",
              status: item.ok
                ? { tag: "Returned", value: item.value ?? new Uint8Array() }
                : { tag: "InternalError", value: item.message ?? "The procedure failed" },
              timestampMicros: item.ok ? origin.timestampMicros : 0n,
              totalHostExecutionDurationMicros: item.ok ? BigInt(item.durationMicros) : 0n,
              requestId: origin.requestId,
            },
            item.txOffset,
            touched,
            origin.callBytes,
          );
          break;
        case "subscribe": {
          if (origin.kind === "resubscribe") {
            this.#resubscribed(client, origin.querySetId, item, touched);
            break;
          }
          client.pendingCalls--;
          const querySetId = origin.querySetId;
          if (!item.ok) {
            client.querySets.delete(querySetId);
            this.#forgetQueryStrings(client, querySetId);
            this.#queue(
              client,
              {
                tag: "SubscriptionError",
                requestId: origin.requestId,
                querySetId,
                error: item.error ?? "subscription failed",
              },
              item.txOffset,
              touched,
            );
            break;
          }
          const queryIds = item.queryIds ?? [];
          client.querySets.set(querySetId, queryIds);
          const table = this.#routingOf(database);
          for (const queryId of queryIds) {
            let subscribers = table.get(queryId);
            if (!subscribers) table.set(queryId, subscribers = new Map());
            const sets = subscribers.get(client);
            if (sets) sets.push(querySetId);
            else subscribers.set(client, [querySetId]);
          }
          this.#queue(
            client,
            {
              tag: "SubscribeApplied",
              requestId: origin.requestId,
              querySetId,
              rows: { tables: toSingleTableRows(item.rows ?? []) },
            },
            item.txOffset,
            touched,
          );
          break;
        }
        case "unsubscribe": {
          client.pendingCalls--;
          const querySetId = origin.querySetId;
          if (!item.ok) {
            this.#queue(
              client,
              {
                tag: "SubscriptionError",
                requestId: origin.requestId,
                querySetId,
                error: item.error ?? "unsubscribe failed",
              },
              item.txOffset,
              touched,
            );
            break;
          }
          this.#unroute(client, querySetId);
          this.#queue(
            client,
            {
              tag: "UnsubscribeApplied",
              requestId: origin.requestId,
              querySetId,
              rows: item.rows ? { tables: toSingleTableRows(item.rows) } : undefined,
            },
            item.txOffset,
            touched,
          );
          break;
        }
        case "query":
          client.pendingCalls--;
          this.#queue(
            client,
            {
              tag: "OneOffQueryResult",
              requestId: origin.requestId,
              result: item.ok
                ? { tag: "Ok", value: { tables: toSingleTableRows(item.rows ? [item.rows] : []) } }
                : { tag: "Err", value: item.error ?? "query failed" },
            },
            item.txOffset,
            touched,
          );
          break;
      }
    }
    for (const client of touched) this.#flush(client);
  }

  /** The database stopped or went away: its clients are closed ("module exited"). */
  closeDatabase(database: Database, reason: string): void {
    for (const client of this.#clients) {
      if (client.database === database) this.#close(client, 1001, `module exited: ${reason}`);
    }
    this.#routing.delete(database);
    this.#held.delete(database);
    this.#paused.delete(database);
  }

  /** A module update begins: frames from the database's clients wait until it ends. */
  pauseDatabase(database: Database): void {
    this.#paused.add(database);
  }

  /**
   * The module update ended (or failed and the old module is back). With `disconnect`, every
   * client is closed and the database's (new) module runs client_disconnected for each; else
   * the clients stay (hot swap): each query set is subscribed again on the new module (rows
   * are unchanged, so nothing is sent unless a query no longer compiles: then the client gets
   * a SubscriptionError for it) and the frames that arrived meanwhile are handled.
   */
  resumeDatabase(database: Database, disconnect: boolean, reason: string): void {
    this.#paused.delete(database);
    this.#routing.delete(database);
    for (const client of [...this.#clients]) {
      if (client.database !== database || client.closed) continue;
      if (disconnect) {
        client.paused = undefined;
        this.#close(client, 1001, `module exited: ${reason}`);
        continue;
      }
      if (client.connected) {
        database.host.connect({
          sender: client.identity,
          connectionId: client.connectionId,
          timestampMicros: BigInt(Date.now()) * 1000n,
          jwtPayload: client.jwtPayload,
          resumed: true,
        }).catch(() => {});
      }
      for (const [querySetId, queries] of client.queryStrings) {
        client.querySets.set(querySetId, []);
        database.host.subscribe(
          {
            connectionId: client.connectionId,
            querySetId,
            queries,
            sender: client.identity,
            isOwner: client.isOwner,
            source: client.source,
          },
          new WsOrigin(client, "resubscribe", 0, 0n, 0, querySetId, 0),
        ).catch(() => {});
      }
      const held = client.paused ?? [];
      client.paused = undefined;
      for (const bytes of held) {
        if (client.closed) break;
        const frame = this.#decode(client, bytes);
        if (frame) this.#dispatch(client, frame);
      }
    }
    this.onDurable(database);
  }

  /**
   * Queries whose delta failed (the worker dropped every query set holding them): each such set
   * gets a SubscriptionError without request id, before the transaction's updates, and leaves
   * the routing, so none of its queries' rows reach it again.
   */
  #dropFailedSets(
    routing: Routing,
    deltas: readonly { queryId: number; error?: string }[],
    txOffset: number,
    touched: Set<Client>,
  ): void {
    for (const delta of deltas) {
      if (delta.error === undefined) continue;
      const subscribers = routing.get(delta.queryId);
      if (!subscribers) continue;
      for (const [client, querySetIds] of [...subscribers]) {
        // A set can hold one query twice (two texts with one plan): it gets one error.
        for (const querySetId of new Set(querySetIds)) {
          this.#unroute(client, querySetId);
          this.#queue(
            client,
            { tag: "SubscriptionError", requestId: undefined, querySetId, error: delta.error },
            txOffset,
            touched,
          );
        }
      }
    }
  }

  /** A query set subscribed again after a hot swap: new routing, no rows sent. */
  #resubscribed(
    client: Client,
    querySetId: number,
    item: { ok: boolean; error?: string; queryIds?: number[] },
    touched: Set<Client>,
  ): void {
    if (!client.queryStrings.has(querySetId)) return; // unsubscribed meanwhile
    if (!item.ok) {
      client.querySets.delete(querySetId);
      this.#forgetQueryStrings(client, querySetId);
      this.#queue(
        client,
        {
          tag: "SubscriptionError",
          requestId: undefined,
          querySetId,
          error: item.error ?? "subscription failed after a module update",
        },
        0,
        touched,
      );
      return;
    }
    const queryIds = item.queryIds ?? [];
    client.querySets.set(querySetId, queryIds);
    const table = this.#routingOf(client.database);
    for (const queryId of queryIds) {
      let subscribers = table.get(queryId);
      if (!subscribers) table.set(queryId, subscribers = new Map());
      const sets = subscribers.get(client);
      if (sets) sets.push(querySetId);
      else subscribers.set(client, [querySetId]);
    }
  }

  closeAll(reason: string): void {
    for (const client of this.#clients) this.#close(client, 1001, reason);
  }

  #liveConnectionsOf(database: Database): Map<bigint, Client> {
    let live = this.#liveConnections.get(database);
    if (!live) this.#liveConnections.set(database, live = new Map());
    return live;
  }

  #routingOf(database: Database): Routing {
    let routing = this.#routing.get(database);
    if (!routing) this.#routing.set(database, routing = new Map());
    return routing;
  }

  /** Keeps a set's query texts if the source's and the server's text bounds allow; else the error. */
  #keepQueryStrings(client: Client, querySetId: number, queries: string[]): string | undefined {
    let chars = 0;
    for (const query of queries) chars += query.length;
    const source = client.connectionSource;
    const fromSource = this.#queryTextCharsPerSource.get(source) ?? 0;
    if (fromSource + chars > WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX) {
      return `The subscriptions of this address would hold ${fromSource + chars} characters of ` +
        `SQL, over ${WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX} (WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX)`;
    }
    if (this.#queryTextCharsTotal + chars > WS_QUERY_TEXT_CHARS_TOTAL_MAX) {
      return `The server holds ${this.#queryTextCharsTotal} characters of subscribed SQL, the ` +
        `limit is ${WS_QUERY_TEXT_CHARS_TOTAL_MAX} (WS_QUERY_TEXT_CHARS_TOTAL_MAX); retry later`;
    }
    this.#forgetQueryStrings(client, querySetId);
    client.queryStrings.set(querySetId, queries);
    this.#queryTextCharsPerSource.set(source, fromSource + chars);
    this.#queryTextCharsTotal += chars;
    return undefined;
  }

  #forgetQueryStrings(client: Client, querySetId: number): void {
    const queries = client.queryStrings.get(querySetId);
    if (queries === undefined) return;
    client.queryStrings.delete(querySetId);
    let chars = 0;
    for (const query of queries) chars += query.length;
    const source = client.connectionSource;
    const left = (this.#queryTextCharsPerSource.get(source) ?? chars) - chars;
    if (left > 0) this.#queryTextCharsPerSource.set(source, left);
    else this.#queryTextCharsPerSource.delete(source);
    this.#queryTextCharsTotal -= chars;
  }

  #unroute(client: Client, querySetId: number): void {
    const queryIds = client.querySets.get(querySetId);
    client.querySets.delete(querySetId);
    this.#forgetQueryStrings(client, querySetId);
    const routing = this.#routing.get(client.database);
    if (!queryIds || !routing) return;
    for (const queryId of queryIds) {
      const subscribers = routing.get(queryId);
      const sets = subscribers?.get(client);
      if (!subscribers || !sets) continue;
      const at = sets.indexOf(querySetId);
      if (at >= 0) sets.splice(at, 1);
      if (sets.length === 0) subscribers.delete(client);
      if (subscribers.size === 0) routing.delete(queryId);
    }
  }

  async #onOpen(client: Client, token: string, payloadJson: string): Promise<void> {
    const host = client.database.host;
    let ok = false;
    let reason = "client_connected failed";
    client.connecting = true;
    /** What client_connected committed or read: the connection's first reply waits for it. */
    let txOffset = 0;
    try {
      const result = await host.connect({
        sender: client.identity,
        connectionId: client.connectionId,
        timestampMicros: BigInt(Date.now()) * 1000n,
        jwtPayload: payloadJson,
      });
      ok = result.status === "committed";
      txOffset = result.txOffset;
      if (!ok) reason = result.message ?? reason;
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error);
    }
    client.connected = ok;
    client.connecting = false;
    if (client.closed) {
      // The socket went while client_connected ran: undo it now. Its connection id is free
      // only after that, so a reconnect's client_connected runs after this disconnect.
      if (ok) this.#disconnect(client);
      this.#releaseConnectionId(client);
      client.handshakeDone();
      return;
    }
    // Confirmed reads: the first reply, a refusal included, waits until what client_connected
    // committed or read is durable. Frames the client sends meanwhile stay in `early`.
    let durabilityFailure: string | undefined;
    if (client.confirmed) {
      await client.database.whenDurable(txOffset).catch((error) => {
        durabilityFailure = error instanceof Error ? error.message : String(error);
      });
    }
    if (client.closed) {
      client.handshakeDone();
      return;
    }
    if (durabilityFailure !== undefined) {
      this.#close(client, 1011, `module exited: ${durabilityFailure}`);
      return;
    }
    if (!ok) {
      this.#close(client, 1008, `Connection refused: ${reason}`);
      return;
    }
    this.#send(
      client,
      client.v1 ? client.v1.identityToken(token) : encodeServerFrame([{
        tag: "InitialConnection",
        identity: client.identity,
        connectionId: client.connectionId,
        token,
      }]),
    );
    // Only now may a module update close this connection like any established one.
    client.handshakeDone();
    const early = client.early ?? [];
    client.early = undefined;
    for (const bytes of early) {
      if (client.closed) return;
      const frame = this.#decode(client, bytes);
      if (frame) this.#dispatch(client, frame);
    }
  }

  #onMessage(client: Client, event: MessageEvent): void {
    if (client.closed) return;
    if (!(event.data instanceof ArrayBuffer)) {
      this.#close(client, 1011, "Text frames are not supported by the BSATN protocol");
      return;
    }
    const bytes = event.data.byteLength;
    if (bytes > WS_MESSAGE_BYTES_MAX) {
      this.#close(client, 1009, `Message of ${bytes} bytes is over the limit`);
      return;
    }
    // Checked before decoding: what a client has outstanding is bounded (inbound_budget.ts).
    const refused = client.inbound.take(bytes, client.early !== undefined);
    if (refused) {
      this.#close(client, refused.code, refused.reason);
      return;
    }
    if (client.early) {
      client.early.push(new Uint8Array(event.data));
      return;
    }
    if (this.#paused.has(client.database)) {
      (client.paused ??= []).push(new Uint8Array(event.data));
      return;
    }
    const frame = this.#decode(client, new Uint8Array(event.data));
    if (frame) this.#dispatch(client, frame);
  }

  /** Decodes a frame; a bad or over-limit frame closes the client (undefined). */
  #decode(client: Client, bytes: Uint8Array): ClientFrame | undefined {
    const frame: ClientFrame = { messages: [], sizes: [] };
    try {
      if (client.v1) {
        const { request, reply } = client.v1.decode(bytes);
        if (reply) this.#send(client, reply);
        if (request) {
          frame.messages.push(request);
          frame.sizes.push(bytes.byteLength);
        } else {
          client.inbound.release(bytes.byteLength);
        }
      } else {
        frame.messages = decodeClientFrame(
          bytes,
          client.version,
          frame.sizes,
          WS_FRAME_MESSAGES_MAX,
        );
      }
    } catch (error) {
      const code = error instanceof LimitExceededError ? 1008 : 1011;
      this.#close(client, code, error instanceof Error ? error.message : String(error));
      return undefined;
    }
    return frame;
  }

  #dispatch(client: Client, frame: ClientFrame): void {
    const { messages, sizes } = frame;
    // One timestamp per frame: its calls arrived together.
    const timestampMicros = BigInt(Date.now()) * 1000n;
    const receivedMs = performance.now();
    const fail = (error: unknown) => {
      if (!client.closed) log.warn("database request failed", { error: String(error) });
    };
    for (let i = 0; i < messages.length; i++) {
      if (client.closed) return;
      this.#dispatchOne(client, messages[i], sizes[i], timestampMicros, receivedMs, fail);
    }
  }

  #dispatchOne(
    client: Client,
    message: ClientMessage,
    messageBytes: number,
    timestampMicros: bigint,
    receivedMs: number,
    fail: (error: unknown) => void,
  ): void {
    // Every kind of request counts against the same limit until it is answered.
    if (++client.pendingCalls > WS_PENDING_CALLS_MAX) {
      this.#close(client, 1013, "too many requests");
      return;
    }
    const host = client.database.host;
    switch (message.tag) {
      case "CallReducer": {
        const call = this.#call;
        call.reducer = message.reducer;
        call.args = message.args;
        call.sender = client.identity;
        call.connectionId = client.connectionId;
        call.timestampMicros = timestampMicros;
        const submitted = host.submitReducerCall(
          call,
          new WsOrigin(
            client,
            "call",
            message.requestId,
            timestampMicros,
            messageBytes,
            0,
            messageBytes,
            receivedMs,
          ),
        );
        call.args = EMPTY_BYTES;
        if (!submitted) fail(new Error("database is not available"));
        break;
      }
      case "CallProcedure": {
        host.callProcedure(
          {
            procedure: message.procedure,
            args: message.args,
            sender: client.identity,
            connectionId: client.connectionId,
            timestampMicros,
          },
          new WsOrigin(client, "procedure", message.requestId, timestampMicros, messageBytes),
        ).catch(fail);
        break;
      }
      case "Subscribe": {
        if (client.querySets.has(message.querySetId)) {
          this.#close(client, 1011, `Query set ${message.querySetId} is already subscribed`);
          return;
        }
        if (client.querySets.size >= WS_QUERY_SETS_MAX) {
          this.#queueNow(client, {
            tag: "SubscriptionError",
            requestId: message.requestId,
            querySetId: message.querySetId,
            error: `A connection may hold at most ${WS_QUERY_SETS_MAX} query sets`,
          });
          client.pendingCalls--;
          client.inbound.release(messageBytes);
          break;
        }
        const queries = [...new Set(message.queryStrings)];
        const overText = this.#keepQueryStrings(client, message.querySetId, queries);
        if (overText !== undefined) {
          this.#queueNow(client, {
            tag: "SubscriptionError",
            requestId: message.requestId,
            querySetId: message.querySetId,
            error: overText,
          });
          client.pendingCalls--;
          client.inbound.release(messageBytes);
          break;
        }
        // Reserve the id now so a duplicate in flight is caught too.
        client.querySets.set(message.querySetId, []);
        host.subscribe(
          {
            connectionId: client.connectionId,
            querySetId: message.querySetId,
            queries,
            sender: client.identity,
            isOwner: client.isOwner,
            source: client.source,
          },
          new WsOrigin(
            client,
            "subscribe",
            message.requestId,
            0n,
            0,
            message.querySetId,
            messageBytes,
          ),
        ).catch(fail);
        break;
      }
      case "Unsubscribe":
        host.unsubscribe(
          {
            connectionId: client.connectionId,
            querySetId: message.querySetId,
            sendDroppedRows: message.flags === "SendDroppedRows",
          },
          new WsOrigin(
            client,
            "unsubscribe",
            message.requestId,
            0n,
            0,
            message.querySetId,
            messageBytes,
          ),
        ).catch(fail);
        break;
      case "OneOffQuery":
        host.query({
          sql: message.queryString,
          sender: client.identity,
          isOwner: client.isOwner,
        }, new WsOrigin(client, "query", message.requestId, 0n, 0, 0, messageBytes)).catch(fail);
        break;
    }
  }

  #onClose(client: Client): void {
    if (client.closed && !this.#clients.has(client)) return;
    client.closed = true;
    client.handshakeDone();
    if (this.#clients.delete(client)) {
      const left = (this.#connectionsPerSource.get(client.connectionSource) ?? 1) - 1;
      if (left > 0) this.#connectionsPerSource.set(client.connectionSource, left);
      else this.#connectionsPerSource.delete(client.connectionSource);
    }
    client.early = undefined;
    client.paused = undefined;
    client.inbound.releaseAll();
    if (!client.connecting) this.#releaseConnectionId(client);
    for (const querySetId of [...client.querySets.keys()]) this.#unroute(client, querySetId);
    client.outbox = [];
    this.#noteHeld(client);
    if (client.connected) this.#disconnect(client);
  }

  #releaseConnectionId(client: Client): void {
    const live = this.#liveConnections.get(client.database);
    if (live?.get(client.connectionId) !== client) return;
    live.delete(client.connectionId);
    if (live.size === 0) this.#liveConnections.delete(client.database);
  }

  #disconnect(client: Client): void {
    client.connected = false;
    client.database.host.disconnect({
      sender: client.identity,
      connectionId: client.connectionId,
      timestampMicros: BigInt(Date.now()) * 1000n,
    }).catch(() => {});
  }

  #close(client: Client, code: number, reason: string): void {
    if (client.closed) return;
    try {
      client.socket.close(code, truncateReason(reason));
    } catch {
      client.socket.close();
    }
    this.#onClose(client);
  }

  #queue(
    client: Client,
    message: ServerMessage,
    txOffset: number,
    touched: Set<Client>,
    answeredBytes = 0,
    receivedMs = 0,
  ): void {
    if (client.closed) return;
    client.outbox.push(new Outgoing(message, txOffset, answeredBytes, 0, 0n, receivedMs));
    touched.add(client);
  }

  /** Queues the plain ReducerResult of a call that committed without query-set updates. */
  #queueCommitted(origin: WsOrigin, txOffset: number, touched: Set<Client>): void {
    const client = origin.client;
    if (client.closed) return;
    client.outbox.push(
      new Outgoing(
        undefined,
        txOffset,
        origin.callBytes,
        origin.requestId,
        origin.timestampMicros,
        origin.receivedMs,
      ),
    );
    touched.add(client);
  }

  #queueNow(client: Client, message: ServerMessage): void {
    const touched = new Set<Client>();
    this.#queue(client, message, 0, touched);
    this.#flush(client);
  }

  /**
   * Sends queued messages in FIFO order. With confirmed reads, a message computed
   * from a transaction waits until that transaction is durable, and so does
   * everything queued after it. v3 packs the sendable prefix into as few frames
   * as possible, but a frame answers at most ANSWERED_BYTES_PER_FRAME_MAX of the
   * client's calls.
   */
  #flush(client: Client): void {
    this.#sendReady(client);
    this.#noteHeld(client);
  }

  #sendReady(client: Client): void {
    const outbox = client.outbox;
    if (client.closed || outbox.length === 0) return;
    const durable = client.confirmed ? client.database.durableTxOffset : Infinity;
    let ready = 0;
    while (ready < outbox.length && outbox[ready].txOffset <= durable) ready++;
    if (ready === 0) return;
    if (ready === outbox.length) client.outbox = [];
    else client.outbox = outbox.slice(ready);
    // Call results: from their frame's dispatch until written now (one clock reading per flush).
    let nowMs = 0;
    for (let i = 0; i < ready; i++) {
      const receivedMs = outbox[i].receivedMs;
      if (receivedMs === 0) continue;
      if (nowMs === 0) nowMs = performance.now();
      client.database.metrics.callSent.observe((nowMs - receivedMs) * 1000);
    }
    if (client.v1) {
      for (let i = 0; i < ready; i++) {
        const entry = outbox[i];
        const frame = client.v1.encode(entry.message, entry.requestId, entry.timestampMicros);
        if (frame) this.#send(client, frame);
      }
      return;
    }
    if (client.version === "v2") {
      for (let i = 0; i < ready; i++) this.#send(client, encodeFrame(outbox, i, i + 1, -1));
      return;
    }
    let groupStart = 0;
    let groupBytes = 0;
    let answeredBytes = 0;
    for (let i = 0; i < ready; i++) {
      const entry = outbox[i];
      const size = entry.byteLength;
      if (
        i > groupStart &&
        (groupBytes + size > FRAME_PAYLOAD_BYTES_TARGET ||
          answeredBytes + entry.answeredBytes > ANSWERED_BYTES_PER_FRAME_MAX)
      ) {
        this.#send(client, encodeFrame(outbox, groupStart, i, groupBytes));
        groupStart = i;
        groupBytes = 0;
        answeredBytes = 0;
      }
      groupBytes += size;
      answeredBytes += entry.answeredBytes;
    }
    if (ready > groupStart) this.#send(client, encodeFrame(outbox, groupStart, ready, groupBytes));
  }

  /**
   * Gauges for /v1/metrics, per database with open connections, in one pass over the clients:
   * connections, subscribed query sets, bytes the sockets have not sent yet, queued messages.
   */
  /** True while any WebSocket connection of `database` is open (it must not hibernate). */
  hasClients(database: Database): boolean {
    return (this.#liveConnections.get(database)?.size ?? 0) > 0;
  }

  clientStats(): Map<Database, WsClientStats> {
    const stats = new Map<Database, WsClientStats>();
    for (const client of this.#clients) {
      if (client.closed) continue;
      let entry = stats.get(client.database);
      if (!entry) {
        entry = { clients: 0, subscriptions: 0, outboundBytes: 0, outboxMessages: 0 };
        stats.set(client.database, entry);
      }
      entry.clients++;
      entry.subscriptions += client.querySets.size;
      entry.outboundBytes += client.socket.bufferedAmount ?? 0;
      entry.outboxMessages += client.outbox.length;
    }
    return stats;
  }

  /** A database's durable offset moved: release held messages. */
  onDurable(database: Database): void {
    const held = this.#held.get(database);
    if (held === undefined) return;
    // #flush deletes the clients it empties; deleting while iterating a Set is safe.
    for (const client of held) this.#flush(client);
  }

  /** Keeps `#held` in step with what #flush left in the client's outbox. */
  #noteHeld(client: Client): void {
    const holds = client.outbox.length > 0 && !client.closed;
    if (holds === client.held) return;
    client.held = holds;
    let held = this.#held.get(client.database);
    if (!holds) {
      held?.delete(client);
      return;
    }
    if (!held) this.#held.set(client.database, held = new Set());
    held.add(client);
  }

  #send(client: Client, frame: Uint8Array): void {
    if (client.closed || client.socket.readyState !== WebSocket.OPEN) return;
    if (this.#compress && client.compression !== "None") {
      frame = compressFrameSync(frame, client.compression);
    }
    client.socket.send(frame);
    if (client.socket.bufferedAmount > WS_OUTBOUND_BYTES_MAX) {
      this.#close(client, 1008, "Client is too slow: outbound buffer over the limit");
    }
  }
}

/**
 * One uncompressed frame of outbox entries [start, end); `payloadBytes` is the sum of their
 * sizes (-1: compute it).
 */
function encodeFrame(
  outbox: readonly Outgoing[],
  start: number,
  end: number,
  payloadBytes: number,
): Uint8Array {
  if (payloadBytes < 0) {
    payloadBytes = 0;
    for (let i = start; i < end; i++) payloadBytes += outbox[i].byteLength;
  }
  const frame = new ServerFrameWriter(payloadBytes);
  for (let i = start; i < end; i++) {
    const entry = outbox[i];
    if (entry.message === undefined) {
      frame.committedReducerResult(entry.requestId, entry.timestampMicros);
    } else {
      frame.message(entry.message);
    }
  }
  return frame.finish();
}

/** Re-encodes an uncompressed frame (tag 0) with the given algorithm (tag 1 brotli, 2 gzip). */
export function compressFrameSync(frame: Uint8Array, compression: "Gzip" | "Brotli"): Uint8Array {
  const body = frame.subarray(1);
  const packed = compression === "Gzip" ? gzipSync(body) : brotliCompressSync(body);
  const out = new Uint8Array(1 + packed.length);
  out[0] = compression === "Gzip" ? 2 : 1;
  out.set(packed, 1);
  return out;
}

/**
 * The `connection_id` query parameter: 32 hex digits, the big-endian bytes of the u128
 * (optional `0x`, any case), as SpacetimeDB's Rust SDK sends it. Absent: undefined.
 */
export function connectionIdParam(text: string | null): bigint | undefined {
  if (text === null) return undefined;
  if (!/^(0x)?[0-9a-f]{32}$/i.test(text)) {
    throw new BadRequestError(
      `Invalid connection_id "${text}": expected 32 hex digits (16 bytes, big-endian)`,
    );
  }
  const value = BigInt("0x" + text.replace(/^0x/i, ""));
  if (value === 0n) {
    throw new BadRequestError("Invalid connection ID: the all-zeros ConnectionId is reserved.");
  }
  return value;
}

function connectionIdHex(value: bigint): string {
  return value.toString(16).padStart(32, "0");
}

/** A `true`/`false` query parameter (absent: false); anything else is a 400. */
function booleanParam(query: URLSearchParams, name: string): boolean {
  const text = query.get(name);
  if (text === null || text === "false") return false;
  if (text === "true") return true;
  throw new BadRequestError(`Invalid ${name} "${text}": use true or false`);
}

function asWsOrigin(value: unknown): WsOrigin | undefined {
  return value instanceof WsOrigin ? value : undefined;
}

/** Groups one transaction's query deltas per subscribed client and query set. */
function fanOut(routing: Routing, deltas: import("../../worker/mod.ts").QueryDelta[]) {
  const perClient = new Map<Client, QuerySetUpdate[]>();
  const setIndex = new Map<Client, Map<number, QuerySetUpdate>>();
  for (const delta of deltas) {
    if (delta.error !== undefined) continue; // its sets were dropped (#dropFailedSets)
    const subscribers = routing.get(delta.queryId);
    if (!subscribers) continue;
    const inserts = encodeRowList(delta.inserts);
    const deletes = delta.isEvent ? inserts : encodeRowList(delta.deletes);
    for (const [client, querySetIds] of subscribers) {
      let sets = setIndex.get(client);
      if (!sets) {
        setIndex.set(client, sets = new Map());
        perClient.set(client, []);
      }
      for (const querySetId of querySetIds) {
        let update = sets.get(querySetId);
        if (!update) {
          update = { querySetId, tables: [] };
          sets.set(querySetId, update);
          perClient.get(client)!.push(update);
        }
        let table: TableUpdate | undefined = update.tables.find((t) => t.tableName === delta.table);
        if (!table) update.tables.push(table = { tableName: delta.table, rows: [] });
        table.rows.push(
          delta.isEvent
            ? { tag: "EventTable", events: inserts }
            : { tag: "PersistentTable", inserts, deletes },
        );
      }
    }
  }
  return perClient;
}

function toSingleTableRows(rows: QueryRows[]) {
  return rows.map((entry) => ({ table: entry.table, rows: entry.rows }));
}

function bsatnString(text: string): Uint8Array {
  const utf8 = new TextEncoder().encode(text);
  const out = new Uint8Array(4 + utf8.length);
  new DataView(out.buffer).setUint32(0, utf8.length, true);
  out.set(utf8, 4);
  return out;
}

function truncateReason(unsafe: string): string {
  const reason = redactHostPaths(unsafe);
  const bytes = new TextEncoder().encode(reason);
  if (bytes.length <= CLOSE_REASON_BYTES_MAX) return reason;
  let text = reason;
  while (new TextEncoder().encode(text + "…").length > CLOSE_REASON_BYTES_MAX) {
    text = text.slice(0, -1);
  }
  return text + "…";
}
