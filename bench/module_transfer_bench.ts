/**
 * Transfer reducer calls through the real spacetimedb module library, against the
 * same transaction in plain TypeScript on Maps (the ceiling, deno-feasibility.md §5).
 *
 * Estimate first: the plain-Map transfer is ~0.5-1 µs (two Map lookups in 100k entries, four
 * small objects). Through the library a call adds BSATN decode of args, two point scans
 * (iterator + row decode each), two updates (row copy each) and a commit with its delta: ~10
 * syscalls. The library's own work is small (~0.3 µs); ours is bound by memory and GC: each
 * point scan in a 100k-row table costs ~4 cache misses (Map bucket, entry, row slot, row bytes)
 * at ~100 ns on this shared machine, and a call leaves ~2 KB of garbage (half of it the
 * library's row objects) and two new rows that survive into the old generation. So ~3 µs per
 * call in-process (about a sixth of the ceiling), and ~1.5-2× that through the worker, where
 * one batch message and one promise per call are added.
 *
 * Run: deno bench --unstable-worker-options -A bench/module_transfer_bench.ts
 */
import { systemClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { DatabaseHost } from "../worker/host.ts";
import { fixtureBundle } from "../tests/support/server.ts";

const ACCOUNTS = 100_000;
const BATCH = 1000;

const bundle = await fixtureBundle("bank");

function transferArgs(from: number, to: number, amount: bigint): Uint8Array {
  const writer = new BinaryWriter();
  writer.writeU32(from);
  writer.writeU32(to);
  writer.writeI64(amount);
  return writer.finish();
}

function seedArgs(from: number, count: number, balance: bigint): Uint8Array {
  const writer = new BinaryWriter();
  writer.writeU32(from);
  writer.writeU32(count);
  writer.writeI64(balance);
  return writer.finish();
}

// Precomputed pairs so the benchmark measures transactions, not random numbers.
const pairs: [number, number][] = [];
for (let i = 0; i < 65536; i++) {
  const from = (i * 7919) % ACCOUNTS;
  pairs.push([from, (from + 1 + (i % 97)) % ACCOUNTS]);
}
const argsList = pairs.map(([from, to]) => transferArgs(from, to, 1n));

// Ceiling: the same transaction on plain Maps with an undo log and a delta list.
const balances = new Map<number, { id: number; balance: bigint }>();
for (let id = 0; id < ACCOUNTS; id++) balances.set(id, { id, balance: 1_000_000_000n });
let cursor = 0;
function plainTransfer(from: number, to: number, amount: bigint) {
  const undo: [number, { id: number; balance: bigint }][] = [];
  const delta: { id: number; balance: bigint }[] = [];
  const a = balances.get(from)!;
  const b = balances.get(to)!;
  if (a.balance < amount) throw new Error("insufficient funds");
  const a2 = { id: from, balance: a.balance - amount };
  const b2 = { id: to, balance: b.balance + amount };
  undo.push([from, a], [to, b]);
  balances.set(from, a2);
  balances.set(to, b2);
  delta.push(a, a2, b, b2);
  return delta.length + undo.length;
}

const engine = new DatabaseEngine({
  clock: systemClock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 1n,
  loadTimeoutMs: 30_000,
});
await engine.load(bundle);
engine.callReducer(0, "seed", seedArgs(0, ACCOUNTS, 1_000_000_000n), 1n, 0n, 0n);
engine.drainCommitted();

const host = await DatabaseHost.start({
  bundle,
  databaseIdentity: 1n,
  ownerIdentity: 1n,
  runInit: true,
  reducerBudgetMs: 10_000,
});
await host.callReducer({
  reducer: "seed",
  args: seedArgs(0, ACCOUNTS, 1_000_000_000n),
  sender: 1n,
  connectionId: 0n,
  timestampMicros: 0n,
});

Deno.bench({
  name: `plain Maps: ${BATCH} transfers`,
  group: "transfer",
  baseline: true,
  fn() {
    for (let i = 0; i < BATCH; i++) {
      const [from, to] = pairs[cursor++ & 65535];
      plainTransfer(from, to, 1n);
    }
  },
});

Deno.bench({
  name: `module library in-process: ${BATCH} transfers`,
  group: "transfer",
  fn() {
    for (let i = 0; i < BATCH; i++) {
      const args = argsList[cursor++ & 65535];
      const result = engine.callReducer(i, "transfer", args, 1n, 0n, 0n);
      if (result.status !== "committed") throw new Error(result.message);
    }
    engine.drainCommitted();
    engine.drainLogs();
  },
});

Deno.bench({
  name: `database worker (one batch message): ${BATCH} transfers`,
  group: "transfer",
  async fn() {
    const calls = [];
    for (let i = 0; i < BATCH; i++) {
      calls.push(host.callReducer({
        reducer: "transfer",
        args: argsList[cursor++ & 65535],
        sender: 1n,
        connectionId: 0n,
        timestampMicros: 0n,
      }));
    }
    for (const result of await Promise.all(calls)) {
      if (result.status !== "committed") throw new Error(result.message);
    }
  },
});

globalThis.addEventListener("unload", () => host.stop());
