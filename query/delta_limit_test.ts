/**
 * A live query's delta for one transaction is bounded (SUBSCRIPTION_DELTA_ROWS_MAX): a self-join
 * on a non-unique column over an empty table, then one insert of k equal rows, is k² delta rows.
 * Past the bound the query reports an error for that transaction instead of rows, is no longer
 * evaluated and is not shared with new subscribers; other queries get their deltas as usual.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { SubscriptionIndex } from "./subscriptions.ts";
import { encodeRow, makeSchema, MemoryState } from "./_test_fixture.ts";

const T = makeSchema(1, "t", [["id", { tag: "U32" }], ["k", { tag: "U8" }]], {
  indexes: [[0], [1]],
  primaryKey: true,
});
const CONTEXT = { sender: 1n, isOwner: false };
const SELF_JOIN = "SELECT a.* FROM t a JOIN t b ON a.k = b.k";

function insert(state: MemoryState, index: SubscriptionIndex, ids: number[]) {
  const rows = ids.map((id) => encodeRow(T, [id, 0]));
  for (const row of rows) state.insert(T.tableId, row);
  return index.onCommit({ tables: [{ tableId: T.tableId, inserts: rows, deletes: [] }] });
}

Deno.test("a join's delta over deltaRowsMax fails that query only, once, and it is not shared again", () => {
  const state = new MemoryState([T]);
  const index = new SubscriptionIndex(state, { deltaRowsMax: 1_000 });
  const join = index.register(SELF_JOIN, CONTEXT).queryId;
  const all = index.register("SELECT * FROM t", CONTEXT).queryId;
  const ids = Array.from({ length: 100 }, (_, i) => i); // 100² = 10,000 tuples

  const first = insert(state, index, ids);
  const failed = first.get(join);
  ok(failed !== undefined, "the join query is reported");
  const rows = failed.inserts.length + failed.deletes.length;
  ok(rows <= 1_000, `the join query produced ${rows} delta rows, over its bound of 1000`);
  ok(/exceeded 1000 rows/.test(failed.error ?? ""), `error: ${failed.error}`);
  deepStrictEqual(first.get(all)?.inserts.length, 100);

  // The failed query is not evaluated again; the other one is.
  const second = insert(state, index, [100]);
  deepStrictEqual(second.get(join), undefined);
  deepStrictEqual(second.get(all)?.inserts.length, 1);

  // A new subscriber of the same text gets a fresh query with its (bounded) initial rows.
  const again = index.register(SELF_JOIN, CONTEXT);
  ok(again.queryId !== join);
  deepStrictEqual(again.initialRows.length, 101 * 101);
  deepStrictEqual(index.release(join), true);
  deepStrictEqual(index.size, 2);
});

Deno.test("a join's delta within deltaRowsMax is unchanged", () => {
  const state = new MemoryState([T]);
  // The bound counts every tuple built, also the pre-state's that cancel out (20,000 here).
  const index = new SubscriptionIndex(state, { deltaRowsMax: 100_000 });
  const join = index.register(SELF_JOIN, CONTEXT).queryId;
  const result = insert(state, index, Array.from({ length: 100 }, (_, i) => i));
  deepStrictEqual(result.get(join)?.error, undefined);
  deepStrictEqual(result.get(join)?.inserts.length, 10_000);
});

// Filtered-out joined rows: `u` rows all fail the WHERE, so the join emits nothing, but every
// insert into `v` looks at all its `u` partners.
const U = makeSchema(2, "u", [["id", { tag: "U32" }], ["k", { tag: "U8" }], ["flag", {
  tag: "Bool",
}]], { indexes: [[0], [1]], primaryKey: true });
const V = makeSchema(3, "v", [["id", { tag: "U32" }], ["k", { tag: "U8" }]], {
  indexes: [[0], [1]],
  primaryKey: true,
});
const FILTERED_JOIN = "SELECT v.* FROM v JOIN u ON v.k = u.k WHERE u.flag = true";

function filteredJoinState(partners: number, kept: number): MemoryState {
  const state = new MemoryState([U, V]);
  for (let id = 0; id < partners; id++) state.insert(U.tableId, encodeRow(U, [id, 0, id < kept]));
  return state;
}

function insertV(state: MemoryState, index: SubscriptionIndex, ids: number[]) {
  const rows = ids.map((id) => encodeRow(V, [id, 0]));
  for (const row of rows) state.insert(V.tableId, row);
  return index.onCommit({ tables: [{ tableId: V.tableId, inserts: rows, deletes: [] }] });
}

Deno.test("a join whose filter throws its rows away is dropped past deltaExaminedRowsMax", () => {
  const state = filteredJoinState(200, 0);
  const index = new SubscriptionIndex(state, { deltaRowsMax: 1_000, deltaExaminedRowsMax: 1_000 });
  const join = index.register(FILTERED_JOIN, CONTEXT).queryId;
  const all = index.register("SELECT * FROM v", CONTEXT).queryId;
  // 20 inserts × 200 partners = 4,000 rows looked at, none kept.
  const first = insertV(state, index, Array.from({ length: 20 }, (_, i) => i));
  const failed = first.get(join);
  ok(failed !== undefined, "the join query is reported");
  deepStrictEqual([failed.inserts.length, failed.deletes.length], [0, 0]);
  deepStrictEqual(
    failed.error,
    "The subscription's update looked at more than 1000 joined rows for one transaction and " +
      "the subscription was dropped; join on a unique column or filter on the changed table",
  );
  deepStrictEqual(first.get(all)?.inserts.length, 20);
  // Dropped: not evaluated again, while the other query goes on.
  const second = insertV(state, index, [20]);
  deepStrictEqual(second.get(join), undefined);
  deepStrictEqual(second.get(all)?.inserts.length, 1);
});

Deno.test("a filtered join within deltaExaminedRowsMax keeps its delta", () => {
  // 10 of the 200 partners pass the filter: 20 inserts look at 4,000 rows and keep 200.
  const state = filteredJoinState(200, 10);
  const index = new SubscriptionIndex(state, { deltaRowsMax: 1_000, deltaExaminedRowsMax: 5_000 });
  const join = index.register(FILTERED_JOIN, CONTEXT).queryId;
  const result = insertV(state, index, Array.from({ length: 20 }, (_, i) => i));
  deepStrictEqual(result.get(join)?.error, undefined);
  deepStrictEqual(result.get(join)?.inserts.length, 200);
});
