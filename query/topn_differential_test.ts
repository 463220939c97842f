/**
 * Differential test of top-N subscriptions (`ORDER BY … LIMIT n`) over the real datastore:
 * random inserts, updates and deletes against many random top-N queries (ties, ASC/DESC,
 * several columns, floats with -0/NaN, strings, tables with and without a primary key, ORDER BY
 * columns with and without a B-tree index, WHERE filters, buffers from none to large).
 * Each query keeps a client cache (row -> count) maintained only from the deltas, applied as
 * the SDK does; after every transaction it must equal the query re-run from scratch by a naive
 * oracle over decoded JS values, and each delta must be exactly V' − V (no row both deleted and
 * inserted, no delete of a row the client lacks). Transactions are sometimes committed in
 * batches of 2-3 before the index sees them. A seed is printed; `SEED=n` replays it and
 * `TOPN_DIFF_TXS=n` changes the length.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { type Random, seededRandom } from "../lib/random.ts";
import { Datastore, type TableSchema } from "../storage/mod.ts";
import type { CommittedState } from "./execute.ts";
import { runOneOffQuery } from "./execute.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import { topNQuery, topNStats, topNTuning } from "./topn.ts";
import { encodeRow, makeSchema, rowKey } from "./_test_fixture.ts";
import type { TxDelta } from "./delta.ts";

const I32 = { tag: "I32" } as const;
const U8 = { tag: "U8" } as const;
const U32 = { tag: "U32" } as const;
const F64 = { tag: "F64" } as const;
const STR = { tag: "String" } as const;

// `s`: primary key id; B-tree indexes on score, name, and (grp, score).
const S = {
  ...makeSchema(1, "s", [["id", U32], ["score", I32], ["grp", U8], ["name", STR], ["f", F64]], {
    indexes: [[0], [1], [3], [2, 1]],
    primaryKey: true,
  }),
  uniqueConstraints: [[0]],
};
// `t`: no primary key, no index (ties broken by the row's bytes).
const T = makeSchema(2, "t", [["a", U8], ["b", STR], ["c", I32]]);

type Value = number | string;
type Row = Record<string, Value>;
interface TableInfo {
  schema: TableSchema;
  columns: { name: string; kind: "int" | "str" | "float" }[];
  primaryKey: string | undefined;
}
const TABLES: Record<string, TableInfo> = {
  s: {
    schema: S,
    columns: [
      { name: "id", kind: "int" },
      { name: "score", kind: "int" },
      { name: "grp", kind: "int" },
      { name: "name", kind: "str" },
      { name: "f", kind: "float" },
    ],
    primaryKey: "id",
  },
  t: {
    schema: T,
    columns: [{ name: "a", kind: "int" }, { name: "b", kind: "str" }, { name: "c", kind: "int" }],
    primaryKey: undefined,
  },
};
const STRINGS = ["", "a", "ab", "b", "é", "z"];
const FLOATS = [-1, -0, 0, 0.5, 2, NaN, Infinity];

function int(random: Random, n: number): number {
  return Math.floor(random.next() * n);
}
function pick<T>(random: Random, items: readonly T[]): T {
  return items[int(random, items.length)];
}

function randomRow(random: Random, table: string, id: number): Row {
  if (table === "s") {
    return {
      id,
      score: int(random, 12) - 4,
      grp: int(random, 3),
      name: pick(random, STRINGS),
      f: pick(random, FLOATS),
    };
  }
  return { a: int(random, 4), b: pick(random, STRINGS), c: int(random, 6) - 2 };
}

function encode(table: string, row: Row): Uint8Array {
  const info = TABLES[table];
  return encodeRow(info.schema, info.columns.map((c) => row[c.name]));
}

const utf8 = new TextEncoder();
function compareValues(kind: string, a: Value, b: Value): number {
  if (kind === "str") {
    const x = utf8.encode(a as string);
    const y = utf8.encode(b as string);
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      if (x[i] !== y[i]) return x[i] - y[i];
    }
    return x.length - y.length;
  }
  const x = a as number;
  const y = b as number;
  if (Number.isNaN(x) || Number.isNaN(y)) {
    return Number.isNaN(x) === Number.isNaN(y) ? 0 : Number.isNaN(x) ? 1 : -1;
  }
  return x < y ? -1 : x > y ? 1 : 0; // -0 equals +0
}
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

interface Query {
  sql: string;
  table: string;
  filter: (row: Row) => boolean;
  order: { column: string; descending: boolean }[];
  limit: number;
}

function randomQuery(random: Random): Query {
  const table = random.next() < 0.7 ? "s" : "t";
  const info = TABLES[table];
  let order: { column: string; descending: boolean }[];
  const roll = random.next();
  if (table === "s" && roll < 0.25) {
    // The indexed shapes (a B-tree walk when all directions agree).
    const descending = random.next() < 0.5;
    const shape = pick(random, [["score"], ["name"], ["grp", "score"], ["id"]]);
    order = shape.map((column) => ({ column, descending }));
    if (random.next() < 0.2 && order.length > 1) order[1].descending = !descending;
  } else {
    const count = 1 + int(random, 3);
    const names = info.columns.map((c) => c.name);
    order = [];
    for (let i = 0; i < count; i++) {
      order.push({ column: pick(random, names), descending: random.next() < 0.5 });
    }
  }
  const limit = pick(random, [1, 2, 3, 5, 8, 13, 40]);
  let where: string | undefined;
  let filter: (row: Row) => boolean = () => true;
  const w = random.next();
  if (table === "s" && w < 0.2) {
    const g = int(random, 3);
    where = `grp = ${g}`;
    filter = (row) => row.grp === g;
  } else if (table === "s" && w < 0.35) {
    const x = int(random, 10) - 4;
    where = `score >= ${x}`;
    filter = (row) => (row.score as number) >= x;
  } else if (table === "t" && w < 0.25) {
    const a = int(random, 4);
    where = `a <> ${a}`;
    filter = (row) => row.a !== a;
  }
  return { sql: topNQuery({ table, where, orderBy: order, limit }), table, filter, order, limit };
}

/** The query re-run from scratch over decoded rows: sorted, cut to the limit. */
function oracle(query: Query, rows: Map<string, { row: Row; bytes: Uint8Array }>): Uint8Array[] {
  const info = TABLES[query.table];
  const kindOf = (column: string) => info.columns.find((c) => c.name === column)!.kind;
  const candidates = [...rows.values()].filter(({ row }) => query.filter(row));
  candidates.sort((x, y) => {
    for (const { column, descending } of query.order) {
      const c = compareValues(kindOf(column), x.row[column], y.row[column]);
      if (c !== 0) return descending ? -c : c;
    }
    if (info.primaryKey !== undefined) {
      const c = compareValues("int", x.row[info.primaryKey], y.row[info.primaryKey]);
      if (c !== 0) return c;
    }
    return compareBytes(x.bytes, y.bytes);
  });
  return candidates.slice(0, query.limit).map((c) => c.bytes);
}

/** The committed state of a datastore as the subscription host exposes it. */
function datastoreState(store: Datastore, schemas: TableSchema[]): CommittedState {
  const byId = new Map(schemas.map((s) => [s.tableId, s]));
  return {
    tableIdFromName: (name) => store.tableIdFromName(name),
    schema: (tableId) => byId.get(tableId),
    tables: () => schemas,
    committedRows: (tableId) => store.committedRows(tableId),
    committedIndexWalk: (tableId, columns, from, descending, visit) => {
      const index = byId.get(tableId)!.indexes.find((i) =>
        i.columns.length === columns.length && i.columns.every((c, k) => c === columns[k])
      );
      if (index === undefined) return false;
      store.committedIndexWalk(index.indexId, from, descending, visit);
      return true;
    },
  };
}

function relation(rows: Uint8Array[]): Uint8Array {
  const size = rows.reduce((n, r) => n + r.length, 4);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, rows.length, true);
  let at = 4;
  for (const row of rows) {
    out.set(row, at);
    at += row.length;
  }
  return out;
}

function runDifferential(seed: number, txCount: number, bufferMin: number, fixed: boolean) {
  const random = seededRandom(seed);
  const saved = { ...topNTuning };
  topNTuning.bufferMin = bufferMin;
  topNTuning.bufferFixed = fixed;
  try {
    const store = new Datastore([S, T]);
    const state = datastoreState(store, [S, T]);
    const rows: Record<string, Map<string, { row: Row; bytes: Uint8Array }>> = {
      s: new Map(),
      t: new Map(),
    };
    let nextId = 1;
    const liveIds = new Map<number, string>(); // id -> row key in `s`

    // Initial rows.
    const tx = store.beginMutTx();
    for (let i = 0; i < 60; i++) {
      const row = randomRow(random, "s", nextId++);
      const bytes = encode("s", row);
      tx.insert(S.tableId, bytes);
      rows.s.set(rowKey(bytes), { row, bytes });
      liveIds.set(row.id as number, rowKey(bytes));
    }
    for (let i = 0; i < 40; i++) {
      const row = randomRow(random, "t", 0);
      const bytes = encode("t", row);
      if (rows.t.has(rowKey(bytes))) continue;
      tx.insert(T.tableId, bytes);
      rows.t.set(rowKey(bytes), { row, bytes });
    }
    tx.commit();

    const index = new SubscriptionIndex(state);
    const queries = Array.from({ length: 30 }, () => randomQuery(random));
    const caches: Map<string, number>[] = [];
    const ids: number[] = [];
    const context = { sender: 1n, isOwner: true };
    for (const query of queries) {
      const registered = index.register(query.sql, context);
      const expected = oracle(query, rows[query.table]);
      deepStrictEqual(registered.initialRows.map(rowKey), expected.map(rowKey), query.sql);
      const cache = new Map<string, number>();
      for (const row of registered.initialRows) cache.set(rowKey(row), 1);
      caches.push(cache);
      ids.push(registered.queryId);
    }

    let pending: TxDelta[] = [];
    for (let n = 0; n < txCount; n++) {
      const mut = store.beginMutTx();
      const opCount = 1 + int(random, 4);
      for (let k = 0; k < opCount; k++) {
        const table = random.next() < 0.7 ? "s" : "t";
        const live = rows[table];
        const roll = random.next();
        if (roll < 0.35 || live.size < 10) {
          const row = randomRow(random, table, nextId);
          const bytes = encode(table, row);
          if (live.has(rowKey(bytes))) continue;
          if (table === "s") {
            nextId++;
            liveIds.set(row.id as number, rowKey(bytes));
          }
          mut.insert(TABLES[table].schema.tableId, bytes);
          live.set(rowKey(bytes), { row, bytes });
        } else {
          const victims = [...live.values()];
          const victim = victims[int(random, victims.length)];
          mut.deleteByRelation(TABLES[table].schema.tableId, relation([victim.bytes]));
          live.delete(rowKey(victim.bytes));
          if (roll < 0.75 && table === "s") {
            // An update: same primary key, some columns changed.
            const fresh = randomRow(random, "s", victim.row.id as number);
            const row = { ...victim.row };
            for (const column of ["score", "grp", "name", "f"]) {
              if (random.next() < 0.5) row[column] = fresh[column];
            }
            const bytes = encode("s", row);
            mut.insert(S.tableId, bytes);
            live.set(rowKey(bytes), { row, bytes });
          } else if (table === "s") liveIds.delete(victim.row.id as number);
        }
      }
      pending.push(mut.commit() as TxDelta);
      if (pending.length < 3 && random.next() < 0.3 && n < txCount - 1) continue;
      const results = index.onCommits(pending);
      pending = [];
      queries.forEach((query, q) => {
        if (n % 7 !== 0) return; // the window's internals (the oracle below checks every tx)
        const table = TABLES[query.table].schema.tableId;
        try {
          index.window(ids[q])!.checkInvariants(store.committedRows(table));
        } catch (error) {
          throw new Error(`${query.sql} after tx ${n} (batch of ${results.length})`, {
            cause: error,
          });
        }
      });
      // Only the last transaction's state is known to the oracle: apply every delta, then check.
      queries.forEach((query, q) => {
        const cache = caches[q];
        for (const result of results) {
          const delta = result.get(ids[q]);
          if (delta === undefined) continue;
          const deleted = new Set(delta.deletes.map(rowKey));
          for (const row of delta.inserts) {
            ok(!deleted.has(rowKey(row)), `${query.sql}: a row both deleted and inserted`);
          }
          for (const row of delta.deletes) {
            const key = rowKey(row);
            const count = cache.get(key) ?? 0;
            ok(count > 0, `${query.sql}: delete of a row the client does not have`);
            if (count === 1) cache.delete(key);
            else cache.set(key, count - 1);
          }
          for (const row of delta.inserts) {
            const key = rowKey(row);
            ok(!cache.has(key), `${query.sql}: insert of a row the client has`);
            cache.set(key, 1);
          }
        }
        const expected = oracle(query, rows[query.table]).map(rowKey).sort();
        deepStrictEqual([...cache.keys()].sort(), expected, `${query.sql} after tx ${n}`);
      });
      if (n % 50 === 0) {
        // The window's own rows (sorted) and a one-off query agree with the oracle.
        const q = int(random, queries.length);
        const expected = oracle(queries[q], rows[queries[q].table]).map(rowKey);
        deepStrictEqual(index.currentRows(ids[q]).map(rowKey), expected, queries[q].sql);
        const oneOff = runOneOffQuery(queries[q].sql, state, context).rows.map(rowKey);
        deepStrictEqual(oneOff, expected, `one-off ${queries[q].sql}`);
      }
    }
  } finally {
    Object.assign(topNTuning, saved);
  }
}

Deno.test("top-N subscriptions: client caches equal the query re-run after every transaction", () => {
  const seed = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const txCount = Number(Deno.env.get("TOPN_DIFF_TXS") ?? 500);
  console.log(`top-N differential: SEED=${seed} TOPN_DIFF_TXS=${txCount}`);
  const before = { ...topNStats };
  // No buffer (every window delete refills), a small fixed one, and the default sizing.
  const only = Deno.env.get("TOPN_DIFF_MODE");
  if (only === undefined || only === "0") runDifferential(seed, txCount, 0, true);
  if (only === undefined || only === "1") runDifferential(seed + 1, txCount, 3, true);
  if (only === undefined || only === "2") runDifferential(seed + 2, txCount, 32, false);
  ok(topNStats.walks > before.walks, "no refill used a B-tree walk");
  ok(topNStats.scans > before.scans, "no refill used a scan");
});
