import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { AlgebraicType, Value } from "../protocol/algebraic_type.ts";
import { type Random, seededRandom } from "../lib/random.ts";
import { executePlan } from "./execute.ts";
import { SqlError } from "./sql_error.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import {
  BYTES,
  conformanceState,
  encodeRow,
  FIXTURE_ROWS,
  ID_A,
  ID_B,
  IDENTITY,
  identityHex,
  labelOf,
  makeSchema,
  MemoryState,
  PERSON,
  PET,
  rowKey,
  TIMESTAMP,
} from "./_test_fixture.ts";

// ---------------------------------------------------------------------------------------------
// Behaviour on the §9.2 fixture

const A = { sender: ID_A, isOwner: false };
const B = { sender: ID_B, isOwner: false };

function labels(rows: Uint8Array[]): string[] {
  return rows.map(labelOf).sort();
}

function personRow(id: bigint, name: string, age: number, active: boolean, ident: bigint) {
  return encodeRow(PERSON, [id, name, age, active, [ident], [0n], 0]);
}

Deno.test("register() shares one queryId between identical plans and release() refcounts it", () => {
  const index = new SubscriptionIndex(conformanceState());
  const first = index.register("SELECT * FROM person WHERE age = 30", A);
  const second = index.register('select "person".* from "person" where 30 = "person"."age";', B);
  const other = index.register("SELECT * FROM person WHERE age = 25", A);
  deepStrictEqual(second.queryId, first.queryId);
  ok(other.queryId !== first.queryId);
  deepStrictEqual(labels(first.initialRows), ["P1", "P3"]);
  deepStrictEqual(labels(second.initialRows), ["P1", "P3"]);
  deepStrictEqual(index.size, 2);
  deepStrictEqual(index.release(first.queryId), false);
  deepStrictEqual(index.release(first.queryId), true);
  deepStrictEqual(index.size, 1);
  throws(() => index.release(first.queryId), RangeError);
});

Deno.test("queries using :sender are shared only between callers with the same identity", () => {
  const index = new SubscriptionIndex(conformanceState());
  const a = index.register("SELECT * FROM person WHERE ident = :sender", A);
  const b = index.register("SELECT * FROM person WHERE ident = :sender", B);
  const a2 = index.register("SELECT * FROM person WHERE :sender = ident", A);
  ok(a.queryId !== b.queryId);
  deepStrictEqual(a2.queryId, a.queryId);
  deepStrictEqual(labels(a.initialRows), ["P1"]);
  deepStrictEqual(labels(b.initialRows), ["P2"]);
});

Deno.test("onCommit() sends updates as delete-old plus insert-new and skips unaffected queries", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const age30 = index.register("SELECT * FROM person WHERE age = 30", A).queryId;
  const active = index.register("SELECT * FROM person WHERE active = true", A).queryId;
  const pets = index.register("SELECT * FROM pet", A).queryId;
  // UPDATE person SET active = false WHERE id = 3 (§9.5 case 15).
  const [, p3] = FIXTURE_ROWS.P3;
  const p3Inactive = encodeRow(PERSON, [
    3n,
    "Carol",
    30,
    false,
    [0xc200000c_11111111_22222222_33333333_44444444_55555555_66666666_77777777n],
    [BigInt(Date.parse("2024-12-31T23:59:59Z")) * 1000n],
    -0.5,
  ]);
  state.delete(PERSON.tableId, p3);
  state.insert(PERSON.tableId, p3Inactive);
  const out = index.onCommit({
    tables: [{ tableId: PERSON.tableId, inserts: [p3Inactive], deletes: [p3] }],
  });
  deepStrictEqual([...out.keys()].sort(), [age30, active].sort());
  deepStrictEqual(out.get(age30), { inserts: [p3Inactive], deletes: [p3] });
  deepStrictEqual(out.get(active), { inserts: [], deletes: [p3] });
  ok(!out.has(pets));
  // A change to a table nobody reads yields nothing.
  const tag = encodeRow(FIXTURE_ROWS.tag1[0], [7n, "x"]);
  deepStrictEqual(
    index.onCommit({ tables: [{ tableId: 3, inserts: [tag], deletes: [] }] }).size,
    0,
  );
});

Deno.test("a changed row only evaluates the queries registered under its own column value", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const ids = new Map<number, number>();
  for (let age = 0; age < 200; age++) {
    ids.set(
      age,
      index.register(`SELECT * FROM person WHERE age = ${age} AND active = true`, A).queryId,
    );
  }
  const everyone = index.register("SELECT * FROM person WHERE name <> 'x'", A).queryId;
  const row = personRow(50n, "Zed", 42, true, ID_A);
  const out = index.onCommit({
    tables: [{ tableId: PERSON.tableId, inserts: [row], deletes: [] }],
  });
  deepStrictEqual(
    [...out.keys()].sort((x, y) => x - y),
    [ids.get(42)!, everyone].sort((x, y) => x - y),
  );
  // One routed candidate plus the one unroutable query: two predicate calls, not 201.
  deepStrictEqual(index.lastCommitPredicateCalls, 2);
});

Deno.test("multiplicities in a delta are preserved", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const q = index.register("SELECT * FROM pet WHERE species = 'cat'", A).queryId;
  const cat = encodeRow(PET, [20n, 1n, "cat"]);
  const out = index.onCommit({
    tables: [{ tableId: PET.tableId, inserts: [cat, cat], deletes: [cat] }],
  });
  deepStrictEqual(out.get(q), { inserts: [cat, cat], deletes: [cat] });
});

Deno.test("event tables have no initial rows and pass their inserted events through", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const hit = index.register("SELECT * FROM hit WHERE dmg > 5", A);
  deepStrictEqual(hit.isEvent, true);
  deepStrictEqual(hit.initialRows, []);
  const schema = state.schema(6)!;
  const big = encodeRow(schema, [1n, 10]);
  const small = encodeRow(schema, [1n, 2]);
  const out = index.onCommit({ tables: [{ tableId: 6, inserts: [big, small], deletes: [] }] });
  deepStrictEqual(out.get(hit.queryId), { inserts: [big], deletes: [] });
});

Deno.test("initial rows use committedIndexPoint for a column = value conjunct when offered", () => {
  const state = conformanceState();
  let lookups = 0;
  const withIndex = {
    tableIdFromName: (name: string) => state.tableIdFromName(name),
    schema: (tableId: number) => state.schema(tableId),
    committedRows: (tableId: number) => state.committedRows(tableId),
    committedIndexPoint(tableId: number, columns: readonly number[], key: Uint8Array) {
      lookups++;
      if (tableId !== PET.tableId || columns[0] !== 1) return undefined;
      const owner = new DataView(key.buffer, key.byteOffset).getBigUint64(0, true);
      return [...state.committedRows(tableId)].filter((r) =>
        new DataView(r.buffer, r.byteOffset).getBigUint64(8, true) === owner
      );
    },
  };
  const index = new SubscriptionIndex(withIndex);
  const q = index.register("SELECT * FROM pet WHERE owner_id = 1 AND species = 'dog'", A);
  deepStrictEqual(labels(q.initialRows), ["pet11"]);
  deepStrictEqual(lookups, 1);
});

Deno.test("a failed register() leaves nothing registered", () => {
  const index = new SubscriptionIndex(conformanceState());
  throws(() => index.register("SELECT * FROM nosuch", A), SqlError);
  throws(() => index.register("SELECT * FROM person WHERE age = 'x'", A), SqlError);
  deepStrictEqual(index.size, 0);
});

// ---------------------------------------------------------------------------------------------
// Differential test: incremental results equal a fresh evaluation and an independent oracle

const OPT_U8: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [
      { name: "some", algebraicType: { tag: "U8" } },
      { name: "none", algebraicType: { tag: "Product", value: { elements: [] } } },
    ],
  },
};

const ITEM = makeSchema(10, "item", [
  ["id", { tag: "U32" }],
  ["grp", { tag: "U8" }],
  ["opt", OPT_U8],
  ["name", { tag: "String" }],
  ["big", { tag: "I128" }],
  ["flag", { tag: "Bool" }],
  ["tags", { tag: "Array", value: { tag: "String" } }],
  ["who", IDENTITY],
  ["at", TIMESTAMP],
  ["score", { tag: "F64" }],
  ["blob", BYTES],
  ["small", { tag: "I8" }],
]);
const EV = makeSchema(11, "ev", [["a", { tag: "U8" }], ["s", { tag: "String" }]], {
  isEvent: true,
});

type Col = "id" | "grp" | "name" | "big" | "flag" | "who" | "at" | "score" | "blob" | "small";
interface Item {
  id: number;
  grp: number;
  opt: number | undefined;
  name: string;
  big: bigint;
  flag: boolean;
  tags: string[];
  who: bigint;
  at: bigint;
  score: number;
  blob: Uint8Array;
  small: number;
}

const NAMES = ["", "a", "b", "ab", "Ab", "é", "😀", "\ue000", "o'k", "zz"];
const BIGS = [0n, 1n, -1n, -(2n ** 100n), 2n ** 100n, 9007199254740993n, -9007199254740993n];
const WHOS = [ID_A, ID_B, 1n, 2n ** 255n];
const ATS = [0n, 1_700_000_000_000_000n, 1_700_000_000_001_000n, -86_400_000_000n];
const SCORES = [0, -0, 1.5, -2.5, 1e20, 3];
const BLOBS = [
  new Uint8Array(),
  Uint8Array.of(0),
  Uint8Array.of(1, 2),
  Uint8Array.of(0xff),
  Uint8Array.of(1),
];
const SMALLS = [-128, -1, 0, 1, 127];

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random.next() * items.length)];
}
function int(random: Random, n: number): number {
  return Math.floor(random.next() * n);
}

function randomItem(random: Random): Item {
  return {
    id: int(random, 40),
    grp: int(random, 4),
    opt: random.next() < 0.5 ? undefined : int(random, 3),
    name: pick(random, NAMES),
    big: pick(random, BIGS),
    flag: random.next() < 0.5,
    tags: random.next() < 0.5 ? [] : [pick(random, NAMES)],
    who: pick(random, WHOS),
    at: pick(random, ATS),
    score: pick(random, SCORES),
    blob: pick(random, BLOBS),
    small: pick(random, SMALLS),
  };
}

function encodeItem(item: Item): Uint8Array {
  const values: Value[] = [
    item.id,
    item.grp,
    item.opt === undefined ? { tag: 1, value: [] } : { tag: 0, value: item.opt },
    item.name,
    item.big,
    item.flag,
    item.tags,
    [item.who],
    [item.at],
    item.score,
    item.blob,
    item.small,
  ];
  return encodeRow(ITEM, values);
}

type Oracle = (item: Item, sender: bigint) => boolean;
type Op = "=" | "<>" | "<" | "<=" | ">" | ">=";
const OPS: Op[] = ["=", "<>", "<", "<=", ">", ">="];

function codePoints(s: string): number[] {
  return Array.from(s, (c) => c.codePointAt(0)!);
}
function lexCompare(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
function order(a: unknown, b: unknown): number {
  if (typeof a === "string") return lexCompare(codePoints(a), codePoints(b as string));
  if (a instanceof Uint8Array) return lexCompare([...a], [...(b as Uint8Array)]);
  if (typeof a === "boolean") return Number(a) - Number(b);
  if (typeof a === "bigint") return a < (b as bigint) ? -1 : a > (b as bigint) ? 1 : 0;
  const x = a as number;
  const y = b as number;
  return x < y ? -1 : x > y ? 1 : 0;
}
function holds(op: Op, c: number): boolean {
  return op === "="
    ? c === 0
    : op === "<>"
    ? c !== 0
    : op === "<"
    ? c < 0
    : op === "<="
    ? c <= 0
    : op === ">"
    ? c > 0
    : c >= 0;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** A literal for `col` as SQL text (in one of the spellings SpacetimeDB accepts) and its value. */
function randomLiteral(random: Random, col: Col): { sql: string; value: unknown; sender?: true } {
  switch (col) {
    case "id": {
      const v = int(random, 40);
      const spelling = int(random, 4);
      const sql = spelling === 0
        ? `${v}`
        : spelling === 1
        ? `'${v}'`
        : spelling === 2
        ? `${v}e0`
        : `${v * 10}e-1`;
      return { sql, value: v };
    }
    case "grp": {
      const v = int(random, 4);
      return { sql: `${v}`, value: v };
    }
    case "name": {
      const v = pick(random, NAMES);
      return { sql: sqlString(v), value: v };
    }
    case "big": {
      const v = pick(random, BIGS);
      return { sql: `${v}`, value: v };
    }
    case "flag": {
      const v = random.next() < 0.5;
      return { sql: v ? "TRUE" : "false", value: v };
    }
    case "who": {
      if (random.next() < 0.3) return { sql: ":sender", value: undefined, sender: true };
      const v = pick(random, WHOS);
      const h = v.toString(16).padStart(64, "0");
      const spelling = int(random, 3);
      return { sql: spelling === 0 ? `0x${h}` : spelling === 1 ? `X'${h}'` : `'${h}'`, value: v };
    }
    case "at": {
      const v = pick(random, ATS);
      return { sql: `'${new Date(Number(v / 1000n)).toISOString()}'`, value: v };
    }
    case "score": {
      const v = pick(random, SCORES);
      return { sql: Object.is(v, -0) ? "-0.0" : `${v}`, value: v };
    }
    case "blob": {
      const v = pick(random, BLOBS);
      return { sql: random.next() < 0.5 ? `0x${hex(v)}` : `X'${hex(v)}'`, value: v };
    }
    case "small": {
      const v = pick(random, SMALLS);
      return { sql: `${v}`, value: v };
    }
  }
}

const COLS: Col[] = ["id", "grp", "name", "big", "flag", "who", "at", "score", "blob", "small"];

function column(random: Random, col: Col): string {
  const spelling = int(random, 3);
  return spelling === 0 ? col : spelling === 1 ? `item.${col}` : `"item"."${col}"`;
}

function randomPredicate(random: Random, depth: number): { sql: string; oracle: Oracle } {
  const roll = random.next();
  if (depth > 0 && roll < 0.35) {
    const left = randomPredicate(random, depth - 1);
    const right = randomPredicate(random, depth - 1);
    if (random.next() < 0.5) {
      return {
        sql: `(${left.sql}) AND (${right.sql})`,
        oracle: (item, s) => left.oracle(item, s) && right.oracle(item, s),
      };
    }
    return {
      sql: `(${left.sql} OR ${right.sql})`,
      oracle: (item, s) => left.oracle(item, s) || right.oracle(item, s),
    };
  }
  if (roll < 0.4) {
    const v = random.next() < 0.8;
    return { sql: v ? "TRUE" : "FALSE", oracle: () => v };
  }
  if (roll < 0.45) return { sql: column(random, "flag"), oracle: (item) => item.flag };
  const col = pick(random, COLS);
  const op = random.next() < 0.5 ? "=" : pick(random, OPS);
  const literal = randomLiteral(random, col);
  const value = literal.value;
  const get = (_item: Item, sender: bigint) => (literal.sender ? sender : value);
  if (random.next() < 0.2) {
    // Literal on the left: `lit op col` means `col flipped-op lit`.
    const flipped: Record<Op, Op> = {
      "=": "=",
      "<>": "<>",
      "<": ">",
      "<=": ">=",
      ">": "<",
      ">=": "<=",
    };
    return {
      sql: `${literal.sql} ${op === "<>" && random.next() < 0.5 ? "!=" : op} ${
        column(random, col)
      }`,
      oracle: (item, s) => holds(flipped[op], order(item[col], get(item, s))),
    };
  }
  return {
    sql: `${column(random, col)} ${op} ${literal.sql}`,
    oracle: (item, s) => holds(op, order(item[col], get(item, s))),
  };
}

interface Subscription {
  queryId: number;
  oracle: Oracle;
  sender: bigint;
  sql: string;
  /** For queries on the event table: the `a >= n` bound (0 when there is no WHERE). */
  eventMin: number | undefined;
  /** row key -> count, maintained from initial rows plus deltas. */
  rows: Map<string, number>;
}

function addTo(rows: Map<string, number>, key: string, delta: number): void {
  const n = (rows.get(key) ?? 0) + delta;
  if (n < 0) throw new Error(`negative multiplicity for ${key}`);
  if (n === 0) rows.delete(key);
  else rows.set(key, n);
}

function multiset(rows: Iterable<Uint8Array>): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) addTo(out, rowKey(r), 1);
  return out;
}

function sorted(m: Map<string, number>): [string, number][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

Deno.test("incremental results equal a from-scratch evaluation after 3,000 random transactions", () => {
  const seed = Number(Deno.env.get("SEED") ?? Date.now() % 1_000_000);
  // deno-lint-ignore no-console
  console.log(`differential seed ${seed} (rerun with SEED=${seed})`);
  const random = seededRandom(seed);
  const state = new MemoryState([ITEM, EV, PERSON]);
  const items = new Map<string, Item>();
  const index = new SubscriptionIndex(state);
  const subs: Subscription[] = [];
  const senders = [ID_A, ID_B];
  let deltaRowsSeen = 0;

  const subscribe = () => {
    const sender = pick(random, senders);
    let eventMin: number | undefined;
    let sql: string;
    let oracle: Oracle;
    if (random.next() < 0.1) {
      eventMin = random.next() < 0.5 ? 0 : int(random, 4);
      sql = eventMin === 0 ? "SELECT * FROM ev" : `SELECT * FROM ev WHERE a >= ${eventMin}`;
      oracle = () => true;
    } else {
      const predicate = random.next() < 0.1 ? undefined : randomPredicate(random, 2);
      const head = pick(random, [
        "SELECT * FROM item",
        "select item.* from item",
        'SELECT "item".* FROM "item"',
      ]);
      sql = predicate === undefined ? head : `${head} WHERE ${predicate.sql}`;
      if (random.next() < 0.3) sql += ";";
      oracle = predicate?.oracle ?? (() => true);
    }
    const registered = index.register(sql, { sender, isOwner: false });
    const rows = multiset(registered.initialRows);
    subs.push({ queryId: registered.queryId, oracle, sender, sql, eventMin, rows });
  };

  for (let i = 0; i < 40; i++) subscribe();
  const TX_COUNT = 3_000;
  for (let tx = 0; tx < TX_COUNT; tx++) {
    // Subscription churn between transactions.
    if (random.next() < 0.3) subscribe();
    if (subs.length > 20 && random.next() < (subs.length > 60 ? 0.5 : 0.25)) {
      const [gone] = subs.splice(int(random, subs.length), 1);
      index.release(gone.queryId);
    }
    // A transaction's net delta: fresh inserts, deletes of present rows, updates.
    const touched = new Set<string>();
    const inserts: Uint8Array[] = [];
    const deletes: Uint8Array[] = [];
    const insertedItems: Item[] = [];
    const ops = 1 + int(random, 6);
    for (let k = 0; k < ops; k++) {
      const roll = random.next();
      if (items.size < 5 || roll < (items.size > 150 ? 0.2 : 0.45)) {
        const item = randomItem(random);
        const bytes = encodeItem(item);
        const key = rowKey(bytes);
        if (items.has(key) || touched.has(key)) continue;
        touched.add(key);
        inserts.push(bytes);
        insertedItems.push(item);
      } else {
        const keys = [...items.keys()];
        const key = pick(random, keys);
        if (touched.has(key)) continue;
        touched.add(key);
        deletes.push(encodeItem(items.get(key)!));
        if (roll < 0.8) {
          const updated = { ...items.get(key)!, ...pickChange(random) };
          const bytes = encodeItem(updated);
          const newKey = rowKey(bytes);
          if (items.has(newKey) || touched.has(newKey)) continue;
          touched.add(newKey);
          inserts.push(bytes);
          insertedItems.push(updated);
        }
      }
    }
    const events: Uint8Array[] = [];
    for (let e = int(random, 3); e > 0; e--) {
      events.push(encodeRow(EV, [int(random, 4), pick(random, NAMES)]));
    }
    // Commit to the state, then ask the index.
    for (const d of deletes) {
      state.delete(ITEM.tableId, d);
      items.delete(rowKey(d));
    }
    insertedItems.forEach((item, i) => {
      state.insert(ITEM.tableId, inserts[i]);
      items.set(rowKey(inserts[i]), item);
    });
    const tables = [{ tableId: ITEM.tableId, inserts, deletes }];
    if (events.length > 0) tables.push({ tableId: EV.tableId, inserts: events, deletes: [] });
    const out = index.onCommit({ tables });
    for (const [queryId, delta] of out) {
      ok(delta.inserts.length + delta.deletes.length > 0, "empty deltas are left out");
      ok(subs.some((s) => s.queryId === queryId), `delta for a released query ${queryId}`);
    }
    for (const sub of subs) {
      const delta = out.get(sub.queryId);
      if (sub.eventMin !== undefined) {
        const expected = events.filter((e) => e[0] >= sub.eventMin!);
        deepStrictEqual(delta?.inserts ?? [], expected, `seed ${seed} tx ${tx}: ${sub.sql}`);
        continue;
      }
      for (const row of delta?.deletes ?? []) addTo(sub.rows, rowKey(row), -1);
      for (const row of delta?.inserts ?? []) addTo(sub.rows, rowKey(row), 1);
      deltaRowsSeen += (delta?.inserts.length ?? 0) + (delta?.deletes.length ?? 0);
    }
    // Check every live subscription against a fresh run and against the oracle.
    // A divergence persists once it happens, so checking a sample each time finds it.
    const checkAll = tx % 100 === 0 || tx === TX_COUNT - 1;
    const sample = checkAll ? subs : Array.from({ length: 4 }, () => pick(random, subs));
    for (const sub of sample) {
      if (sub.eventMin !== undefined) continue;
      const fresh = multiset(executePlan(index.plan(sub.queryId)!, state));
      const oracle = new Map<string, number>();
      for (const [key, item] of items) if (sub.oracle(item, sub.sender)) oracle.set(key, 1);
      const where = `seed ${seed} tx ${tx}: ${sub.sql}`;
      deepStrictEqual(sorted(sub.rows), sorted(fresh), `maintained != fresh; ${where}`);
      deepStrictEqual(sorted(fresh), sorted(oracle), `fresh != oracle; ${where}`);
    }
  }
  ok(deltaRowsSeen > 1000, `only ${deltaRowsSeen} delta rows: the workload is too quiet`);
});

function pickChange(random: Random): Partial<Item> {
  const fresh = randomItem(random);
  const col = pick(random, [...COLS, "opt", "tags"] as const);
  return { [col]: fresh[col as keyof Item] } as Partial<Item>;
}

Deno.test("labels of fixture rows are distinct (test helper sanity)", () => {
  const keys = Object.values(FIXTURE_ROWS).map(([, r]) => rowKey(r));
  deepStrictEqual(new Set(keys).size, keys.length);
  deepStrictEqual(identityHex(1n).length, 64);
});
