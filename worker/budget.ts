/**
 * The time budget behind the tick calls that worker/instrument.ts inserts into tenant code.
 *
 * `tick()` is called at the start of every loop iteration and every function call, so its fast
 * path is one counter decrement and compare. Every `ticksPerCheck` ticks it reads the clock;
 * `ticksPerCheck` adapts so that a check happens roughly every `checkIntervalMs` even when
 * iterations are slow (builtins do a lot of work between ticks).
 *
 * Why the budget is **sticky** (once exceeded, every tick throws until `stop()`):
 * tenant code can catch the error. With a one-shot throw, `for (;;) { try { for (;;) {} } catch {} }`
 * would catch it and go on looping, and `for (;;) { try { ... } finally { continue } }` would
 * even cancel the throw. With sticky ticks placed as the *first statement* of every loop body
 * and function body:
 * - a loop cannot start another iteration: the tick at the top of its body runs before any
 *   `try` inside that body, so its throw leaves the loop. A `catch` or `finally { continue L }`
 *   can only sit inside some enclosing loop L's body, and L's own tick throws again, outside
 *   everything that L's body contains; each throw therefore escapes at least one more loop;
 * - a function cannot run: `catch { retry() }` or infinite recursion throws at the callee's
 *   entry, before any `try` in the callee, so each frame only unwinds;
 * - what a catch/finally block can still do is straight-line code, which is bounded by the
 *   program's length. So after the deadline, total work is bounded by roughly
 *   (stack depth + loop nesting) x program size, and the call ends with a throw.
 * Getters, setters, Proxy traps, toString/valueOf and iterator protocol hooks are all functions,
 * so they tick too. Builtins (Array.from, sort, RegExp matching...) do not tick: one builtin call
 * can overrun the budget by its own duration, so stop() also compares the clock with the
 * deadline and a call that returns late counts as exceeded (the host rolls it back); huge
 * allocations are the heap limit's job.
 *
 * The host should classify a failed call by `budget.exceeded`, not by the thrown value: tenant
 * code may catch the BudgetExceededError and throw something else while unwinding.
 */

/** What tick needs from a clock; lib/clock.ts's Clock satisfies it. */
export interface MonotonicClock {
  monotonicMs(): number;
}

/** Guard for tenant code that runs while no call is started (microtasks, finalizers, timers). */
export interface AmbientBudgetOptions {
  /** Budget for one stretch of unstarted code, from its first tick to the next macrotask. */
  budgetMs: number;
  /** Runs a callback at the next macrotask (after all queued microtasks), e.g. setTimeout 0. */
  scheduleReset(callback: () => void): void;
}

export interface BudgetOptions {
  /** Clock reads aim to be this far apart (default 1 ms). */
  checkIntervalMs?: number;
  /** Upper bound on ticks between clock reads (default 4096). */
  ticksPerCheckMax?: number;
  /** Without this, ticks outside start()/stop() never throw. */
  ambient?: AmbientBudgetOptions;
}

export interface Budget {
  /** Called by instrumented code; throws BudgetExceededError once over budget. */
  readonly tick: () => void;
  /**
   * Arms a budget for one host call. Calls may nest (a view called from inside a procedure):
   * the inner deadline is never later than the outer one, and stop() restores the outer state.
   * `nowMs` is the budget clock's current time when the caller has just read it (saves a read).
   */
  start(budgetMs: number, nowMs?: number): void;
  /**
   * Ends the innermost started call, clears its exceeded state, and says if it was exceeded:
   * a tick threw, or the clock is past the call's deadline now (`nowMs`, read by the caller
   * from the budget's clock, or one clock read).
   */
  stop(nowMs?: number): boolean;
  /** True from the tick that found the deadline passed until the matching stop(). */
  readonly exceeded: boolean;
  /** Number of start() calls not yet stopped. */
  readonly depth: number;
}

const BRAND = Symbol.for("lightcone.BudgetExceededError");

/** Thrown by tick() once a call is over its time budget. */
export class BudgetExceededError extends Error {
  override name = "BudgetExceededError";
  readonly code = "BUDGET_EXCEEDED";
  readonly [BRAND] = true;
  constructor(readonly budgetMs: number, readonly elapsedMs: number) {
    super(`Call exceeded its time budget of ${budgetMs} ms`);
  }
}

/**
 * Recognises a BudgetExceededError from any realm in this thread (Symbol.for is shared), or an
 * error rebuilt with its name. A structured clone (postMessage) keeps only the message of a
 * custom Error, so a worker should report `budget.exceeded` in its reply instead.
 */
export function isBudgetExceededError(value: unknown): value is BudgetExceededError {
  if (typeof value !== "object" || value === null) return false;
  if ((value as { [BRAND]?: unknown })[BRAND] === true) return true;
  return (value as { name?: unknown }).name === "BudgetExceededError";
}

const IDLE = 0;
const RUNNING = 1;
const AMBIENT = 2;
/** Ended call frames kept for reuse (nesting depth rarely exceeds 2). */
const SPARE_FRAMES_MAX = 8;

interface Frame {
  state: number;
  startedMs: number;
  deadlineMs: number;
  budgetMs: number;
  exceeded: boolean;
}

/** Creates a budget; pass `budget.tick` to installSandboxGlobals. */
export function createBudget(clock: MonotonicClock, options: BudgetOptions = {}): Budget {
  const checkIntervalMs = options.checkIntervalMs ?? 1;
  const ticksPerCheckMax = options.ticksPerCheckMax ?? 4096;
  if (!(checkIntervalMs > 0) || !(ticksPerCheckMax >= 1)) {
    throw new RangeError("Budget check interval and ticks per check must be positive");
  }
  const ambient = options.ambient;
  let ticksPerCheck = Math.min(64, ticksPerCheckMax);
  let countdown = ticksPerCheck;
  let lastCheckMs = 0;
  let ambientGeneration = 0;
  let current: Frame = idleFrame();
  const outer: Frame[] = [];
  const spareFrames: Frame[] = [];
  /** The idle frame stop() returns to; never mutated (slowTick replaces, never edits, IDLE). */
  const idleBetweenCalls: Frame = Object.freeze(idleFrame());

  function idleFrame(): Frame {
    return { state: IDLE, startedMs: 0, deadlineMs: Infinity, budgetMs: 0, exceeded: false };
  }

  function exceed(nowMs: number): never {
    current.exceeded = true;
    countdown = 0;
    throw new BudgetExceededError(current.budgetMs, nowMs - current.startedMs);
  }

  function slowTick(): void {
    if (current.exceeded) {
      countdown = 0;
      throw new BudgetExceededError(current.budgetMs, clock.monotonicMs() - current.startedMs);
    }
    const nowMs = clock.monotonicMs();
    // Adapt the check period: halve it when checks are too far apart, double when too close.
    const sinceLastMs = nowMs - lastCheckMs;
    if (sinceLastMs > 2 * checkIntervalMs) {
      ticksPerCheck = Math.max(1, ticksPerCheck >> 1);
    } else if (sinceLastMs < checkIntervalMs / 2) {
      ticksPerCheck = Math.min(ticksPerCheckMax, ticksPerCheck * 2);
    }
    lastCheckMs = nowMs;
    countdown = ticksPerCheck;
    if (current.state === IDLE) {
      if (ambient === undefined) return;
      current = {
        state: AMBIENT,
        startedMs: nowMs,
        deadlineMs: nowMs + ambient.budgetMs,
        budgetMs: ambient.budgetMs,
        exceeded: false,
      };
      const generation = ++ambientGeneration;
      ambient.scheduleReset(() => {
        if (current.state === AMBIENT && generation === ambientGeneration) current = idleFrame();
      });
      return;
    }
    if (nowMs >= current.deadlineMs) exceed(nowMs);
  }

  function tick(): void {
    if (--countdown > 0) return;
    slowTick();
  }

  return {
    tick,
    start(budgetMs: number, nowMs = clock.monotonicMs()): void {
      if (!(budgetMs >= 0)) throw new RangeError(`Budget "${budgetMs}" ms is not a duration`);
      outer.push(current);
      // An ambient guard belongs to whatever ran before this call; a started call replaces it.
      const parentDeadlineMs = current.state === RUNNING ? current.deadlineMs : Infinity;
      // Frames of ended calls are reused: a reducer call allocates nothing here.
      const frame = spareFrames.pop() ?? idleFrame();
      frame.state = RUNNING;
      frame.startedMs = nowMs;
      frame.deadlineMs = Math.min(nowMs + budgetMs, parentDeadlineMs);
      frame.budgetMs = budgetMs;
      frame.exceeded = false;
      current = frame;
      lastCheckMs = nowMs;
      countdown = ticksPerCheck;
    },
    stop(nowMs?: number): boolean {
      const previous = outer.pop();
      if (previous === undefined) throw new Error("Budget stop() without a matching start()");
      const ended = current;
      // A call that returns after its deadline ran over it even if no tick saw the clock: time
      // spent inside one builtin (a long sort(), a backtracking regexp) is never ticked.
      const wasExceeded = ended.exceeded ||
        (ended.state === RUNNING && (nowMs ?? clock.monotonicMs()) >= ended.deadlineMs);
      if (ended.state === RUNNING && spareFrames.length < SPARE_FRAMES_MAX) spareFrames.push(ended);
      current = previous.state === AMBIENT ? idleBetweenCalls : previous;
      countdown = current.exceeded ? 0 : ticksPerCheck;
      return wasExceeded;
    },
    get exceeded(): boolean {
      return current.exceeded;
    },
    get depth(): number {
      return outer.length;
    },
  };
}
