import { deepStrictEqual, throws } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import {
  decodeTxBatch,
  decodeTxRecord,
  encodeTxRecord,
  MalformedRecordError,
  TxBatchEncoder,
  type TxRecord,
} from "./commit_record.ts";
import { checkRecordLayout } from "./commitlog/frame.ts";

function randomRecord(seed: number): TxRecord {
  const random = seededRandom(seed);
  const bytes = (n: number) => random.fill(new Uint8Array(n));
  const count = (max: number) => Math.floor(random.next() * max);
  return {
    reducerName: ["transfer", "", "héllo_wörld", "🚀 launch"][seed % 4],
    callerIdentity: bytes(32),
    callerConnectionId: bytes(16),
    timestampMicros: BigInt(seed) * 1_000_003n - 5n,
    args: bytes(count(40)),
    tables: Array.from({ length: count(4) }, (_, t) => ({
      tableId: t * 7 + 4096,
      inserts: Array.from({ length: count(5) }, () => bytes(count(30))),
      deletes: Array.from({ length: count(3) }, () => bytes(count(30))),
    })),
    sequences: Array.from({ length: count(3) }, (_, s) => ({
      tableId: s,
      column: s + 1,
      next: [0n, 1n, -1n, (1n << 127n) - 1n, -(1n << 127n), 12345678901234567890n][(seed + s) % 6],
    })),
  };
}

Deno.test("decodeTxRecord() returns what encodeTxRecord() was given", () => {
  for (let seed = 0; seed < 200; seed++) {
    const record = randomRecord(seed);
    deepStrictEqual(decodeTxRecord(encodeTxRecord(record)), record);
  }
});

Deno.test("TxBatchEncoder packs records in the commit payload layout and starts over on finish()", () => {
  const encoder = new TxBatchEncoder(16);
  const records = Array.from({ length: 50 }, (_, i) => randomRecord(i));
  for (const record of records) encoder.add(record);
  const batch = encoder.finish();
  deepStrictEqual(batch.recordCount, 50);
  deepStrictEqual(batch.bytes.byteOffset, 0);
  deepStrictEqual(batch.bytes.buffer.byteLength, batch.bytes.length);
  deepStrictEqual(checkRecordLayout(batch.bytes, 50), undefined);
  deepStrictEqual(decodeTxBatch(batch.bytes), records);
  deepStrictEqual(encoder.recordCount, 0);
  encoder.add(records[3]);
  deepStrictEqual(decodeTxBatch(encoder.finish().bytes), [records[3]]);
});

Deno.test("a bad identity length is refused and leaves the batch unchanged", () => {
  const encoder = new TxBatchEncoder();
  encoder.add(randomRecord(1));
  const bad = { ...randomRecord(2), callerIdentity: new Uint8Array(31) };
  throws(() => encoder.add(bad), TypeError);
  deepStrictEqual(decodeTxBatch(encoder.finish().bytes), [randomRecord(1)]);
});

Deno.test("decodeTxRecord() rejects every truncation of a record", () => {
  const bytes = encodeTxRecord(randomRecord(9));
  for (let cut = 0; cut < bytes.length; cut++) {
    throws(() => decodeTxRecord(bytes.subarray(0, cut)), MalformedRecordError);
  }
  const extended = new Uint8Array(bytes.length + 1);
  extended.set(bytes);
  throws(() => decodeTxRecord(extended), MalformedRecordError);
});
