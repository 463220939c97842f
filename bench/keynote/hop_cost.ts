/**
 * CPU per request batch on each hop of the call path, without WebSockets: this process plays the
 * server's main thread (DatabaseHost + the storage worker, as server/ does), a real database
 * process runs the keynote module, and batches of `--batch` transfer calls go round trip:
 * host -> database process -> commit frame bridged to the storage worker -> fdatasync -> durable.
 * One batch at a time, so each batch pays every fixed cost (the small-N case: at 64 clients x 1
 * call in flight a batch carries ~15 calls). CPU is read per thread from /proc, so the figures
 * hold on a shared machine where wall time does not.
 *
 * Estimate: a batch crosses two pipes and two thread hops, each a system call plus a wake-up
 * (~5-20 µs of CPU on this VM), plus ~3 µs per transfer in the database process.
 *
 *   deno run --unstable-worker-options -A bench/keynote/hop_cost.ts [--batches 3000] [--batch 1,16,64]
 */
import { parseArgs } from "node:util";
import { BinaryWriter } from "../../protocol/mod.ts";
import { DurabilityActor } from "../../storage/mod.ts";
import { DatabaseHost } from "../../worker/host.ts";
import { bundleModule } from "../../tests/support/describe_module.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    batches: { type: "string", default: "3000" },
    batch: { type: "string", default: "1,16,64" },
  },
});
const BATCHES = Number(values.batches);
const SIZES = values.batch.split(",").map(Number);
const ACCOUNTS = 100_000;

function args(...parts: Array<["u32", number] | ["i64", bigint]>): Uint8Array {
  const writer = new BinaryWriter();
  for (const [kind, value] of parts) {
    if (kind === "u32") writer.writeU32(value as number);
    else writer.writeI64(value as bigint);
  }
  return writer.finish();
}

/**
 * CPU ns per thread of a process (schedstat: time on a CPU, ns resolution), by thread name
 * ("main" = the process's own thread, "gc" = V8's helper threads).
 */
function threadNanos(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    let comm: string;
    let nanos: number;
    try {
      comm = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/comm`).trim();
      nanos = Number(
        Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/schedstat`).split(" ")[0],
      );
    } catch {
      continue; // the thread ended
    }
    const name = Number(entry.name) === pid ? "main" : comm.startsWith("V8 ") ? "gc" : comm;
    out.set(name, (out.get(name) ?? 0) + nanos);
  }
  return out;
}

const dataDir = await Deno.makeTempDir({ prefix: "hop-cost-" });
const actor = await DurabilityActor.start({ dataDir });
const opened = await actor.openDatabase("keynote");
let durable = 0n;
let durableWaiter: { offset: bigint; resolve: () => void } | undefined;
actor.onDurable((_key, offset) => {
  durable = offset;
  if (durableWaiter && offset >= durableWaiter.offset) {
    durableWaiter.resolve();
    durableWaiter = undefined;
  }
});
const host = await DatabaseHost.start({
  bundle: await bundleModule(new URL("./module/src/index.ts", import.meta.url).pathname),
  databaseIdentity: 7n,
  ownerIdentity: 1n,
  runInit: true,
  reducerBudgetMs: 60_000,
  durabilityPort: opened.port,
});
const seeded = await host.callReducer({
  reducer: "seed",
  args: args(["u32", 0], ["u32", ACCOUNTS], ["i64", 1_000_000_000n]),
  sender: 1n,
  connectionId: 0n,
  timestampMicros: 0n,
});
if (seeded.status !== "committed") throw new Error(seeded.message);
const callArgs: Uint8Array[] = [];
for (let i = 0; i < 4096; i++) {
  const from = (i * 7919) % ACCOUNTS;
  callArgs.push(args(["u32", from], ["u32", (from + 1 + (i % 97)) % ACCOUNTS], ["i64", 1n]));
}

async function roundTrip(size: number, start: number): Promise<void> {
  const calls = [];
  for (let i = 0; i < size; i++) {
    calls.push(host.callReducer({
      reducer: "transfer",
      args: callArgs[(start + i) & 4095],
      sender: 1n,
      connectionId: 0n,
      timestampMicros: 0n,
    }));
  }
  const results = await Promise.all(calls);
  const offset = BigInt(results[results.length - 1].txOffset);
  if (durable < offset) {
    await new Promise<void>((resolve) => (durableWaiter = { offset, resolve }));
  }
}

console.log(
  `Deno ${Deno.version.deno}; ${BATCHES} round trips per size, one batch at a time; load ${
    Deno.loadavg().map((v) => v.toFixed(1)).join(" ")
  }`,
);
for (const size of SIZES) {
  for (let i = 0; i < 200; i++) await roundTrip(size, i * size); // warm-up
  const before = { server: threadNanos(Deno.pid), database: threadNanos(host.pid) };
  const started = performance.now();
  for (let i = 0; i < BATCHES; i++) await roundTrip(size, i * size);
  const wallMs = performance.now() - started;
  const after = { server: threadNanos(Deno.pid), database: threadNanos(host.pid) };
  const parts: string[] = [];
  let total = 0;
  for (const side of ["server", "database"] as const) {
    for (const [name, ticks] of after[side]) {
      const micros = (ticks - (before[side].get(name) ?? 0)) / 1000 / BATCHES;
      total += micros;
      if (micros >= 0.5) {
        parts.push(`${side === "server" ? "" : "db "}${name} ${micros.toFixed(0)}`);
      }
    }
  }
  console.log(
    `batch ${size}: ${total.toFixed(0)} µs CPU per batch (${(total / size).toFixed(1)} per call): ${
      parts.join(", ")
    }; wall ${(wallMs * 1000 / BATCHES).toFixed(0)} µs per round trip`,
  );
}
host.stop();
await actor.stop();
await Deno.remove(dataDir, { recursive: true });
