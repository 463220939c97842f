/**
 * Views inside the engine with the real `views_rls` fixture (official module library): one
 * per-sender instance per subscribed identity, a write re-runs only the instance whose index
 * point it touches and delivers its diff to that sender's query only, unsubscribing drops the
 * instance, a view failing inside a reducer's transaction rolls it back, and the cost of a
 * reducer call with 1,000 live instances is printed (never asserted).
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

/** Captured before the module loads (its console writes to the module log). */
const print = console.log.bind(console);
const DATABASE = 7n;
const OWNER = 1n;
const clock = new ManualClock();

function args(write: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter(64);
  write(w);
  return w.finish();
}

/** One engine for the file: the module library keeps per-isolate state. */
const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: DATABASE,
  ownerIdentity: OWNER,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("views_rls"));
const host = new SubscriptionHost(engine);

function reducer(name: string, sender: bigint, body: (w: BinaryWriter) => void) {
  const result = engine.callReducer(1, name, args(body), sender, 0n, clock.nowMicros());
  const deltas = engine.drainCommitted().flatMap((tx) => host.onCommit(tx.delta));
  return { result, deltas };
}

const SENDERS = 1000;
const senderOf = (i: number) => 0x1000n + BigInt(i);

Deno.test("per-sender instances: a write re-runs and updates only the instance it touches", () => {
  for (let i = 0; i < SENDERS; i++) {
    const { result } = reducer("add_person", senderOf(i), (w) => {
      w.writeU32(i);
      w.writeString(`p${i}`);
      w.writeU32(20);
    });
    strictEqual(result.status, "committed", result.message);
  }
  const queryIds: number[] = [];
  for (let i = 0; i < SENDERS; i++) {
    const subscribed = host.subscribe({
      kind: "subscribe",
      id: i,
      connectionId: BigInt(i + 1),
      querySetId: 1,
      queries: ["SELECT * FROM me"],
      sender: senderOf(i),
      isOwner: false,
    });
    assert(subscribed.ok, subscribed.error);
    assertEquals(subscribed.rows!.map((rows) => rows.rows.length), [1]);
    queryIds.push(subscribed.queryIds![0]);
  }
  strictEqual(engine.views.runCount, SENDERS);
  strictEqual(new Set(queryIds).size, SENDERS);

  const { deltas } = reducer("set_name", senderOf(7), (w) => {
    w.writeU32(7);
    w.writeString("seven");
  });
  strictEqual(engine.views.runCount, SENDERS + 1);
  assertEquals(deltas.map((delta) => [delta.queryId, delta.table]), [[queryIds[7], "me"]]);
  assertEquals(deltas[0].inserts.length, 1);
  assertEquals(deltas[0].deletes.length, 1);

  // A write no view reads re-runs nothing.
  reducer("add_pet", senderOf(1), (w) => {
    w.writeU32(1);
    w.writeU32(1);
    w.writeString("cat");
  });
  strictEqual(engine.views.runCount, SENDERS + 1);

  // Cost of a reducer call that touches one of 1,000 live instances (printed, not asserted).
  const calls = 2000;
  const started = performance.now();
  for (let n = 0; n < calls; n++) {
    reducer("set_name", senderOf(n % SENDERS), (w) => {
      w.writeU32(n % SENDERS);
      w.writeString(`n${n}`);
    });
  }
  const withViews = (performance.now() - started) / calls;
  print(
    `set_name with ${SENDERS} live per-sender view instances: ${
      (withViews * 1000).toFixed(1)
    } µs per call (one view re-run each)`,
  );
});

Deno.test("unsubscribing drops the instance; a failing view rolls back the reducer", () => {
  for (let i = 0; i < SENDERS; i++) {
    const done = host.unsubscribe({
      kind: "unsubscribe",
      id: i,
      connectionId: BigInt(i + 1),
      querySetId: 1,
      sendDroppedRows: false,
    });
    assert(done.ok, done.error);
  }
  strictEqual(engine.views.hasInstances, false);
  const calls = 2000;
  const started = performance.now();
  for (let n = 0; n < calls; n++) {
    reducer("set_name", senderOf(n % SENDERS), (w) => {
      w.writeU32(n % SENDERS);
      w.writeString(`m${n}`);
    });
  }
  print(
    `set_name with no view instance: ${
      ((performance.now() - started) / calls * 1000).toFixed(1)
    } µs per call`,
  );

  const subscribed = host.subscribe({
    kind: "subscribe",
    id: 1,
    connectionId: 99n,
    querySetId: 1,
    queries: ["SELECT * FROM fragile"],
    sender: senderOf(0),
    isOwner: false,
  });
  assert(subscribed.ok, subscribed.error);
  const { result } = reducer("set_fail", senderOf(0), (w) => w.writeBool(true));
  strictEqual(result.status, "failed_internal");
  strictEqual(result.message, "The instance encountered a fatal error.");
  // The flag row was rolled back: the owner's one-off read finds no row.
  const flag = host.query({
    kind: "query",
    id: 2,
    sql: "SELECT * FROM flag",
    sender: OWNER,
    isOwner: true,
  });
  assert(flag.ok, flag.error);
  assertEquals(flag.rows!.rows, []);
  const logs = engine.drainLogs().map((line) => line.message).join("\n");
  assert(logs.includes("fragile view refuses"), logs);
});
