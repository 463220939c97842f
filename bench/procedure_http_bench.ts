/**
 * `deno run -A bench/procedure_http_bench.ts`: reducer latency on a database whose procedures
 * are waiting on HTTP, against the same module on a database without (issue #12, "Measure").
 *
 * Back of the envelope: a procedure waiting on `ctx.http.fetch` blocks only the database's
 * procedure thread; the database thread serves reducers as before, so the two p99s should be
 * the same within noise (a reducer call through the SDK is a WebSocket round trip plus one
 * fsync, a few ms). If procedures ran on the database thread, every reducer arriving during a
 * fetch would wait for it: p99 ≈ the upstream's delay (2,000 ms here).
 *
 * Method: one server (tests/support/server.ts), tests/fixtures/modules/outbound published as
 * "waiting" and "quiet"; a loopback upstream that answers after 2 s. On "waiting" four
 * procedures are kept in flight against it the whole time; on both, one SDK client calls the
 * `bump` reducer N times in a row (5 ms apart) and records each call's round trip.
 */
import { DbConnection } from "../tests/fixtures/bindings/outbound/index.ts";
import { fixtureBundle, publish, startTestServer } from "../tests/support/server.ts";

const CALLS = 300;
const UPSTREAM_DELAY_MS = 2000;
const PROCEDURES_IN_FLIGHT = 4;

const upstream = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async () => {
  await new Promise((resolve) => setTimeout(resolve, UPSTREAM_DELAY_MS));
  return Response.json({ greeting: "late" });
});
const slowUrl = `http://127.0.0.1:${upstream.addr.port}/slow`;
const server = await startTestServer({ httpAllow: [`waiting=127.0.0.1:${upstream.addr.port}`] });

function connect(database: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(server.url.replace(/^http/, "ws"))
      .withDatabaseName(database)
      .onConnect((conn) => resolve(conn))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

async function reducerLatencies(conn: DbConnection): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const started = performance.now();
    await conn.reducers.bump({});
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return latencies.sort((a, b) => a - b);
}

function summary(sorted: number[]): string {
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  return `p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${
    sorted.at(-1)!.toFixed(1)
  } ms`;
}

try {
  const bundle = await fixtureBundle("outbound");
  await publish(server.url, "waiting", bundle);
  await publish(server.url, "quiet", bundle);
  const waiting = await connect("waiting");
  const quiet = await connect("quiet");
  console.log(
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, load ${
      Deno.loadavg().map((n) => n.toFixed(1)).join(" ")
    }; ${CALLS} sequential SDK reducer calls per run`,
  );
  for (let round = 0; round < 2; round++) {
    console.log(`quiet database:                       ${summary(await reducerLatencies(quiet))}`);
    let stop = false;
    let fetched = 0;
    const loops = Array.from({ length: PROCEDURES_IN_FLIGHT }, async () => {
      while (!stop) {
        const result = await waiting.procedures.fetchJson({ url: slowUrl });
        if (result.status !== 200) throw new Error(`upstream answered ${result.status}`);
        fetched++;
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const latencies = await reducerLatencies(waiting);
    stop = true;
    await Promise.all(loops);
    console.log(
      `procedures waiting on HTTP (${PROCEDURES_IN_FLIGHT} queued): ${summary(latencies)}; ` +
        `${fetched} fetches of ${UPSTREAM_DELAY_MS} ms completed meanwhile`,
    );
  }
  waiting.disconnect();
  quiet.disconnect();
} finally {
  await server.close();
  await upstream.shutdown();
}
