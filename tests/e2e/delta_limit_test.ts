/**
 * A subscription whose delta fans out is dropped, not built: an anonymous client subscribes a
 * self-join on a non-unique column over an empty table, then one insert of 4,000 equal rows would
 * make 16M delta rows (the database process ran out of memory before SUBSCRIPTION_DELTA_ROWS_MAX).
 * The writer's call commits, the join's query set gets a SubscriptionError without request id,
 * the client's other set and other clients get the rows, and the module log counts the drop.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { SUBSCRIPTION_DELTA_ROWS_MAX } from "../../lib/limits.ts";
import { decodeServerFrame, encodeClientFrame, type ServerMessage } from "../../protocol/mod.ts";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  stringifyWithBigInts,
} from "../support/server.ts";

interface RawClient {
  socket: WebSocket;
  messages: ServerMessage[];
  opened: Promise<void>;
}

function rawClient(url: string, path: string): RawClient {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}${path}`, ["v3.bsatn.spacetimedb"]);
  socket.binaryType = "arraybuffer";
  const messages: ServerMessage[] = [];
  socket.onmessage = async (event) => {
    if (event.data instanceof ArrayBuffer) {
      messages.push(...await decodeServerFrame(new Uint8Array(event.data), "v3"));
    }
  };
  const opened = new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("websocket error"));
  });
  opened.catch(() => {});
  return { socket, messages, opened };
}

async function until(predicate: () => boolean, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function subscribe(client: RawClient, querySetId: number, query: string) {
  client.socket.send(encodeClientFrame([{
    tag: "Subscribe",
    requestId: querySetId,
    querySetId,
    queryStrings: [query],
  }]));
}

/** Rows inserted for `querySetId` over every TransactionUpdate the client got. */
function insertedRows(client: RawClient, querySetId: number): number {
  let count = 0;
  for (const message of client.messages) {
    if (message.tag !== "TransactionUpdate") continue;
    for (const set of message.querySets) {
      if (set.querySetId !== querySetId) continue;
      for (const table of set.tables) {
        for (const rows of table.rows) {
          if (rows.tag === "PersistentTable") count += (rows.inserts as Uint8Array[]).length;
        }
      }
    }
  }
  return count;
}

Deno.test({
  name: "a join subscription whose delta fans out is dropped with a SubscriptionError",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ databaseMemoryMb: 256 });
    try {
      const owner = await publish(server.url, "rt-delta", await fixtureBundle("redteam"));
      const path = "/v1/database/rt-delta/subscribe";
      const attacker = rawClient(server.url, path);
      const bystander = rawClient(server.url, path);
      await Promise.all([attacker.opened, bystander.opened]);
      subscribe(attacker, 1, "SELECT a.* FROM item a JOIN item b ON a.grp = b.grp");
      subscribe(attacker, 2, "SELECT * FROM item");
      subscribe(bystander, 1, "SELECT * FROM item");
      await until(
        () =>
          attacker.messages.filter((m) => m.tag === "SubscribeApplied").length === 2 &&
          bystander.messages.some((m) => m.tag === "SubscribeApplied"),
        "the subscriptions",
      );

      // Every row has grp 0: 4,000² = 16M joined rows, far over SUBSCRIPTION_DELTA_ROWS_MAX.
      const filled = await call(server.url, "rt-delta", "fill", [4_000], owner.token);
      assertEquals(filled.status, 200, filled.text);
      await until(
        () => insertedRows(attacker, 2) === 4_000 && insertedRows(bystander, 1) === 4_000,
        "the other subscriptions' rows",
      );
      const errors = attacker.messages.filter((m) => m.tag === "SubscriptionError");
      assertEquals(errors.length, 1, stringifyWithBigInts(attacker.messages.map((m) => m.tag)));
      const [error] = errors;
      assert(error.tag === "SubscriptionError");
      assertEquals(error.requestId, undefined);
      assertEquals(error.querySetId, 1);
      assertMatch(error.error, new RegExp(`exceeded ${SUBSCRIPTION_DELTA_ROWS_MAX} rows`));
      // The error comes before the transaction's update.
      const errorAt = attacker.messages.indexOf(error);
      assert(errorAt < attacker.messages.findIndex((m) => m.tag === "TransactionUpdate"));
      assertEquals(insertedRows(attacker, 1), 0);

      // The dropped set hears nothing more; the rest go on.
      const more = await call(server.url, "rt-delta", "fill", [1], owner.token);
      assertEquals(more.status, 200, more.text);
      await until(
        () => insertedRows(attacker, 2) === 4_001 && insertedRows(bystander, 1) === 4_001,
        "the next update",
      );
      assertEquals(insertedRows(attacker, 1), 0);
      const logs = await fetch(`${server.url}/v1/database/rt-delta/logs?num_lines=100`, {
        headers: { authorization: `Bearer ${owner.token}` },
      });
      const text = await logs.text();
      assertEquals(logs.status, 200, text);
      assertMatch(text, /Subscription dropped \(1 since start\)/);
      attacker.socket.close();
      bystander.socket.close();
    } finally {
      await server.close();
    }
  },
});
