/**
 * Header and idle timeouts on the HTTP listener (issue 15, the front door). Deno.serve has none:
 * without server/conn_reaper.ts a connection that sends nothing, half a header block, or stays
 * idle after a response is held open forever (run this file against a server started with
 * `--http-header-timeout-ms 0` to see each of the first three steps fail). A request still
 * arriving, and a WebSocket that is idle, are left alone.
 */
import { ok as assert } from "node:assert/strict";
import { fixtureBundle, publish, startServerProcess } from "../support/server.ts";

const HEADER_TIMEOUT_MS = 1500;
const IDLE_TIMEOUT_MS = 2500;
/** Sweep granularity plus a loaded machine. */
const SLACK_MS = 30_000;

const encoder = new TextEncoder();

/** Resolves with the ms until the peer closes or resets `conn`, or undefined after `limitMs`. */
async function closedWithin(conn: Deno.Conn, limitMs: number): Promise<number | undefined> {
  const started = performance.now();
  const buffer = new Uint8Array(4096);
  const closed = (async () => {
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return performance.now() - started;
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), limitMs);
  });
  const result = await Promise.race([closed, timeout]);
  clearTimeout(timer);
  return result;
}

async function readResponseHead(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text;
}

Deno.test({
  name: "HTTP connections: header and idle timeouts close them; slow requests and WebSockets stay",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startServerProcess({
      args: [
        "--http-header-timeout-ms",
        String(HEADER_TIMEOUT_MS),
        "--http-idle-timeout-ms",
        String(IDLE_TIMEOUT_MS),
        "--http-body-timeout-ms",
        "60000",
      ],
    });
    const port = Number(new URL(server.url).port);
    const open: Deno.Conn[] = [];
    const connect = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      open.push(conn);
      return conn;
    };
    try {
      assert(
        /connection timeouts.*"?enforced"?[:=] ?true/.test(server.startupOutput),
        "the server says header/idle timeouts are not enforced here (needs root and iproute2's " +
          `ss, installed by tests/support/install_debian.sh): ${
            server.startupOutput.split("\n").find((l) => l.includes("connection timeouts"))
          }`,
      );
      await publish(server.url, "witness", await fixtureBundle("runaway"));

      await t.step("a connection that sends nothing is closed", async () => {
        const ms = await closedWithin(await connect(), HEADER_TIMEOUT_MS + SLACK_MS);
        console.log(`  silent connection closed after ${ms?.toFixed(0)} ms`);
        assert(ms !== undefined, "still open");
        assert(ms >= HEADER_TIMEOUT_MS - 100, `closed after ${ms} ms, before the timeout`);
      });

      await t.step("half a header block, then nothing: closed", async () => {
        const conn = await connect();
        await conn.write(encoder.encode("GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-Slow: "));
        const ms = await closedWithin(conn, HEADER_TIMEOUT_MS + SLACK_MS);
        console.log(`  partial header closed after ${ms?.toFixed(0)} ms`);
        assert(ms !== undefined, "still open");
      });

      await t.step("a header trickled two bytes a second is cut off", async () => {
        const conn = await connect();
        let sent = 0;
        const trickle = setInterval(() => {
          conn.write(encoder.encode("GET /v1/ping HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa"[sent++]))
            .catch(() => clearInterval(trickle));
        }, 500);
        const ms = await closedWithin(conn, HEADER_TIMEOUT_MS + SLACK_MS);
        clearInterval(trickle);
        console.log(`  trickled header (${sent} bytes) closed after ${ms?.toFixed(0)} ms`);
        assert(ms !== undefined, "still open");
      });

      await t.step("keep-alive connection idle after its response: closed", async () => {
        const conn = await connect();
        await conn.write(encoder.encode("GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"));
        const head = await readResponseHead(conn);
        assert(head.startsWith("HTTP/1.1 200"), head);
        const ms = await closedWithin(conn, IDLE_TIMEOUT_MS + SLACK_MS);
        console.log(`  idle keep-alive connection closed after ${ms?.toFixed(0)} ms`);
        assert(ms !== undefined, "still open");
        assert(ms >= IDLE_TIMEOUT_MS - 500, `closed after ${ms} ms, before the idle timeout`);
      });

      await t.step("a request whose body is still arriving is not cut off", async () => {
        const conn = await connect();
        const body = "[" + " ".repeat(14) + "]";
        await conn.write(encoder.encode(
          "POST /v1/database/witness/call/bump HTTP/1.1\r\nHost: x\r\n" +
            `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
        ));
        // 16 bytes, one every 400 ms: 6.4 s, longer than both timeouts.
        for (const char of body) {
          await new Promise((r) => setTimeout(r, 400));
          await conn.write(encoder.encode(char));
        }
        const head = await readResponseHead(conn);
        console.log(`  slow body answered: ${head.split("\r\n")[0]}`);
        assert(head.startsWith("HTTP/1.1 200"), head);
      });

      await t.step("an idle WebSocket stays open past the idle timeout", async () => {
        const ws = new WebSocket(
          `${server.url.replace("http", "ws")}/v1/database/witness/subscribe`,
          "v2.bsatn.spacetimedb",
        );
        ws.binaryType = "arraybuffer";
        let closed: string | undefined;
        ws.onclose = (event) => (closed = `${event.code} ${event.reason}`);
        await new Promise<void>((resolve, reject) => {
          ws.onmessage = () => resolve();
          ws.onerror = () => reject(new Error("WebSocket failed"));
        });
        await new Promise((r) => setTimeout(r, IDLE_TIMEOUT_MS + HEADER_TIMEOUT_MS + 2000));
        console.log(
          `  WebSocket after ${IDLE_TIMEOUT_MS + HEADER_TIMEOUT_MS + 2000} ms idle: ${
            closed ?? "open"
          }`,
        );
        assert(closed === undefined && ws.readyState === WebSocket.OPEN, `closed: ${closed}`);
        ws.close();
      });
    } finally {
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* closed by the server */ }
      }
      await server.stop();
    }
  },
});
