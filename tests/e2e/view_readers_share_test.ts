/**
 * On the real server, the per-sender view instances a WebSocket subscription creates are charged
 * to the client's address: anonymous connections from one address (each a fresh identity) get
 * VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX instances of a view that reads a table whole, the
 * next one is refused naming the share, and the owner still subscribes (tests/e2e cannot open
 * connections from a second address; worker/view_readers_share_test.ts shows other addresses
 * keep their places).
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX } from "../../lib/limits.ts";
import { decodeServerFrame, encodeClientFrame, type ServerMessage } from "../../protocol/mod.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";

interface RawClient {
  socket: WebSocket;
  messages: ServerMessage[];
}

async function connect(url: string, path: string, forwardedFor?: string): Promise<RawClient> {
  const target = `${url.replace(/^http/, "ws")}${path}`;
  // Deno's WebSocket takes request headers (a proxy in front adds X-Forwarded-For).
  const socket = forwardedFor === undefined
    ? new WebSocket(target, ["v3.bsatn.spacetimedb"])
    : new WebSocket(
      target,
      {
        protocols: ["v3.bsatn.spacetimedb"],
        headers: { "x-forwarded-for": forwardedFor },
      } as unknown as string[],
    );
  socket.binaryType = "arraybuffer";
  const messages: ServerMessage[] = [];
  socket.onmessage = async (event) => {
    if (event.data instanceof ArrayBuffer) {
      messages.push(...await decodeServerFrame(new Uint8Array(event.data), "v3"));
    }
  };
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("websocket error"));
  });
  await waitUntil(() => messages.some((m) => m.tag === "InitialConnection"), "InitialConnection");
  return { socket, messages };
}

async function subscribeScanView(client: RawClient): Promise<ServerMessage> {
  client.socket.send(encodeClientFrame([{
    tag: "Subscribe",
    requestId: 1,
    querySetId: 1,
    queryStrings: ["SELECT * FROM scan_view"],
  }]));
  const answer = () =>
    client.messages.find((m) => m.tag === "SubscribeApplied" || m.tag === "SubscriptionError");
  await waitUntil(() => answer() !== undefined, "the subscription's answer");
  return answer()!;
}

Deno.test({
  name: "anonymous connections from one address get a share of a view's readers, not all",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const clients: RawClient[] = [];
    try {
      const owner = await publish(server.url, "share", await fixtureBundle("redteam"));
      const filled = await call(server.url, "share", "fill", [10], owner.token);
      assertEquals(filled.status, 200, filled.text);
      const path = "/v1/database/share/subscribe";
      for (let i = 0; i < VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX; i++) {
        const client = await connect(server.url, path);
        clients.push(client);
        assertEquals((await subscribeScanView(client)).tag, "SubscribeApplied", `client ${i}`);
      }
      const one = await connect(server.url, path);
      clients.push(one);
      const refused = await subscribeScanView(one);
      assertEquals(refused.tag, "SubscriptionError");
      assertMatch(
        JSON.stringify(refused),
        new RegExp(
          `clients from this address already hold ${VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX}`,
        ),
      );
      // The owner is not charged to an address.
      const ownerClient = await connect(server.url, `${path}?token=${owner.token}`);
      clients.push(ownerClient);
      assertEquals((await subscribeScanView(ownerClient)).tag, "SubscribeApplied");
    } finally {
      for (const client of clients) client.socket.close();
      await server.close();
    }
  },
});

Deno.test({
  name: "behind a trusted proxy, each forwarded client address gets its own share",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ trustedProxies: ["127.0.0.1", "::1"] });
    const clients: RawClient[] = [];
    try {
      const owner = await publish(server.url, "share", await fixtureBundle("redteam"));
      const filled = await call(server.url, "share", "fill", [10], owner.token);
      assertEquals(filled.status, 200, filled.text);
      const path = "/v1/database/share/subscribe";
      for (let i = 0; i < VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX; i++) {
        // Left of the proxy's entry: what the client wrote itself, which must not count.
        const client = await connect(server.url, path, `10.9.9.${i}, 198.51.100.1`);
        clients.push(client);
        assertEquals((await subscribeScanView(client)).tag, "SubscribeApplied", `client ${i}`);
      }
      const same = await connect(server.url, path, "198.51.100.1");
      clients.push(same);
      assertEquals((await subscribeScanView(same)).tag, "SubscriptionError");
      // Another client behind the same proxy keeps its own places.
      const other = await connect(server.url, path, "198.51.100.2");
      clients.push(other);
      assertEquals((await subscribeScanView(other)).tag, "SubscribeApplied");
      // The proxy's own address (no header) is yet another source.
      const direct = await connect(server.url, path);
      clients.push(direct);
      assertEquals((await subscribeScanView(direct)).tag, "SubscribeApplied");
    } finally {
      for (const client of clients) client.socket.close();
      await server.close();
    }
  },
});
