import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { OverloadedError } from "../lib/errors.ts";
import { ResponseBudget } from "./response_budget.ts";

Deno.test("ResponseBudget bounds bytes per key and in all; a waiter gets room when it is freed", async () => {
  const budget = new ResponseBudget({ totalBytesMax: 30, perKeyBytesMax: 20, waitMs: 60_000 });
  const a = {}, b = {};
  const first = await budget.reserve(a, 20, "a call");
  const second = await budget.reserve(b, 10, "a call");
  assertEquals([budget.heldBytesOf(a), budget.heldBytesOf(b), budget.heldBytes], [20, 10, 30]);
  // a is full: its next call waits until the first shrinks to its real size.
  const waiting = budget.reserve(a, 5, "a call");
  first.shrink(15);
  const third = await waiting;
  assertEquals([budget.heldBytesOf(a), budget.heldBytes], [20, 30]);
  first.release();
  first.release();
  second.release();
  third.release();
  assertEquals(budget.heldBytes, 0);
});

Deno.test("ResponseBudget refuses with OverloadedError after waiting, and when too many wait", async () => {
  const budget = new ResponseBudget({
    totalBytesMax: 10,
    perKeyBytesMax: 10,
    waitMs: 1,
    waitersMax: 1,
  });
  const key = {};
  const held = await budget.reserve(key, 10, "an HTTP handler");
  const waiting = budget.reserve(key, 1, "an HTTP handler");
  await rejects(budget.reserve(key, 1, "an HTTP handler"), OverloadedError);
  await rejects(
    waiting,
    (error: Error) => error instanceof OverloadedError && error.message.includes("waited 1 ms"),
  );
  held.release();
  assertEquals(budget.heldBytes, 0);
});

Deno.test("meteredBody() gives its bytes back once the last chunk is read, or on cancel", async () => {
  const budget = new ResponseBudget({ totalBytesMax: 1 << 20, perKeyBytesMax: 1 << 20 });
  const key = {};
  const body = new Uint8Array(200_000).fill(3);
  const reservation = await budget.reserve(key, body.length, "a call");
  const read = new Uint8Array(
    await new Response(budget.meteredBody(body, reservation)).arrayBuffer(),
  );
  assertEquals([read.length, read[199_999], budget.heldBytes], [200_000, 3, 0]);
  const other = await budget.reserve(key, body.length, "a call");
  const stream = budget.meteredBody(body, other);
  const reader = stream.getReader();
  await reader.read();
  assertEquals(budget.heldBytes, 200_000);
  await reader.cancel();
  assertEquals(budget.heldBytes, 0);
});
