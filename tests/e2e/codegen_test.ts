/**
 * Generated bindings against a real server, as a user would use them: `generate
 * --database` reads the schema of a published chat database (and gives the same files
 * as generating from the bundle), then a client written against those bindings and the
 * official spacetimedb@2.8.3 SDK is type-checked and run in its own `deno` process: it
 * connects, subscribes through the generated query builders, calls reducers and
 * receives the rows.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { captureIo, runCli } from "../../cli/mod.ts";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLIENT_TIMEOUT_MS = 120_000;

const CLIENT = `
import { DbConnection, tables, type EventContext } from "./bindings/index";
import type { Message } from "./bindings/types";

const conn = await new Promise<DbConnection>((resolve, reject) => {
  DbConnection.builder()
    .withUri(Deno.args[0].replace(/^http/, "ws"))
    .withDatabaseName("chat")
    .onConnect((c) => resolve(c))
    .onConnectError((_ctx, error) => reject(error))
    .build();
});
await new Promise<void>((resolve, reject) => {
  conn.subscriptionBuilder()
    .onApplied(() => resolve())
    .onError(() => reject(new Error("subscription failed")))
    .subscribe([tables.user.toSql(), tables.message.toSql()]);
});
const received = new Promise<Message>((resolve) => {
  conn.db.message.onInsert((_ctx: EventContext, row: Message) => resolve(row));
});
await conn.reducers.setName({ name: "Generated" });
await conn.reducers.sendMessage({ text: "hello from generated bindings" });
const message = await received;
const me = conn.db.user.identity.find(conn.identity!);
console.log(JSON.stringify({
  text: message.text,
  id: message.id.toString(),
  senderIsMe: message.sender.isEqual(conn.identity!),
  myName: me?.name,
  online: me?.online,
}));
conn.disconnect();
Deno.exit(0);
`;

async function readTree(dir: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) { for (const [k, v] of await readTree(dir, rel)) out.set(k, v); }
    else out.set(rel, await Deno.readTextFile(join(dir, rel)));
  }
  return out;
}

Deno.test({
  name: "bindings generated from a running database drive the official SDK against the server",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-codegen-e2e-" });
    try {
      await publish(server.url, "chat", await fixtureBundle("chat"));
      const bindings = join(dir, "bindings");
      const io = captureIo();
      const code = await runCli([
        "--config-path",
        join(dir, "cli.json"),
        "generate",
        "--lang",
        "typescript",
        "--out-dir",
        bindings,
        "--database",
        "chat",
        "--server",
        server.url,
      ], { io });
      assertEquals(code, 0, io.stderr);
      // The schema route loses nothing the bindings need: same files as from the bundle.
      const golden = await readTree(join(REPO_ROOT, "tests", "fixtures", "codegen", "chat"));
      assertEquals(await readTree(bindings), golden);

      await Deno.writeTextFile(join(dir, "client.ts"), CLIENT);
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--check",
          "--quiet",
          "--sloppy-imports",
          "--config",
          join(REPO_ROOT, "deno.json"),
          "--allow-net=127.0.0.1",
          join(dir, "client.ts"),
          server.url,
        ],
        cwd: REPO_ROOT,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert(output.success, `client failed (${output.code}): ${stderr}\n${stdout}`);
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assertEquals(result, {
        text: "hello from generated bindings",
        id: result.id,
        senderIsMe: true,
        myName: "Generated",
        online: true,
      });
      assert(/^\d+$/.test(result.id), stdout);
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
