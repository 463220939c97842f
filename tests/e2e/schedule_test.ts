/**
 * Scheduled reducers end to end, with the official spacetimedb module library and SDK:
 * an Interval schedule drives a counter an SDK subscriber sees live, deleting the row stops
 * it, a past `Time` fires at once, a rolled-back or deleted row never fires,
 * `volatile_nonatomic_schedule_immediate` runs after its transaction, a scheduled procedure
 * runs after its row is deleted, 10,000 one-shots all
 * fire exactly once and none early, and after SIGKILL + restart or a module update the
 * schedules resume.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import {
  call,
  fixtureBundle,
  publish,
  startServerProcess,
  startTestServer,
} from "../support/server.ts";
import { connectTicks, type DbConnection } from "../fixtures/bindings/ticks/index.ts";

/** Resolves once `predicate` holds (bounded; generous for a loaded machine). */
async function eventually(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
  pollMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function subscribe(conn: DbConnection, queries: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(queries);
  });
}

async function ok(url: string, database: string, reducer: string, args: unknown[]) {
  const response = await call(url, database, reducer, args);
  assertEquals(response.status, 200, `${reducer} failed: ${response.text}`);
  return response;
}

/** [runs, distinct alarms, runs whose timestamp is before the due time, pending alarms]. */
async function firedSummary(url: string, database: string, label: string): Promise<number[]> {
  const response = await ok(url, database, "fired_summary", [label]);
  return (response.json as (number | bigint)[]).map(Number);
}

async function counterValue(url: string, database: string): Promise<number> {
  return Number((await ok(url, database, "counter_value", [])).json);
}

function nowMicros(): bigint {
  return BigInt(Date.now()) * 1000n;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

Deno.test({
  name: "scheduled reducers: ticks, cancel, one-shots, rollback, immediate, 10,000 alarms",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const db = "ticks";
    let conn: DbConnection | undefined;
    try {
      await publish(server.url, db, await fixtureBundle("ticks"));
      const identity = String((await ok(server.url, db, "database_identity", [])).json);
      conn = await connectTicks(server.url, db);
      await subscribe(conn, ["SELECT * FROM counter", "SELECT * FROM fired"]);
      const seen: { value: bigint; sender: string }[] = [];
      conn.db.counter.onInsert((_ctx, row) => seen.push(row));
      conn.db.counter.onUpdate((_ctx, _old, row) => seen.push(row));
      const firedArrivals = new Map<bigint, { dueMicros: bigint; arrivedMicros: bigint }>();
      conn.db.fired.onInsert((_ctx, row) => {
        if (row.label === "many") {
          firedArrivals.set(row.id, { dueMicros: row.due_micros, arrivedMicros: nowMicros() });
        }
      });

      await t.step("an Interval schedule at 50 ms drives a counter seen live", async () => {
        await ok(server.url, db, "start_ticking", [50]);
        await eventually(() => seen.length >= 5, "five ticks at the subscriber");
        const values = seen.map((row) => row.value);
        assertEquals(values.slice(0, 5), [1n, 2n, 3n, 4n, 5n], "one increment per tick, in order");
        assert(seen.every((row) => row.sender === identity), "sender is the database identity");
      });

      await t.step(
        "a scheduled reducer is private: other callers get 'no such reducer'",
        async () => {
          const stranger = await call(server.url, db, "tick", [{
            scheduled_id: 1,
            scheduled_at: { Interval: { __time_duration_micros__: 1 } },
          }]);
          assert(stranger.status !== 200, "a stranger cannot call the scheduled reducer");
          assertMatch(stranger.text, /no such reducer/);
        },
      );

      await t.step("deleting the schedule row stops it", async () => {
        await ok(server.url, db, "stop_ticking", []);
        await sleep(300);
        const stopped = await counterValue(server.url, db);
        await sleep(500);
        assertEquals(await counterValue(server.url, db), stopped, "no tick after the delete");
      });

      await t.step("a Time schedule in the past fires at once, then its row is gone", async () => {
        await ok(server.url, db, "add_alarm", ["past", nowMicros() - 10_000_000n]);
        await eventually(
          async () => (await firedSummary(server.url, db, "past"))[0] === 1,
          "the past alarm",
        );
        const [runs, alarms, early, pending] = await firedSummary(server.url, db, "past");
        assertEquals([runs, alarms, early, pending], [1, 1, 0, 0]);
      });

      await t.step("a rolled-back insert and a deleted row never fire", async () => {
        // The delete must commit before the alarm is due. Two calls can take longer than any
        // fixed lead on a loaded machine (with 200 ms the "cancelled" alarm fired at load 15), so
        // a round whose cancel answered after the due time proves nothing and is repeated with
        // twice the lead.
        let leadMicros = 500_000n;
        for (let round = 0;; round++) {
          assert(round < 6, "no round cancelled its alarm before it was due");
          const [rolled, cancelled, control] = ["rolled", "cancelled", "control"].map((label) =>
            `${label}-${round}`
          );
          const soon = nowMicros() + leadMicros;
          const refused = await call(server.url, db, "add_alarm_then_fail", [rolled, soon]);
          assert(refused.status !== 200, "the reducer failed");
          await ok(server.url, db, "add_alarm", [cancelled, soon]);
          await ok(server.url, db, "cancel_alarms", [cancelled]);
          const cancelAnsweredMicros = nowMicros();
          await ok(server.url, db, "add_alarm", [control, soon]);
          if (cancelAnsweredMicros >= soon) {
            leadMicros *= 2n;
            continue;
          }
          await eventually(
            async () => (await firedSummary(server.url, db, control))[0] === 1,
            "the control alarm",
          );
          await sleep(300);
          assertEquals((await firedSummary(server.url, db, rolled))[0], 0);
          assertEquals((await firedSummary(server.url, db, cancelled))[0], 0);
          break;
        }
      });

      await t.step("a delay over 2^36 - 1 ms fails the insert (errno 13)", async () => {
        const threeYears = 3n * 365n * 24n * 3600n * 1_000_000n;
        const refused = await call(server.url, db, "add_alarm", ["far", nowMicros() + threeYears]);
        assert(refused.status !== 200, "the insert failed");
        const yearAhead = await call(server.url, db, "add_alarm", [
          "year",
          nowMicros() + threeYears / 3n,
        ]);
        assertEquals(yearAhead.status, 200, "a one-year delay is allowed");
        assertEquals((await firedSummary(server.url, db, "year"))[3], 1, "one alarm pending");
        await ok(server.url, db, "cancel_alarms", ["year"]);
      });

      await t.step("volatile_nonatomic_schedule_immediate runs after the transaction", async () => {
        await ok(server.url, db, "bump_soon", []);
        await eventually(
          async () => (await firedSummary(server.url, db, "immediate-after"))[0] === 1,
          "the immediate run",
        );
        assertEquals((await firedSummary(server.url, db, "immediate-before"))[0], 0);
        const rows = [...conn!.db.fired.iter()].filter((row) => row.label === "immediate-after");
        assertEquals(rows.map((row) => row.sender), [identity]);
      });

      await t.step("10,000 one-shots over 2 s fire exactly once each, none early", async () => {
        const count = 10_000;
        const start = nowMicros() + 500_000n;
        await ok(server.url, db, "add_alarms", ["many", count, start, 2_000_000n]);
        await eventually(
          async () => (await firedSummary(server.url, db, "many"))[0] >= count,
          "10,000 alarms",
          60_000,
          // Each poll scans the tables in the database worker: rarely, not to delay the runs.
          500,
        );
        await sleep(500);
        const [runs, alarms, early, pending] = await firedSummary(server.url, db, "many");
        assertEquals({ runs, alarms, early, pending }, {
          runs: count,
          alarms: count,
          early: 0,
          pending: 0,
        });
        await eventually(() => firedArrivals.size >= count, "every alarm at the subscriber");
        const earlyArrivals = [...firedArrivals.values()].filter((row) =>
          row.arrivedMicros < row.dueMicros
        );
        assertEquals(earlyArrivals.length, 0, "no alarm reached the subscriber before its time");
        const lateness = [...conn!.db.fired.iter()]
          .filter((row) => row.label === "many")
          .map((row) => Number(row.timestamp_micros - row.due_micros) / 1000)
          .sort((a, b) => a - b);
        console.log(
          `10,000 one-shots: run lateness p50 ${percentile(lateness, 0.5).toFixed(1)} ms, ` +
            `p99 ${percentile(lateness, 0.99).toFixed(1)} ms, max ${
              lateness[lateness.length - 1].toFixed(1)
            } ms`,
        );
      });

      await t.step(
        "a scheduled procedure runs; its Time row is deleted before the run",
        async () => {
          await ok(server.url, db, "add_chime", ["once", nowMicros() - 1000n, 0]);
          await eventually(
            async () => (await firedSummary(server.url, db, "once-row-gone"))[0] === 1,
            "the one-shot procedure",
          );
          assertEquals((await firedSummary(server.url, db, "once-row-kept"))[0], 0);
          const rows = [...conn!.db.fired.iter()].filter((row) => row.label === "once-row-gone");
          assertEquals(rows.map((row) => row.sender), [identity]);
          await ok(server.url, db, "add_chime", ["every", 0, 30]);
          await eventually(
            async () => (await firedSummary(server.url, db, "every-row-kept"))[0] >= 3,
            "three interval procedure runs",
          );
          await ok(server.url, db, "cancel_chimes", []);
          await sleep(200);
          const stopped = (await firedSummary(server.url, db, "every-row-kept"))[0];
          await sleep(300);
          assertEquals((await firedSummary(server.url, db, "every-row-kept"))[0], stopped);
        },
      );

      await t.step("ctx.http.fetch without an allow-list fails naming the flag", async () => {
        const text = String((await ok(server.url, db, "try_fetch", [])).json);
        assertMatch(text, /module outbound HTTP requests are disabled .*--http-allow ticks=/);
      });
    } finally {
      conn?.disconnect();
      await server.close();
    }
  },
});

Deno.test({
  name: "schedules resume after SIGKILL + restart and after a module update",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let server = await startServerProcess();
    const dataDir = server.dataDir;
    try {
      const db = "ticks";
      const bundle = await fixtureBundle("ticks");
      const owner = await publish(server.url, db, bundle);
      await ok(server.url, db, "start_ticking", [50]);
      await eventually(async () => (await counterValue(server.url, db)) >= 3, "three ticks");
      // A one-shot that runs (and whose row is deleted) before the kill: it must not run again.
      await ok(server.url, db, "add_alarm", ["before-kill", nowMicros() - 1000n]);
      await eventually(
        async () => (await firedSummary(server.url, db, "before-kill"))[0] === 1,
        "the one-shot before the kill",
      );
      // A one-shot due after the restart: the Time row must be reloaded and fire.
      await ok(server.url, db, "add_alarm", ["after-restart", nowMicros() + 1_500_000n]);
      await server.stop("SIGKILL");
      server = await startServerProcess({ dataDir });
      const afterRestart = await counterValue(server.url, db);
      await eventually(
        async () => (await counterValue(server.url, db)) >= afterRestart + 3,
        "ticks after the restart",
      );
      await eventually(
        async () => (await firedSummary(server.url, db, "after-restart"))[0] === 1,
        "the one-shot after the restart",
      );
      assertEquals((await firedSummary(server.url, db, "before-kill"))[0], 1, "ran once only");
      // A module update reloads the schedules in the new worker: the ticks go on.
      await publish(server.url, db, bundle + "\n// v2\n", { token: owner.token });
      const afterUpdate = await counterValue(server.url, db);
      await eventually(
        async () => (await counterValue(server.url, db)) >= afterUpdate + 3,
        "ticks after the module update",
      );
      await ok(server.url, db, "stop_ticking", []);
    } finally {
      await server.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
