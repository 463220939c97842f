/**
 * `SET row_limit` for subscriptions and one-off queries (query-subscriptions.md §1.4, case 15):
 * a non-owner's query whose estimated scanned rows exceed the limit is refused with
 * SpacetimeDB's text; the owner is not limited; a query another subscriber already runs is not
 * checked again; the new queries of one subscribe request add up.
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { SqlHost } from "./sql_host.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const OWNER = 1n;
const ALICE = 0x1001n;
const clock = new ManualClock();

const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 7n,
  ownerIdentity: OWNER,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("views_rls"));
const host = new SubscriptionHost(engine);
const sqlHost = new SqlHost(engine);

function call(name: string, write: (w: BinaryWriter) => void) {
  const w = new BinaryWriter(64);
  write(w);
  const result = engine.callReducer(1, name, w.finish(), ALICE, 0n, clock.nowMicros());
  strictEqual(result.status, "committed", result.message);
  for (const tx of engine.drainCommitted()) host.onCommit(tx.delta);
}

function sql(text: string, isOwner: boolean) {
  const result = sqlHost.run({
    kind: "sql",
    id: 1,
    sql: text,
    sender: isOwner ? OWNER : ALICE,
    isOwner,
    timestampMicros: clock.nowMicros(),
  });
  for (const tx of engine.drainCommitted()) host.onCommit(tx.delta);
  return result;
}

let nextConnection = 1n;
function subscribe(queries: string[], isOwner = false) {
  return host.subscribe({
    kind: "subscribe",
    id: 1,
    connectionId: nextConnection++,
    querySetId: 1,
    queries,
    sender: isOwner ? OWNER : ALICE,
    isOwner,
  });
}

function oneOff(text: string, isOwner = false) {
  return host.query({ kind: "query", id: 1, sql: text, sender: isOwner ? OWNER : ALICE, isOwner });
}

const limitText = (n: number, m: number) =>
  `Estimated cardinality (${n} rows) exceeds limit (${m} rows)`;

for (let id = 1; id <= 4; id++) {
  call("add_person", (w) => {
    w.writeU32(id);
    w.writeString(`p${id}`);
    w.writeU32(20 + id);
  });
}
for (const [id, ownerId] of [[10, 1], [11, 1]]) {
  call("add_pet", (w) => {
    w.writeU32(id);
    w.writeU32(ownerId);
    w.writeString("cat");
  });
}

Deno.test("without a row limit nothing is refused", () => {
  const subscribed = subscribe(["SELECT * FROM person WHERE age > 0"]);
  assert(subscribed.ok, subscribed.error);
  const answered = oneOff("SELECT * FROM person WHERE age > 0");
  assert(answered.ok, answered.error);
});

Deno.test("a non-owner's subscription over the row limit is refused, the owner's is not", () => {
  const set = sql("SET row_limit = 3", true);
  assert(set.ok, set.error);
  // A full scan counts the table's rows.
  const refused = subscribe(["SELECT * FROM person"]);
  strictEqual(refused.ok, false);
  strictEqual(refused.error, limitText(4, 3));
  const owner = subscribe(["SELECT * FROM person"], true);
  assert(owner.ok, owner.error);
  // The owner's query is now live: another subscriber shares it without a check.
  const shared = subscribe(["SELECT * FROM person"]);
  assert(shared.ok, shared.error);
  assertEquals(shared.rows!.map((r) => r.rows.length), [4]);
});

Deno.test("the estimate follows SpacetimeDB's rules: index points, filters, sums", () => {
  // A primary-key point: rows / distinct keys = 1.
  assert(subscribe(["SELECT * FROM person WHERE id = 2"]).ok);
  // A filter without an index scans the table and filters it: 2 × 4.
  strictEqual(subscribe(["SELECT * FROM person WHERE age > 21"]).error, limitText(8, 3));
  // An index point plus another conjunct: 1 + 1.
  assert(subscribe(["SELECT * FROM person WHERE id = 2 AND age > 0"]).ok);
  // The new queries of one request add up: 2 pets + 1 + 1.
  const summed = subscribe(["SELECT * FROM pet", "SELECT * FROM person WHERE id = 1"]);
  assert(summed.ok, summed.error);
  const over = subscribe([
    "SELECT * FROM pet WHERE id = 10",
    "SELECT * FROM person WHERE id = 3",
    "SELECT * FROM person WHERE id = 4",
    "SELECT * FROM person WHERE id = 1 AND age > 0",
  ]);
  strictEqual(over.error, limitText(5, 3));
});

Deno.test("one-off queries are limited for non-owners, joins included", () => {
  strictEqual(oneOff("SELECT * FROM person WHERE age > 21").error, limitText(8, 3));
  const owner = oneOff("SELECT * FROM person WHERE age > 21", true);
  assert(owner.ok, owner.error);
  assertEquals(owner.rows!.rows.length, 3);
  // pet (2 rows) joined to person's unique id: 2 scanned + 2 probes.
  strictEqual(
    oneOff("SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id").error,
    limitText(4, 3),
  );
  assert(oneOff("SELECT * FROM pet").ok);
});

Deno.test("removing the row limit lifts it", () => {
  const removed = sql("DELETE FROM st_var WHERE name = 'row_limit'", true);
  assert(removed.ok, removed.error);
  assert(subscribe(["SELECT * FROM person WHERE age > 21"]).ok);
  assert(oneOff("SELECT * FROM person WHERE age > 21").ok);
});
