/**
 * A read replica's views (`readOnly`, replication/follower.ts): a replicated transaction re-runs
 * the view instances it touches, as a local commit would, and their changes travel with it to
 * the subscribers. (A file of its own: a module's hooks are per process, one engine per file.)
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { decodeTxRecord, encodeTxRecord, type TxRecord } from "../storage/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const READ_ONLY = "This server is a read replica: writes are refused";

function record(tableId: number, rows: Uint8Array[], reducerName: string): TxRecord {
  return decodeTxRecord(encodeTxRecord({
    reducerName,
    callerIdentity: new Uint8Array(32),
    callerConnectionId: new Uint8Array(16),
    timestampMicros: 1_000n,
    args: new Uint8Array(0),
    tables: [{ tableId, inserts: rows, deletes: [] }],
    sequences: [],
  }));
}

function pet(id: number, species: string): Uint8Array {
  const w = new BinaryWriter(32);
  w.writeU32(id);
  w.writeU32(1);
  w.writeString(species);
  return w.finish();
}

function flag(fail: boolean): Uint8Array {
  const w = new BinaryWriter(8);
  w.writeU32(1);
  w.writeBool(fail);
  return w.finish();
}

/** The u64 count of a `pet_count` row. */
function count(row: Uint8Array): bigint {
  return new DataView(row.buffer, row.byteOffset, row.byteLength).getBigUint64(0, true);
}

Deno.test("a read-only engine re-runs the views a replicated transaction touches", async () => {
  const engine = new DatabaseEngine({
    clock: new ManualClock(),
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: 7n,
    ownerIdentity: 1n,
    loadTimeoutMs: 30_000,
    readOnly: READ_ONLY,
  });
  await engine.load(await fixtureBundle("views_rls"));
  const petTable = engine.datastore.tableIdFromName("pet")!;
  const flagTable = engine.datastore.tableIdFromName("flag")!;
  const petCount = engine.materializeView(engine.views.viewNamed("pet_count")!, 0n);
  const fragile = engine.materializeView(engine.views.viewNamed("fragile")!, 0n);
  engine.views.retain(petCount.tableId);
  engine.views.retain(fragile.tableId);
  assertEquals(engine.views.rows(petCount.tableId).map(count), [0n]);

  engine.applyReplicated(record(petTable, [pet(1, "cat"), pet(2, "dog")], "add_pet"), 1);
  const [first] = engine.drainCommitted();
  assert(first.hasViewTables, "the view change travels with the transaction");
  const change = first.delta.tables.find((table) => table.tableId === petCount.tableId);
  assert(change, "no change of the pet_count instance");
  assertEquals([change.inserts.map(count), change.deletes.map(count)], [[2n], [0n]]);
  assertEquals(engine.views.rows(petCount.tableId).map(count), [2n]);

  // A transaction the view does not read leaves it alone; a view that fails on the replica
  // (the primary had no instance of it, or the transaction would not have committed) is
  // logged and keeps its rows, and the transaction stands.
  engine.drainLogs();
  engine.applyReplicated(record(flagTable, [flag(true)], "set_fail"), 2);
  const [second] = engine.drainCommitted();
  assertEquals(second.txOffset, 2);
  assert(!second.delta.tables.some((table) => table.tableId === petCount.tableId));
  assertEquals(engine.datastore.committedRows(flagTable).length, 1);
  assertEquals(engine.views.rows(fragile.tableId).length, 1);
  const logged = engine.drainLogs().map((line) => line.message).join("\n");
  assert(/fragile/.test(logged) && /replicated transaction 2/.test(logged), logged);
});
