import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("TokenBucket starts full, refuses what it lacks without spending, and refills", () => {
  const bucket = new TokenBucket(100, 1000);
  assertEquals(bucket.take(600, 0), true);
  assertEquals(bucket.take(600, 0), false);
  assertEquals(bucket.available(0), 400);
  // 2 s at 100/s: 200 more.
  assertEquals(bucket.take(600, 2000), true);
  assertEquals(bucket.available(2000), 0);
  // Never above capacity, and a clock that goes back refills nothing.
  assertEquals(bucket.available(1_000_000), 1000);
  assertEquals(bucket.available(0), 1000);
  assertEquals(bucket.take(1001, 1_000_000), false);
});

Deno.test("TokenBucket rejects a rate or capacity that is not a positive number", () => {
  throws(() => new TokenBucket(0, 10), /rate "0"/);
  throws(() => new TokenBucket(10, Number.NaN), /capacity "NaN"/);
});
