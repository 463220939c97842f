import { deepStrictEqual, ok } from "node:assert/strict";
import { runOneOffQuery } from "./execute.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import type { TxDelta } from "./delta.ts";
import {
  conformanceState,
  encodeRow,
  FIXTURE_ROWS,
  HIT,
  ID_A,
  ID_B,
  ID_C,
  labelOf,
  MemoryState,
  PERSON,
  PET,
  TAG as TAG_SCHEMA,
} from "./_test_fixture.ts";

const A = { sender: ID_A, isOwner: false };

function labels(rows: Uint8Array[]): string[] {
  return rows.map(labelOf).sort();
}

/** Applies a transaction to the state and returns it as a delta. */
function commit(
  state: MemoryState,
  changes: { tableId: number; inserts?: Uint8Array[]; deletes?: Uint8Array[] }[],
): TxDelta {
  const tables = changes.map((c) => ({
    tableId: c.tableId,
    inserts: c.inserts ?? [],
    deletes: c.deletes ?? [],
  }));
  for (const t of tables) {
    if (t.tableId === HIT.tableId) continue;
    for (const row of t.deletes) state.delete(t.tableId, row);
    for (const row of t.inserts) state.insert(t.tableId, row);
  }
  return { tables };
}

const pet = (id: bigint, owner: bigint, species: string) => encodeRow(PET, [id, owner, species]);

Deno.test("§9.5 case 7: a person gains a copy per new pet and loses one per deleted pet", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const q = index.register("SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id", A);
  deepStrictEqual(labels(q.initialRows), ["P1", "P1", "P2"]);
  const added = index.onCommit(commit(state, [{ tableId: 2, inserts: [pet(14n, 3n, "bird")] }]));
  deepStrictEqual(labels(added.get(q.queryId)!.inserts), ["P3"]);
  deepStrictEqual(added.get(q.queryId)!.deletes, []);
  const removed = index.onCommit(
    commit(state, [{ tableId: 2, deletes: [FIXTURE_ROWS.pet10[1]] }]),
  );
  deepStrictEqual(labels(removed.get(q.queryId)!.deletes), ["P1"]);
  deepStrictEqual(removed.get(q.queryId)!.inserts, []);
});

Deno.test("§9.5 case 8: a partner starting to match brings its pets in", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const q = index.register(
    "SELECT pet.* FROM person JOIN pet ON person.id = pet.owner_id WHERE person.age = 30",
    A,
  );
  deepStrictEqual(labels(q.initialRows), ["pet10", "pet11"]);
  const bob30 = encodeRow(PERSON, [2n, "Bob", 30, false, [ID_B], [1748779200000000n], 2.5]);
  const out = index.onCommit(
    commit(state, [{ tableId: 1, deletes: [FIXTURE_ROWS.P2[1]], inserts: [bob30] }]),
  );
  deepStrictEqual(labels(out.get(q.queryId)!.inserts), ["pet12"]);
  deepStrictEqual(out.get(q.queryId)!.deletes, []);
});

Deno.test("§2.5: renaming a partner sends nothing; moving one sends delete and insert; an update of a row with k partners sends k of each", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const q = index.register("SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id", A);
  const renamed = index.onCommit(commit(state, [{
    tableId: 2,
    deletes: [FIXTURE_ROWS.pet10[1]],
    inserts: [pet(10n, 1n, "tiger")],
  }]));
  ok(!renamed.has(q.queryId), "renaming a pet changes no person copy");
  const moved = index.onCommit(commit(state, [{
    tableId: 2,
    deletes: [FIXTURE_ROWS.pet12[1]],
    inserts: [pet(12n, 3n, "cat")],
  }]));
  deepStrictEqual(labels(moved.get(q.queryId)!.deletes), ["P2"]);
  deepStrictEqual(labels(moved.get(q.queryId)!.inserts), ["P3"]);
  const alicia = encodeRow(PERSON, [1n, "Alicia", 30, true, [ID_A], [1735689600000000n], 1.5]);
  const updated = index.onCommit(commit(state, [{
    tableId: 1,
    deletes: [FIXTURE_ROWS.P1[1]],
    inserts: [alicia],
  }]));
  deepStrictEqual(labels(updated.get(q.queryId)!.deletes), ["P1", "P1"]);
  deepStrictEqual(updated.get(q.queryId)!.inserts.length, 2);
});

Deno.test("overlapping join and single-table queries each get their own copy", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const join = index.register(
    "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id WHERE person.age = 30",
    A,
  );
  const all = index.register("SELECT * FROM pet", A);
  const out = index.onCommit(commit(state, [{ tableId: 2, inserts: [pet(14n, 3n, "bird")] }]));
  deepStrictEqual(out.get(join.queryId)!.inserts.length, 1);
  deepStrictEqual(out.get(all.queryId)!.inserts.length, 1);
});

Deno.test("events join with the partners as they were before the transaction", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const q = index.register("SELECT hit.* FROM hit JOIN person ON hit.target = person.id", A);
  deepStrictEqual(q.initialRows, []);
  const hit = (target: bigint) => encodeRow(HIT, [target, 50]);
  const one = index.onCommit(
    commit(state, [{ tableId: HIT.tableId, inserts: [hit(1n), hit(42n)] }]),
  );
  deepStrictEqual(one.get(q.queryId)!.inserts.length, 1, "no person 42");
  // Person 3 deleted in the same transaction as a hit on 3: SpacetimeDB's fragments join the
  // event with the pre-transaction person.
  const gone = index.onCommit(commit(state, [
    { tableId: HIT.tableId, inserts: [hit(3n)] },
    { tableId: 1, deletes: [FIXTURE_ROWS.P3[1]] },
  ]));
  deepStrictEqual(gone.get(q.queryId)!.inserts.length, 1);
  const after = index.onCommit(commit(state, [{ tableId: HIT.tableId, inserts: [hit(3n)] }]));
  ok(!after.has(q.queryId));
});

Deno.test("10,000 `WHERE id = k` subscriptions: a change evaluates only the queries of its own values", () => {
  const state = new MemoryState([PERSON, PET]);
  const index = new SubscriptionIndex(state);
  const ids: number[] = [];
  for (let k = 0; k < 10_000; k++) {
    ids.push(index.register(`SELECT * FROM pet WHERE id = ${k}`, A).queryId);
  }
  const sender = (who: bigint) => ({ sender: who, isOwner: false });
  const mine = index.register(
    "SELECT pet.* FROM person JOIN pet ON person.id = pet.owner_id WHERE person.ident = :sender",
    sender(ID_A),
  );
  const theirs = index.register(
    "SELECT pet.* FROM person JOIN pet ON person.id = pet.owner_id WHERE person.ident = :sender",
    sender(ID_C),
  );
  const alice = encodeRow(PERSON, [1n, "Alice", 30, true, [ID_A], [0n], 1.5]);
  index.onCommit(commit(state, [{ tableId: 1, inserts: [alice] }]));
  const out = index.onCommit(commit(state, [{ tableId: 2, inserts: [pet(77n, 1n, "owl")] }]));
  deepStrictEqual([...out.keys()].sort((a, b) => a - b), [ids[77], mine.queryId]);
  deepStrictEqual(index.lastCommitPredicateCalls, 1, "only the query of id 77 is checked");
  deepStrictEqual(index.lastCommitEvaluations, 1, "only Alice's join query is evaluated");
  ok(!out.has(theirs.queryId));
});

Deno.test("one-off queries use the same engine without the subscription join rules", () => {
  const state = conformanceState();
  const rows = runOneOffQuery(
    "SELECT person.* FROM person JOIN tag ON person.id = tag.person_id",
    state,
    A,
  ).rows;
  deepStrictEqual(labels(rows), ["P1", "P3"]);
  const three = runOneOffQuery(
    "SELECT p.* FROM person AS p JOIN pet ON p.id = pet.owner_id JOIN tag ON tag.person_id = p.id",
    state,
    A,
  );
  deepStrictEqual(labels(three.rows), ["P1", "P1"]);
});

Deno.test("a 3-table join subscription (beyond SpacetimeDB's two) is accepted and maintained", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const q = index.register(
    "SELECT person.* FROM pet JOIN person ON pet.owner_id = person.id " +
      "JOIN pet AS p2 ON p2.owner_id = person.id WHERE pet.species = 'cat'",
    A,
  );
  deepStrictEqual(labels(q.initialRows), ["P1", "P1", "P2"]);
  const out = index.onCommit(commit(state, [{ tableId: 2, inserts: [pet(14n, 2n, "cat")] }]));
  // The new cat pairs with Bob's two pets (itself and pet 12), and pet 12 with the new one.
  deepStrictEqual(labels(out.get(q.queryId)!.inserts), ["P2", "P2", "P2"]);
  deepStrictEqual(out.get(q.queryId)!.deletes, []);
});

Deno.test("releasing join queries removes their routes and auxiliary indexes", () => {
  const state = conformanceState();
  const index = new SubscriptionIndex(state);
  const queries = [
    "SELECT pet.* FROM person JOIN pet ON person.id = pet.owner_id WHERE person.age = 30",
    "SELECT person.* FROM person JOIN tag ON person.id = tag.person_id WHERE tag.label = 'vip'",
    "SELECT a.* FROM pet AS a JOIN pet AS b ON a.owner_id = b.owner_id",
  ].map((sql) => index.register(sql, A).queryId);
  let n = 0;
  const change = () => {
    n++;
    return index.onCommit(commit(state, [
      { tableId: 2, inserts: [pet(20n + BigInt(n), 1n, "x")] },
      { tableId: 3, inserts: [encodeRow(TAG_SCHEMA, [1n, `label ${n}`])] },
    ]));
  };
  ok(change().size > 0);
  ok(index.lastCommitEvaluations > 0);
  for (const id of queries) ok(index.release(id));
  deepStrictEqual(index.size, 0);
  deepStrictEqual(change().size, 0);
  deepStrictEqual(index.lastCommitEvaluations, 0);
});
