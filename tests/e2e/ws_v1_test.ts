/**
 * The v1 protocol (`v1.bsatn.spacetimedb`), which SpacetimeDB 2.x still serves: the official
 * 1.x SDK (spacetimedb@1.12.0) connects, subscribes, calls reducers and gets its callbacks;
 * a raw v1 client checks what the SDK does not exercise (SubscribeSingle, OneOffQuery,
 * NoSuccessNotify, the refused legacy Subscribe, v1.json refused at the upgrade).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/chat_v1/index.ts";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function connect(url: string): Promise<{ conn: DbConnection; identityHex: string }> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withModuleName("chat")
      .onConnect((conn, identity) => resolve({ conn, identityHex: identity.toHexString() }))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

Deno.test({
  name: "the 1.x SDK over v1.bsatn: connect, subscribe, reducer calls and callbacks",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const open: DbConnection[] = [];
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const alice = await connect(server.url);
      const bob = await connect(server.url);
      open.push(alice.conn, bob.conn);
      assert(alice.identityHex !== bob.identityHex);

      const handles: { unsubscribeThen(callback: () => void): void }[] = [];
      for (const { conn } of [alice, bob]) {
        await new Promise<void>((resolve, reject) => {
          handles.push(
            conn.subscriptionBuilder()
              .onApplied(() => resolve())
              .onError((ctx) => reject((ctx as { event?: unknown }).event ?? new Error("error")))
              .subscribe(["SELECT * FROM user", "SELECT * FROM message"]),
          );
        });
      }
      await until(() => alice.conn.db.user.count() === 2n, "both users in alice's cache");
      assert([...alice.conn.db.user.iter()].every((row) => row.online));

      const seenByAlice: string[] = [];
      const seenByBob: string[] = [];
      alice.conn.db.message.onInsert((_ctx, row) => seenByAlice.push(row.text));
      bob.conn.db.message.onInsert((_ctx, row) => seenByBob.push(row.text));
      const outcomes: string[] = [];
      alice.conn.reducers.onSendMessage((ctx, { text }) => {
        outcomes.push(`${text}: ${ctx.event.status.tag}`);
      });
      alice.conn.reducers.onSendThenFail((ctx, { text }) => {
        const status = ctx.event.status;
        outcomes.push(`${text}: ${status.tag}${status.tag === "Failed" ? ` ${status.value}` : ""}`);
      });

      alice.conn.reducers.sendMessage({ text: "hello from v1" });
      await until(() => seenByAlice.length === 1 && seenByBob.length === 1, "the message");
      assertEquals(seenByAlice, ["hello from v1"]);
      assertEquals(seenByBob, ["hello from v1"]);
      await until(() => outcomes.length === 1, "alice's reducer callback");
      assertEquals(outcomes, ["hello from v1: Committed"]);

      alice.conn.reducers.sendThenFail({ text: "ghost" });
      await until(() => outcomes.length === 2, "the failure callback");
      assert(/^ghost: Failed .*refusing "ghost"/.test(outcomes[1]), outcomes[1]);
      bob.conn.reducers.sendMessage({ text: "from bob" });
      await until(() => seenByAlice.length === 2, "bob's message at alice");
      assertEquals(seenByAlice, ["hello from v1", "from bob"]);
      assert(![...bob.conn.db.message.iter()].some((row) => row.text === "ghost"));

      const sender = [...alice.conn.db.message.iter()].find((row) => row.text === "from bob")!
        .sender.toHexString();
      assertEquals(sender, bob.identityHex);

      // Unsubscribing drops the rows from the cache (UnsubscribeMultiApplied carries deletes).
      await new Promise<void>((resolve) => handles[0].unsubscribeThen(() => resolve()));
      await until(() => alice.conn.db.message.count() === 0n, "alice's cache emptied");
      assertEquals(alice.conn.db.user.count(), 0n);
      assertEquals(bob.conn.db.message.count(), 2n);

      // The same query under two query ids: rows stay until both are unsubscribed, and
      // an update in between arrives once per subscription without confusing the cache.
      const carol = await connect(server.url);
      open.push(carol.conn);
      const twice: { unsubscribeThen(callback: () => void): void }[] = [];
      for (let i = 0; i < 2; i++) {
        await new Promise<void>((resolve, reject) => {
          twice.push(
            carol.conn.subscriptionBuilder()
              .onApplied(() => resolve())
              .onError(() => reject(new Error("subscription error")))
              .subscribe(["SELECT * FROM message"]),
          );
        });
      }
      assertEquals(carol.conn.db.message.count(), 2n);
      const carolInserts: string[] = [];
      carol.conn.db.message.onInsert((_ctx, row) => carolInserts.push(row.text));
      bob.conn.reducers.sendMessage({ text: "third" });
      await until(() => carol.conn.db.message.count() === 3n, "the third message at carol");
      assertEquals(carolInserts, ["third"]);
      await new Promise<void>((resolve) => twice[0].unsubscribeThen(() => resolve()));
      assertEquals(carol.conn.db.message.count(), 3n);
      await new Promise<void>((resolve) => twice[1].unsubscribeThen(() => resolve()));
      await until(() => carol.conn.db.message.count() === 0n, "carol's cache emptied");
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

// A tiny v1 client encoder written from the Rust definitions (client-api-messages v1.rs),
// independent of protocol/ws_v1.ts.
function u32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}
function str(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...u32(bytes.length), ...bytes];
}

interface RawV1 {
  socket: WebSocket;
  frames: Uint8Array[];
  closed: Promise<{ code: number; reason: string }>;
}

function rawV1(url: string, database: string): RawV1 {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/${database}/subscribe?compression=None`,
    ["v1.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  const frames: Uint8Array[] = [];
  socket.onmessage = (event) => frames.push(new Uint8Array(event.data as ArrayBuffer));
  socket.onerror = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
  return { socket, frames, closed };
}

/** The server message tag of a frame (after the compression byte). */
function tagOf(frame: Uint8Array): number {
  assertEquals(frame[0], 0, "uncompressed");
  return frame[1];
}

const TAG = {
  TransactionUpdate: 1,
  TransactionUpdateLight: 2,
  IdentityToken: 3,
  OneOffQueryResponse: 4,
  SubscribeApplied: 5,
  SubscriptionError: 7,
  SubscribeMultiApplied: 8,
};

Deno.test({
  name: "a raw v1 client: SubscribeSingle, OneOffQuery, NoSuccessNotify, legacy Subscribe refused",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const client = rawV1(server.url, "chat");
      await until(() => client.frames.length === 1, "IdentityToken");
      assertEquals(tagOf(client.frames[0]), TAG.IdentityToken);
      const next = async (tag: number, what: string) => {
        await until(() => client.frames.some((frame) => tagOf(frame) === tag), what);
        const at = client.frames.findIndex((frame) => tagOf(frame) === tag);
        return client.frames.splice(at, 1)[0];
      };

      await t.step("SubscribeSingle answers SubscribeApplied with the table's rows", async () => {
        // tag 3 SubscribeSingle { query, request_id, query_id }
        client.socket.send(
          new Uint8Array([3, ...str("SELECT * FROM user"), ...u32(11), ...u32(5)]),
        );
        const applied = await next(TAG.SubscribeApplied, "SubscribeApplied");
        const view = new DataView(applied.buffer);
        assertEquals(view.getUint32(2, true), 11, "request_id");
        assertEquals(view.getUint32(14, true), 5, "query_id");
        const tableId = view.getUint32(18, true);
        const nameLength = view.getUint32(22, true);
        assertEquals(new TextDecoder().decode(applied.subarray(26, 26 + nameLength)), "user");
        // TableUpdate repeats table id and name, then num_rows: this client is the one user.
        const at = 26 + nameLength;
        assertEquals(view.getUint32(at, true), tableId);
        assertEquals(view.getBigUint64(at + 8 + nameLength, true), 1n, "num_rows");
      });

      await t.step("OneOffQuery answers with its message id and rows", async () => {
        // tag 2 OneOffQuery { message_id: bytes, query_string }
        client.socket.send(
          new Uint8Array([2, ...u32(3), 7, 8, 9, ...str("SELECT * FROM message")]),
        );
        const response = await next(TAG.OneOffQueryResponse, "OneOffQueryResponse");
        assertEquals([...response.subarray(2, 9)], [...u32(3), 7, 8, 9]);
        assertEquals(response[9], 1, "error: None");
        client.socket.send(new Uint8Array([2, ...u32(1), 1, ...str("SELEKT")]));
        const failed = await next(TAG.OneOffQueryResponse, "the failed query");
        assertEquals(failed[7], 0, "error: Some");
      });

      await t.step("NoSuccessNotify: no TransactionUpdate for a committed call", async () => {
        const args = str("quiet");
        // tag 0 CallReducer { reducer, args: bytes, request_id, flags: 1 NoSuccessNotify }
        client.socket.send(
          new Uint8Array([0, ...str("send_message"), ...u32(args.length), ...args, ...u32(1), 1]),
        );
        // A full call after it: its TransactionUpdate proves the quiet one was answered first.
        const loud = str("loud");
        client.socket.send(
          new Uint8Array([0, ...str("send_message"), ...u32(loud.length), ...loud, ...u32(2), 0]),
        );
        const update = await next(TAG.TransactionUpdate, "the loud call's TransactionUpdate");
        assertEquals(update[2], 0, "status Committed");
        assert(
          new TextDecoder().decode(update).includes("send_message"),
          "reducer name in ReducerCallInfo",
        );
        assertEquals(
          client.frames.filter((frame) => tagOf(frame) === TAG.TransactionUpdate).length,
          0,
        );
      });

      await t.step("the legacy Subscribe is refused with a SubscriptionError", async () => {
        client.socket.send(new Uint8Array([1, ...u32(1), ...str("SELECT * FROM user"), ...u32(4)]));
        const error = await next(TAG.SubscriptionError, "SubscriptionError");
        assert(new TextDecoder().decode(error).includes("legacy Subscribe"));
      });
      client.socket.close();
      await client.closed;

      await t.step("v1.json is refused at the upgrade with 400", async () => {
        const response = await fetch(`${server.url}/v1/database/chat/subscribe`, {
          headers: { upgrade: "websocket", "sec-websocket-protocol": "v1.json.spacetimedb" },
        });
        const text = await response.text();
        assertEquals(response.status, 400, text);
        assert(text.includes("v1.json.spacetimedb: not supported"), text);
      });
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a raw v1 client: a view's table id is its own, stable and the one st_view lists",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const { token } = await publish(server.url, "views", await fixtureBundle("views_rls"));
      const stView = await fetch(`${server.url}/v1/database/views/sql`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: "SELECT view_name, table_id FROM st_view",
      });
      // table_id is an Option<u32>: SATS-JSON `[0, id]` for Some.
      const [result] = await stView.json() as { rows: [string, [number, number]][] }[];
      // SpacetimeDB creates views' tables after the module's 8 tables, by view name.
      const listed = new Map(result.rows.map(([name, [tag, id]]) => [name, tag === 0 ? id : -1]));
      assertEquals(
        [...listed].sort(([a], [b]) => a < b ? -1 : 1),
        [["adults", 4104], ["first_person", 4105], ["fragile", 4106], ["me", 4107], [
          "pet_count",
          4108,
        ]],
      );

      const client = rawV1(server.url, "views");
      await until(() => client.frames.length === 1, "IdentityToken");
      const applied = async (queryId: number, sql: string) => {
        client.socket.send(new Uint8Array([3, ...str(sql), ...u32(queryId), ...u32(queryId)]));
        await until(
          () =>
            client.frames.some((frame) =>
              tagOf(frame) === TAG.SubscribeApplied &&
              new DataView(frame.buffer).getUint32(14, true) === queryId
            ),
          `SubscribeApplied for ${sql}`,
        );
        const frame = client.frames.find((f) =>
          tagOf(f) === TAG.SubscribeApplied &&
          new DataView(f.buffer).getUint32(14, true) === queryId
        )!;
        const view = new DataView(frame.buffer);
        const nameLength = view.getUint32(22, true);
        return {
          tableId: view.getUint32(18, true),
          name: new TextDecoder().decode(frame.subarray(26, 26 + nameLength)),
        };
      };
      assertEquals(await applied(1, "SELECT * FROM pet_count"), {
        tableId: listed.get("pet_count"),
        name: "pet_count",
      });
      assertEquals(await applied(2, "SELECT * FROM me"), { tableId: 4107, name: "me" });
      // A table keeps its own id, below the views'.
      assertEquals(await applied(3, "SELECT * FROM person"), { tableId: 4100, name: "person" });
      client.socket.close();
      await client.closed;
    } finally {
      await server.close();
    }
  },
});
