import { systemClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { fixtureBundle } from "../tests/support/server.ts";
const ACCOUNTS = 100_000;
const bundle = await fixtureBundle("bank");
function args3(a: number, b: number, c: bigint) {
  const w = new BinaryWriter();
  w.writeU32(a);
  w.writeU32(b);
  w.writeI64(c);
  return w.finish();
}
const argsList: Uint8Array[] = [];
for (let i = 0; i < 65536; i++) {
  const from = (i * 7919) % ACCOUNTS;
  argsList.push(args3(from, (from + 1 + (i % 97)) % ACCOUNTS, 1n));
}
const engine = new DatabaseEngine({
  clock: systemClock,
  budget: NO_BUDGET,
  reducerBudgetMs: 10_000,
  databaseIdentity: 1n,
  loadTimeoutMs: 30_000,
});
await engine.load(bundle);
engine.callReducer(0, "seed", args3(0, ACCOUNTS, 1_000_000_000n), 1n, 0n, 0n);
engine.drainCommitted();
function cpuNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}
const N = Number(Deno.args[0] ?? 200_000);
let c = 0;
for (let round = 0; round < 5; round++) {
  const t0 = performance.now();
  const c0 = cpuNs();
  for (let i = 0; i < N; i++) {
    const r = engine.callReducer(i, "transfer", argsList[c++ & 65535], 1n, 0n, 0n);
    if (r.status !== "committed") throw new Error(r.message);
    if ((i & 1023) === 1023) {
      engine.drainCommitted();
      engine.drainLogs();
    }
  }
  engine.drainCommitted();
  const dt = performance.now() - t0;
  const cpu = (cpuNs() - c0) / 1000 / N;
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `round ${round}: ${(dt * 1000 / N).toFixed(2)} µs/call wall, ${cpu.toFixed(2)} µs/call cpu` +
        "\n",
    ),
  );
}
