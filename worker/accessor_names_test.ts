/**
 * Name resolution by accessor name (query-subscriptions.md §1.5) with the `accessors` fixture:
 * tables answer to their canonical name and their accessor, columns to their accessor and their
 * canonical name, views likewise, in `/sql` (SELECT, joins, DML), subscriptions, one-off queries
 * and a row-level security rule written with accessor names only.
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
const BOB = 0x1002n;
const clock = new ManualClock();

const engine = new DatabaseEngine({
  clock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 7n,
  ownerIdentity: OWNER,
  loadTimeoutMs: 30_000,
});
await engine.load(await fixtureBundle("accessors"));
const host = new SubscriptionHost(engine);
const sqlHost = new SqlHost(engine);

function call(name: string, sender: bigint, write: (w: BinaryWriter) => void) {
  const w = new BinaryWriter(64);
  write(w);
  const result = engine.callReducer(1, name, w.finish(), sender, 0n, clock.nowMicros());
  strictEqual(result.status, "committed", result.message);
  for (const tx of engine.drainCommitted()) host.onCommit(tx.delta);
}

function sql(text: string, sender = OWNER) {
  const result = sqlHost.run({
    kind: "sql",
    id: 1,
    sql: text,
    sender,
    isOwner: sender === OWNER,
    timestampMicros: clock.nowMicros(),
  });
  for (const tx of engine.drainCommitted()) host.onCommit(tx.delta);
  assert(result.ok, `${text}: ${result.error}`);
  return result;
}

/** The /sql result's first (u32) column, sorted. */
function firstColumn(text: string, sender = OWNER): number[] {
  const result = sql(text, sender);
  return result.rows!.map(decodeFirst).sort((a, b) => a - b);
}

/** Decodes the leading u32 column of a result row. */
function decodeFirst(row: Uint8Array): number {
  return new DataView(row.buffer, row.byteOffset, row.byteLength).getUint32(0, true);
}

let nextConnection = 1n;
function subscribe(query: string, sender: bigint) {
  const result = host.subscribe({
    kind: "subscribe",
    id: 1,
    connectionId: nextConnection++,
    querySetId: 1,
    queries: [query],
    sender,
    isOwner: sender === OWNER,
  });
  assert(result.ok, `${query}: ${result.error}`);
  return result.rows![0];
}

function oneOff(query: string, sender: bigint) {
  const result = host.query({
    kind: "query",
    id: 1,
    sql: query,
    sender,
    isOwner: sender === OWNER,
  });
  assert(result.ok, `${query}: ${result.error}`);
  return result.rows!;
}

function addPlayer(sender: bigint, id: number, name: string, team: number) {
  call("add_player", sender, (w) => {
    w.writeU32(id);
    w.writeString(name);
    w.writeU32(team);
  });
}
addPlayer(ALICE, 1, "ann", 10);
addPlayer(ALICE, 2, "amy", 20);
addPlayer(BOB, 3, "bo", 10);
for (const [id, name] of [[10, "red"], [20, "blue"]] as const) {
  call("add_team", OWNER, (w) => {
    w.writeU32(id);
    w.writeString(name);
  });
}

Deno.test("/sql resolves tables and columns by canonical and accessor names", () => {
  for (const table of ["player", "gamePlayers"]) {
    for (const column of ["team_id", "teamId"]) {
      assertEquals(
        firstColumn(`SELECT * FROM ${table} WHERE ${column} = 10`),
        [1, 3],
        `${table}.${column}`,
      );
    }
  }
  // The default canonical name (snake_case of the accessor) and the accessor.
  assertEquals(firstColumn("SELECT * FROM teamRoster WHERE teamName = 'red'"), [10]);
  assertEquals(firstColumn("SELECT * FROM team_roster WHERE team_name = 'red'"), [10]);
  // Projections, qualified columns and joins.
  const projected = sql(
    "SELECT p.playerId AS pid FROM gamePlayers AS p WHERE p.displayName = 'bo'",
  );
  assertEquals(projected.columns!.elements.map((e) => e.name), ["pid"]);
  assertEquals(projected.rows!.map(decodeFirst), [3]);
  assertEquals(
    firstColumn(
      "SELECT p.* FROM player AS p JOIN teamRoster AS t ON p.teamId = t.team_id WHERE t.teamName = 'blue'",
    ),
    [2],
  );
  // DML: an accessor table and accessor columns in SET and WHERE.
  const updated = sql("UPDATE gamePlayers SET displayName = 'anne' WHERE playerId = 1");
  strictEqual(updated.rowsUpdated, 1);
  assertEquals(firstColumn("SELECT * FROM player WHERE display_name = 'anne'"), [1]);
});

Deno.test("subscriptions and one-off queries resolve accessor names; the RLS rule applies", () => {
  // ALICE sees only her own players through the rule written as `gamePlayers.ownerIdentity`.
  strictEqual(subscribe("SELECT * FROM gamePlayers WHERE teamId = 10", ALICE).rows.length, 1);
  strictEqual(subscribe("SELECT * FROM player WHERE team_id = 10", BOB).rows.length, 1);
  strictEqual(subscribe("SELECT * FROM player", ALICE).rows.length, 2);
  strictEqual(oneOff("SELECT * FROM gamePlayers WHERE playerId > 0", BOB).rows.length, 1);
  strictEqual(oneOff("SELECT * FROM gamePlayers WHERE playerId > 0", OWNER).rows.length, 3);
  const joined = subscribe(
    "SELECT p.* FROM gamePlayers AS p JOIN teamRoster AS t ON p.teamId = t.teamId WHERE t.teamName = 'red'",
    OWNER,
  );
  strictEqual(joined.rows.length, 2);
});

Deno.test("views answer to their canonical and accessor names, columns to both", () => {
  for (const view of ["my_players", "myPlayers"]) {
    for (const column of ["playerId", "player_id"]) {
      const rows = subscribe(`SELECT * FROM ${view} WHERE ${column} > 0`, ALICE).rows;
      strictEqual(rows.length, 2, `${view}.${column}`);
    }
  }
  assertEquals(firstColumn("SELECT * FROM myPlayers WHERE teamId = 10", BOB), [3]);
});

Deno.test("an unknown column is still not in scope", () => {
  const result = sqlHost.run({
    kind: "sql",
    id: 1,
    sql: "SELECT * FROM player WHERE team = 1",
    sender: OWNER,
    isOwner: true,
    timestampMicros: 0n,
  });
  strictEqual(result.error, "`team` is not in scope");
});
