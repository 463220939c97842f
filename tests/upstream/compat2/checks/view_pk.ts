/**
 * sdk-test-view-pk-ts: what sdks/rust/tests/view-pk-client checks. Views that return a table's
 * rows keep that table's primary key, so the client cache turns a delete + insert of the same
 * key into `onUpdate`, both for a plain subscription to the view and for query-builder
 * semijoins that end in a view (with a table, and with another per-sender view).
 * Each check uses its own player id, since they share one database.
 */
import {
  type Any,
  assertEq,
  checkArgs,
  connect,
  loadBindings,
  runChecks,
  subscribe,
  waitUntil,
} from "./common.ts";

const { bindings: path, url, db } = checkArgs();
const b = await loadBindings(path);
const tables = b.tables;

/** Subscribes, then inserts player `id` as "before" and renames it "after"; expects onUpdate. */
async function expectUpdate(
  query: unknown,
  view: string,
  id: bigint,
  setup: (conn: Any) => Promise<void>,
): Promise<void> {
  const { conn } = await connect(b, url, db);
  await subscribe(conn, [query]);
  const updates: [Any, Any][] = [];
  conn.db[view].onUpdate((_ctx: Any, oldRow: Any, newRow: Any) => updates.push([oldRow, newRow]));
  const deletes: Any[] = [];
  conn.db[view].onDelete((_ctx: Any, row: Any) => deletes.push(row));
  await conn.reducers.insertViewPkPlayer({ id, name: "before" });
  await setup(conn);
  await waitUntil(
    () => [...conn.db[view].iter()].some((r: Any) => r.id === id),
    `player ${id} in ${view}`,
  );
  await conn.reducers.updateViewPkPlayer({ id, name: "after" });
  await waitUntil(() => updates.length >= 1, `onUpdate on ${view}`);
  assertEq(updates, [[{ id, name: "before" }, { id, name: "after" }]], "old/new rows");
  assertEq(deletes, [], "onDelete calls (an update by primary key is not a delete)");
  const cached = [...conn.db[view].iter()].filter((r: Any) => r.id === id);
  assertEq(cached, [{ id, name: "after" }], "cached rows for the player");
  conn.disconnect();
}

await runChecks("view-pk", [
  ["a view over a table with a primary key: onUpdate", async () => {
    await expectUpdate("SELECT * FROM all_view_pk_players", "allViewPkPlayers", 1n, async () => {});
  }],
  ["query builder: table rightSemijoin view, onUpdate on the view", async () => {
    await expectUpdate(
      tables.viewPkMembership.rightSemijoin(
        tables.allViewPkPlayers,
        (membership: Any, player: Any) => membership.playerId.eq(player.id),
      ),
      "allViewPkPlayers",
      2n,
      async (conn) => await conn.reducers.insertViewPkMembership({ id: 2n, playerId: 2n }),
    );
  }],
  ["query builder: sender view rightSemijoin sender view, onUpdate", async () => {
    await expectUpdate(
      tables.senderViewPkPlayersA.rightSemijoin(
        tables.senderViewPkPlayersB,
        (lhs: Any, rhs: Any) => lhs.id.eq(rhs.id),
      ),
      "senderViewPkPlayersB",
      3n,
      async (conn) => {
        await conn.reducers.insertViewPkMembership({ id: 3n, playerId: 3n });
        await conn.reducers.insertViewPkMembershipSecondary({ id: 3n, playerId: 3n });
      },
    );
  }],
]);
