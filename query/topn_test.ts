import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { SubscriptionIndex } from "./subscriptions.ts";
import { compileWithRls, resolveRlsRules } from "./rls.ts";
import { type CommittedState, executePlan } from "./execute.ts";
import { SqlError } from "./sql_error.ts";
import { recognizeTopN, topNQuery, topNTuning } from "./topn.ts";
import type { TxDelta } from "./delta.ts";
import {
  encodeRow,
  ID_A,
  ID_B,
  IDENTITY,
  makeSchema,
  MemoryState,
  rowKey,
} from "./_test_fixture.ts";

const SCORE = makeSchema(1, "score", [["id", { tag: "U32" }], ["points", { tag: "I32" }], [
  "owner",
  IDENTITY,
]], { indexes: [[0]], primaryKey: true });
const OWNER = makeSchema(2, "owner", [["who", IDENTITY], ["team", { tag: "U8" }]], {
  indexes: [[0]],
  primaryKey: true,
});

const row = (id: number, points: number, owner = ID_A) => encodeRow(SCORE, [id, points, [owner]]);
const keys = (rows: Uint8Array[]) => rows.map(rowKey);
const OWNER_CONTEXT = { sender: 0n, isOwner: true };

function state(rows: Uint8Array[]): MemoryState {
  const s = new MemoryState([SCORE, OWNER]);
  for (const r of rows) s.insert(SCORE.tableId, r);
  return s;
}

/** Commits a change to the memory state and returns its delta. */
function commit(s: MemoryState, inserts: Uint8Array[], deletes: Uint8Array[]): TxDelta {
  for (const r of deletes) s.delete(SCORE.tableId, r);
  for (const r of inserts) s.insert(SCORE.tableId, r);
  return { tables: [{ tableId: SCORE.tableId, inserts, deletes }] };
}

Deno.test("a top-N subscription's initial rows are the first n in order, ties by primary key", () => {
  const s = state([row(1, 10), row(2, 30), row(3, 20), row(4, 30), row(5, 5)]);
  const index = new SubscriptionIndex(s);
  const top = index.register("SELECT * FROM score ORDER BY points DESC LIMIT 3", OWNER_CONTEXT);
  deepStrictEqual(keys(top.initialRows), keys([row(2, 30), row(4, 30), row(3, 20)]));
  const bottom = index.register(
    "SELECT * FROM score ORDER BY points, id DESC LIMIT 2",
    OWNER_CONTEXT,
  );
  deepStrictEqual(keys(bottom.initialRows), keys([row(5, 5), row(1, 10)]));
});

Deno.test("an insert that beats the last window row pushes it out in the same update", () => {
  const s = state([row(1, 10), row(2, 20), row(3, 30), row(4, 5)]);
  const index = new SubscriptionIndex(s);
  const { queryId } = index.register(
    "SELECT * FROM score ORDER BY points DESC LIMIT 2",
    OWNER_CONTEXT,
  );
  const delta = index.onCommit(commit(s, [row(5, 25)], [])).get(queryId)!;
  deepStrictEqual(keys(delta.inserts), keys([row(5, 25)]));
  deepStrictEqual(keys(delta.deletes), keys([row(2, 20)]));
  // An insert below the window changes nothing the client sees.
  deepStrictEqual(index.onCommit(commit(s, [row(6, 1)], [])).get(queryId), undefined);
});

Deno.test("deleting or demoting a window row brings the next row in", () => {
  for (const [bufferMin, fixed] of [[32, false], [0, true]] as const) {
    const saved = { ...topNTuning };
    Object.assign(topNTuning, { bufferMin, bufferFixed: fixed });
    try {
      const s = state([row(1, 10), row(2, 20), row(3, 30), row(4, 5)]);
      const index = new SubscriptionIndex(s);
      const { queryId } = index.register(
        "SELECT * FROM score ORDER BY points DESC LIMIT 2",
        OWNER_CONTEXT,
      );
      let delta = index.onCommit(commit(s, [], [row(3, 30)])).get(queryId)!;
      deepStrictEqual(keys(delta.deletes), keys([row(3, 30)]));
      deepStrictEqual(keys(delta.inserts), keys([row(1, 10)]));
      // An update that moves a window row below the window: its old value leaves, the next enters.
      delta = index.onCommit(commit(s, [row(2, 1)], [row(2, 20)])).get(queryId)!;
      deepStrictEqual(keys(delta.deletes), keys([row(2, 20)]));
      deepStrictEqual(keys(delta.inserts), keys([row(4, 5)]));
      deepStrictEqual(keys(index.currentRows(queryId)), keys([row(1, 10), row(4, 5)]));
    } finally {
      Object.assign(topNTuning, saved);
    }
  }
});

Deno.test("an update inside the window sends exactly the old and new row", () => {
  const s = state([row(1, 10), row(2, 20), row(3, 30), row(4, 5)]);
  const index = new SubscriptionIndex(s);
  const { queryId } = index.register(
    "SELECT * FROM score ORDER BY points DESC LIMIT 3",
    OWNER_CONTEXT,
  );
  // Row 1 moves from last to first place: nothing else enters or leaves.
  const delta = index.onCommit(commit(s, [row(1, 40)], [row(1, 10)])).get(queryId)!;
  deepStrictEqual(keys(delta.deletes), keys([row(1, 10)]));
  deepStrictEqual(keys(delta.inserts), keys([row(1, 40)]));
  deepStrictEqual(keys(index.currentRows(queryId)), keys([row(1, 40), row(3, 30), row(2, 20)]));
});

Deno.test("subscribers of the same top-N query share one window; other orders do not", () => {
  const s = state([row(1, 10), row(2, 20)]);
  const index = new SubscriptionIndex(s);
  const a = index.register("SELECT * FROM score ORDER BY points DESC LIMIT 1", OWNER_CONTEXT);
  const b = index.register("SELECT * FROM score ORDER BY points DESC LIMIT 1", OWNER_CONTEXT);
  const c = index.register("SELECT * FROM score ORDER BY points LIMIT 1", OWNER_CONTEXT);
  const d = index.register("SELECT * FROM score ORDER BY points DESC LIMIT 2", OWNER_CONTEXT);
  ok(a.queryId === b.queryId);
  deepStrictEqual(new Set([a.queryId, c.queryId, d.queryId]).size, 3);
  deepStrictEqual(index.size, 3);
  ok(index.release(a.queryId) === false);
  ok(index.release(b.queryId) === true);
});

Deno.test("refills seek the B-tree index on the ORDER BY columns when the state has one", () => {
  const s = state([row(1, 10), row(2, 20)]);
  const walks: unknown[] = [];
  const withWalk: CommittedState = {
    tableIdFromName: (name) => s.tableIdFromName(name),
    schema: (tableId) => s.schema(tableId),
    committedRows: (tableId) => s.committedRows(tableId),
    committedIndexWalk(
      tableId: number,
      columns: readonly number[],
      _from: Uint8Array | undefined,
      descending: boolean,
      visit: (r: Uint8Array) => boolean,
    ) {
      walks.push({ tableId, columns, descending });
      // Ascending by id (the index on column 0), as the datastore's walk would.
      const rows = [...s.committedRows(tableId)].sort((x, y) => x[0] - y[0]);
      for (const r of descending ? rows.reverse() : rows) if (!visit(r)) break;
      return true;
    },
  };
  const index = new SubscriptionIndex(withWalk);
  const byId = index.register("SELECT * FROM score ORDER BY id DESC LIMIT 1", OWNER_CONTEXT);
  deepStrictEqual(keys(byId.initialRows), keys([row(2, 20)]));
  ok(index.window(byId.queryId)!.usesIndex);
  deepStrictEqual(walks, [{ tableId: SCORE.tableId, columns: [0], descending: true }]);
  // No index on `points`: a scan.
  const byPoints = index.register("SELECT * FROM score ORDER BY points LIMIT 1", OWNER_CONTEXT);
  ok(!index.window(byPoints.queryId)!.usesIndex);
});

Deno.test("row-level security: the window is over the rows the caller may see", () => {
  const s = state([row(1, 10, ID_A), row(2, 20, ID_B), row(3, 30, ID_A), row(4, 40, ID_B)]);
  const mine = resolveRlsRules(["SELECT * FROM score WHERE owner = :sender"], s);
  const sql = "SELECT * FROM score ORDER BY points DESC LIMIT 1";
  const forA = compileWithRls(sql, s, { sender: ID_A, isOwner: false }, mine);
  const forB = compileWithRls(sql, s, { sender: ID_B, isOwner: false }, mine);
  deepStrictEqual([forA.length, forB.length], [1, 1]);
  ok(forA[0].key !== forB[0].key, "one window per identity");
  deepStrictEqual(keys(executePlan(forA[0], s)), keys([row(3, 30, ID_A)]));
  deepStrictEqual(keys(executePlan(forB[0], s)), keys([row(4, 40, ID_B)]));

  // Two rules: one window over their union, a row both admit counted once.
  const two = resolveRlsRules([
    "SELECT * FROM score WHERE owner = :sender",
    "SELECT * FROM score WHERE points >= 20",
  ], s);
  const plans = compileWithRls(
    "SELECT * FROM score ORDER BY points LIMIT 3",
    s,
    { sender: ID_A, isOwner: false },
    two,
  );
  deepStrictEqual(plans.length, 1);
  deepStrictEqual(
    keys(executePlan(plans[0], s)),
    keys([row(1, 10, ID_A), row(2, 20, ID_B), row(3, 30, ID_A)]),
  );

  // A rule that joins another table is refused for top-N (never ignored).
  const joined = resolveRlsRules([
    "SELECT score.* FROM score JOIN owner ON score.owner = owner.who WHERE owner.team = 1",
  ], s);
  throws(
    () => compileWithRls(sql, s, { sender: ID_A, isOwner: false }, joined),
    (error: unknown) =>
      error instanceof SqlError && error.message.includes("row-level security rule") &&
      error.message.includes("joins other tables"),
  );
  // The owner bypasses the rules.
  deepStrictEqual(compileWithRls(sql, s, OWNER_CONTEXT, joined).length, 1);
});

Deno.test("topNQuery writes queries that recognizeTopN reads back", () => {
  const sql = topNQuery({
    table: "score",
    where: "points > 3",
    orderBy: [{ column: "points", descending: true }, { column: "id" }],
    limit: 7,
  });
  deepStrictEqual(
    sql,
    'SELECT * FROM "score" WHERE points > 3 ORDER BY "points" DESC, "id" ASC LIMIT 7',
  );
  deepStrictEqual(recognizeTopN(sql), {
    table: "score",
    orderBy: [{ column: "points", descending: true }, { column: "id", descending: false }],
    limit: 7,
  });
  deepStrictEqual(recognizeTopN("SELECT * FROM score"), undefined);
  const s = state([row(1, 10), row(2, 20)]);
  deepStrictEqual(
    keys(new SubscriptionIndex(s).register(sql, OWNER_CONTEXT).initialRows),
    keys([row(2, 20), row(1, 10)]),
  );
});

Deno.test("a row-level security rule with ORDER BY … LIMIT is refused at load", () => {
  const s = state([]);
  throws(
    () => resolveRlsRules(["SELECT * FROM score ORDER BY points LIMIT 1"], s),
    (error: unknown) =>
      error instanceof Error &&
      error.message.startsWith("failed to create row-level security: ") &&
      error.message.endsWith("Unsupported: SELECT * FROM score ORDER BY points LIMIT 1"),
  );
});
