import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { boxBytes, unboxBytes } from "./port_bytes.ts";

Deno.test("boxBytes() and unboxBytes() carry nested byte arrays through a port unchanged", () => {
  const message = {
    type: "done",
    result: { ok: true, body: new Uint8Array([1, 2, 3]), headers: [["a", new Uint8Array([9])]] },
    part: new Uint8Array([5, 6, 7, 8]).subarray(1, 3),
    logs: [{ level: "Info", message: "x" }],
    n: 5n,
  };
  const channel = new MessageChannel();
  channel.port1.postMessage(boxBytes(message));
  const received = receiveMessageOnPort(channel.port2);
  channel.port1.close();
  assertEquals(unboxBytes(received?.message), message);
});

Deno.test("a 16 MiB byte array crosses a port boxed without being walked element by element", () => {
  // Unboxed, Deno's receiveMessageOnPort visits each of the 16 Mi elements (seconds and
  // hundreds of MiB of heap); boxed it is one ArrayBuffer. Counted, not timed: the boxed
  // message holds no Uint8Array for the walk to visit.
  const body = new Uint8Array(16 << 20).fill(7);
  const boxed = boxBytes({ result: { body } }) as { result: { body: unknown } };
  assert(!(boxed.result.body instanceof Uint8Array));
  const channel = new MessageChannel();
  channel.port1.postMessage(boxed);
  const received = receiveMessageOnPort(channel.port2);
  channel.port1.close();
  const out = unboxBytes(received?.message) as { result: { body: Uint8Array } };
  assertEquals(out.result.body.length, 16 << 20);
  assertEquals(out.result.body[12345], 7);
});
