/**
 * Failover through a real nats-server: a read replica's data directory started with
 * `--replicate URL --promote` becomes the primary (a `takeover` message, its own primary id),
 * takes writes from exactly its state, and a second replica follows it; the old primary coming
 * back is fenced (its writes refused naming the takeover, nothing more published); promotion is
 * refused while the replica is behind or a database stopped following, unless
 * `--promote-discard-unapplied`; with a key, a forged takeover fences no one.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "../../replication/stream.ts";
import { importReplicationKey, messageTag } from "../../replication/auth.ts";
import { DbConnection } from "../fixtures/bindings/migrate/index.ts";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";
import { startNatsServer } from "../support/nats.ts";
import { waitUntil } from "../support/wait.ts";

const SECRET = "9b2e4d71c3a05f86e1d2b7c49a0f3e58d6c1b2a7";

async function rows(url: string, database = "hot"): Promise<unknown[][] | undefined> {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: "SELECT * FROM person",
  });
  const text = await response.text();
  if (response.status !== 200) return undefined;
  return (JSON.parse(text)[0].rows as unknown[][]).sort((a, b) => Number(a[0]) - Number(b[0]));
}

async function metric(url: string, name: string, database = "hot"): Promise<number | undefined> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{database="${database}"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

/** Waits until the replica's log is at the primary's durable offset. */
async function caughtUp(primary: TestServer, replica: TestServer): Promise<void> {
  await waitUntil(async () => {
    const durable = await metric(primary.url, "lightcone_durable_tx_offset");
    return durable !== undefined &&
      (await metric(primary.url, "lightcone_replication_replicated_tx")) === durable &&
      (await metric(replica.url, "lightcone_replication_follower_applied_tx")) === durable;
  }, "the replica at the primary's offset");
}

interface Stored {
  seq: number;
  kind: string;
  primary: string;
  atTx: string;
  body: string;
}

/** Every message of the database's subject, in order. */
async function subjectMessages(server: string, identity: string): Promise<Stored[]> {
  const nc = await connectNats(server, "test reader");
  try {
    const jsm = await jetstreamManager(nc);
    const found: Stored[] = [];
    for (let seq = 1;;) {
      let message;
      try {
        message = await jsm.streams.getMessage(
          "LIGHTCONE",
          { seq, next_by_subj: `lightcone.${identity}.log` } as unknown as { seq: number },
        );
      } catch {
        break;
      }
      if (!message) break;
      found.push({
        seq: message.seq,
        kind: message.header?.get("Lc-Kind") ?? "",
        primary: message.header?.get("Lc-Primary") ?? "",
        atTx: message.header?.get("Lc-At-Tx") ?? "",
        body: message.header?.get("Lc-Kind") === "takeover"
          ? new TextDecoder().decode(message.data)
          : "",
      });
      seq = message.seq + 1;
    }
    return found;
  } finally {
    await nc.close();
  }
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

function subscribe(conn: DbConnection): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(["SELECT * FROM person"]);
  });
}

/** Calls `add` until it is taken (a promoted database is writable once its takeover is in). */
async function addWhenWritable(url: string, id: number, name: string): Promise<void> {
  let last = "";
  await waitUntil(async () => {
    const response = await call(url, "hot", "add", [id, name], undefined);
    last = `${response.status} ${response.text}`;
    return response.status === 200;
  }, `add(${id}) taken on the promoted server`).catch((error) => {
    throw new Error(`${(error as Error).message} (last answer: ${last})`);
  });
}

for (const withKey of [false, true]) {
  Deno.test({
    name: "promote a caught-up replica: writes go on from its state, a second replica follows " +
      "it, the old primary coming back is fenced and never publishes again" +
      (withKey ? " (with a replication key)" : ""),
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      const nats = await startNatsServer();
      const keyDir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
      const keyFile = `${keyDir}/replication.key`;
      await Deno.writeTextFile(keyFile, SECRET + "\n");
      await Deno.chmod(keyFile, 0o600);
      const servers: TestServer[] = [];
      const start = async (options: Parameters<typeof startTestServer>[0]) => {
        const server = await startTestServer({
          ...options,
          replicationKeyFile: withKey ? keyFile : undefined,
        });
        servers.push(server);
        return server;
      };
      const stop = async (server: TestServer) => {
        servers.splice(servers.indexOf(server), 1);
        await server.close({ keepData: true });
      };
      let conn: DbConnection | undefined;
      const dataDirs: string[] = [];
      try {
        const primary = await start({ replicate: nats.server });
        const replica = await start({ follow: nats.server });
        const second = await start({ follow: nats.server });
        dataDirs.push(primary.dataDir, replica.dataDir, second.dataDir);
        const owner = await publish(primary.url, "hot", await fixtureBundle("migrate_v1"));
        for (const [id, name] of [[1, "Ann"], [2, "Bob"]] as const) {
          const added = await call(primary.url, "hot", "add", [id, name], owner.token);
          assertEquals(added.status, 200, added.text);
        }
        await caughtUp(primary, replica);
        await caughtUp(primary, second);
        const oldPrimaryId = (await Deno.readTextFile(`${primary.dataDir}/replication-primary-id`))
          .trim();

        // The primary's machine is lost.
        await stop(primary);

        let promoted!: TestServer;
        await t.step(
          "the replica is promoted and takes writes from exactly its state",
          async () => {
            await stop(replica);
            promoted = await start({
              dataDir: replica.dataDir,
              replicate: nats.server,
              promote: true,
            });
            assertEquals(await rows(promoted.url), [[1, "Ann"], [2, "Bob"]]);
            await addWhenWritable(promoted.url, 3, "Cat");
            conn = await connect(promoted.url);
            await subscribe(conn);
            await conn.reducers.add({ id: 4, name: "Dan" });
            await waitUntil(() => conn!.db.person.count() === 4n, "Dan through the subscription");
            assertEquals(await rows(promoted.url), [[1, "Ann"], [2, "Bob"], [3, "Cat"], [
              4,
              "Dan",
            ]]);
            const newId = (await Deno.readTextFile(`${promoted.dataDir}/replication-primary-id`))
              .trim();
            assert(/^[0-9a-f]{32}$/.test(newId) && newId !== oldPrimaryId, newId);
            const messages = await subjectMessages(nats.server, owner.identity);
            const takeovers = messages.filter((message) => message.kind === "takeover");
            assertEquals(takeovers.length, 1, JSON.stringify(messages));
            assertEquals(takeovers[0].primary, newId);
            assertEquals(JSON.parse(takeovers[0].body).previousPrimary, oldPrimaryId);
            // Everything after the takeover is the new primary's; everything before, the old one's.
            for (const message of messages) {
              assertEquals(
                message.primary,
                message.seq < takeovers[0].seq ? oldPrimaryId : newId,
                JSON.stringify(message),
              );
            }
          },
        );

        await t.step(
          "a second replica takes the takeover and follows the new primary",
          async () => {
            await caughtUp(promoted, second);
            assertEquals(await rows(second.url), [[1, "Ann"], [2, "Bob"], [3, "Cat"], [4, "Dan"]]);
            assertEquals(await metric(second.url, "lightcone_replication_follower_stopped"), 0);
            // Still read-only: it is a replica of the new primary.
            const refused = await call(second.url, "hot", "add", [9, "Nope"], undefined);
            assert(refused.status >= 400 && refused.text.includes("read replica"), refused.text);
          },
        );

        await t.step(
          "the old primary comes back: fenced, writes refused naming the takeover",
          async () => {
            const old = await start({ dataDir: primary.dataDir, replicate: nats.server });
            await waitUntil(
              async () => (await metric(old.url, "lightcone_replication_stopped")) === 1,
              "the old primary to see the takeover",
            );
            let answer = "";
            await waitUntil(async () => {
              const response = await call(old.url, "hot", "add", [50, "Old"], owner.token);
              answer = `${response.status} ${response.text}`;
              return response.status >= 400 &&
                response.text.includes("taken over by another primary");
            }, "the old primary to refuse writes").catch((error) => {
              throw new Error(`${(error as Error).message} (last answer: ${answer})`);
            });
            assert(answer.includes("fenced"), answer);
            // Owner operations too: an update would publish a module on the new primary's subject.
            const update = await fetch(`${old.url}/v1/database/hot?host_type=Js`, {
              method: "PUT",
              headers: { authorization: `Bearer ${owner.token}` },
              body: await fixtureBundle("migrate_v1n"),
            });
            const updateText = await update.text();
            assert(update.status >= 400 && updateText.includes("taken over"), updateText);
            // Reads still work.
            assert((await rows(old.url)) !== undefined);
            // It stays fenced across a restart, before it reaches NATS again.
            await stop(old);
            const again = await start({ dataDir: primary.dataDir, replicate: nats.server });
            const refused = await call(again.url, "hot", "add", [51, "Old"], owner.token);
            assert(refused.status >= 400 && refused.text.includes("taken over"), refused.text);
            // The new primary goes on; nothing of the old primary's id followed the takeover.
            await addWhenWritable(promoted.url, 5, "Eve");
            await caughtUp(promoted, second);
            assertEquals(
              await rows(second.url),
              [[1, "Ann"], [2, "Bob"], [3, "Cat"], [4, "Dan"], [5, "Eve"]],
            );
            const messages = await subjectMessages(nats.server, owner.identity);
            const takeover = messages.find((message) => message.kind === "takeover")!;
            assert(
              messages.every((message) =>
                message.seq <= takeover.seq || message.primary !== oldPrimaryId
              ),
              JSON.stringify(messages),
            );
          },
        );
      } finally {
        conn?.disconnect();
        for (const server of [...servers]) await server.close({ keepData: true });
        for (const dir of dataDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
        await nats.stop();
        await Deno.remove(keyDir, { recursive: true }).catch(() => {});
      }
    },
  });
}

Deno.test({
  name: "promotion is refused while the replica is behind or a database stopped following; " +
    "--promote-discard-unapplied promotes at what it has",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    const dataDirs: string[] = [];
    let live: TestServer | undefined;
    let extra: TestServer | undefined;
    try {
      const primary = await startTestServer({ replicate: nats.server });
      dataDirs.push(primary.dataDir);
      live = primary;
      const replica = await startTestServer({ follow: nats.server });
      dataDirs.push(replica.dataDir);
      // Another replica that stays up and takes everything the old primary published.
      const ahead = await startTestServer({ follow: nats.server });
      dataDirs.push(ahead.dataDir);
      extra = ahead;
      const owner = await publish(primary.url, "hot", await fixtureBundle("migrate_v1"));
      assertEquals((await call(primary.url, "hot", "add", [1, "Ann"], owner.token)).status, 200);
      await caughtUp(primary, replica);
      await replica.close({ keepData: true });
      // The replica misses these: it is behind the stream.
      for (const [id, name] of [[2, "Bob"], [3, "Cat"]] as const) {
        assertEquals((await call(primary.url, "hot", "add", [id, name], owner.token)).status, 200);
      }
      await waitUntil(
        async () => (await metric(primary.url, "lightcone_replication_lag_tx")) === 0,
        "the primary to publish Bob and Cat",
      );
      await caughtUp(primary, ahead);
      await primary.close({ keepData: true });
      live = undefined;

      await rejects(
        () => startTestServer({ dataDir: replica.dataDir, replicate: nats.server, promote: true }),
        (error: Error) => {
          assert(/--promote refused for 1 database\(s\)/.test(error.message), error.message);
          assert(
            /hot: not caught up with its subject: its log ends at transaction \d+/.test(
              error.message,
            ),
            error.message,
          );
          assert(error.message.includes("--promote-discard-unapplied"), error.message);
          return true;
        },
      );
      // Nothing changed: not promoted, no takeover published.
      await rejects(() => Deno.stat(`${replica.dataDir}/replication-promoted.json`));
      assert(
        (await subjectMessages(nats.server, owner.identity)).every((m) => m.kind !== "takeover"),
      );

      // A database whose following stopped is named with the reason.
      await Deno.mkdir(`${replica.dataDir}/replication-stopped`, { recursive: true });
      const marker = `${replica.dataDir}/replication-stopped/${owner.identity}.json`;
      await Deno.writeTextFile(
        marker,
        JSON.stringify({ reason: "a test stop", stoppedAt: "", resumeSeq: 1 }),
      );
      await rejects(
        () => startTestServer({ dataDir: replica.dataDir, replicate: nats.server, promote: true }),
        /hot: not caught up with its subject: following it stopped \(a test stop\)/,
      );
      await Deno.remove(marker);

      // A directory that never followed is not promoted.
      const never = await Deno.makeTempDir({ prefix: "lightcone-test-" });
      dataDirs.push(never);
      await rejects(
        () => startTestServer({ dataDir: never, replicate: nats.server, promote: true }),
        /--promote: ".*" is not a read replica's data directory \(it has no replication-follow\.json\)/,
      );
      // The force flag alone is refused.
      await rejects(
        () =>
          startTestServer({
            dataDir: replica.dataDir,
            replicate: nats.server,
            promoteDiscardUnapplied: true,
          }),
        /--promote-discard-unapplied needs --promote/,
      );

      const promoted = await startTestServer({
        dataDir: replica.dataDir,
        replicate: nats.server,
        promote: true,
        promoteDiscardUnapplied: true,
      });
      live = promoted;
      assertEquals(await rows(promoted.url), [[1, "Ann"]]);
      await addWhenWritable(promoted.url, 7, "New");
      assertEquals(await rows(promoted.url), [[1, "Ann"], [7, "New"]]);
      let messages: Stored[] = [];
      await waitUntil(async () => {
        messages = await subjectMessages(nats.server, owner.identity);
        return messages.length >= 4;
      }, "the new primary's commit in the stream");
      const takeover = messages.find((message) => message.kind === "takeover");
      assert(takeover, JSON.stringify(messages));
      assert(JSON.parse(takeover.body).discarded.includes("is discarded"), takeover.body);
      // The stream holds the new history only: what the replica lacked (Bob, Cat) was deleted
      // before the takeover, which follows the replica's last message.
      assertEquals(takeover.atTx, "1");
      assertEquals(
        messages.map((message) => message.kind),
        ["module", "log", "takeover", "log"],
        JSON.stringify(messages),
      );
      // The replica that took Bob and Cat cannot follow the new history: it stops, saying why,
      // and keeps serving what it has.
      await waitUntil(
        async () => (await metric(ahead.url, "lightcone_replication_follower_stopped")) === 1,
        "the replica ahead of the promoted one to stop",
      );
      const aheadMetrics = await (await fetch(`${ahead.url}/v1/metrics`)).text();
      assert(aheadMetrics.includes("the histories differ"), aheadMetrics);
      assertEquals(await rows(ahead.url), [[1, "Ann"], [2, "Bob"], [3, "Cat"]]);
      // A fresh replica of the new history: Bob and Cat are not in it.
      const fresh = await startTestServer({ follow: nats.server });
      dataDirs.push(fresh.dataDir);
      try {
        await waitUntil(
          async () => (await rows(fresh.url))?.length === 2,
          "a fresh replica with the new primary's rows",
        ).catch(async (error) => {
          throw new Error(`${(error as Error).message}: ${JSON.stringify(await rows(fresh.url))}`);
        });
        assertEquals(await rows(fresh.url), [[1, "Ann"], [7, "New"]]);
      } finally {
        await fresh.close({ keepData: true });
      }
    } finally {
      await extra?.close({ keepData: true });
      await live?.close({ keepData: true });
      for (const dir of dataDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
      await nats.stop();
    }
  },
});

Deno.test({
  name: "with a replication key, a forged takeover fences no one and promotion after it is refused",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    const keyDir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
    const dataDirs: string[] = [];
    const live: TestServer[] = [];
    try {
      const keyFile = `${keyDir}/replication.key`;
      await Deno.writeTextFile(keyFile, SECRET + "\n");
      await Deno.chmod(keyFile, 0o600);
      const primary = await startTestServer({
        replicate: nats.server,
        replicationKeyFile: keyFile,
      });
      const replica = await startTestServer({ follow: nats.server, replicationKeyFile: keyFile });
      live.push(primary, replica);
      dataDirs.push(primary.dataDir, replica.dataDir);
      const owner = await publish(primary.url, "hot", await fixtureBundle("migrate_v1"));
      assertEquals((await call(primary.url, "hot", "add", [1, "Ann"], owner.token)).status, 200);
      await caughtUp(primary, replica);

      // A takeover as a promoted replica would publish it, tagged with another key.
      const subject = `lightcone.${owner.identity}.log`;
      const nc = await connectNats(nats.server, "test forger");
      try {
        const last = await (await jetstreamManager(nc)).streams.getMessage("LIGHTCONE", {
          last_by_subj: subject,
        });
        assert(last);
        const body = new TextEncoder().encode(
          JSON.stringify({ previousPrimary: last.header!.get("Lc-Primary"), promotedAt: "now" }),
        );
        const h = headers();
        h.set("Lc-Kind", "takeover");
        h.set("Lc-At-Tx", last.header!.get("Lc-End-Tx"));
        h.set("Lc-Primary", "f".repeat(32));
        h.set("Lc-Prev-Seq", String(last.seq));
        const wrongKey = await importReplicationKey(
          new TextEncoder().encode("a different secret of the attacker"),
        );
        h.set("Lc-Auth", await messageTag(wrongKey, subject, h, body));
        await jetstream(nc).publish(subject, body, {
          headers: h,
          expect: { lastSubjectSequence: last.seq },
        });
      } finally {
        await nc.close();
      }

      // The replica refuses it (that database stops following) and keeps its rows.
      await waitUntil(
        async () => (await metric(replica.url, "lightcone_replication_follower_stopped")) === 1,
        "the replica to refuse the forged takeover",
      );
      assertEquals(await rows(replica.url), [[1, "Ann"]]);
      // The primary is not fenced: its next publish finds the forged message, replication of
      // the database stops (a conflict), and writes are still taken.
      assertEquals((await call(primary.url, "hot", "add", [2, "Bob"], owner.token)).status, 200);
      await waitUntil(
        async () => (await metric(primary.url, "lightcone_replication_stopped")) === 1,
        "the primary to stop replicating past the forged message",
      );
      const after = await call(primary.url, "hot", "add", [3, "Cat"], owner.token);
      assertEquals(after.status, 200, after.text);
      assertEquals(await rows(primary.url), [[1, "Ann"], [2, "Bob"], [3, "Cat"]]);

      // Promoting the replica over a forged last message is refused, even when forced.
      await replica.close({ keepData: true });
      live.splice(live.indexOf(replica), 1);
      await rejects(
        () =>
          startTestServer({
            dataDir: replica.dataDir,
            replicate: nats.server,
            replicationKeyFile: keyFile,
            promote: true,
            promoteDiscardUnapplied: true,
          }),
        /hot: the last message of its subject \(sequence \d+\) is not authenticated: a message whose Lc-Auth tag does not match/,
      );
    } finally {
      for (const server of live) await server.close({ keepData: true });
      for (const dir of dataDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(keyDir, { recursive: true }).catch(() => {});
      await nats.stop();
    }
  },
});
