/**
 * Where the append variant's stalls come from, inside one database engine (no server, no
 * network): `transfer_logged` calls in batches (a batch = the calls, their subscription deltas
 * and commit records, one durability flush: what the database process does per frame), with a
 * snapshot captured every `--snapshot-every` transactions and read out one piece between
 * batches, as the process streams it. Every task (batch or snapshot piece) longer than
 * `--report-ms` is printed with what it was; run with `--v8-flags=--trace-gc` to see the
 * garbage collections between the lines. Prints the longest task by kind and a count of tasks
 * over 10 ms, and CPU µs per call.
 *
 * Estimate: the ledger grows from `--ledger-rows` (1,000,000) by `--calls` rows; an
 * auto-increment key map doubles at 2^20 and 2^21 entries, so a run of 1.5M calls crosses both.
 *
 *   deno run -A [--v8-flags=--trace-gc] bench/keynote/stall_probe.ts [--calls 1500000]
 *     [--ledger-rows 1000000] [--batch 64] [--snapshot-every 250000] [--report-ms 5]
 *     [--piece-kib 256] (default: the database process's SNAPSHOT_PIECE_BYTES)
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { systemClock } from "../../lib/clock.ts";
import { BinaryWriter } from "../../protocol/mod.ts";
import { DatabaseEngine, NO_BUDGET } from "../../worker/engine.ts";
import { bundleModule } from "../../tests/support/describe_module.ts";
import { DurabilitySink } from "../../worker/durability_sink.ts";
import { SubscriptionHost } from "../../worker/subscription_host.ts";
import { SNAPSHOT_PIECE_BYTES } from "../../storage/durability_port.ts";

const print = console.log.bind(console);
const encoder = new TextEncoder();
const { values } = parseArgs({
  args: Deno.args,
  options: {
    calls: { type: "string", default: "1500000" },
    "ledger-rows": { type: "string", default: "1000000" },
    batch: { type: "string", default: "64" },
    "snapshot-every": { type: "string", default: "250000" },
    "report-ms": { type: "string", default: "5" },
    reducer: { type: "string", default: "transfer_logged" },
    "piece-kib": { type: "string", default: String(SNAPSHOT_PIECE_BYTES / 1024) },
  },
});
const CALLS = Number(values.calls);
const BATCH = Number(values.batch);
const SNAPSHOT_EVERY = Number(values["snapshot-every"]);
const REPORT_MS = Number(values["report-ms"]);
const PIECE_BYTES = Number(values["piece-kib"]) * 1024;
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
engine.callReducer(0, "seed", args(["u32", 0], ["u32", ACCOUNTS], ["i64", 1n << 40n]), 1n, 0n, 0n);
for (let done = 0; done < Number(values["ledger-rows"]); done += 50_000) {
  const result = engine.callReducer(0, "seed_ledger", args(["u32", 50_000]), 1n, 0n, 0n);
  if (result.status !== "committed") throw new Error(result.message);
}
engine.drainCommitted();
const live = new SubscriptionHost(engine);
let pieceBytes = 0;
const sink = new DurabilitySink({ postMessage() {}, onmessage: null, close() {} }, engine);
const callArgs: Uint8Array[] = [];
for (let i = 0; i < 4096; i++) {
  const from = (i * 7919) % ACCOUNTS;
  const to = (from + 1 + (i % 97)) % ACCOUNTS;
  callArgs.push(args(["u32", from], ["u32", to], ["i64", 1n]));
}

const longest = new Map<string, number>();
const over10 = new Map<string, number>();
const longestCpu = new Map<string, number>();
/** CPU ms of every snapshot piece (median and p99 printed at the end). */
const pieceCpuMs: number[] = [];
let taskCpu = process.cpuUsage();
/** Starts timing a task: wall from `performance.now()`, CPU (all threads) from getrusage. */
function begin(): number {
  taskCpu = process.cpuUsage();
  return performance.now();
}
/**
 * A task's wall time and the process's CPU time meanwhile: wall well above CPU is the machine
 * running something else (preemption), not this process's work.
 */
function record(kind: string, startedMs: number, detail: string): void {
  const ms = performance.now() - startedMs;
  const used = process.cpuUsage(taskCpu);
  const cpuMs = (used.user + used.system) / 1000;
  if (ms > (longest.get(kind) ?? 0)) longest.set(kind, ms);
  if (cpuMs > (longestCpu.get(kind) ?? 0)) longestCpu.set(kind, cpuMs);
  if (cpuMs > 10) over10.set(kind, (over10.get(kind) ?? 0) + 1);
  if (kind === "piece") pieceCpuMs.push(cpuMs);
  if (ms > REPORT_MS) {
    // On stderr with the time since start, to line up with --trace-gc's lines (stdout). Not
    // console.*: the loaded module's console writes to the database log.
    Deno.stderr.writeSync(
      encoder.encode(
        `[probe] at ${startedMs.toFixed(0)} ms: ${kind} ${ms.toFixed(1)} ms wall ${
          cpuMs.toFixed(1)
        } ms CPU ${detail}\n`,
      ),
    );
  }
}

let cursor: ReturnType<DatabaseEngine["captureSnapshot"]> | undefined;
let sinceSnapshot = 0;
const cpuStart = process.cpuUsage();
const started = performance.now();
for (let i = 0; i < CALLS;) {
  const t0 = begin();
  const end = Math.min(CALLS, i + BATCH);
  for (; i < end; i++) {
    const result = engine.callReducer(i, values.reducer, callArgs[i & 4095], 1n, 0n, 0n);
    if (result.status !== "committed") throw new Error(result.message);
    for (const tx of engine.drainCommitted()) {
      sink.appendOne(tx);
      live.onCommit(tx.delta);
    }
  }
  sink.flush();
  record("batch", t0, `calls ..${i}`);
  sinceSnapshot += BATCH;
  if (cursor === undefined && sinceSnapshot >= SNAPSHOT_EVERY) {
    sinceSnapshot = 0;
    const t1 = begin();
    cursor = engine.captureSnapshot();
    record("capture", t1, `at call ${i}`);
  }
  if (cursor !== undefined) {
    const t2 = begin();
    const piece = cursor.next(PIECE_BYTES);
    record("piece", t2, `${piece?.length ?? 0} B`);
    if (piece === null) {
      cursor.release();
      cursor = undefined;
    } else pieceBytes += piece.length;
  }
}
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuStart);
print(
  `${values.reducer}: ${CALLS} calls, ${((cpu.user + cpu.system) / CALLS).toFixed(2)} µs CPU, ${
    (ms * 1000 / CALLS).toFixed(2)
  } µs wall per call; snapshot bytes read ${(pieceBytes / 1048576).toFixed(0)} MiB`,
);
print(
  `longest task by kind, ms wall (CPU): ${
    [...longest].map(([kind, value]) =>
      `${kind} ${value.toFixed(1)} (${(longestCpu.get(kind) ?? 0).toFixed(1)})`
    ).join(", ")
  }; tasks over 10 ms of CPU: ${
    [...over10].map(([kind, value]) => `${kind} ${value}`).join(", ") || "none"
  }`,
);
pieceCpuMs.sort((a, b) => a - b);
print(
  `snapshot pieces of ${PIECE_BYTES / 1024} KiB: ${pieceCpuMs.length}, CPU ms median ${
    (pieceCpuMs[Math.floor(pieceCpuMs.length / 2)] ?? 0).toFixed(2)
  }, p99 ${(pieceCpuMs[Math.floor(pieceCpuMs.length * 0.99)] ?? 0).toFixed(2)}, max ${
    (pieceCpuMs.at(-1) ?? 0).toFixed(2)
  }`,
);
