/**
 * The bank module with 100,000 accounts, driven over HTTP with concurrent random
 * transfers: every committed transfer moves money, none creates or destroys any.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const ACCOUNTS = 100_000;
const BALANCE = 1_000_000_000n;

Deno.test({
  name: "transfers over HTTP preserve the sum of 100,000 balances",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      await publish(server.url, "bank", await fixtureBundle("bank"));
      for (let from = 0; from < ACCOUNTS; from += 20_000) {
        const seeded = await call(server.url, "bank", "seed", [from, 20_000, BALANCE]);
        assertEquals(seeded.status, 200, seeded.text);
      }
      const seed = Number(Deno.env.get("LIGHTCONE_TEST_SEED") ?? Date.now() % 1_000_000);
      const random = seededRandom(seed);
      let committed = 0;
      let refused = 0;
      const pick = () => Math.floor(random.next() * ACCOUNTS);
      for (let round = 0; round < 10; round++) {
        const calls = Array.from({ length: 100 }, (_, i) => {
          const from = pick();
          const to = i % 25 === 0 ? from : pick();
          return call(server.url, "bank", "transfer", [
            from,
            to,
            1 + Math.floor(random.next() * 1000),
          ]);
        });
        for (const response of await Promise.all(calls)) {
          if (response.status === 200) committed++;
          else {
            assertEquals(response.status, 530, `seed ${seed}: ${response.text}`);
            refused++;
          }
        }
      }
      assert(committed >= 900, `seed ${seed}: only ${committed} transfers committed`);
      assert(refused >= 40, `seed ${seed}: self-transfers must be refused (${refused})`);
      const totals = await call(server.url, "bank", "totals", []);
      assertEquals(totals.status, 200, totals.text);
      const [count, sum] = totals.json as [number, number | bigint];
      assertEquals(count, ACCOUNTS);
      assertEquals(
        BigInt(sum),
        BigInt(ACCOUNTS) * BALANCE,
        `seed ${seed}: money appeared or vanished`,
      );
    } finally {
      await server.close();
    }
  },
});
