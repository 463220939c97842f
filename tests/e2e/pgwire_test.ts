/**
 * The PostgreSQL wire protocol (`--pg-port`) against a real server with a published module:
 * Debian's `psql` and the npm `pg` client run SELECTs with SpacetimeDB's permissions, see
 * PostgreSQL types and text, get ErrorResponses with SQLSTATE codes for bad SQL, a bad token
 * and an unknown database, and are told 'N' to SSL. A raw socket checks the framing edges.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import pg from "pg";
import { type RunningServer, startServer } from "../../server/mod.ts";
import { call, fixtureBundle, publish } from "../support/server.ts";

interface PgFixture {
  server: RunningServer;
  dataDir: string;
  pgPort: number;
  ownerToken: string;
  strangerToken: string;
  close(): Promise<void>;
}

async function startPgFixture(): Promise<PgFixture> {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-pgwire-" });
  const server = await startServer({ hostname: "127.0.0.1", port: 0, dataDir, pgPort: 0 });
  const { token: ownerToken } = await publish(
    server.url,
    "kitchen",
    await fixtureBundle("kitchen"),
  );
  for (const [id, email, age] of [[1, "a@x", 30], [2, "b@x", 40], [3, "c@x", 50]] as const) {
    const result = await call(server.url, "kitchen", "add_person", [id, email, age, "n"]);
    assertEquals(result.status, 200, result.text);
  }
  assertEquals((await call(server.url, "kitchen", "bump", ["hidden", 9, ""])).status, 200);
  const minted = await fetch(`${server.url}/v1/identity`, { method: "POST" });
  const strangerToken = (await minted.json() as { token: string }).token;
  return {
    server,
    dataDir,
    pgPort: server.pgPort!,
    ownerToken,
    strangerToken,
    async close() {
      await server.shutdown();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

const ALL_TYPES_ROW = [
  0,
  true,
  255,
  65535,
  4294967295,
  18446744073709551615n,
  5n,
  7n,
  -128,
  -32768,
  -5,
  -9n,
  -10n,
  -11n,
  1.5,
  -0.1,
  'hé "q" {x}',
  "00ff10",
  "0xc2" + "ab".repeat(31),
  "0x" + "11".repeat(16),
  { __timestamp_micros_since_unix_epoch__: 1_700_000_000_123_456 },
  { __time_duration_micros__: -1_500_000 },
  { __uuid__: "0x" + "0123456789abcdef".repeat(2) },
  { some: "present" },
  [0, 1, 65535],
  { rect: { w: 3, h: 4 } },
];

const PSQL_AVAILABLE = new Deno.Command("sh", { args: ["-c", "command -v psql"] }).outputSync()
  .success;
if (!PSQL_AVAILABLE) {
  console.error(
    "\n!!! psql is not installed: the psql session test is SKIPPED. Run " +
      "tests/support/install_debian.sh (as root) to install Debian's postgresql-client.\n",
  );
}

async function psql(
  pgPort: number,
  options: { database?: string; password: string; sslmode?: string; input: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const conninfo = `host=127.0.0.1 port=${pgPort} dbname=${
    options.database ?? "kitchen"
  } user=anyone sslmode=${options.sslmode ?? "prefer"} connect_timeout=10`;
  const child = new Deno.Command("psql", {
    args: [conninfo, "-X", "-q", "-f", "-"],
    env: { PGPASSWORD: options.password, PGCONNECT_TIMEOUT: "10", LC_ALL: "C.UTF-8" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(options.input));
  await writer.close();
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test({
  name: "psql runs a session against a published database over the PostgreSQL wire protocol",
  ignore: !PSQL_AVAILABLE,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const fixture = await startPgFixture();
    try {
      await t.step("SELECTs answer rows; an error leaves the session usable", async () => {
        const result = await psql(fixture.pgPort, {
          password: fixture.ownerToken,
          input: [
            "SELECT * FROM people WHERE age >= 40;",
            "SELEKT nonsense;",
            "SELECT * FROM nowhere;",
            "SELECT * FROM counters;",
            "INSERT INTO people (id, email, age, nick) VALUES (9, 'z', 1, 'z');",
            "SELECT * FROM people WHERE id = 9;",
            "",
          ].join("\n"),
        });
        assertEquals(result.code, 0, result.stderr);
        const stdout = result.stdout;
        // One table per SELECT that worked, each ending with its row count.
        const tables = stdout.split(/(?<=\(\d+ rows?\))\n/).filter((block) => block.trim() !== "")
          .map((block) => block.replace(/^\n+/, ""));
        assertEquals(tables.length, 3, stdout);
        assertMatch(tables[0], /^ id \| email \| age \| nick/);
        assertMatch(tables[0], /\n {2}2 \| b@x {3}\| {2}40 \| n/);
        assertMatch(tables[0], /\n {2}3 \| c@x {3}\| {2}50 \| n/);
        assertMatch(tables[0], /\(2 rows\)/);
        assertMatch(tables[1], /hidden \| {5}9/);
        assertMatch(tables[2], /^ id \| email/);
        // The owner's INSERT committed (psql -q does not print its command tag).
        assertMatch(tables[2], /\n {2}9 \| z .*\n\(1 row\)$/);
        assertMatch(result.stderr, /ERROR: {2}sql parser error/);
        assertMatch(result.stderr, /ERROR: {2}no such table: `nowhere`/);
        assert(!/ERROR: {2}.*INSERT/.test(result.stderr), result.stderr);
      });

      await t.step("a stranger reads public tables only", async () => {
        const result = await psql(fixture.pgPort, {
          password: fixture.strangerToken,
          input: "SELECT * FROM counters;\nSELECT * FROM people WHERE id = 3;\n",
        });
        assertEquals(result.code, 0, result.stderr);
        assertMatch(result.stderr, /ERROR: {2}no such table: `counters`/);
        assertMatch(result.stdout, /\n {2}3 \| c@x/);
      });

      await t.step("SpacetimeDB types read as PostgreSQL text", async () => {
        assertEquals(
          (await call(fixture.server.url, "kitchen", "insert_all_types", [ALL_TYPES_ROW])).status,
          200,
        );
        const result = await psql(fixture.pgPort, {
          password: fixture.ownerToken,
          input: "\\pset format unaligned\n\\pset tuples_only on\n\\x on\n" +
            "SELECT * FROM all_types;\n",
        });
        assertEquals(result.code, 0, result.stderr);
        const fields = Object.fromEntries(
          result.stdout.trim().split("\n").map((line) => line.split("|", 2)),
        );
        assertEquals(fields, {
          id: "1",
          b: "t",
          u_8: "255",
          u_16: "65535",
          u_32: "4294967295",
          u_64: "18446744073709551615",
          u_128: "5",
          u_256: "7",
          i_8: "-128",
          i_16: "-32768",
          i_32: "-5",
          i_64: "-9",
          i_128: "-10",
          i_256: "-11",
          f_32: "1.5",
          f_64: "-0.1",
          s: 'hé "q" {x}',
          bytes: "\\x00ff10",
          who: "\\xc2" + "ab".repeat(31),
          conn: "\\x" + "11".repeat(16),
          at: "2023-11-14 22:13:20.123456+00",
          dur: "-00:00:01.5",
          uid: "01234567-89ab-cdef-0123-456789abcdef",
          maybe: '{"some": "present"}',
          list: "{0,1,65535}",
          shape: '{"rect": {"w": 3, "h": 4}}',
        });
      });

      await t.step("a bad token is FATAL 28P01, an unknown database 3D000", async () => {
        const bad = await psql(fixture.pgPort, { password: "not-a-token", input: "SELECT 1;\n" });
        assertEquals(bad.code, 2);
        assertMatch(bad.stderr, /FATAL: {2}password authentication failed for user "anyone"/);
        const missing = await psql(fixture.pgPort, {
          database: "nope",
          password: fixture.ownerToken,
          input: "SELECT 1;\n",
        });
        assertEquals(missing.code, 2);
        assertMatch(missing.stderr, /FATAL: {2}database "nope" does not exist/);
      });

      await t.step(
        "SSL is refused cleanly: required fails, preferred goes on in plain",
        async () => {
          const required = await psql(fixture.pgPort, {
            password: fixture.ownerToken,
            sslmode: "require",
            input: "SELECT * FROM people;\n",
          });
          assertEquals(required.code, 2);
          assertMatch(required.stderr, /server does not support SSL/);
          const preferred = await psql(fixture.pgPort, {
            password: fixture.ownerToken,
            sslmode: "prefer",
            input: "SELECT * FROM people WHERE id = 2;\n",
          });
          assertEquals(preferred.code, 0, preferred.stderr);
          assertMatch(preferred.stdout, /\(1 row\)/);
        },
      );

      await t.step("the database can be named by its identity", async () => {
        const info = await fetch(`${fixture.server.url}/v1/database/kitchen`);
        const body = await info.json() as { database_identity: { __identity__: string } };
        const result = await psql(fixture.pgPort, {
          database: body.database_identity.__identity__.replace(/^0x/, ""),
          password: fixture.ownerToken,
          input: "SELECT * FROM people WHERE id = 1;\n",
        });
        assertEquals(result.code, 0, result.stderr);
        assertMatch(result.stdout, /a@x/);
      });
    } finally {
      await fixture.close();
    }
  },
});

interface PgError extends Error {
  code?: string;
  severity?: string;
}

async function pgError(promise: Promise<unknown>): Promise<PgError> {
  try {
    await promise;
  } catch (error) {
    return error as PgError;
  }
  throw new Error("expected the call to fail");
}

Deno.test({
  name: "the npm pg client queries, gets typed values and SQLSTATE errors",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const fixture = await startPgFixture();
    const connect = async (password: string, database = "kitchen", ssl = false) => {
      const client = new pg.Client({
        host: "127.0.0.1",
        port: fixture.pgPort,
        database,
        user: "anyone",
        password,
        ssl,
        connectionTimeoutMillis: 10_000,
      });
      await client.connect();
      return client;
    };
    try {
      const client = await connect(fixture.ownerToken);
      try {
        await t.step("simple queries", async () => {
          const result = await client.query("SELECT * FROM people WHERE age >= 40");
          assertEquals(result.command, "SELECT");
          assertEquals(result.rowCount, 2);
          assertEquals(result.fields.map((f: { name: string }) => f.name), [
            "id",
            "email",
            "age",
            "nick",
          ]);
          assertEquals(result.rows, [
            { id: "2", email: "b@x", age: 40, nick: "n" },
            { id: "3", email: "c@x", age: 50, nick: "n" },
          ]);
        });

        await t.step("owner DML answers SpacetimeDB's command tags", async () => {
          const inserted = await client.query(
            "INSERT INTO people (id, email, age, nick) VALUES (9, 'z', 1, 'z')",
          );
          assertEquals(inserted.command, "inserted");
          const projected = await client.query("SELECT email AS e FROM people WHERE id = 9");
          assertEquals(projected.fields.map((f: { name: string }) => f.name), ["e"]);
          assertEquals(projected.rows, [{ e: "z" }]);
          const deleted = await client.query("DELETE FROM people WHERE id = 9");
          assertEquals(deleted.command, "deleted");
          const counted = await client.query("SELECT COUNT(*) AS n FROM people");
          assertEquals(counted.rows, [{ n: "3" }]);
        });

        await t.step("system tables read like tables, with their own column types", async () => {
          const tables = await client.query(
            "SELECT table_name, table_type, table_access, table_primary_key FROM st_table " +
              "WHERE table_name = 'people'",
          );
          assertEquals(tables.rows, [{
            table_name: "people",
            table_type: "user",
            table_access: "public",
            table_primary_key: { some: [0] },
          }]);
          const columns = await client.query(
            "SELECT st_column.col_name FROM st_column JOIN st_table " +
              "ON st_column.table_id = st_table.table_id WHERE st_table.table_name = 'people'",
          );
          assertEquals(columns.rows.map((r: { col_name: string }) => r.col_name), [
            "id",
            "email",
            "age",
            "nick",
          ]);
        });

        await t.step("errors carry SQLSTATE codes and the connection stays usable", async () => {
          const syntax = await pgError(client.query("SELEKT nonsense"));
          assertEquals(syntax.code, "42601");
          assertEquals(syntax.severity, "ERROR");
          const missing = await pgError(client.query("SELECT * FROM nowhere"));
          assertEquals(missing.code, "42P01");
          const field = await pgError(client.query("UPDATE people SET nosuch = 1"));
          assertEquals(field.code, "42703");
          const duplicate = await pgError(
            client.query("INSERT INTO people (id, email, age, nick) VALUES (1, 'd', 1, 'd')"),
          );
          assertEquals(duplicate.code, "23505");
          const begin = await pgError(client.query("BEGIN"));
          assertEquals(begin.code, "0A000");
          const many = await pgError(client.query("SELECT * FROM people; SELECT * FROM people"));
          assertEquals(many.code, "42601");
          assertEquals((await client.query("SELECT * FROM people")).rowCount, 3);
        });

        await t.step("the extended protocol without parameters; parameters refused", async () => {
          const extended = await client.query({
            text: "SELECT * FROM people WHERE id = 1",
            queryMode: "extended",
          });
          assertEquals(extended.rows, [{ id: "1", email: "a@x", age: 30, nick: "n" }]);
          for (let i = 0; i < 2; i++) {
            // A named statement: parsed once, then bound and executed again.
            const named = await client.query({
              name: "by-id",
              text: "SELECT * FROM people WHERE id = 2",
            });
            assertEquals(named.rows, [{ id: "2", email: "b@x", age: 40, nick: "n" }]);
          }
          const parameters = await pgError(client.query("SELECT * FROM people WHERE id = $1", [1]));
          assertEquals(parameters.code, "0A000");
          assertMatch(parameters.message, /parameters are not supported/);
          const afterError = await client.query({
            text: "SELECT * FROM people WHERE id = 3",
            queryMode: "extended",
          });
          assertEquals(afterError.rowCount, 1);
        });

        await t.step("column types parse as the PostgreSQL types they declare", async () => {
          assertEquals(
            (await call(fixture.server.url, "kitchen", "insert_all_types", [ALL_TYPES_ROW]))
              .status,
            200,
          );
          const { rows: [row] } = await client.query("SELECT * FROM all_types");
          assertEquals(row.b, true);
          assertEquals(row.u_8, 255);
          assertEquals(row.i_32, -5);
          assertEquals(row.u_32, "4294967295");
          assertEquals(row.u_64, "18446744073709551615");
          assertEquals(row.f_32, 1.5);
          assertEquals(row.f_64, -0.1);
          assertEquals(row.s, 'hé "q" {x}');
          assertEquals([...row.bytes], [0, 255, 16]);
          assertEquals(Buffer.from(row.who).toString("hex"), "c2" + "ab".repeat(31));
          assertEquals(Buffer.from(row.conn).toString("hex"), "11".repeat(16));
          assertEquals((row.at as Date).getTime(), 1_700_000_000_123);
          assertEquals(row.dur.toPostgres(), "-1.5 seconds");
          assertEquals(row.uid, "01234567-89ab-cdef-0123-456789abcdef");
          assertEquals(row.maybe, { some: "present" });
          assertEquals(row.list, [0, 1, 65535]);
          assertEquals(row.shape, { rect: { w: 3, h: 4 } });
        });
      } finally {
        await client.end();
      }

      await t.step("permissions follow /sql: strangers see public tables only", async () => {
        const stranger = await connect(fixture.strangerToken);
        try {
          assertEquals((await pgError(stranger.query("SELECT * FROM counters"))).code, "42P01");
          assertEquals((await stranger.query("SELECT * FROM people")).rowCount, 3);
          const dml = await pgError(stranger.query("DELETE FROM people"));
          assertEquals(dml.code, "42501");
          assertMatch(dml.message, /^Caller [0-9a-f]{64} is not authorized to run SQL DML/);
          assertEquals((await stranger.query("SELECT * FROM people")).rowCount, 3);
        } finally {
          await stranger.end();
        }
      });

      await t.step("bad token, unknown database and SSL are refused", async () => {
        const bad = await pgError(connect("not-a-token"));
        assertEquals(bad.code, "28P01");
        const missing = await pgError(connect(fixture.ownerToken, "nope"));
        assertEquals(missing.code, "3D000");
        assertEquals(missing.message, 'database "nope" does not exist');
        const ssl = await pgError(connect(fixture.ownerToken, "kitchen", true));
        assertMatch(ssl.message, /does not support SSL/);
      });
    } finally {
      await fixture.close();
    }
  },
});

Deno.test({
  name: "PostgreSQL wire framing: SSLRequest gets 'N', garbage gets FATAL 08P01, Terminate closes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fixture = await startPgFixture();
    const readSome = async (conn: Deno.Conn) => {
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      return n === null ? null : buffer.slice(0, n);
    };
    const int32s = (...values: number[]) => {
      const out = new Uint8Array(values.length * 4);
      values.forEach((v, i) => new DataView(out.buffer).setInt32(i * 4, v));
      return out;
    };
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: fixture.pgPort });
      try {
        await conn.write(int32s(8, 80877103));
        assertEquals(await readSome(conn), new Uint8Array(["N".charCodeAt(0)]));
        // A protocol 2.0 startup is refused with FATAL, then the server closes.
        await conn.write(int32s(8, 2 << 16));
        const reply = await readSome(conn);
        assert(reply !== null && reply[0] === "E".charCodeAt(0), String(reply));
        assertMatch(
          new TextDecoder().decode(reply),
          /FATAL.*0A000.*unsupported frontend protocol/s,
        );
        assertEquals(await readSome(conn), null);
      } finally {
        conn.close();
      }

      // After authentication, an unknown message type is a protocol violation.
      const client = new pg.Client({
        host: "127.0.0.1",
        port: fixture.pgPort,
        database: "kitchen",
        user: "x",
        password: fixture.ownerToken,
      });
      await client.connect();
      const ended = new Promise<void>((resolve) => client.on("end", () => resolve()));
      const errors: PgError[] = [];
      client.on("error", (error: PgError) => errors.push(error));
      (client as unknown as { connection: { stream: { write(b: Uint8Array): void } } }).connection
        .stream.write(new Uint8Array([..."?".split("").map((c) => c.charCodeAt(0)), 0, 0, 0, 4]));
      await ended;
      assert(errors.some((error) => error.code === "08P01"), JSON.stringify(errors));
    } finally {
      await fixture.close();
    }
  },
});
