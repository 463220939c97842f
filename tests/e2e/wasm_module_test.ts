/**
 * A SpacetimeDB WebAssembly module (tests/fixtures/wasm/bank.c, compiled with clang) on the real
 * server: published through the route the `spacetime` CLI uses, driven by the official SDK
 * (subscribe, reducers, a failing reducer's message), its data replayed through the module's
 * schema after a restart; a reducer that loops forever and one that eats memory are stopped and
 * the database keeps serving; modules the host cannot run are refused at publish, by name.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  notStrictEqual,
  ok as assert,
  strictEqual,
} from "node:assert/strict";
import { connectWasmBank, type DbConnection } from "../fixtures/bindings/wasm_bank/index.ts";
import { call, startTestServer } from "../support/server.ts";
import { wasmFixture } from "../support/wasm_fixtures.ts";
import { waitUntil, within } from "../support/wait.ts";

interface Published {
  token: string;
  identity: string;
}

async function publishWasm(
  url: string,
  name: string,
  bytes: Uint8Array,
  query = "?host_type=Wasm",
): Promise<{ status: number; text: string; published?: Published }> {
  const response = await fetch(`${url}/v1/database/${name}${query}`, {
    method: "PUT",
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const text = await response.text();
  if (response.status !== 200) return { status: response.status, text };
  return {
    status: 200,
    text,
    published: {
      token: response.headers.get("spacetime-identity-token")!,
      identity: response.headers.get("spacetime-identity")!,
    },
  };
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

function subscribe(conn: DbConnection, queries: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(queries);
  });
}

function balances(conn: DbConnection): [bigint, string, bigint][] {
  return [...conn.db.accounts.iter()]
    .map((row) => [row.id, row.name, row.balance] as [bigint, string, bigint])
    .sort((a, b) => Number(a[0] - b[0]));
}

Deno.test({
  name: "a wasm module serves the official SDK and keeps its data across a restart",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const bytes = await wasmFixture("bank");
    let server = await startTestServer();
    const dataDir = server.dataDir;
    let conn: DbConnection | undefined;
    try {
      const published = await publishWasm(server.url, "wbank", bytes);
      strictEqual(published.status, 200, published.text);
      const owner = published.published!;
      const described = await fetch(`${server.url}/v1/database/wbank`);
      assertEquals((await described.json()).host_type, { Wasm: [] });

      conn = await within(connectWasmBank(server.url, "wbank"), "the SDK to connect");
      await within(subscribe(conn, ["SELECT * FROM accounts"]), "the subscription");
      // init ran at publish.
      assertEquals(balances(conn), [[1n, "reserve", 1_000_000n]]);

      await within(conn.reducers.openAccount({ name: "alice", balance: 100n }), "open_account");
      await within(conn.reducers.openAccount({ name: "bob", balance: 5n }), "open_account");
      await within(conn.reducers.transfer({ from: 2n, to: 3n, amount: 30n }), "transfer");
      await waitUntil(() => balances(conn!).length === 3 && balances(conn!)[2][2] === 35n, "rows");
      assertEquals(balances(conn), [
        [1n, "reserve", 1_000_000n],
        [2n, "alice", 70n],
        [3n, "bob", 35n],
      ]);

      // A failing reducer: the caller sees the module's message, nothing is committed.
      let failure: unknown;
      try {
        await within(conn.reducers.transfer({ from: 3n, to: 2n, amount: 1_000n }), "transfer");
      } catch (error) {
        failure = error;
      }
      assert(failure !== undefined, "the transfer over the balance must fail");
      assertMatch(String((failure as Error)?.message ?? failure), /insufficient funds/);
      const viaHttp = await call(server.url, "wbank", "transfer", [3, 2, 1000]);
      strictEqual(viaHttp.status, 530, viaHttp.text);
      strictEqual(viaHttp.text, "insufficient funds");
      assertEquals(
        await sql(server.url, "wbank", owner.token, "SELECT * FROM accounts WHERE id = 3"),
        [[3, "bob", 35]],
      );

      // client_connected stored the caller's identity (and its connection id and a timestamp).
      const connected = await sql(server.url, "wbank", owner.token, "SELECT * FROM connections");
      strictEqual(connected.length, 1);
      assertEquals(connected[0][1], [`0x${conn.identity!.toHexString()}`]);

      conn.disconnect();
      conn = undefined;
      // client_disconnected deletes the row.
      await waitUntil(
        async () =>
          (await sql(server.url, "wbank", owner.token, "SELECT * FROM connections")).length === 0,
        "client_disconnected to delete the connection's row",
      );

      await server.close({ keepData: true });
      // control.json records the host type; a file written before it did (version 1, "Js"
      // for every database) is read as it is: the module file tells.
      const controlPath = `${dataDir}/control.json`;
      const control = JSON.parse(await Deno.readTextFile(controlPath));
      strictEqual(control.version, 2);
      assertEquals(control.databases.map((d: { hostType: string }) => d.hostType), ["Wasm"]);
      control.version = 1;
      control.databases[0].hostType = "Js";
      await Deno.writeTextFile(controlPath, JSON.stringify(control));
      server = await startTestServer({ dataDir });
      assertEquals(
        (await (await fetch(`${server.url}/v1/database/wbank`)).json()).host_type,
        { Wasm: [] },
      );
      // The commit log replays through the wasm module's schema.
      assertEquals(await sql(server.url, "wbank", owner.token, "SELECT * FROM accounts"), [
        [1, "reserve", 1000000],
        [2, "alice", 70],
        [3, "bob", 35],
      ]);
      const deposit = await call(server.url, "wbank", "deposit", [2, 5]);
      strictEqual(deposit.status, 200, deposit.text);
      assertEquals(
        await sql(server.url, "wbank", owner.token, "SELECT * FROM accounts WHERE id = 2"),
        [[2, "alice", 75]],
      );

      // A republish of the module by its owner is an update that keeps the data.
      const republished = await fetch(`${server.url}/v1/database/wbank?host_type=Wasm`, {
        method: "PUT",
        body: bytes as Uint8Array<ArrayBuffer>,
        headers: { authorization: `Bearer ${owner.token}` },
      });
      const text = await republished.text();
      strictEqual(republished.status, 200, text);
      strictEqual(JSON.parse(text).Success.op, "updated");
      assertEquals(
        await sql(server.url, "wbank", owner.token, "SELECT * FROM accounts WHERE id = 2"),
        [[2, "alice", 75]],
      );
    } finally {
      conn?.disconnect();
      await server.close();
    }
  },
});

Deno.test({
  name: "a looping wasm reducer and a memory-hungry one are stopped; the database keeps serving",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ reducerBudgetMs: 500, databaseMemoryMb: 128 });
    try {
      const published = await publishWasm(server.url, "wlimits", await wasmFixture("bank"));
      strictEqual(published.status, 200, published.text);
      const token = published.published!.token;
      strictEqual((await call(server.url, "wlimits", "deposit", [1, 1])).status, 200);

      // Wasm loops have no deadline ticks: the process watchdog kills the database process
      // WATCHDOG_GRACE_MS past the call's deadline, and the database restarts from its log.
      const spin = await call(server.url, "wlimits", "spin", []);
      notStrictEqual(spin.status, 200);
      assertMatch(
        spin.text,
        /past its time budget of 500 ms, in WebAssembly code, which cannot be interrupted; the database process was stopped/,
      );
      await waitUntil(
        async () => (await call(server.url, "wlimits", "deposit", [1, 1])).status === 200,
        "the database to serve again after the looping reducer",
      );

      // (How many deposits the wait above made depends on when the restart finished.)
      const [[, , before]] = await sql(server.url, "wlimits", token, "SELECT * FROM accounts");
      // memory.grow fails at the cap (the database's memory budget); the module traps.
      const hog = await call(server.url, "wlimits", "hog", []);
      notStrictEqual(hog.status, 200);
      assertMatch(hog.text, /ran out of memory: the database's memory budget of 128 MiB/);
      const after = await call(server.url, "wlimits", "deposit", [1, 1]);
      strictEqual(after.status, 200, after.text);
      assertEquals(
        await sql(server.url, "wlimits", token, "SELECT * FROM accounts"),
        [[1, "reserve", (before as number) + 1]],
      );
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "wasm modules the host cannot run are refused at publish with the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ databaseMemoryMb: 128 });
    try {
      const unknown = await publishWasm(
        server.url,
        "wunknown",
        await wasmFixture("bank", { defines: ["UNKNOWN_IMPORT"] }),
      );
      strictEqual(unknown.status, 400, unknown.text);
      assertMatch(
        unknown.text,
        /imports "spacetime_10\.0"\."no_such_syscall", which this host does not provide/,
      );
      const tooBig = await publishWasm(
        server.url,
        "wbig",
        await wasmFixture("bank", { linkFlags: ["--max-memory=268435456"] }),
      );
      strictEqual(tooBig.status, 400, tooBig.text);
      assertMatch(tooBig.text, /declares a maximum of 4096 pages .* allows \(2048 pages/);
      const asJs = await publishWasm(server.url, "wjs", await wasmFixture("bank"), "?host_type=Js");
      strictEqual(asJs.status, 400, asJs.text);
      assertMatch(asJs.text, /WebAssembly binary but host_type=Js/);
      // None of them exists.
      for (const name of ["wunknown", "wbig", "wjs"]) {
        strictEqual((await fetch(`${server.url}/v1/database/${name}`)).status, 404);
      }
      // Without host_type (the CLI's default is Wasm) the magic number tells.
      const plain = await publishWasm(server.url, "wplain", await wasmFixture("bank"), "");
      strictEqual(plain.status, 200, plain.text);
    } finally {
      await server.close();
    }
  },
});
