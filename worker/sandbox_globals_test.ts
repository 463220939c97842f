// These tests run tenant-like modules inside a real `permissions: "none"` Worker that installed
// the sandbox globals (worker/testdata/sandbox_harness.ts); installing mutates the realm, so it
// never happens in the test process itself.
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type CallOutcome, SandboxHarness } from "./testdata/harness_client.ts";

/** The budget of calls that must be stopped. */
const BUDGET_MS = 100;
/**
 * The budget of calls that must finish: one no loaded machine outlasts (a trivial call under the
 * 100 ms budget failed when the worker was descheduled for that long).
 */
const FINISH_BUDGET_MS = 60_000;

/** Module sources whose `run()` never ends on its own. */
const RUNAWAYS: Record<string, string> = {
  "for(;;){}": "for(;;){}",
  "while(true){}": "while(true){}",
  "do{}while(1)": "do{}while(1)",
  "labeled loop with continue": "outer: for(;;){ for(;;){ continue outer; } }",
  "catch around a loop, in a loop": "for(;;){ try { for(;;){} } catch {} }",
  "finally { continue }": "for(;;){ try {} finally { continue } }",
  "finally { continue outer }": "a: for(;;){ try { for(;;){} } finally { continue a } }",
  "recursion caught and retried": "function r(){ try { r() } catch { r() } } r()",
  "new Function": "new Function('for(;;){}')()",
  "Function without new": "Function('a', 'while(a){}')(1)",
  "(() => {}).constructor": "(() => {}).constructor('for(;;){}')()",
  "Reflect.construct(Function)": "Reflect.construct(Function, ['for(;;){}'])()",
  "subclass of Function":
    "class F extends Function { constructor(){ super('for(;;){}') } } new F()()",
  "AsyncFunction constructor":
    "return Object.getPrototypeOf(async function(){}).constructor('for(;;){}')()",
  "GeneratorFunction constructor": "(function*(){}).constructor('for(;;){}')().next()",
  "AsyncGeneratorFunction constructor":
    "return (async function*(){}).constructor('for(;;){} yield 1')().next()",
  "parameters of a generated function": "Function('a = (() => { for(;;){} })()', 'return a')()",
  "eval": "eval('for(;;){}')",
  "indirect eval": "(0, eval)('while(1){}')",
  "globalThis.eval": "globalThis['eval']('do {} while (true)')",
  "eval inside generated code": "Function('eval(\"for(;;){}\")')()",
  "getter that loops": "const o = { get x() { for(;;){} } }; o.x",
  "Proxy trap that loops": "new Proxy({}, { get() { for(;;){} } }).x",
  "valueOf that loops": "const o = { valueOf() { for(;;){} } }; o + 1",
  "sort comparator": "[3, 1, 2].sort(() => { for(;;){} })",
  "Array.from with a mapping callback": "Array.from({ length: 1e9 }, () => 0)",
  "infinite generator": "function* g(){ for(;;) yield 1 } for (const x of g()) {}",
  "async loop with await": "return (async () => { for(;;) { await null } })()",
  "tick name found and shadowed in generated code": `
    const name = Object.getOwnPropertyNames(globalThis).find((n) => n.startsWith("__lc_tick_"));
    try { Function("var " + name + " = () => {}; for(;;){}")(); } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
    }
    try { globalThis[name] = () => {}; } catch {}
    for(;;){}`,
};

function wrap(body: string): string {
  return `export function run() {\n${body}\n}`;
}

function assertStopped(name: string, outcome: CallOutcome): void {
  assert(
    outcome.budgetError && outcome.exceeded && outcome.errorName === "BudgetExceededError",
    `${name}: ${JSON.stringify(outcome)}`,
  );
}

Deno.test("sandboxed worker stops every runaway shape with BudgetExceededError", async () => {
  const harness = new SandboxHarness();
  const elapsed: string[] = [];
  try {
    for (const [name, body] of Object.entries(RUNAWAYS)) {
      const outcome = await harness.run(wrap(body), { budgetMs: BUDGET_MS });
      assertStopped(name, outcome);
      elapsed.push(`${name}: ${outcome.elapsedMs.toFixed(1)} ms`);
      // The worker keeps serving after each runaway.
      const after = await harness.run(
        wrap("let s = 0; for (let i = 0; i < 10; i++) s += i; return s"),
        { budgetMs: FINISH_BUDGET_MS },
      );
      assertEquals(after.value, 45, `after ${name}`);
    }
  } finally {
    harness.close();
  }
  console.log(`budget ${BUDGET_MS} ms; time to stop:\n  ${elapsed.join("\n  ")}`);
});

Deno.test("sandboxed worker rejects dynamic import of data: and blob: modules", async () => {
  const harness = new SandboxHarness();
  try {
    const dataImport = await harness.run(
      wrap(`return import("data:text/javascript,export default 1")`),
      { budgetMs: FINISH_BUDGET_MS },
    );
    assertEquals(dataImport.errorName, "TypeError");
    assert(dataImport.errorMessage?.startsWith(`Could not find module "data:`));
    const generated = await harness.run(
      wrap(`return Function("return import('data:text/javascript,for(;;){}')")()`),
      { budgetMs: FINISH_BUDGET_MS },
    );
    assertEquals(generated.errorName, "TypeError");
  } finally {
    harness.close();
  }
});

Deno.test("a runaway microtask chain after the call is stopped by the ambient budget", async () => {
  const harness = new SandboxHarness();
  try {
    const started = await harness.run(
      wrap(
        "Promise.resolve().then(function loop() { return Promise.resolve().then(loop) }); return 1",
      ),
      { budgetMs: FINISH_BUDGET_MS },
    );
    assertEquals(started.value, 1);
    // Only answered if the chain was broken and the worker's event loop runs again.
    const after = await harness.run(wrap("return 2"), { budgetMs: FINISH_BUDGET_MS });
    assertEquals(after.value, 2);
  } finally {
    harness.close();
  }
});

Deno.test("sandboxed worker hides code runners and keeps Math.random as the real host does", async () => {
  const harness = new SandboxHarness();
  try {
    const { value, error } = await harness.probe(`export function probe() {
      let mathRandom;
      try { Math.random(); mathRandom = "callable"; } catch (e) { mathRandom = e.constructor.name + ": " + e.message; }
      const d = Object.getOwnPropertyDescriptor(Math, "random");
      const restore = [];
      try { globalThis.Function = function () {}; } catch (e) { restore.push("Function:" + e.name); }
      try { delete globalThis.eval; } catch (e) { restore.push("eval:" + e.name); }
      try { Object.defineProperty(Function.prototype, "constructor", { value: 1 }); } catch (e) { restore.push("ctor:" + e.name); }
      try { Object.getPrototypeOf(async function(){}).constructor = 1; } catch (e) { restore.push("async:" + e.name); }
      let atomicsWait;
      try { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); atomicsWait = "returned"; } catch (e) { atomicsWait = e.name; }
      return {
        hidden: ["Deno", "process", "Buffer", "Worker", "WebAssembly"].map((n) => typeof globalThis[n]).join(),
        mathRandom,
        descriptor: [typeof d.get, d.enumerable, d.configurable].join(),
        restore: restore.join(),
        atomicsWait,
        functionWorks: Function("a", "b", "return a + b")(2, 3),
        asyncIsFunction: (async () => {}) instanceof Function,
        evalValue: eval("for (var i = 0; i < 3; i++) i;"),
        strictKept: Function('"use strict"; return this')() === undefined,
        name: Function.name + "," + Object.getPrototypeOf(function*(){}).constructor.name,
      };
    }`);
    assertEquals(error, undefined);
    assertEquals(value, {
      hidden: "undefined,undefined,undefined,undefined,undefined",
      mathRandom:
        "TypeError: Math.random is not available in SpacetimeDB modules. Use ctx.random instead.",
      descriptor: "function,false,true",
      restore: "Function:TypeError,eval:TypeError,ctor:TypeError,async:TypeError",
      atomicsWait: "TypeError",
      functionWorks: 5,
      asyncIsFunction: true,
      evalValue: 2,
      strictKept: true,
      name: "Function,GeneratorFunction",
    });
  } finally {
    harness.close();
  }
});

Deno.test("no original code constructor, eval or Deno core is reachable from tenant code", async () => {
  const sandboxed = new SandboxHarness();
  const plain = new SandboxHarness({ sandboxed: false });
  try {
    const reached = await sandboxed.request({ op: "reach" });
    const reference = await plain.request({ op: "reach" });
    assert(reached.op === "reach" && reference.op === "reach");
    // The walk itself works: without the sandbox it finds every original.
    assertEquals(reference.found.length >= 8, true, reference.found.join());
    assert(reached.visited > 1000, `visited ${reached.visited}`);
    assertEquals(reached.found, []);
  } finally {
    sandboxed.close();
    plain.close();
  }
});
