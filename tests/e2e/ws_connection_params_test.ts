/**
 * The `connection_id` and `light` query parameters of the subscribe endpoint, with raw v2/v3
 * clients and the official SDK: a client-chosen connection id is the id the module and the
 * client see; a second live connection with the same id is refused without running
 * client_connected; `light` is validated and (as in SpacetimeDB 2.x) changes nothing on v2/v3.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  decodeServerFrame,
  encodeClientFrame,
  EncodedRowList,
  type RowList,
  type ServerMessage,
  type WsVersion,
} from "../../protocol/mod.ts";
import { DbConnection } from "../fixtures/bindings/chat/index.ts";
import { fixtureBundle, parseWithBigInts, publish, startTestServer } from "../support/server.ts";

interface RawClient {
  socket: WebSocket;
  messages: ServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
}

function rawClient(
  url: string,
  database: string,
  version: WsVersion,
  params: Record<string, string> = {},
): RawClient {
  const query = new URLSearchParams(params).toString();
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/${database}/subscribe?${query}`,
    [`${version}.bsatn.spacetimedb`],
  );
  socket.binaryType = "arraybuffer";
  const messages: ServerMessage[] = [];
  // Frames are decoded in arrival order (decoding an uncompressed frame does not yield).
  let decoding = Promise.resolve();
  socket.onmessage = (event) => {
    const data = new Uint8Array(event.data as ArrayBuffer);
    decoding = decoding.then(async () => {
      messages.push(...await decodeServerFrame(data, version));
    });
  };
  socket.onerror = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
  return { socket, messages, closed };
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function first<T extends ServerMessage["tag"]>(
  client: RawClient,
  tag: T,
): Extract<ServerMessage, { tag: T }> | undefined {
  return client.messages.find((m) => m.tag === tag) as Extract<ServerMessage, { tag: T }>;
}

function bsatnString(text: string): Uint8Array {
  const utf8 = new TextEncoder().encode(text);
  const out = new Uint8Array(4 + utf8.length);
  new DataView(out.buffer).setUint32(0, utf8.length, true);
  out.set(utf8, 4);
  return out;
}

function callNote(client: RawClient, requestId: number, text: string): void {
  client.socket.send(encodeClientFrame([{
    tag: "CallReducer",
    requestId,
    flags: 0,
    reducer: "note",
    args: bsatnString(text),
  }]));
}

/** (kind, connection hex) of every connection_event row, in id order. */
async function events(url: string, database: string): Promise<[string, string][]> {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: "SELECT * FROM connection_event",
  });
  const text = await response.text();
  assertEquals(response.status, 200, text);
  const [statement] = parseWithBigInts(text) as [
    { rows: [bigint | number, string, unknown, string][] },
  ];
  return statement.rows
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map((row) => [row[1], row[3]]);
}

function rowCount(list: RowList): number {
  return list instanceof EncodedRowList ? list.rowCount : list.length;
}

const CHOSEN = "0123456789abcdef0011223344556677";

Deno.test({
  name: "a client-chosen connection_id is the connection's id for the client and the module",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "conns", await fixtureBundle("connections"));
      for (const [version, hex] of [["v2", CHOSEN], ["v3", "0x" + "AB".repeat(16)]] as const) {
        await t.step(`${version}: InitialConnection, reducers and lifecycle see it`, async () => {
          const client = rawClient(server.url, "conns", version, { connection_id: hex });
          await until(() => first(client, "InitialConnection") !== undefined, "InitialConnection");
          const expected = BigInt("0x" + hex.replace(/^0x/, ""));
          assertEquals(first(client, "InitialConnection")!.connectionId, expected);
          callNote(client, 7, `call over ${version}`);
          await until(() => first(client, "ReducerResult") !== undefined, "ReducerResult");
          assertEquals(first(client, "ReducerResult")!.result.tag, "Ok");
          client.socket.close();
          await client.closed;
          const lowerHex = hex.replace(/^0x/, "").toLowerCase();
          let seen: [string, string][] = [];
          const deadline = Date.now() + 60_000;
          while (Date.now() < deadline) {
            seen = (await events(server.url, "conns")).filter(([, c]) => c === lowerHex);
            if (seen.length === 3) break;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          assertEquals(seen, [
            ["connect", lowerHex],
            [`call over ${version}`, lowerHex],
            ["disconnect", lowerHex],
          ]);
        });
      }

      await t.step("malformed or all-zero connection ids are refused with 400", async () => {
        for (
          const [value, pattern] of [
            ["xyz", /expected 32 hex digits/],
            ["abc", /expected 32 hex digits/],
            ["0".repeat(33), /expected 32 hex digits/],
            ["0".repeat(32), /all-zeros ConnectionId is reserved/],
          ] as const
        ) {
          const response = await fetch(
            `${server.url}/v1/database/conns/subscribe?connection_id=${value}`,
            { headers: { "sec-websocket-protocol": "v3.bsatn.spacetimedb" } },
          );
          const text = await response.text();
          assertEquals(response.status, 400, `${value}: ${text}`);
          assert(pattern.test(text), `${value}: ${text}`);
        }
      });
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a second live connection with the same connection_id is refused until the first goes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const { token } = await publish(server.url, "conns", await fixtureBundle("connections"));
      await publish(server.url, "other", await fixtureBundle("connections"));
      const live = rawClient(server.url, "conns", "v3", { connection_id: CHOSEN, token });
      await until(() => first(live, "InitialConnection") !== undefined, "the first connection");

      // Another identity, then the same identity (same token), then v2: all refused.
      for (
        const [version, params] of [
          ["v3", { connection_id: CHOSEN }],
          ["v3", { connection_id: CHOSEN, token }],
          ["v2", { connection_id: CHOSEN, token }],
        ] as const
      ) {
        const duplicate = rawClient(server.url, "conns", version, params);
        const closed = await duplicate.closed;
        assertEquals(closed.code, 1008, closed.reason);
        assert(/already connected/.test(closed.reason), closed.reason);
        assertEquals(duplicate.messages.length, 0, "no InitialConnection for a refused client");
      }

      // The first connection is unharmed; the same id on another database is a different one.
      callNote(live, 1, "still here");
      await until(() => first(live, "ReducerResult") !== undefined, "the live client's call");
      assertEquals(first(live, "ReducerResult")!.result.tag, "Ok");
      const elsewhere = rawClient(server.url, "other", "v3", { connection_id: CHOSEN });
      await until(() => first(elsewhere, "InitialConnection") !== undefined, "other database");
      elsewhere.socket.close();
      await elsewhere.closed;

      // Once the first goes, the id is free again (a reconnect with the same id).
      live.socket.close();
      await live.closed;
      let again: RawClient | undefined;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        again = rawClient(server.url, "conns", "v2", { connection_id: CHOSEN, token });
        const outcome = await Promise.race([
          again.closed.then(() => "closed"),
          until(() => first(again!, "InitialConnection") !== undefined, "reconnect").then(() =>
            "open"
          ),
        ]);
        if (outcome === "open") break;
        again = undefined;
      }
      assert(again, "the reconnect with the same id was accepted");
      again.socket.close();
      await again.closed;

      let kinds: string[] = [];
      const settle = Date.now() + 60_000;
      while (Date.now() < settle) {
        kinds = (await events(server.url, "conns")).filter(([, c]) => c === CHOSEN).map(([k]) => k);
        if (kinds.filter((k) => k === "disconnect").length === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // client_connected ran for the first connection and the reconnect only; each
      // disconnect ran once.
      assertEquals(kinds, ["connect", "still here", "disconnect", "connect", "disconnect"]);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a connection closed during client_connected keeps its id until client_disconnected ran",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      await publish(server.url, "conns", await fixtureBundle("connections"));
      const id = "00112233445566778899aabbccddeeff";
      // Each round: a client that goes as soon as its socket opens (client_connected still
      // running), then one that reconnects with the same id at once, retrying while refused.
      let refused = 0;
      for (let round = 0; round < 5; round++) {
        const hasty = rawClient(server.url, "conns", "v3", { connection_id: id });
        hasty.socket.onopen = () => hasty.socket.close();
        await hasty.closed;
        while (true) {
          const next = rawClient(server.url, "conns", "v3", { connection_id: id });
          const outcome = await Promise.race([
            next.closed.then(() => "closed"),
            until(() => first(next, "InitialConnection") !== undefined, "reconnect").then(() =>
              "open"
            ),
          ]);
          if (outcome === "closed") {
            refused++;
            continue;
          }
          next.socket.close();
          await next.closed;
          break;
        }
      }
      console.log(`reconnects refused while the previous client_connected ran: ${refused}`);
      let kinds: string[] = [];
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        kinds = (await events(server.url, "conns")).filter(([, c]) => c === id).map(([k]) => k);
        const connects = kinds.filter((k) => k === "connect").length;
        if (connects >= 5 && connects === kinds.length - connects) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Lifecycle reducers for one id alternate: never two client_connected in a row.
      kinds.forEach((kind, i) => assertEquals(kind, i % 2 === 0 ? "connect" : "disconnect"));
      assert(kinds.length >= 10, kinds.join(","));
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name:
    "light=true changes nothing on v2/v3: the caller gets its ReducerResult deltas, others updates",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "conns", await fixtureBundle("connections"));
      await t.step("a light value other than true/false is a 400", async () => {
        const response = await fetch(`${server.url}/v1/database/conns/subscribe?light=yes`, {
          headers: { "sec-websocket-protocol": "v2.bsatn.spacetimedb" },
        });
        const text = await response.text();
        assertEquals(response.status, 400, text);
        assert(/Invalid light "yes"/.test(text), text);
      });

      for (const version of ["v2", "v3"] as const) {
        await t.step(`${version}: light and full clients get the same messages`, async () => {
          const shapes: string[][] = [];
          for (const light of ["true", "false"]) {
            const caller = rawClient(server.url, "conns", version, { light });
            const observer = rawClient(server.url, "conns", version, { light });
            for (const client of [caller, observer]) {
              await until(() => first(client, "InitialConnection") !== undefined, "connect");
              client.socket.send(encodeClientFrame([{
                tag: "Subscribe",
                requestId: 1,
                querySetId: 1,
                queryStrings: ["SELECT * FROM connection_event WHERE kind = 'ping'"],
              }]));
              await until(() => first(client, "SubscribeApplied") !== undefined, "subscribed");
            }
            callNote(caller, 2, "ping");
            await until(() => first(caller, "ReducerResult") !== undefined, "ReducerResult");
            await until(() => first(observer, "TransactionUpdate") !== undefined, "update");
            const result = first(caller, "ReducerResult")!.result;
            assert(result.tag === "Ok", JSON.stringify(result.tag));
            const callerRows = result.transactionUpdate.querySets.flatMap((set) =>
              set.tables.flatMap((table) =>
                table.rows.map((rows) =>
                  rows.tag === "PersistentTable"
                    ? `${table.tableName} +${rowCount(rows.inserts)}`
                    : ""
                )
              )
            );
            const observerRows = first(observer, "TransactionUpdate")!.querySets.flatMap((set) =>
              set.tables.flatMap((table) =>
                table.rows.map((rows) =>
                  rows.tag === "PersistentTable"
                    ? `${table.tableName} +${rowCount(rows.inserts)}`
                    : ""
                )
              )
            );
            assertEquals(callerRows, ["connection_event +1"], `light=${light}`);
            assertEquals(observerRows, ["connection_event +1"], `light=${light}`);
            assert(
              !caller.messages.some((m) => m.tag === "TransactionUpdate"),
              "the caller gets its deltas in ReducerResult only",
            );
            shapes.push([...caller.messages, ...observer.messages].map((m) => m.tag));
            for (const client of [caller, observer]) {
              client.socket.close();
              await client.closed;
            }
          }
          assertEquals(shapes[0], shapes[1]);
        });
      }
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "the official SDK with withLightMode(true): callers and others see every change",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const open: DbConnection[] = [];
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const connect = () =>
        new Promise<DbConnection>((resolve, reject) => {
          DbConnection.builder()
            .withUri(server.url.replace(/^http/, "ws"))
            .withDatabaseName("chat")
            .withLightMode(true)
            .onConnect((conn) => resolve(conn))
            .onConnectError((_ctx, error) => reject(error))
            .build();
        });
      const alice = await connect();
      const bob = await connect();
      open.push(alice, bob);
      for (const conn of [alice, bob]) {
        await new Promise<void>((resolve, reject) =>
          conn.subscriptionBuilder()
            .onApplied(() => resolve())
            .onError(() => reject(new Error("subscription error")))
            .subscribe(["SELECT * FROM message"])
        );
      }
      const seenByAlice: string[] = [];
      const seenByBob: string[] = [];
      alice.db.message.onInsert((_ctx, row) => seenByAlice.push(row.text));
      bob.db.message.onInsert((_ctx, row) => seenByBob.push(row.text));
      await alice.reducers.sendMessage({ text: "light one" });
      await bob.reducers.sendMessage({ text: "light two" });
      await until(() => seenByAlice.length === 2 && seenByBob.length === 2, "both messages");
      assertEquals(seenByAlice, ["light one", "light two"]);
      assertEquals(seenByBob, ["light one", "light two"]);
    } finally {
      for (const conn of open) {
        try {
          conn.disconnect();
        } catch { /* already closed */ }
      }
      await server.close();
    }
  },
});
