/**
 * Per-sender view instances that read a table whole are capped (VIEW_INSTANCES_READING_TABLE_MAX):
 * each is re-run inside every write to that table, and anonymous connections are free identities,
 * so without a cap the writer paid for every subscriber (1.6 s per insert at 200 subscribers of a
 * view scanning 20k rows). Past the cap a new sender's subscription is refused with a clear error;
 * a sender already subscribed shares its instance; a write re-runs at most the cap; an
 * unsubscribe frees a place. The time of one insert at the cap is printed (never asserted).
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { VIEW_INSTANCES_READING_TABLE_MAX } from "../lib/limits.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

/** Captured before the module loads (its console writes to the module log). */
const print = console.log.bind(console);
const clock = new ManualClock();
const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 7n,
  ownerIdentity: 1n,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("redteam"));
const host = new SubscriptionHost(engine);

function fill(count: number) {
  const w = new BinaryWriter(8);
  w.writeU32(count);
  const result = engine.callReducer(1, "fill", w.finish(), 1n, 0n, clock.nowMicros());
  assertEquals(result.status, "committed", result.message);
  for (const tx of engine.drainCommitted()) host.onCommit(tx.delta);
}

let nextConnection = 1n;
function subscribe(sender: bigint) {
  const connectionId = nextConnection++;
  const result = host.subscribe({
    kind: "subscribe",
    id: 1,
    connectionId,
    querySetId: 1,
    queries: ["SELECT * FROM scan_view"],
    sender,
    isOwner: false,
  });
  return { connectionId, result };
}

Deno.test("per-sender instances reading a table whole are capped; the same sender shares one", () => {
  fill(20_000);
  const senderOf = (i: number) => 0x5000n + BigInt(i);
  const connections: bigint[] = [];
  for (let i = 0; i < VIEW_INSTANCES_READING_TABLE_MAX; i++) {
    const { connectionId, result } = subscribe(senderOf(i));
    assert(result.ok, result.ok ? "" : result.error);
    connections.push(connectionId);
  }
  const refused = subscribe(senderOf(VIEW_INSTANCES_READING_TABLE_MAX)).result;
  assert(!refused.ok, "one more sender is refused");
  assertMatch(
    refused.error ?? "",
    new RegExp(
      `${VIEW_INSTANCES_READING_TABLE_MAX} per-sender view instances already read table \`item\``,
    ),
  );
  // A second connection of a subscribed identity shares that identity's instance.
  assert(subscribe(senderOf(0)).result.ok, "the same sender shares its instance");

  const runsBefore = engine.views.runCount;
  const started = performance.now();
  fill(1);
  const elapsedMs = performance.now() - started;
  assertEquals(engine.views.runCount - runsBefore, VIEW_INSTANCES_READING_TABLE_MAX);
  print(
    `one insert with ${VIEW_INSTANCES_READING_TABLE_MAX} instances scanning 20k rows: ` +
      `${elapsedMs.toFixed(0)} ms`,
  );

  // Unsubscribing one sender frees its place.
  host.dropClient(connections[5]);
  assert(subscribe(senderOf(1_000)).result.ok, "a freed place is taken");
});
