import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { lengthPrefixed } from "./commitlog/frame.ts";
import { DurabilityCore } from "./durability_core.ts";
import type { ToDatabaseMessage } from "./durability_messages.ts";
import { forEachBatchRecord } from "./durability_port.ts";
import { type CrashMode, type FsLayer, type FsOperation, MemoryFs } from "./fs_layer.ts";
import { databaseDir, recoverDatabase } from "./recovery.ts";

const DATA = "/data";

/** Runs `body` with log output (expected failure reports) swallowed. */
function quietly<T>(body: () => T): T {
  const original = console.error;
  console.error = () => {};
  try {
    return body();
  } finally {
    console.error = original;
  }
}
const text = (value: string) => new TextEncoder().encode(value);
const untext = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

class Recorder {
  durable: Array<[string, bigint]> = [];
  failed: Array<[string, string]> = [];
  messages: Array<[string, ToDatabaseMessage]> = [];
  output = {
    durable: (dbKey: string, offset: bigint) => this.durable.push([dbKey, offset]),
    failed: (dbKey: string, error: Error) => this.failed.push([dbKey, error.message]),
    toDatabase: (dbKey: string, message: ToDatabaseMessage) => this.messages.push([dbKey, message]),
    snapshotWritten: () => {},
  };
}

function batch(dbKey: string, first: number, count: number) {
  const records = Array.from({ length: count }, (_, i) => text(`${dbKey}:${first + i}`));
  return {
    kind: "append" as const,
    firstTxOffset: BigInt(first),
    recordCount: count,
    bytes: lengthPrefixed(records),
  };
}

const OPTIONS = { segmentBytes: 2048, preallocateBytes: 512 };

Deno.test("flush() writes every database's queued batches and syncs each log once", () => {
  const fs = new MemoryFs();
  const recorder = new Recorder();
  const core = new DurabilityCore(fs, DATA, recorder.output, OPTIONS);
  const keys = ["a", "b", "c"];
  for (const key of keys) deepStrictEqual(core.open(key).durableOffset, 0n);
  for (const key of keys) core.receive(key, batch(key, 0, 1));
  core.flush();
  recorder.durable = [];
  // Only a database that asked gets durable notices (the current offset at once).
  core.receive("b", { kind: "watchDurable" });
  ok(recorder.messages.some(([key, m]) => key === "b" && m.kind === "durable" && m.offset === 1n));
  const syncsBefore = fs.counts.sync;
  const writesBefore = fs.counts.write;
  for (const key of keys) {
    core.receive(key, batch(key, 1, 2));
    core.receive(key, batch(key, 3, 5));
  }
  deepStrictEqual(recorder.durable, []);
  core.flush();
  deepStrictEqual(fs.counts.sync - syncsBefore, 3);
  // One commit per database, each followed by the zero fill it extends ahead of itself.
  deepStrictEqual(fs.counts.write - writesBefore, 6);
  deepStrictEqual(recorder.durable, [["a", 8n], ["b", 8n], ["c", 8n]]);
  ok(recorder.messages.some(([key, m]) => key === "b" && m.kind === "durable" && m.offset === 8n));
  ok(!recorder.messages.some(([key, m]) => key !== "b" && m.kind === "durable"));
  core.closeAll();
  for (const key of keys) {
    const seen: string[] = [];
    recoverDatabase(fs, databaseDir(DATA, key), {
      applySnapshot: () => {},
      applyRecord: (payload) => seen.push(untext(payload)),
    });
    deepStrictEqual(seen, Array.from({ length: 8 }, (_, i) => `${key}:${i}`));
  }
});

Deno.test("a batch that skips an offset stops that database only", () => {
  const recorder = new Recorder();
  const core = new DurabilityCore(new MemoryFs(), DATA, recorder.output, OPTIONS);
  core.open("a");
  core.open("b");
  core.receive("a", batch("a", 0, 2));
  core.receive("a", batch("a", 3, 1));
  core.receive("b", batch("b", 0, 2));
  quietly(() => core.flush());
  deepStrictEqual(recorder.failed.map(([key]) => key), ["a"]);
  deepStrictEqual(recorder.durable, [["b", 2n]]);
  core.receive("a", batch("a", 0, 1));
  core.flush();
  deepStrictEqual(recorder.durable, [["b", 2n]]);
});

function replayAll(core: DurabilityCore, recorder: Recorder, dbKey: string) {
  const seen: string[] = [];
  let snapshot: string | undefined;
  let batches = 0;
  core.receive(dbKey, { kind: "replay" });
  for (let step = 0; step < 10_000; step++) {
    const [, message] = recorder.messages.shift()!;
    if (message.kind === "replaySnapshot") snapshot = untext(message.bytes);
    else if (message.kind === "replayBatch") {
      batches++;
      forEachBatchRecord(
        message.firstTxOffset,
        message.recordCount,
        message.bytes,
        (record, offset) => {
          deepStrictEqual(untext(record), `${dbKey}:${offset}`);
          seen.push(untext(record));
        },
      );
      core.receive(dbKey, { kind: "replayNext" });
    } else if (message.kind === "replayEnd") {
      return { seen, snapshot, batches, end: message };
    }
  }
  throw new Error("replay did not end");
}

Deno.test("replay streams the newest snapshot and the log after it in bounded chunks", () => {
  const fs = new MemoryFs();
  let recorder = new Recorder();
  let core = new DurabilityCore(fs, DATA, recorder.output, { ...OPTIONS, replayChunkBytes: 100 });
  core.open("a");
  let next = 0;
  for (let i = 0; i < 30; i++) {
    core.receive("a", batch("a", next, 3));
    next += 3;
    if (i === 10) {
      core.receive("a", { kind: "snapshot", txOffset: 31n, bytes: text("snap@31"), requestId: 7 });
    }
    core.flush();
  }
  ok(recorder.messages.some(([, m]) => m.kind === "snapshotWritten" && m.requestId === 7));
  core.closeAll();
  recorder = new Recorder();
  core = new DurabilityCore(fs, DATA, recorder.output, { ...OPTIONS, replayChunkBytes: 100 });
  deepStrictEqual(core.open("a").durableOffset, 90n);
  const result = replayAll(core, recorder, "a");
  deepStrictEqual(result.snapshot, "snap@31");
  deepStrictEqual(result.end.snapshotTxOffset, 31n);
  deepStrictEqual(result.end.durableOffset, 90n);
  deepStrictEqual(result.seen, Array.from({ length: 59 }, (_, i) => `a:${31 + i}`));
  ok(result.batches >= 4, `${result.batches} chunks`);
  // Appending after replay continues the log.
  core.receive("a", batch("a", 90, 1));
  core.flush();
  deepStrictEqual(recorder.durable, [["a", 91n]]);
});

Deno.test("damage in an earlier segment, found while replaying, stops that database with file and byte", () => {
  const fs = new MemoryFs();
  let recorder = new Recorder();
  let core = new DurabilityCore(fs, DATA, recorder.output, OPTIONS);
  core.open("a");
  for (let i = 0; i < 200; i++) {
    core.receive("a", batch("a", i, 1));
    core.flush();
  }
  core.closeAll();
  const dir = `${databaseDir(DATA, "a")}/log`;
  const first = `${dir}/${fs.readDir(dir).sort()[0]}`;
  ok(fs.readDir(dir).length > 2, "several segments");
  fs.flipBit(first, 8 * 40 + 3);
  recorder = new Recorder();
  core = new DurabilityCore(fs, DATA, recorder.output, OPTIONS);
  deepStrictEqual(core.open("a").durableOffset, 200n, "the open reads the last segment only");
  quietly(() => core.receive("a", { kind: "replay" }));
  deepStrictEqual(recorder.failed.length, 1);
  const [key, message] = recorder.failed[0];
  deepStrictEqual(key, "a");
  ok(message.includes(first) && message.includes("at byte 0"), message);
  ok(recorder.messages.some(([, m]) => m.kind === "failed"));
  ok(!recorder.messages.some(([, m]) => m.kind === "replayEnd"));
  // The log takes no more writes.
  core.receive("a", batch("a", 200, 1));
  core.flush();
  deepStrictEqual(recorder.durable, []);
});

Deno.test("a database is asked for a snapshot every snapshotIntervalTx durable transactions", () => {
  const fs = new MemoryFs();
  let recorder = new Recorder();
  const options = { ...OPTIONS, snapshotIntervalTx: 10 };
  let core = new DurabilityCore(fs, DATA, recorder.output, options);
  core.open("a");
  const asked = () =>
    recorder.messages.filter(([, m]) => m.kind === "snapshotRequest" && m.requestId === undefined)
      .length;
  let next = 0;
  const append = (count: number) => {
    core.receive("a", batch("a", next, count));
    next += count;
    core.flush();
  };
  append(9);
  deepStrictEqual(asked(), 0);
  append(1);
  deepStrictEqual(asked(), 1, "asked at 10 durable transactions");
  append(4);
  append(5);
  deepStrictEqual(asked(), 1, "not again before 20");
  append(3);
  deepStrictEqual(asked(), 2, "asked again at 22");
  // The worker answers with its state at 22; after a restart the count starts from it.
  core.receive("a", {
    kind: "snapshot",
    txOffset: 22n,
    bytes: text("snap@22"),
    requestId: undefined,
  });
  core.flush();
  core.closeAll();
  recorder = new Recorder();
  core = new DurabilityCore(fs, DATA, recorder.output, options);
  core.open("a");
  deepStrictEqual(replayAll(core, recorder, "a").snapshot, "snap@22");
  append(9);
  deepStrictEqual(asked(), 0, "31 is fewer than 10 past the snapshot at 22");
  append(1);
  deepStrictEqual(asked(), 1);
});

Deno.test("a snapshot past the durable end is refused", () => {
  const recorder = new Recorder();
  const core = new DurabilityCore(new MemoryFs(), DATA, recorder.output, OPTIONS);
  core.open("a");
  core.receive("a", batch("a", 0, 2));
  core.receive("a", { kind: "snapshot", txOffset: 5n, bytes: text("x"), requestId: undefined });
  quietly(() => core.flush());
  ok(recorder.messages.some(([, m]) => m.kind === "snapshotFailed"));
});

Deno.test("delete() removes a database's files for good", () => {
  const fs = new MemoryFs();
  const recorder = new Recorder();
  const core = new DurabilityCore(fs, DATA, recorder.output, OPTIONS);
  core.open("a");
  core.receive("a", batch("a", 0, 2));
  core.receive("a", { kind: "snapshot", txOffset: 2n, bytes: text("x"), requestId: undefined });
  core.flush();
  ok(fs.exists(databaseDir(DATA, "a")));
  core.delete("a");
  deepStrictEqual(fs.exists(databaseDir(DATA, "a")), false);
  deepStrictEqual(fs.crash("lose-unsynced").exists(databaseDir(DATA, "a")), false);
  deepStrictEqual(core.open("a").durableOffset, 0n);
  throws(() => core.open("../etc"), TypeError);
});

Deno.test("a database deleted while its snapshot's last sync runs: nothing installed, no failure, the request answered", async () => {
  const memory = new MemoryFs();
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const touched: string[] = [];
  let watching = false;
  const watch = (op: string, path: string) => {
    if (watching) touched.push(`${op} ${path}`);
  };
  // MemoryFs whose files sync off-thread, held at `gate`; paths touched after delete() recorded.
  const fs: FsLayer = {
    open: (path, options) => {
      watch("open", path);
      const file = memory.open(path, options);
      return {
        path: file.path,
        write: (bytes, position) => file.write(bytes, position),
        read: (into, position) => file.read(into, position),
        syncData: () => file.syncData(),
        syncDataAsync: async () => {
          await gate;
          file.syncData();
        },
        size: () => file.size(),
        truncate: (length) => file.truncate(length),
        close: () => file.close(),
      };
    },
    readFile: (path) => memory.readFile(path),
    readDir: (path) => memory.readDir(path),
    exists: (path) => memory.exists(path),
    mkdir: (path) => (watch("mkdir", path), memory.mkdir(path)),
    rename: (from, to) => (watch("rename", `${from} -> ${to}`), memory.rename(from, to)),
    remove: (path) => memory.remove(path),
    syncDir: (path) => (watch("syncDir", path), memory.syncDir(path)),
  };
  const recorder = new Recorder();
  const written: bigint[] = [];
  const core = new DurabilityCore(fs, DATA, {
    ...recorder.output,
    snapshotWritten: (_dbKey, txOffset) => written.push(txOffset),
  }, OPTIONS);
  core.open("a");
  core.receive("a", batch("a", 0, 2));
  core.receive("a", { kind: "snapshot", txOffset: 2n, bytes: text("x"), requestId: 7 });
  core.flush();
  const dbDir = databaseDir(DATA, "a");
  const logged: unknown[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    watching = true;
    core.delete("a");
    deepStrictEqual(touched, [`syncDir ${DATA}/databases`]);
    touched.length = 0;
    release();
    // The sync's continuations are promise jobs: a macrotask turn runs them all.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await new Promise((resolve) => setTimeout(resolve, 0));
  } finally {
    console.error = original;
  }
  deepStrictEqual(touched, [], "no path touched after the deletion");
  deepStrictEqual(memory.exists(dbDir), false);
  deepStrictEqual(logged, []);
  deepStrictEqual(recorder.failed, []);
  deepStrictEqual(written, []);
  const failed = recorder.messages.filter(([, m]) => m.kind === "snapshotFailed");
  deepStrictEqual(failed.map(([key, m]) => [key, m]), [["a", {
    kind: "snapshotFailed",
    txOffset: 2n,
    requestId: 7,
    message: "the database was deleted",
  }]]);
});

/**
 * Three databases, random batch sizes, a flush after each random-sized round. Returns what was
 * reported durable per database before and after the first failure.
 */
function multiDbWorkload(fs: MemoryFs, seed: number) {
  const random = seededRandom(seed);
  const recorder = new Recorder();
  const keys = ["a", "b", "c"];
  const attempted = new Map(keys.map((key) => [key, 0]));
  let core: DurabilityCore;
  try {
    core = new DurabilityCore(fs, DATA, recorder.output, {
      ...OPTIONS,
      commitPayloadBytesTarget: 64,
    });
    for (const key of keys) core.open(key);
  } catch {
    return { recorder, attempted, opened: false };
  }
  for (let round = 0; round < 25; round++) {
    for (const key of keys) {
      if (random.next() < 0.3) continue;
      for (let k = 0; k < 1 + Math.floor(random.next() * 3); k++) {
        const first = attempted.get(key)!;
        const count = 1 + Math.floor(random.next() * 4);
        core.receive(key, batch(key, first, count));
        attempted.set(key, first + count);
      }
    }
    core.flush();
  }
  return { recorder, attempted, opened: true };
}

for (const operation of ["write", "sync"] as FsOperation[]) {
  Deno.test(`failing the Nth ${operation} of a multi-database workload for every N: no durable report after the failure, consistent after restart`, () => {
    const probe = new MemoryFs();
    multiDbWorkload(probe, 1);
    const total = probe.counts[operation];
    ok(total > 50, `${total} calls`);
    for (let nth = 1; nth <= total; nth++) {
      const fs = new MemoryFs({ random: seededRandom(nth * 31) });
      fs.injectFault({ operation, nth, persistent: nth % 2 === 0 });
      const { recorder, attempted, opened } = quietly(() => multiDbWorkload(fs, 1));
      if (!opened) continue;
      ok(recorder.failed.length >= 1, `nth ${nth}: a failure was reported`);
      const reported = new Map<string, bigint>();
      for (const [key, offset] of recorder.durable) reported.set(key, offset);
      // No durable report for a database after its failure report.
      const events = [
        ...recorder.messages.map(([key, m]) => [key, m.kind] as const),
      ];
      for (const [failedKey] of recorder.failed) {
        const failedAt = events.findIndex(([key, kind]) => key === failedKey && kind === "failed");
        ok(!events.slice(failedAt).some(([key, kind]) => key === failedKey && kind === "durable"));
      }
      for (const mode of ["lose-unsynced", "keep-unsynced", "tear-unsynced"] as CrashMode[]) {
        const after = fs.crash(mode);
        for (const key of ["a", "b", "c"]) {
          const seen: string[] = [];
          recoverDatabase(after, databaseDir(DATA, key), {
            applySnapshot: () => {},
            applyRecord: (payload) => seen.push(untext(payload)),
          });
          ok(
            BigInt(seen.length) >= (reported.get(key) ?? 0n),
            `nth ${nth} ${mode} ${key}: lost acked`,
          );
          ok(seen.length <= attempted.get(key)!);
          deepStrictEqual(seen, Array.from({ length: seen.length }, (_, i) => `${key}:${i}`));
        }
      }
    }
  });
}

Deno.test("receive() fails only the database that sent a malformed message", async () => {
  const { malformed } = await import("./durability_core.ts");
  const bad: unknown[] = [
    null,
    42,
    {},
    { kind: "append", firstTxOffset: 0, recordCount: 1, bytes: new Uint8Array(1) },
    { kind: "append", firstTxOffset: 0n, recordCount: 0, bytes: new Uint8Array(1) },
    { kind: "append", firstTxOffset: 0n, recordCount: 1, bytes: [1] },
    { kind: "snapshot", txOffset: -1n, bytes: new Uint8Array(1) },
    { kind: "snapshot", txOffset: 1n, bytes: new Uint8Array(1), requestId: "x" },
    { kind: "explode" },
  ];
  for (const message of bad) {
    if (malformed(message) === undefined) throw new Error(`accepted ${String(message)}`);
  }
  const good: unknown[] = [
    { kind: "append", firstTxOffset: 0n, recordCount: 2, bytes: new Uint8Array(8) },
    { kind: "snapshot", txOffset: 3n, bytes: new Uint8Array(1), requestId: undefined },
    { kind: "replay" },
    { kind: "replayNext" },
  ];
  for (const message of good) {
    const problem = malformed(message);
    if (problem !== undefined) throw new Error(`rejected a good message: ${problem}`);
  }
});
