/**
 * Periodic snapshots on the real server: under concurrent load a database is snapshotted
 * automatically every `--snapshot-interval-tx` durable transactions, and after a SIGKILL the
 * restart recovers from the newest snapshot plus the log after it to exactly the state the
 * clients were told about.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import {
  fixtureBundle,
  parseWithBigInts,
  publish,
  stringifyWithBigInts,
} from "../support/server.ts";

const INTERVAL_TX = 300;

interface LoggedServer {
  url: string;
  /** Every stdout line so far (the storage worker logs replays there). */
  lines: string[];
  kill(signal: Deno.Signal): Promise<void>;
}

async function startLoggedServer(
  dataDir: string,
  snapshotArgs = ["--snapshot-interval-tx", String(INTERVAL_TX)],
): Promise<LoggedServer> {
  const root = new URL("../../", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-worker-options",
      "-A",
      `${root}main.ts`,
      "start",
      "--listen-addr",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
      ...snapshotArgs,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: string[] = [];
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let partial = "";
  let url: string | undefined;
  const pump = async () => {
    const { value, done } = await reader.read();
    if (done) return false;
    partial += value;
    const complete = partial.split("\n");
    partial = complete.pop()!;
    lines.push(...complete);
    return true;
  };
  while (url === undefined) {
    if (!(await pump())) throw new Error(`server exited before listening: ${lines.join("\n")}`);
    url = lines.map((line) => /lightcone: listening on (\S+)/.exec(line)?.[1]).find(Boolean);
  }
  (async () => {
    try {
      while (await pump()) { /* keep collecting */ }
    } catch { /* closed */ }
  })();
  return {
    url,
    lines,
    async kill(signal) {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

async function post(url: string, path: string, token: string, body: string) {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body,
  });
  return { status: response.status, text: await response.text() };
}

/** Every mark tag, sorted, read with /sql (which answers once what it read is durable). */
async function allTags(url: string, token: string): Promise<bigint[]> {
  const response = await post(url, "/v1/database/snapped/sql", token, "SELECT * FROM mark");
  assertEquals(response.status, 200, response.text);
  const [result] = parseWithBigInts(response.text) as [{ rows: [bigint | number][] }];
  return result.rows.map(([tag]) => BigInt(tag)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function snapshotOffsets(dir: string): Promise<number[]> {
  const offsets: number[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = /^(\d{20})\.snap$/.exec(entry.name);
    if (match) offsets.push(Number(match[1]));
  }
  return offsets.sort((a, b) => a - b);
}

async function snapshotBeingWritten(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(".snap.tmp")) return true;
  }
  return false;
}

Deno.test({
  name: "snapshots are taken every interval under load and a restart recovers snapshot + log",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-snapshot-" });
    let server = await startLoggedServer(dataDir);
    try {
      const owner = await publish(server.url, "snapped", await fixtureBundle("acks"));
      const snapshots = join(dataDir, "databases", owner.identity, "snapshots");
      // Each /call is two transactions (client_connected, add).
      let nextTag = 1n;
      const added: bigint[] = [];
      const addMany = async (count: number) => {
        const tag = nextTag++;
        for (let i = 0; i < count; i++) {
          const response = await post(
            server.url,
            "/v1/database/snapped/call/add",
            owner.token,
            stringifyWithBigInts([tag * 1_000_000n + BigInt(i)]),
          );
          assertEquals(response.status, 200, response.text);
          added.push(tag * 1_000_000n + BigInt(i));
        }
      };
      await Promise.all([addMany(150), addMany(150), addMany(150), addMany(150)]);
      // 4 x 150 calls = 1,200 transactions: the worker is asked at about 300, 600, 900 (a
      // little later when a batch straddles the mark) and the storage keeps the newest two.
      let offsets: number[] = [];
      // Up to 60 s (a loaded machine writes snapshots slowly); ends as soon as they are there.
      for (let waited = 0; waited < 600; waited++) {
        offsets = await snapshotOffsets(snapshots).catch(() => []);
        // Exactly two: an older snapshot is deleted only after the newer one is durable, so a
        // look in between can see three.
        if (offsets.length === 2 && offsets.at(-1)! >= 3 * INTERVAL_TX) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      console.log(`snapshots on disk after the load: ${offsets.join(", ")}`);
      assertEquals(offsets.length, 2, "the two newest snapshots are kept");
      assert(offsets.at(-1)! >= 3 * INTERVAL_TX, `newest snapshot at ${offsets.at(-1)}`);
      // A log suffix after the newest snapshot: 20 transactions, repeated if a snapshot
      // was taken meanwhile (the next one is then 300 transactions away).
      let newestBefore: number;
      // Also repeated while a snapshot is being written (its .snap.tmp): one that lands after the
      // suffix would cover it.
      do {
        newestBefore = (await snapshotOffsets(snapshots)).at(-1)!;
        await addMany(10);
        await new Promise((resolve) => setTimeout(resolve, 300));
      } while (
        (await snapshotOffsets(snapshots)).at(-1) !== newestBefore ||
        await snapshotBeingWritten(snapshots)
      );
      const before = await allTags(server.url, owner.token);
      assertEquals(before, [...added].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));

      await server.kill("SIGKILL");
      server = await startLoggedServer(dataDir);
      const after = await allTags(server.url, owner.token);
      const replay = server.lines.find((line) => line.includes("Replaying a database"));
      const recovered = server.lines.find((line) => line.includes("database recovered"));
      console.log(`${replay}\n${recovered}`);
      const snapshotTxOffset = Number(/snapshotTxOffset=(\d+)/.exec(replay ?? "")?.[1]);
      const logEnd = Number(/logEndTxOffset=(\d+)/.exec(replay ?? "")?.[1]);
      const newest = (await snapshotOffsets(snapshots)).at(-1)!;
      assertEquals(snapshotTxOffset, newest, "recovery started from the newest snapshot");
      assert(logEnd > snapshotTxOffset, "and replayed a log suffix after it");
      assertEquals(after, before, "recovered state equals the state before the kill");
    } finally {
      await server.kill("SIGTERM");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "--snapshot-interval-mb takes snapshots by commit-log size when the tx interval is far",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-snapshot-mb-" });
    // ~2 KiB of log between snapshots; the transaction interval alone would never snapshot here.
    const server = await startLoggedServer(dataDir, [
      "--snapshot-interval-tx",
      "1000000",
      "--snapshot-interval-mb",
      "0.002",
    ]);
    try {
      const owner = await publish(server.url, "snapped", await fixtureBundle("acks"));
      const snapshots = join(dataDir, "databases", owner.identity, "snapshots");
      // Each /call is two records of ~100-200 bytes: 60 calls write well over 2 KiB of log.
      for (let i = 0; i < 60; i++) {
        const response = await post(
          server.url,
          "/v1/database/snapped/call/add",
          owner.token,
          stringifyWithBigInts([BigInt(i)]),
        );
        assertEquals(response.status, 200, response.text);
      }
      let offsets: number[] = [];
      for (let waited = 0; waited < 600 && offsets.length === 0; waited++) {
        offsets = await snapshotOffsets(snapshots).catch(() => []);
        if (offsets.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      console.log(`snapshots on disk: ${offsets.join(", ")}`);
      assert(offsets.length > 0, "a snapshot was taken by log size");
      assert(offsets.at(-1)! < 1_000_000);
    } finally {
      await server.kill("SIGTERM");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
