/**
 * The cap on per-sender view instances reading a table whole (VIEW_INSTANCES_READING_TABLE_MAX)
 * is shared fairly: the instances a subscription creates are charged to its client source (the
 * server passes the connection's address), and one source may hold at most
 * VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX of them. A flood of fresh anonymous identities from
 * one address used to take every place and lock every other client out of the view.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import {
  VIEW_INSTANCES_READING_TABLE_MAX,
  VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX,
} from "../lib/limits.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "./engine.ts";
import { SubscriptionHost } from "./subscription_host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const clock = new ManualClock();
const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 7n,
  ownerIdentity: 1n,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("redteam"));
const host = new SubscriptionHost(engine);
{
  const w = new BinaryWriter(8);
  w.writeU32(10);
  const result = engine.callReducer(1, "fill", w.finish(), 1n, 0n, clock.nowMicros());
  assertEquals(result.status, "committed", result.message);
  for (const tx of engine.drainCommitted()) host.onCommit(tx.delta);
}

let nextConnection = 1n;
function subscribe(sender: bigint, source: string | undefined) {
  return host.subscribe({
    kind: "subscribe",
    id: 1,
    connectionId: nextConnection++,
    querySetId: 1,
    queries: ["SELECT * FROM scan_view"],
    sender,
    isOwner: false,
    source,
  });
}

Deno.test("fresh identities from one address cannot take every place of a view's readers", () => {
  const flooder = "ip4:198.51.100.1";
  let accepted = 0;
  let lastError = "";
  // As many new identities as the whole cap, and more, all from one address.
  for (let i = 0; i < VIEW_INSTANCES_READING_TABLE_MAX + 8; i++) {
    const result = subscribe(0x7000n + BigInt(i), flooder);
    if (result.ok) accepted++;
    else lastError = result.error ?? "";
  }
  assertEquals(accepted, VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX);
  assertMatch(
    lastError,
    new RegExp(
      `clients from this address already hold ${VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX} ` +
        `of the ${VIEW_INSTANCES_READING_TABLE_MAX} per-sender view instances that may read ` +
        "table `item` whole",
    ),
  );
  // Clients elsewhere still subscribe: the lock-out is gone.
  const other = subscribe(0x9000n, "ip4:203.0.113.9");
  assert(other.ok, other.ok ? "" : other.error);
  const ipv6 = subscribe(0x9001n, "ip6:2001:db8:1:2::/64");
  assert(ipv6.ok, ipv6.ok ? "" : ipv6.error);
  // An identity already subscribed from the flooding address shares its instance from anywhere.
  assert(subscribe(0x7000n, "ip4:203.0.113.10").ok, "a subscribed identity shares its instance");
});
