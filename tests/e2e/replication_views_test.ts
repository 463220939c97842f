/**
 * Views on a read replica, end to end: a real nats-server (tests/support/nats.ts), a primary
 * (`--replicate`), a replica (`--follow`) and the official `spacetimedb` SDK (bindings in
 * tests/fixtures/bindings/views_rls) subscribed to views on the replica while reducers run on
 * the primary. Replicated transactions re-run the replica's own view instances, so the SDK
 * sees each view change; a view that fails only on the replica does not stop it following.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/views_rls/index.ts";
import {
  call,
  fixtureBundle,
  parseWithBigInts,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";
import { freePort, type Nats, startNats, stopNats } from "../support/nats.ts";
import { waitUntil } from "../support/wait.ts";

const DB = "views-rls";

async function sqlRows(url: string, query: string): Promise<unknown[][]> {
  const response = await fetch(`${url}/v1/database/${DB}/sql`, { method: "POST", body: query });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`sql failed: ${response.status} ${text}`);
  return (parseWithBigInts(text) as { rows: unknown[][] }[])[0].rows;
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{database="${DB}"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

function connect(url: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName(DB)
      .onConnect((conn) => resolve(conn))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function subscribe(conn: DbConnection, queries: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(queries);
  });
}

const petCount = (conn: DbConnection) => [...conn.db.petCount.iter()].map((row) => row.count);
const adults = (conn: DbConnection) => [...conn.db.adults.iter()].map((row) => row.name).sort();

Deno.test({
  name: "views on a read replica: an SDK subscribed on the replica sees them change as the " +
    "primary commits; a view failing only on the replica does not stop it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    let nats: Nats | undefined;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    let conn: DbConnection | undefined;
    try {
      nats = await startNats(freePort(), storeDir);
      const server = `127.0.0.1:${nats.port}`;
      primary = await startTestServer({ replicate: server });
      follower = await startTestServer({ follow: server });
      const owner = await publish(primary.url, DB, await fixtureBundle("views_rls"));
      const callOk = async (name: string, args: unknown[]) => {
        const response = await call(primary!.url, DB, name, args, owner.token);
        assertEquals(response.status, 200, response.text);
      };
      await callOk("add_pet", [1, 1, "cat"]);
      await waitUntil(
        async () =>
          (await sqlRows(follower!.url, "SELECT * FROM pet").catch(() => [])).length === 1,
        "the first pet on the replica",
      );

      await t.step("a one-off query of a view on the replica", async () => {
        assertEquals(await sqlRows(follower!.url, "SELECT * FROM pet_count"), [[1]]);
      });

      await t.step("view subscriptions on the replica follow the primary's commits", async () => {
        conn = await connect(follower!.url);
        await subscribe(conn, [
          "SELECT * FROM pet_count",
          "SELECT * FROM adults",
          "SELECT * FROM fragile",
        ]);
        assertEquals(petCount(conn), [1n]);
        assertEquals(adults(conn), []);
        assertEquals(conn.db.fragile.count(), 1n);
        await callOk("add_pet", [2, 1, "dog"]);
        await waitUntil(() => petCount(conn!)[0] === 2n, "pet_count 2 on the replica");
        await callOk("add_person", [1, "Ann", 30]);
        await callOk("add_person", [2, "Kid", 10]);
        await waitUntil(() => adults(conn!).length === 1, "Ann among the adults");
        assertEquals(adults(conn), ["Ann"]);
        await callOk("set_name", [1, "Anna"]);
        await waitUntil(() => adults(conn!)[0] === "Anna", "the renamed adult");
        assertEquals(petCount(conn), [2n]);
      });

      await t.step("a view that fails only on the replica: the replica follows on", async () => {
        // The primary has no instance of `fragile` (nobody reads it there), so this commits.
        await callOk("set_fail", [true]);
        await callOk("add_pet", [3, 1, "owl"]);
        await waitUntil(() => petCount(conn!)[0] === 3n, "pet_count 3 after the failing view");
        assertEquals(await metric(follower!.url, "lightcone_replication_follower_stopped"), 0);
        assertEquals(conn!.db.fragile.count(), 1n);
        const durable = await metric(primary!.url, "lightcone_durable_tx_offset");
        await waitUntil(
          async () =>
            (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
          "the replica's log at the primary's offset",
        );
      });
    } finally {
      conn?.disconnect();
      await follower?.close();
      await primary?.close();
      if (nats) await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});
