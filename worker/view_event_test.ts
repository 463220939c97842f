/**
 * A view over an event table behaves as in SpacetimeDB (which neither refuses such a module at
 * publish nor the view at run time for TypeScript modules): the view re-runs inside the
 * transaction that inserts events and sees them; its rows stay after the commit (the event rows
 * do not) until the next transaction that writes the event table; other writes leave it alone.
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryReader, BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const clock = new ManualClock();
const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 7n,
  ownerIdentity: 1n,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("view_event"));
const host = new SubscriptionHost(engine);

const text = (row: Uint8Array) => new BinaryReader(row).readString();

function call(name: string, write: (w: BinaryWriter) => void) {
  const w = new BinaryWriter(64);
  write(w);
  const result = engine.callReducer(1, name, w.finish(), 0x1001n, 0n, clock.nowMicros());
  strictEqual(result.status, "committed", result.message);
  return engine.drainCommitted().flatMap((tx) => host.onCommit(tx.delta)).map((delta) => ({
    table: delta.table,
    inserts: delta.inserts.map(text),
    deletes: delta.deletes.map(text),
  }));
}

Deno.test("a view over an event table shows the events of the last transaction that wrote it", () => {
  const subscribed = host.subscribe({
    kind: "subscribe",
    id: 1,
    connectionId: 1n,
    querySetId: 1,
    queries: ["SELECT * FROM recent_pings"],
    sender: 0x1001n,
    isOwner: false,
  });
  assert(subscribed.ok, subscribed.error);
  assertEquals(subscribed.rows![0].rows, []);
  assertEquals(call("send_ping", (w) => w.writeString("a")), [
    { table: "recent_pings", inserts: ["a"], deletes: [] },
  ]);
  // A write that does not touch the event table leaves the view's rows as they are.
  assertEquals(call("add_note", (w) => w.writeU32(1)), []);
  assertEquals(call("send_ping", (w) => w.writeString("b")), [
    { table: "recent_pings", inserts: ["b"], deletes: ["a"] },
  ]);
  const read = host.query({
    kind: "query",
    id: 2,
    sql: "SELECT * FROM recent_pings",
    sender: 0x1001n,
    isOwner: false,
  });
  assert(read.ok, read.error);
  assertEquals(read.rows!.rows.map(text), ["b"]);
});
