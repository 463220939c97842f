/**
 * The official `spacetimedb` client SDK (2.8.3, DbConnection.builder()) against a
 * real server: two chat clients see each other's changes through callbacks, a
 * failing reducer's error reaches only its caller, filtered subscriptions and
 * unsubscribe behave, and a saved token keeps its identity across reconnects.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/chat/index.ts";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

interface Connected {
  conn: DbConnection;
  identityHex: string;
  token: string;
}

function connect(url: string, token?: string): Promise<Connected> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("chat")
      .withToken(token)
      .onConnect((conn, identity, token) =>
        resolve({ conn, identityHex: identity.toHexString(), token })
      )
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function subscribe(
  conn: DbConnection,
  queries: string[],
): Promise<{ unsubscribe(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const handle = conn.subscriptionBuilder()
      .onApplied(() =>
        resolve({
          unsubscribe: () =>
            new Promise<void>((done) => {
              handle.unsubscribeThen(() => done());
            }),
        })
      )
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(queries);
  });
}

/** Resolves once `predicate` holds, checking after every event-loop turn (bounded). */
async function eventually(
  predicate: () => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test({
  name: "the official SDK: two chat clients stay in sync",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const open: DbConnection[] = [];
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const alice = await connect(server.url);
      const bob = await connect(server.url);
      open.push(alice.conn, bob.conn);
      assert(alice.identityHex !== bob.identityHex, "anonymous clients get fresh identities");

      await subscribe(alice.conn, ["SELECT * FROM user", "SELECT * FROM message"]);
      await subscribe(bob.conn, ["SELECT * FROM user", "SELECT * FROM message"]);

      await t.step("initial rows: both users are online", () => {
        const users = [...alice.conn.db.user.iter()];
        assertEquals(users.length, 2);
        assert(users.every((user) => user.online));
      });

      await t.step("inserts, updates and deletes reach the other client in order", async () => {
        const events: string[] = [];
        alice.conn.db.message.onInsert((_ctx, row) => events.push(`insert ${row.text}`));
        alice.conn.db.message.onUpdate((_ctx, before, after) =>
          events.push(`update ${before.text}->${after.text}`)
        );
        alice.conn.db.message.onDelete((_ctx, row) => events.push(`delete ${row.text}`));
        alice.conn.db.user.onUpdate((_ctx, _before, after) =>
          events.push(`user ${after.name ?? "-"}`)
        );

        await bob.conn.reducers.setName({ name: "Bob" });
        await bob.conn.reducers.sendMessage({ text: "one" });
        await bob.conn.reducers.sendMessage({ text: "two" });
        const two = [...bob.conn.db.message.iter()].find((row) => row.text === "two")!;
        await bob.conn.reducers.editMessage({ id: two.id, text: "two!" });
        await bob.conn.reducers.deleteMessage({ id: two.id });
        await eventually(() => events.length === 5, "five events on alice");
        assertEquals(events, [
          "user Bob",
          "insert one",
          "insert two",
          "update two->two!",
          "delete two!",
        ]);
        assertEquals([...alice.conn.db.message.iter()].map((row) => row.text), ["one"]);
        const sender = [...alice.conn.db.message.iter()][0].sender.toHexString();
        assertEquals(sender, bob.identityHex);
      });

      await t.step(
        "a failing reducer's error reaches only its caller and changes nothing",
        async () => {
          let othersSaw = 0;
          alice.conn.db.message.onInsert(() => othersSaw++);
          let failure: unknown;
          try {
            await bob.conn.reducers.sendThenFail({ text: "ghost" });
          } catch (error) {
            failure = error;
          }
          assert(failure, "the promise must reject");
          assert(
            String((failure as Error).message ?? failure).includes('refusing "ghost"'),
            String(failure),
          );
          await bob.conn.reducers.sendMessage({ text: "after" });
          await eventually(() => othersSaw === 1, "the next message");
          assert(![...alice.conn.db.message.iter()].some((row) => row.text === "ghost"));
          assert(![...bob.conn.db.message.iter()].some((row) => row.text === "ghost"));
        },
      );

      await t.step(
        "a filtered subscription gets only matching rows; leaving the filter is a delete",
        async () => {
          const carol = await connect(server.url);
          open.push(carol.conn);
          const handle = await subscribe(carol.conn, [`SELECT * FROM message WHERE text = 'one'`]);
          assertEquals([...carol.conn.db.message.iter()].map((row) => row.text), ["one"]);
          assertEquals(carol.conn.db.user.count(), 0n);
          const deleted: string[] = [];
          carol.conn.db.message.onDelete((_ctx, row) => deleted.push(row.text));
          const one = [...bob.conn.db.message.iter()].find((row) => row.text === "one")!;
          await bob.conn.reducers.editMessage({ id: one.id, text: "uno" });
          await eventually(() => deleted.length === 1, "the message leaving the filter");
          assertEquals(deleted, ["one"]);
          assertEquals(carol.conn.db.message.count(), 0n);
          await bob.conn.reducers.editMessage({ id: one.id, text: "one" });
          await eventually(
            () => carol.conn.db.message.count() === 1n,
            "the message back in the filter",
          );
          await handle.unsubscribe();
          assertEquals(carol.conn.db.user.count(), 0n);
        },
      );

      await t.step(
        "reconnecting with the saved token keeps the identity; disconnect is visible",
        async () => {
          const bobToken = bob.token;
          bob.conn.disconnect();
          await eventually(
            () =>
              [...alice.conn.db.user.iter()].some((row) =>
                row.identity.toHexString() === bob.identityHex && !row.online
              ),
            "bob offline",
          );
          const again = await connect(server.url, bobToken);
          open.push(again.conn);
          assertEquals(again.identityHex, bob.identityHex);
          await eventually(
            () =>
              [...alice.conn.db.user.iter()].some((row) =>
                row.identity.toHexString() === bob.identityHex && row.online
              ),
            "bob online again",
          );
        },
      );
    } finally {
      for (const conn of open) {
        try {
          conn.disconnect();
        } catch { /* already closed */ }
      }
      await server.close();
    }
  },
});
