/**
 * A replica (and a primary) shut down right after they started, while the replica's JetStream
 * consumer waits on an empty stream: the shutdown ends (it hung before: closing the NATS
 * connection alone did not end the consumer's iterator).
 */
import { startTestServer, type TestServer } from "../support/server.ts";
import { freePort, type Nats, startNats, stopNats } from "../support/nats.ts";
import { waitUntil, within } from "../support/wait.ts";

Deno.test({
  name: "replication: a replica and a primary close right after they started",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    let nats: Nats | undefined;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    try {
      nats = await startNats(freePort(), storeDir);
      const server = `127.0.0.1:${nats.port}`;
      primary = await startTestServer({ replicate: server });
      follower = await startTestServer({ follow: server });
      // The replica's consumer is up once the metrics say so (or at once: either way it waits).
      await waitUntil(
        async () => {
          const response = await fetch(`${follower!.url}/v1/metrics`);
          await response.body?.cancel();
          return response.status === 200;
        },
        "the replica's metrics",
      );
      await within(follower.close(), "the replica to shut down");
      follower = undefined;
      await within(primary.close(), "the primary to shut down");
      primary = undefined;
    } finally {
      await follower?.close();
      await primary?.close();
      if (nats) await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});
