import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { errorResponse } from "./error_response.ts";
import { type RequestBodyOptions, RequestBodyReader } from "./request_body.ts";

const LIMIT_BYTES = 1000;

/** A server whose only route reads the body with `reader` and answers its length. */
function serve(options: RequestBodyOptions) {
  const reader = new RequestBodyReader(options);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    try {
      const body = await reader.read(request, LIMIT_BYTES, "request body");
      return new Response(`read ${body.byteLength}`);
    } catch (error) {
      // deno-lint-ignore no-explicit-any
      return errorResponse(error, { req: { method: "POST", path: "/" }, text } as any);
    }
  });
  return { reader, server, port: server.addr.port };
}

function text(message: string, status: number): Response {
  return new Response(message, { status });
}

/** Sends `head` (and optional body bytes) on a raw connection; resolves with what comes back first. */
async function rawRequest(port: number, head: string, body?: Uint8Array) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(head));
  if (body) await conn.write(body).catch(() => 0);
  return { conn, answer: readAnswer(conn) };
}

async function readAnswer(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
    const headEnd = text.indexOf("\r\n\r\n");
    const length = /content-length: (\d+)/i.exec(text)?.[1];
    if (headEnd >= 0 && length !== undefined && text.length >= headEnd + 4 + Number(length)) break;
  }
  return text;
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);

Deno.test("read() returns a body under the cap and refuses an announced length over it before reading", async () => {
  const { server, port } = serve({});
  try {
    const ok = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "x".repeat(999) });
    assertEquals(await ok.text(), "read 999");
    const started = performance.now();
    const { conn, answer } = await rawRequest(
      port,
      `POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${LIMIT_BYTES + 1}\r\n\r\n`,
    );
    const reply = await answer;
    console.log(
      `announced ${LIMIT_BYTES + 1} bytes: answered in ${
        Math.round(performance.now() - started)
      } ms`,
    );
    assertEquals(statusOf(reply), 413, reply);
    assertMatch(reply, /request body in bytes \(Content-Length\) is 1001, over the limit of 1000/);
    conn.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("read() fails with 413 as soon as a chunked body crosses the cap", async () => {
  const { server, port } = serve({});
  try {
    const { conn, answer } = await rawRequest(
      port,
      "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    // 600 + 600 bytes, then nothing more: the answer must not wait for the end of the body.
    const chunk = `258\r\n${"y".repeat(600)}\r\n`;
    await conn.write(new TextEncoder().encode(chunk + chunk));
    const reply = await answer;
    assertEquals(statusOf(reply), 413, reply);
    assertMatch(reply, /request body in bytes is 1200, over the limit of 1000/);
    conn.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("read() fails with 408 when the body does not arrive within the timeout", async () => {
  const { server, port, reader } = serve({ timeoutMs: 300 });
  try {
    const started = performance.now();
    const { conn, answer } = await rawRequest(
      port,
      "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\nabc",
    );
    const reply = await answer;
    const elapsedMs = Math.round(performance.now() - started);
    console.log(`stalled body answered after ${elapsedMs} ms (timeout 300 ms)`);
    assertEquals(statusOf(reply), 408, reply);
    assertMatch(reply, /did not arrive within 300 ms \(received 3 bytes\)/);
    assert(elapsedMs >= 250, `answered after ${elapsedMs} ms, before the timeout`);
    assertEquals(reader.bodiesInFlight, 0);
    conn.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("read() answers 503 past the server-wide bounds on bodies and bytes in flight", async () => {
  const { server, port, reader } = serve({ bodiesMax: 2, bytesMax: 1500, timeoutMs: 5000 });
  const conns: Deno.Conn[] = [];
  const stalled = async (head: string) => {
    const { conn, answer } = await rawRequest(port, head);
    conns.push(conn);
    return { conn, answer };
  };
  try {
    // A: 800 of 900 bytes, then stalls: one slot and 800 bytes held.
    await stalled("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 900\r\n\r\n" + "z".repeat(800));
    while (reader.bodiesInFlight < 1) await new Promise((r) => setTimeout(r, 10));
    // B: its 800 bytes would make 1600 held, over 1500.
    const b = await stalled(
      "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 900\r\n\r\n" + "z".repeat(800),
    );
    const bReply = await b.answer;
    console.log(`second 800-byte body with 800 held: ${bReply.split("\r\n")[0]}`);
    assertEquals(statusOf(bReply), 503, bReply);
    assertMatch(bReply, /holds 800 bytes of request bodies, its limit is 1500: retry later/);
    // C: announces 10 bytes, sends none yet: the second slot.
    const c = await stalled("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n");
    while (reader.bodiesInFlight < 2) await new Promise((r) => setTimeout(r, 10));
    const third = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "small" });
    const thirdText = await third.text();
    console.log(`small body with 2 in flight: ${third.status} ${thirdText}`);
    assertEquals(third.status, 503);
    assertMatch(thirdText, /already receiving 2 request bodies, its limit: retry later/);
    // C completes: its slot is free again and a small body goes through.
    await c.conn.write(new TextEncoder().encode("0123456789"));
    assertMatch(await c.answer, /read 10$/);
    const fourth = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "small" });
    assertEquals(await fourth.text(), "read 5");
  } finally {
    for (const conn of conns) conn.close();
    await server.shutdown();
  }
});
