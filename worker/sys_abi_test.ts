import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { Datastore, type MutTx, type TableSchema } from "../storage/mod.ts";
import { createSyscalls, type SysEnv } from "./sys_abi.ts";

// accounts(id u32 primary key, balance u32), index 0 on id.
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
    startAnonymousTx: () => false,
    commitAnonymousTx: () => false,
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
  return { sys, v20, buffer, view, commit: () => tx!.commit() };
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
