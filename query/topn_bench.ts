/**
 * Cost of maintaining one top-N window (`ORDER BY score DESC LIMIT 100`) over 100,000 rows, per
 * transaction (one iteration = one committed update of one row + the subscription index's work).
 * Estimate: a random update rarely touches the top 200 rows (p ≈ 0.2 %), so the window costs a
 * predicate call and one comparison with its threshold per changed row (~1 µs on top of the
 * write itself); a top row leaving costs a splice in a 200-entry array and, every ~100 such
 * transactions, a refill: one scan of 100k rows (~20-40 ms, so ~0.3 ms amortized) or an index
 * seek (~100 rows, ~50 µs). Compare each case with "no subscription".
 */
import { Datastore } from "../storage/mod.ts";
import type { CommittedState } from "./execute.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import { topNStats } from "./topn.ts";
import { encodeRow, makeSchema } from "./_test_fixture.ts";

const ROWS = 100_000;
const SCORE_MAX = 1_000_000;
const PLAIN = {
  ...makeSchema(1, "plain", [["id", { tag: "U32" }], ["score", { tag: "I32" }]], {
    indexes: [[0]],
    primaryKey: true,
  }),
  uniqueConstraints: [[0]],
};
const INDEXED = {
  ...makeSchema(2, "indexed", [["id", { tag: "U32" }], ["score", { tag: "I32" }]], {
    indexes: [[0], [1]],
    primaryKey: true,
  }),
  uniqueConstraints: [[0]],
};

let seed = 42;
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

/** The same rows with no subscription (the baseline's writes). */
const BARE = {
  ...makeSchema(3, "bare", [["id", { tag: "U32" }], ["score", { tag: "I32" }]], {
    indexes: [[0]],
    primaryKey: true,
  }),
  uniqueConstraints: [[0]],
};

const store = new Datastore([PLAIN, INDEXED, BARE]);
const scores = {
  plain: new Int32Array(ROWS),
  indexed: new Int32Array(ROWS),
  bare: new Int32Array(ROWS),
};
{
  const tx = store.beginMutTx();
  for (let id = 0; id < ROWS; id++) {
    const score = Math.floor(random() * SCORE_MAX);
    scores.plain[id] = score;
    scores.indexed[id] = score;
    scores.bare[id] = score;
    tx.insert(BARE.tableId, encodeRow(BARE, [id, score]));
    tx.insert(PLAIN.tableId, encodeRow(PLAIN, [id, score]));
    tx.insert(INDEXED.tableId, encodeRow(INDEXED, [id, score]));
  }
  tx.commit();
}
const schemas = new Map([[PLAIN.tableId, PLAIN], [INDEXED.tableId, INDEXED]]);
const state: CommittedState = {
  tableIdFromName: (name) => store.tableIdFromName(name),
  schema: (tableId) => schemas.get(tableId),
  committedRows: (tableId) => store.committedRows(tableId),
  committedIndexWalk: (tableId, columns, from, descending, visit) => {
    const index = schemas.get(tableId)!.indexes.find((i) =>
      i.columns.length === columns.length && i.columns.every((c, k) => c === columns[k])
    );
    if (index === undefined) return false;
    store.committedIndexWalk(index.indexId, from, descending, visit);
    return true;
  },
};
const index = new SubscriptionIndex(state);
const owner = { sender: 0n, isOwner: true };
const plainQuery = index.register("SELECT * FROM plain ORDER BY score DESC LIMIT 100", owner);
const indexedQuery = index.register("SELECT * FROM indexed ORDER BY score DESC LIMIT 100", owner);
const relation = new Uint8Array(4 + 8);
new DataView(relation.buffer).setUint32(0, 1, true);

/** One transaction: row `id` of `table` gets `score`; then the subscription index runs. */
function update(table: typeof PLAIN, id: number, score: number): void {
  const column = table === PLAIN ? scores.plain : scores.indexed;
  relation.set(encodeRow(table, [id, column[id]]), 4);
  const tx = store.beginMutTx();
  tx.deleteByRelation(table.tableId, relation);
  tx.insert(table.tableId, encodeRow(table, [id, score]));
  column[id] = score;
  index.onCommit(tx.commit());
}

/** The id of the current top row of a window. */
function topId(queryId: number): number {
  const row = index.currentRows(queryId)[0];
  return new DataView(row.buffer, row.byteOffset).getUint32(0, true);
}

// Each transaction touches rows of one table; the other tables' windows are never candidates.
Deno.bench({
  name: "no subscription on the table (random updates)",
  group: "random",
  baseline: true,
  fn() {
    const tx = store.beginMutTx();
    const id = Math.floor(random() * ROWS);
    relation.set(encodeRow(BARE, [id, scores.bare[id]]), 4);
    tx.deleteByRelation(BARE.tableId, relation);
    const score = Math.floor(random() * SCORE_MAX);
    tx.insert(BARE.tableId, encodeRow(BARE, [id, score]));
    scores.bare[id] = score;
    index.onCommit(tx.commit()); // routed to no query
  },
});
Deno.bench({
  name: "LIMIT 100 window, no index (random updates)",
  group: "random",
  fn() {
    update(PLAIN, Math.floor(random() * ROWS), Math.floor(random() * SCORE_MAX));
  },
});
Deno.bench({
  name: "LIMIT 100 window, B-tree index on score (random updates)",
  group: "random",
  fn() {
    update(INDEXED, Math.floor(random() * ROWS), Math.floor(random() * SCORE_MAX));
  },
});
Deno.bench({
  name: "LIMIT 100 window, no index (the top row drops out every tx)",
  group: "drain",
  baseline: true,
  fn() {
    update(PLAIN, topId(plainQuery.queryId), Math.floor(random() * SCORE_MAX / 2));
  },
});
Deno.bench({
  name: "LIMIT 100 window, B-tree index on score (the top row drops out every tx)",
  group: "drain",
  fn() {
    update(INDEXED, topId(indexedQuery.queryId), Math.floor(random() * SCORE_MAX / 2));
  },
});

globalThis.addEventListener("unload", () => {
  console.log(`refills: ${topNStats.scans} scans, ${topNStats.walks} index walks`);
});
