/**
 * Recovery reads only the commit-log segments after the snapshot it starts from, so a segment
 * wholly before the newest snapshot used to rot unnoticed until a lost snapshot made it needed.
 * The server now checks those segments in the background after a database starts: a flipped byte
 * in one is reported (error log, `lightcone_commit_log_segments_corrupt_total`) and the database,
 * healthy from its snapshot, keeps serving.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";

const OPTIONS = { logSegmentBytes: 4096, snapshotIntervalTx: 4 };

async function names(dir: string, suffix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(suffix)) out.push(entry.name);
  }
  return out.sort();
}

async function metric(url: string, name: string, database: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{database="${database}"}`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

Deno.test({
  name:
    "a flipped byte in a segment before the newest snapshot is reported and the database serves",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let server = await startTestServer(OPTIONS);
    const dataDir = server.dataDir;
    try {
      const owner = await publish(server.url, "verify", await fixtureBundle("redteam"));
      const directory = server.server.registry.resolve("verify")!.directory;
      const logDir = join(directory, "log");
      const snapshotDir = join(directory, "snapshots");
      // Rows of 3,000 characters: about one commit per 4 KiB segment.
      for (let i = 0; i < 12; i++) {
        const added = await call(server.url, "verify", "blobs", [1, 3_000], owner.token);
        assertEquals(added.status, 200, added.text);
      }
      // Snapshots every 4 transactions: wait until one lies past the first two segments.
      const segments = await names(logDir, ".log");
      assert(segments.length >= 4, `several segments: ${segments}`);
      const thirdStart = BigInt(segments[2].slice(0, 20));
      await waitUntil(async () => {
        const snaps = await names(snapshotDir, ".snap").catch(() => []);
        return snaps.some((name) => BigInt(name.slice(0, 20)) >= thirdStart);
      }, "a snapshot past the second segment");
      await server.close({ keepData: true });

      // Bit rot in the first segment, which recovery will not read.
      const first = join(logDir, segments[0]);
      const bytes = await Deno.readFile(first);
      bytes[40] ^= 0x01;
      await Deno.writeFile(first, bytes);

      server = await startTestServer({ ...OPTIONS, dataDir });
      await server.server.registry.recovered;
      await waitUntil(
        async () =>
          (await metric(server.url, "lightcone_commit_log_segments_corrupt_total", "verify")) === 1,
        "the corrupt segment counted in /v1/metrics",
      );
      await server.server.registry.segmentChecksIdle();
      const verified = await metric(
        server.url,
        "lightcone_commit_log_segments_verified_total",
        "verify",
      );
      assert(verified !== undefined && verified >= 1, `intact old segments counted: ${verified}`);
      // The database recovered from its snapshot and keeps serving.
      const more = await call(server.url, "verify", "blobs", [1, 10], owner.token);
      assertEquals(more.status, 200, more.text);
      assertEquals(await metric(server.url, "lightcone_database_up", "verify"), 1);
    } finally {
      await server.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
