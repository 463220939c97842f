/**
 * A read replica's engine (`readOnly`, replication/follower.ts): every write path refuses with
 * the replica's text, and the state changes only by replicated transactions, applied in order
 * and committed like local ones (so they reach the replica's log and subscribers).
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { decodeTxRecord, encodeTxRecord, type TxRecord } from "../storage/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const READ_ONLY = "This server is a read replica: writes are refused";

function person(id: number, name: string): Uint8Array {
  const w = new BinaryWriter(32);
  w.writeU32(id);
  w.writeString(name);
  return w.finish();
}

function record(tableId: number, rows: Uint8Array[], reducerName = "add"): TxRecord {
  const caller = new Uint8Array(32);
  caller[0] = 5;
  return decodeTxRecord(encodeTxRecord({
    reducerName,
    callerIdentity: caller,
    callerConnectionId: new Uint8Array(16),
    timestampMicros: 1_000n,
    args: new Uint8Array(0),
    tables: [{ tableId, inserts: rows, deletes: [] }],
    sequences: [],
  }));
}

Deno.test("a read-only engine refuses writes and applies replicated transactions in order", async () => {
  const engine = new DatabaseEngine({
    clock: new ManualClock(),
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: 7n,
    ownerIdentity: 1n,
    loadTimeoutMs: 30_000,
    readOnly: READ_ONLY,
  });
  await engine.load(await fixtureBundle("migrate_v1"));
  const tableId = engine.datastore.tableIdFromName("person")!;
  const args = new BinaryWriter(32);
  args.writeU32(1);
  args.writeString("Ann");
  const called = engine.callReducer(1, "add", args.finish(), 1n, 0n, 1_000n);
  assertEquals([called.status, called.message], ["failed_internal", READ_ONLY]);
  const dml = engine.runHostTransaction(1n, 1_000n, () => "changed");
  assert(!dml.ok && (dml.error as Error).message === READ_ONLY);
  const procedure = engine.callProcedure(2, "anything", new Uint8Array(0), 1n, 0n, 1_000n);
  assertEquals([procedure.ok, procedure.message], [false, READ_ONLY]);
  assertEquals(engine.drainCommitted(), []);

  engine.applyReplicated(record(tableId, [person(1, "Ann"), person(2, "Bob")]), 1);
  const committed = engine.drainCommitted();
  assertEquals(committed.map((tx) => [tx.txOffset, tx.reducer, tx.sender]), [[1, "add", 5n]]);
  assertEquals(engine.datastore.committedRows(tableId).length, 2);
  assertEquals(engine.txOffset, 1);

  // Out of order (a gap or a repeat) is refused before anything changes.
  throws(() => engine.applyReplicated(record(tableId, [person(3, "Cy")]), 3), /out of order/);
  throws(() => engine.applyReplicated(record(tableId, [person(3, "Cy")]), 1), /out of order/);
  // A schema change must come as a module update, not as a bare record.
  throws(
    () => engine.applyReplicated(record(tableId, [], ":migrate"), 2),
    /arrived before its module update/,
  );
  assertEquals(engine.datastore.committedRows(tableId).length, 2);
  assertEquals(engine.txOffset, 1);
});
