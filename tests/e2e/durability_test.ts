/**
 * Durability end to end. A restart brings back three databases with different
 * modules. A child server under continuous transfer load is killed with SIGKILL
 * again and again: after each restart every acknowledged transfer is there, the
 * money is conserved, and auto-increment ids never repeat.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import {
  call,
  fixtureBundle,
  publish,
  startServerProcess,
  startTestServer,
} from "../support/server.ts";

const KILLS = Number(Deno.env.get("LIGHTCONE_KILL_ROUNDS") ?? 20);
const ACCOUNTS = 1000;
const BALANCE = 1_000_000;

Deno.test({
  name: "a restart restores three databases with different modules",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-restart-" });
    let server = await startTestServer({ dataDir });
    try {
      const bankOwner = await publish(server.url, "bank", await fixtureBundle("bank"));
      await publish(server.url, "kitchen", await fixtureBundle("kitchen"));
      await publish(server.url, "chat", await fixtureBundle("chat"));
      assertEquals((await call(server.url, "bank", "seed", [0, ACCOUNTS, BALANCE])).status, 200);
      for (let i = 0; i < 50; i++) {
        assertEquals((await call(server.url, "bank", "transfer", [i, i + 1, 7])).status, 200);
      }
      for (const [x, y] of [[1, 2], [3, 4], [5, 6]]) {
        assertEquals((await call(server.url, "kitchen", "add_point", [x, y, "p"])).status, 200);
      }
      assertEquals((await call(server.url, "kitchen", "bump", ["c", 41, ""])).status, 200);
      const pointsBefore = (await call(server.url, "kitchen", "points_with_x", [0, 10]))
        .json as unknown[][];
      // A snapshot on demand (owner only), then more transactions after it: recovery
      // must combine the snapshot with the log suffix.
      const stranger = await fetch(`${server.url}/v1/database/bank/snapshot`, { method: "POST" });
      assertEquals(stranger.status, 403);
      await stranger.body?.cancel();
      const snapshot = await fetch(`${server.url}/v1/database/bank/snapshot`, {
        method: "POST",
        headers: { authorization: `Bearer ${bankOwner.token}` },
      });
      assertEquals(snapshot.status, 200);
      const snapshotOffset = (await snapshot.json()).tx_offset as number;
      assertEquals(snapshotOffset, 51, "seed + 50 transfers");
      for (let i = 100; i < 110; i++) {
        assertEquals((await call(server.url, "bank", "transfer", [i, i + 1, 3])).status, 200);
      }

      await server.close({ keepData: true });
      server = await startTestServer({ dataDir });

      const totalsResponse = await call(server.url, "bank", "totals", []);
      assertEquals(totalsResponse.status, 200, totalsResponse.text);
      assertEquals(totalsResponse.json as number[], [ACCOUNTS, ACCOUNTS * BALANCE]);
      const snapshots = [
        ...Deno.readDirSync(`${dataDir}/databases/${bankOwner.identity}/snapshots`),
      ];
      assert(snapshots.some((entry) => entry.name.endsWith(".snap")), "a snapshot file exists");
      assertEquals((await call(server.url, "kitchen", "counter_value", ["c"])).json, 41);
      assertEquals(
        (await call(server.url, "kitchen", "points_with_x", [0, 10])).json,
        pointsBefore,
      );
      // Sequences continue: the next point gets an id none of the old ones has.
      assertEquals((await call(server.url, "kitchen", "add_point", [7, 8, "after"])).status, 200);
      const ids = ((await call(server.url, "kitchen", "points_with_x", [0, 10])).json as number[][])
        .map((row) => row[0]);
      assertEquals(ids.length, pointsBefore.length + 1);
      assertEquals(new Set(ids).size, ids.length);
      // The chat module still runs: its reducers and lifecycle work after recovery.
      const schema = await fetch(`${server.url}/v1/database/chat/schema?version=10`);
      assertEquals(schema.status, 200);
      await schema.body?.cancel();
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: `SIGKILL under load ${KILLS} times loses no acknowledged transfer`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = Number(Deno.env.get("LIGHTCONE_TEST_SEED") ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-kill-" });
    const acknowledged = new Map<number, number>(); // tag -> amount
    const idOfTag = new Map<string, string>();
    let nextTag = 1;
    let server = await startServerProcess({ dataDir });
    try {
      await publish(server.url, "bank", await fixtureBundle("bank"));
      assertEquals((await call(server.url, "bank", "seed", [0, ACCOUNTS, BALANCE])).status, 200);
      for (let round = 0; round < KILLS; round++) {
        // Load: 16 concurrent callers with unique tags, until the kill.
        let killed = false;
        const caller = async () => {
          while (!killed) {
            const tag = nextTag++;
            const from = Math.floor(random.next() * ACCOUNTS);
            const to = (from + 1 + Math.floor(random.next() * (ACCOUNTS - 1))) % ACCOUNTS;
            const amount = 1 + Math.floor(random.next() * 5);
            try {
              const response = await call(server.url, "bank", "transfer_tagged", [
                from,
                to,
                amount,
                tag,
              ]);
              if (response.status === 200) acknowledged.set(tag, amount);
            } catch {
              return; // connection refused or reset: the server is gone
            }
          }
        };
        const callers = Array.from({ length: 16 }, caller);
        // Kill mid-stream: once this round has some acknowledged transfers, at a random moment.
        const ackedBefore = acknowledged.size;
        const warmDeadline = Date.now() + 60_000;
        while (acknowledged.size < ackedBefore + 5 && Date.now() < warmDeadline) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await new Promise((resolve) => setTimeout(resolve, random.next() * 300));
        killed = true;
        await server.stop("SIGKILL");
        await Promise.all(callers);

        server = await startServerProcess({ dataDir });
        const entries = (await call(server.url, "bank", "ledger_entries", [])).json as [
          number,
          number,
        ][];
        const present = new Set(entries.map(([, tag]) => Number(tag)));
        for (const tag of acknowledged.keys()) {
          assert(
            present.has(tag),
            `seed ${seed} round ${round}: acknowledged transfer ${tag} was lost`,
          );
        }
        for (const [id, tag] of entries) {
          const known = idOfTag.get(String(tag));
          assert(
            known === undefined || known === String(id),
            `seed ${seed}: tag ${tag} changed id`,
          );
          idOfTag.set(String(tag), String(id));
        }
        const ids = entries.map(([id]) => String(id));
        assertEquals(new Set(ids).size, ids.length, `seed ${seed}: an auto-increment id repeated`);
        const totals = (await call(server.url, "bank", "totals", [])).json as number[];
        assertEquals(totals, [ACCOUNTS, ACCOUNTS * BALANCE], `seed ${seed} round ${round}`);
      }
      // Ids are never reused across restarts: every id maps to one tag.
      const tagsById = new Map<string, string>();
      for (const [tag, id] of idOfTag) {
        assert(!tagsById.has(id) || tagsById.get(id) === tag, `seed ${seed}: id ${id} reused`);
        tagsById.set(id, tag);
      }
      assert(
        acknowledged.size > KILLS,
        `seed ${seed}: the load acknowledged too little (${acknowledged.size})`,
      );
    } finally {
      await server.stop("SIGKILL");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
