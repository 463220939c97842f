/**
 * The chat scenario every driver-based client of the matrix runs (Node.js 20 and 22,
 * Chromium), against a real server with --ws-compression: connect without and with a
 * token, subscribe, call reducers, receive another client's insert/update through
 * callbacks, see gzip and uncompressed frames, then reconnect with the saved token after
 * the server restarted (same data directory, same port) and keep the same identity.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fixtureBundle, publish, startTestServer, type TestServer } from "../support/server.ts";
import { eventually, newIdentity } from "./support.ts";

/** Runs one driver operation in the client under test. */
export type Drive = <T = unknown>(op: string, args?: Record<string, unknown>) => Promise<T>;

interface Message {
  id: string;
  text: string;
  sender: string;
}
interface Status {
  active: boolean;
  disconnected: boolean;
  disconnectError: string | null;
}
interface FrameRecord {
  compression: string;
  tag: number;
}
type CallResult = { ok: true } | { ok: false; error: string };

async function called(drive: Drive, name: string, reducer: string, args: unknown): Promise<void> {
  const result = await drive<CallResult>("call", { name, reducer, args });
  if (!result.ok) throw new Error(`${name}.${reducer} failed: ${result.error}`);
}

function eventsMatching(drive: Drive, name: string, prefix: RegExp, count: number) {
  return eventually(async () => {
    const events = (await drive<string[]>("events", { name })).filter((e) => prefix.test(e));
    return events.length >= count ? events : undefined;
  }, `${count} events matching ${prefix} on ${name}`);
}

export async function chatScenario(t: Deno.TestContext, drive: Drive): Promise<void> {
  let server: TestServer | undefined = await startTestServer({ wsCompression: true });
  const { dataDir } = server;
  const port = Number(new URL(server.url).port);
  try {
    await publish(server.url, "chat", await fixtureBundle("chat"));
    const url = server.url;
    const minted = await newIdentity(url);
    let alice = { identity: "", token: "" };

    await t.step(
      "connects without a token (new identity) and with one (its identity)",
      async () => {
        alice = await drive("connect", { name: "alice", url });
        assert(/^[0-9a-f]{64}$/.test(alice.identity), alice.identity);
        assert(alice.token.length > 20, "a token is issued");
        const bob = await drive<{ identity: string }>("connect", {
          name: "bob",
          url,
          token: minted.token,
          compression: "none",
        });
        assertEquals(bob.identity, minted.identity);
        assert(alice.identity !== bob.identity);
      },
    );

    await t.step("subscribes: both users are there", async () => {
      for (const name of ["alice", "bob"]) {
        const counts = await drive<{ users: number; messages: number }>("subscribe", { name });
        assertEquals(counts.messages, 0);
        // Alice may see Bob's row in the initial rows or as an insert right after.
        await eventually(async () => {
          const users = await drive<{ online: boolean }[]>("users", { name });
          return users.length === 2 && users.every((u) => u.online) ? true : undefined;
        }, `two online users on ${name}`);
        await drive("watch", { name });
      }
    });

    await t.step("another client's calls arrive as update and insert callbacks", async () => {
      await called(drive, "bob", "setName", { name: "Bob" });
      await called(drive, "bob", "sendMessage", { text: "hello from bob" });
      const [sent] = await drive<Message[]>("messages", { name: "bob" });
      assertEquals(sent.text, "hello from bob");
      assertEquals(sent.sender, minted.identity);
      await called(drive, "bob", "editMessage", { id: sent.id, text: "hello again" });
      const seen = await eventsMatching(drive, "alice", /^(insert|update|delete) /, 2);
      assertEquals(seen, ["insert hello from bob", "update hello from bob->hello again"]);
      const users = await eventsMatching(drive, "alice", /^user Bob/, 1);
      assertEquals(users, ["user Bob online"]);
    });

    await t.step(
      "the client's own calls reach the other client; a failing call rejects",
      async () => {
        await called(drive, "alice", "sendMessage", { text: "hi bob" });
        assertEquals(await eventsMatching(drive, "bob", /^insert /, 2), [
          "insert hello from bob",
          "insert hi bob",
        ]);
        const failed = await drive<CallResult>("call", {
          name: "alice",
          reducer: "sendThenFail",
          args: { text: "ghost" },
        });
        assert(!failed.ok && failed.error.includes('refusing "ghost"'), JSON.stringify(failed));
        const texts = (await drive<Message[]>("messages", { name: "alice" })).map((m) => m.text);
        assertEquals(texts, ["hello again", "hi bob"]);
      },
    );

    await t.step(
      "frames are gzip-compressed when asked (SDK default) and plain when not",
      async () => {
        const frames = await drive<FrameRecord[]>("frames");
        const gzip = frames.filter((f) => f.compression === "Gzip");
        const none = frames.filter((f) => f.compression === "None");
        assert(gzip.length >= 3 && none.length >= 3, JSON.stringify(frames));
        assertEquals(new Set(gzip.map((f) => f.tag)), new Set([2]));
        assertEquals(new Set(none.map((f) => f.tag)), new Set([0]));
      },
    );

    await t.step(
      "reconnects after a server restart with the saved token: same identity",
      async () => {
        await server!.close({ keepData: true });
        server = undefined;
        for (const name of ["alice", "bob"]) {
          await eventually(async () => {
            const status = await drive<Status>("status", { name });
            return status.disconnected ? true : undefined;
          }, `${name} to see the disconnect`);
        }
        server = await startTestServer({ dataDir, port, wsCompression: true });
        assertEquals(server.url, url);
        const again = await drive<{ identity: string }>("connect", {
          name: "alice again",
          url,
          token: alice.token,
        });
        assertEquals(again.identity, alice.identity);
        await drive("subscribe", { name: "alice again" });
        await drive("watch", { name: "alice again" });
        const texts = (await drive<Message[]>("messages", { name: "alice again" })).map((m) =>
          m.text
        );
        assertEquals(texts, ["hello again", "hi bob"]);
        await called(drive, "alice again", "sendMessage", { text: "back" });
        // Rows were already there when it subscribed: one insert is one callback and one row.
        assertEquals(await eventsMatching(drive, "alice again", /^insert /, 1), ["insert back"]);
        const after = (await drive<Message[]>("messages", { name: "alice again" })).map((m) =>
          m.text
        );
        assertEquals(after, ["hello again", "hi bob", "back"]);
        const all = await drive<string[]>("events", { name: "alice again" });
        assertEquals(all.filter((e) => /^(insert|update|delete) /.test(e)), ["insert back"]);
        await drive("disconnect", { name: "alice again" });
      },
    );
  } finally {
    await server?.close();
    if (!server) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}
