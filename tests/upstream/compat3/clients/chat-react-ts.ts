// Driver for templates/chat-react-ts (beside the template's own vitest integration test):
// the lifecycle reducers keep user.online, set_name / send_message and their SenderErrors,
// a query-builder subscription with a WHERE (the App's `online = true` list), and a returning
// user (same token) keeping their name.
import { DbConnection, tables } from "./module_bindings/index";
import {
  check,
  connect,
  DB_NAME,
  expect,
  finish,
  rejection,
  subscribe,
  waitFor,
  WS_URL,
} from "./_check";

type Conn = DbConnection;
const open = (token?: string) =>
  connect<Conn>(
    DbConnection.builder().withUri(WS_URL).withDatabaseName(DB_NAME).withToken(token),
  );

const watcher = await open();
await subscribe(watcher.conn, [tables.message, tables.user.where((r) => r.online.eq(true))]);
const online = () => [...watcher.conn.db.user.iter()];
const first = await open();
const firstHex = first.identity.toHexString();

await check("clientConnected inserts an online user row another client sees", async () => {
  await waitFor("the new user", () => online().some((u) => u.identity.toHexString() === firstHex));
});

await check("set_name and send_message refuse empty input with the module's errors", async () => {
  const name = await rejection(first.conn.reducers.setName({ name: "" }));
  expect(name.includes("Names must not be empty"), `error was: ${name}`);
  const text = await rejection(first.conn.reducers.sendMessage({ text: "" }));
  expect(text.includes("Messages must not be empty"), `error was: ${text}`);
});

await check(
  "set_name updates the row in place and a message reaches the other client",
  async () => {
    let renamed = false;
    watcher.conn.db.user.onUpdate((_ctx, _old, row) => renamed ||= row.name === "Zed");
    await first.conn.reducers.setName({ name: "Zed" });
    await waitFor("onUpdate with the new name", () => renamed);
    await first.conn.reducers.sendMessage({ text: "hello from a driver" });
    const message = await waitFor(
      "the message",
      () => [...watcher.conn.db.message.iter()].find((m) => m.text === "hello from a driver"),
    );
    expect(message.sender.toHexString() === firstHex, "the sender is the caller");
  },
);

await check("clientDisconnected takes the user out of the online = true subscription", async () => {
  first.conn.disconnect();
  await waitFor(
    "the user leaving the online list",
    () => !online().some((u) => u.identity.toHexString() === firstHex),
  );
});

await check("a returning user (same token) is online again with the same name", async () => {
  const again = await open(first.token);
  expect(again.identity.toHexString() === firstHex, "the token gave another identity");
  const row = await waitFor(
    "the user back online",
    () => online().find((u) => u.identity.toHexString() === firstHex),
  );
  expect(row.name === "Zed", `name ${row.name}`);
  again.conn.disconnect();
});

watcher.conn.disconnect();
finish();
