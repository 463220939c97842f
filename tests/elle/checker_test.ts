/**
 * The list-append checker against hand-built histories: valid ones pass, and each anomalous one
 * is reported as exactly the anomaly it was built to show.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import {
  type AnomalyKind,
  checkListAppend,
  describeResult,
  type HistoryEvent,
  type MicroOp,
} from "./checker.ts";

/** Builds histories: `run(p, t0, t1, ops)` is one operation invoked at t0 and done at t1. */
class History {
  readonly events: HistoryEvent[] = [];
  run(
    process: number,
    invokeTime: number,
    completeTime: number,
    txn: MicroOp[],
    outcome: "ok" | "fail" | "info" = "ok",
  ): this {
    const invoked = txn.map((micro) => micro.f === "read" ? { ...micro, value: null } : micro);
    this.events.push({ type: "invoke", process, time: invokeTime, txn: invoked });
    this.events.push({
      type: outcome,
      process,
      time: completeTime,
      txn: outcome === "ok" ? txn : invoked,
    });
    return this;
  }
  /** A client-cache read (stale: ordered by process only). */
  cache(process: number, time: number, reads: [number, number[]][]): this {
    const txn: MicroOp[] = reads.map(([key, value]) => ({ f: "read", key, value }));
    this.events.push({ type: "invoke", process, time, txn, stale: true });
    this.events.push({ type: "ok", process, time, txn, stale: true });
    return this;
  }
}

const append = (key: number, value: number): MicroOp => ({ f: "append", key, value });
const read = (key: number, value: number[]): MicroOp => ({ f: "read", key, value });

function kinds(history: History): AnomalyKind[] {
  const result = checkListAppend(history.events);
  return [...new Set(result.anomalies.map((anomaly) => anomaly.kind))].sort();
}

function cycleNames(history: History): string[] {
  return checkListAppend(history.events).anomalies.filter((a) => a.kind === "cycle")
    .map((a) => a.name!);
}

Deno.test("a serial history with concurrent, failed and unknown operations is valid", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1), append(2, 2)])
    .run(2, 5, 15, [read(1, [1]), append(1, 3)]) // concurrent with the first
    .run(3, 6, 8, [append(2, 4)], "fail")
    .run(1, 20, 30, [read(1, [1, 3]), read(2, [2])])
    .run(4, 21, 22, [append(2, 5)], "info") // unknown: never seen, allowed
    .run(5, 23, 24, [append(1, 6)], "info") // unknown: seen, allowed
    .run(2, 31, 40, [append(1, 7), read(1, [1, 3, 6, 7])])
    .cache(1, 35, [[1, [1, 3]], [2, [2]]]) // stale but not older than what process 1 saw
    .run(1, 41, 50, [read(1, [1, 3, 6, 7]), read(2, [2])]);
  const result = checkListAppend(history.events);
  assert(result.valid, describeResult(result));
  assertEquals(result.stats, { ok: 6, fail: 1, info: 2, appendsOk: 4, readsOk: 8, keys: 2 });
});

Deno.test("an acknowledged append missing from a later read is a lost write", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1)])
    .run(2, 20, 30, [read(1, [])]);
  assertEquals(kinds(history), ["lost-write"]);
  // Seen again later (the write came back, e.g. after a restart): also a real-time cycle.
  history.run(3, 40, 50, [read(1, [1])]);
  assertEquals(kinds(history), ["cycle", "lost-write"]);
  assertEquals(cycleNames(history), ["G-single-realtime"]);
  // The same read while the append was still in flight is fine.
  const concurrent = new History()
    .run(1, 0, 10, [append(1, 1)])
    .run(2, 5, 30, [read(1, [])]);
  assertEquals(kinds(concurrent), []);
});

Deno.test("a stale cache read may miss another client's append but not its own", () => {
  const others = new History()
    .run(1, 0, 10, [append(1, 1)])
    .cache(2, 20, [[1, []]]);
  assertEquals(kinds(others), []);
  const own = new History()
    .run(1, 0, 10, [append(1, 1)])
    .cache(1, 20, [[1, []]])
    .cache(2, 30, [[1, [1]]]);
  assertEquals(kinds(own), ["cycle", "non-monotonic-read"]);
  assertEquals(cycleNames(own), ["G-single-process"]);
});

Deno.test("a value twice in a list is a duplicated append", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1)])
    .run(2, 20, 30, [read(1, [1, 1])]);
  assertEquals(kinds(history), ["duplicate-append"]);
});

Deno.test("values nobody appended, or appended elsewhere, are garbage reads", () => {
  const history = new History()
    .run(1, 0, 10, [append(2, 1)])
    .run(2, 20, 30, [read(1, [1, 99])]);
  const result = checkListAppend(history.events);
  assertEquals(result.anomalies.map((a) => a.kind), ["garbage-read", "garbage-read"]);
  assert(result.anomalies[0].message.includes("was appended to key 2"));
  assert(result.anomalies[1].message.includes("nobody appended"));
});

Deno.test("a value from a failed append is an aborted read", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1)], "fail")
    .run(2, 20, 30, [read(1, [1])]);
  assertEquals(kinds(history), ["aborted-read"]);
});

Deno.test("reads that are not prefixes of each other disagree on the order", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1)])
    .run(2, 0, 10, [append(1, 2)])
    .run(3, 20, 30, [read(1, [1, 2])])
    .run(4, 20, 30, [read(1, [2, 1])]);
  assertEquals(kinds(history), ["incompatible-order"]);
});

Deno.test("a client reading a shorter list than it read before is non-monotonic", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1)])
    .run(1, 11, 12, [append(1, 2)])
    .cache(2, 20, [[1, [1, 2]]])
    .cache(2, 25, [[1, [1]]]);
  assertEquals(kinds(history), ["cycle", "non-monotonic-read"]);
});

Deno.test("a read inside a transaction must see the transaction's own appends", () => {
  const history = new History().run(1, 0, 10, [append(1, 1), read(1, [])]);
  assertEquals(kinds(history), ["internal"]);
  const twice = new History()
    .run(1, 0, 10, [read(1, []), append(1, 1), read(1, [1, 1])]);
  assert(kinds(twice).includes("internal"));
  const fine = new History().run(1, 0, 10, [read(1, []), append(1, 1), read(1, [1])]);
  assertEquals(kinds(fine), []);
});

Deno.test("write cycles: G0", () => {
  // T1 wrote first on key 1, T2 first on key 2: each overwrote the other.
  const history = new History()
    .run(1, 0, 10, [append(1, 1), append(2, 4)])
    .run(2, 0, 10, [append(1, 2), append(2, 3)])
    .run(3, 20, 30, [read(1, [1, 2]), read(2, [3, 4])]);
  assertEquals(cycleNames(history), ["G0"]);
});

Deno.test("circular information flow: G1c", () => {
  const history = new History()
    .run(1, 0, 10, [append(1, 1), read(2, [2])])
    .run(2, 0, 10, [append(2, 2), read(1, [1])]);
  assertEquals(cycleNames(history), ["G1c"]);
});

Deno.test("read skew: G-single", () => {
  // T1 saw T2's append to key 2 but not its append to key 1.
  const history = new History()
    .run(2, 0, 10, [append(1, 1), append(2, 2)])
    .run(1, 0, 10, [read(1, []), read(2, [2])])
    .run(3, 20, 30, [read(1, [1])]);
  assertEquals(cycleNames(history), ["G-single"]);
});

Deno.test("write skew: G2", () => {
  const history = new History()
    .run(1, 0, 10, [read(1, []), append(2, 2)])
    .run(2, 0, 10, [read(2, []), append(1, 1)])
    .run(3, 20, 30, [read(1, [1]), read(2, [2])]);
  assertEquals(cycleNames(history), ["G2"]);
});

Deno.test("a malformed history is refused", () => {
  throws(
    () => checkListAppend([{ type: "ok", process: 1, time: 0, txn: [] }]),
    /completes with no open operation/,
  );
  throws(
    () =>
      checkListAppend(
        new History().run(1, 0, 1, [append(1, 1)]).run(2, 0, 1, [append(1, 1)]).events,
      ),
    /appended twice/,
  );
});

Deno.test("a long serial history (4000 operations, rotating keys) is valid", () => {
  // 4 processes, 4000 operations, keys rotating every 20 appends: a serial execution.
  const history = new History();
  const lists = new Map<number, number[]>();
  let value = 0;
  let time = 0;
  for (let i = 0; i < 4000; i++) {
    const key = Math.floor(value / 20);
    const process = i % 4;
    const list = lists.get(key) ?? [];
    if (i % 3 === 0) {
      history.run(process, time, time + 1, [read(key, [...list]), read(key + 1, [])]);
    } else {
      list.push(value);
      lists.set(key, list);
      history.run(process, time, time + 1, [append(key, value++)]);
    }
    time += 2;
  }
  const result = checkListAppend(history.events);
  assert(result.valid, describeResult(result));
});
