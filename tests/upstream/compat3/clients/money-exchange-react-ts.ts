// Driver for templates/money-exchange-react-ts: two clients, the per-sender views
// my_account / my_account_changes over private tables, the public directory with its
// unique name key, and the transfer reducer's errors and effects.
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
const open = () => connect<Conn>(DbConnection.builder().withUri(WS_URL).withDatabaseName(DB_NAME));

const alice = await open();
const bob = await open();
const views = [tables.myAccount, tables.directory, tables.myAccountChanges];
await subscribe(alice.conn, views);
await subscribe(bob.conn, views);
const balance = (c: Conn) => [...c.db.myAccount.iter()][0]?.balanceCents;

await check("clientConnected opens an account; my_account shows only the caller's", async () => {
  await waitFor("alice's account", () => balance(alice.conn) === 10_000n);
  await waitFor("bob's account", () => balance(bob.conn) === 10_000n);
  expect(alice.conn.db.myAccount.count() === 1n, "alice sees exactly one account row");
  const row = [...alice.conn.db.myAccount.iter()][0];
  expect(row.identity.toHexString() === alice.identity.toHexString(), "it is alice's own");
});

await check("transfer before choosing a name fails with the module's error", async () => {
  const text = await rejection(
    alice.conn.reducers.transfer({ recipient: bob.conn.identity!, amountCents: 100n }),
  );
  expect(text.includes("Choose a name before sending money"), `error was: ${text}`);
});

await check("set_name fills the public directory; a name taken by another is refused", async () => {
  await alice.conn.reducers.setName({ name: "  Alice  " });
  await bob.conn.reducers.setName({ name: "Bob" });
  await waitFor("both names at bob", () => bob.conn.db.directory.count() === 2n);
  const entry = bob.conn.db.directory.identity.find(alice.conn.identity!);
  expect(
    entry?.name === "Alice" && entry.nameKey === "alice",
    `entry: ${JSON.stringify(entry?.name)}`,
  );
  const text = await rejection(bob.conn.reducers.setName({ name: "ALICE" }));
  expect(text.includes("That name is already in use"), `error was: ${text}`);
  const empty = await rejection(bob.conn.reducers.setName({ name: "   " }));
  expect(empty.includes("Names must be between 1 and 20 characters"), `error was: ${empty}`);
});

await check("transfer moves money and each side sees only its own activity rows", async () => {
  await alice.conn.reducers.transfer({ recipient: bob.conn.identity!, amountCents: 1_234n });
  await waitFor("alice's debit", () => balance(alice.conn) === 10_000n - 1_234n);
  await waitFor("bob's credit", () => balance(bob.conn) === 10_000n + 1_234n);
  await waitFor("alice's change row", () => alice.conn.db.myAccountChanges.count() === 1n);
  await waitFor("bob's change row", () => bob.conn.db.myAccountChanges.count() === 1n);
  const mine = [...alice.conn.db.myAccountChanges.iter()][0];
  const theirs = [...bob.conn.db.myAccountChanges.iter()][0];
  expect(mine.direction.tag === "Debit" && mine.amountCents === 1_234n, "alice: a 12.34 debit");
  expect(theirs.direction.tag === "Credit" && theirs.amountCents === 1_234n, "bob: a 12.34 credit");
  expect(
    theirs.counterpartyIdentity.toHexString() === alice.identity.toHexString(),
    "bob's row names alice",
  );
});

await check("transfer refuses self, zero, overdraft and unknown recipients", async () => {
  const self = await rejection(
    alice.conn.reducers.transfer({ recipient: alice.conn.identity!, amountCents: 1n }),
  );
  expect(self.includes("You cannot send money to yourself"), `self: ${self}`);
  const zero = await rejection(
    alice.conn.reducers.transfer({ recipient: bob.conn.identity!, amountCents: 0n }),
  );
  expect(zero.includes("Amount must be greater than zero"), `zero: ${zero}`);
  const over = await rejection(
    alice.conn.reducers.transfer({ recipient: bob.conn.identity!, amountCents: 1_000_000n }),
  );
  expect(over.includes("Insufficient funds"), `overdraft: ${over}`);
  expect(balance(alice.conn) === 10_000n - 1_234n, "a failed transfer changes nothing");
});

await check("private tables are not readable by clients", async () => {
  const text = await new Promise<string>((resolve) => {
    alice.conn.subscriptionBuilder()
      .onApplied(() => resolve("applied"))
      .onError((ctx: { event?: Error }) => resolve(ctx.event?.message ?? "error"))
      .subscribe("SELECT * FROM account");
  });
  expect(text !== "applied", "a subscription to the private account table was accepted");
});

alice.conn.disconnect();
bob.conn.disconnect();
finish();
