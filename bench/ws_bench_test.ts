import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { percentile, splitCallFrames } from "./ws_bench.ts";

/** One ClientMessage::CallReducer as BSATN: tag 3, requestId u32, flags u8, name, args. */
function callReducer(requestId: number, argsBytes: number): Uint8Array {
  const name = new TextEncoder().encode("transfer");
  const bytes = new Uint8Array(1 + 4 + 1 + 4 + name.length + 4 + argsBytes);
  const view = new DataView(bytes.buffer);
  let at = 0;
  bytes[at++] = 3;
  view.setUint32(at, requestId, true);
  at += 4;
  bytes[at++] = 0;
  view.setUint32(at, name.length, true);
  at += 4;
  bytes.set(name, at);
  at += name.length;
  view.setUint32(at, argsBytes, true);
  at += 4;
  bytes.fill(requestId & 0xff, at);
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

Deno.test("splitCallFrames() cuts reducer calls at message boundaries within the frame limit", () => {
  const messages = Array.from({ length: 40 }, (_, i) => callReducer(i, 16));
  const payload = concat(messages);
  const frames = splitCallFrames(payload, 1024);
  assertEquals(concat(frames), payload);
  assertEquals(frames.every((frame) => frame.length <= 1024), true);
  // Each frame holds whole messages: its length is a multiple of one message's length.
  assertEquals(frames.every((frame) => frame.length % messages[0].length === 0), true);
  assertEquals(
    frames.length,
    Math.ceil(payload.length / (Math.floor(1024 / messages[0].length) * messages[0].length)),
  );
});

Deno.test("splitCallFrames() keeps a message larger than the limit whole", () => {
  const payload = concat([callReducer(1, 10), callReducer(2, 2000), callReducer(3, 10)]);
  const frames = splitCallFrames(payload, 1024);
  assertEquals(frames.map((frame) => frame.length), [32, 2022, 32]);
});

Deno.test("splitCallFrames() leaves payloads that are small or not all reducer calls alone", () => {
  const small = concat([callReducer(1, 16), callReducer(2, 16)]);
  assertEquals(splitCallFrames(small, 1024), [small]);
  const subscribe = new Uint8Array(2000);
  subscribe[0] = 0;
  const mixed = concat([callReducer(1, 1000), subscribe]);
  assertEquals(splitCallFrames(mixed, 1024), [mixed]);
  const truncated = concat([callReducer(1, 1000), callReducer(2, 100)]).subarray(0, 1100);
  assertEquals(splitCallFrames(truncated, 1024), [truncated]);
});

Deno.test("percentile() picks the nearest rank", () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  assertEquals(percentile(sorted, 0.5), 50);
  assertEquals(percentile(sorted, 0.99), 99);
  assertEquals(percentile([7], 0.99), 7);
  assertEquals(Number.isNaN(percentile([], 0.5)), true);
});
