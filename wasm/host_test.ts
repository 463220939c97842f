/**
 * The wasm host against a real module compiled from C (tests/fixtures/wasm/bank.c): every
 * host call the fixture makes goes through the engine's datastore syscalls, and the results are
 * read back from the datastore, not from the module.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  strictEqual,
  throws as assertThrows,
} from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryReader, BinaryWriter, decodeRawModuleDef } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { wasmFixture } from "../tests/support/wasm_fixtures.ts";
import {
  capMemories,
  checkWasmModule,
  inspectWasm,
  isWasmBundle,
  memoryPagesFor,
  wasmBundle,
  wasmBundleBytes,
  WasmModuleError,
} from "./mod.ts";

const OWNER = 0x0102030405060708090a0b0c0d0e0f10111213141516171819202122232425n;
const DATABASE = 0xdbn;
const clock = new ManualClock();

const bank = await wasmFixture("bank");

async function engineFor(bytes: Uint8Array, memoryBudgetMb = 64): Promise<DatabaseEngine> {
  const engine = new DatabaseEngine({
    clock,
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: DATABASE,
    ownerIdentity: OWNER,
    loadTimeoutMs: 30_000,
    memoryBudgetMb,
  });
  await engine.load(wasmBundle(bytes));
  return engine;
}

function args(write: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter(64);
  write(w);
  return w.finish();
}

interface Account {
  id: bigint;
  name: string;
  balance: bigint;
}

function accounts(engine: DatabaseEngine): Account[] {
  const table = engine.datastore.tableIdFromName("accounts")!;
  return engine.datastore.committedRows(table).map((row) => {
    const r = new BinaryReader(row);
    return { id: r.readU64(), name: r.readString(), balance: r.readI64() };
  }).sort((a, b) => Number(a.id - b.id));
}

function logs(engine: DatabaseEngine): string[] {
  return engine.drainLogs().map((line) => line.message);
}

Deno.test("the bundle carries the wasm bytes unchanged", () => {
  const bundle = wasmBundle(bank);
  assert(isWasmBundle(bundle));
  assert(!isWasmBundle("export default 1;"));
  assertEquals(wasmBundleBytes(bundle), bank);
});

Deno.test("describe: the module's own RawModuleDef decodes into tables, indexes and reducers", async () => {
  const engine = await engineFor(bank);
  const def = decodeRawModuleDef(engine.describeBytes);
  assertEquals(def.tables.map((t) => t.sourceName), ["accounts", "connections"]);
  assertEquals(def.reducers.map((r) => r.sourceName), [
    "init",
    "client_connected",
    "client_disconnected",
    "open_account",
    "deposit",
    "transfer",
    "count_rich",
    "shout",
    "spin",
    "hog",
    "prune",
    "close_account",
    "whoami",
    "clear_connections",
    "deposit_later",
    "setup_state",
  ]);
  assertEquals(def.lifecycleReducers.map((l) => [l.lifecycleSpec, l.functionName]), [
    ["Init", "init"],
    ["OnConnect", "client_connected"],
    ["OnDisconnect", "client_disconnected"],
  ]);
  assert(engine.datastore.indexIdFromName("accounts_balance_idx_btree") !== undefined);
});

Deno.test("reducers: init, inserts with the generated id written back, updates, a failing transfer rolls back", async () => {
  const engine = await engineFor(bank);
  strictEqual(engine.runInit(OWNER, 1_000n).status, "committed");
  assertEquals(accounts(engine), [{ id: 1n, name: "reserve", balance: 1_000_000n }]);
  assertEquals(logs(engine), ["bank initialised"]);

  const open = (name: string, balance: bigint) =>
    engine.callReducer(
      1,
      "open_account",
      args((w) => {
        w.writeString(name);
        w.writeI64(balance);
      }),
      OWNER,
      0n,
      2_000n,
    );
  strictEqual(open("alice", 100n).status, "committed");
  strictEqual(open("bob", 5n).status, "committed");
  // The module read its id back from the host (the sequence's value written into its buffer).
  assertEquals(logs(engine), ["opened account 2", "opened account 3"]);

  const deposit = engine.callReducer(
    2,
    "deposit",
    args((w) => {
      w.writeU64(3n);
      w.writeI64(20n);
    }),
    OWNER,
    0n,
    3_000n,
  );
  strictEqual(deposit.status, "committed", deposit.message);

  const transfer = (from: bigint, to: bigint, amount: bigint) =>
    engine.callReducer(
      3,
      "transfer",
      args((w) => {
        w.writeU64(from);
        w.writeU64(to);
        w.writeI64(amount);
      }),
      OWNER,
      0n,
      4_000n,
    );
  strictEqual(transfer(2n, 3n, 30n).status, "committed");
  // The module writes the debit before it checks the funds: the rollback must undo it.
  const refused = transfer(3n, 2n, 1_000n);
  strictEqual(refused.status, "failed_user");
  strictEqual(refused.message, "insufficient funds");
  const missing = transfer(2n, 99n, 1n);
  strictEqual(missing.status, "failed_user");
  strictEqual(missing.message, "no such account");
  assertEquals(accounts(engine), [
    { id: 1n, name: "reserve", balance: 1_000_000n },
    { id: 2n, name: "alice", balance: 70n },
    { id: 3n, name: "bob", balance: 55n },
  ]);

  // A range scan over the btree index on balance, and the table's row count.
  logs(engine);
  const rich = engine.callReducer(4, "count_rich", args((w) => w.writeI64(60n)), OWNER, 0n, 5_000n);
  strictEqual(rich.status, "committed", rich.message);
  assertEquals(logs(engine), ["rich accounts: 2/3"]);
});

Deno.test("lifecycle: client_connected gets the sender, connection id and timestamp; client_disconnected scans and deletes", async () => {
  const engine = await engineFor(bank);
  const sender = (0xabn << 248n) | 0x1234n;
  const connection = (0x77n << 120n) | 0x99n;
  strictEqual(engine.connect(1, sender, connection, 123_456_789n, "{}").status, "committed");
  strictEqual(engine.connect(2, OWNER, 5n, 7n, "{}").status, "committed");
  const table = engine.datastore.tableIdFromName("connections")!;
  const rows = () =>
    engine.datastore.committedRows(table).map((row) => {
      const r = new BinaryReader(row);
      return [r.readU64(), r.readU256(), r.readU128(), r.readI64()];
    }).sort((a, b) => Number((a[0] as bigint) - (b[0] as bigint)));
  assertEquals(rows(), [[1n, sender, connection, 123_456_789n], [2n, OWNER, 5n, 7n]]);
  strictEqual(engine.disconnect(3, sender, connection, 9n).status, "committed");
  assertEquals(rows(), [[2n, OWNER, 5n, 7n]]);
});

Deno.test("a trap fails the call, rolls back, and a fresh instance serves the next call", async () => {
  const engine = await engineFor(bank, 16);
  strictEqual(engine.runInit(OWNER, 1n).status, "committed");
  logs(engine);
  const hog = engine.callReducer(1, "hog", new Uint8Array(), OWNER, 0n, 2n);
  strictEqual(hog.status, "failed_internal");
  assertMatch(hog.message!, /ran out of memory: the database's memory budget of 16 MiB/);
  const pages = /wasm memory allocation failed: the module's memory is at (\d+) of its 256 pages/
    .exec(hog.message!);
  assert(pages, hog.message);
  // The module grows 64 pages at a time: it stopped within one step of the cap, never past it.
  const reached = Number(pages[1]);
  assert(reached <= 256 && reached > 256 - 64, `reached ${reached} pages`);
  // The next call runs on a fresh instance and sees the committed state.
  const deposit = engine.callReducer(
    2,
    "deposit",
    args((w) => {
      w.writeU64(1n);
      w.writeI64(1n);
    }),
    OWNER,
    0n,
    3n,
  );
  strictEqual(deposit.status, "committed", deposit.message);
  assertEquals(accounts(engine), [{ id: 1n, name: "reserve", balance: 1_000_001n }]);
  // The fresh instance ran its initialisers again.
  logs(engine);
  strictEqual(
    engine.callReducer(3, "setup_state", new Uint8Array(), OWNER, 0n, 4n).status,
    "committed",
  );
  assertEquals(logs(engine), ["setup state 41"]);
});

Deno.test("console_log goes through the module log's rate limit like a JS module's", async () => {
  const engine = await engineFor(bank);
  strictEqual(
    engine.callReducer(1, "shout", args((w) => w.writeU32(3)), OWNER, 0n, 1n).status,
    "committed",
  );
  assertEquals(logs(engine), ["x".repeat(1000), "x".repeat(1000), "x".repeat(1000)]);
  // 10,000 lines of 1,000 bytes are over the log a call may keep (worker/log_limiter.ts: the
  // rate's burst, and at most 1 Mi characters per reply); the clock is manual.
  strictEqual(
    engine.callReducer(2, "shout", args((w) => w.writeU32(10_000)), OWNER, 0n, 2n).status,
    "committed",
  );
  const lines = logs(engine);
  const kept = lines.filter((line) => line === "x".repeat(1000)).length;
  assert(kept > 0 && kept < 1100, `kept ${kept}`);
  assert(lines.some((line) => /log lines? dropped/.test(line)), lines.slice(-2).join("\n"));
});

Deno.test("range deletes, deletes by row value, clear, identity, JWT bytes source and console timers", async () => {
  const engine = await engineFor(bank);
  strictEqual(engine.runInit(OWNER, 1n).status, "committed");
  for (const [name, balance] of [["a", 10n], ["b", 20n], ["c", 30n]] as const) {
    const opened = engine.callReducer(
      1,
      "open_account",
      args((w) => {
        w.writeString(name);
        w.writeI64(balance);
      }),
      OWNER,
      0n,
      2n,
    );
    strictEqual(opened.status, "committed", opened.message);
  }
  logs(engine);
  // [unbounded, 25) on the balance index.
  strictEqual(
    engine.callReducer(2, "prune", args((w) => w.writeI64(25n)), OWNER, 0n, 3n).status,
    "committed",
  );
  assertEquals(logs(engine), ["pruned 2"]);
  assertEquals(accounts(engine).map((a) => a.name), ["reserve", "c"]);
  strictEqual(
    engine.callReducer(3, "close_account", args((w) => w.writeU64(4n)), OWNER, 0n, 4n).status,
    "committed",
  );
  assertEquals(logs(engine), ["closed 1"]);
  assertEquals(accounts(engine).map((a) => a.name), ["reserve"]);

  strictEqual(engine.connect(4, OWNER, 11n, 5n, '{"sub":"me"}').status, "committed");
  strictEqual(engine.connect(5, OWNER, 12n, 5n, "{}").status, "committed");
  const whoami = engine.callReducer(6, "whoami", new Uint8Array(), OWNER, 11n, 6n);
  strictEqual(whoami.status, "committed", whoami.message);
  const lines = logs(engine);
  strictEqual(lines[0], `database ${DATABASE.toString(16).padStart(64, "0")}`);
  assertEquals(lines.slice(1, 3), ["jwt bytes 12", '{"sub":"me"}']);
  assertMatch(lines[3], /^Timing span "whoami": /);
  strictEqual(lines[4], "timer errno 7"); // NO_SUCH_CONSOLE_TIMER
  strictEqual(
    engine.callReducer(7, "clear_connections", new Uint8Array(), OWNER, 0n, 7n).status,
    "committed",
  );
  assertEquals(logs(engine), ["cleared 2"]);
});

Deno.test("an unknown import is refused with its name", async () => {
  const bytes = await wasmFixture("bank", { defines: ["UNKNOWN_IMPORT"] });
  await assertRejectsWith(
    () => engineFor(bytes),
    /The module imports "spacetime_10\.0"\."no_such_syscall", which this host does not provide/,
  );
});

Deno.test("initialisers run in order at instantiation; volatile_nonatomic_schedule_immediate queues a reducer", async () => {
  const engine = await engineFor(bank);
  strictEqual(engine.runInit(OWNER, 1n).status, "committed");
  logs(engine);
  strictEqual(
    engine.callReducer(1, "setup_state", new Uint8Array(), OWNER, 0n, 2n).status,
    "committed",
  );
  assertEquals(logs(engine), ["setup state 41"]);
  const later = engine.callReducer(
    2,
    "deposit_later",
    args((w) => {
      w.writeU64(1n);
      w.writeI64(7n);
    }),
    OWNER,
    0n,
    3n,
  );
  strictEqual(later.status, "committed", later.message);
  // Not run inside the caller's transaction.
  assertEquals(accounts(engine).map((a) => a.balance), [1_000_000n]);
  strictEqual(engine.runDueSchedules(10), 1);
  assertEquals(accounts(engine).map((a) => a.balance), [1_000_007n]);
});

Deno.test("a module declaring a procedure is refused by name", async () => {
  const bytes = await wasmFixture("bank", { defines: ["WITH_PROCEDURE"] });
  await assertRejectsWith(
    () => engineFor(bytes),
    /The module declares procedures \(fetch_rates\): wasm modules with procedures are not supported yet/,
  );
});

Deno.test("memory: a declared maximum over the budget is refused; the module's memory is capped at the budget", async () => {
  const big = await wasmFixture("bank", { linkFlags: ["--max-memory=134217728"] });
  await assertRejectsWith(
    () => engineFor(big, 64),
    /declares a maximum of 2048 pages \(128\.00 MiB\), more than the database's memory budget allows \(1024 pages, 64\.00 MiB\)/,
  );
  // Under a larger budget the same module loads.
  await engineFor(big, 256);
  // An uncapped module gets the budget as its maximum.
  const capped = inspectWasm(capMemories(bank, memoryPagesFor(64)));
  assertEquals(capped.memories.map((m) => m.maximumPages), [1024]);
  assertEquals(inspectWasm(bank).memories.map((m) => m.maximumPages), [undefined]);
});

Deno.test("checkWasmModule: wrong signatures, memory imports and missing exports are named", () => {
  const info = inspectWasm(bank);
  const withImport = (item: (typeof info.imports)[number]) => ({
    ...info,
    imports: [...info.imports, item],
  });
  assertThrows(
    () =>
      checkWasmModule(
        withImport({
          module: "spacetime_10.0",
          name: "console_timer_end",
          kind: "function",
          type: { params: [0x7e], results: [0x7f] },
        }),
        1024,
      ),
    (error: Error) =>
      error instanceof WasmModuleError &&
      /"spacetime_10\.0"\."console_timer_end" with the type \(i64\) -> i32; the ABI's is \(i32\) -> i32/
        .test(error.message),
  );
  assertThrows(
    () => checkWasmModule(withImport({ module: "env", name: "memory", kind: "memory" }), 1024),
    /imports the memory "env"\."memory"/,
  );
  assertThrows(
    () =>
      checkWasmModule(
        withImport({
          module: "wasi_snapshot_preview1",
          name: "fd_write",
          kind: "function",
          type: { params: [], results: [] },
        }),
        1024,
      ),
    /from the unknown namespace "wasi_snapshot_preview1"/,
  );
  assertThrows(
    () =>
      checkWasmModule(
        withImport({
          module: "spacetime_10.9",
          name: "future_call",
          kind: "function",
          type: { params: [], results: [] },
        }),
        1024,
      ),
    /"spacetime_10\.9"\."future_call": ABI version 10\.9 is not supported/,
  );
  assertThrows(
    () =>
      checkWasmModule({
        ...info,
        exports: info.exports.filter((e) => e.name !== "__call_reducer__"),
      }, 1024),
    /does not export the function __call_reducer__/,
  );
});

async function assertRejectsWith(run: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await run();
  } catch (error) {
    assertMatch(String((error as Error).message), pattern);
    return;
  }
  throw new Error(`expected a rejection matching ${pattern}`);
}
