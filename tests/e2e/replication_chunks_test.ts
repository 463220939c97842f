/**
 * Replication of messages bigger than NATS's max_payload (1 MiB by default), end to end with a
 * real nats-server (tests/support/nats.ts): a module bundle over 1 MiB and a single commit
 * over 1 MiB travel in chunks (replication/chunks.ts) and the replica serves both.
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
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNats, headers } from "@nats-io/transport-node";

const DB = "big";

async function sqlRows(url: string, query: string): Promise<unknown[][] | undefined> {
  const response = await fetch(`${url}/v1/database/${DB}/sql`, { method: "POST", body: query });
  const text = await response.text();
  return response.status === 200 ? JSON.parse(text)[0].rows : undefined;
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{database="${DB}"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

/** Text that does not compress or repeat: `bytes` characters of hex. */
function noise(bytes: number): string {
  const random = new Uint8Array(bytes / 2);
  for (let at = 0; at < random.length; at += 65536) {
    crypto.getRandomValues(random.subarray(at, Math.min(random.length, at + 65536)));
  }
  return [...random].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name: "replication: a module bundle and a commit over NATS's max_payload travel in chunks",
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
      // A bundle of ~1.5 MiB: a long comment after the module's code.
      const bundle = `${await fixtureBundle("migrate_v1")}\n// ${noise(1536 * 1024)}\n`;
      assert(bundle.length > 1024 * 1024 + 256 * 1024, `bundle of ${bundle.length} bytes`);
      const owner = await publish(primary.url, DB, bundle);
      const bigName = noise(1200 * 1024);
      const added = await call(primary.url, DB, "add", [1, bigName], owner.token);
      assertEquals(added.status, 200, added.text);
      const small = await call(primary.url, DB, "add", [2, "Bob"], owner.token);
      assertEquals(small.status, 200, small.text);

      await waitUntil(
        async () => (await sqlRows(follower!.url, "SELECT * FROM person"))?.length === 2,
        "both rows on the replica",
      );
      const rows = (await sqlRows(follower.url, "SELECT * FROM person"))!;
      const byId = new Map(rows.map((row) => [Number(row[0]), row[1]]));
      assertEquals(byId.get(2), "Bob");
      assert(byId.get(1) === bigName, "the 1.2 MiB name arrived whole");
      const durable = await metric(primary.url, "lightcone_durable_tx_offset");
      await waitUntil(
        async () =>
          (await metric(follower!.url, "lightcone_replication_follower_applied_tx")) === durable,
        "the replica's log at the primary's offset",
      );
      assertEquals(await metric(follower.url, "lightcone_replication_follower_stopped"), 0);
      assertEquals(await metric(primary.url, "lightcone_replication_stopped"), 0);

      // They did go as chunks: no message in the stream is over the server's max_payload.
      const nc = await connectNats({ servers: server });
      try {
        const maxPayload = nc.info!.max_payload;
        const info = await (await jetstreamManager(nc)).streams.info("LIGHTCONE");
        assert(info.state.messages >= 4, `${info.state.messages} messages`);
        assert(info.state.bytes > 2 * 1024 * 1024, `${info.state.bytes} bytes in the stream`);
        assert(maxPayload <= 1024 * 1024, `max_payload ${maxPayload}`);
      } finally {
        await nc.close();
      }

      // A restarted primary finds its last (chunked) message is its own log and goes on.
      const dataDir = primary.dataDir;
      await primary.close({ keepData: true });
      primary = undefined;
      primary = await startTestServer({ replicate: server, dataDir });
      const after = await call(primary.url, DB, "add", [3, "Cy"], owner.token);
      assertEquals(after.status, 200, after.text);
      await waitUntil(
        async () => (await sqlRows(follower!.url, "SELECT * FROM person"))?.length === 3,
        "the row after the primary's restart on the replica",
      );
      assertEquals(await metric(primary.url, "lightcone_replication_stopped"), 0);
    } finally {
      await follower?.close();
      await primary?.close();
      if (nats) await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "replication: with a NATS max_payload of 64 KiB, the module and a burst of commits arrive " +
    "whole (tagged with a replication key: each chunk and the whole)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
    const config = `${storeDir}.conf`;
    await Deno.writeTextFile(config, "max_payload: 65536\n");
    let nats: Nats | undefined;
    let primary: TestServer | undefined;
    let follower: TestServer | undefined;
    try {
      nats = await startNats(freePort(), storeDir, ["-c", config]);
      const server = `127.0.0.1:${nats.port}`;
      const replicationKeyFile = `${storeDir}.key`;
      await Deno.writeTextFile(replicationKeyFile, "7d0c3f5e9a1b2c4d6e8f0a1b3c5d7e9f", {
        mode: 0o600,
      });
      primary = await startTestServer({ replicate: server, replicationKeyFile });
      follower = await startTestServer({ follow: server, replicationKeyFile });
      const owner = await publish(primary.url, DB, await fixtureBundle("migrate_v1"));
      const names = Array.from({ length: 60 }, () => noise(4 * 1024));
      const responses = await Promise.all(
        names.map((name, i) => call(primary!.url, DB, "add", [i + 1, name], owner.token)),
      );
      assertEquals(responses.filter((r) => r.status !== 200).map((r) => r.text), []);
      await waitUntil(
        async () => (await sqlRows(follower!.url, "SELECT * FROM person"))?.length === names.length,
        "every row on the replica",
      );
      const rows = (await sqlRows(follower.url, "SELECT * FROM person"))!;
      const byId = new Map(rows.map((row) => [Number(row[0]), row[1]]));
      assert(names.every((name, i) => byId.get(i + 1) === name), "rows differ");
      // The module (over 64 KiB) went in chunks, each tagged, with the whole message's tag.
      const nc = await connectNats({ servers: server });
      try {
        const first = await (await jetstreamManager(nc)).streams.getMessage("LIGHTCONE", {
          seq: 1,
        });
        assertEquals(first?.header?.get("Lc-Kind"), "module");
        assert(/^0\/\d+$/.test(first!.header!.get("Lc-Chunk")), first!.header!.get("Lc-Chunk"));
        assert(/^[0-9a-f]{64}$/.test(first!.header!.get("Lc-Auth")), "a chunk tag");
        assert(/^[0-9a-f]{64}$/.test(first!.header!.get("Lc-Auth-Body")), "the whole's tag");
      } finally {
        await nc.close();
      }
      assertEquals(await metric(follower.url, "lightcone_replication_follower_stopped"), 0);
      assertEquals(await metric(primary.url, "lightcone_replication_stopped"), 0);
    } finally {
      await follower?.close();
      await primary?.close();
      if (nats) await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
      await Deno.remove(config).catch(() => {});
      await Deno.remove(`${storeDir}.key`).catch(() => {});
    }
  },
});

Deno.test({
  name: "replication: a chunked message left part way (the primary stopped) is started over",
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
      const owner = await publish(primary.url, DB, await fixtureBundle("migrate_v1"));
      assertEquals((await call(primary.url, DB, "add", [1, "Ann"], owner.token)).status, 200);
      await waitUntil(
        async () => (await metric(primary!.url, "lightcone_replication_lag_tx")) === 0,
        "the primary's lag at 0",
      );
      const durable = (await metric(primary.url, "lightcone_durable_tx_offset"))!;
      const dataDir = primary.dataDir;
      await primary.close({ keepData: true });
      primary = undefined;
      // What a primary stopping after the first of two chunks leaves in the stream.
      const primaryId = (await Deno.readTextFile(`${dataDir}/replication-primary-id`)).trim();
      const nc = await connectNats({ servers: server });
      try {
        const subject = `lightcone.${owner.identity}.log`;
        const last = await (await jetstreamManager(nc)).streams.getMessage("LIGHTCONE", {
          last_by_subj: subject,
        });
        const h = headers();
        for (
          const [name, value] of [
            ["Lc-Kind", "log"],
            ["Lc-First-Tx", String(durable)],
            ["Lc-End-Tx", String(durable + 1)],
            ["Lc-Primary", primaryId],
            ["Lc-Chunk", "0/2"],
            ["Lc-Chunk-Bytes", "2000"],
            ["Lc-Chunk-Sha256", "ab".repeat(32)],
          ]
        ) h.set(name, value);
        await jetstream(nc).publish(subject, new Uint8Array(1000).fill(7), {
          headers: h,
          expect: { lastSubjectSequence: last!.seq },
        });
      } finally {
        await nc.close();
      }
      primary = await startTestServer({ replicate: server, dataDir });
      assertEquals((await call(primary.url, DB, "add", [2, "Bob"], owner.token)).status, 200);
      await waitUntil(
        async () => (await sqlRows(follower!.url, "SELECT * FROM person"))?.length === 2,
        "Bob on the replica after the abandoned chunk",
      );
      assertEquals(await metric(primary.url, "lightcone_replication_stopped"), 0);
      assertEquals(await metric(follower.url, "lightcone_replication_follower_stopped"), 0);
    } finally {
      await follower?.close();
      await primary?.close();
      if (nats) await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    }
  },
});
