/**
 * Work that arrives while a database's module is being updated waits for the new
 * module: HTTP calls and new WebSocket connections made during the update are
 * served by the new module, and if the new module fails to start they fail with a
 * clear error instead of hanging.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { decodeServerFrame } from "../../protocol/mod.ts";
import { track, waitUntil } from "../support/wait.ts";
import {
  call,
  type CallResponse,
  fixtureBundle,
  publish,
  startTestServer,
} from "../support/server.ts";

/** Top-level work that makes every start of the module (probe and real start) slow. */
const SLOW_START = "\n{ const until = Date.now() + 600; while (Date.now() < until) {} }\n";

function replaceOnce(text: string, search: string, replacement: string): string {
  assertEquals(text.split(search).length, 2, `expected one "${search}" in the bundle`);
  return text.replace(search, replacement);
}

/** Fires `fire` every few milliseconds until `until` settles; returns what it fired. */
async function fireWhile<T>(
  until: Promise<unknown>,
  fire: () => Promise<T>,
): Promise<{ during: Promise<T>[]; settled: PromiseSettledResult<unknown> }> {
  let done = false;
  const settled = Promise.allSettled([until]).then(([result]) => {
    done = true;
    return result;
  });
  const during: Promise<T>[] = [];
  while (!done) {
    during.push(fire());
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
  return { during, settled: await settled };
}

/** Opens a WebSocket and reports its first event: the first message's tag, or the close. */
function firstEvent(url: string, database: string): Promise<string> {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/${database}/subscribe?compression=None`,
    ["v3.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  return new Promise<string>((resolve) => {
    socket.onmessage = async (event) => {
      const [message] = await decodeServerFrame(new Uint8Array(event.data as ArrayBuffer), "v3");
      resolve(message.tag);
      socket.close();
    };
    socket.onclose = (event) => resolve(`closed ${event.code}: ${event.reason}`);
    socket.onerror = () => {};
  });
}

Deno.test({
  name: "calls and connections made during a module update are served by the new module",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const v1 = await fixtureBundle("gate");
      const v2 = replaceOnce(v1, ".sort()", '.sort().concat(["v2"])') + SLOW_START;
      const owner = await publish(server.url, "updating", v1);
      assertEquals((await call(server.url, "updating", "entries", [])).json, ["from init"]);

      const update = publish(server.url, "updating", v2, { token: owner.token });
      const calls = fireWhile(update, () => call(server.url, "updating", "entries", []));
      const sockets = fireWhile(update, () => firstEvent(server.url, "updating"));
      const { during, settled } = await calls;
      assertEquals(settled.status, "fulfilled");
      const responses: CallResponse[] = await Promise.all(during);
      for (const response of responses) {
        assertEquals(response.status, 200, response.text);
      }
      // Calls made while the new module was starting waited for it and saw it.
      assert(
        responses.some((response) => JSON.stringify(response.json) === '["from init","v2"]'),
        "no call made during the update was served by the new module",
      );
      for (const response of responses) {
        assert(
          ['["from init"]', '["from init","v2"]'].includes(JSON.stringify(response.json)),
          response.text,
        );
      }
      const events = await Promise.all((await sockets).during);
      for (const event of events) assertEquals(event, "InitialConnection");
      assertEquals((await call(server.url, "updating", "entries", [])).json, ["from init", "v2"]);
      assertEquals(await firstEvent(server.url, "updating"), "InitialConnection");
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a WebSocket whose handshake began before a module update gets InitialConnection first",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      // client_connected runs for 3 s, much longer than the update's probe of the new module,
      // so the update starts while this connection's handshake is still running on the old one.
      const v1 = replaceOnce(
        await fixtureBundle("gate"),
        "spacetimedb.clientConnected((ctx) => {",
        "spacetimedb.clientConnected((ctx) => {\n  { const until = Date.now() + 3000; " +
          "while (Date.now() < until) {} }",
      );
      const v2 = replaceOnce(v1, ".sort()", '.sort().concat(["v2"])');
      const owner = await publish(server.url, "handshake", v1);
      const first = track(firstEvent(server.url, "handshake"));
      // The handshake's client_connected is running in the old module's process (a fixed 300 ms
      // wait let a loaded machine start the update first, and the test then proved nothing).
      const host = server.server.registry.resolve("handshake")!.host;
      await waitUntil(() => host.batchesInFlight > 0, "client_connected to start");
      // Still running when the update is sent (the spin is 3 s; the update's start is not
      // observable from here, so a machine slower than that can still make this step vacuous).
      assert(!first.settled, "the handshake ended before the update was sent");
      const started = performance.now();
      await publish(server.url, "handshake", v2, { token: owner.token });
      console.log(`update took ${Math.round(performance.now() - started)} ms`);
      // The admitted handshake finished on the old module before the update closed it.
      assertEquals(await first.promise, "InitialConnection");
      assertEquals((await call(server.url, "handshake", "entries", [])).json, ["from init", "v2"]);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "calls waiting on an update whose new module fails to start fail clearly and do not hang",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const v1 = await fixtureBundle("gate");
      // Loads fine (the probe passes) but init throws, so the reset's real start fails.
      const broken = replaceOnce(
        v1,
        "spacetimedb.init((ctx) => {",
        'spacetimedb.init((ctx) => {\n  throw new Error("init refuses to run");',
      ) + SLOW_START;
      const owner = await publish(server.url, "failing", v1);

      const update = publish(server.url, "failing", broken, { token: owner.token, clear: true });
      const { during, settled } = await fireWhile(
        update,
        () => call(server.url, "failing", "entries", []),
      );
      assertEquals(settled.status, "rejected");
      assertMatch(
        String((settled as PromiseRejectedResult).reason),
        /400 Failed to publish the module/,
      );
      const responses = await Promise.all(during);
      const failed = responses.filter((response) => response.status !== 200);
      assert(failed.length > 0, "no call was made while the new module was starting");
      for (const response of failed) {
        assertEquals(response.status, 400, response.text);
        assertMatch(
          response.text,
          /^Database is not running: the new module failed to start: ./,
        );
      }
      // Later calls fail fast the same way; a good publish brings the database back.
      const later = await call(server.url, "failing", "entries", []);
      assertEquals(later.status, 400);
      assertMatch(later.text, /the new module failed to start/);
      await publish(server.url, "failing", v1, { token: owner.token, clear: true });
      assertEquals((await call(server.url, "failing", "entries", [])).json, ["from init"]);
    } finally {
      await server.close();
    }
  },
});
