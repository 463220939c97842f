/**
 * Durable storage benchmark: group commit throughput, one-at-a-time latency, replay speed.
 *
 *   deno run -A --unstable-worker-options bench/durability_bench.ts [--replay-tx=1000000]
 *
 * Back of the envelope (2 vCPU VM, spec/deno-feasibility.md §4): fdatasync on a preallocated
 * file costs ~0.2-0.5 ms, so one-at-a-time commits top out near 2-5 k/s with p50 ≈ one fsync
 * plus two postMessage hops (~0.1-0.2 ms each). With group commit one fsync covers everything
 * queued, so throughput is bounded by encoding + memcpy + CRC (CRC32C slicing-by-8 in JS ≈ 1 GB/s)
 * and should approach the no-fsync figure once batches hold ~1000 transactions. Replay reads
 * ~150 B per transaction; at ~1 GB/s for read + CRC, 1 M transactions is ~0.15 s of I/O and
 * checksum, so decoding (~1 µs per record) dominates: expect 0.5-1.5 M tx/s.
 */
import { CommitLogWriter } from "../storage/commitlog/writer.ts";
import { readCommitLog } from "../storage/commitlog/reader.ts";
import { decodeTxRecord, TxBatchEncoder, type TxRecord } from "../storage/commit_record.ts";
import { DurabilityActor } from "../storage/durability.ts";
import { DurabilityPort, forEachBatchRecord } from "../storage/durability_port.ts";
import { denoFs, withoutSync } from "../storage/fs_layer.ts";
import { databaseDir, logDir, recoverDatabase } from "../storage/recovery.ts";

const replayTxCount = Number(
  Deno.args.find((arg) => arg.startsWith("--replay-tx="))?.split("=")[1] ?? 1_000_000,
);

/** Records are built once and reused, so the benchmark measures storage, not allocation. */
const RECORDS: TxRecord[] = Array.from({ length: 1024 }, (_, i) => makeRecord(i));
function record(i: number): TxRecord {
  return RECORDS[i & 1023];
}

function makeRecord(i: number): TxRecord {
  return {
    reducerName: "transfer",
    callerIdentity: new Uint8Array(32).fill(i & 0xff),
    callerConnectionId: new Uint8Array(16).fill(1),
    timestampMicros: 1_700_000_000_000_000n + BigInt(i),
    args: new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0]),
    tables: [{
      tableId: 4096,
      inserts: [new Uint8Array(16).fill(3), new Uint8Array(16).fill(4)],
      deletes: [new Uint8Array(16).fill(5), new Uint8Array(16).fill(6)],
    }],
    sequences: [],
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function withActor<T>(
  unsafeSkipSync: boolean,
  body: (storage: DurabilityPort) => Promise<T>,
): Promise<T> {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-bench-" });
  const actor = await DurabilityActor.start({ dataDir, unsafeSkipSync });
  try {
    const { port } = await actor.openDatabase("bench");
    const storage = new DurabilityPort(port);
    await storage.replay({ snapshot() {}, batch() {} });
    const result = await body(storage);
    storage.close();
    return result;
  } finally {
    await actor.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

function waitDurable(storage: DurabilityPort, offset: bigint): Promise<void> {
  if (storage.durableOffset >= offset) return Promise.resolve();
  return new Promise((resolve) => {
    const stop = storage.onDurable((durable) => {
      if (durable >= offset) {
        stop();
        resolve();
      }
    });
  });
}

/** Sends batches of `batchSize` with at most `windowTx` in flight for `durationMs`. */
async function throughput(storage: DurabilityPort, batchSize: number, durationMs: number) {
  const encoder = new TxBatchEncoder();
  const windowTx = Math.max(batchSize * 8, 4096);
  let next = storage.durableOffset;
  const start = performance.now();
  let fsyncRounds = 0;
  const stopCount = storage.onDurable(() => fsyncRounds++);
  while (performance.now() - start < durationMs) {
    while (Number(next - storage.durableOffset) < windowTx) {
      for (let i = 0; i < batchSize; i++) encoder.add(record(Number(next) + i));
      const { bytes, recordCount } = encoder.finish();
      storage.append(next, recordCount, bytes);
      next += BigInt(recordCount);
    }
    await waitDurable(storage, next - BigInt(windowTx / 2));
  }
  await waitDurable(storage, next);
  stopCount();
  const seconds = (performance.now() - start) / 1000;
  const txCount = Number(next);
  return { txPerSecond: txCount / seconds, durableReportsPerSecond: fsyncRounds / seconds };
}

async function latency(storage: DurabilityPort, count: number) {
  const encoder = new TxBatchEncoder();
  const samplesMs: number[] = [];
  let next = storage.durableOffset;
  for (let i = 0; i < count; i++) {
    encoder.add(record(i));
    const { bytes, recordCount } = encoder.finish();
    const start = performance.now();
    storage.append(next, recordCount, bytes);
    next += 1n;
    await waitDurable(storage, next);
    samplesMs.push(performance.now() - start);
  }
  samplesMs.sort((a, b) => a - b);
  return { p50Ms: percentile(samplesMs, 0.5), p99Ms: percentile(samplesMs, 0.99) };
}

async function replay(recordsPerCommit: number) {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-bench-" });
  const dbDir = databaseDir(dataDir, "replay");
  // Built without fsync: the writer syncs before every append, which is 1 M fsyncs at 1 tx/commit.
  const writer = CommitLogWriter.open(withoutSync(denoFs), logDir(dbDir));
  const encoder = new TxBatchEncoder(1024 * 1024);
  const writeStart = performance.now();
  for (let first = 0; first < replayTxCount; first += recordsPerCommit) {
    const count = Math.min(recordsPerCommit, replayTxCount - first);
    for (let i = 0; i < count; i++) encoder.add(record(first + i));
    const { bytes } = encoder.finish();
    writer.append(BigInt(first), count, [bytes]);
  }
  writer.close();
  const writeSeconds = (performance.now() - writeStart) / 1000;
  const logBytes = denoFs.readDir(logDir(dbDir))
    .reduce((sum, name) => sum + Deno.statSync(`${logDir(dbDir)}/${name}`).size, 0);

  // 1. Scan + checksum + iterate records, no decoding.
  let start = performance.now();
  let seen = 0;
  const log = readCommitLog(denoFs, logDir(dbDir));
  for (const _record of log.records()) seen++;
  const iterateSeconds = (performance.now() - start) / 1000;

  // 2. recoverDatabase() decoding every record.
  start = performance.now();
  let decoded = 0;
  recoverDatabase(denoFs, dbDir, {
    applySnapshot() {},
    applyRecord(payload) {
      decoded += decodeTxRecord(payload).tables.length;
    },
  });
  const decodeSeconds = (performance.now() - start) / 1000;

  // 3. Through the storage worker to a "database worker" (main here), decoding every record.
  const actor = await DurabilityActor.start({ dataDir });
  start = performance.now();
  const { port } = await actor.openDatabase("replay");
  const storage = new DurabilityPort(port);
  let streamed = 0;
  await storage.replay({
    snapshot() {},
    batch(firstTxOffset, recordCount, bytes) {
      forEachBatchRecord(firstTxOffset, recordCount, bytes, (payload) => {
        decodeTxRecord(payload);
        streamed++;
      });
    },
  });
  const actorSeconds = (performance.now() - start) / 1000;
  storage.close();
  await actor.stop();
  await Deno.remove(dataDir, { recursive: true });
  if (seen !== replayTxCount || decoded !== replayTxCount || streamed !== replayTxCount) {
    throw new Error(`replayed ${seen}/${decoded}/${streamed} of ${replayTxCount}`);
  }
  return {
    recordsPerCommit,
    logMiB: logBytes / 1024 / 1024,
    writeTxPerSecond: replayTxCount / writeSeconds,
    iterateTxPerSecond: replayTxCount / iterateSeconds,
    decodeTxPerSecond: replayTxCount / decodeSeconds,
    actorReplayTxPerSecond: replayTxCount / actorSeconds,
  };
}

const format = (n: number) => Math.round(n).toLocaleString("en-US");

if (import.meta.main) {
  // deno-lint-ignore no-console
  const print = console.log;
  print(`Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${navigator.hardwareConcurrency} CPUs`);
  const sizer = new TxBatchEncoder();
  sizer.add(record(0));
  print(`${sizer.byteLength} bytes per transaction record (with its length prefix)\n`);

  print("Group commit through the storage worker (durable tx/s; fsync vs no fsync):");
  for (const batchSize of [1, 10, 100, 1000]) {
    const synced = await withActor(false, (storage) => throughput(storage, batchSize, 2000));
    const unsynced = await withActor(true, (storage) => throughput(storage, batchSize, 2000));
    print(
      `  batch ${String(batchSize).padStart(4)}: fdatasync ${
        format(synced.txPerSecond).padStart(10)
      } tx/s` +
        ` (${format(synced.durableReportsPerSecond)} flushes/s)   no sync ${
          format(unsynced.txPerSecond).padStart(10)
        } tx/s   ratio ${(synced.txPerSecond / unsynced.txPerSecond).toFixed(2)}`,
    );
  }

  print("\nOne transaction at a time (append -> durable report), 2000 samples:");
  const synced = await withActor(false, (storage) => latency(storage, 2000));
  const unsynced = await withActor(true, (storage) => latency(storage, 2000));
  print(`  fdatasync: p50 ${synced.p50Ms.toFixed(3)} ms, p99 ${synced.p99Ms.toFixed(3)} ms`);
  print(`  no sync:   p50 ${unsynced.p50Ms.toFixed(3)} ms, p99 ${unsynced.p99Ms.toFixed(3)} ms`);

  print(`\nReplay of ${format(replayTxCount)} transactions:`);
  for (const recordsPerCommit of [1000, 1]) {
    const r = await replay(recordsPerCommit);
    print(
      `  ${String(recordsPerCommit).padStart(4)} tx/commit, ${r.logMiB.toFixed(0)} MiB: ` +
        `write (no fsync) ${format(r.writeTxPerSecond)} tx/s; scan+iterate ${
          format(r.iterateTxPerSecond)
        } tx/s; ` +
        `recoverDatabase+decode ${format(r.decodeTxPerSecond)} tx/s; ` +
        `via storage worker+decode ${format(r.actorReplayTxPerSecond)} tx/s`,
    );
  }
}
