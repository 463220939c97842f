/**
 * The procedure pool tells the server how many threads beyond the first run or are starting
 * (`setExtraThreads`), and the server sets the process's memory cap from the newest count. When
 * several threads start at once and one fails, the count it reports must still include the
 * others that are starting: reporting the count it began at minus one left a cap for too few
 * threads while they reserved their code ranges.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { ProcedurePool } from "./procedures.ts";
import type { CallProcedureRequest } from "./messages.ts";
import { fixtureBundle } from "../tests/support/server.ts";
import { waitUntil } from "../tests/support/wait.ts";

Deno.test({
  name: "a failed thread start among concurrent starts releases only its own share of the cap",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const clock = new ManualClock();
    const engine = new DatabaseEngine({
      clock,
      budget: NO_BUDGET,
      reducerBudgetMs: 10_000,
      databaseIdentity: 7n,
      ownerIdentity: 1n,
      loadTimeoutMs: 30_000,
    });
    const bundle = await fixtureBundle("gate");
    await engine.load(bundle);
    /** Every count the pool reported, in order, and the starts still waiting for an answer. */
    const reported: number[] = [];
    const pending: { extra: number; fail: (error: Error) => void }[] = [];
    const pool = new ProcedurePool({
      engine: () => engine,
      send: () => {},
      onDone: () => {},
      afterTransaction: () => {},
      onFatal: () => {},
      setExtraThreads: (extra) => {
        reported.push(extra);
        // Threads report their start and stop without waiting; a start waits for the answer.
        return new Promise((_resolve, reject) => pending.push({ extra, fail: reject }));
      },
    });
    try {
      await pool.started();
      pool.configure({ threads: 4, queued: 16 });
      await pool.load(bundle, engine, 30_000);
      const request = (id: number): CallProcedureRequest => ({
        kind: "procedure",
        id,
        procedure: "entries",
        args: new Uint8Array(0),
        sender: 1n,
        connectionId: 0n,
        timestampMicros: 0n,
      });
      // Hold the first thread with a call, then queue three more: three extra threads start.
      for (let id = 1; id <= 4; id++) pool.call(request(id), 0);
      await waitUntil(() => pending.length === 3, "three thread starts asked for a cap");
      assertEquals(reported, [1, 2, 3]);
      assertEquals(pool.threadCount, 4);
      // The first start fails while the other two are still starting: the cap must stay for
      // the two (plus the first thread), not drop to the count that start began at minus one.
      pending[0].fail(new Error("injected start failure"));
      await waitUntil(() => reported.length === 4, "the failed start reported the new count");
      assertEquals(reported[3], 2);
      assertEquals(pool.threadCount, 3);
      // The other two fail as well: each releases its own share, down to no extra thread.
      pending[1].fail(new Error("injected start failure"));
      pending[2].fail(new Error("injected start failure"));
      await waitUntil(() => reported.length === 6, "the other failures reported their counts");
      assertEquals(reported.slice(4), [1, 0]);
      assertEquals(pool.threadCount, 1);
    } finally {
      pool.close();
    }
  },
});

Deno.test({
  name:
    "an extra thread that never answers is given up after its start bound; calls keep the first",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const engine = new DatabaseEngine({
      clock: new ManualClock(),
      budget: NO_BUDGET,
      reducerBudgetMs: 10_000,
      databaseIdentity: 7n,
      ownerIdentity: 1n,
      loadTimeoutMs: 30_000,
    });
    const bundle = await fixtureBundle("gate");
    await engine.load(bundle);
    const reported: number[] = [];
    const pool = new ProcedurePool({
      engine: () => engine,
      send: () => {},
      onDone: () => {},
      afterTransaction: () => {},
      onFatal: () => {},
      // The thread's code loads and then never says it started (as code failing outside any
      // call, whose error event cannot be listened to, would).
      setExtraThreads: (extra, wantCode) => {
        reported.push(extra);
        return Promise.resolve(wantCode ? "// never answers\n" : undefined);
      },
      threadStartTimeoutMs: 300,
    });
    try {
      await pool.started();
      pool.configure({ threads: 2, queued: 16 });
      await pool.load(bundle, engine, 30_000);
      const request = (id: number): CallProcedureRequest => ({
        kind: "procedure",
        id,
        procedure: "entries",
        args: new Uint8Array(0),
        sender: 1n,
        connectionId: 0n,
        timestampMicros: 0n,
      });
      pool.call(request(1), 0);
      pool.call(request(2), 0);
      await waitUntil(() => reported.length === 2, "the start gave up and released its share");
      assertEquals(reported, [1, 0]);
      assertEquals(pool.threadCount, 1);
      const logs = engine.drainLogs().map((line) => JSON.stringify(line)).join("\n");
      assertEquals(
        /Could not start another procedure thread.*did not start within 300 ms/.test(logs),
        true,
        logs,
      );
    } finally {
      pool.close();
    }
  },
});
