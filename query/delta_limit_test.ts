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
