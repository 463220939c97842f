import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { WsDecodeError } from "./_ws_codec.ts";
import { decodeV1ClientMessage, encodeV1ServerFrame } from "./ws_v1.ts";

Deno.test("decodeV1ClientMessage reads every client message kind", () => {
  const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
  const str = (text: string) => [...u32(text.length), ...new TextEncoder().encode(text)];
  assertEquals(
    decodeV1ClientMessage(new Uint8Array([0, ...str("go"), ...u32(1), 9, ...u32(7), 1])),
    {
      tag: "CallReducer",
      reducer: "go",
      args: new Uint8Array([9]),
      requestId: 7,
      flags: "NoSuccessNotify",
    },
  );
  assertEquals(
    decodeV1ClientMessage(new Uint8Array([4, ...u32(1), ...str("q"), ...u32(2), ...u32(3)])),
    { tag: "SubscribeMulti", queryStrings: ["q"], requestId: 2, queryId: 3 },
  );
  assertEquals(
    decodeV1ClientMessage(new Uint8Array([6, ...u32(2), ...u32(3)])),
    { tag: "UnsubscribeMulti", requestId: 2, queryId: 3 },
  );
});

Deno.test("decodeV1ClientMessage refuses random and truncated bytes with WsDecodeError only", () => {
  const random = seededRandom(7);
  for (let i = 0; i < 5000; i++) {
    const bytes = random.fill(new Uint8Array(Math.floor(random.next() * 40)));
    if (bytes.length > 0) bytes[0] %= 9;
    try {
      decodeV1ClientMessage(bytes);
    } catch (error) {
      assert(error instanceof WsDecodeError, String(error));
    }
  }
});

Deno.test("encodeV1ServerFrame writes IdentityToken as compression byte, tag, fields", () => {
  const frame = encodeV1ServerFrame({
    tag: "IdentityToken",
    identity: 0x0102n,
    token: "t",
    connectionId: 0x03n,
  });
  assertEquals(frame.length, 1 + 1 + 32 + 4 + 1 + 16);
  assertEquals([...frame.subarray(0, 4)], [0, 3, 0x02, 0x01]);
  assertEquals([...frame.subarray(34, 39)], [1, 0, 0, 0, "t".charCodeAt(0)]);
  assertEquals(frame[39], 3);
});
