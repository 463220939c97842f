/**
 * The engine's schedule rules with a manual clock and the real ticks fixture (official module
 * library): Interval ticks stay on the intended-time grid and skip missed ticks, a `Time` run
 * gets timestamp max(intended, now), sender = database identity, and its row is deleted in a
 * transaction of its own. (Reloading on start is covered end to end in
 * tests/e2e/schedule_test.ts.)
 */
import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const DATABASE = 7n;
const OWNER = 1n;

function args(write: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter(64);
  write(w);
  return w.finish();
}

/**
 * One engine for the whole file: the module library keeps per-isolate state, so a second
 * module instance in the same isolate would not work (each database has its own worker).
 */
const clock = new ManualClock();
let loaded: Promise<DatabaseEngine> | undefined;

function loadTicks(): Promise<DatabaseEngine> {
  return loaded ??= load();
}

async function load(): Promise<DatabaseEngine> {
  const engine = new DatabaseEngine({
    clock,
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: DATABASE,
    ownerIdentity: OWNER,
    loadTimeoutMs: 30_000,
  });
  await engine.load(await fixtureBundle("ticks"));
  engine.armAllSchedules();
  return engine;
}

Deno.test("an Interval schedule skips missed ticks and stays on its intended-time grid", async () => {
  const engine = await loadTicks();
  const start = clock.nowMicros();
  const call = engine.callReducer(
    1,
    "start_ticking",
    args((w) => w.writeU64(50n)),
    OWNER,
    0n,
    start,
  );
  strictEqual(call.status, "committed");
  engine.drainCommitted();
  strictEqual(engine.nextScheduleDueMicros(), Number(start + 50_000n), "first tick at now + d");
  strictEqual(engine.runDueSchedules(100), 0, "nothing is due yet");
  clock.advanceMs(50);
  strictEqual(engine.runDueSchedules(100), 1);
  strictEqual(engine.nextScheduleDueMicros(), Number(start + 100_000n));
  // Late by 125 ms: one run (for the tick due at +100), then the next grid point after now.
  clock.advanceMs(175);
  strictEqual(engine.runDueSchedules(100), 1);
  strictEqual(engine.nextScheduleDueMicros(), Number(start + 250_000n));
  const ticks = engine.drainCommitted();
  assertEquals(ticks.map((tx) => [tx.reducer, tx.sender, tx.connectionId]), [
    ["tick", DATABASE, 0n],
    ["tick", DATABASE, 0n],
  ]);
  // The second run was intended for +100 ms and ran at +225 ms: its timestamp is now.
  assertEquals(ticks.map((tx) => tx.timestampMicros), [start + 50_000n, start + 225_000n]);
  strictEqual(
    engine.callReducer(2, "stop_ticking", new Uint8Array(), OWNER, 0n, start).status,
    "committed",
  );
  strictEqual(engine.nextScheduleDueMicros(), undefined, "deleting the row disarmed it");
});

Deno.test("a Time run gets max(intended, now), then its row is deleted in its own transaction", async () => {
  const engine = await loadTicks();
  const start = clock.nowMicros();
  const due = start + 300_000n;
  const alarm = args((w) => {
    w.writeString("a");
    w.writeI64(due);
  });
  strictEqual(engine.callReducer(1, "add_alarm", alarm, OWNER, 0n, start).status, "committed");
  engine.drainCommitted();
  clock.advanceMs(299);
  strictEqual(engine.runDueSchedules(100), 0, "not early");
  clock.advanceMs(101);
  strictEqual(engine.runDueSchedules(100), 1);
  const txs = engine.drainCommitted();
  assertEquals(txs.map((tx) => [tx.reducer, tx.sender, tx.timestampMicros]), [
    ["ring", DATABASE, start + 400_000n],
    ["", DATABASE, start + 400_000n],
  ]);
  const alarmTable = engine.datastore.tableIdFromName("alarm")!;
  const deletion = txs[1].delta.tables.find((table) => table.tableId === alarmTable)!;
  assertEquals([deletion.inserts.length, deletion.deletes.length], [0, 1]);
  strictEqual(engine.datastore.committedCount(alarmTable), 0);
  strictEqual(engine.pendingScheduleCount, 0);
});

Deno.test("resumeSchedules() puts an Interval back on its grid after a restart re-armed it at now + d", async () => {
  const engine = await loadTicks();
  const start = clock.nowMicros();
  const call = engine.callReducer(
    3,
    "start_ticking",
    args((w) => w.writeU64(1000n)),
    OWNER,
    0n,
    start,
  );
  strictEqual(call.status, "committed");
  engine.drainCommitted();
  clock.advanceMs(300);
  // What hibernation keeps: the armed row with its intended time.
  const saved = engine.armedSchedules();
  assertEquals(saved.map((entry) => entry.intendedMicros), [start + 1_000_000n]);
  // A restart arms every row from the tables: an Interval at now + d.
  engine.armAllSchedules();
  strictEqual(engine.nextScheduleDueMicros(), Number(start + 1_300_000n));
  engine.resumeSchedules(saved);
  strictEqual(engine.nextScheduleDueMicros(), Number(start + 1_000_000n), "back on its grid");
  strictEqual(
    engine.callReducer(4, "stop_ticking", new Uint8Array(), OWNER, 0n, clock.nowMicros()).status,
    "committed",
  );
  engine.drainCommitted();
  // A row deleted since is not brought back.
  engine.resumeSchedules(saved);
  strictEqual(engine.nextScheduleDueMicros(), undefined);
});
