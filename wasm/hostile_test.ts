/**
 * A hostile module against the wasm host (tests/fixtures/wasm/hostile.c) and malformed binaries
 * against the binary reader: every misuse ends as a clear trap or refusal, the host allocates
 * nothing for lengths the module's memory cannot hold, and the next call runs on a fresh
 * instance.
 */
import { match as assertMatch, ok as assert, strictEqual } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { wasmFixture } from "../tests/support/wasm_fixtures.ts";
import { inspectWasm, wasmBundle } from "./mod.ts";
import { WasmFormatError } from "./binary.ts";

const OWNER = 0x0102030405060708090a0b0c0d0e0f10111213141516171819202122232425n;
const clock = new ManualClock();
const hostile = await wasmFixture("hostile");
const bank = await wasmFixture("bank");

const R_RECURSE = "recurse";
const R_HUGE_RANGE_SCAN = "huge_range_scan";
const R_HUGE_INSERT = "huge_insert";
const R_WRAPPING_POINTER = "wrapping_pointer";
const R_OK = "ok";

async function engineFor(bytes: Uint8Array): Promise<DatabaseEngine> {
  const engine = new DatabaseEngine({
    clock,
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: 0xdbn,
    ownerIdentity: OWNER,
    loadTimeoutMs: 30_000,
    memoryBudgetMb: 16,
  });
  await engine.load(wasmBundle(bytes));
  return engine;
}

let requestId = 1;
/** Calls `reducer`; a failure's text (the module log's, the caller gets a generic one). */
function call(engine: DatabaseEngine, reducer: string): { status: string; message?: string } {
  const id = requestId++;
  engine.drainLogs();
  const result = engine.callReducer(id, reducer, new Uint8Array(), OWNER, 0n, BigInt(id));
  if (result.status === "committed") return { status: result.status };
  const logged = engine.drainLogs().map((line) => line.message).join("\n");
  return { status: result.status, message: `${result.message}\n${logged}` };
}

/** Runs `body` while recording the size of every ArrayBuffer constructed. */
function largestArrayBuffer(body: () => void): number {
  const original = globalThis.ArrayBuffer;
  let largest = 0;
  globalThis.ArrayBuffer = new Proxy(original, {
    construct(target, args, newTarget) {
      largest = Math.max(largest, Number(args[0] ?? 0));
      return Reflect.construct(target, args, newTarget);
    },
  });
  try {
    body();
  } finally {
    globalThis.ArrayBuffer = original;
  }
  return largest;
}

Deno.test("hostile wasm: unbounded recursion is a trap, and a fresh instance serves the next call", async () => {
  const engine = await engineFor(hostile);
  const result = call(engine, R_RECURSE);
  strictEqual(result.status, "failed_internal", result.message);
  assertMatch(result.message!, /The module trapped: call stack exhausted/);
  const next = call(engine, R_OK);
  strictEqual(next.status, "committed", next.message);
});

Deno.test("hostile wasm: lengths past the module's memory trap before the host allocates for them", async () => {
  const engine = await engineFor(hostile);
  for (const reducer of [R_HUGE_RANGE_SCAN, R_HUGE_INSERT]) {
    let result: ReturnType<typeof call> | undefined;
    const largest = largestArrayBuffer(() => {
      result = call(engine, reducer);
    });
    strictEqual(result!.status, "failed_internal", result!.message);
    assertMatch(
      result!.message!,
      /WasmTrapError: datastore_\w+: the buffer \[\d+, \d+\) is outside the module's memory/,
    );
    // The module's memory is at most 16 MiB: nothing near the requested gigabytes.
    assert(largest <= 16 * 1024 * 1024, `the host allocated ${largest} bytes`);
    strictEqual(call(engine, R_OK).status, "committed");
  }
});

Deno.test("hostile wasm: a pointer whose end wraps around 2^32 is outside the memory", async () => {
  const engine = await engineFor(hostile);
  const result = call(engine, R_WRAPPING_POINTER);
  strictEqual(result.status, "failed_internal", result.message);
  assertMatch(result.message!, /console_log: the buffer \[4294967280, 4294967312\) is outside/);
});

Deno.test("hostile wasm: a 4 GiB write to a bytes sink gets NO_SPACE and the sink is kept", async () => {
  const engine = await engineFor(hostile);
  const result = engine.callReducer(
    requestId++,
    "huge_sink_write",
    new Uint8Array(),
    OWNER,
    0n,
    1n,
  );
  strictEqual(result.status, "failed_user", result.message);
  strictEqual(result.message, "09"); // errno NO_SPACE, then the two bytes that fit
});

Deno.test("hostile wasm: host calls see memory the module grew (a fresh buffer after memory.grow)", async () => {
  const engine = await engineFor(hostile);
  engine.drainLogs();
  const result = call(engine, "grow_then_log");
  strictEqual(result.status, "committed", result.message);
  assert(
    engine.drainLogs().some((line) => line.message === "from grown memory"),
    "the message written into the grown pages was logged",
  );
});

/** `bytes` with a start section (after the export section) calling the export `name`. */
function withStartFunction(bytes: Uint8Array, name: string): Uint8Array {
  const leb = (at: number): [number, number] => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++];
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return [value, at];
    }
  };
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, contentStart] = leb(at + 1);
    const end = contentStart + size;
    if (id === 7) {
      let [count, p] = leb(contentStart);
      for (; count > 0; count--) {
        const [length, nameStart] = leb(p);
        const exported = new TextDecoder().decode(bytes.subarray(nameStart, nameStart + length));
        const kind = bytes[nameStart + length];
        const [index, next] = leb(nameStart + length + 1);
        p = next;
        if (exported !== name || kind !== 0) continue;
        assert(index < 128, "a one-byte function index");
        const out = new Uint8Array(bytes.length + 3);
        out.set(bytes.subarray(0, end), 0);
        out.set([8, 1, index], end);
        out.set(bytes.subarray(end), end + 3);
        return out;
      }
    }
    at = end;
  }
  throw new Error(`no function export ${name}`);
}

Deno.test("hostile wasm: a start function's host call is refused clearly, never another instance's memory", async () => {
  const bytes = withStartFunction(hostile, "start_here");
  let error: unknown;
  try {
    await engineFor(bytes);
  } catch (caught) {
    error = caught;
  }
  assert(error !== undefined, "the module loaded");
  assertMatch(
    String((error as Error).message),
    /console_log: host calls from the module's start function are not supported/,
  );
});

Deno.test("hostile wasm: a trap while the module is instantiated is reported as a trap", async () => {
  let error: unknown;
  try {
    await engineFor(withStartFunction(hostile, "start_trap"));
  } catch (caught) {
    error = caught;
  }
  assert(error !== undefined, "the module loaded");
  assertMatch(
    String((error as Error).message),
    /The module trapped while it was instantiated \(segments, start function\): unreachable/,
  );
});

/** Every error inspectWasm throws for `bytes` is a WasmFormatError (or it reads them). */
function inspectOrFormatError(bytes: Uint8Array, what: string): void {
  try {
    inspectWasm(bytes);
  } catch (error) {
    assert(
      error instanceof WasmFormatError,
      `${what}: ${(error as Error)?.name}: ${(error as Error)?.message}`,
    );
  }
}

Deno.test("binary reader: a name that is not UTF-8 is a format error", () => {
  // The export section names "__describe_module__": spoil its first byte.
  const at = indexOfText(hostile, "__describe_module__");
  assert(at > 0);
  const spoiled = hostile.slice();
  spoiled[at] = 0xff;
  let error: unknown;
  try {
    inspectWasm(spoiled);
  } catch (caught) {
    error = caught;
  }
  assert(error instanceof WasmFormatError, String(error));
  assertMatch((error as Error).message, /not valid UTF-8/);
});

Deno.test("binary reader: truncated and corrupted binaries fail with format errors only", () => {
  for (const bytes of [hostile, bank]) {
    for (let length = 0; length < bytes.length; length++) {
      inspectOrFormatError(bytes.subarray(0, length), `truncated at ${length}`);
    }
    // The first 2 KiB (type, import, function, memory and export sections), each byte set to
    // values that break LEB128s, counts, kinds and UTF-8.
    for (let at = 8; at < Math.min(bytes.length, 2048); at++) {
      for (const value of [0x00, 0x7f, 0x80, 0xff]) {
        const spoiled = bytes.slice();
        spoiled[at] = value;
        inspectOrFormatError(spoiled, `byte ${at} set to ${value}`);
      }
    }
  }
});

function indexOfText(bytes: Uint8Array, text: string): number {
  const needle = new TextEncoder().encode(text);
  outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
