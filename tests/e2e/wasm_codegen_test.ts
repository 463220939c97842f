/**
 * Bindings generated from a WebAssembly module's binary (`generate --bin-path bank.wasm`, no
 * database involved) drive the official spacetimedb SDK against the server running that module:
 * a client written against them is type-checked and run in its own `deno` process; it subscribes
 * through the generated query builder, calls a reducer with the generated argument types and
 * receives the row the C module inserted.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { captureIo, runCli } from "../../cli/mod.ts";
import { startTestServer } from "../support/server.ts";
import { wasmFixture } from "../support/wasm_fixtures.ts";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLIENT_TIMEOUT_MS = 120_000;

const CLIENT = `
import { DbConnection, tables, type EventContext } from "./bindings/index";
import type { Account } from "./bindings/types";

const conn = await new Promise<DbConnection>((resolve, reject) => {
  DbConnection.builder()
    .withUri(Deno.args[0].replace(/^http/, "ws"))
    .withDatabaseName("wgen")
    .onConnect((c) => resolve(c))
    .onConnectError((_ctx, error) => reject(error))
    .build();
});
await new Promise<void>((resolve, reject) => {
  conn.subscriptionBuilder()
    .onApplied(() => resolve())
    .onError(() => reject(new Error("subscription failed")))
    .subscribe([tables.accounts.toSql()]);
});
const before = [...conn.db.accounts.iter()].map((row: Account) => row.name).sort();
const inserted = new Promise<Account>((resolve) => {
  conn.db.accounts.onInsert((_ctx: EventContext, row: Account) => {
    if (row.name === "generated") resolve(row);
  });
});
await conn.reducers.openAccount({ name: "generated", balance: 42n });
const row = await inserted;
console.log(JSON.stringify({
  before,
  name: row.name,
  balance: row.balance.toString(),
  byId: conn.db.accounts.id.find(row.id)?.name,
}));
conn.disconnect();
Deno.exit(0);
`;

async function runClient(dir: string, url: string): Promise<unknown> {
  const path = join(dir, "client.ts");
  await Deno.writeTextFile(path, CLIENT);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--check",
      "--quiet",
      "--sloppy-imports",
      "--config",
      join(REPO_ROOT, "deno.json"),
      "--allow-net=127.0.0.1",
      path,
      url,
    ],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert(output.success, `client failed (${output.code}): ${stderr}\n${stdout}`);
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

Deno.test({
  name: "bindings generated from a wasm binary drive the official SDK against that module",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-wasm-codegen-" });
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli(["--config-path", join(dir, "cli.json"), ...args], { io });
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    try {
      const wasm = join(dir, "bank.wasm");
      await Deno.writeFile(wasm, await wasmFixture("bank"));
      const generated = await cli("generate", "-l", "ts", "-o", join(dir, "bindings"), "-b", wasm);
      assertEquals(generated.code, 0, generated.stderr);
      const published = await cli("publish", "wgen", "--bin-path", wasm, "-s", server.url);
      assertEquals(published.code, 0, published.stderr);

      const result = await runClient(dir, server.url);
      assertEquals(result, {
        before: ["reserve"],
        name: "generated",
        balance: "42",
        byId: "generated",
      });
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
