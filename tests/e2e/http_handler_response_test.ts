/**
 * Large HTTP handler answers and clients that never read them (server/response_budget.ts): 40
 * anonymous raw GETs of a 15 MiB answer that never read made the database process produce them
 * all, until it crashed out of memory. Now a database has at most
 * HTTP_HANDLER_RESPONSE_BYTES_PER_DATABASE_MAX of answers in flight; more calls wait, then get
 * a 503 naming the bound, the process stays up, and the room comes back when the readers go.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";

const BIG_BYTES = 15 << 20;

async function restarts(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`lightcone_database_restarts_total{database="${name}"}`)
  );
  assert(line !== undefined, "the restarts counter of the database is in /v1/metrics");
  return Number(line.split(" ").at(-1));
}

Deno.test({
  name: "HTTP handler answers up to the limit are served and the database stays up",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // Deno's receiveMessageOnPort walked each byte of the answer on its way from the procedure
    // thread: a 12 MiB answer ran a fresh database process (512 MiB budget) out of memory.
    const server = await startTestServer();
    try {
      await publish(server.url, "rt", await fixtureBundle("redteam"));
      for (const bytes of [BIG_BYTES, (16 << 20) - 4096]) {
        const response = await fetch(`${server.url}/v1/database/rt/route/sized?n=${bytes}`);
        const body = new Uint8Array(await response.arrayBuffer());
        assertEquals([response.status, body.length, body[bytes - 1]], [200, bytes, 120]);
      }
      assertEquals(await restarts(server.url, "rt"), 0);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "clients that never read large HTTP handler answers get 503s, not a crashed database",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const conns: Deno.Conn[] = [];
    try {
      await publish(server.url, "rt", await fixtureBundle("redteam"));
      const base = `${server.url}/v1/database/rt/route`;
      const port = Number(new URL(server.url).port);
      const request = new TextEncoder().encode(
        "GET /v1/database/rt/route/big15 HTTP/1.1\r\nHost: x\r\n\r\n",
      );
      for (let i = 0; i < 40; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(request);
        conns.push(conn);
      }
      // Once the answers the readers leave unread fill the database's share, calls are refused.
      let refusal = "";
      await waitUntil(async () => {
        const response = await fetch(`${base}/hello`);
        const text = await response.text();
        if (response.status === 503) refusal = text;
        else assertEquals([response.status, text], [200, "hello /hello"]);
        return response.status === 503;
      }, "a handler call refused while unread answers fill the database's share");
      assert(
        refusal.startsWith("Too many large HTTP responses wait for their clients to read them"),
        refusal,
      );
      assertEquals(await restarts(server.url, "rt"), 0);
      for (const conn of conns.splice(0)) conn.close();
      // The readers left: their room comes back and a reading client gets the whole answer.
      let received = 0;
      await waitUntil(async () => {
        const response = await fetch(`${base}/big15`);
        const bytes = new Uint8Array(await response.arrayBuffer());
        received = response.status === 200 ? bytes.length : 0;
        return response.status === 200;
      }, "the big answer served again once the readers left");
      assertEquals(received, BIG_BYTES);
      assertEquals(await restarts(server.url, "rt"), 0);
    } finally {
      for (const conn of conns) conn.close();
      await server.close();
    }
  },
});

Deno.test({
  name: "large /sql answers count against the server-wide bound until their clients read them",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // 12 rows of 1 MiB: a ~12 MiB answer, more than the socket buffers of a client that never
    // reads take. With a 16 MiB server-wide bound, one such reader leaves no room for another.
    const server = await startTestServer({
      responseBudget: { totalBytesMax: 16 << 20, waitMs: 500 },
    });
    const conns: Deno.Conn[] = [];
    try {
      const { token } = await publish(server.url, "rt", await fixtureBundle("redteam"));
      await call(server.url, "rt", "blobs", [12, 1 << 20], token);
      const sql = new TextEncoder().encode("SELECT * FROM blob");
      const port = Number(new URL(server.url).port);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      await conn.write(new TextEncoder().encode(
        "POST /v1/database/rt/sql HTTP/1.1\r\nHost: x\r\n" +
          `Content-Length: ${sql.length}\r\n\r\n`,
      ));
      await conn.write(sql);
      const query = () =>
        fetch(`${server.url}/v1/database/rt/sql`, { method: "POST", body: "SELECT * FROM blob" });
      let refusal = "";
      await waitUntil(async () => {
        const response = await query();
        const text = await response.text();
        if (response.status === 503) refusal = text;
        else assertEquals(response.status, 200);
        return response.status === 503;
      }, "a large /sql answer refused while an unread one holds the server-wide bound");
      assert(refusal.includes("this SQL answer needs room"), refusal);
      conn.close();
      conns.length = 0;
      await waitUntil(async () => {
        const response = await query();
        const rows = response.status === 200 ? (await response.json())[0].rows.length : 0;
        if (response.status !== 200) await response.body?.cancel();
        return rows === 12;
      }, "the /sql answer served once the reader left");
    } finally {
      for (const conn of conns) conn.close();
      await server.close();
    }
  },
});
