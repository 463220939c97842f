/**
 * Replication with a shared key (`--replication-key-file`) through a real nats-server: a
 * message someone publishes on a database's subject without the key (no tag, or a tag made
 * with another key) is refused and changes nothing on the replica; that database stops (logged,
 * in the metrics, persisted across a restart until its marker file is deleted) while the
 * others keep following. A transaction that decodes but cannot be replayed stops its database
 * at once, persisted the same way, instead of crashing it over and over.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  crc32c,
  decodeTxRecord,
  encodeTxRecord,
  forEachRecord,
  lengthPrefixed,
  readFrameAt,
  type TxRecord,
} from "../../storage/mod.ts";
import { connectNats } from "../../replication/stream.ts";
import { importReplicationKey, messageTag } from "../../replication/auth.ts";
import {
  call,
  fixtureBundle,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";
import { startNatsServer } from "../support/nats.ts";
import { waitUntil } from "../support/wait.ts";

const SECRET = "4f1c9a0e7b2d38c5a6e19f07d3b4c2a18e5f60d9c7b3a2e1";

async function writeKeyFile(dir: string, text: string, mode: number): Promise<string> {
  const path = `${dir}/replication.key`;
  await Deno.writeTextFile(path, text + "\n");
  await Deno.chmod(path, mode);
  return path;
}

async function rows(url: string, database: string): Promise<unknown[][] | undefined> {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: "SELECT * FROM person",
  });
  const text = await response.text();
  return response.status === 200 ? JSON.parse(text)[0].rows : undefined;
}

async function metricsText(url: string): Promise<string> {
  return await (await fetch(`${url}/v1/metrics`)).text();
}

async function stoppedMetric(url: string, database: string): Promise<number | undefined> {
  const line = (await metricsText(url)).split("\n").find((l) =>
    l.startsWith(`lightcone_replication_follower_stopped{database="${database}"}`)
  );
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

/** One framed commit (storage/commitlog/frame.ts layout) of `records` from `firstTx`. */
function commitFrame(firstTx: number, records: Uint8Array[]): Uint8Array {
  const payload = lengthPrefixed(records);
  const out = new Uint8Array(36 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x544d434c, true);
  view.setUint8(4, 1);
  view.setBigUint64(16, BigInt(firstTx), true);
  view.setUint32(24, records.length, true);
  view.setUint32(28, payload.length, true);
  out.set(payload, 32);
  view.setUint32(32 + payload.length, crc32c(out.subarray(0, 32 + payload.length)), true);
  return out;
}

/** A `person` row (id u32, name string) as BSATN. */
function personRow(id: number, name: string): Uint8Array {
  const text = new TextEncoder().encode(name);
  const out = new Uint8Array(8 + text.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, id, true);
  view.setUint32(4, text.length, true);
  out.set(text, 8);
  return out;
}

interface LastLog {
  subject: string;
  seq: number;
  endTx: number;
  primary: string;
  record: TxRecord;
}

/** The database's last message in JetStream (a one-commit log message) and its record. */
async function lastLog(server: string, identity: string): Promise<LastLog> {
  const nc = await connectNats(server, "test reader");
  try {
    const subject = `lightcone.${identity}.log`;
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage("LIGHTCONE", { last_by_subj: subject });
    assert(last, "the database has a message");
    assertEquals(last.header?.get("Lc-Kind"), "log");
    assert(last.header?.get("Lc-Auth").length === 64, "the primary tags its messages");
    const frame = readFrameAt(last.data, 0);
    assert(frame.kind === "ok", "the message holds a whole commit");
    let record: TxRecord | undefined;
    forEachRecord(
      last.data.subarray(frame.payloadStart, frame.end - 4),
      frame.header.recordCount,
      (_, bytes) => (record = decodeTxRecord(bytes)),
    );
    return {
      subject,
      seq: last.seq,
      endTx: Number(last.header!.get("Lc-End-Tx")),
      primary: last.header!.get("Lc-Primary"),
      record: record!,
    };
  } finally {
    await nc.close();
  }
}

/**
 * Publishes a log message of one transaction at `atTx` on `subject`, made from `record`, tagged
 * with `key` (none: no tag at all).
 */
async function publishForged(
  server: string,
  target: LastLog,
  record: TxRecord,
  key: CryptoKey | null,
): Promise<void> {
  const nc = await connectNats(server, "test forger");
  try {
    const body = commitFrame(target.endTx, [encodeTxRecord(record)]);
    const h = headers();
    h.set("Lc-Kind", "log");
    h.set("Lc-First-Tx", String(target.endTx));
    h.set("Lc-End-Tx", String(target.endTx + 1));
    h.set("Lc-Primary", target.primary);
    h.set("Lc-Prev-Seq", String(target.seq)); // It follows the database's last message.
    if (key) h.set("Lc-Auth", await messageTag(key, target.subject, h, body));
    await jetstream(nc).publish(target.subject, body, { headers: h });
  } finally {
    await nc.close();
  }
}

Deno.test("--replication-key-file refuses a file others may read, a short secret, and a server that does not replicate", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
  try {
    const open = await writeKeyFile(dir, SECRET, 0o644);
    await rejects(
      () => startTestServer({ replicate: "127.0.0.1:1", replicationKeyFile: open }),
      /--replication-key-file ".*replication\.key" may be read by its group or others \(mode 644\): make it readable by its owner only/,
    );
    const short = await writeKeyFile(dir, "short", 0o600);
    await rejects(
      () => startTestServer({ follow: "127.0.0.1:1", replicationKeyFile: short }),
      /holds a secret of 5 bytes: use at least 16/,
    );
    await rejects(
      () => startTestServer({ replicationKeyFile: short }),
      /--replication-key-file needs --replicate or --follow/,
    );
    await rejects(
      () => startTestServer({ follow: "127.0.0.1:1", replicationKeyFile: `${dir}/missing` }),
      /--replication-key-file ".*missing" does not exist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "replication with a key: forged messages are refused and persisted stops, " +
    "a transaction that does not replay stops its database at once",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    const keyDir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
    let primary: TestServer | undefined;
    let replica: TestServer | undefined;
    try {
      const keyFile = await writeKeyFile(keyDir, SECRET, 0o600);
      primary = await startTestServer({ replicate: nats.server, replicationKeyFile: keyFile });
      replica = await startTestServer({ follow: nats.server, replicationKeyFile: keyFile });
      const bundle = await fixtureBundle("migrate_v1");
      const target = await publish(primary.url, "target", bundle);
      const other = await publish(primary.url, "other", bundle);
      const replay = await publish(primary.url, "replay", bundle);
      for (const [database, token] of [[target, "Ann"], [other, "Ola"], [replay, "Rae"]] as const) {
        const added = await call(primary.url, database.name, "add", [1, token], database.token);
        assertEquals(added.status, 200, added.text);
      }
      for (const database of ["target", "other", "replay"]) {
        await waitUntil(
          async () => (await rows(replica!.url, database))?.length === 1,
          `the first row of ${database} on the replica (the right key works)`,
        );
      }

      // Forged: the same transaction shape as the real one, inserting (2, "Eve"), once without
      // a tag and once tagged with another key. Without the check the replica would apply it.
      const real = await lastLog(nats.server, target.identity);
      const table = real.record.tables.find((change) => change.inserts.length === 1)!;
      const forged: TxRecord = {
        ...real.record,
        tables: [{ tableId: table.tableId, inserts: [personRow(2, "Eve")], deletes: [] }],
      };
      const wrongKey = await importReplicationKey(
        new TextEncoder().encode("a different secret of the attacker"),
      );
      await publishForged(nats.server, real, forged, null);
      await publishForged(nats.server, real, forged, wrongKey);
      await waitUntil(
        async () => (await stoppedMetric(replica!.url, "target")) === 1,
        "the replica to stop following target",
      );
      assertEquals(await rows(replica.url, "target"), [[1, "Ann"]]);
      const stoppedText = await metricsText(replica.url);
      assert(
        /lightcone_replication_follower_stopped_reason\{database="target",reason="message \d+ refused: a message without the Lc-Auth header \(unauthenticated\)"\} 1/
          .test(stoppedText),
        stoppedText,
      );

      // A transaction that decodes, tagged with the right key, but deletes a row the replica
      // does not have: it stops that database at once (not after retries of a crashing one).
      const key = await importReplicationKey(new TextEncoder().encode(SECRET));
      const replayReal = await lastLog(nats.server, replay.identity);
      const replayTable = replayReal.record.tables.find((change) => change.inserts.length === 1)!;
      await publishForged(nats.server, replayReal, {
        ...replayReal.record,
        tables: [{ tableId: replayTable.tableId, inserts: [], deletes: [personRow(7, "Nobody")] }],
      }, key);
      await waitUntil(
        async () => (await stoppedMetric(replica!.url, "replay")) === 1,
        "the replica to stop following replay",
      );
      const replayText = await metricsText(replica.url);
      assert(
        /lightcone_replication_follower_stopped_reason\{database="replay",reason="transactions \[\d+, \d+\) could not be applied: [^"]*Replayed delete of a row missing/
          .test(replayText),
        replayText,
      );
      // Its process went down with the failed replay; it serves again from its own log.
      await waitUntil(
        async () => (await rows(replica!.url, "replay")) !== undefined,
        "replay to serve again after its process restarted",
      );
      assertEquals(await rows(replica.url, "replay"), [[1, "Rae"]]);

      // The others keep following.
      const more = await call(primary.url, "other", "add", [2, "Pia"], other.token);
      assertEquals(more.status, 200, more.text);
      await waitUntil(
        async () => (await rows(replica!.url, "other"))?.length === 2,
        "other's second row on the replica",
      );
      assertEquals(await stoppedMetric(replica.url, "other"), 0);

      // A restart keeps both stops, with their reasons.
      const dataDir = replica.dataDir;
      await replica.close({ keepData: true });
      replica = undefined;
      replica = await startTestServer({
        follow: nats.server,
        replicationKeyFile: keyFile,
        dataDir,
      });
      const restartedText = await metricsText(replica.url);
      assert(
        /stopped_reason\{database="target",reason="message \d+ refused: a message without the Lc-Auth header/
          .test(restartedText),
        restartedText,
      );
      assert(/stopped_reason\{database="replay",reason="transactions/.test(restartedText));
      assertEquals(await stoppedMetric(replica.url, "target"), 1);
      const last = await call(primary.url, "other", "add", [3, "Quin"], other.token);
      assertEquals(last.status, 200, last.text);
      await waitUntil(
        async () => (await rows(replica!.url, "other"))?.length === 3,
        "other's third row on the restarted replica",
      );
      assertEquals(await rows(replica.url, "target"), [[1, "Ann"]]);
      assertEquals(await stoppedMetric(replica.url, "target"), 1);
      const marker = `${dataDir}/replication-stopped/${target.identity}.json`;
      assert(JSON.parse(await Deno.readTextFile(marker)).reason.includes("Lc-Auth"));

      // The operator clears target's stop: following resumes after the refused message, so
      // the next one (tagged with another key) stops it again; nothing forged is applied.
      await replica.close({ keepData: true });
      replica = undefined;
      await Deno.remove(marker);
      replica = await startTestServer({
        follow: nats.server,
        replicationKeyFile: keyFile,
        dataDir,
      });
      await waitUntil(async () => {
        const text = await metricsText(replica!.url);
        return /stopped_reason\{database="target",reason="message \d+ refused: a message whose Lc-Auth tag does not match/
          .test(text);
      }, "target to stop on the message tagged with another key");
      assertEquals(await rows(replica.url, "target"), [[1, "Ann"]]);
    } finally {
      await replica?.close();
      await primary?.close();
      await nats.stop();
      await Deno.remove(keyDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "replication key turned on later: a primary and a replica that replicated untagged go on " +
    "with tagged messages after a restart with the key",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    const keyDir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
    let primary: TestServer | undefined;
    let replica: TestServer | undefined;
    try {
      primary = await startTestServer({ replicate: nats.server });
      replica = await startTestServer({ follow: nats.server });
      const owner = await publish(primary.url, "target", await fixtureBundle("migrate_v1"));
      const added = await call(primary.url, "target", "add", [1, "Ann"], owner.token);
      assertEquals(added.status, 200, added.text);
      await waitUntil(
        async () => (await rows(replica!.url, "target"))?.length === 1,
        "Ann on the replica",
      );
      // Both restart with the key.
      const keyFile = await writeKeyFile(keyDir, SECRET, 0o600);
      const primaryDir = primary.dataDir;
      const replicaDir = replica.dataDir;
      await replica.close({ keepData: true });
      replica = undefined;
      await primary.close({ keepData: true });
      primary = undefined;
      primary = await startTestServer({
        replicate: nats.server,
        replicationKeyFile: keyFile,
        dataDir: primaryDir,
      });
      replica = await startTestServer({
        follow: nats.server,
        replicationKeyFile: keyFile,
        dataDir: replicaDir,
      });
      const more = await call(primary.url, "target", "add", [2, "Bob"], owner.token);
      assertEquals(more.status, 200, more.text);
      await waitUntil(
        async () => (await rows(replica!.url, "target"))?.length === 2,
        "Bob on the replica, tagged",
      );
      const text = await metricsText(primary.url);
      assert(text.includes('lightcone_replication_stopped{database="target"} 0'), text);
      assertEquals(await stoppedMetric(replica.url, "target"), 0);
      // The message that brought Bob is tagged (lastLog checks Lc-Auth) and is Bob's insert.
      const last = await lastLog(nats.server, owner.identity);
      const insert = last.record.tables.find((change) => change.inserts.length === 1)!;
      assertEquals([...insert.inserts[0]], [...personRow(2, "Bob")]);
    } finally {
      await replica?.close();
      await primary?.close();
      await nats.stop();
      await Deno.remove(keyDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "replication with a key: the primary does not resume after an untagged module message " +
    "someone else published as its database's last one",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    const keyDir = await Deno.makeTempDir({ prefix: "lightcone-key-" });
    let primary: TestServer | undefined;
    try {
      const keyFile = await writeKeyFile(keyDir, SECRET, 0o600);
      primary = await startTestServer({ replicate: nats.server, replicationKeyFile: keyFile });
      const owner = await publish(primary.url, "target", await fixtureBundle("migrate_v1"));
      const added = await call(primary.url, "target", "add", [1, "Ann"], owner.token);
      assertEquals(added.status, 200, added.text);
      const stopped = async () =>
        (await metricsText(primary!.url)).includes(
          'lightcone_replication_stopped{database="target"} 1',
        );
      let real: LastLog | undefined;
      await waitUntil(async () => {
        real = await lastLog(nats.server, owner.identity).catch(() => undefined);
        return real !== undefined;
      }, "Ann's transaction in JetStream");
      // Untagged, in the primary's name: a module update far ahead of what was published.
      // Taken as the last message, it would make the primary skip transactions (and drop a
      // pending module file at that offset).
      const nc = await connectNats(nats.server, "test forger");
      try {
        const h = headers();
        h.set("Lc-Kind", "module");
        h.set("Lc-At-Tx", String(real!.endTx + 1));
        h.set("Lc-Primary", real!.primary);
        const body = JSON.stringify({ owner: owner.identity, names: ["target"], bundle: "" });
        await jetstream(nc).publish(real!.subject, new TextEncoder().encode(body), {
          headers: h,
        });
      } finally {
        await nc.close();
      }
      // The next publish finds another last message and looks at it again.
      const more = await call(primary.url, "target", "add", [2, "Bob"], owner.token);
      assertEquals(more.status, 200, more.text);
      await waitUntil(stopped, "the primary to stop replicating target");
      const reader = await connectNats(nats.server, "test reader");
      try {
        const jsm = await jetstreamManager(reader);
        const last = await jsm.streams.getMessage("LIGHTCONE", { last_by_subj: real!.subject });
        assertEquals(last?.header?.get("Lc-Kind"), "module", "nothing was published after it");
        assertEquals(last?.header?.get("Lc-Auth") ?? "", "");
      } finally {
        await reader.close();
      }
    } finally {
      await primary?.close();
      await nats.stop();
      await Deno.remove(keyDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "two module updates at one log offset both reach the replica (not dropped as duplicates)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    let primary: TestServer | undefined;
    let replica: TestServer | undefined;
    try {
      primary = await startTestServer({ replicate: nats.server });
      replica = await startTestServer({ follow: nats.server });
      const bundle = await fixtureBundle("migrate_v1");
      const owner = await publish(primary.url, "target", bundle);
      const moduleFile = `${replica.dataDir}/databases/${owner.identity}/module.js`;
      const replicaRuns = async (text: string) =>
        (await Deno.readTextFile(moduleFile).catch(() => "")).endsWith(text);
      await waitUntil(() => replicaRuns(bundle), "the database on the replica");
      // Same schema, another bundle, no transaction in between: both updates at one offset.
      await publish(primary.url, "target", `${bundle}\n// v2\n`, { token: owner.token });
      await waitUntil(() => replicaRuns("// v2\n"), "v2 on the replica");
      await publish(primary.url, "target", `${bundle}\n// v3\n`, { token: owner.token });
      await waitUntil(() => replicaRuns("// v3\n"), "v3 on the replica");
    } finally {
      await replica?.close();
      await primary?.close();
      await nats.stop();
    }
  },
});
