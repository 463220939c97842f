import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual as assertNotEquals,
  ok as assert,
  throws,
} from "node:assert/strict";
import { parse } from "acorn";
import { BudgetExceededError, createBudget } from "./budget.ts";
import { instrumentFunctionParts, instrumentModule, instrumentScript } from "./instrument.ts";
import { SandboxHarness } from "./testdata/harness_client.ts";

const T = "__t";

function assertThrows(run: () => unknown, errorClass: ErrorConstructor, includes = ""): void {
  throws(run, (error: unknown) => error instanceof errorClass && error.message.includes(includes));
}
const options = { tickName: T };

/** Counts tick calls while running instrumented code compiled with the tick as a parameter. */
function runCounting(code: string): { value: unknown; ticks: number } {
  let ticks = 0;
  const fn = new Function(T, code) as (tick: () => void) => unknown;
  const value = fn(() => ticks++);
  return { value, ticks };
}

/** Runs instrumented code under a real budget and returns what it threw. */
function runBudgeted(code: string, budgetMs = 30): unknown {
  const budget = createBudget({ monotonicMs: () => performance.now() });
  const fn = new Function(T, code) as (tick: () => void) => unknown;
  budget.start(budgetMs);
  try {
    fn(budget.tick);
    return undefined;
  } catch (error) {
    assert(budget.exceeded, "the budget is marked exceeded");
    return error;
  } finally {
    budget.stop();
  }
}

Deno.test("instrumentModule() inserts ticks into every loop body and function entry", () => {
  const source = [
    "for(;;) x++; while(a) {b} do c(); while(d)",
    "L: for (const k in o) continue L; for (const v of w) ;",
    'function f(a){ "use strict"; return a }',
    "const g = async x => ({a: x});",
    "class A { #p = 1; static { } static { q() } get z(){ return 1 } set z(v){} m(){} }",
    "function* gen(){ yield 1 } async function* ag(){ for await (const x of y) yield x }",
  ].join("\n");
  const expected = [
    "for(;;) {__t();x++;} while(a) {__t();b} do {__t();c();} while(d)",
    "L: for (const k in o) {__t();continue L;} for (const v of w) {__t();;}",
    'function f(a){ "use strict";;__t(); return a }',
    "const g = async x => ((__t(), {a: x}));",
    "class A { #p = 1; static { __t();} static { __t();q() } get z(){__t(); return 1 } " +
    "set z(v){__t();} m(){__t();} }",
    "function* gen(){__t(); yield 1 } async function* ag(){__t(); for await (const x of y) " +
    "{__t();yield x} }",
  ].join("\n");
  assertEquals(instrumentModule(source, options), expected);
});

Deno.test("instrumentModule() leaves a module without loops or functions byte-identical", () => {
  const source = "import x from 'y';\nconst a = [1, 2, 3]; // comment\nexport { a };\n";
  assertEquals(instrumentModule(source, options), source);
});

Deno.test("instrumentModule() output parses, keeps `using`, private and class fields", () => {
  const source = `
    class C { #secret = 1; static count = 0; field = () => this.#secret; static #hidden() { return 2 } }
    export function useIt(r) { using handle = r(); for (using x of [r()]) { handle.n++; } return handle; }
    export async function useAsync(r) { await using h = r(); return h; }
  `;
  const out = instrumentModule(source, options);
  parse(out, { ecmaVersion: "latest", sourceType: "module" });
  assert(out.includes("using handle = r()"));
  assert(out.includes("field = () => (__t(), this.#secret)"));
  assert(out.includes("static #hidden() {__t(); return 2 }"));
});

Deno.test("instrumentModule() rewrites dynamic import() to the host's import function", () => {
  const out = instrumentModule(`export const m = () => import("x" + y, { with: {} });`, options);
  assertEquals(out, `export const m = () => (__t(), __t_import("x" + y, { with: {} }));`);
});

Deno.test("instrumentModule() rejects source that names the tick function", () => {
  assertThrows(() => instrumentModule("let __t = () => {};", options), SyntaxError, "reserved");
  assertThrows(() => instrumentModule("__t_import('x')", options), SyntaxError, "reserved");
});

Deno.test("instrumentScript() rejects `with` and escaped spellings of the tick name", () => {
  assertThrows(() => instrumentScript("with (p) { for(;;){} }", options), SyntaxError, "with");
  assertThrows(() => instrumentScript("var \\u005f_t = 1", options), SyntaxError, "reserved");
});

Deno.test("instrumentFunctionParts() instruments parameters and body separately", () => {
  const parts = instrumentFunctionParts("normal", {
    params: "a, b = () => { for(;;){} }",
    body: "return a + b",
  }, options);
  assertEquals(parts, {
    params: "a, b = () => {__t(); for(;;){__t();} }",
    body: "__t();return a + b",
  });
});

Deno.test("instrumentFunctionParts() keeps a leading 'use strict' directive in effect", () => {
  const parts = instrumentFunctionParts(
    "normal",
    { params: "", body: '"use strict"; return this' },
    options,
  );
  const fn = new Function(T, `return function(${parts.params}) {${parts.body}}`)(() => {});
  assertEquals(fn(), undefined);
});

Deno.test("instrumentFunctionParts() rejects a body that closes the function early", () => {
  assertThrows(
    () =>
      instrumentFunctionParts(
        "normal",
        { params: "", body: "}); for(;;){} (function(){" },
        options,
      ),
    SyntaxError,
  );
});

Deno.test("instrumented code computes the same values as the original", () => {
  const programs = [
    "let s = 0; for (let i = 0; i < 10; i++) s += i; return s;",
    "const out = []; L: for (const a of [1, 2, 3]) { for (const b of [1, 2]) { if (b === 2) continue L; out.push(a * b); } } return out.join();",
    "function* g() { let i = 0; while (i < 3) yield i++; } return [...g()].join();",
    "const o = { get x() { return 7 }, set y(v) { this.z = v * 2 } }; o.y = 4; return o.x + o.z;",
    "class A { #n = 2; static k = 3; m() { return this.#n * A.k } } return new A().m();",
    "const f = (a, b = 2, ...rest) => ({ a, b, n: rest.length }); return JSON.stringify(f(1, undefined, 3, 4)) + f.length;",
    "let i = 0; do i++; while (i < 5); return i;",
    "return (function () { return arguments.length })(1, 2, 3);",
    "return [3, 1, 2].sort((a, b) => a - b).map(x => x * 2).join();",
  ];
  for (const program of programs) {
    const original = new Function(program)();
    const parts = instrumentFunctionParts("normal", { params: "", body: program }, options);
    const instrumented = runCounting(parts.body);
    assertEquals(instrumented.value, original, program);
    assert(instrumented.ticks > 0, `ticks counted for: ${program}`);
  }
});

Deno.test("instrumentScript() keeps eval completion values of loops and expressions", () => {
  for (const code of ["1 + 2", "for (var i = 0; i < 3; i++) i;", "var x = 5; x * 2"]) {
    const original = (0, eval)(code);
    const instrumented = new Function(
      T,
      `return (0, eval)(${JSON.stringify(instrumentScript(code, options))})`,
    );
    // The tick is a parameter of the outer function, invisible to indirect eval: define it.
    const holder = globalThis as unknown as Record<string, unknown>;
    holder[T] = () => {};
    try {
      assertEquals(instrumented(() => {}), original, code);
    } finally {
      delete holder[T];
    }
  }
});

Deno.test("instrumented runaway loops and recursion end with BudgetExceededError", () => {
  const shapes = [
    "for(;;){}",
    "while(true){}",
    "do{}while(1)",
    "outer: for(;;){ for(;;){ continue outer; } }",
    "for(;;){ try { for(;;){} } catch {} }",
    "for(;;){ try {} finally { continue } }",
    "a: for(;;){ try { for(;;){} } finally { continue a } }",
    "function r(){ try { r() } catch { r() } } r()",
    "const o = { get x() { for(;;){} } }; o.x",
    "[1].map(() => { for(;;){} })",
    "for(;;){ try { for(;;){} } catch (e) { try { throw e } finally { continue } } }",
    "try { for(;;){} } finally { for(;;){} }",
    "function* g(){ for(;;) yield 1 } for (const x of g()) {}",
    "const o = { valueOf(){ for(;;){} } }; o + 1",
  ];
  for (const shape of shapes) {
    const error = runBudgeted(instrumentScript(shape, options));
    assert(error instanceof BudgetExceededError, `${shape} threw ${error}`);
  }
});

const SAMPLE_MODULE = new URL("./testdata/instrument_sample_module.ts", import.meta.url);

async function bundleSampleModule(): Promise<string> {
  const outPath = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--platform",
        "browser",
        "--format",
        "esm",
        "--external",
        "spacetime:sys@2.0",
        "--external",
        "spacetime:sys@2.1",
        "-o",
        outPath,
        SAMPLE_MODULE.pathname,
      ],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(result.success, new TextDecoder().decode(result.stderr));
    return await Deno.readTextFile(outPath);
  } finally {
    await Deno.remove(outPath);
  }
}

Deno.test("the real spacetimedb bundle describes identically and stops a looping reducer", async () => {
  const source = await bundleSampleModule();
  const instrumented = instrumentModule(source, { tickName: "__lc_tick_test" });
  assertNotEquals(instrumented, source);
  const sumToArgs = new Uint8Array([100, 0, 0, 0]);
  // `spin` must be stopped by its 200 ms budget; `sumTo` must finish, under a budget no loaded
  // machine outlasts (a 200 ms one for a call that should finish failed under load).
  const reducers = [
    { name: "sumTo", args: sumToArgs, budgetMs: 60_000 },
    { name: "spin", args: new Uint8Array(), budgetMs: 200 },
    { name: "sumTo", args: sumToArgs, budgetMs: 60_000 },
  ];
  const harness = new SandboxHarness();
  const reference = new SandboxHarness({ sandboxed: false });
  try {
    const plain = await reference.request({
      op: "describe",
      source,
      instrument: false,
      reducers: [],
    });
    const checked = await harness.request({
      op: "describe",
      source,
      instrument: true,
      reducers,
    });
    assert(plain.op === "describe" && checked.op === "describe");
    assert(plain.describe.length > 100);
    assertEquals(checked.describe, plain.describe);
    assertEquals(checked.exportNames, ["add", "spin", "sumTo"]);
    const spin = checked.outcomes.spin;
    assertEquals(spin.errorName, "BudgetExceededError");
    assert(spin.budgetError && spin.exceeded);
    assert(checked.outcomes.sumTo.ok, JSON.stringify(checked.outcomes.sumTo));
  } finally {
    harness.close();
    reference.close();
  }
});
