/**
 * WebSocket compression: by default every frame is sent uncompressed (tag 0, always
 * legal); with --ws-compression a client asking for Gzip or Brotli gets every frame
 * compressed with it, and the official SDK works over it.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { decodeServerFrame } from "../../protocol/mod.ts";
import { connectBank } from "../fixtures/bindings/bank/index.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

async function firstFrame(url: string, compression: string): Promise<Uint8Array> {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/bank/subscribe?compression=${compression}`,
    ["v3.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  const frame = await new Promise<Uint8Array>((resolve, reject) => {
    socket.onmessage = (event) => resolve(new Uint8Array(event.data as ArrayBuffer));
    socket.onerror = () => reject(new Error("websocket error"));
  });
  socket.close();
  return frame;
}

Deno.test({
  name: "frames are uncompressed by default and compressed as asked with --ws-compression",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    for (const compress of [false, true]) {
      const server = await startTestServer({ wsCompression: compress });
      try {
        await publish(server.url, "bank", await fixtureBundle("bank"));
        for (const [asked, tag] of [["None", 0], ["Gzip", 2], ["Brotli", 1]] as const) {
          const frame = await firstFrame(server.url, asked);
          assertEquals(frame[0], compress ? tag : 0, `compress=${compress} asked=${asked}`);
          const [message] = await decodeServerFrame(frame, "v3");
          assertEquals(message.tag, "InitialConnection");
        }
        if (compress) {
          // The official SDK asks for gzip by default: a full round trip over compressed frames.
          await call(server.url, "bank", "seed", [0, 10, 100]);
          const conn = await connectBank(server.url, "bank");
          await conn.reducers.transfer({ from: 1, to: 2, amount: 5n });
          conn.disconnect();
          const totals = (await call(server.url, "bank", "totals", [])).json as number[];
          assertEquals(totals, [10, 1000]);
        }
      } finally {
        await server.close();
      }
    }
  },
});
