/**
 * What the shared engine runs for wasm modules as for JS ones, with the C fixture built with
 * -DENGINE_PATHS (tests/fixtures/wasm/bank.c): a schedule table whose row fires its reducer
 * with the row as the argument; a row-level security filter from RawModuleDef's
 * RowLevelSecurity section; the `_initialize` export, called before the preinits.
 */
import { deepStrictEqual as assertEquals, strictEqual } from "node:assert/strict";
import { call, startTestServer } from "../support/server.ts";
import { wasmFixture } from "../support/wasm_fixtures.ts";
import { waitUntil } from "../support/wait.ts";

async function publishWasm(url: string, name: string): Promise<string> {
  const response = await fetch(`${url}/v1/database/${name}?host_type=Wasm`, {
    method: "PUT",
    body: await wasmFixture("bank", { defines: ["ENGINE_PATHS"] }) as Uint8Array<ArrayBuffer>,
  });
  const text = await response.text();
  strictEqual(response.status, 200, text);
  return response.headers.get("spacetime-identity-token")!;
}

async function sql(url: string, database: string, token: string, query: string) {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: query,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  strictEqual(response.status, 200, text);
  return (JSON.parse(text) as { rows: unknown[][] }[])[0].rows;
}

async function logs(url: string, database: string, token: string): Promise<string> {
  const response = await fetch(`${url}/v1/database/${database}/logs`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  strictEqual(response.status, 200, text);
  return text;
}

Deno.test({
  name: "a wasm module's schedule row fires its reducer with the row; _initialize runs first",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const token = await publishWasm(server.url, "wsched");
      // One row for an hour from now (it stays in its table), one for 200 ms from now.
      const far = await call(server.url, "wsched", "schedule_tick", ["far", 3_600_000_000]);
      strictEqual(far.status, 200, far.text);
      const scheduled = await call(server.url, "wsched", "schedule_tick", ["later", 200_000]);
      strictEqual(scheduled.status, 200, scheduled.text);
      // tick(row) opens an account named by the row's note, its balance the row's id.
      await waitUntil(
        async () =>
          (await sql(server.url, "wsched", token, "SELECT * FROM accounts WHERE name = 'later'"))
            .length === 1,
        "the scheduled reducer to run",
      );
      assertEquals(
        await sql(
          server.url,
          "wsched",
          token,
          "SELECT name, balance FROM accounts WHERE name = 'later'",
        ),
        [["later", 2]],
      );
      // A one-shot row is deleted once its reducer ran; the other one waits for its time.
      await waitUntil(
        async () => (await sql(server.url, "wsched", token, "SELECT * FROM ticks")).length === 1,
        "the one-shot schedule row to be deleted",
      );
      assertEquals(await sql(server.url, "wsched", token, "SELECT scheduled_id, note FROM ticks"), [
        [1, "far"],
      ]);
      assertEquals(
        await sql(server.url, "wsched", token, "SELECT * FROM accounts WHERE name = 'far'"),
        [],
      );

      // _initialize set 100 before __preinit__10_base added 20; doubled, plus one.
      const state = await call(server.url, "wsched", "setup_state", []);
      strictEqual(state.status, 200, state.text);
      await waitUntil(
        async () => (await logs(server.url, "wsched", token)).includes("setup state 241"),
        "the setup state in the module log",
      );
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a wasm module's row-level security filter shows each caller only its own rows",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const owner = await publishWasm(server.url, "wrls");
      const users: { identity: string; token: string }[] = [];
      for (const text of ["alice's", "bob's"]) {
        const issued = await (await fetch(`${server.url}/v1/identity`, { method: "POST" })).json();
        users.push(issued);
        const added = await call(server.url, "wrls", "add_secret", [text], issued.token);
        strictEqual(added.status, 200, added.text);
      }
      const [alice, bob] = users;
      const own = (rows: unknown[][]) => rows.map((row) => [row[1], row[2]]);
      assertEquals(own(await sql(server.url, "wrls", alice.token, "SELECT * FROM secrets")), [
        [[`0x${alice.identity}`], "alice's"],
      ]);
      assertEquals(own(await sql(server.url, "wrls", bob.token, "SELECT * FROM secrets")), [
        [[`0x${bob.identity}`], "bob's"],
      ]);
      // The owner bypasses row-level security.
      strictEqual((await sql(server.url, "wrls", owner, "SELECT * FROM secrets")).length, 2);
    } finally {
      await server.close();
    }
  },
});
