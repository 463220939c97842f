import { deepStrictEqual as assertEquals, strictEqual, throws } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { nextIntervalTick, type ScheduleEntry, ScheduleQueue } from "./scheduler.ts";

function drain(queue: ScheduleQueue, nowMicros: number): ScheduleEntry[] {
  const out: ScheduleEntry[] = [];
  for (let entry = queue.popDue(nowMicros); entry; entry = queue.popDue(nowMicros)) {
    out.push(entry);
  }
  return out;
}

function ids(entries: ScheduleEntry[]): bigint[] {
  return entries.map((entry) => entry.kind === "row" ? entry.scheduledId : -1n);
}

Deno.test("ScheduleQueue pops due entries in due order, never one that is not due", () => {
  const queue = new ScheduleQueue();
  queue.arm(1, 3n, 300n, 300);
  queue.arm(1, 1n, 100n, 100);
  queue.arm(2, 2n, 200n, 200);
  strictEqual(queue.nextDueMicros(), 100);
  strictEqual(queue.popDue(99), undefined);
  assertEquals(ids(drain(queue, 200)), [1n, 2n]);
  strictEqual(queue.nextDueMicros(), 300);
  assertEquals(ids(drain(queue, 1000)), [3n]);
  strictEqual(queue.size, 0);
  strictEqual(queue.nextDueMicros(), undefined);
});

Deno.test("ScheduleQueue: cancel disarms, re-arming replaces the old timer", () => {
  const queue = new ScheduleQueue();
  queue.arm(1, 1n, 100n, 100);
  queue.arm(1, 2n, 100n, 100);
  queue.cancel(1, 1n);
  queue.cancel(1, 99n); // not armed: nothing happens
  queue.arm(1, 2n, 500n, 500);
  strictEqual(queue.size, 1);
  strictEqual(queue.isArmed(1, 1n), false);
  strictEqual(queue.isArmed(1, 2n), true);
  assertEquals(drain(queue, 400), []);
  const [entry] = drain(queue, 500);
  assertEquals(entry.kind === "row" && [entry.scheduledId, entry.intendedMicros], [2n, 500n]);
  strictEqual(queue.isArmed(1, 2n), false);
});

Deno.test("ScheduleQueue runs immediate requests in arrival order among equal due times", () => {
  const queue = new ScheduleQueue();
  queue.pushImmediate("a", new Uint8Array(), 10);
  queue.arm(1, 7n, 10n, 10);
  queue.pushImmediate("b", new Uint8Array(), 10);
  strictEqual(queue.immediateCount, 2);
  const order = drain(queue, 10).map((entry) =>
    entry.kind === "immediate" ? entry.reducer : String(entry.scheduledId)
  );
  assertEquals(order, ["a", "7", "b"]);
  strictEqual(queue.immediateCount, 0);
});

Deno.test("ScheduleQueue matches a sorted model under random arm/cancel/pop (100,000 pending)", () => {
  const random = seededRandom(12345);
  const queue = new ScheduleQueue();
  const model = new Map<bigint, number>();
  const startMs = performance.now();
  for (let i = 0; i < 100_000; i++) {
    const id = BigInt(Math.floor(random.next() * 120_000));
    const due = Math.floor(random.next() * 1_000_000);
    queue.arm(5, id, BigInt(due), due);
    model.set(id, due);
  }
  for (let i = 0; i < 40_000; i++) {
    const id = BigInt(Math.floor(random.next() * 120_000));
    queue.cancel(5, id);
    model.delete(id);
  }
  strictEqual(queue.size, model.size);
  const armMs = performance.now() - startMs;
  let now = 0;
  let popped = 0;
  while (model.size > 0) {
    now += 10_000;
    for (const entry of drain(queue, now)) {
      if (entry.kind !== "row") throw new Error("unexpected immediate entry");
      strictEqual(model.get(entry.scheduledId), entry.dueMicros, "popped with its latest due time");
      strictEqual(entry.dueMicros <= now, true, "never popped early");
      model.delete(entry.scheduledId);
      popped++;
    }
    for (const due of model.values()) strictEqual(due > now, true, "everything due was popped");
  }
  strictEqual(queue.size, 0);
  console.log(
    `100,000 arms + 40,000 cancels: ${armMs.toFixed(0)} ms; ${popped} pops: ${
      (performance.now() - startMs - armMs).toFixed(0)
    } ms (with the model checks)`,
  );
});

Deno.test("nextIntervalTick stays on the intended-time grid and skips missed ticks", () => {
  // On time: the next tick is one interval after the last intended time.
  strictEqual(nextIntervalTick(1000n, 50n, 1010n), 1050n);
  // Late by 3.5 intervals: ticks 1050..1150 are skipped, the next is strictly after now.
  strictEqual(nextIntervalTick(1000n, 50n, 1175n), 1200n);
  // Exactly on a grid point: strictly after it.
  strictEqual(nextIntervalTick(1000n, 50n, 1100n), 1150n);
  // Ran before the intended time (timestamps are max(intended, now)): one interval on.
  strictEqual(nextIntervalTick(1000n, 50n, 900n), 1050n);
  // A negative interval counts as its absolute value; zero fires again at once.
  strictEqual(nextIntervalTick(1000n, -50n, 1010n), 1050n);
  strictEqual(nextIntervalTick(1000n, 0n, 5000n), 1000n);
});

Deno.test("ScheduleQueue refuses immediate runs past its entry and byte limits, and gives room back", () => {
  const queue = new ScheduleQueue({ immediateMax: 3, immediateBytesMax: 1000 });
  const push = (bytes: number) => queue.pushImmediate("bump", new Uint8Array(bytes), 0);
  push(10);
  push(10);
  push(10);
  throws(() => push(10), /3 reducer runs are already pending for this database \(limit 3\)/);
  strictEqual(queue.popDue(0)?.kind, "immediate");
  throws(() => push(900), /would hold \d+ bytes \(limit 1000\)/);
  push(100);
  strictEqual(drain(queue, 0).length, 3);
  strictEqual(queue.immediateCount, 0);
  push(800);
  throws(() => queue.checkImmediateArgs(1001), /1001 bytes of arguments is over the limit of 1000/);
});
