import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { Identity } from "../../auth/mod.ts";
import { within } from "../../tests/support/wait.ts";
import type { Database } from "../database_registry.ts";
import { startPgServer } from "./pg_server.ts";
import type { PgBackend } from "./session.ts";

const NO_DATABASES: PgBackend = {
  resolveDatabase: () => undefined,
  authenticate: () => Promise.reject(new Error("no tokens here")),
  runSql: () => Promise.reject(new Error("no databases here")),
  serverVersion: "test",
};

async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(...buffer.subarray(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(chunks));
}

const SSL_REQUEST = (() => {
  const packet = new Uint8Array(8);
  new DataView(packet.buffer).setInt32(0, 8);
  new DataView(packet.buffer).setInt32(4, 80877103);
  return packet;
})();

/** Sends an SSLRequest and returns the first byte of the answer ('N', or 'E' when refused). */
async function sslAnswer(conn: Deno.Conn): Promise<string> {
  await conn.write(SSL_REQUEST).catch(() => {});
  const answer = new Uint8Array(1);
  const n = await conn.read(answer).catch(() => null);
  return n === null ? "" : String.fromCharCode(answer[0]);
}

Deno.test("the PostgreSQL listener refuses connections over its limit with FATAL 53300", async () => {
  const server = startPgServer({
    hostname: "127.0.0.1",
    port: 0,
    backend: NO_DATABASES,
    connectionsMax: 2,
  });
  const held: Deno.Conn[] = [];
  try {
    // Two sessions, each answered: the server holds both.
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      held.push(conn);
      assertEquals(await sslAnswer(conn), "N");
    }
    const third = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const reply = await readAll(third);
    third.close();
    assertEquals(reply[0], "E");
    assertMatch(reply, /FATAL.*53300.*too many clients/s);
    // Once one goes, a new connection gets in (answered 'N', not refused) as soon as the
    // server noticed.
    held.shift()!.close();
    let answer = "";
    const deadline = Date.now() + 60_000;
    while (answer !== "N" && Date.now() < deadline) {
      const next = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      answer = await sslAnswer(next);
      next.close();
    }
    assertEquals(answer, "N");
  } finally {
    for (const conn of held) conn.close();
    await server.close();
  }
});

Deno.test("a startup without a database name is FATAL", async () => {
  const server = startPgServer({ hostname: "127.0.0.1", port: 0, backend: NO_DATABASES });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const body = new TextEncoder().encode("user\0me\0\0");
    const packet = new Uint8Array(8 + body.length);
    new DataView(packet.buffer).setInt32(0, packet.length);
    new DataView(packet.buffer).setInt32(4, 196608);
    packet.set(body, 8);
    await conn.write(packet);
    const reply = await readAll(conn);
    conn.close();
    assertMatch(reply, /FATAL.*08004.*Database name is required/s);
  } finally {
    await server.close();
  }
});

Deno.test("one client address may hold at most --pg-connections-per-address connections", async () => {
  const server = startPgServer({
    hostname: "127.0.0.1",
    port: 0,
    backend: NO_DATABASES,
    connectionsPerAddressMax: 2,
  });
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      held.push(conn);
      assertEquals(await sslAnswer(conn), "N");
    }
    const third = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const reply = await readAll(third);
    third.close();
    assertMatch(reply, /FATAL.*53300.*too many connections from this address already \(2;/s);
  } finally {
    for (const conn of held) conn.close();
    await server.close();
  }
});

/** Startup for database "db", then the password message once asked for it. */
async function authenticate(conn: Deno.Conn): Promise<void> {
  const body = new TextEncoder().encode("user\0me\0database\0db\0\0");
  const packet = new Uint8Array(8 + body.length);
  new DataView(packet.buffer).setInt32(0, packet.length);
  new DataView(packet.buffer).setInt32(4, 196608);
  packet.set(body, 8);
  await conn.write(packet);
  const request = new Uint8Array(9);
  let got = 0;
  while (got < 9) got += (await conn.read(request.subarray(got))) ?? 9;
  assertEquals(String.fromCharCode(request[0]), "R");
  const token = new TextEncoder().encode("token\0");
  const password = new Uint8Array(5 + token.length);
  password[0] = "p".charCodeAt(0);
  new DataView(password.buffer).setInt32(1, 4 + token.length);
  password.set(token, 5);
  await conn.write(password);
}

Deno.test("an authenticated session idle past --pg-idle-timeout-s ends with FATAL 57P05", async () => {
  const backend: PgBackend = {
    ...NO_DATABASES,
    resolveDatabase: () => ({}) as Database,
    authenticate: () => Promise.resolve(Identity.fromHex("00".repeat(32))),
  };
  const server = startPgServer({ hostname: "127.0.0.1", port: 0, backend, idleTimeoutS: 0.2 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await authenticate(conn);
    // AuthenticationOk, parameters, ReadyForQuery; then nothing is sent until the timeout.
    const reply = await within(readAll(conn), "the idle session to be ended");
    conn.close();
    assertMatch(reply, /Z.*FATAL.*57P05.*idle-session timeout \(0\.2 s;/s);
  } finally {
    await server.close();
  }
});
