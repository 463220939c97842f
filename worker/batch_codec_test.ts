import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  CallPacker,
  checkPackedResults,
  expandItems,
  forEachRequest,
  PACKED_RESULT_FIELDS,
  ResultPacker,
} from "./batch_codec.ts";
import type { BatchItem, BatchMessage, WorkerRequest } from "./messages.ts";

function call(id: number, reducer: string, args: number[], sender: bigint, connectionId: bigint) {
  return {
    kind: "call" as const,
    id,
    reducer,
    args: new Uint8Array(args),
    sender,
    connectionId,
    timestampMicros: 1_700_000_000_000_000n + BigInt(id),
  };
}

Deno.test("packed calls come back in order among the unpacked requests, after a structured clone", () => {
  const packer = new CallPacker();
  const queue: WorkerRequest[] = [];
  const sent: WorkerRequest[] = [];
  const subscribe: WorkerRequest = {
    kind: "subscribe",
    id: 3,
    connectionId: 9n,
    querySetId: 1,
    queries: ["SELECT * FROM t"],
    sender: 5n,
    isOwner: false,
  };
  const first = call(1, "transfer", [1, 2, 3], 5n, 9n);
  const second = call(2, "transfer", [], 6n, 9n); // same connection id, other sender
  const third = call(4, "say_hello", new Array(100).fill(7), 5n, 9n);
  for (const request of [first, second]) {
    const { id, kind: _, ...fields } = request;
    assertEquals(packer.add(fields, id, queue.length), true);
    sent.push(request);
  }
  queue.push(subscribe);
  sent.push(subscribe);
  const { id, kind: _, ...fields } = third;
  assertEquals(packer.add(fields, id, queue.length), true);
  sent.push(third);
  assertEquals(packer.count, 3);

  const calls = packer.finish()!;
  assertEquals(packer.count, 0);
  assertEquals(packer.finish(), undefined);
  const message = structuredClone({ type: "batch", requests: queue, calls }, {
    transfer: [calls.args.buffer],
  }) as BatchMessage;
  const seen: WorkerRequest[] = [];
  forEachRequest(message, (request) => seen.push(request));
  assertEquals(seen, sent);
});

Deno.test("a call whose timestamp is not a safe integer is refused by the packer", () => {
  const packer = new CallPacker();
  const { id, kind: _, ...fields } = call(1, "r", [], 1n, 2n);
  assertEquals(packer.add({ ...fields, timestampMicros: 1n << 60n }, id, 0), false);
  assertEquals(packer.count, 0);
});

Deno.test("packed results expand into committed call results at their place among the items", () => {
  const packer = new ResultPacker();
  const items: BatchItem[] = [];
  packer.add(1, 10, 5, items.length);
  items.push({
    kind: "call",
    id: 2,
    status: "failed_user",
    message: "no",
    txOffset: 10,
    durationMicros: 3,
  });
  packer.add(3, 11, 7, items.length);
  packer.add(4, 12, 8, items.length);
  items.push({ kind: "update", txOffset: 13, callId: 5, deltas: [] });
  const committed = packer.finish()!;
  assertEquals(committed.length, 3 * PACKED_RESULT_FIELDS);
  assertEquals(packer.finish(), undefined);
  const expanded = expandItems({ type: "batch", items, committed, logs: [] });
  assertEquals(expanded, [
    { kind: "call", id: 1, status: "committed", txOffset: 10, durationMicros: 5 },
    { kind: "call", id: 2, status: "failed_user", message: "no", txOffset: 10, durationMicros: 3 },
    { kind: "call", id: 3, status: "committed", txOffset: 11, durationMicros: 7 },
    { kind: "call", id: 4, status: "committed", txOffset: 12, durationMicros: 8 },
    { kind: "update", txOffset: 13, callId: 5, deltas: [] },
  ]);
  assertEquals(expandItems({ type: "batch", items, logs: [] }), items);
});

Deno.test("malformed packed results are refused instead of expanded", () => {
  const items: BatchItem[] = [];
  const expand = (committed: Float64Array) => () =>
    expandItems({ type: "batch", items, committed, logs: [] });
  throws(expand(new Float64Array([1, 2, 3])), /partial entry/);
  throws(expand(new Float64Array([1, 2, 3, 1])), /out of order/);
  throws(expand(new Float64Array([1, NaN, 3, 0])), /non-count/);
  assertEquals(checkPackedResults(new Float64Array([1, 2, 3, 0]), 0), undefined);
  assertEquals(checkPackedResults([1, 2, 3, 0], 0), "committed is not a Float64Array");
});
