/**
 * What a snapshot interval costs: the time a snapshot blocks its database worker (export of the
 * whole state) against the time a restart spends replaying the log since the last snapshot.
 *
 * Estimate first: exporting 100k fixed-size 12-byte rows is a copy of ~1.5 MB plus a per-row
 * walk, ~10-30 ms; replaying one transfer decodes a ~150-byte record and applies two row
 * updates (index lookups, row copies), ~2-5 µs, so ~200-500k transactions/s: one million
 * transactions of log replay in 2-5 s, 100k in 0.2-0.5 s.
 *
 * Run: deno run --unstable-worker-options -A bench/recovery_bench.ts [transactions]
 */
import { systemClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { decodeTxChanges, forEachBatchRecordNumbered, TxBatchEncoder } from "../storage/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { fixtureBundle } from "../tests/support/server.ts";

// Loading a module in this thread routes `console` to the database log: keep our own.
const print = console.log.bind(console);
const ACCOUNTS = 100_000;
const TRANSACTIONS = Number(Deno.args[0] ?? 200_000);

function u32u32i64(a: number, b: number, c: bigint): Uint8Array {
  const writer = new BinaryWriter();
  writer.writeU32(a);
  writer.writeU32(b);
  writer.writeI64(c);
  return writer.finish();
}

async function freshEngine(): Promise<DatabaseEngine> {
  const engine = new DatabaseEngine({
    clock: systemClock,
    budget: NO_BUDGET,
    reducerBudgetMs: 10_000,
    databaseIdentity: 1n,
    loadTimeoutMs: 30_000,
  });
  await engine.load(await fixtureBundle("bank"));
  return engine;
}

const engine = await freshEngine();
engine.callReducer(0, "seed", u32u32i64(0, ACCOUNTS, 1_000_000_000n), 1n, 0n, 0n);
engine.drainCommitted();

let started = performance.now();
const seeded = engine.datastore.exportState();
const exportMs = performance.now() - started;

// The log: TRANSACTIONS transfers, encoded as the database worker encodes them.
const encoder = new TxBatchEncoder();
const identity = new Uint8Array(32);
const connectionId = new Uint8Array(16);
for (let i = 0; i < TRANSACTIONS; i++) {
  const from = (i * 7919) % ACCOUNTS;
  const result = engine.callReducer(
    i,
    "transfer",
    u32u32i64(from, (from + 1 + (i % 97)) % ACCOUNTS, 1n),
    1n,
    0n,
    0n,
  );
  if (result.status !== "committed") throw new Error(result.message);
  for (const tx of engine.drainCommitted()) {
    encoder.add({
      reducerName: tx.reducer,
      callerIdentity: identity,
      callerConnectionId: connectionId,
      timestampMicros: tx.timestampMicros,
      args: tx.args,
      tables: tx.delta.tables,
      sequences: tx.delta.sequences,
    });
  }
}
const log = encoder.finish();

/** CPU seconds of this thread so far (/proc, 10 ms ticks): the cost without the machine's load. */
function threadCpuSeconds(): number {
  try {
    const fields = Deno.readTextFileSync("/proc/thread-self/stat").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

const replica = await freshEngine();
started = performance.now();
replica.restoreSnapshot(seeded, 1);
const importMs = performance.now() - started;
started = performance.now();
const cpuStart = threadCpuSeconds();
// As worker/durability_sink.ts replays a batch from the storage worker.
forEachBatchRecordNumbered(1, log.recordCount, log.bytes, (record, txOffset) => {
  replica.replayTx(decodeTxChanges(record), txOffset + 1);
});
const replayMs = performance.now() - started;
const replayCpuS = threadCpuSeconds() - cpuStart;
const perSecond = TRANSACTIONS / (replayMs / 1000);
print(`state: ${ACCOUNTS} accounts, snapshot ${(seeded.length / 1e6).toFixed(1)} MB`);
print(`snapshot export (blocks the worker): ${exportMs.toFixed(1)} ms`);
print(`snapshot import at recovery: ${importMs.toFixed(1)} ms`);
print(
  `log replay: ${TRANSACTIONS} transactions (${(log.bytes.length / 1e6).toFixed(1)} MB) in ` +
    `${replayMs.toFixed(0)} ms = ${Math.round(perSecond)} tx/s; ` +
    `1M transactions ≈ ${(1e6 / perSecond).toFixed(1)} s, 100k ≈ ${(1e5 / perSecond).toFixed(2)} s`,
);
print(
  `log replay CPU: ${replayCpuS.toFixed(2)} s of this thread = ${
    Math.round(TRANSACTIONS / replayCpuS)
  } tx per CPU second (wall time includes waiting for a core on a shared machine)`,
);
