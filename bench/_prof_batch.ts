// Temporary profiling harness: the worker's batch loop in-process (engine + subscriptions +
// durability records + structured clone of request and reply), batches of 40 calls.
import { systemClock } from "../lib/clock.ts";
import { BinaryWriter } from "../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../worker/engine.ts";
import { SubscriptionHost } from "../worker/subscription_host.ts";
import { DurabilitySink } from "../worker/durability_sink.ts";
import { fixtureBundle } from "../tests/support/server.ts";
import type { BatchItem, BatchMessage, BatchReply } from "../worker/messages.ts";
import { CallPacker, expandItems, forEachRequest, ResultPacker } from "../worker/batch_codec.ts";
const ACCOUNTS = 100_000;
const BATCH = Number(Deno.args[1] ?? 40);
const bundle = await fixtureBundle("bank");
function args3(a: number, b: number, c: bigint) {
  const w = new BinaryWriter();
  w.writeU32(a);
  w.writeU32(b);
  w.writeI64(c);
  return w.finish();
}
const frame = new Uint8Array(65536 * 16);
const argsList: Uint8Array[] = [];
for (let i = 0; i < 65536; i++) {
  const from = (i * 7919) % ACCOUNTS;
  const a = args3(from, (from + 1 + (i % 97)) % ACCOUNTS, 1n);
  frame.set(a, i * 16);
  argsList.push(frame.subarray(i * 16, i * 16 + 16));
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
const subscriptions = new SubscriptionHost(engine);
const channel = new MessageChannel();
channel.port2.onmessage = () => {};
const durability = new DurabilitySink(channel.port1, engine);
function cpuNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}
const sender = 0x1234567890abcdef1234567890abcdef1234567890abcdefn;
const connectionId = 0xabcdef1234567890abcdefn;
const resultPacker = new ResultPacker();
function runBatch(message: BatchMessage) {
  const results: BatchItem[] = [];
  forEachRequest(message, (request) => {
    if (request.kind !== "call") return;
    const result = engine.callReducer(request.id, request.reducer, request.args, request.sender, request.connectionId, request.timestampMicros);
    const committed = engine.drainCommitted();
    if (result.status === "committed" && committed.length === 1) {
      const tx = committed[0];
      durability.appendOne(tx);
      const deltas = subscriptions.onCommit(tx.delta);
      if (deltas.length === 0 && tx.txOffset === result.txOffset) {
        resultPacker.add(request.id, tx.txOffset, result.durationMicros, results.length);
        return;
      }
    }
    throw new Error("unexpected");
  });
  durability.flush();
  return { type: "batch", items: results, committed: resultPacker.finish(), txOffset: engine.txOffset, logs: engine.drainLogs() };
}
const packer = new CallPacker();
const N = Number(Deno.args[0] ?? 100_000);
let c = 0;
let id = 1;
for (let round = 0; round < 5; round++) {
  const t0 = performance.now();
  const c0 = cpuNs();
  for (let i = 0; i < N; i += BATCH) {
    const fr = new Uint8Array(BATCH * 38);
    for (let j = 0; j < BATCH; j++) fr.set(argsList[(c + j) & 65535], j * 38 + 20);
    for (let j = 0; j < BATCH; j++) packer.add({ reducer: "transfer", args: (c++, fr.subarray(j * 38 + 20, j * 38 + 36)), sender: sender + BigInt(j & 7), connectionId: connectionId + BigInt(j & 7), timestampMicros: BigInt(Date.now()) * 1000n }, id++, 0);
    const calls = packer.finish()!;
    const cloned = structuredClone({ type: "batch", requests: [], calls }, { transfer: [calls.args.buffer] }) as BatchMessage;
    const reply = runBatch(cloned);
    expandItems(structuredClone(reply) as BatchReply);
  }
  const dt = performance.now() - t0;
  const cpu = (cpuNs() - c0) / 1000 / N;
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `round ${round}: ${(dt * 1000 / N).toFixed(2)} µs/call wall, ${cpu.toFixed(2)} µs/call cpu\n`,
    ),
  );
}
Deno.exit(0);
