/**
 * 64 official-SDK connections with 40 pipelined reducer calls each: every call
 * resolves with the right outcome, and the bank's money is conserved.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { connectBank, type DbConnection } from "../fixtures/bindings/bank/index.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const CONNECTIONS = 64;
const IN_FLIGHT = 40;
const ACCOUNTS = 1000;

Deno.test({
  name: "64 SDK connections x 40 pipelined transfers all resolve correctly",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const connections: DbConnection[] = [];
    try {
      await publish(server.url, "bank", await fixtureBundle("bank"));
      assertEquals((await call(server.url, "bank", "seed", [0, ACCOUNTS, 1_000_000])).status, 200);
      for (let i = 0; i < CONNECTIONS; i++) connections.push(await connectBank(server.url, "bank"));
      let ok = 0;
      let refused = 0;
      const outcomes = connections.flatMap((conn, c) =>
        Array.from({ length: IN_FLIGHT }, (_, i) => {
          const from = (c * IN_FLIGHT + i) % ACCOUNTS;
          // Every tenth call is a self-transfer, which the module refuses.
          const to = i % 10 === 0 ? from : (from + 1 + c) % ACCOUNTS;
          return conn.reducers.transfer({ from, to, amount: 1n }).then(
            () => {
              if (from === to) throw new Error(`self-transfer ${from} was accepted`);
              ok++;
            },
            (error) => {
              if (from !== to) throw new Error(`transfer ${from}->${to} failed: ${error}`);
              if (!String(error?.message ?? error).includes("same account")) throw error;
              refused++;
            },
          );
        })
      );
      await Promise.all(outcomes);
      assertEquals(ok, CONNECTIONS * IN_FLIGHT * 9 / 10);
      assertEquals(refused, CONNECTIONS * IN_FLIGHT / 10);
      const totals = await call(server.url, "bank", "totals", []);
      const [count, sum] = totals.json as [number, number];
      assertEquals(count, ACCOUNTS);
      assertEquals(sum, ACCOUNTS * 1_000_000);
    } finally {
      for (const conn of connections) conn.disconnect();
      await server.close();
    }
  },
});
