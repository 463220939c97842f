/**
 * Automatic migrations on the real server with modules built from the official
 * `spacetimedb` module library: pre_publish's plan, the BreakClients token, rows getting a new
 * column's default, a refused change leaving the old module serving, a failed execution
 * restoring it, replay after a restart, and a SIGKILL at several points of a migration.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  call,
  fixtureBundle,
  publish,
  startServerProcess,
  startTestServer,
} from "../support/server.ts";
import {
  databaseDir,
  decodeTxRecord,
  denoFs,
  listSnapshots,
  readCommitLog,
} from "../../storage/mod.ts";

const HEADER = `${"━".repeat(60)}\nDatabase Migration Plan\n${"━".repeat(60)}\n\n`;

async function sqlRows(url: string, database: string, query: string, token: string) {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: query,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  assertEquals(response.status, 200, text);
  return JSON.parse(text)[0] as {
    schema: { elements: { name: { some: string } }[] };
    rows: unknown[][];
  };
}

async function prePublish(url: string, database: string, bundle: string, token: string) {
  const response = await fetch(
    `${url}/v1/database/${database}/pre_publish?host_type=Js&pretty_print_style=NoColor`,
    { method: "POST", body: bundle, headers: { authorization: `Bearer ${token}` } },
  );
  assertEquals(response.status, 200);
  return await response.json();
}

async function put(url: string, database: string, bundle: string, token: string, query = "") {
  const response = await fetch(`${url}/v1/database/${database}?host_type=Js${query}`, {
    method: "PUT",
    body: bundle,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "automatic migrations: plan, token, defaults, refusals, failures, restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    let restarted: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      const [v1, v2, v3, bad] = await Promise.all(
        ["migrate_v1", "migrate_v2", "migrate_v3", "migrate_bad"].map(fixtureBundle),
      );
      const owner = await publish(server.url, "mig", v1);
      const token = owner.token;
      assertEquals((await call(server.url, "mig", "add", [1, "Ann"], token)).status, 200);
      assertEquals((await call(server.url, "mig", "add", [2, "Bob"], token)).status, 200);
      // A host table (st_var) lives beside the module's: migrations carry its rows.
      await sqlRows(server.url, "mig", "SET row_limit = 5", token);

      let migrationToken = "";
      await t.step("pre_publish returns SpacetimeDB's plan text and a token", async () => {
        const plan = await prePublish(server.url, "mig", v2, token);
        assertEquals(plan.AutoMigrate.break_clients, true);
        assertEquals(
          plan.AutoMigrate.migrate_plan,
          HEADER +
            "▸ Created column in table person\n    + age: U32 (default: U32(\n    7,\n))\n" +
            "▸ Created user table: note (public)\n    Columns:\n        • id: U64\n" +
            "        • text: String\n    Unique constraints:\n        • note_id_key on [id]\n" +
            "    Indexes:\n        • note_id_idx_btree on [id]\n" +
            "    Auto-increment constraints:\n        • note_id_seq on id\n\n" +
            "!!! Warning: All clients will be disconnected due to breaking schema changes\n",
        );
        migrationToken = plan.AutoMigrate.token;
      });

      await t.step(
        "a client-breaking plan needs the token; nothing changes without it",
        async () => {
          assertEquals(await put(server.url, "mig", v2, token), {
            status: 400,
            text:
              "Migration plan contains a client-breaking change which is disallowed under current policy",
          });
          assertEquals(await put(server.url, "mig", v2, token, "&policy=BreakClients&token=0x1"), {
            status: 400,
            text: "Token provided is invalid or does not match expected hash",
          });
          const rows = await sqlRows(server.url, "mig", "SELECT * FROM person", token);
          assertEquals(rows.schema.elements.length, 2);
        },
      );

      await t.step(
        "with the token: existing rows get the default, the new table works",
        async () => {
          const answer = await put(
            server.url,
            "mig",
            v2,
            token,
            `&policy=BreakClients&token=${migrationToken}`,
          );
          assertEquals(answer.status, 200, answer.text);
          const rows = await sqlRows(server.url, "mig", "SELECT * FROM person", token);
          assertEquals(rows.schema.elements.map((e) => e.name.some), ["id", "name", "age"]);
          assertEquals(rows.rows.sort(), [[1, "Ann", 7], [2, "Bob", 7]]);
          assertEquals((await call(server.url, "mig", "add", [3, "Cy"], token)).status, 200);
          assertEquals((await call(server.url, "mig", "add_note", ["hello"], token)).status, 200);
          const notes = await sqlRows(server.url, "mig", "SELECT * FROM note", token);
          assertEquals(notes.rows, [[1, "hello"]]);
        },
      );

      await t.step(
        "a manual-migration change is refused with the texts; old module serves",
        async () => {
          const plan = await prePublish(server.url, "mig", bad, token);
          const reason = "Errors occurred:\n" +
            "Removing a column age from table person requires a manual migration\n\n" +
            "Removing a column name from table person requires a manual migration\n\n";
          assertEquals(plan, { ManualMigrate: { reason, major_version_upgrade: false } });
          assertEquals(await put(server.url, "mig", bad, token), {
            status: 400,
            text: `Database update rejected: ${reason}`,
          });
          assertEquals((await call(server.url, "mig", "add", [4, "Di"], token)).status, 200);
        },
      );

      await t.step(
        "removing a table with rows fails at execution; the old module keeps serving",
        async () => {
          const plan = await prePublish(server.url, "mig", v3, token);
          assertEquals(
            plan.AutoMigrate.migrate_plan,
            HEADER + "▸ Removed table: note\n\n" +
              "!!! Warning: All clients will be disconnected due to breaking schema changes\n",
          );
          const answer = await put(
            server.url,
            "mig",
            v3,
            token,
            `&policy=BreakClients&token=${plan.AutoMigrate.token}`,
          );
          assertEquals(answer, {
            status: 400,
            text: "Failed to create or update the database: Cannot remove table `note`: table " +
              "contains data. Clear the table's rows (e.g. via a reducer) before removing it from " +
              "your schema.",
          });
          assertEquals((await call(server.url, "mig", "add_note", ["still"], token)).status, 200);
          const notes = await sqlRows(server.url, "mig", "SELECT * FROM note", token);
          assertEquals(notes.rows.length, 2);
        },
      );

      await t.step("after a restart the log replays across the schema change", async () => {
        await server.close({ keepData: true });
        restarted = await startTestServer({ dataDir: server.dataDir });
        const rows = await sqlRows(restarted.url, "mig", "SELECT * FROM person", token);
        assertEquals(rows.rows.sort(), [[1, "Ann", 7], [2, "Bob", 7], [3, "Cy", 1], [4, "Di", 1]]);
        const notes = await sqlRows(restarted.url, "mig", "SELECT * FROM note", token);
        assertEquals(notes.rows.length, 2);
        const limit = await sqlRows(restarted.url, "mig", "SHOW row_limit", token);
        assertEquals(limit.rows, [[[8, 5]]]);
        assertEquals((await call(restarted.url, "mig", "add_note", ["after"], token)).status, 200);
      });
    } finally {
      if (restarted) await restarted.close();
      else await server.close();
    }
  },
});

Deno.test({
  name: "a SIGKILL during a migration leaves either the old or the new schema, data intact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const [v1, v2] = await Promise.all(["migrate_v1", "migrate_v2"].map(fixtureBundle));
    const seen = new Set<string>();
    for (const delayMs of [0, 150, 400, 1500]) {
      const dataDir = await Deno.makeTempDir({ prefix: "lightcone-migrate-kill-" });
      let server = await startServerProcess({ dataDir });
      try {
        const owner = await publish(server.url, "kill", v1);
        for (let id = 1; id <= 20; id++) {
          assertEquals(
            (await call(server.url, "kill", "add", [id, `p${id}`], owner.token)).status,
            200,
          );
        }
        const plan = await prePublish(server.url, "kill", v2, owner.token);
        const update = put(
          server.url,
          "kill",
          v2,
          owner.token,
          `&policy=BreakClients&token=${plan.AutoMigrate.token}`,
        ).catch(() => ({ status: 0, text: "connection lost" }));
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        await server.stop("SIGKILL");
        const answered = await update;
        server = await startServerProcess({ dataDir });
        const rows = await sqlRows(server.url, "kill", "SELECT * FROM person", owner.token);
        const columns = rows.schema.elements.map((e) => e.name.some);
        const sorted = rows.rows.sort((a, b) => (a[0] as number) - (b[0] as number));
        assertEquals(sorted.length, 20);
        if (columns.length === 3) {
          seen.add("new");
          assertEquals(sorted[0], [1, "p1", 7]);
          assertEquals(
            (await call(server.url, "kill", "add_note", ["x"], owner.token)).status,
            200,
          );
        } else {
          seen.add("old");
          // An acknowledged migration must never be lost.
          assert(answered.status !== 200, `the update was acknowledged: ${answered.text}`);
          assertEquals(columns, ["id", "name"]);
          assertEquals(sorted[0], [1, "p1"]);
          // The old module serves and the migration can be published again.
          assertEquals(
            (await call(server.url, "kill", "add", [21, "late"], owner.token)).status,
            200,
          );
          const again = await prePublish(server.url, "kill", v2, owner.token);
          const retried = await put(
            server.url,
            "kill",
            v2,
            owner.token,
            `&policy=BreakClients&token=${again.AutoMigrate.token}`,
          );
          assertEquals(retried.status, 200, retried.text);
        }
      } finally {
        await server.stop("SIGKILL");
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      }
    }
    console.log(`SIGKILL during migration: outcomes seen ${[...seen].join(", ")}`);
  },
});

Deno.test({
  name: "snapshots name their schema: restore before and after a migration",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const [v1, v2] = await Promise.all(["migrate_v1", "migrate_v2"].map(fixtureBundle));
    let server = await startTestServer();
    try {
      const owner = await publish(server.url, "snap", v1);
      const token = owner.token;
      const snapshot = async () => {
        const response = await fetch(`${server.url}/v1/database/snap/snapshot`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
        });
        assertEquals(response.status, 200, await response.text());
      };
      const restart = async () => {
        await server.close({ keepData: true });
        server = await startTestServer({ dataDir: server.dataDir });
      };
      assertEquals((await call(server.url, "snap", "add", [1, "Ann"], token)).status, 200);
      await snapshot(); // old schema, then the migration record replays on top of it
      assertEquals((await call(server.url, "snap", "add", [2, "Bob"], token)).status, 200);
      const plan = await prePublish(server.url, "snap", v2, token);
      const answer = await put(
        server.url,
        "snap",
        v2,
        token,
        `&policy=BreakClients&token=${plan.AutoMigrate.token}`,
      );
      assertEquals(answer.status, 200, answer.text);
      assertEquals((await call(server.url, "snap", "add", [3, "Cy"], token)).status, 200);
      await restart();
      const expected = [[1, "Ann", 7], [2, "Bob", 7], [3, "Cy", 1]];
      assertEquals(
        (await sqlRows(server.url, "snap", "SELECT * FROM person", token)).rows.sort(),
        expected,
      );
      await snapshot(); // new schema
      assertEquals((await call(server.url, "snap", "add", [4, "Di"], token)).status, 200);
      await restart();
      assertEquals(
        (await sqlRows(server.url, "snap", "SELECT * FROM person", token)).rows.sort(),
        [...expected, [4, "Di", 1]],
      );
      assertEquals((await call(server.url, "snap", "add_note", ["n"], token)).status, 200);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a committed migration is snapshotted, so a restart replays no :migrate record",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const [v1, v2] = await Promise.all(["migrate_v1", "migrate_v2"].map(fixtureBundle));
    let server = await startTestServer();
    try {
      const owner = await publish(server.url, "snapmig", v1);
      const token = owner.token;
      const dbDir = databaseDir(`${server.dataDir}`, owner.identity);
      assertEquals((await call(server.url, "snapmig", "add", [1, "Ann"], token)).status, 200);
      const plan = await prePublish(server.url, "snapmig", v2, token);
      const answer = await put(
        server.url,
        "snapmig",
        v2,
        token,
        `&policy=BreakClients&token=${plan.AutoMigrate.token}`,
      );
      assertEquals(answer.status, 200, answer.text);
      assertEquals((await call(server.url, "snapmig", "add", [2, "Bob"], token)).status, 200);
      /** Log offsets of the `:migrate` records. */
      const migrateOffsets = () => {
        const log = readCommitLog(denoFs, `${dbDir}/log`, { truncateTornTail: false });
        const offsets: bigint[] = [];
        for (const record of log.records()) {
          if (decodeTxRecord(record.bytes).reducerName === ":migrate") offsets.push(record.offset);
        }
        return offsets;
      };
      const [migrateAt] = migrateOffsets();
      assert(migrateAt !== undefined, "the migration is in the log");
      // The snapshot is written in the background right after the migration commits.
      let newest: bigint | undefined;
      for (let waited = 0; waited < 600; waited++) {
        newest = listSnapshots(denoFs, `${dbDir}/snapshots`)[0]?.txOffset;
        if (newest !== undefined && newest > migrateAt) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      console.log(`:migrate at log offset ${migrateAt}, newest snapshot after tx ${newest}`);
      assert(newest !== undefined && newest > migrateAt, "a snapshot covers the migration");
      await server.close({ keepData: true });
      server = await startTestServer({ dataDir: server.dataDir });
      assertEquals(
        (await sqlRows(server.url, "snapmig", "SELECT * FROM person", token)).rows.sort(),
        [[1, "Ann", 7], [2, "Bob", 1]],
      );
      // What the restart replayed: the log from the newest snapshot on. Count its :migrate records.
      const replayedMigrations = migrateOffsets().filter((offset) => offset >= newest!);
      assertEquals(replayedMigrations.length, 0, "no :migrate record after the snapshot");
    } finally {
      await server.close();
    }
  },
});
