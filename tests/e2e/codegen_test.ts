/**
 * Generated bindings against a real server, as a user would use them: `generate
 * --database` reads the schema of a published chat database (and gives the same files
 * as generating from the bundle), then a client written against those bindings and the
 * official spacetimedb@2.8.3 SDK is type-checked and run in its own `deno` process: it
 * connects, subscribes through the generated query builders, calls reducers and
 * receives the rows. A second client does the same with the every-type module: every
 * primitive at its extremes, special types, enums, options, arrays, nested products and
 * procedures make the round trip client -> module -> client. A third reaches a mounted
 * submodule's table, reducer and procedure through its namespace.
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

const EVERYTHING_CLIENT = `
import { ConnectionId, TimeDuration, Uuid } from "spacetimedb";
import { DbConnection, tables } from "./bindings/index";
import type {
  BoundingBox,
  EveryPrimitive,
  GeometryShape,
  HttpRequest2,
  Player2StatsExplicit,
  Shapes,
  SnakeCaseTable,
  SpecialTypes,
} from "./bindings/types";

const conn = await new Promise<DbConnection>((resolve, reject) => {
  DbConnection.builder()
    .withUri(Deno.args[0].replace(/^http/, "ws"))
    .withDatabaseName("everything")
    .onConnect((c) => resolve(c))
    .onConnectError((_ctx, error) => reject(error))
    .build();
});
await new Promise<void>((resolve, reject) => {
  conn.subscriptionBuilder()
    .onApplied(() => resolve())
    .onError(() => reject(new Error("subscription failed")))
    .subscribe([
      tables.everyPrimitive.toSql(),
      tables.specialTypes.toSql(),
      tables.shapes.toSql(),
      tables.player2Stats.toSql(),
      tables.snakeCaseTable.toSql(),
    ]);
});
function first<T>(register: (callback: (row: T) => void) => void): Promise<T> {
  return new Promise((resolve) => register(resolve));
}

const primitive = first<EveryPrimitive>((cb) => conn.db.everyPrimitive.onInsert((_ctx, row) => cb(row)));
await conn.reducers.addEveryPrimitive({
  aBool: true,
  oneI8: -128,
  oneU8: 255,
  oneI16: -32768,
  oneU16: 65535,
  oneI32: -2147483648,
  oneU32: 4294967295,
  oneI64: -(2n ** 63n),
  oneU64: 2n ** 64n - 1n,
  oneI128: -(2n ** 127n),
  oneU128: 2n ** 128n - 1n,
  oneI256: -(2n ** 255n),
  oneU256: 2n ** 256n - 1n,
  oneF32: 1.5,
  oneF64: -0.25,
  someText: "h\u00e9llo \u2713",
  rawBytes: new Uint8Array([0, 1, 255]),
});

const special = first<SpecialTypes>((cb) => conn.db.specialTypes.onInsert((_ctx, row) => cb(row)));
const uid = Uuid.parse("0000647e-5180-7000-8000-000200000000");
await conn.reducers.addSpecial({
  conn: conn.connectionId,
  howLong: TimeDuration.fromMillis(1500),
  uid,
});

const box: BoundingBox = {
  topLeft: { x: 0.5, y: -1 },
  bottomRight: { x: 2, y: 3 },
  center: undefined,
};
const shape: GeometryShape = { tag: "Polygon", value: [{ x: 1, y: 2 }, { x: 3, y: 4 }] };
const shapeRow = first<Shapes>((cb) => conn.db.shapes.onInsert((_ctx, row) => cb(row)));
await conn.reducers.addShape({ shapeId: 7, color: { tag: "DarkBlue" }, shape, box, label: "seven" });

const request: HttpRequest2 = {
  userId: 42,
  apiUrl: "https://example.invalid/x",
  retry3Times: false,
  v2Field: ["a", undefined, "c"],
};
const stats = first<Player2StatsExplicit>((cb) => conn.db.player2Stats.onInsert((_ctx, row) => cb(row)));
await conn.reducers.setHpValue2({ player2Id: 9, hpValue: -5, request });

const snake = first<SnakeCaseTable>((cb) => conn.db.snakeCaseTable.onInsert((_ctx, row) => cb(row)));
await conn.reducers.doSnakeThing({ someArg: 2n ** 100n });
await conn.reducers.explicitReducerName({ value: -(2n ** 200n) });
await conn.reducers.noArgs({});

const p = await primitive;
const s = await special;
const shaped = await shapeRow;
const st = await stats;
const sn = await snake;
const sum = await conn.procedures.addNumbers({ a: 4000000000, b: 4000000000 });
const green = await conn.procedures.findBox({ color: { tag: "Green" } });
const red = await conn.procedures.findBox({ color: { tag: "Red" } });

const replacer = (_key: string, value: unknown) =>
  typeof value === "bigint" ? value.toString() : value instanceof Uint8Array ? [...value] : value;
console.log(JSON.stringify({
  primitive: { ...p, id: undefined },
  special: {
    whoIsMe: s.who.isEqual(conn.identity!),
    connIsMine: s.conn.isEqual(conn.connectionId),
    whenIsRecent: Math.abs(s.when.toDate().getTime() - Date.now()) < 60_000,
    howLongMicros: s.howLong.micros,
    uid: s.uid.toString(),
    maybeWhoIsMe: s.maybeWho?.isEqual(conn.identity!) ?? false,
  },
  shape: shaped,
  stats: st,
  snake: sn,
  procedures: { sum, green, red: red === undefined ? "undefined" : red },
  byIndex: conn.db.player2Stats.player2Id.find(9)?.hpValue,
  viaAlias: [...conn.db.snake_case_table.iter()].map((row) => row.anotherOne2),
  aliasSql: tables.snake_case_table.toSql() === tables.snakeCaseTable.toSql(),
}, replacer));
conn.disconnect();
Deno.exit(0);
`;

async function runClient(dir: string, source: string, url: string): Promise<unknown> {
  const path = join(dir, "client.ts");
  await Deno.writeTextFile(path, source);
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

      const result = await runClient(dir, CLIENT, server.url) as { id: string };
      assertEquals(result, {
        text: "hello from generated bindings",
        id: result.id,
        senderIsMe: true,
        myName: "Generated",
        online: true,
      });
      assert(/^\d+$/.test(result.id), result.id);
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "every type round-trips through generated bindings, the SDK and the server",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-codegen-e2e-" });
    try {
      const bundle = await fixtureBundle("codegen_everything");
      await publish(server.url, "everything", bundle);
      const bundlePath = join(dir, "bundle.js");
      await Deno.writeTextFile(bundlePath, bundle);
      const io = captureIo();
      const code = await runCli([
        "--config-path",
        join(dir, "cli.json"),
        "generate",
        "-l",
        "ts",
        "-o",
        join(dir, "bindings"),
        "-b",
        bundlePath,
      ], { io });
      assertEquals(code, 0, io.stderr);
      const result = await runClient(dir, EVERYTHING_CLIENT, server.url);
      assertEquals(result, {
        primitive: {
          aBool: true,
          oneI8: -128,
          oneU8: 255,
          oneI16: -32768,
          oneU16: 65535,
          oneI32: -2147483648,
          oneU32: 4294967295,
          oneI64: (-(2n ** 63n)).toString(),
          oneU64: (2n ** 64n - 1n).toString(),
          oneI128: (-(2n ** 127n)).toString(),
          oneU128: (2n ** 128n - 1n).toString(),
          oneI256: (-(2n ** 255n)).toString(),
          oneU256: (2n ** 256n - 1n).toString(),
          oneF32: 1.5,
          oneF64: -0.25,
          someText: "h\u00e9llo \u2713",
          rawBytes: [0, 1, 255],
        },
        special: {
          whoIsMe: true,
          connIsMine: true,
          whenIsRecent: true,
          howLongMicros: "1500000",
          uid: "0000647e-5180-7000-8000-000200000000",
          maybeWhoIsMe: true,
        },
        shape: {
          shapeId: 7,
          layer2: 0,
          color: { tag: "DarkBlue", value: {} },
          shape: { tag: "Polygon", value: [{ x: 1, y: 2 }, { x: 3, y: 4 }] },
          box: { topLeft: { x: 0.5, y: -1 }, bottomRight: { x: 2, y: 3 } },
          history: [],
          tags: [],
          nestedLists: [],
          label: "seven",
        },
        stats: {
          player2Id: 9,
          hpValue: -5,
          request: {
            userId: 42,
            apiUrl: "https://example.invalid/x",
            retry3Times: false,
            v2Field: ["a", null, "c"],
          },
        },
        snake: { someColumn: (2n ** 100n).toString(), anotherOne2: 7 },
        procedures: {
          sum: "8000000000",
          green: { topLeft: { x: 1, y: 2 }, bottomRight: { x: 3, y: 4 }, center: { x: 2, y: 3 } },
          red: "undefined",
        },
        byIndex: -5,
        viaAlias: [7],
        aliasSql: true,
      });
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

const SUBMODULE_CLIENT = `
import { DbConnection, tables } from "./bindings/index";
import type { Tag } from "./bindings/lib/types";

const conn = await new Promise<DbConnection>((resolve, reject) => {
  DbConnection.builder()
    .withUri(Deno.args[0].replace(/^http/, "ws"))
    .withDatabaseName("submodule")
    .onConnect((c) => resolve(c))
    .onConnectError((_ctx, error) => reject(error))
    .build();
});
await new Promise<void>((resolve, reject) => {
  conn.subscriptionBuilder()
    .onApplied(() => resolve())
    .onError(() => reject(new Error("subscription failed")))
    .subscribe([tables.notes.toSql(), tables.lib.libData.toSql()]);
});
const inserted = new Promise<{ value: string; tag: Tag }>((resolve) => {
  conn.db["lib.lib_data"].onInsert((_ctx, row) => resolve(row));
});
const note = new Promise<string>((resolve) => {
  conn.db.notes.onInsert((_ctx, row) => resolve(row.text));
});
await conn.reducers["lib.libInsert"]({ value: "from the submodule", tag: { tag: "Colored", value: "red" } });
await conn.reducers.addNote({ id: 1, text: "from the root" });
const row = await inserted;
console.log(JSON.stringify({
  value: row.value,
  tag: row.tag,
  note: await note,
  count: (await conn.procedures["lib.libCount"]({})).toString(),
}));
conn.disconnect();
Deno.exit(0);
`;

Deno.test({
  name:
    "a submodule's bindings (from the running database) reach its tables, reducers and procedures",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    const dir = await Deno.makeTempDir({ prefix: "lightcone-codegen-e2e-" });
    try {
      await publish(server.url, "submodule", await fixtureBundle("codegen_submodule"));
      const bindings = join(dir, "bindings");
      const io = captureIo();
      const code = await runCli([
        "--config-path",
        join(dir, "cli.json"),
        "generate",
        "-l",
        "ts",
        "-o",
        bindings,
        "--database",
        "submodule",
        "-s",
        server.url,
      ], { io });
      assertEquals(code, 0, io.stderr);
      const golden = join(REPO_ROOT, "tests", "fixtures", "codegen", "codegen_submodule");
      assertEquals(await readTree(bindings), await readTree(golden));
      const result = await runClient(dir, SUBMODULE_CLIENT, server.url);
      assertEquals(result, {
        value: "from the submodule",
        tag: { tag: "Colored", value: "red" },
        note: "from the root",
        count: "1",
      });
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
