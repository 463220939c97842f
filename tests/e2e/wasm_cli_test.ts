/**
 * `lightcone publish` of a prebuilt WebAssembly module (tests/fixtures/wasm/bank.c): with
 * `--bin-path`, and from spacetime.json's `wasm-file`; `build`, `dev` (refused) and `generate`
 * (from the wasm file) on such a project; a wasm file given as a JS bundle, or with a foreign
 * header, is refused with the reason.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { captureIo, runCli } from "../../cli/mod.ts";
import { startTestServer } from "../support/server.ts";
import { wasmFixture } from "../support/wasm_fixtures.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function assertIncludes(text: string, part: string): void {
  assert(text.includes(part), `expected to find ${JSON.stringify(part)} in:\n${text}`);
}

async function hostType(url: string, name: string): Promise<unknown> {
  const response = await fetch(`${url}/v1/database/${name}`);
  assertEquals(response.status, 200);
  return (await response.json()).host_type;
}

Deno.test({
  name: "publish --bin-path creates and updates a database from a wasm module",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-wasm-cli-" });
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli(["--config-path", join(dir, "cli.json"), ...args], { io });
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    try {
      const wasm = join(dir, "bank.wasm");
      await Deno.writeFile(wasm, await wasmFixture("bank"));

      const created = await cli("publish", "wcli", "--bin-path", wasm, "-s", server.url);
      assertEquals(created.code, 0, created.stderr);
      assertIncludes(created.stderr, `(WASM) Skipping build. Instead we are publishing ${wasm}\n`);
      assert(
        /^Created new database with name: wcli, identity: [0-9a-f]{64}\n$/.test(created.stdout),
        created.stdout,
      );
      assertEquals(await hostType(server.url, "wcli"), { Wasm: [] });

      const opened = await cli("call", "wcli", "open_account", "alice", "10", "-s", server.url);
      assertEquals(opened.code, 0, opened.stderr);
      const rows = await cli("sql", "wcli", "SELECT name, balance FROM accounts", "-s", server.url);
      assertEquals(rows.code, 0, rows.stderr);
      assertIncludes(rows.stdout, "alice");
      assertIncludes(rows.stdout, "reserve");

      // An update goes through pre_publish (host_type=Wasm) and keeps the data.
      const updated = await cli("publish", "wcli", "-b", wasm, "-s", server.url);
      assertEquals(updated.code, 0, updated.stderr);
      assertIncludes(updated.stderr, "Checking for breaking changes...\n");
      assert(updated.stdout.startsWith("Updated database with name: wcli, identity: "));
      const after = await cli("sql", "wcli", "SELECT name FROM accounts", "-s", server.url);
      assertIncludes(after.stdout, "alice");

      // A wasm binary is not a JS bundle.
      const asJs = await cli("publish", "wjs", "--js-path", wasm, "-s", server.url);
      assertEquals(asJs.code, 1);
      assertIncludes(asJs.stderr, `'${wasm}' is a WebAssembly module, not a JS bundle`);
      assertIncludes(asJs.stderr, "--bin-path");
      const both = await cli("publish", "wjs", "-j", wasm, "-b", wasm, "-s", server.url);
      assertEquals(both.code, 1);
      assertIncludes(both.stderr, "--js-path cannot be used together with --bin-path");

      // The magic number of a wasm binary with a version this host does not know.
      const future = join(dir, "future.wasm");
      await Deno.writeFile(future, new Uint8Array([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]));
      const refused = await cli("publish", "wfuture", "-b", future, "-s", server.url);
      assertEquals(refused.code, 1);
      assertIncludes(refused.stderr, "starts like a WebAssembly module but is not a version 1");
      for (const name of ["wjs", "wfuture"]) {
        assertEquals((await fetch(`${server.url}/v1/database/${name}`)).status, 404);
      }
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "spacetime.json's wasm-file is what publish uploads; build checks it; dev refuses it; generate reads it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-wasm-project-" });
    const lightcone = async (...args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
        cwd: dir,
        env: { LIGHTCONE_CLI_CONFIG: join(dir, "cli.json"), NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: output.code,
        stdout: new TextDecoder().decode(output.stdout),
        stderr: new TextDecoder().decode(output.stderr),
      };
    };
    try {
      await Deno.mkdir(join(dir, "target"));
      await Deno.writeFile(join(dir, "target", "bank.wasm"), await wasmFixture("bank"));
      await Deno.writeTextFile(
        join(dir, "spacetime.json"),
        JSON.stringify({
          database: "wproject",
          server: server.url,
          "wasm-file": "target/bank.wasm",
        }),
      );
      const wasm = join(dir, "target", "bank.wasm");

      const built = await lightcone("build");
      assertEquals(built.code, 0, built.stderr);
      assertIncludes(built.stderr, `prebuilt WebAssembly module ${wasm} (`);

      const published = await lightcone("publish");
      assertEquals(published.code, 0, published.stderr);
      assertIncludes(published.stderr, `Publishing module ${wasm} to database 'wproject'`);
      assertIncludes(published.stderr, `(WASM) Skipping build. Instead we are publishing ${wasm}`);
      assertIncludes(published.stdout, "Created new database with name: wproject");
      assertEquals(await hostType(server.url, "wproject"), { Wasm: [] });
      const deposit = await lightcone("call", "deposit", "1", "5");
      assertEquals(deposit.code, 0, deposit.stderr);

      const dev = await lightcone("dev");
      assertEquals(dev.code, 1, dev.stderr);
      assertIncludes(dev.stderr, `spacetime.json names a prebuilt module (${wasm})`);

      // generate reads the module's definition from the wasm file itself (no database).
      const generated = await lightcone("generate", "-l", "ts", "-o", "bindings", "-y");
      assertEquals(generated.code, 0, generated.stderr);
      assertIncludes(
        generated.stderr,
        `Skipping build. Instead we are inspecting the WebAssembly module ${wasm}`,
      );
      const index = await Deno.readTextFile(join(dir, "bindings", "index.ts"));
      assertIncludes(index, "name: 'accounts'");
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
