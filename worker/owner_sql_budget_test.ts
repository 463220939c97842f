/**
 * The owner's queries have a time budget of their own (`--owner-sql-budget-ms`): a /sql SELECT,
 * a one-off query and a subscription's initial rows are stopped past it, scans and filters of
 * one table included (not only joins), with an error naming the budget and the flag that
 * raises it. The clock here jumps a second at every reading, so any query that reads it at all
 * is over a 500 ms budget: the test shows that each path reads it, without timing anything.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { SqlHost } from "./sql_host.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const OWNER = 1n;
const ALICE = 0x1001n;
/** More than one stretch of rows between two clock readings (ROWS_PER_CLOCK_READ = 65,536). */
const ROWS = 70_000;
const clock = new ManualClock();
const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 7n,
  ownerIdentity: OWNER,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("redteam"));
for (let filled = 0; filled < ROWS; filled += 10_000) {
  const w = new BinaryWriter(8);
  w.writeU32(10_000);
  const result = engine.callReducer(1, "fill", w.finish(), OWNER, 0n, clock.nowMicros());
  assertEquals(result.status, "committed", result.message);
}
engine.drainCommitted();

let nowMs = 0;
/** Every reading is a second after the last. */
const jumpingClock = () => (nowMs += 1_000);
const budget = { budgetMs: 400, ownerBudgetMs: 500, monotonicMs: jumpingClock };
const sqlHost = new SqlHost(engine, budget);
const subscriptions = new SubscriptionHost(engine, budget);

const OWNER_BUDGET = /owner's SQL time budget of 500 ms.*--owner-sql-budget-ms/;
const FILTER_NOTHING = "SELECT * FROM item WHERE n = 4000000000";

function sql(text: string, isOwner: boolean) {
  return sqlHost.run({
    kind: "sql",
    id: 1,
    sql: text,
    sender: isOwner ? OWNER : ALICE,
    isOwner,
    timestampMicros: clock.nowMicros(),
  });
}

Deno.test("an owner's /sql scan and filter of one table stops at the owner's budget", () => {
  for (
    const text of [
      FILTER_NOTHING,
      "SELECT id FROM item",
      "SELECT COUNT(*) AS n FROM item WHERE n > 5",
    ]
  ) {
    const result = sql(text, true);
    assertEquals(result.ok, false, text);
    assertMatch(result.error ?? "", OWNER_BUDGET);
  }
});

Deno.test("an owner's /sql join stops at the owner's budget; others' at the reducer budget", () => {
  const join = "SELECT a.* FROM item a JOIN item b ON a.id = b.id WHERE a.n = 4000000000";
  const owner = sql(join, true);
  assertEquals(owner.ok, false);
  assertMatch(owner.error ?? "", OWNER_BUDGET);
  const other = sql(join, false);
  assertEquals(other.ok, false);
  assertMatch(other.error ?? "", /time budget of 400 ms.*--reducer-budget-ms/);
});

Deno.test("an owner's one-off query and subscription stop at the owner's budget", () => {
  const query = subscriptions.query({
    kind: "query",
    id: 1,
    sql: FILTER_NOTHING,
    sender: OWNER,
    isOwner: true,
  });
  assertEquals(query.ok, false);
  assertMatch(query.error ?? "", OWNER_BUDGET);
  const subscribed = subscriptions.subscribe({
    kind: "subscribe",
    id: 2,
    connectionId: 1n,
    querySetId: 1,
    queries: [FILTER_NOTHING],
    sender: OWNER,
    isOwner: true,
  });
  assertEquals(subscribed.ok, false);
  assertMatch(subscribed.error ?? "", OWNER_BUDGET);
});

Deno.test("an owner's query over fewer rows than one stretch between readings answers", () => {
  // /sql scans a table whole even for a key (no index lookups): blob is empty.
  const result = sql("SELECT * FROM blob", true);
  assertEquals(result.ok, true, result.error);
});
