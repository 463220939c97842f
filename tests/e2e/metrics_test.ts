/**
 * GET /v1/metrics against a real server: reducer calls over HTTP and over the official SDK's
 * WebSocket move the counters by exactly the number of calls, histogram counts agree with the
 * counters, the fsync batch sizes add up to the durable offset, the WebSocket gauges follow the
 * client, and only loopback clients are served unless --metrics-public.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/chat/index.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { TrustedProxies } from "../../lib/client_address.ts";
import { createApp } from "../../server/app.ts";
import type { AppContext } from "../../server/app.ts";

/** name{labels} -> value, plus each family's TYPE; checks the exposition grammar as it goes. */
interface Exposition {
  samples: Map<string, number>;
  types: Map<string, string>;
}

/** A small parser of the text format 0.0.4 (label values with \\, \" and \n escapes). */
function parseExposition(text: string): Exposition {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  assert(text.endsWith("\n"), "the exposition ends with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      assert(["counter", "gauge", "histogram"].includes(type), line);
      assert(!types.has(name), `TYPE ${name} given twice`);
      types.set(name, type);
      continue;
    }
    if (line.startsWith("#")) continue;
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    assert(nameMatch, `bad sample line: ${line}`);
    const name = nameMatch[0];
    let at = name.length;
    const labels: [string, string][] = [];
    if (line[at] === "{") {
      at++;
      while (line[at] !== "}") {
        const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(at));
        assert(labelName, `bad label in ${line}`);
        at += labelName[0].length;
        assert(line[at] === "=" && line[at + 1] === '"', `bad label in ${line}`);
        at += 2;
        let value = "";
        while (line[at] !== '"') {
          assert(at < line.length, `unterminated label value in ${line}`);
          if (line[at] === "\\") {
            const escaped = line[at + 1];
            assert(escaped === "\\" || escaped === '"' || escaped === "n", `bad escape: ${line}`);
            value += escaped === "n" ? "\n" : escaped;
            at += 2;
          } else value += line[at++];
        }
        at++;
        labels.push([labelName[0], value]);
        if (line[at] === ",") at++;
      }
      at++;
    }
    assert(line[at] === " ", `no value separator in ${line}`);
    const valueText = line.slice(at + 1);
    const value = valueText === "+Inf" ? Infinity : Number(valueText);
    assert(valueText !== "" && !Number.isNaN(value), `bad value in ${line}`);
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert(types.has(name) || types.get(family) === "histogram", `${name} has no TYPE line`);
    const key = sampleKey(name, Object.fromEntries(labels));
    assert(!samples.has(key), `sample ${key} given twice`);
    samples.set(key, value);
  }
  return { samples, types };
}

function sampleKey(name: string, labels: Record<string, string>): string {
  const sorted = Object.keys(labels).sort().map((key) => `${key}=${JSON.stringify(labels[key])}`);
  return `${name}{${sorted.join(",")}}`;
}

function value(exposition: Exposition, name: string, labels: Record<string, string>): number {
  const found = exposition.samples.get(sampleKey(name, labels));
  if (found === undefined) throw new Error(`no sample ${sampleKey(name, labels)}`);
  return found;
}

/** The cumulative buckets of one histogram, checked non-decreasing and ending at +Inf = count. */
function histogram(exposition: Exposition, name: string, database: string) {
  const buckets: [number, number][] = [];
  for (const [key, count] of exposition.samples) {
    const prefix = `${name}_bucket{database=${JSON.stringify(database)},le=`;
    if (!key.startsWith(prefix)) continue;
    const le = JSON.parse(key.slice(prefix.length, -1));
    buckets.push([le === "+Inf" ? Infinity : Number(le), count]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  assert(buckets.length > 1 && buckets.at(-1)![0] === Infinity, `${name} has a +Inf bucket`);
  for (let i = 1; i < buckets.length; i++) {
    assert(buckets[i][1] >= buckets[i - 1][1], `${name} buckets are cumulative`);
  }
  const count = value(exposition, `${name}_count`, { database });
  assertEquals(buckets.at(-1)![1], count, `${name}: the +Inf bucket equals the count`);
  return { count, sum: value(exposition, `${name}_sum`, { database }), buckets };
}

async function scrape(url: string): Promise<Exposition> {
  const response = await fetch(`${url}/v1/metrics`);
  const text = await response.text();
  assertEquals(response.status, 200, text);
  assert(
    response.headers.get("content-type")?.startsWith("text/plain; version=0.0.4"),
    `content-type ${response.headers.get("content-type")}`,
  );
  return parseExposition(text);
}

function connect(url: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("chat")
      .onConnect((conn) => resolve(conn))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function subscribe(conn: DbConnection, queries: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) => reject((ctx as { event?: unknown }).event ?? new Error("subscribe failed")))
      .subscribe(queries);
  });
}

async function eventually(predicate: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test({
  name: "metrics: calls over HTTP and WebSocket move the counters and histograms exactly",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    let conn: DbConnection | undefined;
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const db = { database: "chat" };
      const before = await scrape(server.url);
      assertEquals(before.types.get("lightcone_reducer_duration_seconds"), "histogram");
      assertEquals(before.types.get("lightcone_transactions_committed_total"), "counter");
      assertEquals(value(before, "lightcone_database_up", db), 1);
      assertEquals(value(before, "lightcone_websocket_clients", db), 0);

      conn = await connect(server.url);
      await subscribe(conn, ["SELECT * FROM message"]);
      const connected = await scrape(server.url);
      assertEquals(value(connected, "lightcone_websocket_clients", db), 1);
      assertEquals(value(connected, "lightcone_subscriptions", db), 1);
      const rss = value(connected, "lightcone_database_resident_memory_bytes", db);
      assert(rss > 1024 * 1024, `a database process has some resident memory: ${rss}`);

      const httpOk = 5, httpFailed = 2, wsOk = 3, wsFailed = 1, packed = 2;
      for (let i = 0; i < httpOk; i++) {
        assertEquals((await call(server.url, "chat", "send_message", [`http ${i}`])).status, 200);
      }
      for (let i = 0; i < httpFailed; i++) {
        const response = await call(server.url, "chat", "send_then_fail", [`no ${i}`]);
        assert(response.status >= 400, `a failing reducer answers an error: ${response.status}`);
      }
      for (let i = 0; i < wsOk; i++) await conn.reducers.sendMessage({ text: `ws ${i}` });
      // set_name changes no subscribed query: these results come back packed (no update item).
      for (let i = 0; i < packed; i++) {
        assertEquals((await call(server.url, "chat", "set_name", [`http ${i}`])).status, 200);
        await conn.reducers.setName({ name: `ws ${i}` });
      }
      for (let i = 0; i < wsFailed; i++) {
        await conn.reducers.sendThenFail({ text: `ws no ${i}` }).then(
          () => assert(false, "send_then_fail must fail"),
          () => {},
        );
      }
      const after = await scrape(server.url);
      const delta = (name: string, labels: Record<string, string> = db) =>
        value(after, name, labels) - value(connected, name, labels);

      const committed = httpOk + wsOk + 2 * packed;
      const failed = httpFailed + wsFailed;
      // An HTTP call runs client_connected and client_disconnected around the reducer, as in
      // SpacetimeDB; the chat module's both commit.
      const lifecycle = 2 * (httpOk + httpFailed + packed);
      assertEquals(delta("lightcone_transactions_committed_total"), committed + lifecycle);
      assertEquals(
        delta("lightcone_reducer_calls_total", { ...db, status: "committed" }),
        committed,
      );
      assertEquals(
        delta("lightcone_reducer_calls_total", { ...db, status: "failed_user" }),
        failed,
      );
      assertEquals(delta("lightcone_reducer_calls_total", { ...db, status: "failed_internal" }), 0);
      assertEquals(delta("lightcone_reducer_calls_failed_total"), failed);

      const durations = histogram(after, "lightcone_reducer_duration_seconds", "chat");
      const durationsBefore = histogram(connected, "lightcone_reducer_duration_seconds", "chat");
      assertEquals(durations.count - durationsBefore.count, committed + failed);
      assert(durations.sum > durationsBefore.sum, "the duration sum grew");
      assert(durations.sum / durations.count < 5, "reducer durations are in seconds");

      // Every call's reply waited for its transaction to be durable: each committed transaction
      // was counted in exactly one fsync's batch, and the fresh log's batches add up to its offset.
      const durable = value(after, "lightcone_durable_tx_offset", db);
      assertEquals(
        durable - value(connected, "lightcone_durable_tx_offset", db),
        committed + lifecycle,
      );
      const batches = histogram(after, "lightcone_commitlog_fsync_transactions", "chat");
      assertEquals(batches.sum, durable);
      const fsyncs = histogram(after, "lightcone_commitlog_fsync_seconds", "chat");
      assertEquals(fsyncs.count, batches.count);
      assert(fsyncs.count >= 1 && fsyncs.count <= durable, `fsyncs: ${fsyncs.count}`);
      // Every transaction wrote a record of more than a few bytes (a row or more changed).
      assert(delta("lightcone_commitlog_written_bytes_total") > committed * 4);

      // Every WebSocket reducer call was timed on the server twice: until the database process
      // answered, and until its result was written (after its fsync), never less.
      const wsCalls = wsOk + packed + wsFailed;
      for (const stage of ["reply", "sent"]) {
        const timed = (exposition: Exposition) =>
          value(exposition, "lightcone_websocket_call_seconds_count", { ...db, stage });
        assertEquals(timed(after) - timed(connected), wsCalls, `stage ${stage}`);
        assertEquals(
          value(after, "lightcone_websocket_call_seconds_bucket", { ...db, stage, le: "+Inf" }),
          timed(after),
        );
      }
      const seconds = (stage: string) =>
        value(after, "lightcone_websocket_call_seconds_sum", { ...db, stage }) -
        value(connected, "lightcone_websocket_call_seconds_sum", { ...db, stage });
      assert(seconds("sent") >= seconds("reply") && seconds("reply") > 0, "sent includes reply");
      // Every request went in some batch, and every batch answered at least one request.
      const batchesTimed = histogram(after, "lightcone_host_batch_seconds", "chat").count -
        histogram(connected, "lightcone_host_batch_seconds", "chat").count;
      assert(
        batchesTimed >= 1 && batchesTimed <= committed + failed + lifecycle,
        `batches timed: ${batchesTimed}`,
      );

      assertEquals(value(after, "lightcone_host_queued_requests", db), 0);
      assertEquals(value(after, "lightcone_host_batches_in_flight", db), 0);
      assertEquals(value(after, "lightcone_database_restarts_total", db), 0);

      conn.disconnect();
      conn = undefined;
      await eventually(
        async () => value(await scrape(server.url), "lightcone_websocket_clients", db) === 0,
        "the client to be gone from the gauge",
      );
      const closed = await scrape(server.url);
      assertEquals(value(closed, "lightcone_subscriptions", db), 0);
    } finally {
      conn?.disconnect();
      await server.close();
    }
  },
});

Deno.test("metrics: served to loopback peers only, unless metricsPublic", async () => {
  const context = {
    registry: { list: () => [] },
    hub: { clientStats: () => new Map() },
    version: "test",
  } as unknown as AppContext;
  const peer = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 1 } });
  const get = (app: ReturnType<typeof createApp>, hostname: string) =>
    app.fetch(new Request("http://lightcone/v1/metrics"), peer(hostname));

  const closed = createApp(context);
  for (const hostname of ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"]) {
    const response = await get(closed, hostname);
    assertEquals(response.status, 200, hostname);
    const text = await response.text();
    assert(text.includes("# TYPE lightcone_transactions_committed_total counter"), text);
    // No CORS: a web page open in a browser on this host must not read them.
    assertEquals(response.headers.get("access-control-allow-origin"), null);
  }
  for (const hostname of ["10.0.0.7", "192.168.1.2", "2001:db8::1", "::ffff:10.0.0.7"]) {
    const response = await get(closed, hostname);
    assertEquals(response.status, 403, hostname);
    assert((await response.text()).includes("--metrics-public"));
  }
  const open = createApp({ ...context, metricsPublic: true });
  assertEquals((await get(open, "10.0.0.7")).status, 200);
});

Deno.test("metrics: behind a trusted proxy on loopback, the forwarded client is judged", async () => {
  const context = {
    registry: { list: () => [] },
    hub: { clientStats: () => new Map() },
    version: "test",
  } as unknown as AppContext;
  const get = (app: ReturnType<typeof createApp>, forwardedFor?: string) =>
    app.fetch(
      new Request("http://lightcone/v1/metrics", {
        headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
      }),
      { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } },
    );
  // Without --trusted-proxy the header is ignored: the loopback peer is served.
  const plain = createApp(context);
  assertEquals((await get(plain, "203.0.113.9")).status, 200);
  const proxied = createApp({ ...context, trustedProxies: TrustedProxies.parse(["127.0.0.1"]) });
  assertEquals((await get(proxied, "203.0.113.9")).status, 403);
  // A client cannot claim loopback: its own entry is left of the address the proxy saw.
  assertEquals((await get(proxied, "127.0.0.1, 203.0.113.9")).status, 403);
  // The proxy's own requests (no header), and a scraper on loopback going through it, are served.
  assertEquals((await get(proxied)).status, 200);
  assertEquals((await get(proxied, "127.0.0.1")).status, 200);
});

Deno.test({
  name: "metrics: a killed database process counts one restart and reports the new process",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const db = { database: "chat" };
      assertEquals((await call(server.url, "chat", "send_message", ["before"])).status, 200);
      // The call's client_disconnected runs after its reply: wait for it to be durable.
      let before = await scrape(server.url);
      await eventually(async () => {
        before = await scrape(server.url);
        return value(before, "lightcone_transactions_committed_total", db) === 3 &&
          value(before, "lightcone_durable_tx_offset", db) === 3;
      }, "connect, call and disconnect (chat has no init reducer) to be counted and durable");
      assertEquals(value(before, "lightcone_database_restarts_total", db), 0);
      const pid = server.server.registry.resolve("chat")!.host.pid;
      Deno.kill(pid, "SIGKILL");
      await eventually(async () => {
        const now = await scrape(server.url);
        return value(now, "lightcone_database_restarts_total", db) === 1 &&
          value(now, "lightcone_database_up", db) === 1;
      }, "the restart to be counted");
      assert(server.server.registry.resolve("chat")!.host.pid !== pid, "a new process");
      // Counters belong to the database, not to its process: they carry on after the restart,
      // and count what the new process committed while starting (connections left by the crash
      // are disconnected) as well as later calls, each transaction once.
      assertEquals((await call(server.url, "chat", "send_message", ["after"])).status, 200);
      let after = await scrape(server.url);
      await eventually(async () => {
        after = await scrape(server.url);
        return value(after, "lightcone_transactions_committed_total", db) === 6 &&
          value(after, "lightcone_durable_tx_offset", db) === 6;
      }, "connect, call and disconnect after the restart to be counted once and durable");
      assert(value(after, "lightcone_database_resident_memory_bytes", db) > 1024 * 1024);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "metrics: a call that holds the database process's event loop is counted as a batch stall",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // The budget stops `spin` no earlier than 300 ms after it started, so its batch holds the
    // process's event loop at least that long: one stall of >= 0.3 s, however fast the machine.
    const budgetMs = 300;
    const server = await startTestServer({ reducerBudgetMs: budgetMs });
    try {
      await publish(server.url, "runaway", await fixtureBundle("runaway"));
      const db = { database: "runaway" };
      assertEquals((await call(server.url, "runaway", "bump", [])).status, 200);
      const stall = (exposition: Exposition, kind: string, part: "sum" | "count") =>
        value(exposition, `lightcone_database_stall_seconds_${part}`, { ...db, kind });
      const before = await scrape(server.url);
      assertEquals(before.types.get("lightcone_database_stall_seconds"), "histogram");
      for (const kind of ["batch", "snapshot", "schedule", "other"]) {
        assertEquals(
          value(before, "lightcone_database_stall_seconds_bucket", { ...db, kind, le: "+Inf" }),
          stall(before, kind, "count"),
        );
      }
      const spun = await call(server.url, "runaway", "spin", []);
      assert(spun.status >= 400, `spin is stopped by the budget: ${spun.status} ${spun.text}`);
      // The stall is reported in a message of its own right after the batch's reply; other
      // batches may have stalled meanwhile on a loaded machine, which only adds to the sum.
      const stalled = (exposition: Exposition) =>
        stall(exposition, "batch", "sum") - stall(before, "batch", "sum");
      let after = before;
      await eventually(async () => {
        after = await scrape(server.url);
        return stalled(after) >= budgetMs / 1000;
      }, `a batch stall of ${budgetMs} ms or more to be counted`);
      assert(stall(after, "batch", "count") > stall(before, "batch", "count"));
      // The database still serves.
      assertEquals((await call(server.url, "runaway", "bump", [])).status, 200);
    } finally {
      await server.close();
    }
  },
});
