/**
 * Node.js (and Deno) entry of the client matrix (bundled by support.ts, run by
 * runtimes_test.ts): reads one JSON request per stdin line, `{id, op, args}`, runs it
 * on a ChatDriver and writes one JSON reply per stdout line, `{id, ok, result | error}`.
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { ChatDriver, tapWebSocketFrames } from "./driver.ts";

// Which WebSocket the SDK gets: with LIGHTCONE_CLIENT_WEBSOCKET=ws, the `ws` package's
// as the global (what jsdom-based setups hand the SDK; it sends the protocol list as
// "a,b" without a space); otherwise Node 22's global WebSocket, or on Node 20 undici's,
// which the SDK imports itself (it asks users to install `undici`) and which is the
// same module instance this import returns.
const wsName = "ws";
const undiciName = "undici";
let implementation = typeof WebSocket === "undefined" ? "undici package" : "global WebSocket";
if (process.env.LIGHTCONE_CLIENT_WEBSOCKET === "ws") {
  Object.assign(globalThis, { WebSocket: (await import(wsName)).WebSocket });
  implementation = "ws package";
}
const socketClass = typeof WebSocket === "undefined"
  ? (await import(undiciName)).WebSocket
  : WebSocket;
tapWebSocketFrames(socketClass);

const driver = new ChatDriver();
const write = (reply: unknown) => process.stdout.write(JSON.stringify(reply) + "\n");
write({
  id: 0,
  ok: true,
  result: {
    node: process.version,
    deno: (globalThis as { Deno?: { version: { deno: string } } }).Deno?.version.deno,
    webSocket: implementation,
  },
});
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "") continue;
  const { id, op, args } = JSON.parse(line);
  try {
    write({ id, ok: true, result: await driver.run(op, args) });
  } catch (error) {
    write({
      id,
      ok: false,
      error: error instanceof Error ? error.stack ?? error.message : String(error),
    });
  }
}
process.exit(0);
