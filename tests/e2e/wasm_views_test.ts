/**
 * Views of a WebAssembly module through the official spacetimedb SDK (2.8.3): bindings are
 * generated from the binary (tests/fixtures/wasm/bank.c built with -DWITH_VIEWS), the module is
 * published with `--bin-path`, and a client in its own `deno` process subscribes to an
 * anonymous view (big_accounts: balance at least 1000) and a per-sender view
 * (my_connections: the caller's own connections rows) with two identities. It sees the
 * anonymous view gain a row after a deposit, each identity sees only its own connection in the
 * per-sender view, and that view empty after a reducer clears the table. A module declaring a
 * view whose export is missing is refused at publish.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { captureIo, runCli } from "../../cli/mod.ts";
import { startTestServer } from "../support/server.ts";
import { wasmFixture } from "../support/wasm_fixtures.ts";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLIENT_TIMEOUT_MS = 120_000;

const CLIENT = `
import { DbConnection } from "./bindings/index";

interface Client {
  conn: DbConnection;
  identity: string;
}

function connect(): Promise<Client> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(Deno.args[0].replace(/^http/, "ws"))
      .withDatabaseName("wviews")
      .onConnect((conn, identity) => resolve({ conn, identity: identity.toHexString() }))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

function subscribe(conn: DbConnection, queries: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError(() => reject(new Error("subscription failed")))
      .subscribe(queries);
  });
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const QUERIES = [
  "SELECT * FROM accounts",
  "SELECT * FROM big_accounts",
  "SELECT * FROM my_connections",
];
const alice = await connect();
const bob = await connect();
await subscribe(alice.conn, QUERIES);
await subscribe(bob.conn, QUERIES);

const big = (c: Client) => [...c.conn.db.bigAccounts.iter()].map((row) => row.name).sort();
const mine = (c: Client) =>
  [...c.conn.db.myConnections.iter()].map((row) => row.identity.toHexString());

// The connect reducer inserted one connections row per client before it subscribed.
await until(() => mine(alice).length === 1 && mine(bob).length === 1, "the own connection rows");
const before = {
  big: big(alice),
  aliceOwn: mine(alice).every((id) => id === alice.identity),
  bobOwn: mine(bob).every((id) => id === bob.identity),
};

// The anonymous view after reducer calls: a small account is not in it, a deposit brings it in.
const grown = new Promise<string>((resolve) => {
  bob.conn.db.bigAccounts.onInsert((_ctx, row) => resolve(row.name));
});
await alice.conn.reducers.openAccount({ name: "small", balance: 5n });
await until(
  () => [...alice.conn.db.accounts.iter()].some((row) => row.name === "small"),
  "the small account",
);
const bigAfterOpen = big(alice);
const small = [...alice.conn.db.accounts.iter()].find((row) => row.name === "small")!;
await alice.conn.reducers.deposit({ id: small.id, amount: 2000n });
const inserted = await grown;
await until(() => big(alice).length === 2, "alice's big_accounts to grow");

// The per-sender view after a reducer call: clearing the table empties both identities' views.
const emptied = new Promise<string>((resolve) => {
  alice.conn.db.myConnections.onDelete((_ctx, row) => resolve(row.identity.toHexString()));
});
await bob.conn.reducers.clearConnections({});
const deletedFor = await emptied;
await until(() => mine(alice).length === 0 && mine(bob).length === 0, "the views to empty");

console.log(JSON.stringify({
  before,
  bigAfterOpen,
  inserted,
  bigAfterDeposit: big(alice),
  deletedForAlice: deletedFor === alice.identity,
}));
alice.conn.disconnect();
bob.conn.disconnect();
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
  name: "a wasm module's anonymous and per-sender views through the official SDK",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-wasm-views-" });
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli(["--config-path", join(dir, "cli.json"), ...args], { io });
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    try {
      const wasm = join(dir, "bank.wasm");
      await Deno.writeFile(wasm, await wasmFixture("bank", { defines: ["WITH_VIEWS"] }));
      const generated = await cli("generate", "-l", "ts", "-o", join(dir, "bindings"), "-b", wasm);
      assertEquals(generated.code, 0, generated.stderr);
      const published = await cli("publish", "wviews", "--bin-path", wasm, "-s", server.url);
      assertEquals(published.code, 0, published.stderr);

      const result = await runClient(dir, server.url);
      assertEquals(result, {
        before: { big: ["reserve"], aliceOwn: true, bobOwn: true },
        bigAfterOpen: ["reserve"],
        inserted: "small",
        bigAfterDeposit: ["reserve", "small"],
        deletedForAlice: true,
      });

      // A module declaring a per-sender view without exporting __call_view__ is refused at
      // publish, naming the view.
      const refused = await fetch(`${server.url}/v1/database/wviews-bad?host_type=Wasm`, {
        method: "PUT",
        body: await wasmFixture("bank", {
          defines: ["WITH_VIEWS", "VIEWS_NO_SENDER_EXPORT"],
        }) as Uint8Array<ArrayBuffer>,
      });
      const refusal = await refused.text();
      assertEquals(refused.status, 400, refusal);
      assertMatch(
        refusal,
        /declares the per-sender view my_connections but does not export __call_view__/,
      );
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
