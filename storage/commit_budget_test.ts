import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { lengthPrefixed } from "./commitlog/frame.ts";
import { CommitBudgetCheck } from "./commit_budget.ts";
import { DurabilityCore } from "./durability_core.ts";
import { MemoryFs } from "./fs_layer.ts";

Deno.test("CommitBudgetCheck refuses an oversized record and more bytes than the rate allows", () => {
  let nowMs = 0;
  const check = new CommitBudgetCheck(
    { txRecordBytesMax: 1000, commitLogBytesPerS: 1000 },
    () => nowMs,
  );
  // Twice the limits are tolerated (the worker's own estimate is an upper bound).
  assertEquals(check.check(lengthPrefixed([new Uint8Array(1999)]), 1), undefined);
  assert(
    check.check(lengthPrefixed([new Uint8Array(10), new Uint8Array(2001)]), 2)
      ?.includes("a transaction of 2001 bytes is over the limit of 1000 bytes"),
  );
  // Burst: 8 s of rate, doubled: 16,000 bytes, of which about 2,000 are spent.
  for (let i = 0; i < 6; i++) {
    assertEquals(check.check(lengthPrefixed([new Uint8Array(1996)]), 1), undefined);
  }
  assert(check.check(lengthPrefixed([new Uint8Array(1996)]), 1)?.includes("commit log rate"));
  // It refills at twice the rate.
  nowMs = 1000;
  assertEquals(check.check(lengthPrefixed([new Uint8Array(1996)]), 1), undefined);
});

Deno.test("the storage actor stops a database whose worker sends past its commit limits", () => {
  const fs = new MemoryFs();
  const failed: string[] = [];
  const durable: bigint[] = [];
  const core = new DurabilityCore(fs, "/data", {
    durable: (_key, offset) => durable.push(offset),
    failed: (_key, error) => failed.push(error.message),
    toDatabase: () => {},
    snapshotWritten: () => {},
  }, { segmentBytes: 1 << 20, preallocateBytes: 4096, monotonicMs: () => 0 });
  core.open("honest", { txRecordBytesMax: 1000, commitLogBytesPerS: 1000 });
  core.open("hostile", { txRecordBytesMax: 1000, commitLogBytesPerS: 1000 });
  const append = (first: number, size: number) => ({
    kind: "append" as const,
    firstTxOffset: BigInt(first),
    recordCount: 1,
    bytes: lengthPrefixed([new Uint8Array(size).fill(1)]),
  });
  const originalError = console.error;
  console.error = () => {};
  try {
    core.receive("honest", append(0, 900));
    core.receive("hostile", append(0, 5000));
    core.flush();
  } finally {
    console.error = originalError;
  }
  assertEquals(durable, [1n]);
  assertEquals(failed.length, 1);
  assert(failed[0].includes("broke its commit log limits: a transaction of 5000 bytes"));
});
