/**
 * Snapshots of a large table taken under load. The server snapshots every few dozen
 * transactions while 16 callers append tagged ledger rows; it is killed with SIGKILL the moment
 * a snapshot's temp file appears (i.e. while the snapshot is being written), again and again.
 * After each restart every acknowledged transfer is there and the money is conserved. At the
 * end, recovery from snapshot + log suffix is compared with recovery from the whole log alone
 * (the same data directory with its snapshots removed): identical accounts and ledger.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import { call, fixtureBundle, publish, startServerProcess } from "../support/server.ts";

const ROUNDS = Number(Deno.env.get("LIGHTCONE_SNAPSHOT_KILL_ROUNDS") ?? 5);
const ACCOUNTS = 1000;
const BALANCE = 1_000_000;
/** Ledger rows before the load: a snapshot of them takes several pieces to send and write. */
const FILL_ROWS = 200_000;
const FILL_CHUNK = 50_000;
const SERVER_ARGS = ["--snapshot-interval-tx", "40"];

function snapshotDir(dataDir: string, identity: string): string {
  return `${dataDir}/databases/${identity}/snapshots`;
}

function namesIn(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((entry) => entry.name);
  } catch {
    return [];
  }
}

async function sqlRows(url: string, token: string, query: string): Promise<unknown[]> {
  const response = await fetch(`${url}/v1/database/bank/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: query,
  });
  const text = await response.text();
  assertEquals(response.status, 200, text);
  return (JSON.parse(text) as Array<{ rows: unknown[] }>)[0].rows;
}

Deno.test({
  name: `SIGKILL while a snapshot is being written (${ROUNDS} times) loses nothing`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = Number(Deno.env.get("LIGHTCONE_TEST_SEED") ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-snapkill-" });
    const acknowledged = new Set<number>();
    let nextTag = FILL_ROWS + 1;
    let server = await startServerProcess({ dataDir, args: SERVER_ARGS });
    let killedMidSnapshot = 0;
    try {
      const owner = await publish(server.url, "bank", await fixtureBundle("bank"));
      const dir = snapshotDir(dataDir, owner.identity);
      assertEquals((await call(server.url, "bank", "seed", [0, ACCOUNTS, BALANCE])).status, 200);
      for (let first = 1; first <= FILL_ROWS; first += FILL_CHUNK) {
        const response = await call(server.url, "bank", "fill_ledger", [first, FILL_CHUNK]);
        assertEquals(response.status, 200, response.text);
        for (let tag = first; tag < first + FILL_CHUNK; tag++) acknowledged.add(tag);
      }
      for (let round = 0; round < ROUNDS; round++) {
        let killed = false;
        const caller = async () => {
          while (!killed) {
            const tag = nextTag++;
            const from = Math.floor(random.next() * ACCOUNTS);
            const to = (from + 1 + Math.floor(random.next() * (ACCOUNTS - 1))) % ACCOUNTS;
            try {
              const response = await call(server.url, "bank", "transfer_tagged", [
                from,
                to,
                1,
                tag,
              ]);
              if (response.status === 200) acknowledged.add(tag);
            } catch {
              return; // the server is gone
            }
          }
        };
        const callers = Array.from({ length: 16 }, caller);
        // Kill as soon as a snapshot is being written (a temp file exists), or after 15 s.
        const deadline = Date.now() + 15_000;
        let midSnapshot = false;
        while (Date.now() < deadline) {
          if (namesIn(dir).some((name) => name.endsWith(".snap.tmp"))) {
            midSnapshot = true;
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        if (midSnapshot) killedMidSnapshot++;
        // A little later sometimes, so kills also land between pieces and during the fsync.
        if (random.next() < 0.5) await new Promise((r) => setTimeout(r, random.next() * 20));
        killed = true;
        await server.stop("SIGKILL");
        await Promise.all(callers);

        server = await startServerProcess({ dataDir, args: SERVER_ARGS });
        const entries = (await call(server.url, "bank", "ledger_entries", [])).json as [
          number,
          number,
        ][];
        const present = new Set(entries.map(([, tag]) => Number(tag)));
        let lost = 0;
        for (const tag of acknowledged) if (!present.has(tag)) lost++;
        assertEquals(lost, 0, `seed ${seed} round ${round}: ${lost} acknowledged rows lost`);
        const ids = entries.map(([id]) => String(id));
        assertEquals(new Set(ids).size, ids.length, `seed ${seed}: an auto-increment id repeated`);
        const totals = (await call(server.url, "bank", "totals", [])).json as number[];
        assertEquals(totals, [ACCOUNTS, ACCOUNTS * BALANCE], `seed ${seed} round ${round}`);
      }
      console.log(`${killedMidSnapshot} of ${ROUNDS} kills landed while a snapshot was written`);
      assert(
        namesIn(dir).some((name) => name.endsWith(".snap")),
        "snapshots were written between the kills",
      );

      // Snapshot + suffix against the whole log: same state.
      const viaSnapshot = {
        accounts: await sqlRows(server.url, owner.token, "SELECT * FROM accounts"),
        ledger: (await call(server.url, "bank", "ledger_entries", [])).json as unknown[],
      };
      await server.stop("SIGTERM");
      const logOnlyDir = await Deno.makeTempDir({ prefix: "lightcone-logonly-" });
      await new Deno.Command("cp", { args: ["-a", `${dataDir}/.`, logOnlyDir] }).output();
      await Deno.remove(snapshotDir(logOnlyDir, owner.identity), { recursive: true });
      server = await startServerProcess({
        dataDir: logOnlyDir,
        args: ["--snapshot-interval-tx", "1000000"],
      });
      const viaLog = {
        accounts: await sqlRows(server.url, owner.token, "SELECT * FROM accounts"),
        ledger: (await call(server.url, "bank", "ledger_entries", [])).json as unknown[],
      };
      const byFirst = (a: unknown, b: unknown) =>
        String((a as unknown[])[0]).localeCompare(String((b as unknown[])[0]), "en", {
          numeric: true,
        });
      assertEquals(viaLog.accounts.length, ACCOUNTS);
      assertEquals(viaLog.accounts.sort(byFirst), viaSnapshot.accounts.sort(byFirst));
      assertEquals(viaLog.ledger.length, viaSnapshot.ledger.length);
      assertEquals(viaLog.ledger.sort(byFirst), viaSnapshot.ledger.sort(byFirst));
      await server.stop("SIGKILL");
      await Deno.remove(logOnlyDir, { recursive: true }).catch(() => {});
    } finally {
      await server.stop("SIGKILL");
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
