/**
 * `GET /dashboard/api/replication`, the dashboard's JSON route: `none` on a server that neither
 * replicates nor follows; on a real primary (`--replicate`, a real nats-server) and its read
 * replica (`--follow`) their roles, the NATS server, and per database the primary's lag behind
 * JetStream and the transactions the replica applied; refused to clients that may not read
 * /v1/metrics, and gone with `--no-dashboard`.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dashboardRoutes, type ReplicationStatus } from "./mod.ts";
import { metricsAllowed } from "../routes/metrics.ts";
import { call, fixtureBundle, publish, startTestServer } from "../../tests/support/server.ts";
import { startNatsServer } from "../../tests/support/nats.ts";
import { waitUntil } from "../../tests/support/wait.ts";

async function status(url: string): Promise<ReplicationStatus> {
  const response = await fetch(`${url}/dashboard/api/replication`);
  const text = await response.text();
  assertEquals(response.status, 200, text);
  assertEquals(response.headers.get("content-type"), "application/json");
  assertEquals(response.headers.get("access-control-allow-origin"), null);
  return JSON.parse(text);
}

Deno.test({
  name: "the replication status says none on a server that neither replicates nor follows",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      assertEquals(await status(server.url), { role: "none" });
    } finally {
      await server.close();
    }
  },
});

Deno.test("the replication status is served where /v1/metrics is, and not without the dashboard", async () => {
  const primary: ReplicationStatus = { role: "primary", nats: "127.0.0.1:4222", databases: [] };
  const routes = (metricsPublic: boolean, enabled = true) =>
    dashboardRoutes({
      enabled,
      replicationStatus: () => primary,
      mayReadMetrics: (env, forwardedFor) => metricsAllowed({ metricsPublic }, env, forwardedFor),
    });
  const request = () => new Request("http://lightcone.test/api/replication");
  const from = (hostname: string) => ({ remoteAddr: { hostname } });

  const remote = await routes(false).fetch(request(), from("10.1.2.3"));
  assertEquals(remote.status, 403);
  assert((await remote.text()).includes("--metrics-public"));
  const loopback = await routes(false).fetch(request(), from("127.0.0.1"));
  assertEquals(loopback.status, 200);
  assertEquals(await loopback.json(), primary);
  const mapped = await routes(false).fetch(request(), from("::ffff:127.0.0.1"));
  assertEquals(mapped.status, 200);
  await mapped.body?.cancel();
  const published = await routes(true).fetch(request(), from("10.1.2.3"));
  assertEquals(published.status, 200);
  await published.body?.cancel();
  const off = await routes(true, false).fetch(request(), from("127.0.0.1"));
  assertEquals(off.status, 404);
  await off.body?.cancel();
});

Deno.test({
  name: "a primary shows its lag per database, its read replica the transactions it applied",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    const primary = await startTestServer({ replicate: nats.server });
    const replica = await startTestServer({ follow: nats.server });
    try {
      await publish(primary.url, "replicated", await fixtureBundle("bank"));
      const seeded = await call(primary.url, "replicated", "seed", [1, 3, 100]);
      assertEquals(seeded.status, 200, seeded.text);

      let onPrimary: ReplicationStatus | undefined;
      await waitUntil(async () => {
        onPrimary = await status(primary.url);
        return onPrimary.role === "primary" && onPrimary.databases.length === 1 &&
          onPrimary.databases[0].lagTx === 0 && onPrimary.databases[0].lagBytes === 0 &&
          onPrimary.databases[0].replicatedTx >= 1;
      }, "the primary's status to show the database replicated");
      assert(onPrimary?.role === "primary");
      assertEquals(onPrimary.nats, `nats://${nats.server}`);
      const row = onPrimary.databases[0];
      assertEquals(row.database, "replicated");
      assert(/^[0-9a-f]{64}$/.test(row.identity), row.identity);
      assertEquals(row.replicatedTx, row.durableTx);
      assertEquals(row.lagBytes, 0);
      assertEquals(row.stopped, null);

      let onReplica: ReplicationStatus | undefined;
      await waitUntil(async () => {
        onReplica = await status(replica.url);
        return onReplica.role === "replica" && onReplica.databases.length === 1 &&
          onReplica.databases[0].appliedTx === row.replicatedTx &&
          onReplica.databases[0].database === "replicated";
      }, "the replica's status to show the primary's transactions applied");
      assert(onReplica?.role === "replica");
      assertEquals(onReplica.nats, `nats://${nats.server}`);
      assertEquals(onReplica.databases[0].database, "replicated");
      assertEquals(onReplica.databases[0].identity, row.identity);
      assertEquals(onReplica.databases[0].stopped, null);
      assert(onReplica.pendingMessages >= 0, String(onReplica.pendingMessages));
    } finally {
      await replica.close();
      await primary.close();
      await nats.stop();
    }
  },
});
