/**
 * Attacks on the surfaces added last (procedures' HTTP handlers, views, /sql, hibernation) by a
 * hostile module author or an anonymous client; each was red before its fix.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { HIBERNATION_CONCURRENCY_MAX } from "../../lib/limits.ts";
import { decodeServerFrame, encodeClientFrame, type ServerMessage } from "../../protocol/mod.ts";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  stringifyWithBigInts,
} from "../support/server.ts";

const BUDGET_MS = 500;

async function sql(url: string, database: string, query: string, token?: string) {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: query,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "an anonymous /sql cross join that filters everything out is stopped at the time budget",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ reducerBudgetMs: BUDGET_MS });
    try {
      const owner = await publish(server.url, "rt-sql", await fixtureBundle("redteam"));
      // 40,000 rows in calls of 1,000: each far inside the 500 ms budget on a loaded machine.
      for (let i = 0; i < 40; i++) {
        const filled = await call(server.url, "rt-sql", "fill", [1_000], owner.token);
        assertEquals(filled.status, 200, filled.text);
      }
      // 40k × 40k = 1.6e9 pairs, none kept: the join-row bound never trips.
      const started = performance.now();
      const cross = await sql(
        server.url,
        "rt-sql",
        "SELECT a.* FROM item a JOIN item b WHERE b.n = 4000000000",
      );
      const elapsedMs = Math.round(performance.now() - started);
      console.log(`cross join answered ${cross.status} after ${elapsedMs} ms`);
      assertEquals(cross.status, 400, cross.text);
      assertMatch(cross.text, /time budget of 500 ms/);
      // The database still answers, and the owner (its own, larger budget) counts the rows.
      const count = await sql(server.url, "rt-sql", "SELECT COUNT(*) AS n FROM item");
      assertEquals(count.status, 200, count.text);
      assertMatch(count.text, /40000/);
    } finally {
      await server.close();
    }
  },
});

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

async function until(predicate: () => boolean, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test({
  name: "anonymous WebSocket queries whose joins explode are refused, and the database answers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer({ reducerBudgetMs: BUDGET_MS });
    try {
      const owner = await publish(server.url, "rt-ws", await fixtureBundle("redteam"));
      // 40,000 rows in calls of 1,000: each far inside the 500 ms budget on a loaded machine.
      for (let i = 0; i < 40; i++) {
        const filled = await call(server.url, "rt-ws", "fill", [1_000], owner.token);
        assertEquals(filled.status, 200, filled.text);
      }
      const client = rawClient(server.url, "/v1/database/rt-ws/subscribe");
      await client.opened;

      await t.step("a one-off cross join that keeps nothing stops at the time budget", async () => {
        const started = performance.now();
        client.socket.send(encodeClientFrame([{
          tag: "OneOffQuery",
          requestId: 1,
          queryString: "SELECT a.* FROM item a JOIN item b WHERE a.n < b.n AND b.n < a.n",
        }]));
        await until(
          () => client.messages.some((m) => m.tag === "OneOffQueryResult"),
          "the one-off result",
          300_000,
        );
        console.log(`one-off answered after ${Math.round(performance.now() - started)} ms`);
        const result = client.messages.find((m) => m.tag === "OneOffQueryResult");
        assert(
          result?.tag === "OneOffQueryResult" && result.result.tag === "Err",
          stringifyWithBigInts(result),
        );
        assertMatch(String(result.result.value), /time budget of 500 ms/);
      });

      await t.step("a one-off join that fans out to 1.6e9 rows is refused", async () => {
        client.socket.send(encodeClientFrame([{
          tag: "OneOffQuery",
          requestId: 2,
          queryString: "SELECT a.* FROM item a JOIN item b ON a.grp = b.grp",
        }]));
        await until(
          () => client.messages.filter((m) => m.tag === "OneOffQueryResult").length === 2,
          "the second one-off result",
          300_000,
        );
        const result = client.messages.filter((m) => m.tag === "OneOffQueryResult")[1];
        assert(
          result?.tag === "OneOffQueryResult" && result.result.tag === "Err",
          stringifyWithBigInts(result),
        );
        assertMatch(String(result.result.value), /more than \d+ rows|time budget/);
      });

      await t.step("a subscription join that fans out is refused, not built", async () => {
        client.socket.send(encodeClientFrame([{
          tag: "Subscribe",
          requestId: 3,
          querySetId: 3,
          queryStrings: ["SELECT a.* FROM item a JOIN item b ON a.grp = b.grp"],
        }]));
        await until(
          () => client.messages.some((m) => m.tag === "SubscriptionError"),
          "the subscription error",
          300_000,
        );
      });

      const count = await sql(server.url, "rt-ws", "SELECT COUNT(*) AS n FROM item");
      assertEquals(count.status, 200, count.text);
      assertMatch(count.text, /40000/);
      client.socket.close();
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "HTTP handlers: a bad status fails that request only; a database named route serves them",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "route", await fixtureBundle("redteam"));
      const get = async (path: string) => {
        const response = await fetch(`${server.url}/v1/database/route/route${path}`);
        return { status: response.status, text: await response.text() };
      };

      await t.step("the handler path is what follows the /route segment", async () => {
        const hello = await get("/hello?x=1");
        assertEquals(hello, { status: 200, text: "hello /v1/database/route/route/hello?x=1" });
      });

      await t.step("a response body over the limit is a 500, not held by the server", async () => {
        const big = await get("/big");
        assertEquals(big.status, 500, big.text.slice(0, 200));
        assertMatch(big.text, /over the limit of 16777216 bytes/);
        const header = await get("/big-header");
        assertEquals(header.status, 500, header.text.slice(0, 200));
        assertMatch(header.text, /\(body and headers\) is over the limit of 16777216 bytes/);
        assertEquals((await get("/hello")).status, 200);
      });

      await t.step("a status outside 200..599 is a 500 for that request", async () => {
        const odd = await get("/status");
        assertEquals(odd.status, 500, odd.text);
        assertMatch(odd.text, /status 1000/);
        // The database keeps serving.
        assertEquals((await get("/hello")).status, 200);
        const count = await sql(server.url, "route", "SELECT COUNT(*) AS n FROM item");
        assertEquals(count.status, 200, count.text);
      });
    } finally {
      await server.close();
    }
  },
});

/** A WebSocket client on a raw TCP connection, so that it can stop reading. */
async function neverReadingClient(url: string, path: string, frames: Uint8Array[]) {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const request = `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Protocol: v3.bsatn.spacetimedb\r\n\r\n`;
  await conn.write(new TextEncoder().encode(request));
  const head = new Uint8Array(4096);
  const n = await conn.read(head);
  assertMatch(new TextDecoder().decode(head.subarray(0, n ?? 0)), /^HTTP\/1\.1 101/);
  for (const payload of frames) {
    // A masked binary frame (mask key 0: XOR changes nothing).
    const header = payload.length < 126
      ? [0x82, 0x80 | payload.length]
      : [0x82, 0x80 | 126, payload.length >> 8, payload.length & 255];
    const frame = new Uint8Array(header.length + 4 + payload.length);
    frame.set(header);
    frame.set(payload, header.length + 4);
    await conn.write(frame);
  }
  return conn;
}

Deno.test({
  name: "a subscriber that never reads is closed once its outbound buffer is over the limit",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const owner = await publish(server.url, "rt-slow", await fixtureBundle("redteam"));
      const conn = await neverReadingClient(server.url, "/v1/database/rt-slow/subscribe", [
        encodeClientFrame([{
          tag: "Subscribe",
          requestId: 1,
          querySetId: 1,
          queryStrings: ["SELECT * FROM blob"],
        }]),
      ]);
      // 24 commits of 4 MiB each: far more than the kernel's socket buffers plus the 64 MiB bound.
      for (let i = 0; i < 24; i++) {
        const inserted = await call(server.url, "rt-slow", "blobs", [40, 100_000], owner.token);
        assertEquals(inserted.status, 200, inserted.text);
      }
      const rss = Deno.memoryUsage().rss;
      // Now read what the server sent: it must end with a close frame naming the reason.
      let total = 0;
      let tail = new Uint8Array();
      const buffer = new Uint8Array(1 << 20);
      const readDeadline = Date.now() + 60_000;
      for (;;) {
        const n = await conn.read(buffer).catch(() => null);
        if (n === null || Date.now() > readDeadline) break;
        total += n;
        const next = new Uint8Array(Math.min(4096, tail.length + n));
        const joined = new Uint8Array(tail.length + n);
        joined.set(tail);
        joined.set(buffer.subarray(0, n), tail.length);
        next.set(joined.subarray(joined.length - next.length));
        tail = next;
        if (new TextDecoder().decode(tail).includes("too slow")) break;
      }
      conn.close();
      console.log(`read ${total} bytes before the close; server RSS ${rss >> 20} MiB`);
      assertMatch(new TextDecoder().decode(tail), /Client is too slow/);
      assert(total < 200 * 1024 * 1024, `${total} bytes were queued for a client that never read`);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a storm of anonymous requests to many hibernated databases wakes a few at a time",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ hibernateAfterS: 0.5 });
    try {
      const names = Array.from({ length: 3 * HIBERNATION_CONCURRENCY_MAX }, (_, i) => `storm-${i}`);
      const bundle = await fixtureBundle("redteam");
      for (const name of names) await publish(server.url, name, bundle);
      const registry = server.server.registry;
      const deadline = Date.now() + 60_000;
      while (!names.every((name) => registry.resolve(name)?.hibernation === "hibernated")) {
        if (Date.now() > deadline) throw new Error("the databases did not all hibernate");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      let most = 0;
      const sampler = setInterval(() => most = Math.max(most, registry.wakesRunning), 1);
      const answers = await Promise.all(
        names.map((name) => sql(server.url, name, "SELECT COUNT(*) AS n FROM item")),
      );
      clearInterval(sampler);
      console.log(`at most ${most} wakes ran at once for ${names.length} databases`);
      for (const answer of answers) assertEquals(answer.status, 200, answer.text);
      assert(most >= 1, "no wake was seen");
      assert(most <= HIBERNATION_CONCURRENCY_MAX, `${most} wakes ran at once`);
    } finally {
      await server.close();
    }
  },
});
