import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BudgetExceededError, createBudget, isBudgetExceededError } from "./budget.ts";

/** Ticks until one throws (returning how many ran), or gives up after `limit` ticks. */
function ticksUntilThrow(tick: () => void, limit: number, each?: () => void): number {
  for (let i = 1; i <= limit; i++) {
    each?.();
    try {
      tick();
    } catch (error) {
      assert(error instanceof BudgetExceededError);
      return i;
    }
  }
  return -1;
}

Deno.test("tick() does not throw before the deadline and throws after it", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  budget.start(100);
  assertEquals(ticksUntilThrow(budget.tick, 1000), -1);
  clock.advanceMs(100);
  assertEquals(ticksUntilThrow(budget.tick, 10), 1);
  assert(budget.exceeded);
  budget.stop();
});

Deno.test("an exceeded budget stays exceeded on every tick until stop()", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 4096 });
  budget.start(10);
  clock.advanceMs(11);
  assert(ticksUntilThrow(budget.tick, 10_000) > 0);
  // Sticky: every later tick throws at once, however many are caught.
  for (let i = 0; i < 100; i++) assertEquals(ticksUntilThrow(budget.tick, 1), 1);
  assertEquals(budget.stop(), true);
  assert(!budget.exceeded);
  budget.start(10);
  assertEquals(ticksUntilThrow(budget.tick, 10_000), -1);
  assertEquals(budget.stop(), false);
});

Deno.test("the error carries budget and elapsed time and is recognised by its brand", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  budget.start(25);
  clock.advanceMs(30);
  let caught: unknown;
  try {
    budget.tick();
  } catch (error) {
    caught = error;
  }
  budget.stop();
  assert(caught instanceof BudgetExceededError);
  assertEquals([caught.budgetMs, caught.elapsedMs, caught.name], [25, 30, "BudgetExceededError"]);
  assert(isBudgetExceededError(caught));
  // An error rebuilt by name on the other side of a postMessage.
  assert(isBudgetExceededError(Object.assign(new Error(caught.message), { name: caught.name })));
  // Another realm's instance carries the same registered symbol.
  const foreign = { [Symbol.for("lightcone.BudgetExceededError")]: true };
  assert(isBudgetExceededError(foreign));
  assert(!isBudgetExceededError(new RangeError("x")));
  assert(!isBudgetExceededError("BudgetExceededError"));
});

Deno.test("slow iterations make the budget read the clock more often", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 4096, checkIntervalMs: 1 });
  budget.start(1000);
  // Each iteration takes 5 ms of "builtin" time between ticks.
  const ticks = ticksUntilThrow(budget.tick, 100_000, () => clock.advanceMs(5));
  budget.stop();
  assert(ticks > 0);
  // 200 iterations fit in the budget; the first check comes after at most 64 ticks, and the
  // check period then halves each time, so the overshoot is a handful of iterations.
  const overshootMs = ticks * 5 - 1000;
  assert(overshootMs <= 64 * 5, `overshoot ${overshootMs} ms`);
});

Deno.test("nested calls never extend the outer deadline and stop() restores the outer call", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  budget.start(100);
  clock.advanceMs(60);
  budget.start(1000); // a view called from inside a procedure
  assertEquals(budget.depth, 2);
  clock.advanceMs(50);
  assertEquals(ticksUntilThrow(budget.tick, 5), 1);
  budget.stop();
  // The outer call is over its own 100 ms as well.
  assertEquals(ticksUntilThrow(budget.tick, 5), 1);
  budget.stop();
  assertEquals(budget.depth, 0);
  throws(() => budget.stop(), /without a matching start/);
});

Deno.test("an inner call that runs out does not poison the outer call after stop()", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  budget.start(1000);
  budget.start(10);
  clock.advanceMs(20);
  assertEquals(ticksUntilThrow(budget.tick, 5), 1);
  budget.stop();
  assert(!budget.exceeded);
  assertEquals(ticksUntilThrow(budget.tick, 5), -1);
  budget.stop();
});

Deno.test("ticks outside start()/stop() never throw without an ambient guard", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  clock.advanceMs(1_000_000);
  assertEquals(ticksUntilThrow(budget.tick, 1000, () => clock.advanceMs(1000)), -1);
});

Deno.test("the ambient guard stops unstarted code until the next macrotask resets it", () => {
  const clock = new ManualClock();
  const resets: (() => void)[] = [];
  const budget = createBudget(clock, {
    ticksPerCheckMax: 1,
    ambient: { budgetMs: 50, scheduleReset: (callback) => resets.push(callback) },
  });
  assertEquals(ticksUntilThrow(budget.tick, 10), -1);
  assertEquals(resets.length, 1);
  clock.advanceMs(50);
  assertEquals(ticksUntilThrow(budget.tick, 10), 1);
  assertEquals(ticksUntilThrow(budget.tick, 1), 1);
  resets.shift()!();
  // After the reset a new stretch of unstarted code gets a fresh ambient budget.
  assertEquals(ticksUntilThrow(budget.tick, 10), -1);
  assertEquals(resets.length, 1);
});

Deno.test("start() replaces an ambient guard and a stale reset does not end a started call", () => {
  const clock = new ManualClock();
  const resets: (() => void)[] = [];
  const budget = createBudget(clock, {
    ticksPerCheckMax: 1,
    ambient: { budgetMs: 50, scheduleReset: (callback) => resets.push(callback) },
  });
  budget.tick();
  budget.start(10);
  resets.shift()!();
  clock.advanceMs(20);
  assertEquals(ticksUntilThrow(budget.tick, 5), 1);
  budget.stop();
  assert(!budget.exceeded);
});

Deno.test("createBudget() and start() reject non-positive settings", () => {
  throws(() => createBudget(new ManualClock(), { checkIntervalMs: 0 }), RangeError);
  const budget = createBudget(new ManualClock());
  throws(() => budget.start(Number.NaN), RangeError);
  throws(() => budget.start(-1), RangeError);
});

Deno.test("start() counts the deadline from the caller's clock reading when it passes one", () => {
  const clock = new ManualClock();
  clock.advanceMs(1000);
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  // The caller read the clock 40 ms ago: 60 ms of a 100 ms budget are left.
  budget.start(100, 960);
  clock.advanceMs(59);
  assertEquals(ticksUntilThrow(budget.tick, 5), -1);
  clock.advanceMs(1);
  assertEquals(ticksUntilThrow(budget.tick, 5), 1);
  assertEquals(budget.stop(), true);
});

Deno.test("reused call frames start clean: an exceeded call does not leak into the next ones", () => {
  const clock = new ManualClock();
  const budget = createBudget(clock, { ticksPerCheckMax: 1 });
  for (let call = 0; call < 5; call++) {
    budget.start(10);
    budget.start(50); // nested: the inner deadline is the outer one
    clock.advanceMs(10);
    assertEquals(ticksUntilThrow(budget.tick, 5), 1);
    assertEquals(budget.stop(), true);
    // The outer call is over its deadline too: its next tick throws.
    assertEquals(ticksUntilThrow(budget.tick, 5), 1);
    assertEquals(budget.stop(), true);
    assert(!budget.exceeded);
    assertEquals(budget.depth, 0);
    budget.start(10);
    assertEquals(ticksUntilThrow(budget.tick, 5), -1);
    assertEquals(budget.stop(), false);
  }
});

Deno.test("a call that returns after its deadline is exceeded even if no tick read the clock", () => {
  const clock = new ManualClock();
  // A builtin (sort, regexp) runs long between two ticks: no tick sees the deadline pass.
  const budget = createBudget(clock, { ticksPerCheckMax: 4096 });
  budget.start(100);
  clock.advanceMs(99);
  assertEquals(budget.stop(), false);
  budget.start(100);
  clock.advanceMs(100);
  assert(!budget.exceeded);
  assertEquals(budget.stop(), true);
  // Nested: the inner call inherits the outer deadline.
  budget.start(1000);
  budget.start(50);
  clock.advanceMs(60);
  assertEquals(budget.stop(), true);
  assertEquals(budget.stop(), false);
});
