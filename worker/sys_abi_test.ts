import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { Datastore, type MutTx, type TableSchema } from "../storage/mod.ts";
import { createSyscalls, type SysEnv } from "./sys_abi.ts";

// accounts(id u32 primary key, balance u32), index 0 on id, index 1 (not unique) on balance.
const ACCOUNTS: TableSchema = {
  tableId: 0,
  name: "accounts",
  sourceName: "accounts",
  rowType: {
    elements: [
      { name: "id", algebraicType: { tag: "U32" } },
      { name: "balance", algebraicType: { tag: "U32" } },
    ],
  },
  typespace: [],
  primaryKey: [0],
  indexes: [{
    indexId: 0,
    name: "accounts_id_idx_btree",
    sourceName: "accounts_id_idx_btree",
    accessorName: "id",
    algorithm: "btree",
    columns: [0],
    unique: true,
  }, {
    indexId: 1,
    name: "accounts_balance_idx_btree",
    sourceName: "accounts_balance_idx_btree",
    accessorName: "balance",
    algorithm: "btree",
    columns: [1],
    unique: false,
  }],
  uniqueConstraints: [[0]],
  sequences: [],
  isPublic: true,
  isEvent: false,
};

function setup() {
  const datastore = new Datastore([ACCOUNTS]);
  let tx: MutTx | undefined;
  const env: SysEnv = {
    tx: () => tx,
    tableIdFromName: (name) => datastore.tableIdFromName(name),
    indexIdFromName: (name) => datastore.indexIdFromName(name),
    errorConstructor: () => undefined,
    databaseIdentity: () => 1n,
    jwtPayload: () => new Uint8Array(),
    consoleLog: () => {},
    poison: () => {},
    isPoisoned: () => false,
    scheduleImmediate: () => {},
    nowMicros: () => 0n,
    startAnonymousTx: () => {
      if (tx) return false;
      tx = datastore.beginMutTx();
      return true;
    },
    commitAnonymousTx: () => {
      if (!tx) return false;
      tx.commit();
      tx = undefined;
      return true;
    },
    abortAnonymousTx: () => false,
  };
  const sys = createSyscalls(env);
  const v20 = sys.v20 as Record<string, (...args: unknown[]) => number>;
  const buffer = new ArrayBuffer(1024);
  const view = new DataView(buffer);
  tx = datastore.beginMutTx();
  for (let id = 0; id < 4; id++) {
    view.setUint32(0, id, true);
    view.setUint32(4, 100 + id, true);
    v20.datastore_insert_bsatn(0, buffer, 8);
  }
  tx.commit();
  tx = datastore.beginMutTx();
  const commit = () => {
    const delta = tx!.commit();
    tx = undefined;
    return delta;
  };
  return { sys, v20, buffer, view, commit };
}

Deno.test("interleaved point-scan iterators each yield their own row and then end", () => {
  const { sys, v20, buffer, view } = setup();
  view.setUint32(0, 1, true);
  const first = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  view.setUint32(0, 2, true);
  const second = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  view.setUint32(0, 3, true);
  const third = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  strictEqual(v20.row_iter_bsatn_advance(first, buffer), -8);
  strictEqual(view.getUint32(4, true), 101);
  strictEqual(v20.row_iter_bsatn_advance(third, buffer), -8);
  strictEqual(view.getUint32(4, true), 103);
  // Exhausted iterators are gone; the middle one is still open until the call ends.
  throws(() => v20.row_iter_bsatn_advance(first, buffer));
  throws(() => v20.row_iter_bsatn_advance(third, buffer));
  deepStrictEqual(sys.endCall(), { openIterators: 1, openTimers: 0 });
  throws(() => v20.row_iter_bsatn_advance(second, buffer));
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
});

Deno.test("closing the newest iterator leaves older ones open", () => {
  const { sys, v20, buffer, view } = setup();
  view.setUint32(0, 0, true);
  const older = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  const newer = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  v20.row_iter_bsatn_close(newer);
  v20.row_iter_bsatn_close(12345); // unknown ids are ignored
  throws(() => v20.row_iter_bsatn_advance(newer, buffer));
  strictEqual(v20.row_iter_bsatn_advance(older, buffer), -8);
  strictEqual(view.getUint32(4, true), 100);
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
});

Deno.test("an update stores a copy: later writes to the module's buffer do not change the row", () => {
  const { v20, buffer, view, commit } = setup();
  view.setUint32(0, 2, true);
  view.setUint32(4, 7, true);
  strictEqual(v20.datastore_update_bsatn(0, 0, buffer, 8), 0);
  view.setUint32(4, 999, true);
  const delta = commit();
  deepStrictEqual(delta.tables[0].inserts, [new Uint8Array([2, 0, 0, 0, 7, 0, 0, 0])]);
  deepStrictEqual(delta.tables[0].deletes, [new Uint8Array([2, 0, 0, 0, 102, 0, 0, 0])]);
});

/** The balance column of the row a point scan on `id` yields at its first advance. */
function balanceAfter(
  v20: Record<string, (...args: unknown[]) => number>,
  iterator: number,
  buffer: ArrayBuffer,
): number {
  strictEqual(v20.row_iter_bsatn_advance(iterator, buffer), -8);
  return new DataView(buffer).getUint32(4, true);
}

Deno.test("a unique point scan yields the row as of the scan although writes come before the advance", () => {
  const { sys, v20, buffer, view, commit } = setup();
  const scanned: number[] = [];
  const scan = (id: number) => {
    view.setUint32(0, id, true);
    scanned.push(v20.datastore_index_scan_point_bsatn(0, buffer, 4));
  };
  scan(1);
  view.setUint32(0, 1, true);
  view.setUint32(4, 7, true);
  v20.datastore_update_bsatn(0, 0, buffer, 8); // update
  scan(2);
  view.setUint32(0, 2, true);
  v20.datastore_delete_by_index_scan_point_bsatn(0, buffer, 4); // delete by point
  scan(3);
  view.setUint8(0, 0); // Bound::Included(3) as the start; no end bound: the point 3
  view.setUint32(1, 3, true);
  strictEqual(v20.datastore_delete_by_index_scan_range_bsatn(0, buffer, 0, 0, 5, 0), 1);
  scan(0);
  (sys.v21 as Record<string, (table: number) => bigint>).datastore_clear(0);
  view.setUint32(0, 0, true);
  view.setUint32(4, 55, true);
  v20.datastore_insert_bsatn(0, buffer, 8);
  deepStrictEqual(scanned.map((iterator) => balanceAfter(v20, iterator, buffer)), [
    101,
    102,
    103,
    100,
  ]);
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
  // The transaction itself saw every write.
  deepStrictEqual(commit().tables[0].inserts, [new Uint8Array([0, 0, 0, 0, 55, 0, 0, 0])]);
});

Deno.test("a unique point scan that finds nothing ends at once; a short buffer gets the row size", () => {
  const { sys, v20, buffer, view } = setup();
  view.setUint32(0, 99, true);
  const missing = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  strictEqual(v20.row_iter_bsatn_advance(missing, buffer) === 0, true); // -0: ended, no bytes
  throws(() => v20.row_iter_bsatn_advance(missing, buffer));
  view.setUint32(0, 1, true);
  const found = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  let thrown: unknown;
  try {
    v20.row_iter_bsatn_advance(found, new ArrayBuffer(4));
  } catch (error) {
    thrown = error;
  }
  deepStrictEqual(thrown, { __buffer_too_small__: 8 });
  strictEqual(balanceAfter(v20, found, buffer), 101);
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
});

Deno.test("point scans on a non-unique index and malformed keys behave as before", () => {
  const { sys, v20, buffer, view } = setup();
  view.setUint32(0, 102, true);
  const byBalance = v20.datastore_index_scan_point_bsatn(1, buffer, 4);
  strictEqual(v20.row_iter_bsatn_advance(byBalance, buffer), -8);
  strictEqual(view.getUint32(0, true), 2);
  throws(() => v20.datastore_index_scan_point_bsatn(0, buffer, 3)); // key of the wrong size
  throws(() => v20.datastore_index_scan_point_bsatn(0, buffer, 2048)); // beyond the buffer
  throws(() => v20.datastore_index_scan_point_bsatn(9, buffer, 4)); // no such index
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
});

Deno.test("a point scan left open across a procedure's commit still yields its row", () => {
  const { v20, buffer, view, commit } = setup();
  commit();
  strictEqual(typeof v20.procedure_start_mut_tx(), "bigint");
  view.setUint32(0, 2, true);
  const iterator = v20.datastore_index_scan_point_bsatn(0, buffer, 4);
  v20.procedure_commit_mut_tx();
  strictEqual(balanceAfter(v20, iterator, buffer), 102);
});

/** Advances `iterator` with an 8-byte buffer (one row each) until it ends; balances in order. */
function drainOneByOne(
  v20: Record<string, (...args: unknown[]) => number>,
  iterator: number,
): number[] {
  const small = new ArrayBuffer(8);
  const balances: number[] = [];
  for (;;) {
    const result = v20.row_iter_bsatn_advance(iterator, small);
    if (result === 0) return balances;
    balances.push(new DataView(small).getUint32(4, true));
    if (result < 0) return balances;
  }
}

Deno.test("table and range scans yield the rows as of the scan while writes land between advances", () => {
  const { sys, v20, buffer, view, commit } = setup();
  const scan = v20.datastore_table_scan_bsatn(0);
  view.setUint8(0, 0); // index 0 from Bound::Included(1), unbounded end
  view.setUint32(1, 1, true);
  view.setUint8(5, 2);
  const range = v20.datastore_index_scan_range_bsatn(0, buffer, 0, 0, 5, 1);
  const small = new ArrayBuffer(8);
  strictEqual(v20.row_iter_bsatn_advance(scan, small), 8);
  strictEqual(new DataView(small).getUint32(4, true), 100);
  view.setUint32(0, 2, true);
  view.setUint32(4, 7, true);
  v20.datastore_update_bsatn(0, 0, buffer, 8);
  view.setUint32(0, 3, true);
  v20.datastore_delete_by_index_scan_point_bsatn(0, buffer, 4);
  deepStrictEqual(drainOneByOne(v20, scan), [101, 102, 103]);
  deepStrictEqual(drainOneByOne(v20, range), [101, 102, 103]);
  // A scan opened after the writes sees them.
  deepStrictEqual(drainOneByOne(v20, v20.datastore_table_scan_bsatn(0)), [100, 101, 7]);
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
  const delta = commit();
  strictEqual(delta.tables[0].deletes.length, 2);
});

Deno.test("a scan drained in one advance fills the buffer with whole rows only", () => {
  const { sys, v20 } = setup();
  const scan = v20.datastore_table_scan_bsatn(0);
  const twelve = new ArrayBuffer(12); // room for one row and a half
  strictEqual(v20.row_iter_bsatn_advance(scan, twelve), 8);
  strictEqual(v20.row_iter_bsatn_advance(scan, new ArrayBuffer(24)), -24);
  let thrown: unknown;
  const another = v20.datastore_table_scan_bsatn(0);
  try {
    v20.row_iter_bsatn_advance(another, new ArrayBuffer(5));
  } catch (error) {
    thrown = error;
  }
  deepStrictEqual(thrown, { __buffer_too_small__: 8 });
  v20.row_iter_bsatn_close(another);
  deepStrictEqual(sys.endCall(), { openIterators: 0, openTimers: 0 });
});

Deno.test("a scan left open across a procedure's commit still yields its rows", () => {
  const { v20, commit } = setup();
  commit();
  v20.procedure_start_mut_tx();
  const scan = v20.datastore_table_scan_bsatn(0);
  v20.procedure_commit_mut_tx();
  deepStrictEqual(drainOneByOne(v20, scan), [100, 101, 102, 103]);
});
