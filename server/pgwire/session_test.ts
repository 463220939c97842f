/**
 * PgSession against an in-memory socket and a backend that records the SQL it runs: what a
 * hostile (anonymous, authenticated with a freshly minted token) client can make the session
 * run or hold. Each test was red before its fix.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { Identity } from "../../auth/mod.ts";
import {
  PG_OUTPUT_PENDING_BYTES_MAX,
  PG_PASSWORD_BYTES_MAX,
  PG_PORTALS_MAX,
  PG_SESSION_SQL_BYTES_MAX,
  PG_STATEMENTS_MAX,
  SQL_BYTES_MAX,
} from "../../lib/limits.ts";
import type { Database } from "../database_registry.ts";
import type { SqlStatementResult } from "../sql_statement.ts";
import { type PgBackend, PgSession, type PgTransport } from "./session.ts";

const encoder = new TextEncoder();

function cstring(text: string): number[] {
  return [...encoder.encode(text), 0];
}

function int16(value: number): number[] {
  return [(value >> 8) & 0xff, value & 0xff];
}

/** A typed frontend message. */
function message(type: string, body: number[] = []): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

function startup(): Uint8Array {
  const body = [...cstring("user"), ...cstring("x"), ...cstring("database"), ...cstring("db"), 0];
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setInt32(0, out.length);
  new DataView(out.buffer).setInt32(4, 196608);
  out.set(body, 8);
  return out;
}

const parse = (name: string, sql: string) =>
  message("P", [...cstring(name), ...cstring(sql), ...int16(0)]);
const bind = (portal: string, statement: string) =>
  message("B", [...cstring(portal), ...cstring(statement), ...int16(0), ...int16(0), ...int16(0)]);
const describe = (kind: "S" | "P", name: string) =>
  message("D", [kind.charCodeAt(0), ...cstring(name)]);
const execute = (portal: string) => message("E", [...cstring(portal), 0, 0, 0, 0]);
const sync = () => message("S");
const query = (sql: string) => message("Q", cstring(sql));

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * A socket fed from a queue of chunks (then end of stream), whose writes are recorded; once the
 * chunk `stopReadingAt` is read, no write completes until `unblock()`: a client that stopped
 * reading.
 */
class MemoryTransport implements PgTransport {
  readonly written: Uint8Array[] = [];
  #chunks: Uint8Array[];
  #unblock: () => void = () => {};
  #blocked: Promise<void> | undefined;

  constructor(chunks: Uint8Array[], readonly stopReadingAt?: Uint8Array) {
    this.#chunks = chunks;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    const chunk = this.#chunks.shift();
    if (chunk === undefined) return Promise.resolve(null);
    if (chunk === this.stopReadingAt) {
      this.#blocked = new Promise((resolve) => (this.#unblock = resolve));
    }
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#chunks.unshift(chunk.subarray(n));
    return Promise.resolve(n);
  }

  async write(bytes: Uint8Array): Promise<number> {
    await this.#blocked;
    this.written.push(bytes.slice());
    return bytes.length;
  }

  unblock(): void {
    this.#unblock();
  }

  /** Everything written, as text (type bytes and strings readable; lengths are noise). */
  text(): string {
    return new TextDecoder().decode(concat(this.written));
  }
}

/** A backend whose one database answers every SELECT with `rows` one-column rows of `text`. */
function recordingBackend(rowText = "x", rows = 1): { backend: PgBackend; ran: string[] } {
  const ran: string[] = [];
  const backend: PgBackend = {
    resolveDatabase: () => ({}) as Database,
    authenticate: () => Promise.resolve({} as Identity),
    runSql: (_database, sql): Promise<SqlStatementResult> => {
      ran.push(sql);
      const select = /^\s*select/i.test(sql);
      return Promise.resolve({
        schema: {
          elements: select ? [{ name: "s", algebraicType: { tag: "String" as const } }] : [],
        },
        typespace: { types: [] },
        rows: select ? Array.from({ length: rows }, () => [rowText]) : [],
        rowsInserted: select ? 0 : 1,
        rowsDeleted: 0,
        rowsUpdated: 0,
        totalDurationMicros: 1,
      } as unknown as SqlStatementResult);
    },
    serverVersion: "test",
  };
  return { backend, ran };
}

/** Runs one session over `chunks` (after the startup and password) to its end. */
async function runSession(
  messages: Uint8Array[],
  backend: PgBackend,
): Promise<MemoryTransport> {
  const transport = new MemoryTransport([startup(), message("p", cstring("token")), ...messages]);
  await new PgSession(backend, transport).run();
  return transport;
}

Deno.test("Describe of a prepared INSERT does not run it; Execute runs it once", async () => {
  const { backend, ran } = recordingBackend();
  const insert = "INSERT INTO t (a) VALUES (1)";
  const transport = await runSession([
    parse("ins", insert),
    describe("S", "ins"),
    bind("", "ins"),
    describe("P", ""),
    sync(),
    bind("", "ins"),
    describe("P", ""),
    execute(""),
    sync(),
    parse("sel", "SELECT * FROM t"),
    describe("S", "sel"),
    sync(),
    message("X"),
  ], backend);
  // The SELECT is run by its Describe (its columns are known once it ran); the INSERT only by
  // the one Execute.
  assertEquals(ran, [insert, "SELECT * FROM t"]);
  assert(transport.text().includes("inserted: 1"), transport.text());
});

Deno.test("a session keeps at most PG_STATEMENTS_MAX prepared statements", async () => {
  const { backend } = recordingBackend();
  const parses = Array.from(
    { length: PG_STATEMENTS_MAX + 1 },
    (_, i) => parse(`s${i}`, "SELECT 1"),
  );
  const transport = await runSession([
    concat(parses),
    sync(),
    // Closing one makes room again.
    message("C", [..."S".split("").map((c) => c.charCodeAt(0)), ...cstring("s0")]),
    parse("again", "SELECT 1"),
    sync(),
    message("X"),
  ], backend);
  const text = transport.text();
  assert(/54000.*Too many prepared statements in this session/s.test(text), text.slice(-500));
  assertEquals(text.split("Too many prepared statements").length - 1, 1);
});

Deno.test("prepared statements and portals hold at most PG_SESSION_SQL_BYTES_MAX of SQL", async () => {
  const { backend } = recordingBackend();
  const long = `SELECT * FROM t WHERE s = '${"a".repeat(SQL_BYTES_MAX - 40)}'`;
  const fits = Math.floor(PG_SESSION_SQL_BYTES_MAX / encoder.encode(long).length);
  const transport = await runSession([
    ...Array.from({ length: fits + 1 }, (_, i) => parse(`s${i}`, long)),
    sync(),
    // Longer than any statement may be: refused before it is kept.
    parse("huge", `SELECT * FROM t WHERE s = '${"a".repeat(SQL_BYTES_MAX)}'`),
    sync(),
    message("X"),
  ], backend);
  const text = transport.text();
  assert(/54000.*hold over 1048576 bytes of SQL/s.test(text), text.slice(-300));
  assert(/54000.*exceeds maximum allowed length/s.test(text), text.slice(-300));
});

Deno.test("a session keeps at most PG_PORTALS_MAX portals", async () => {
  const { backend } = recordingBackend();
  const transport = await runSession([
    parse("sel", "SELECT * FROM t"),
    ...Array.from({ length: PG_PORTALS_MAX + 1 }, (_, i) => bind(`p${i}`, "sel")),
    sync(),
    message("X"),
  ], backend);
  const text = transport.text();
  assert(/54000.*Too many open portals in this session/s.test(text), text.slice(-300));
});

Deno.test("a client that pipelines queries and never reads is not read from any further", async () => {
  // Each answer is ~1.1 MiB, over PG_OUTPUT_PENDING_BYTES_MAX; 50 queries in one chunk.
  const rowText = "r".repeat(1024);
  const rowsPerAnswer = Math.ceil(PG_OUTPUT_PENDING_BYTES_MAX / rowText.length) + 64;
  const { backend, ran } = recordingBackend(rowText, rowsPerAnswer);
  const queries = 50;
  const pipelined = concat(Array.from({ length: queries }, () => query("SELECT * FROM t")));
  const transport = new MemoryTransport(
    [startup(), message("p", cstring("token")), pipelined],
    pipelined,
  );
  const session = new PgSession(backend, transport).run();
  // Give the session every chance to go on (timers let all pending promise jobs run).
  for (let i = 0; i < 200 && ran.length < queries; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  console.log(`queries run while the client read nothing: ${ran.length} of ${queries}`);
  assert(ran.length >= 1 && ran.length <= 2, `ran ${ran.length} queries`);
  // Once the client reads, the rest are answered.
  transport.unblock();
  await session;
  assertEquals(ran.length, queries);
});

Deno.test("a password message over PG_PASSWORD_BYTES_MAX is refused before it is read", async () => {
  const { backend } = recordingBackend();
  // Only the header of a message announcing more than a token could be: refused at once.
  const header = message("p").subarray(0, 5);
  new DataView(header.buffer, header.byteOffset).setInt32(1, PG_PASSWORD_BYTES_MAX + 5);
  const transport = new MemoryTransport([startup(), header]);
  await new PgSession(backend, transport).run();
  const text = transport.text();
  assert(/FATAL.*08P01.*Invalid length \d+ of a 'p' message/s.test(text), text);
});
