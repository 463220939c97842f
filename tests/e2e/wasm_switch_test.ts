/**
 * A database switching between a JavaScript module and a WebAssembly module on update
 * (`publish` of one over the other). The migration rules decide, as for any update: the JS
 * fixture wasm_bank_js declares exactly the tables of tests/fixtures/wasm/bank.c, so the switch
 * is allowed both ways with every row (and the sequences' state) kept; control.json records the
 * new host type (a stale entry is corrected from the module file at start) and a restart loads
 * the module of that type. A module whose tables are
 * incompatible is refused in either direction with the migration errors of any update, and the
 * database keeps its module, host type and rows.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { captureIo, runCli } from "../../cli/mod.ts";
import { fixtureBundle, startTestServer, type TestServer } from "../support/server.ts";
import { wasmFixture } from "../support/wasm_fixtures.ts";
import { waitUntil } from "../support/wait.ts";

function assertIncludes(text: string, part: string): void {
  assert(text.includes(part), `expected to find ${JSON.stringify(part)} in:\n${text}`);
}

async function hostType(url: string, name: string): Promise<unknown> {
  const response = await fetch(`${url}/v1/database/${name}`);
  assertEquals(response.status, 200);
  return (await response.json()).host_type;
}

async function controlHostTypes(dataDir: string): Promise<string[]> {
  const control = JSON.parse(await Deno.readTextFile(join(dataDir, "control.json")));
  assertEquals(control.version, 2);
  return control.databases.map((d: { names: string[]; hostType: string }) =>
    `${d.names[0]}:${d.hostType}`
  ).sort();
}

Deno.test({
  name: "a database switches from a JS module to a wasm module and back, keeping its rows",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let server: TestServer = await startTestServer();
    const dataDir = server.dataDir;
    // Restarts reuse the port: the CLI keeps its identity per server URL.
    const port = Number(new URL(server.url).port);
    const dir = await Deno.makeTempDir({ prefix: "lightcone-wasm-switch-" });
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli(["--config-path", join(dir, "cli.json"), ...args], { io });
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    const ok = async (...args: string[]) => {
      const run = await cli(...args, "-s", server.url);
      assertEquals(run.code, 0, `${args.join(" ")}: ${run.stderr}`);
      return run.stdout;
    };
    const accounts = async () => {
      const text = await ok("sql", "switch", "SELECT id, name, balance FROM accounts");
      return text.split("\n").filter((line) => /^\s*\d/.test(line)).map((line) =>
        line.split("|").map((cell) => cell.trim().replace(/^"|"$/g, "")).join(" ")
      );
    };
    try {
      const js = join(dir, "bank.js");
      await Deno.writeTextFile(js, await fixtureBundle("wasm_bank_js"));
      const wasm = join(dir, "bank.wasm");
      await Deno.writeFile(wasm, await wasmFixture("bank"));

      assertIncludes(await ok("publish", "switch", "--js-path", js), "Created new database");
      assertEquals(await hostType(server.url, "switch"), { Js: [] });
      await ok("call", "switch", "open_account", "alice", "10");
      assertEquals(await accounts(), ["1 reserve 1000000", "2 alice 10"]);

      // JS -> Wasm: same tables, so the update keeps every row.
      const toWasm = await cli("publish", "switch", "--bin-path", wasm, "-s", server.url);
      assertEquals(toWasm.code, 0, toWasm.stderr);
      assertIncludes(toWasm.stdout, "Updated database with name: switch");
      // pre_publish's plan says so.
      assertIncludes(
        toWasm.stderr,
        "The module changes from JavaScript to WebAssembly (host type Js -> Wasm); the data is kept.",
      );
      assertEquals(await hostType(server.url, "switch"), { Wasm: [] });
      assertEquals(await controlHostTypes(dataDir), ["switch:Wasm"]);
      // The C module runs now: its reducers on the JS module's rows; the id sequence goes on.
      await ok("call", "switch", "deposit", "2", "5");
      await ok("call", "switch", "open_account", "bob", "7");
      assertEquals(await accounts(), ["1 reserve 1000000", "2 alice 15", "3 bob 7"]);
      const jsOnly = await cli("call", "switch", "js_only", "x", "-s", server.url);
      assertEquals(jsOnly.code, 1, jsOnly.stderr);

      // A restart loads the wasm module. control.json is made to say Js, as a switch stopped
      // between writing the module file and control.json would leave it: the file wins.
      await server.close({ keepData: true });
      const controlPath = join(dataDir, "control.json");
      const control = JSON.parse(await Deno.readTextFile(controlPath));
      control.databases[0].hostType = "Js";
      await Deno.writeTextFile(controlPath, JSON.stringify(control));
      server = await startTestServer({ dataDir, port });
      assertEquals(await hostType(server.url, "switch"), { Wasm: [] });
      await waitUntil(
        async () => (await controlHostTypes(dataDir))[0] === "switch:Wasm",
        "control.json to be corrected",
      );
      await ok("call", "switch", "count_rich", "10");
      assertEquals(await accounts(), ["1 reserve 1000000", "2 alice 15", "3 bob 7"]);

      // Wasm -> JS: back, rows kept again.
      const toJs = await cli("publish", "switch", "--js-path", js, "-s", server.url);
      assertEquals(toJs.code, 0, toJs.stderr);
      assertIncludes(toJs.stdout, "Updated database");
      assertIncludes(toJs.stderr, "(host type Wasm -> Js)");
      assertEquals(await hostType(server.url, "switch"), { Js: [] });
      assertEquals(await controlHostTypes(dataDir), ["switch:Js"]);
      await ok("call", "switch", "js_only", "carol");
      assertEquals(await accounts(), [
        "1 reserve 1000000",
        "2 alice 15",
        "3 bob 7",
        "4 carol 0",
      ]);
      await server.close({ keepData: true });
      server = await startTestServer({ dataDir, port });
      assertEquals(await hostType(server.url, "switch"), { Js: [] });
      await ok("call", "switch", "js_only", "dave");
      const count = await cli("call", "switch", "count_rich", "10", "-s", server.url);
      assertEquals(count.code, 1, "count_rich is the C module's only");
      assertEquals((await accounts()).length, 5);
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "a switch between JS and wasm modules with incompatible tables is refused both ways",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-wasm-switch-" });
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli(
        ["--config-path", join(dir, "cli.json"), ...args, "-s", server.url],
        { io },
      );
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    try {
      // The keynote bank: accounts(id u32 primary key, balance i64), ledger(...).
      const js = join(dir, "keynote.js");
      await Deno.writeTextFile(js, await fixtureBundle("bank"));
      const wasm = join(dir, "bank.wasm");
      await Deno.writeFile(wasm, await wasmFixture("bank"));

      assertEquals((await cli("publish", "js-first", "--js-path", js)).code, 0);
      assertEquals((await cli("call", "js-first", "seed", "1", "2", "50")).code, 0);
      const toWasm = await cli("publish", "js-first", "--bin-path", wasm, "-y");
      assertEquals(toWasm.code, 1, toWasm.stdout);
      assertIncludes(toWasm.stderr, "Errors occurred:");
      assertIncludes(
        toWasm.stderr,
        "Changing the type of column id in table accounts from U32 to U64",
      );
      assertEquals(await hostType(server.url, "js-first"), { Js: [] });
      const seeded = await cli("sql", "js-first", "SELECT * FROM accounts");
      assertIncludes(seeded.stdout, "50");
      assertEquals((await cli("call", "js-first", "transfer", "1", "2", "5")).code, 0);

      assertEquals((await cli("publish", "wasm-first", "--bin-path", wasm)).code, 0);
      const toJs = await cli("publish", "wasm-first", "--js-path", js, "-y");
      assertEquals(toJs.code, 1, toJs.stdout);
      assertIncludes(toJs.stderr, "Errors occurred:");
      assertEquals(await hostType(server.url, "wasm-first"), { Wasm: [] });
      assertEquals((await cli("call", "wasm-first", "open_account", "erin", "3")).code, 0);
      assertIncludes((await cli("sql", "wasm-first", "SELECT name FROM accounts")).stdout, "erin");
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
