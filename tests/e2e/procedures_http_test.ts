/**
 * Procedures with scoped `ctx.http.fetch` and HTTP handlers, through the official SDK and real
 * HTTP: a procedure fetches from a local server on its database's allow-list and returns what
 * it saw; the same fetch from another database, to an unlisted host, to a name that resolves to
 * loopback, or through a redirect to an unlisted host fails with the clear error and the target
 * records no hit; while a procedure waits on a slow upstream (held by the test past twice the
 * reducer budget) the database's reducers keep answering; the module's HTTP handlers answer GET and POST and unknown routes get 404.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { outboundHttpLine } from "../../cli/commands/describe.ts";
import { DbConnection } from "../fixtures/bindings/outbound/index.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { track, waitUntil, within } from "../support/wait.ts";

/** A loopback HTTP server that records every request it receives. */
function upstream(handler: (request: Request) => Response | Promise<Response>) {
  const hits: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    hits.push(`${request.method} ${new URL(request.url).pathname}`);
    return handler(request);
  });
  return { hits, port: server.addr.port, close: () => server.shutdown() };
}

function connect(url: string, database: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connection within 30 s")), 30_000);
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName(database)
      .onConnect((conn) => {
        clearTimeout(timer);
        resolve(conn);
      })
      .onConnectError((_ctx, error) => {
        clearTimeout(timer);
        reject(error);
      })
      .build();
  });
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error("expected the call to fail");
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

Deno.test({
  name: "procedures fetch only what their database's allow-list permits; HTTP handlers answer",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const denied = upstream(() => new Response("must not be reached"));
    // `/slow` answers when the test says so (not after a fixed time a loaded machine can outlast).
    const slowGate = Promise.withResolvers<void>();
    const allowed = upstream(async (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/slow") await slowGate.promise;
      if (path === "/to-denied") {
        return new Response(null, {
          status: 302,
          headers: { location: `http://127.0.0.1:${denied.port}/secret` },
        });
      }
      return Response.json({ greeting: `hello from ${path}` }, {
        headers: { "x-echo": request.headers.get("x-probe") ?? "(none)" },
      });
    });
    // An allow-listed port nothing listens on: a request to it cannot be sent.
    const closedListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (closedListener.addr as Deno.NetAddr).port;
    closedListener.close();
    // A 1 s budget: the wait on HTTP below (over 2 s) must not count against it.
    const server = await startTestServer({
      reducerBudgetMs: 1000,
      httpAllow: [
        `outbound=127.0.0.1:${allowed.port},127.0.0.1:${closedPort}`,
        "named=localhost",
      ],
    });
    const open: DbConnection[] = [];
    try {
      const bundle = await fixtureBundle("outbound");
      const owner = await publish(server.url, "outbound", bundle);
      await publish(server.url, "other", bundle);
      await publish(server.url, "named", bundle);
      const conn = await connect(server.url, "outbound");
      open.push(conn);
      const other = await connect(server.url, "other");
      open.push(other);
      const named = await connect(server.url, "named");
      open.push(named);
      const base = `http://127.0.0.1:${allowed.port}`;

      await t.step(
        "an allow-listed fetch returns status, headers, body and JSON to the SDK",
        async () => {
          const result = await conn.procedures.fetchJson({ url: `${base}/json` });
          assertEquals(result.status, 200);
          assertEquals(result.statusText, "OK");
          assertEquals(result.contentType, "application/json");
          assertEquals(result.echoHeader, "lightcone");
          assertEquals(JSON.parse(result.body), { greeting: "hello from /json" });
          assertEquals(result.greeting, "hello from /json");
          assertEquals(result.rows, 1n);
          assertEquals(allowed.hits, ["GET /json"]);
        },
      );

      await t.step("the same fetch from another database fails naming the flag", async () => {
        const message = await rejection(other.procedures.fetchJson({ url: `${base}/json` }));
        assertMatch(
          message,
          /module outbound HTTP requests are disabled for database "other".*--http-allow other=127\.0\.0\.1/,
        );
        assertEquals(allowed.hits, ["GET /json"]);
      });

      await t.step(
        "an unlisted host, a name resolving to loopback and a redirect to an unlisted host are refused",
        async () => {
          const unlisted = await conn.procedures.tryPost({
            url: `http://127.0.0.1:${denied.port}/x`,
            body: "b",
          });
          assertMatch(
            unlisted,
            /^error HttpError: "127\.0\.0\.1" is not on the HTTP allow-list of database "outbound".*--http-allow outbound=127\.0\.0\.1$/,
          );
          const loopbackName = await named.procedures.tryPost({
            url: `http://localhost:${allowed.port}/x`,
            body: "b",
          });
          assertMatch(
            loopbackName,
            /^error HttpError: refusing to connect to private or special-purpose addresses: loopback address 127\.0\.0\.1 \("localhost" resolves to 127\.0\.0\.1\).*--http-allow named=127\.0\.0\.1$/,
          );
          const redirected = await conn.procedures.tryPost({ url: `${base}/to-denied`, body: "b" });
          assertMatch(redirected, /^error HttpError: "127\.0\.0\.1" is not on the HTTP allow-list/);
          assertEquals(denied.hits, []);
          assertEquals(allowed.hits, ["GET /json", "POST /to-denied"]);
        },
      );

      await t.step(
        "a request that cannot be sent is an HttpError naming the URL, as in SpacetimeDB",
        async () => {
          // SpacetimeDB's host words it `error sending request for url (URL): cause`; modules
          // (and SpacetimeDB's own procedure tests) look for "error" and the URL in the message.
          const failed = await conn.procedures.tryPost({
            url: `http://127.0.0.1:${closedPort}/nothing?token=secret`,
            body: "b",
          });
          assertMatch(
            failed,
            new RegExp(
              `^error HttpError: error sending request for url \\(http://127\\.0\\.0\\.1:${closedPort}/nothing\\): .+`,
            ),
          );
          assert(!failed.includes("secret"), failed);
        },
      );

      await t.step("fetch inside withTx is refused as in SpacetimeDB", async () => {
        const text = await conn.procedures.fetchInTx({ url: `${base}/json` });
        assertEquals(
          text,
          "error WouldBlockTransaction: Attempted async or blocking op while holding open a transaction",
        );
        assertEquals(allowed.hits.length, 2);
      });

      await t.step("reducers keep answering while a procedure waits on HTTP", async () => {
        const started = performance.now();
        const slow = track(conn.procedures.fetchJson({ url: `${base}/slow` }));
        await waitUntil(() => allowed.hits.includes("GET /slow"), "the procedure's fetch");
        // 20 reducer calls while the procedure waits: had a reducer to wait for the procedure, it
        // would wait until the test released /slow, which it does only after them.
        const latencies: number[] = [];
        for (let i = 0; i < 20; i++) {
          const t0 = performance.now();
          await within(conn.reducers.bump({}), "a reducer call while a procedure waits on HTTP");
          latencies.push(performance.now() - t0);
        }
        // Held past twice the reducer budget: the wait on HTTP does not count against it.
        const heldMs = 2 * 1000 + 500;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.max(0, heldMs - (performance.now() - started)))
        );
        assert(!slow.settled, "the procedure answered before /slow did");
        slowGate.resolve();
        const result = await within(slow.promise, "the procedure after /slow answered");
        const waitedMs = performance.now() - started;
        assertEquals(result.status, 200);
        assertEquals(result.greeting, "hello from /slow");
        latencies.sort((a, b) => a - b);
        const p50 = percentile(latencies, 0.5);
        const p99 = percentile(latencies, 0.99);
        console.log(
          `reducer calls while a procedure waits on HTTP: n=${latencies.length} ` +
            `p50=${p50.toFixed(1)} ms p99=${p99.toFixed(1)} ms max=${
              latencies.at(-1)!.toFixed(1)
            } ms; ` +
            `procedure answered after ${Math.round(waitedMs)} ms`,
        );
        const counter = await call(server.url, "outbound", "note_count", []);
        assertEquals(counter.status, 200);
      });

      await t.step(
        "a runaway procedure is stopped by its budget; one in withTx commits nothing",
        async () => {
          for (const spin of [() => conn.procedures.spin({}), () => conn.procedures.spinInTx({})]) {
            const started = performance.now();
            const message = await rejection(spin());
            assertMatch(message, /exceeded its time budget of 1000 ms/);
            console.log(
              `runaway procedure stopped after ${Math.round(performance.now() - started)} ms`,
            );
          }
          const rows = await fetch(`${server.url}/v1/database/outbound/sql`, {
            method: "POST",
            headers: { authorization: `Bearer ${owner.token}` },
            body: "SELECT * FROM counter WHERE id = 99",
          });
          assertEquals((await rows.json())[0].rows, []);
          await conn.reducers.bump({});
        },
      );

      await t.step(
        "HTTP handlers answer GET and POST; unknown routes get SpacetimeDB's 404",
        async () => {
          const route = `${server.url}/v1/database/outbound/route`;
          const hello = await fetch(`${route}/hello?x=1`);
          assertEquals(hello.status, 200);
          assertEquals(hello.headers.get("x-handler"), "hello");
          assertEquals(await hello.text(), "hello GET /v1/database/outbound/route/hello?x=1");
          const root = await fetch(route);
          assertEquals(await root.text(), "hello GET /v1/database/outbound/route");
          const posted = await fetch(`${route}/notes`, { method: "POST", body: "first note" });
          assertEquals(posted.status, 201);
          assertEquals(posted.headers.get("content-type"), "application/json");
          assertEquals(await posted.json(), { stored: "first note", count: 1 });
          assertEquals((await call(server.url, "outbound", "note_count", [])).json, 1);
          for (const [method, path] of [["GET", "/nope"], ["POST", "/hello"], ["GET", "/notes"]]) {
            const missing = await fetch(`${route}${path}`, { method });
            assertEquals(missing.status, 404, `${method} ${path}`);
            assertEquals(
              await missing.text(),
              "Database has not registered a handler for this route",
            );
          }
        },
      );

      await t.step(
        "the owner sees the allow-list (what `describe` prints); others do not",
        async () => {
          const mine = await fetch(`${server.url}/v1/database/outbound/http-allow`, {
            headers: { authorization: `Bearer ${owner.token}` },
          });
          assertEquals(await mine.json(), {
            allow: [`127.0.0.1:${allowed.port}`, `127.0.0.1:${closedPort}`],
          });
          assertEquals(
            outboundHttpLine([`127.0.0.1:${allowed.port}`]),
            `Outbound HTTP (ctx.http.fetch) allowed to: 127.0.0.1:${allowed.port}`,
          );
          const stranger = await fetch(`${server.url}/v1/database/outbound/http-allow`);
          assertEquals(stranger.status, 403);
          await stranger.body?.cancel();
        },
      );

      await t.step("every outbound request is in the module log", async () => {
        const logs = await fetch(`${server.url}/v1/database/outbound/logs?num_lines=100`, {
          headers: { authorization: `Bearer ${owner.token}` },
        });
        const lines = (await logs.text()).trim().split("\n").map((line) =>
          JSON.parse(line).message as string
        );
        const http = lines.filter((line) => line.startsWith("outbound HTTP"));
        const host = `127.0.0.1:${allowed.port}`;
        assert(
          http.some((line) => new RegExp(`^outbound HTTP GET ${host} 200 in \\d+ ms$`).test(line)),
          http.join("\n"),
        );
        assert(
          http.some((line) =>
            line.startsWith(`outbound HTTP POST 127.0.0.1:${denied.port} refused:`)
          ),
          http.join("\n"),
        );
        assert(
          http.some((line) => line.startsWith(`outbound HTTP POST ${host} 302 in`)),
          http.join("\n"),
        );
      });
    } finally {
      slowGate.resolve();
      for (const conn of open) conn.disconnect();
      await server.close();
      await allowed.close();
      await denied.close();
    }
  },
});
