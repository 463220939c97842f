import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("TokenBucket starts full, refuses what it lacks without spending, and refills", () => {
  let nowMs = 0;
  let reads = 0;
  const bucket = new TokenBucket(100, 1000, () => (reads++, nowMs));
  assertEquals(bucket.take(600), true);
  assertEquals(bucket.take(600), false);
  assertEquals(bucket.available(), 400);
  // 2 s at 100/s: 200 more.
  nowMs = 2000;
  assertEquals(bucket.take(600), true);
  assertEquals(bucket.available(), 0);
  // Never above capacity, and a clock that goes back refills nothing.
  nowMs = 1_000_000;
  assertEquals(bucket.available(), 1000);
  nowMs = 0;
  assertEquals(bucket.available(), 1000);
  assertEquals(bucket.take(1001), false);
  assertEquals(reads > 0, true);
});

Deno.test("TokenBucket does not credit time spent full after a take (no double burst)", () => {
  let nowMs = 0;
  const bucket = new TokenBucket(2, 20, () => nowMs);
  // Full and idle for 10 s, then a burst: what is left must not refill from the idle time.
  nowMs = 10_000;
  assertEquals(bucket.take(16), true);
  nowMs = 10_100;
  assertEquals(bucket.take(16), false);
  assertEquals(Math.round(bucket.available() * 10) / 10, 4.2);
});

Deno.test("TokenBucket rejects a rate or capacity that is not a positive number", () => {
  throws(() => new TokenBucket(0, 10, () => 0), /rate "0"/);
  throws(() => new TokenBucket(10, Number.NaN, () => 0), /capacity "NaN"/);
});
