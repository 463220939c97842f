/**
 * A read replica (a real server with --follow, a real nats-server) against module messages
 * whose database names are invalid, or that give a name to a new database before the deletion
 * of the database that held it arrives (stream order across databases is the order of the
 * primary's publishes, which NATS outages can change).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { ensureStream } from "../../replication/stream.ts";
import { startNatsServer } from "../support/nats.ts";
import { fixtureBundle, startTestServer, type TestServer } from "../support/server.ts";
import { waitUntil } from "../support/wait.ts";

async function status(url: string): Promise<number> {
  const response = await fetch(url);
  await response.body?.cancel();
  return response.status;
}

Deno.test({
  name: "replica: invalid names are refused; a name given to a new database stays with it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const nats = await startNatsServer();
    let replica: TestServer | undefined;
    let nc: NatsConnection | undefined;
    try {
      replica = await startTestServer({ follow: nats.server });
      nc = await connect({ servers: nats.server });
      await ensureStream(nc);
      const js = jetstream(nc);
      const bundle = await fixtureBundle("migrate_v1");
      const owner = "ab".repeat(32);
      const key = (n: number) => n.toString(16).padStart(64, "0");
      const send = async (db: number, kind: string, fields: Record<string, string>, body = "") => {
        const h = headers();
        h.set("Lc-Kind", kind);
        h.set("Lc-Primary", "test");
        for (const [name, value] of Object.entries(fields)) h.set(name, value);
        await js.publish(`lightcone.${key(db)}.log`, new TextEncoder().encode(body), {
          headers: h,
        });
      };
      const module = (db: number, names: string[]) =>
        send(db, "module", { "Lc-At-Tx": "0" }, JSON.stringify({ owner, names, bundle }));

      await module(1, ["bank"]);
      // The primary deleted database 1 and named database 2 "bank"; 1's deletion comes later.
      await module(2, ["bank"]);
      await send(1, "delete", {});
      await module(3, ["Not A Name!"]);
      await module(4, ["sentinel"]);

      const url = replica.url;
      await waitUntil(
        async () => (await status(`${url}/v1/database/sentinel`)) === 200,
        "the last database on the replica",
      );
      // Database 1's deletion took only its own names: "bank" is database 2's.
      assertEquals(await status(`${url}/v1/database/bank`), 200);
      const bank = await (await fetch(`${url}/v1/database/bank`)).json();
      assertEquals(bank.database_identity, { __identity__: `0x${key(2)}` });
      assertEquals(await status(`${url}/v1/database/${key(1)}`), 404);
      assertEquals(await status(`${url}/v1/database/${key(3)}`), 404);
      assertEquals(await status(`${url}/v1/database/${key(2)}`), 200);
    } finally {
      await nc?.close();
      await replica?.close();
      await nats.stop();
    }
  },
});
