/**
 * sdk-test-connect-disconnect-ts: what sdks/rust/tests/connect_disconnect_client checks. The
 * client_connected reducer has inserted the client's row by the time its subscription applies;
 * a clean disconnect calls onDisconnect without an error; a second client then sees exactly one
 * `disconnected` row, the first client's identity.
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
  within,
} from "./common.ts";

const { bindings: path, url, db } = checkArgs();
const b = await loadBindings(path);

await runChecks("connect-disconnect", [
  ["connected row, clean disconnect, disconnected row", async () => {
    const disconnected = Promise.withResolvers<Error | undefined>();
    const first = await connect(b, url, db, {
      onDisconnect: (_ctx: Any, error?: Error) => disconnected.resolve(error),
    });
    await subscribe(first.conn, ["SELECT * FROM connected"]);
    assertEq(first.conn.db.connected.count(), 1n, "connected rows");
    const [row] = [...first.conn.db.connected.iter()];
    assert(row.identity.isEqual(first.identity), "the connected row is this client's identity");
    first.conn.disconnect();
    const error = await within(disconnected.promise, "onDisconnect");
    assertEq(error === undefined || error === null, true, `onDisconnect error: ${error}`);
    assertEq(first.conn.isActive, false, "isActive after disconnect");

    const second = await connect(b, url, db);
    await subscribe(second.conn, ["SELECT * FROM disconnected"]);
    assertEq(second.conn.db.disconnected.count(), 1n, "disconnected rows");
    const [gone] = [...second.conn.db.disconnected.iter()];
    assert(gone.identity.isEqual(first.identity), "the disconnected row is the first client's");
    second.conn.disconnect();
  }],
]);
