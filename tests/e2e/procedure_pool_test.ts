/**
 * Procedures and HTTP handlers of one database run in a pool of procedure threads
 * (worker/procedures.ts, `--procedure-threads`): two procedures waiting on a slow upstream run at
 * once (the shorter wait answers first, though it started second); a quick procedure answers
 * while others wait; past the threads and the queue (`--procedure-queue`) a call fails at once
 * with a clear error; and a procedure stuck inside a builtin, killed by its thread's watchdog
 * pair, does not keep the calls that finished on other threads meanwhile from their answers,
 * and the calls still running then are answered with the reason. An extra thread idle for
 * `--procedure-idle-s` is stopped, and the next call that finds every thread busy starts another.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const BUDGET_MS = 1000;
/** `^(a+)+\1$` against 40 a's and a b: days of backtracking inside one builtin call. */
const STUCK_LENGTH = 40;

/** A loopback server answering `/wait/<ms>` after that many milliseconds. */
function slowUpstream() {
  let hits = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (request) => {
    hits++;
    const ms = Number(new URL(request.url).pathname.split("/")[2] ?? "0");
    await new Promise((resolve) => setTimeout(resolve, ms));
    return new Response("slow");
  });
  return {
    port: server.addr.port,
    get hits() {
      return hits;
    },
    close: () => server.shutdown(),
  };
}

/** Calls `fetch_status` on `/wait/<ms>`; resolves with the answer and when it came. */
async function fetchAfter(url: string, port: number, ms: number, t0: number) {
  const response = await call(url, "pool", "fetch_status", [`http://127.0.0.1:${port}/wait/${ms}`]);
  return { ...response, atMs: Math.round(performance.now() - t0) };
}

async function waitFor(condition: () => boolean, limitMs: number, what: string): Promise<void> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test({
  name: "procedures of one database run concurrently in a bounded pool of threads",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const upstream = slowUpstream();
    const server = await startTestServer({
      reducerBudgetMs: BUDGET_MS,
      httpAllow: [`pool=127.0.0.1:${upstream.port}`],
      limits: { procedureThreads: 3, procedureQueue: 1 },
    });
    try {
      await publish(server.url, "pool", await fixtureBundle("proc_overrun"));
      assertEquals((await call(server.url, "pool", "bump", [])).status, 200);

      await t.step(
        "two procedures waiting on HTTP run at once: the second answers first",
        async () => {
          const t0 = performance.now();
          const long = fetchAfter(server.url, upstream.port, 4000, t0);
          // The long one is waiting on the upstream before the short one starts.
          await waitFor(() => upstream.hits >= 1, 10_000, "the first fetch");
          const short = fetchAfter(server.url, upstream.port, 300, t0);
          const [first, second] = await Promise.all([long, short]);
          console.log(
            `long procedure (4 s upstream) answered at ${first.atMs} ms, short one (0.3 s, started ` +
              `second) at ${second.atMs} ms`,
          );
          assertEquals([first.status, first.json], [200, 200], first.text);
          assertEquals([second.status, second.json], [200, 200], second.text);
          assert(second.atMs < first.atMs, `short ${second.atMs} ms, long ${first.atMs} ms`);
          assert(first.atMs >= 3900, `the long one answered after ${first.atMs} ms`);
        },
      );

      await t.step("a quick procedure answers while two others wait on HTTP", async () => {
        const t0 = performance.now();
        const hits = upstream.hits;
        const slow = [
          fetchAfter(server.url, upstream.port, 3000, t0),
          fetchAfter(server.url, upstream.port, 3000, t0),
        ];
        await waitFor(() => upstream.hits >= hits + 2, 10_000, "two waiting fetches");
        const latencies: number[] = [];
        for (let i = 0; i < 10; i++) {
          const started = performance.now();
          const response = await call(server.url, "pool", "count", []);
          assertEquals(response.status, 200, response.text);
          latencies.push(performance.now() - started);
        }
        const slowDone = await Promise.all(slow);
        latencies.sort((a, b) => a - b);
        console.log(
          `quick procedure while 2 wait on HTTP: p50 ${latencies[5].toFixed(1)} ms, max ` +
            `${latencies[9].toFixed(1)} ms; the waiting ones answered at ` +
            slowDone.map((done) => done.atMs).join(", ") + " ms",
        );
        for (const done of slowDone) assertEquals(done.status, 200, done.text);
        // With one thread each quick call would wait for both (~3 s).
        assert(latencies[9] < 2500, `a quick procedure took ${latencies[9]} ms`);
      });

      await t.step(
        "past the threads and the queue a call fails at once, naming both limits",
        async () => {
          const t0 = performance.now();
          const hits = upstream.hits;
          // Three threads busy, one call queued.
          const busy = [0, 1, 2, 3].map(() => fetchAfter(server.url, upstream.port, 2000, t0));
          await waitFor(() => upstream.hits >= hits + 3, 10_000, "three waiting fetches");
          const refused = await fetchAfter(server.url, upstream.port, 0, t0);
          console.log(
            `a call over the queue was refused after ${refused.atMs} ms: ${refused.text}`,
          );
          assert(refused.status >= 500, `${refused.status} ${refused.text}`);
          assertMatch(
            refused.text,
            /Too many procedure and HTTP handler calls at once: all 3 procedure threads of this database are busy and 1 calls are waiting \(the limits are --procedure-threads and --procedure-queue\)/,
          );
          assert(refused.atMs < 1900, `refused after ${refused.atMs} ms, not at once`);
          const done = await Promise.all(busy);
          for (const answer of done) assertEquals(answer.status, 200, answer.text);
          // The queued one ran after a thread came free.
          assert(Math.max(...done.map((d) => d.atMs)) >= 3900, done.map((d) => d.atMs).join());
          // The queue has room again.
          assertEquals((await call(server.url, "pool", "count", [])).status, 200);
        },
      );

      await t.step(
        "a stuck procedure killed by the watchdog does not lose the others' answers",
        async () => {
          const before = Number((await call(server.url, "pool", "count", [])).json);
          const pid = server.server.registry.resolve("pool")!.host.pid;
          const t0 = performance.now();
          const hits = upstream.hits;
          // Still waiting on HTTP when the process is killed: answered with the reason.
          const inFlight = fetchAfter(server.url, upstream.port, 20_000, t0);
          await waitFor(() => upstream.hits >= hits + 1, 10_000, "the waiting fetch");
          const stuck = call(server.url, "pool", "regexp_stuck", [STUCK_LENGTH]).then((r) => ({
            ...r,
            atMs: Math.round(performance.now() - t0),
          }));
          // While it is stuck, quick procedures on the third thread are answered.
          const quick: number[] = [];
          for (let i = 0; i < 3; i++) {
            const response = await call(server.url, "pool", "count", []);
            assertEquals(response.status, 200, response.text);
            quick.push(Math.round(performance.now() - t0));
          }
          const killed = await stuck;
          const lost = await inFlight;
          console.log(
            `quick procedures answered at ${quick.join(", ")} ms while one was stuck; the stuck ` +
              `one answered at ${killed.atMs} ms (${killed.status}), the one waiting on HTTP at ` +
              `${lost.atMs} ms (${lost.status})`,
          );
          assert(Math.max(...quick) < killed.atMs, "the quick answers came before the kill");
          for (const answer of [killed, lost]) {
            assert(answer.status >= 500, `${answer.status} ${answer.text}`);
            assertMatch(
              answer.text,
              /procedure or HTTP handler call ran \d+ ms, past its time budget of 1000 ms, inside a builtin that cannot be interrupted; the database process was stopped/,
            );
          }
          assert(lost.atMs < 15_000, "the waiting call was answered when the process stopped");
          // The database restarts from its log: the stuck procedure's committed bump is kept.
          let status = 0;
          for (let attempt = 0; attempt < 150 && status !== 200; attempt++) {
            status = (await call(server.url, "pool", "bump", [])).status;
            if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
          }
          assertEquals(status, 200);
          assert(server.server.registry.resolve("pool")!.host.pid !== pid, "a new process");
          assertEquals(Number((await call(server.url, "pool", "count", [])).json), before + 2);
        },
      );
    } finally {
      await server.close();
      await upstream.close();
    }
  },
});

/** A loopback server whose requests are answered only when the test releases them. */
function heldUpstream() {
  let hits = 0;
  let release = () => {};
  let released = Promise.resolve();
  const hold = () => {
    released = new Promise<void>((resolve) => release = resolve);
  };
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async () => {
    hits++;
    await released;
    return new Response("released");
  });
  return {
    port: server.addr.port,
    get hits() {
      return hits;
    },
    hold,
    release: () => release(),
    close: () => server.shutdown(),
  };
}

Deno.test({
  name:
    "an idle procedure thread is stopped (--procedure-idle-s); the next busy call starts another",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const upstream = heldUpstream();
    const server = await startTestServer({
      reducerBudgetMs: BUDGET_MS,
      httpAllow: [`pool=127.0.0.1:${upstream.port}`],
      limits: { procedureThreads: 2, procedureIdleS: 1 },
    });
    try {
      await publish(server.url, "pool", await fixtureBundle("proc_overrun"));
      const host = () => server.server.registry.resolve("pool")!.host;
      assertEquals(host().procedureExtraThreads, 0);
      const t0 = performance.now();
      /**
       * Holds the first thread in a fetch, then calls `count`: with two threads at most, an
       * answer while the fetch is held means a second thread ran it.
       */
      const countBesideAHeldFetch = async () => {
        upstream.hold();
        const hits = upstream.hits;
        const held = fetchAfter(server.url, upstream.port, 0, t0);
        try {
          await waitFor(() => upstream.hits >= hits + 1, 30_000, "the held fetch");
          const counted = await call(server.url, "pool", "count", []);
          assertEquals(counted.status, 200, counted.text);
          return Number(counted.json);
        } finally {
          upstream.release();
          const fetched = await held;
          assertEquals(fetched.status, 200, fetched.text);
        }
      };
      const first = await countBesideAHeldFetch();
      // No call for a second: the extra thread stops (the bound is generous for a loaded machine).
      await waitFor(() => host().procedureExtraThreads === 0, 25_000, "the idle thread's stop");
      console.log(`the idle extra thread was stopped ${Math.round(performance.now() - t0)} ms in`);
      // Only the first thread is left; with it held again, the next call starts a new thread.
      const second = await countBesideAHeldFetch();
      assertEquals(second, first);
    } finally {
      await server.close();
      await upstream.close();
    }
  },
});
