/**
 * Replication over NATS JetStream, end to end: a real nats-server (Debian's, with JetStream; CI
 * installs it through tests/support/install_debian.sh, and this test fails without it), a
 * primary (`--replicate`) and a read replica (`--follow`), each a real server with its own data
 * directory, and the official `spacetimedb` SDK (2.8.3; bindings in tests/fixtures/bindings/
 * migrate) subscribed on the replica while reducers run on the primary.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/migrate/index.ts";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";
import { connect as connectNats, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

interface Nats {
  port: number;
  storeDir: string;
  process: Deno.ChildProcess;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startNats(port: number, storeDir: string): Promise<Nats> {
  let command: Deno.Command;
  try {
    command = new Deno.Command("nats-server", {
      args: ["-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", String(port)],
      stdout: "null",
      stderr: "null",
    });
    const process = command.spawn();
    // Ready once it accepts connections.
    await waitUntil(async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    }, "nats-server to accept connections");
    return { port, storeDir, process };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        "nats-server is not installed: run tests/support/install_debian.sh (Debian package nats-server)",
      );
    }
    throw error;
  }
}

async function stopNats(nats: Nats): Promise<void> {
  nats.process.kill("SIGTERM");
  await nats.process.status;
}

async function sqlRows(url: string, query: string): Promise<unknown[][]> {
  const response = await fetch(`${url}/v1/database/hot/sql`, { method: "POST", body: query });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`sql failed: ${response.status} ${text}`);
  return JSON.parse(text)[0].rows;
}

/** Rows of `SELECT * FROM table` on `url`, or undefined while the database is not there. */
async function tryRows(url: string, table: string): Promise<unknown[][] | undefined> {
  try {
    return await sqlRows(url, `SELECT * FROM ${table}`);
  } catch {
    return undefined;
  }
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{database="hot"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

function connect(url: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("hot")
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

function names(conn: DbConnection): string[] {
  return [...conn.db.person.iter()].map((row) => row.name).sort();
}

Deno.test({
  name: "a read replica follows the primary over JetStream: SDK subscriptions, refusals, " +
    "restart, NATS outage, module update",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    const nats = await startNats(freePort(), storeDir);
    let natsNow: Nats | undefined = nats;
    const server = `127.0.0.1:${nats.port}`;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    let conn: DbConnection | undefined;
    try {
      primary = await startTestServer({ replicate: server });
      follower = await startTestServer({ follow: server });
      const [v1, v1n] = await Promise.all(["migrate_v1", "migrate_v1n"].map(fixtureBundle));
      const owner = await publish(primary.url, "hot", v1);
      assertEquals((await call(primary.url, "hot", "add", [1, "Ann"], owner.token)).status, 200);

      await t.step("the replica creates the database and serves its rows", async () => {
        await waitUntil(
          async () => (await tryRows(follower!.url, "person"))?.length === 1,
          "Ann on the replica",
        );
        assertEquals(await sqlRows(follower!.url, "SELECT * FROM person"), [[1, "Ann"]]);
      });

      await t.step("an SDK subscription on the replica sees the primary's commits", async () => {
        conn = await connect(follower!.url);
        await subscribe(conn, ["SELECT * FROM person"]);
        assertEquals(names(conn), ["Ann"]);
        assertEquals((await call(primary!.url, "hot", "add", [2, "Bob"], owner.token)).status, 200);
        await waitUntil(() => conn!.db.person.count() === 2n, "Bob through the subscription");
        assertEquals(names(conn), ["Ann", "Bob"]);
      });

      await t.step("writes on the replica are refused, naming the primary mode", async () => {
        const called = await call(follower!.url, "hot", "add", [9, "Nope"], undefined);
        assert(called.status >= 400, `a reducer call on the replica answered ${called.status}`);
        assert(called.text.includes("read replica"), called.text);
        const published = await fetch(`${follower!.url}/v1/database/other?host_type=Js`, {
          method: "PUT",
          body: v1,
        });
        const text = await published.text();
        assert(published.status >= 400 && text.includes("read replica"), text);
        const sdkRefusal = await conn!.reducers.add({ id: 9, name: "Nope" }).then(
          () => "committed",
          (error: unknown) => String(error),
        );
        assert(sdkRefusal.includes("read replica"), sdkRefusal);
        assertEquals(names(conn!), ["Ann", "Bob"]);
      });

      await t.step("NATS down: the primary commits on; back: the replica catches up", async () => {
        await stopNats(nats);
        natsNow = undefined;
        for (let id = 3; id <= 7; id++) {
          const response = await call(primary!.url, "hot", "add", [id, `P${id}`], owner.token);
          assertEquals(response.status, 200, response.text);
        }
        // Nothing can have been acknowledged since the stop: the lag covers the five calls.
        const lag = await metric(primary!.url, "lightcone_replication_lag_tx");
        assert(lag !== undefined && lag >= 5, `lag ${lag}`);
        const lagBytes = await metric(primary!.url, "lightcone_replication_lag_bytes");
        assert(lagBytes !== undefined && lagBytes > 0, `lag bytes ${lagBytes}`);
        natsNow = await startNats(nats.port, storeDir);
        await waitUntil(
          () => conn!.db.person.count() === 7n,
          "every commit made while NATS was down",
        );
        await waitUntil(
          async () => (await metric(primary!.url, "lightcone_replication_lag_tx")) === 0,
          "the primary's lag back at 0",
        );
        assertEquals(await metric(primary!.url, "lightcone_replication_lag_bytes"), 0);
        const durable = await metric(primary!.url, "lightcone_durable_tx_offset");
        assertEquals(await metric(primary!.url, "lightcone_replication_replicated_tx"), durable);
        await waitUntil(
          async () =>
            (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
          "the replica's log at the primary's offset",
        );
      });

      await t.step("a burst of concurrent calls arrives whole and in order", async () => {
        const ids = Array.from({ length: 200 }, (_, i) => 1000 + i);
        const responses = await Promise.all(
          ids.map((id) => call(primary!.url, "hot", "add", [id, `B${id}`], owner.token)),
        );
        assertEquals(responses.filter((r) => r.status !== 200), []);
        await waitUntil(() => conn!.db.person.count() === 207n, "the burst on the replica");
        const durable = await metric(primary!.url, "lightcone_durable_tx_offset");
        await waitUntil(
          async () =>
            (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
          "the replica's log at the primary's offset after the burst",
        );
        const rows = await sqlRows(follower!.url, "SELECT * FROM person");
        assertEquals(rows.length, 207);
      });

      await t.step("a module update (a new table) reaches the replica", async () => {
        await publish(primary!.url, "hot", v1n, { token: owner.token });
        const noted = await call(primary!.url, "hot", "add_note", ["replicated"], owner.token);
        assertEquals(noted.status, 200, noted.text);
        await waitUntil(
          async () => (await tryRows(follower!.url, "note"))?.length === 1,
          "the note row on the replica",
        );
        assertEquals(await sqlRows(follower!.url, "SELECT * FROM note"), [[1, "replicated"]]);
      });

      await t.step("a restarted replica resumes from its own log", async () => {
        conn?.disconnect();
        conn = undefined;
        const dataDir = follower!.dataDir;
        await follower!.close({ keepData: true });
        follower = undefined;
        assertEquals((await call(primary!.url, "hot", "add", [8, "Dee"], owner.token)).status, 200);
        follower = await startTestServer({ follow: server, dataDir });
        await waitUntil(
          async () => (await tryRows(follower!.url, "person"))?.length === 208,
          "Dee on the restarted replica",
        );
        const rows = await sqlRows(follower!.url, "SELECT * FROM person");
        assertEquals(
          rows.map((row) => Number(row[0])).filter((id) => id < 1000).sort((a, b) => a - b),
          [1, 2, 3, 4, 5, 6, 7, 8],
        );
        const durable = await metric(primary!.url, "lightcone_durable_tx_offset");
        await waitUntil(
          async () =>
            (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
          "the restarted replica's log at the primary's offset",
        );
        assertEquals(await metric(follower!.url, "lightcone_replication_follower_stopped"), 0);
        assertEquals(await sqlRows(follower!.url, "SELECT * FROM note"), [[1, "replicated"]]);
      });

      await t.step("a primary restarted while NATS was down publishes its backlog", async () => {
        await stopNats(natsNow!);
        natsNow = undefined;
        assertEquals((await call(primary!.url, "hot", "add", [9, "Eve"], owner.token)).status, 200);
        const dataDir = primary!.dataDir;
        await primary!.close({ keepData: true });
        primary = undefined;
        primary = await startTestServer({ replicate: server, dataDir });
        assertEquals((await call(primary.url, "hot", "add", [10, "Fay"], owner.token)).status, 200);
        natsNow = await startNats(nats.port, storeDir);
        await waitUntil(
          async () => (await tryRows(follower!.url, "person"))?.length === 210,
          "Eve and Fay on the replica",
        );
        const durable = await metric(primary.url, "lightcone_durable_tx_offset");
        await waitUntil(
          async () =>
            (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
          "the replica's log at the restarted primary's offset",
        );
      });
    } finally {
      conn?.disconnect();
      await follower?.close();
      await primary?.close();
      if (natsNow) await stopNats(natsNow);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "a second writer of a database's subject stops replication of it on the primary and " +
    "the replica; nothing is corrupted and the primary commits on",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    const nats = await startNats(freePort(), storeDir);
    const server = `127.0.0.1:${nats.port}`;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    const intruder = await connectNats({ servers: server });
    try {
      primary = await startTestServer({ replicate: server });
      follower = await startTestServer({ follow: server });
      const owner = await publish(primary.url, "hot", await fixtureBundle("migrate_v1"));
      assertEquals((await call(primary.url, "hot", "add", [1, "Ann"], owner.token)).status, 200);
      await waitUntil(
        async () => (await tryRows(follower!.url, "person"))?.length === 1,
        "Ann on the replica",
      );
      await waitUntil(
        async () => (await metric(primary!.url, "lightcone_replication_lag_tx")) === 0,
        "the primary's lag at 0",
      );
      // Another "primary" appends to the database's subject, passing JetStream's order check.
      const subject = `lightcone.${owner.identity}.log`;
      const last = await (await jetstreamManager(intruder)).streams.getMessage("LIGHTCONE", {
        last_by_subj: subject,
      });
      assert(last, "the primary published nothing");
      const durable = await metric(primary.url, "lightcone_durable_tx_offset");
      const h = headers();
      h.set("Lc-Kind", "log");
      h.set("Lc-First-Tx", String(durable));
      h.set("Lc-End-Tx", String(durable! + 1));
      h.set("Lc-Primary", "intruder");
      await jetstream(intruder).publish(subject, new Uint8Array(64).fill(7), {
        headers: h,
        msgID: "intruder-1",
        expect: { lastSubjectSequence: last.seq },
      });
      // The primary's next publish is refused: it stops replicating this database, commits on.
      assertEquals((await call(primary.url, "hot", "add", [2, "Bob"], owner.token)).status, 200);
      await waitUntil(
        async () => (await metric(primary!.url, "lightcone_replication_stopped")) === 1,
        "the primary to stop replicating the database",
      );
      assertEquals((await call(primary.url, "hot", "add", [3, "Cy"], owner.token)).status, 200);
      assertEquals((await sqlRows(primary.url, "SELECT * FROM person")).length, 3);
      // The replica refuses the damaged message and keeps what it had.
      await waitUntil(
        async () => (await metric(follower!.url, "lightcone_replication_follower_stopped")) === 1,
        "the replica to stop following the database",
      );
      assertEquals(await sqlRows(follower.url, "SELECT * FROM person"), [[1, "Ann"]]);
    } finally {
      await intruder.close();
      await follower?.close();
      await primary?.close();
      await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "turning --replicate on for a server with databases publishes them from their start",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    const nats = await startNats(freePort(), storeDir);
    const server = `127.0.0.1:${nats.port}`;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    try {
      primary = await startTestServer();
      const owner = await publish(primary.url, "hot", await fixtureBundle("migrate_v1"));
      assertEquals((await call(primary.url, "hot", "add", [1, "Ann"], owner.token)).status, 200);
      const dataDir = primary.dataDir;
      await primary.close({ keepData: true });
      primary = await startTestServer({ replicate: server, dataDir });
      follower = await startTestServer({ follow: server });
      assertEquals((await call(primary.url, "hot", "add", [2, "Bob"], owner.token)).status, 200);
      await waitUntil(
        async () => (await tryRows(follower!.url, "person"))?.length === 2,
        "both rows on the replica",
      );
      const durable = await metric(primary.url, "lightcone_durable_tx_offset");
      await waitUntil(
        async () =>
          (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
        "the replica's log at the primary's offset",
      );
      assertEquals(await metric(primary.url, "lightcone_replication_stopped"), 0);

      // Renames are not replicated yet: refused on the primary, not silently left behind.
      const renamed = await fetch(`${primary.url}/v1/database/hot/names`, {
        method: "PUT",
        body: JSON.stringify(["hot2"]),
        headers: { authorization: `Bearer ${owner.token}` },
      });
      const renameText = await renamed.text();
      assert(renamed.status === 400 && renameText.includes("not replicated yet"), renameText);

      // Deleting it on the primary deletes it on the replica.
      const deleted = await fetch(`${primary.url}/v1/database/hot`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${owner.token}` },
      });
      assertEquals(deleted.status, 200, await deleted.text());
      await waitUntil(
        async () =>
          (await fetch(`${follower!.url}/v1/database/hot`).then((r) =>
            r.body?.cancel().then(() => r.status)
          )) === 404,
        "the database gone from the replica",
      );
    } finally {
      await follower?.close();
      await primary?.close();
      await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});
