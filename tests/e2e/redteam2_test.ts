/**
 * Attack suite, part 2 (WebSocket protocols, subscriptions, /sql): an anonymous client against a
 * server whose second database must keep answering. Each case was red before its fix.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { decodeServerFrame, encodeClientFrame, type ServerMessage } from "../../protocol/mod.ts";
import {
  WS_CONNECTIONS_PER_SOURCE_MAX,
  WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX,
} from "../../lib/limits.ts";
import {
  call,
  fixtureBundle,
  publish,
  startServerProcess,
  startTestServer,
} from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";

interface RawClient {
  socket: WebSocket;
  messages: ServerMessage[];
  closed: Promise<CloseEvent>;
}

/** A v3 client asking for gzip (the server's --ws-compression): big frames stay small on the wire. */
async function gzipClient(url: string, database: string): Promise<RawClient> {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/${database}/subscribe?compression=Gzip`,
    ["v3.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  const messages: ServerMessage[] = [];
  let decoding = Promise.resolve();
  socket.onmessage = (event) => {
    const frame = new Uint8Array(event.data as ArrayBuffer);
    decoding = decoding.then(async () => {
      messages.push(...await decodeServerFrame(frame, "v3"));
    });
  };
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("websocket error"));
  });
  return { socket, messages, closed };
}

async function countItems(
  url: string,
  database: string,
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: "SELECT COUNT(*) AS n FROM item",
  });
  return { status: response.status, text: await response.text() };
}

const RESULT_LIMIT = /QUERY_RESULT_BYTES_PER_REPLY_MAX/;

Deno.test({
  name: "one frame of subscriptions and one-off queries over a big public table does not crash " +
    "the database: results past the reply's bound are refused",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ wsCompression: true });
    try {
      const bundle = await fixtureBundle("redteam");
      const owner = await publish(server.url, "rt2-initial", bundle);
      await publish(server.url, "rt2-bystander", bundle);
      // 40 MB of public rows (4 MB a call).
      for (let i = 0; i < 10; i++) {
        const filled = await call(server.url, "rt2-initial", "blobs", [40, 100_000], owner.token);
        assertEquals(filled.status, 200, filled.text);
      }
      const client = await gzipClient(server.url, "rt2-initial");
      const count = 16; // 16 x 40 MB of initial rows, more than the process's 512 MiB
      const requests = [];
      for (let i = 0; i < count; i++) {
        requests.push({
          tag: "Subscribe" as const,
          requestId: i,
          querySetId: i + 1,
          queryStrings: [`SELECT * FROM blob WHERE id != ${1_000_000 + i}`],
        });
        requests.push({
          tag: "OneOffQuery" as const,
          requestId: 100 + i,
          queryString: "SELECT * FROM blob",
        });
      }
      client.socket.send(encodeClientFrame(requests));
      const answered = () =>
        client.messages.filter((m) =>
          m.tag === "SubscribeApplied" || m.tag === "SubscriptionError" ||
          m.tag === "OneOffQueryResult"
        ).length;
      await waitUntil(() => answered() === 2 * count, "every request answered");
      const applied = client.messages.filter((m) => m.tag === "SubscribeApplied").length;
      const refused = client.messages.filter((m) => m.tag === "SubscriptionError");
      const oneOffErrors = client.messages.filter((m) =>
        m.tag === "OneOffQueryResult" && m.result.tag === "Err"
      );
      console.log(
        `applied ${applied}, refused ${refused.length}, one-offs refused ${oneOffErrors.length}`,
      );
      assert(applied >= 1, "the first subscription is answered whole");
      assert(refused.length >= 1);
      for (const message of refused) {
        assert(message.tag === "SubscriptionError");
        assertMatch(message.error, RESULT_LIMIT);
      }
      assert(oneOffErrors.length >= 1);
      // The same queries as one query set: refused as a whole, not answered whole.
      client.socket.send(encodeClientFrame([{
        tag: "Subscribe",
        requestId: 1_000,
        querySetId: 1_000,
        queryStrings: requests.flatMap((r) => r.tag === "Subscribe" ? r.queryStrings : []),
      }]));
      await waitUntil(() => answered() === 2 * count + 1, "the one big set answered");
      const setAnswer = client.messages.find((m) =>
        (m.tag === "SubscribeApplied" || m.tag === "SubscriptionError") && m.requestId === 1_000
      );
      assert(setAnswer?.tag === "SubscriptionError", setAnswer?.tag);
      assertMatch(setAnswer.error, RESULT_LIMIT);
      const victim = await countItems(server.url, "rt2-initial");
      assertEquals(victim.status, 200, victim.text);
      const bystander = await countItems(server.url, "rt2-bystander");
      assertEquals(bystander.status, 200, bystander.text);
      assertEquals(client.socket.readyState, WebSocket.OPEN);
      client.socket.close();
      await client.closed;
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "200 distinct subscriptions touched by one 4 MB write do not crash the database: the " +
    "newest live queries are dropped past the reply's bound, the write stands",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ wsCompression: true });
    try {
      const bundle = await fixtureBundle("redteam");
      const owner = await publish(server.url, "rt2-delta", bundle);
      await publish(server.url, "rt2-bystander", bundle);
      const client = await gzipClient(server.url, "rt2-delta");
      const count = 200; // 200 x 4 MB of deltas, more than the process's 512 MiB
      const requests = [];
      for (let i = 0; i < count; i++) {
        requests.push({
          tag: "Subscribe" as const,
          requestId: i,
          querySetId: i + 1,
          queryStrings: [`SELECT * FROM blob WHERE id != ${1_000_000 + i}`],
        });
      }
      client.socket.send(encodeClientFrame(requests));
      await waitUntil(
        () => client.messages.filter((m) => m.tag === "SubscribeApplied").length === count,
        "every subscription applied",
      );
      const written = await call(server.url, "rt2-delta", "blobs", [40, 100_000], owner.token);
      assertEquals(written.status, 200, written.text);
      await waitUntil(
        () =>
          client.messages.some((m) => m.tag === "TransactionUpdate") &&
          client.messages.some((m) => m.tag === "SubscriptionError"),
        "the update and the drops",
      );
      const dropped = client.messages.filter((m) => m.tag === "SubscriptionError");
      console.log(`${dropped.length} of ${count} query sets dropped`);
      for (const message of dropped) {
        assert(message.tag === "SubscriptionError");
        assertMatch(message.error, RESULT_LIMIT);
      }
      assert(dropped.length < count, "the oldest live queries keep their updates");
      const victim = await countItems(server.url, "rt2-delta");
      assertEquals(victim.status, 200, victim.text);
      const bystander = await countItems(server.url, "rt2-bystander");
      assertEquals(bystander.status, 200, bystander.text);
      client.socket.close();
      await client.closed;
    } finally {
      await server.close();
    }
  },
});

/** Opens a raw TCP connection and asks for a v3 WebSocket upgrade; resolves with the status. */
async function rawUpgrade(url: string, path: string): Promise<{ conn: Deno.Conn; status: number }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await conn.write(new TextEncoder().encode(
    `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: v3.bsatn.spacetimedb\r\n\r\n`,
  ));
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\r\n")) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return { conn, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0) };
}

Deno.test({
  name: "one address cannot hold more than WS_CONNECTIONS_PER_SOURCE_MAX WebSocket connections; " +
    "closed ones give their place back",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const conns: Deno.Conn[] = [];
    try {
      const bundle = await fixtureBundle("redteam");
      await publish(server.url, "rt2-conns", bundle);
      await publish(server.url, "rt2-bystander", bundle);
      const path = "/v1/database/rt2-conns/subscribe";
      for (let i = 0; i < WS_CONNECTIONS_PER_SOURCE_MAX; i += 100) {
        const batch = await Promise.all(
          Array.from(
            { length: Math.min(100, WS_CONNECTIONS_PER_SOURCE_MAX - i) },
            () => rawUpgrade(server.url, path),
          ),
        );
        for (const { conn, status } of batch) {
          conns.push(conn);
          assertEquals(status, 101);
        }
      }
      const refused = await rawUpgrade(server.url, path);
      refused.conn.close();
      assertEquals(refused.status, 503, "one connection over the per-address limit");
      const bystander = await countItems(server.url, "rt2-bystander");
      assertEquals(bystander.status, 200, bystander.text);
      // Dropped without a close frame: their places come back once the server sees them go.
      for (const conn of conns.splice(0, 10)) conn.close();
      let again: { conn: Deno.Conn; status: number } | undefined;
      await waitUntil(
        async () => {
          again?.conn.close();
          again = await rawUpgrade(server.url, path);
          return again.status === 101;
        },
        "a place given back",
        { pollMs: 200 },
      );
      again?.conn.close();
    } finally {
      for (const conn of conns) conn.close();
      await server.close();
    }
  },
});

Deno.test({
  name: "one frame of 700 distinct long subscriptions does not crash the database: new live " +
    "queries past the database's bound are refused, shared ones are not",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const bundle = await fixtureBundle("redteam");
      const owner = await publish(server.url, "rt2-live", bundle);
      await publish(server.url, "rt2-bystander", bundle);
      const filled = await call(server.url, "rt2-live", "fill", [1_000], owner.token);
      assertEquals(filled.status, 200, filled.text);
      // A 901-term OR chain (~10 KB; a 301-term one held ~266 KB in the database process), 700
      // of them: under the hub's text bound for one address, over the database's.
      const terms = Array.from({ length: 900 }, (_, i) => `n = ${i}`).join(" OR ");
      const queryText = (k: number) => `SELECT * FROM item WHERE ${terms} OR n = ${5_000 + k}`;
      const count = 700;
      const attacker = await gzipClient(server.url, "rt2-live");
      attacker.socket.send(encodeClientFrame(
        Array.from({ length: count }, (_, i) => ({
          tag: "Subscribe" as const,
          requestId: i,
          querySetId: i + 1,
          queryStrings: [queryText(i)],
        })),
      ));
      const answered = () =>
        attacker.messages.filter((m) =>
          m.tag === "SubscribeApplied" || m.tag === "SubscriptionError"
        )
          .length;
      await waitUntil(() => answered() === count, "every subscription answered");
      const refused = attacker.messages.filter((m) => m.tag === "SubscriptionError");
      console.log(`${count - refused.length} applied, ${refused.length} refused`);
      assert(refused.length > 0 && refused.length < count);
      for (const message of refused) {
        assert(message.tag === "SubscriptionError");
        assertMatch(message.error, /SUBSCRIPTION_LIVE_QUERY_TEXT_CHARS_MAX/);
      }
      // Another client subscribing to a query already live shares it.
      const other = await gzipClient(server.url, "rt2-live");
      other.socket.send(encodeClientFrame([{
        tag: "Subscribe",
        requestId: 1,
        querySetId: 1,
        queryStrings: [queryText(0)],
      }]));
      await waitUntil(
        () =>
          other.messages.some((m) => m.tag === "SubscribeApplied" || m.tag === "SubscriptionError"),
        "the shared subscription answered",
      );
      assert(other.messages.some((m) => m.tag === "SubscribeApplied"));
      const victim = await countItems(server.url, "rt2-live");
      assertEquals(victim.status, 200, victim.text);
      const bystander = await countItems(server.url, "rt2-bystander");
      assertEquals(bystander.status, 200, bystander.text);
      for (const client of [attacker, other]) {
        client.socket.close();
        await client.closed;
      }
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "the query texts one address keeps subscribed on the main thread are bounded; " +
    "unsubscribing gives the room back",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const bundle = await fixtureBundle("redteam");
      await publish(server.url, "rt2-text", bundle);
      await publish(server.url, "rt2-bystander", bundle);
      // Texts differing only in spacing share one live query in the database; the hub kept each.
      const padded = "SELECT * FROM item WHERE n =" + " ".repeat(60_000) + "1";
      const client = await gzipClient(server.url, "rt2-text");
      const count = 512;
      for (let frame = 0; frame < 2; frame++) {
        client.socket.send(encodeClientFrame(
          Array.from({ length: count / 2 }, (_, i) => ({
            tag: "Subscribe" as const,
            requestId: frame * 1000 + i,
            querySetId: frame * 1000 + i + 1,
            queryStrings: [padded],
          })),
        ));
      }
      const answers = () =>
        client.messages.filter((m) =>
          m.tag === "SubscribeApplied" || m.tag === "SubscriptionError"
        );
      await waitUntil(() => answers().length === count, "every subscription answered");
      const applied = client.messages.filter((m) => m.tag === "SubscribeApplied");
      const refused = client.messages.filter((m) => m.tag === "SubscriptionError");
      console.log(`${applied.length} applied, ${refused.length} refused`);
      assert(refused.length > 0, "some subscriptions were refused");
      assert(applied.length * padded.length <= WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX);
      for (const message of refused) {
        assert(message.tag === "SubscriptionError");
        assertMatch(message.error, /WS_QUERY_TEXT_CHARS_PER_SOURCE_MAX/);
      }
      // Unsubscribing one set makes room for one more.
      const first = applied[0];
      assert(first.tag === "SubscribeApplied");
      client.socket.send(encodeClientFrame([{
        tag: "Unsubscribe",
        requestId: 9_000,
        querySetId: first.querySetId,
        flags: "Default",
      }]));
      await waitUntil(
        () => client.messages.some((m) => m.tag === "UnsubscribeApplied"),
        "the unsubscribe",
      );
      client.socket.send(encodeClientFrame([{
        tag: "Subscribe",
        requestId: 9_001,
        querySetId: 9_001,
        queryStrings: [padded],
      }]));
      await waitUntil(
        () => answers().some((m) => m.requestId === 9_001),
        "the subscription after the unsubscribe",
      );
      assert(answers().some((m) => m.tag === "SubscribeApplied" && m.requestId === 9_001));
      const bystander = await countItems(server.url, "rt2-bystander");
      assertEquals(bystander.status, 200, bystander.text);
      client.socket.close();
      await client.closed;
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "--ws-connections-per-address sets the per-address WebSocket bound",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startServerProcess({ args: ["--ws-connections-per-address", "3"] });
    const conns: Deno.Conn[] = [];
    try {
      await publish(server.url, "rt2-flag", await fixtureBundle("redteam"));
      const path = "/v1/database/rt2-flag/subscribe";
      for (let i = 0; i < 3; i++) {
        const { conn, status } = await rawUpgrade(server.url, path);
        conns.push(conn);
        assertEquals(status, 101);
      }
      const refused = await rawUpgrade(server.url, path);
      refused.conn.close();
      assertEquals(refused.status, 503, "the fourth connection from one address");
    } finally {
      for (const conn of conns) conn.close();
      await server.stop("SIGKILL");
    }
  },
});

Deno.test({
  name: "upgrades whose peer leaves at once do not stay counted as WebSocket clients",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // Its own process, stopped with SIGKILL: after such upgrades Deno.serve's graceful shutdown
    // did not finish (seen before and after the fix; reported, not fixed here).
    const server = await startServerProcess();
    try {
      await publish(server.url, "rt2-abandon", await fixtureBundle("redteam"));
      const { hostname, port } = new URL(server.url);
      const request = new TextEncoder().encode(
        `GET /v1/database/rt2-abandon/subscribe HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
          `Upgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: v3.bsatn.spacetimedb\r\n\r\n`,
      );
      // Send the upgrade and go: most of these fired neither open nor close in the hub.
      for (let i = 0; i < 300; i += 50) {
        await Promise.all(Array.from({ length: 50 }, async () => {
          const conn = await Deno.connect({ hostname, port: Number(port) });
          await conn.write(request);
          conn.close();
        }));
      }
      const clients = async () => {
        const text = await (await fetch(`${server.url}/v1/metrics`)).text();
        const line = text.split("\n").find((l) =>
          l.startsWith('lightcone_websocket_clients{database="rt2-abandon"}')
        );
        return Number(line?.split(" ")[1] ?? 0);
      };
      console.log(`${await clients()} clients counted right after`);
      await waitUntil(async () => await clients() === 0, "no client left counted", {
        pollMs: 500,
      });
    } finally {
      await server.stop("SIGKILL");
      await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
    }
  },
});
