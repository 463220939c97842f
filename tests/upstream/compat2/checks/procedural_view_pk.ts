/**
 * sdk-test-procedural-view-pk-ts: what sdks/rust/tests/procedural-view-pk-client checks. Views
 * computed by code (`Array.from(index.filter(ctx.sender))`) returning a table's rows keep its
 * primary key: two clients each see only their own rows and get `onUpdate` for them; query-
 * builder semijoins between two such views, filtered on both sides, deliver exactly the joined
 * row. Each check uses its own ids (one database for all).
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

async function senderUpdate(conn: Any, id: bigint, from: bigint, to: bigint): Promise<Any[]> {
  await subscribe(conn, [tables.senderLeftView]);
  const updates: Any[] = [];
  conn.db.senderLeftView.onUpdate((_ctx: Any, oldRow: Any, newRow: Any) =>
    updates.push([oldRow.id, oldRow.filter, newRow.id, newRow.filter])
  );
  await conn.reducers.insertLeft({ id, filter: from });
  await conn.reducers.updateLeft({ id, filter: to });
  await waitUntil(() => updates.length >= 1, `onUpdate of left row ${id}`);
  return updates;
}

async function semijoin(query: (t: Any) => unknown, view: string, ids: bigint[]): Promise<void> {
  const { conn } = await connect(b, url, db);
  await subscribe(conn, [query(tables)]);
  const inserts: Any[] = [];
  conn.db[view].onInsert((_ctx: Any, row: Any) => inserts.push(row));
  const [a, c] = ids;
  await conn.reducers.insertLeft({ id: a, filter: 100n });
  await conn.reducers.insertLeft({ id: c, filter: 200n });
  await conn.reducers.insertRight({ id: a, filter: 300n });
  await conn.reducers.insertRight({ id: c, filter: 400n });
  // A round trip after the last call: every row the subscription matches has arrived.
  await subscribe(conn, ["SELECT * FROM left_source WHERE id = 0"]);
  await waitUntil(() => inserts.length >= 1, `a row in ${view}`);
  const expected = view === "senderLeftView" ? 100n : 300n;
  assertEq(inserts.map((r: Any) => [r.id, r.filter]), [[a, expected]], `${view} inserts`);
  assertEq(conn.db[view].count(), 1n, `${view} rows cached`);
  conn.disconnect();
}

await runChecks("procedural-view-pk", [
  ["a per-sender procedural view: each client gets onUpdate for its own row", async () => {
    const a = (await connect(b, url, db)).conn;
    const bConn = (await connect(b, url, db)).conn;
    const updatesA = await senderUpdate(a, 1n, 10n, 11n);
    const updatesB = await senderUpdate(bConn, 2n, 20n, 21n);
    assertEq(updatesA, [[1n, 10n, 1n, 11n]], "client A's updates");
    assertEq(updatesB, [[2n, 20n, 2n, 21n]], "client B's updates");
    assertEq([...a.db.senderLeftView.iter()].map((r: Any) => r.id), [1n], "A's view rows");
    assertEq([...bConn.db.senderLeftView.iter()].map((r: Any) => r.id), [2n], "B's view rows");
    a.disconnect();
    bConn.disconnect();
  }],
  ["query builder: filtered right view rightSemijoin left view, filtered", async () => {
    await semijoin(
      (t) =>
        t.senderRightView.where((r: Any) => r.filter.eq(300n))
          .rightSemijoin(t.senderLeftView, (r: Any, l: Any) => r.id.eq(l.id))
          .where((l: Any) => l.filter.eq(100n)),
      "senderLeftView",
      [10n, 20n],
    );
  }],
  ["query builder: filtered left view rightSemijoin right view, filtered", async () => {
    await semijoin(
      (t) =>
        t.senderLeftView.where((l: Any) => l.filter.eq(100n))
          .rightSemijoin(t.senderRightView, (l: Any, r: Any) => l.id.eq(r.id))
          .where((r: Any) => r.filter.eq(300n)),
      "senderRightView",
      [30n, 40n],
    );
  }],
]);
