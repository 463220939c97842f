/**
 * Tenant code runs in the same worker as our host code and can patch built-ins
 * (Array.prototype.push, Uint8Array.prototype.set) to make its process send garbage
 * to the server or to the storage worker. Either way only the
 * hostile database suffers: the server and other databases keep working.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const PATCH_PUSH = `
const __push = Array.prototype.push;
Array.prototype.push = function (...items) {
  if (globalThis.__armed && items.length === 1 && items[0] && typeof items[0] === "object" &&
      "kind" in items[0]) {
    return __push.call(this, items[0], null);
  }
  return __push.apply(this, items);
};
`;

// Our frame writer copies each payload behind a 5-byte header with Uint8Array.prototype.set:
// once armed, every frame the process sends (replies and commit batches) becomes 0xff bytes.
const PATCH_FRAMES = `
const __set = Uint8Array.prototype.set;
Uint8Array.prototype.set = function (source, offset) {
  __set.call(this, source, offset);
  if (globalThis.__armed && offset === 5) this.fill(0xff);
};
`;

/** The chat module, armed by sending the message "arm". */
async function hostileChat(patch: string): Promise<string> {
  const bundle = await fixtureBundle("chat");
  const armed = bundle.replace(
    "if (text.length === 0)",
    'if (text === "arm") globalThis.__armed = true; if (text.length === 0)',
  );
  assert(armed !== bundle, "the chat fixture changed: update this test's hook");
  return patch + armed;
}

Deno.test({
  name: "a module that corrupts its worker's messages harms only its own database",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "victim", await fixtureBundle("chat"));
      const victimWorks = async () => {
        const response = await call(server.url, "victim", "send_message", ["still fine"]);
        assertEquals(response.status, 200, response.text);
      };
      for (const [name, patch] of [["push", PATCH_PUSH], ["frames", PATCH_FRAMES]] as const) {
        await t.step(`patched ${name}: the server and the other database carry on`, async () => {
          await publish(server.url, `evil-${name}`, await hostileChat(patch));
          await victimWorks();
          // Arm, then make the worker send something: its own database may fail.
          await call(server.url, `evil-${name}`, "send_message", ["arm"]).catch(() => {});
          await call(server.url, `evil-${name}`, "send_message", ["boom"]).catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, 300));
          await victimWorks();
          assertEquals((await fetch(`${server.url}/v1/ping`)).status, 200);
        });
      }
    } finally {
      await server.close();
    }
  },
});
