/**
 * CPU per call of the keynote reducers inside one database engine (no server, no network, no
 * durability): `transfer` (update-only) against `transfer_logged` (plus one ledger insert), with
 * the ledger already holding `--ledger-rows` rows. Each call also goes through what the database
 * process does after a commit (subscription deltas, commit-record encoding in the durability
 * sink, flushed every `--batch` calls into a port that drops it). Shows what an appended row
 * costs the database process, so a profile (`deno run --cpu-prof ...`) can point at the hop.
 * Prints CPU µs per call (this process, user + system) next to wall µs: CPU is the robust one
 * on a shared machine.
 *
 *   deno run -A bench/keynote/append_cost.ts [--calls 200000] [--ledger-rows 1000000]
 */
import { parseArgs } from "node:util";
import { systemClock } from "../../lib/clock.ts";
import { BinaryWriter } from "../../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../../worker/engine.ts";
import { bundleModule } from "../../tests/support/describe_module.ts";
import { DurabilitySink } from "../../worker/durability_sink.ts";
import { SubscriptionHost } from "../../worker/subscription_host.ts";
import process from "node:process";

const print = console.log.bind(console);
const { values } = parseArgs({
  args: Deno.args,
  options: {
    calls: { type: "string", default: "200000" },
    "ledger-rows": { type: "string", default: "1000000" },
    batch: { type: "string", default: "16" },
  },
});
const CALLS = Number(values.calls);
const ACCOUNTS = 100_000;

function args(...parts: Array<["u32", number] | ["i64", bigint]>): Uint8Array {
  const writer = new BinaryWriter();
  for (const [kind, value] of parts) {
    if (kind === "u32") writer.writeU32(value as number);
    else writer.writeI64(value as bigint);
  }
  return writer.finish();
}

const engine = new DatabaseEngine({
  clock: systemClock,
  budget: NO_BUDGET,
  reducerBudgetMs: 60_000,
  databaseIdentity: 1n,
  loadTimeoutMs: 60_000,
});
await engine.load(await bundleModule(new URL("./module/src/index.ts", import.meta.url).pathname));
engine.callReducer(
  0,
  "seed",
  args(["u32", 0], ["u32", ACCOUNTS], ["i64", 1_000_000_000n]),
  1n,
  0n,
  0n,
);
for (let done = 0; done < Number(values["ledger-rows"]); done += 50_000) {
  const result = engine.callReducer(0, "seed_ledger", args(["u32", 50_000]), 1n, 0n, 0n);
  if (result.status !== "committed") throw new Error(result.message);
}
engine.drainCommitted();
const BATCH = Number(values.batch);
const live = new SubscriptionHost(engine);
const sink = new DurabilitySink({ postMessage() {}, onmessage: null, close() {} }, engine);
// Argument buffers made up front: the measured loop is the database process's work only.
const callArgs: Uint8Array[] = [];
for (let i = 0; i < 4096; i++) {
  const from = (i * 7919) % ACCOUNTS;
  const to = (from + 1 + (i % 97)) % ACCOUNTS;
  callArgs.push(args(["u32", from], ["u32", to], ["i64", 1n]));
}

for (const reducer of ["transfer", "transfer_logged", "transfer", "transfer_logged"]) {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) {
    const result = engine.callReducer(i, reducer, callArgs[i & 4095], 1n, 0n, 0n);
    if (result.status !== "committed") throw new Error(result.message);
    for (const tx of engine.drainCommitted()) {
      sink.appendOne(tx);
      live.onCommit(tx.delta);
    }
    if (i % BATCH === BATCH - 1) sink.flush();
  }
  sink.flush();
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  print(
    `${reducer}: ${((cpu.user + cpu.system) / CALLS).toFixed(2)} µs CPU per call, ${
      (ms * 1000 / CALLS).toFixed(2)
    } µs wall (${CALLS} calls, durability flush every ${BATCH})`,
  );
}
