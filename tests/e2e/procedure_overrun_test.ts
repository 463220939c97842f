/**
 * A procedure or HTTP handler stuck inside a builtin that no deadline check can interrupt (a
 * backtracking regexp) runs in the procedure thread, which has its own slot in the process
 * watchdog (worker/isolation.ts): its database process is stopped shortly after the call's
 * budget, its CPU comes back, the caller gets an error saying why, and the database restarts
 * from its log. Before, the procedure thread spun forever and the call never answered. Waits on
 * HTTP are not part of the budget, so a procedure waiting 3 s on a slow upstream under a 1 s
 * budget is not stopped.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { WATCHDOG_GRACE_MS } from "../../worker/isolation.ts";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";
import { cpuTicks } from "../support/proc.ts";

const BUDGET_MS = 1000;
/** `^(a+)+\1$` against 40 a's and a b: days of backtracking inside one builtin call. */
const STUCK_LENGTH = 40;
/** How long the test waits for an answer (the fix answers after ~2 s; a loaded machine). */
const ANSWER_LIMIT_MS = 30_000;

function pidOf(server: TestServer, database: string): number {
  return server.server.registry.resolve(database)!.host.pid;
}

/** Resolves to `promise`'s value, or rejects when it has not settled within `limitMs`. */
async function within<T>(promise: Promise<T>, limitMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `pid` is gone; returns how long it took, or Infinity. */
async function gone(pid: number, limitMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (cpuTicks(pid) === undefined) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Infinity;
}

/** Calls reducer `bump` until the restarted database answers; returns the last status. */
async function bumpAfterRestart(url: string): Promise<number> {
  let status = 0;
  for (let attempt = 0; attempt < 150; attempt++) {
    status = (await call(url, "overrun", "bump", [])).status;
    if (status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return status;
}

/** The counter (a procedure: it waits behind a stuck procedure, so it is bounded too). */
async function counter(url: string): Promise<number> {
  const response = await within(call(url, "overrun", "count", []), ANSWER_LIMIT_MS, "count");
  assertEquals(response.status, 200, response.text);
  return Number(response.json);
}

Deno.test({
  name: "a procedure or HTTP handler stuck inside a builtin gets its database process stopped",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const upstream = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 3000));
        return new Response("slow");
      },
    );
    const server = await startTestServer({
      reducerBudgetMs: BUDGET_MS,
      httpAllow: [`overrun=127.0.0.1:${upstream.addr.port}`],
    });
    try {
      await publish(server.url, "overrun", await fixtureBundle("proc_overrun"));
      assertEquals((await call(server.url, "overrun", "bump", [])).status, 200);

      await t.step("a 3 s wait on HTTP under a 1 s budget is not stopped", async () => {
        const pid = pidOf(server, "overrun");
        const started = performance.now();
        const response = await call(server.url, "overrun", "fetch_status", [
          `http://127.0.0.1:${upstream.addr.port}/slow`,
        ]);
        const waitedMs = Math.round(performance.now() - started);
        console.log(`procedure waiting on a slow upstream answered after ${waitedMs} ms`);
        assertEquals(response.status, 200, response.text);
        assertEquals(response.json, 200);
        assert(waitedMs >= 2900, `answered after ${waitedMs} ms`);
        assertEquals(pidOf(server, "overrun"), pid, "the same process");
      });

      const stuckCalls: [string, () => Promise<{ status: number; text: string }>, boolean][] = [
        ["a procedure", () => call(server.url, "overrun", "regexp_stuck", [STUCK_LENGTH]), true],
        ["an HTTP handler", async () => {
          const response = await fetch(
            `${server.url}/v1/database/overrun/route/stuck?${STUCK_LENGTH}`,
          );
          return { status: response.status, text: await response.text() };
        }, false],
      ];
      for (const [what, stuck, bumps] of stuckCalls) {
        await t.step(`${what} stuck in a regexp is stopped by the watchdog`, async () => {
          const before = await counter(server.url);
          const pid = pidOf(server, "overrun");
          const started = performance.now();
          const response = await within(stuck(), ANSWER_LIMIT_MS, what);
          const answeredMs = Math.round(performance.now() - started);
          const goneMs = await gone(pid, 10_000);
          console.log(
            `${what} stuck in a builtin under a ${BUDGET_MS} ms budget: answered after ` +
              `${answeredMs} ms with ${response.status}; process gone ${Math.round(goneMs)} ms ` +
              `later: ${response.text}`,
          );
          assert(response.status >= 500, `${response.status} ${response.text}`);
          assertMatch(
            response.text,
            /procedure or HTTP handler call ran \d+ ms, past its time budget of 1000 ms, inside a builtin that cannot be interrupted; the database process was stopped/,
          );
          // Loose bound (a loaded machine): without the watchdog the call never answers.
          assert(answeredMs < BUDGET_MS + WATCHDOG_GRACE_MS + 10_000, `${answeredMs} ms`);
          assert(goneMs < 10_000, "the stuck process is gone and its CPU with it");
          // The restarted database answers reducers; what the procedure committed before it got
          // stuck is kept (it is in the log), and the new bump counts.
          assertEquals(await bumpAfterRestart(server.url), 200);
          assert(pidOf(server, "overrun") !== pid, "a new process");
          assertEquals(await counter(server.url), before + (bumps ? 1 : 0) + 1);
        });
      }
    } finally {
      await server.close();
      await upstream.shutdown();
    }
  },
});
