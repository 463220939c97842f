/**
 * sdk-test-case-conversion-ts: what sdks/rust/tests/case-conversion-client checks, plus the
 * names themselves. Tables, columns, reducers, their parameters, nested product fields and
 * enum variants spelled every which way in the module (`Player1Id`, `player_name`,
 * `currentLevel2`, `status3Field`, a table with an explicit name `Player1Canonical`, a reducer
 * named `banPlayer1`, a view named `Level2Person`) reach the client under the names the
 * bindings give them, rows round-trip through reducers, and query-builder filters and joins
 * over converted column names select the right rows. Checks share one database; each uses its
 * own player names.
 */
import {
  type Any,
  assert,
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

async function fresh(queries: unknown[]): Promise<Any> {
  const { conn } = await connect(b, url, db);
  await subscribe(conn, queries);
  return conn;
}

function playerNamed(conn: Any, name: string): Any {
  return [...conn.db.player1.iter()].find((p: Any) => p.playerName === name);
}

await runChecks("case-conversion", [
  ["names: bindings and the wire", async () => {
    assertEq(tables.player1 !== undefined, true, "tables.player1");
    assertEq(tables.person2 !== undefined, true, "tables.person2");
    assertEq(tables.personAtLevel2 !== undefined, true, "tables.personAtLevel2");
    const conn = await fresh(["SELECT * FROM Player1Canonical", "SELECT * FROM person_2"]);
    for (const r of ["createPlayer1", "addPerson2", "banPlayer1"]) {
      assert(typeof conn.reducers[r] === "function", `conn.reducers.${r}`);
    }
    conn.disconnect();
    // The SQL API sees the canonical names (explicit table name, converted column names).
    const response = await fetch(`${url}/v1/database/${db}/sql`, {
      method: "POST",
      body: "SELECT * FROM Player1Canonical WHERE current_level_2 = 4294967295",
    });
    const text = await response.text();
    assertEq(response.status, 200, `SQL status (${text})`);
    const [result] = JSON.parse(text);
    const columns = result.schema.elements.map((e: Any) => e.name.some ?? e.name);
    assertEq(
      columns,
      ["player_1_id", "player_name", "current_level_2", "status_3_field"],
      "SQL columns",
    );
  }],
  ["insert player: row fields and enum variant", async () => {
    const conn = await fresh([tables.player1]);
    const rows: Any[] = [];
    conn.db.player1.onInsert((_ctx: Any, row: Any) => rows.push(row));
    await conn.reducers.createPlayer1({ player1Name: "Alice", start2Level: 5 });
    await waitUntil(() => rows.length >= 1, "player1 onInsert");
    assertEq(rows[0].playerName, "Alice", "playerName");
    assertEq(rows[0].currentLevel2, 5, "currentLevel2");
    // The SDK reads a unit variant as { tag, value: {} }.
    assertEq(rows[0].status3Field.tag, "Active1", "status3Field");
    assert(typeof rows[0].player1Id === "number" && rows[0].player1Id > 0, "auto-inc player1Id");
    conn.disconnect();
  }],
  ["insert person: nested product fields", async () => {
    const conn = await fresh([tables.player1, tables.person2]);
    const people: Any[] = [];
    conn.db.person2.onInsert((_ctx: Any, row: Any) => people.push(row));
    await conn.reducers.createPlayer1({ player1Name: "PlayerForPerson", start2Level: 1 });
    await waitUntil(() => playerNamed(conn, "PlayerForPerson") !== undefined, "the player");
    const player = playerNamed(conn, "PlayerForPerson");
    await conn.reducers.addPerson2({
      first3Name: "Bob",
      playerRef: player.player1Id,
      ageValue: 25,
      scoreTotal: 1000,
    });
    await waitUntil(() => people.some((p) => p.firstName === "Bob"), "person2 onInsert");
    const bob = people.find((p) => p.firstName === "Bob");
    assertEq(bob.personInfo, { ageValue1: 25, scoreTotal: 1000 }, "personInfo");
    assertEq(bob.playerRef, player.player1Id, "playerRef");
    conn.disconnect();
  }],
  ["ban player: reducer with an explicit name, onUpdate with the enum payload", async () => {
    const conn = await fresh([tables.player1]);
    const updates: Any[] = [];
    conn.db.player1.onUpdate((_ctx: Any, _old: Any, row: Any) => updates.push(row));
    await conn.reducers.createPlayer1({ player1Name: "ToBan", start2Level: 1 });
    await waitUntil(() => playerNamed(conn, "ToBan") !== undefined, "the player");
    await conn.reducers.banPlayer1({
      player1Id: playerNamed(conn, "ToBan").player1Id,
      banUntil6: 9999,
    });
    await waitUntil(() => updates.length >= 1, "player1 onUpdate");
    assertEq(updates[0].status3Field, { tag: "BannedUntil", value: 9999 }, "status3Field");
    conn.disconnect();
  }],
  ["query builder filter on a converted column", async () => {
    const conn = await fresh([tables.player1.where((p: Any) => p.currentLevel2.eq(55))]);
    const rows: Any[] = [];
    conn.db.player1.onInsert((_ctx: Any, row: Any) => rows.push(row));
    await conn.reducers.createPlayer1({ player1Name: "NoMatch", start2Level: 33 });
    await conn.reducers.createPlayer1({ player1Name: "FilterMatch", start2Level: 55 });
    await subscribe(conn, ["SELECT * FROM person_2 WHERE person_2_id = 0"]); // a round trip
    await waitUntil(() => rows.length >= 1, "player1 onInsert");
    assertEq(rows.map((r) => [r.playerName, r.currentLevel2]), [["FilterMatch", 55]], "rows");
    conn.disconnect();
  }],
  ["query builder join on converted columns", async () => {
    const conn = await fresh([
      tables.player1.rightSemijoin(
        tables.person2,
        (player: Any, person: Any) => player.player1Id.eq(person.playerRef),
      ),
      tables.player1,
    ]);
    const people: Any[] = [];
    conn.db.person2.onInsert((_ctx: Any, row: Any) => people.push(row));
    await conn.reducers.createPlayer1({ player1Name: "JoinedPlayer", start2Level: 7 });
    await waitUntil(() => playerNamed(conn, "JoinedPlayer") !== undefined, "the player");
    const player = playerNamed(conn, "JoinedPlayer");
    await conn.reducers.addPerson2({
      first3Name: "JoinPerson",
      playerRef: player.player1Id,
      ageValue: 30,
      scoreTotal: 500,
    });
    await waitUntil(() => people.some((p) => p.firstName === "JoinPerson"), "joined person2");
    const person = people.find((p) => p.firstName === "JoinPerson");
    assertEq(person.personInfo, { ageValue1: 30, scoreTotal: 500 }, "personInfo");
    conn.disconnect();
  }],
  ["a view with an explicit name over converted columns", async () => {
    const conn = await fresh([tables.personAtLevel2]);
    const rows: Any[] = [];
    conn.db.personAtLevel2.onInsert((_ctx: Any, row: Any) => rows.push(row));
    await conn.reducers.createPlayer1({ player1Name: "Level2Player", start2Level: 2 });
    // The player's id, read over SQL (this connection subscribes to the view only).
    let id: number | undefined;
    await waitUntil(async () => {
      const response = await fetch(`${url}/v1/database/${db}/sql`, {
        method: "POST",
        body: "SELECT * FROM Player1Canonical WHERE player_name = 'Level2Player'",
      });
      const [result] = JSON.parse(await response.text());
      id = result.rows[0]?.[0];
      return id !== undefined;
    }, "Level2Player over SQL");
    await conn.reducers.addPerson2({
      first3Name: "ViewPerson",
      playerRef: id,
      ageValue: 20,
      scoreTotal: 200,
    });
    await waitUntil(() => rows.length >= 1, "personAtLevel2 onInsert");
    assertEq(rows.map((r) => [r.firstName, r.personInfo]), [
      ["ViewPerson", { ageValue1: 20, scoreTotal: 200 }],
    ], "view rows");
    conn.disconnect();
  }],
]);
