/**
 * Views of a wasm module (tests/fixtures/wasm/bank.c built with -DWITH_VIEWS) in the shared
 * engine: an anonymous view and a per-sender view run through `__call_view_anon__` /
 * `__call_view__`, materialized on subscription and refreshed after each commit whose writes
 * they read, exactly as JS views are (worker/views.ts). The rows checked are decoded from what
 * the engine delivers, not from the module. Also: the older view ABI (return code 0, rows
 * without a header), a declared view whose export is missing, and export signatures.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  strictEqual,
  throws as assertThrows,
} from "node:assert/strict";
import { ManualClock } from "../lib/clock.ts";
import { BinaryReader, BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { SubscriptionHost } from "../worker/subscription_host.ts";
import { wasmFixture } from "../tests/support/wasm_fixtures.ts";
import { checkWasmModule, inspectWasm, wasmBundle, WasmModuleError } from "./mod.ts";

const OWNER = 0x0102030405060708090a0b0c0d0e0f10111213141516171819202122232425n;
const ALICE = 0xa11ce0000000000000000000000000000000000000000000000000000000001n;
const BOB = 0xb0b0000000000000000000000000000000000000000000000000000000000002n;
const clock = new ManualClock();

async function engineFor(bytes: Uint8Array): Promise<DatabaseEngine> {
  const engine = new DatabaseEngine({
    clock,
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: 0xdbn,
    ownerIdentity: OWNER,
    loadTimeoutMs: 30_000,
    memoryBudgetMb: 64,
  });
  await engine.load(wasmBundle(bytes));
  strictEqual(engine.runInit(OWNER, 1n).status, "committed");
  engine.drainCommitted();
  return engine;
}

function args(write: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter(64);
  write(w);
  return w.finish();
}

const accountName = (row: Uint8Array) => {
  const r = new BinaryReader(row);
  r.readU64();
  return `${r.readString()}:${r.readI64()}`;
};
/** A connections row's identity (the module copied the sender into it). */
const connectionOwner = (row: Uint8Array) => {
  const r = new BinaryReader(row);
  r.readU64();
  return r.readU256();
};

function harness(engine: DatabaseEngine) {
  const host = new SubscriptionHost(engine);
  let nextId = 1;
  return {
    host,
    subscribe(query: string, sender: bigint, connectionId: bigint) {
      const subscribed = host.subscribe({
        kind: "subscribe",
        id: nextId++,
        connectionId,
        querySetId: nextId,
        queries: [query],
        sender,
        isOwner: false,
      });
      assert(subscribed.ok, subscribed.error);
      return { queryId: subscribed.queryIds![0], rows: subscribed.rows![0].rows };
    },
    reducer(name: string, sender: bigint, connectionId: bigint, body: Uint8Array) {
      const result = engine.callReducer(1, name, body, sender, connectionId, clock.nowMicros());
      strictEqual(result.status, "committed", result.message);
      return this.deltas();
    },
    deltas() {
      return engine.drainCommitted().flatMap((tx) => host.onCommit(tx.delta));
    },
  };
}

Deno.test("an anonymous wasm view is materialized and refreshed after the commits it reads", async () => {
  const engine = await engineFor(await wasmFixture("bank", { defines: ["WITH_VIEWS"] }));
  const h = harness(engine);
  // init opened "reserve" with 1,000,000.
  const sub = h.subscribe("SELECT * FROM big_accounts", ALICE, 1n);
  assertEquals(sub.rows.map(accountName), ["reserve:1000000"]);
  // A small account is not in the view: no delta for it.
  const small = h.reducer(
    "open_account",
    ALICE,
    1n,
    args((w) => {
      w.writeString("small");
      w.writeI64(5n);
    }),
  );
  assertEquals(small.filter((d) => d.queryId === sub.queryId), []);
  // A deposit past 1000 brings it into the view.
  const deposit = h.reducer(
    "deposit",
    ALICE,
    1n,
    args((w) => {
      w.writeU64(2n);
      w.writeI64(2000n);
    }),
  );
  const delta = deposit.find((d) => d.queryId === sub.queryId);
  assert(delta !== undefined, "no delta for big_accounts");
  strictEqual(delta.table, "big_accounts");
  assertEquals(delta.inserts.map(accountName), ["small:2005"]);
  assertEquals(delta.deletes, []);
  // And the anonymous instance is shared: another sender sees the same rows.
  const other = h.subscribe("SELECT * FROM big_accounts", BOB, 2n);
  assertEquals(other.rows.map(accountName).sort(), ["reserve:1000000", "small:2005"]);
});

Deno.test("a per-sender wasm view: each sender sees its own rows, refreshed after a reducer", async () => {
  const engine = await engineFor(await wasmFixture("bank", { defines: ["WITH_VIEWS"] }));
  const h = harness(engine);
  for (const [sender, connection] of [[ALICE, 11n], [BOB, 12n], [ALICE, 13n]]) {
    strictEqual(engine.connect(1, sender, connection, 5n, "{}").status, "committed");
  }
  h.deltas();
  const alice = h.subscribe("SELECT * FROM my_connections", ALICE, 11n);
  const bob = h.subscribe("SELECT * FROM my_connections", BOB, 12n);
  assertEquals(alice.rows.map(connectionOwner), [ALICE, ALICE]);
  assertEquals(bob.rows.map(connectionOwner), [BOB]);
  // Bob disconnects: only his instance changes.
  strictEqual(engine.disconnect(2, BOB, 12n, 6n).status, "committed");
  const deltas = h.deltas();
  const mine = deltas.filter((d) => d.table === "my_connections");
  assertEquals(mine.map((d) => d.queryId), [bob.queryId]);
  assertEquals(mine[0].deletes.map(connectionOwner), [BOB]);
  assertEquals(mine[0].inserts, []);
  // Clearing the table empties Alice's view too.
  const cleared = h.reducer("clear_connections", ALICE, 11n, new Uint8Array(0));
  const aliceDelta = cleared.find((d) => d.queryId === alice.queryId);
  assert(aliceDelta !== undefined, "no delta for alice's my_connections");
  assertEquals(aliceDelta.deletes.map(connectionOwner), [ALICE, ALICE]);
});

Deno.test("a wasm view that fails or traps rolls back the reducer whose commit it refreshes", async () => {
  const engine = await engineFor(await wasmFixture("bank", { defines: ["WITH_VIEWS"] }));
  const h = harness(engine);
  const sub = h.subscribe("SELECT * FROM big_accounts", ALICE, 1n);
  const open = (name: string) =>
    engine.callReducer(
      1,
      "open_account",
      args((w) => {
        w.writeString(name);
        w.writeI64(5000n);
      }),
      ALICE,
      1n,
      clock.nowMicros(),
    );
  for (const name of ["boom", "trap"]) {
    const failed = open(name);
    assert(failed.status !== "committed", `${name}: ${failed.status}`);
    assertEquals(h.deltas(), []);
    const table = engine.datastore.tableIdFromName("accounts")!;
    assertEquals(engine.datastore.committedRows(table).map(accountName), ["reserve:1000000"]);
  }
  // The module log names the view's failure; after the trap a fresh instance serves the view.
  const logged = engine.drainLogs().map((line) => line.message).join("\n");
  assertMatch(logged, /big_accounts: a boom account/);
  assertMatch(logged, /trapped/);
  const fine = h.reducer(
    "open_account",
    ALICE,
    1n,
    args((w) => {
      w.writeString("fine");
      w.writeI64(5000n);
    }),
  );
  const fineDelta = fine.find((d) => d.queryId === sub.queryId);
  assertEquals(fineDelta?.inserts.map(accountName), ["fine:5000"]);
  const again = h.subscribe("SELECT * FROM big_accounts", BOB, 2n);
  assertEquals(again.rows.map(accountName).sort(), ["fine:5000", "reserve:1000000"]);
});

Deno.test("the older view ABI: rows without a header, return code 0", async () => {
  const engine = await engineFor(
    await wasmFixture("bank", { defines: ["WITH_VIEWS", "VIEWS_ROWS_ONLY"] }),
  );
  const h = harness(engine);
  const sub = h.subscribe("SELECT * FROM big_accounts", ALICE, 1n);
  assertEquals(sub.rows.map(accountName), ["reserve:1000000"]);
});

Deno.test("a declared per-sender view without __call_view__ is refused at load, by name", async () => {
  const bytes = await wasmFixture("bank", { defines: ["WITH_VIEWS", "VIEWS_NO_SENDER_EXPORT"] });
  let message = "";
  try {
    await engineFor(bytes);
  } catch (error) {
    message = String((error as Error).message);
  }
  assertMatch(
    message,
    /declares the per-sender view my_connections but does not export __call_view__/,
  );
});

Deno.test("checkWasmModule: view exports with the wrong signature are named", async () => {
  const info = inspectWasm(await wasmFixture("bank", { defines: ["WITH_VIEWS"] }));
  const retyped = (name: string) => ({
    ...info,
    exports: info.exports.map((e) =>
      e.name === name && e.kind === "function"
        ? { ...e, type: { params: [0x7f, 0x7f], results: [0x7f] } }
        : e
    ),
  });
  assertThrows(
    () => checkWasmModule(retyped("__call_view__"), 1024),
    (error: Error) =>
      error instanceof WasmModuleError &&
      /__call_view__ has the type \(i32, i32\) -> i32; the ABI's is \(i32, i64, i64, i64, i64, i32, i32\) -> i32/
        .test(error.message),
  );
  assertThrows(
    () => checkWasmModule(retyped("__call_view_anon__"), 1024),
    /__call_view_anon__ has the type \(i32, i32\) -> i32; the ABI's is \(i32, i32, i32\) -> i32/,
  );
});
