/**
 * wasm/describe.ts: a module described in a host with no datastore gives the same definition the
 * database's engine reads at publish, and is refused for the same reasons.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { wasmFixture } from "../tests/support/wasm_fixtures.ts";
import { describeOnlySyscalls, describeWasmModule, wasmBundle, WasmModuleError } from "./mod.ts";

Deno.test("describeWasmModule gives the bytes the engine reads when it loads the module", async () => {
  const bytes = await wasmFixture("bank", { defines: ["ENGINE_PATHS"] });
  const engine = new DatabaseEngine({
    clock: new ManualClock(),
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: 1n,
    ownerIdentity: 2n,
    loadTimeoutMs: 30_000,
    memoryBudgetMb: 64,
  });
  await engine.load(wasmBundle(bytes));
  const logged: string[] = [];
  const described = describeWasmModule(bytes, {
    memoryBudgetMb: 64,
    onLog: (_level, message) => logged.push(message),
  });
  assert(described.length > 0);
  assertEquals(described, engine.describeBytes);
  assertEquals(logged, []);
});

Deno.test("describeWasmModule refuses what publish refuses", async () => {
  const unknown = await wasmFixture("bank", { defines: ["UNKNOWN_IMPORT"] });
  throws(() => describeWasmModule(unknown, { memoryBudgetMb: 64 }), (error: unknown) => {
    assert(error instanceof WasmModuleError, String(error));
    assert(error.message.includes('"spacetime_10.0"."no_such_syscall"'), error.message);
    return true;
  });
  const big = await wasmFixture("bank", { linkFlags: ["--initial-memory=134217728"] });
  throws(
    () => describeWasmModule(big, { memoryBudgetMb: 64 }),
    /more than the database's memory budget allows/,
  );
});

Deno.test("the describe-only syscalls refuse datastore calls with errno 2 and keep console output", () => {
  const logged: [number, string][] = [];
  const sys = describeOnlySyscalls((level, message) => logged.push([level, message]));
  const v20 = sys.v20 as Record<string, (...args: unknown[]) => unknown>;
  throws(() => v20.table_id_from_name("accounts"), {
    message: "ABI call can only be made while in a transaction",
  });
  throws(() => v20.datastore_insert_bsatn(1, new ArrayBuffer(8), 8), {
    message: "ABI call can only be made while in a transaction",
  });
  throws(() => (sys.v21 as Record<string, () => unknown>).datastore_clear(), {
    message: "ABI call can only be made while in a transaction",
  });
  v20.console_log(2, "hello");
  assertEquals(logged, [[2, "hello"]]);
  assertEquals(v20.identity(), 0n);
  throws(
    () => v20.volatile_nonatomic_schedule_immediate("deposit", new Uint8Array()),
    /no database/,
  );
});
