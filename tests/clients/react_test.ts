/**
 * Client matrix, React: `spacetimedb/react` (SpacetimeDBProvider, useTable, useReducer,
 * useSpacetimeDB) of the official SDK (2.8.3 and the newest 2.x) rendering a chat page in
 * headless Chromium, driven like a user would (typing, clicking, reading the page), with
 * a second client (the SDK in Deno) on the other side, over gzip frames. The page keeps
 * its token in localStorage: a reload reconnects as the same identity, and after a server
 * restart the provider reconnects on its own, still as the same identity. A page that
 * connected anonymously and was not reloaded since keeps its identity across a restart with
 * 2.10.1 (its connection manager re-applies the session's token), not with 2.8.3.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/chat/index.ts";
import { fixtureBundle, publish, startTestServer, type TestServer } from "../support/server.ts";
import {
  announceSkip,
  bundle,
  chromiumPath,
  ensureClientsInstalled,
  eventually,
  type LineClient,
  SDK_VERSIONS,
  servePages,
  startBrowser,
  within,
} from "./support.ts";

await ensureClientsInstalled();
const chromium = chromiumPath();
if (!chromium) {
  announceSkip(
    "React client matrix (tests/clients/react_test.ts)",
    "Debian's chromium is not installed and tests/support/install_clients.sh could not install it",
  );
}

/** A second chat client: the official SDK in this Deno process. */
function connectPeer(url: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("chat")
      .onConnect((conn) => {
        conn.subscriptionBuilder()
          .onApplied(() => resolve(conn))
          .onError((ctx) => reject(ctx.event))
          .subscribe(["SELECT * FROM user", "SELECT * FROM message"]);
      })
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function pageText(browser: LineClient, selector: string): Promise<string> {
  return browser.request<string>("text", { selector });
}

function pageShows(browser: LineClient, selector: string, expected: string): Promise<true> {
  return eventually(
    async () => {
      return (await pageText(browser, selector)) === expected ? true : undefined;
    },
    `${selector} to read "${expected}"`,
    60_000,
  );
}

async function messagesOnPage(browser: LineClient): Promise<string[]> {
  const text = await pageText(browser, "#messages");
  return text === "" ? [] : text.split("\n");
}

for (const sdk of SDK_VERSIONS) {
  Deno.test({
    name: `client matrix: React in Chromium with spacetimedb@${sdk}/react`,
    ignore: !chromium,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      let server: TestServer | undefined = await startTestServer({ wsCompression: true });
      const { dataDir } = server;
      const port = Number(new URL(server.url).port);
      const url = server.url;
      const script = await bundle("react_app.tsx", { sdk, platform: "browser" });
      const pages = servePages({
        "/": {
          type: "text/html",
          text:
            `<!doctype html><title>react chat ${sdk}</title><div id="root"></div><script type="module" src="/app.js"></script>`,
        },
        "/app.js": { path: script, type: "text/javascript" },
      });
      const browser = await startBrowser(`React sdk ${sdk}`, chromium!);
      const peers: DbConnection[] = [];
      try {
        await publish(url, "chat", await fixtureBundle("chat"));
        const peer = await connectPeer(url);
        peers.push(peer);
        let identity = "";

        await t.step("the provider connects without a token and keeps the issued one", async () => {
          await browser.request("goto", { url: `${pages.url}/?server=${encodeURIComponent(url)}` });
          await pageShows(browser, "#status", "connected");
          await pageShows(browser, "#ready", "ready");
          identity = await pageText(browser, "#identity");
          assert(/^[0-9a-f]{64}$/.test(identity), identity);
          const saved = await browser.request("eval", {
            expression: "localStorage.getItem('chat_token')",
          });
          assert(typeof saved === "string" && saved.length > 20, "token saved");
          await pageShows(browser, "#users", "2 online");
        });

        await t.step("another client's insert and update re-render the page", async () => {
          const sent = new Promise<bigint>((resolve) => {
            peer.db.message.onInsert((_ctx, row) => {
              if (row.text === "from deno") resolve(row.id);
            });
          });
          await within(peer.reducers.sendMessage({ text: "from deno" }), "the peer's call");
          await eventually(async () => {
            const shown = await messagesOnPage(browser);
            return shown.join() === "from deno" ? true : undefined;
          }, "the peer's message on the page");
          const id = await within(sent, "the peer's own insert");
          await within(
            peer.reducers.editMessage({ id, text: "edited by deno" }),
            "the peer's edit",
          );
          await eventually(async () => {
            const shown = await messagesOnPage(browser);
            return shown.join() === "edited by deno" ? true : undefined;
          }, "the edit on the page");
          const seen = await browser.request<string[]>("eval", {
            expression: "globalThis.lightconeCallbacks()",
          });
          assertEquals(seen, ["insert from deno", "update from deno->edited by deno"]);
        });

        await t.step("useReducer sends from the form; the other client receives it", async () => {
          const received = new Promise<string>((resolve) => {
            peer.db.message.onInsert((_ctx, row) => {
              if (row.text === "from react") resolve(row.sender.toHexString());
            });
          });
          await browser.request("fill", { selector: "#draft", value: "from react" });
          await browser.request("click", { selector: "#send" });
          assertEquals(await within(received, "the page's message at the peer"), identity);
          await eventually(async () => {
            const shown = await messagesOnPage(browser);
            return shown.join() === "edited by deno,from react" ? true : undefined;
          }, "the page's own message on the page");
          assertEquals(await pageText(browser, "#error"), "");
        });

        await t.step("frames are gzip-compressed (the SDK's default)", async () => {
          const frames = await browser.request<{ compression: string; tag: number }[]>("eval", {
            expression: "globalThis.lightconeFrames()",
          });
          assert(frames.length >= 3, JSON.stringify(frames));
          assertEquals(
            new Set(frames.map((f) => `${f.compression} ${f.tag}`)),
            new Set(["Gzip 2"]),
          );
        });

        await t.step("a reload connects with the saved token: same identity", async () => {
          await browser.request("reload");
          await pageShows(browser, "#status", "connected");
          await pageShows(browser, "#ready", "ready");
          assertEquals(await pageText(browser, "#identity"), identity);
          assertEquals(await messagesOnPage(browser), ["edited by deno", "from react"]);
        });

        await t.step(
          "after a server restart the provider reconnects as the same identity",
          async () => {
            await server!.close({ keepData: true });
            server = undefined;
            await pageShows(browser, "#status", "disconnected");
            server = await startTestServer({ dataDir, port, wsCompression: true });
            // The provider's connection manager retries with backoff (1 s, 2 s, 4 s, ...).
            await pageShows(browser, "#status", "connected");
            assertEquals(await pageText(browser, "#identity"), identity);
            await pageShows(browser, "#ready", "ready");
            await browser.request("fill", { selector: "#draft", value: "after restart" });
            await browser.request("click", { selector: "#send" });
            await eventually(async () => {
              const shown = await messagesOnPage(browser);
              return shown.at(-1) === "after restart" ? shown : undefined;
            }, "the message sent after the restart");
            assertEquals(await messagesOnPage(browser), [
              "edited by deno",
              "from react",
              "after restart",
            ]);
            assertEquals(await pageText(browser, "#error"), "");
          },
        );

        await t.step(
          sdk === "2.8.3"
            ? "a page that connected anonymously gets a new identity after a restart (2.8.3)"
            : "a page that connected anonymously keeps its identity after a restart",
          async () => {
            // Without a reload since, the provider rebuilds from the builder made at page load
            // (no token). 2.10.1 re-applies the session's issued token, 2.8.3 does not.
            await browser.request("eval", { expression: "localStorage.clear()" });
            await browser.request("reload");
            await pageShows(browser, "#status", "connected");
            const anonymous = await pageText(browser, "#identity");
            assert(/^[0-9a-f]{64}$/.test(anonymous) && anonymous !== identity, anonymous);
            await server!.close({ keepData: true });
            server = undefined;
            await pageShows(browser, "#status", "disconnected");
            server = await startTestServer({ dataDir, port, wsCompression: true });
            await pageShows(browser, "#status", "connected");
            const after = await pageText(browser, "#identity");
            assert(/^[0-9a-f]{64}$/.test(after), after);
            if (sdk === "2.8.3") assert(after !== anonymous, "2.8.3 reconnected as before");
            else assertEquals(after, anonymous);
          },
        );
      } catch (error) {
        console.error(`page log:\n${(await browser.request<string[]>("log")).join("\n")}`);
        throw error;
      } finally {
        for (const peer of peers) peer.disconnect();
        await browser.close();
        await pages.close();
        await server?.close();
        if (!server) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      }
    },
  });
}
