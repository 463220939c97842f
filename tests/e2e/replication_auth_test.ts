/**
 * Replication through a NATS server that requires a user and password (`nats://user:pass@…`):
 * both ends pass the credentials to the client, a client without them is refused, and the
 * password shows up in no log line and no refusal text of the replica.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";
import { freePort, type Nats, startNats, stopNats } from "../support/nats.ts";
import { waitUntil } from "../support/wait.ts";
import { parseNatsUrl } from "../../replication/mod.ts";

const PASSWORD = "s3cret-Pa55";

Deno.test({
  name: "replication with NATS user and password in the URL",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    let nats: Nats | undefined;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    try {
      const port = freePort();
      nats = await startNats(port, storeDir, ["--user", "lc", "--pass", PASSWORD]);
      // The server does require them: its greeting says so.
      const socket = await Deno.connect({ hostname: "127.0.0.1", port });
      let greeting = "";
      try {
        const buffer = new Uint8Array(4096);
        while (!greeting.includes("\r\n")) {
          const n = await socket.read(buffer);
          if (n === null) break;
          greeting += new TextDecoder().decode(buffer.subarray(0, n));
        }
      } finally {
        socket.close();
      }
      assert(/"auth_required"\s*:\s*true/.test(greeting), greeting);

      const server = parseNatsUrl(`nats://lc:${PASSWORD}@127.0.0.1:${port}`, "--replicate");
      primary = await startTestServer({ replicate: server });
      follower = await startTestServer({ follow: server });
      const owner = await publish(primary.url, "auth", await fixtureBundle("migrate_v1"));
      const added = await call(primary.url, "auth", "add", [1, "Ann"], owner.token);
      assertEquals(added.status, 200, added.text);
      await waitUntil(async () => {
        const response = await fetch(`${follower!.url}/v1/database/auth/sql`, {
          method: "POST",
          body: "SELECT * FROM person",
        });
        const text = await response.text();
        return response.status === 200 && JSON.parse(text)[0].rows.length === 1;
      }, "Ann on the replica");
      const write = await call(follower.url, "auth", "add", [2, "Bob"], undefined);
      assert(write.status >= 400 && write.text.includes("read replica"), write.text);
      assert(!write.text.includes(PASSWORD), write.text);
    } finally {
      await follower?.close();
      await primary?.close();
      if (nats) await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});
