/**
 * The subscriber side of bench/subscription_scale.ts: a child process holding many distinct
 * subscriptions on the keynote database over the official SDK, so that the load process and
 * the server are measured apart from the clients that receive the updates.
 *
 *   deno run -A bench/subscription_holders.ts --url http://127.0.0.1:PORT --database keynote
 *     --shape table|join|view|topn|rows|joinrows --count N [--per-conn P] [--first 0]
 *
 * Shapes (k runs over first .. first+count-1; `per-conn` consecutive k per connection):
 *   table     `SELECT * FROM accounts WHERE id = k`
 *   join      `SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id
 *             WHERE holder.ident = k` (holder.ident = account id)
 *   view      `SELECT * FROM my_accounts WHERE id = k`, after the connection claimed its k's
 *             (`claim` makes it the owner, so its `my_accounts` instance holds exactly them)
 *   topn      one `SELECT * FROM accounts ORDER BY balance DESC LIMIT 100` per connection
 *   rows      one `SELECT * FROM accounts` (initial rows of the whole table)
 *   joinrows  one `SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id`
 *
 * Protocol: one JSON object per stdout line. After connecting (and claiming) it prints
 * `{"connected":…}` and waits for stdin lines: `subscribe` (every connection subscribes its
 * queries in one query set; prints `{"ready":…}` once every set is applied, with the ms it took
 * and the bytes received), `mark` (zero the counters), `report` (print them and the rows cached), `quit`.
 * Bytes are counted on every WebSocket message the server sent (compression off).
 */
import { parseArgs } from "node:util";
import { setGlobalLogLevel } from "spacetimedb";
import { DbConnection } from "./keynote/bindings/index.ts";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    database: { type: "string", default: "keynote" },
    shape: { type: "string" },
    count: { type: "string", default: "0" },
    "per-conn": { type: "string", default: "1000" },
    first: { type: "string", default: "0" },
  },
});
const SHAPES = ["table", "join", "view", "topn", "rows", "joinrows"] as const;
type Shape = typeof SHAPES[number];
const shape = flags.shape as Shape;
if (!SHAPES.includes(shape)) throw new Error(`--shape must be one of ${SHAPES.join(", ")}`);
if (!flags.url) throw new Error("--url is required");
const count = Number(flags.count);
const perConn = Number(flags["per-conn"]);
const first = Number(flags.first);
if (!(Number.isInteger(count) && count >= 0 && Number.isInteger(perConn) && perConn > 0)) {
  throw new Error("--count and --per-conn must be non-negative integers (per-conn > 0)");
}

const counters = { bytes: 0, frames: 0 };
// Count what the server sends: every message event of every socket the SDK opens.
const NativeWebSocket = globalThis.WebSocket;
class CountingWebSocket extends NativeWebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    this.addEventListener("message", (event) => {
      const data = event.data;
      counters.bytes += data instanceof ArrayBuffer ? data.byteLength : String(data).length;
      counters.frames++;
    });
  }
}
Object.defineProperty(globalThis, "WebSocket", { value: CountingWebSocket, writable: true });
setGlobalLogLevel("warn");

function print(value: Record<string, unknown>): void {
  // deno-lint-ignore no-console
  console.log(JSON.stringify(value));
}

function connect(): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder().withUri(flags.url!).withDatabaseName(flags.database!)
      .withCompression("none")
      .onConnect((connection) => resolve(connection))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

/** The queries of connection `c`. */
function queriesOf(c: number): string[] {
  if (shape === "rows") return ["SELECT * FROM accounts"];
  if (shape === "joinrows") {
    return ["SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id"];
  }
  if (shape === "topn") return ["SELECT * FROM accounts ORDER BY balance DESC LIMIT 100"];
  const queries: string[] = [];
  const start = first + c * perConn;
  const end = Math.min(first + count, start + perConn);
  for (let k = start; k < end; k++) {
    queries.push(
      shape === "table"
        ? `SELECT * FROM accounts WHERE id = ${k}`
        : shape === "join"
        ? `SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id WHERE holder.ident = ${k}`
        : `SELECT * FROM my_accounts WHERE id = ${k}`,
    );
  }
  return queries;
}

const connectionCount = shape === "rows" || shape === "joinrows" || shape === "topn"
  ? Math.max(1, count)
  : Math.ceil(count / perConn);
const connections: DbConnection[] = [];
const startedMs = performance.now();
for (let c = 0; c < connectionCount; c += 16) {
  const batch = Array.from({ length: Math.min(16, connectionCount - c) }, connect);
  connections.push(...await Promise.all(batch));
}
if (shape === "view") {
  // Each connection becomes the owner of its own accounts (its view instance's rows).
  await Promise.all(connections.map((connection, c) => {
    const start = first + c * perConn;
    const n = Math.min(first + count, start + perConn) - start;
    return connection.reducers.claim({ first: start, count: n });
  }));
}
print({ connected: connections.length, ms: Math.round(performance.now() - startedMs) });

async function subscribeAll(): Promise<void> {
  counters.bytes = 0;
  counters.frames = 0;
  const start = performance.now();
  await Promise.all(connections.map((connection, c) =>
    new Promise<void>((resolve, reject) => {
      connection.subscriptionBuilder()
        .onApplied(() => resolve())
        .onError((ctx) => reject(new Error(`Subscription failed: ${String(ctx.event)}`)))
        .subscribe(queriesOf(c));
    })
  ));
  const ms = performance.now() - start;
  print({ ready: true, ms, rows: cachedRows(), bytes: counters.bytes, frames: counters.frames });
}

/** Rows in the SDK caches of every connection. */
function cachedRows(): number {
  return shape === "view"
    ? connections.reduce((sum, connection) => sum + Number(connection.db.myAccounts.count()), 0)
    : connections.reduce((sum, connection) => sum + Number(connection.db.accounts.count()), 0);
}

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffered = "";
outer: for await (const chunk of lines) {
  buffered += chunk;
  let newline: number;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const command = buffered.slice(0, newline).trim();
    buffered = buffered.slice(newline + 1);
    if (command === "subscribe") {
      try {
        await subscribeAll();
      } catch (error) {
        print({ error: error instanceof Error ? error.message : String(error) });
      }
    } else if (command === "mark") {
      counters.bytes = 0;
      counters.frames = 0;
      print({ marked: true });
    } else if (command === "report") {
      print({ bytes: counters.bytes, frames: counters.frames, rows: cachedRows() });
    } else if (command === "quit") break outer;
    else print({ error: `Unknown command '${command}'` });
  }
}
for (const connection of connections) connection.disconnect();
Deno.exit(0);
