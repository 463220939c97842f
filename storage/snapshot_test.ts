import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { lengthPrefixed } from "./commitlog/frame.ts";
import { CorruptLogError } from "./commitlog/reader.ts";
import { CommitLogWriter } from "./commitlog/writer.ts";
import { denoFs, type FsLayer, type FsOperation, MemoryFs } from "./fs_layer.ts";
import { databaseDir, logDir, recoverDatabase, snapshotDir } from "./recovery.ts";
import {
  listSnapshots,
  readNewestValidSnapshot,
  SNAPSHOT_SYNC_STEP_BYTES,
  SnapshotAbandonedError,
  SnapshotFileWriter,
  writeSnapshot,
} from "./snapshot.ts";

const SNAPS = "/data/databases/db1/snapshots";
const text = (value: string) => new TextEncoder().encode(value);
const untext = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("writeSnapshot() then readNewestValidSnapshot() returns the newest bytes and keeps the last N", () => {
  const fs = new MemoryFs();
  for (const offset of [10n, 20n, 30n, 40n]) {
    writeSnapshot(fs, SNAPS, offset, text(`state@${offset}`), { keep: 2 });
  }
  deepStrictEqual(listSnapshots(fs, SNAPS).map((s) => s.txOffset), [40n, 30n]);
  const choice = readNewestValidSnapshot(fs, SNAPS, 100n);
  deepStrictEqual(choice.snapshot?.txOffset, 40n);
  deepStrictEqual(untext(choice.snapshot!.bytes), "state@40");
  deepStrictEqual(choice.skipped, []);
});

Deno.test("readNewestValidSnapshot() skips snapshots newer than the log and damaged ones", () => {
  const fs = new MemoryFs();
  for (const offset of [10n, 20n, 30n]) {
    writeSnapshot(fs, SNAPS, offset, text(`state@${offset}`), { keep: 3 });
  }
  const random = seededRandom(11);
  const newest = listSnapshots(fs, SNAPS)[0];
  const size = fs.readFile(newest.path).length;
  for (let trial = 0; trial < 300; trial++) {
    const damaged = fs.crash("keep-unsynced");
    damaged.flipBit(newest.path, Math.floor(random.next() * size * 8));
    const choice = readNewestValidSnapshot(damaged, SNAPS, 30n);
    deepStrictEqual(choice.snapshot?.txOffset, 20n, `trial ${trial}`);
    deepStrictEqual(choice.skipped.length, 1);
  }
  const capped = readNewestValidSnapshot(fs, SNAPS, 25n);
  deepStrictEqual(capped.snapshot?.txOffset, 20n);
  ok(capped.skipped[0].reason.includes("newer than the log"));
  const truncated = fs.crash("keep-unsynced");
  for (const entry of listSnapshots(truncated, SNAPS)) {
    const file = truncated.open(entry.path);
    file.truncate(20);
    file.close();
  }
  deepStrictEqual(readNewestValidSnapshot(truncated, SNAPS, 30n).snapshot, undefined);
});

for (const operation of ["write", "sync", "rename", "open"] as FsOperation[]) {
  Deno.test(`a snapshot interrupted at its Nth ${operation} leaves the old or the new snapshot, never a broken one`, () => {
    const probe = new MemoryFs();
    writeSnapshot(probe, SNAPS, 5n, text("old"));
    const before = probe.counts[operation];
    writeSnapshot(probe, SNAPS, 9n, text("new state"));
    const calls = probe.counts[operation] - before;
    ok(calls >= 1);
    for (let nth = 1; nth <= calls; nth++) {
      const fs = new MemoryFs({ random: seededRandom(nth) });
      writeSnapshot(fs, SNAPS, 5n, text("old"));
      fs.injectFault({ operation, nth: fs.counts[operation] + nth });
      throws(() => writeSnapshot(fs, SNAPS, 9n, text("new state")));
      for (const mode of ["lose-unsynced", "keep-unsynced", "tear-unsynced"] as const) {
        const choice = readNewestValidSnapshot(fs.crash(mode), SNAPS, 100n);
        ok(choice.snapshot, `nth ${nth} ${mode}: no snapshot left`);
        const state = untext(choice.snapshot.bytes);
        ok(
          (choice.snapshot.txOffset === 5n && state === "old") ||
            (choice.snapshot.txOffset === 9n && state === "new state"),
          `nth ${nth} ${mode}: ${choice.snapshot.txOffset} ${state}`,
        );
      }
    }
  });
}

// A tiny "database" for recovery tests: the state is the list of applied tx numbers.
function appendNumbers(fs: MemoryFs, dbDir: string, from: number, to: number): void {
  const writer = CommitLogWriter.open(fs, logDir(dbDir), {
    segmentBytes: 512,
    preallocateBytes: 128,
  });
  for (let i = from; i < to; i += 2) {
    const records = [text(String(i)), text(String(i + 1))].slice(0, Math.min(2, to - i));
    writer.append(BigInt(i), records.length, [lengthPrefixed(records)]);
    writer.sync();
  }
  writer.close();
}

function recoverNumbers(fs: MemoryFs, dbDir: string) {
  let state: number[] = [];
  const result = recoverDatabase(fs, dbDir, {
    applySnapshot(bytes, txOffset) {
      state = JSON.parse(untext(bytes));
      deepStrictEqual(state.length, Number(txOffset));
    },
    applyRecord(payload, txOffset) {
      deepStrictEqual(Number(untext(payload)), Number(txOffset));
      deepStrictEqual(state.length, Number(txOffset));
      state.push(Number(txOffset));
    },
  });
  return { state, result };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

Deno.test("recoverDatabase() loads the newest snapshot and replays only the log suffix", () => {
  const fs = new MemoryFs();
  const dbDir = databaseDir("/data", "db1");
  appendNumbers(fs, dbDir, 0, 40);
  writeSnapshot(fs, snapshotDir(dbDir), 25n, text(JSON.stringify(range(25))));
  appendNumbers(fs, dbDir, 40, 61);
  const { state, result } = recoverNumbers(fs, dbDir);
  deepStrictEqual(state, range(61));
  deepStrictEqual(result.snapshotTxOffset, 25n);
  deepStrictEqual(result.replayedCount, 36);
  deepStrictEqual(result.durableEnd, 61n);
});

Deno.test("recoverDatabase() falls back to an older snapshot or the log alone when snapshots are damaged", () => {
  const fs = new MemoryFs();
  const dbDir = databaseDir("/data", "db1");
  appendNumbers(fs, dbDir, 0, 50);
  writeSnapshot(fs, snapshotDir(dbDir), 20n, text(JSON.stringify(range(20))));
  writeSnapshot(fs, snapshotDir(dbDir), 40n, text(JSON.stringify(range(40))));
  const [newest, older] = listSnapshots(fs, snapshotDir(dbDir));
  fs.flipBit(newest.path, 300);
  let recovered = recoverNumbers(fs, dbDir);
  deepStrictEqual(recovered.state, range(50));
  deepStrictEqual(recovered.result.snapshotTxOffset, 20n);
  fs.flipBit(older.path, 300);
  recovered = recoverNumbers(fs, dbDir);
  deepStrictEqual(recovered.state, range(50));
  deepStrictEqual(recovered.result.snapshotTxOffset, undefined);
  deepStrictEqual(recovered.result.replayedCount, 50);
  deepStrictEqual(recovered.result.skippedSnapshots.length, 2);
});

Deno.test("recoverDatabase() stops with CorruptLogError naming the file and offset on mid-log damage", () => {
  const fs = new MemoryFs();
  const dbDir = databaseDir("/data", "db1");
  appendNumbers(fs, dbDir, 0, 30);
  const firstSegment = `${logDir(dbDir)}/00000000000000000000.log`;
  fs.flipBit(firstSegment, 8 * 40);
  const error = (() => {
    try {
      recoverNumbers(fs, dbDir);
    } catch (error) {
      return error;
    }
  })();
  ok(error instanceof CorruptLogError);
  deepStrictEqual(error.file, firstSegment);
  ok(error.message.includes(firstSegment) && error.message.includes("at byte 0"), error.message);
});

Deno.test("recoverDatabase() of a database with no files is empty", () => {
  const { state, result } = recoverNumbers(new MemoryFs(), databaseDir("/data", "none"));
  deepStrictEqual(state, []);
  deepStrictEqual(result.durableEnd, 0n);
});

/** `fs` whose files also sync off-thread: each `syncDataAsync` waits for `gate`, then syncs. */
function asyncSyncFs(fs: MemoryFs, log: string[], fail: { at?: number } = {}): FsLayer {
  let syncs = 0;
  return {
    ...bindAll(fs),
    open: (path, options) => {
      const file = fs.open(path, options);
      return {
        path: file.path,
        write: (bytes, position) => file.write(bytes, position),
        read: (into, position) => file.read(into, position),
        syncData: () => file.syncData(),
        syncDataAsync: async () => {
          const index = ++syncs;
          log.push(`sync ${index} start at ${file.size()}`);
          await new Promise((resolve) => setTimeout(resolve, 1));
          if (index === fail.at) throw new Error(`sync ${index} failed`);
          file.syncData();
          log.push(`sync ${index} end`);
        },
        size: () => file.size(),
        truncate: (length) => file.truncate(length),
        close: () => file.close(),
      };
    },
  };
}

function bindAll(fs: MemoryFs): FsLayer {
  return {
    open: (path, options) => fs.open(path, options),
    readFile: (path) => fs.readFile(path),
    readDir: (path) => fs.readDir(path),
    exists: (path) => fs.exists(path),
    mkdir: (path) => fs.mkdir(path),
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.remove(path),
    syncDir: (path) => fs.syncDir(path),
  };
}

Deno.test("a streamed snapshot is synced in steps while it is written, and the last sync waits for them", async () => {
  const memory = new MemoryFs();
  const log: string[] = [];
  const writer = new SnapshotFileWriter(asyncSyncFs(memory, log), SNAPS, 50n);
  const piece = new Uint8Array(SNAPSHOT_SYNC_STEP_BYTES / 4);
  const pieces = 13;
  for (let i = 0; i < pieces; i++) {
    piece.fill(i);
    writer.write(piece);
    // Every other piece goes in while the storage worker does other work (the sync runs).
    if (i % 2 === 1) await new Promise((resolve) => setTimeout(resolve, 3));
  }
  const finished = writer.finish();
  ok(finished instanceof Promise);
  const path = await finished;
  ok(path.endsWith(".snap"), path);
  const starts = log.filter((line) => line.includes("start"));
  ok(starts.length >= 3, `intermediate syncs and the last one: ${log.join("; ")}`);
  // One sync at a time: each start follows the previous sync's end.
  for (let i = 1; i < starts.length; i++) {
    ok(
      log.indexOf(`sync ${i} end`) < log.indexOf(starts[i]),
      `sync ${i + 1} starts after sync ${i} ended: ${log.join("; ")}`,
    );
  }
  const choice = readNewestValidSnapshot(memory, SNAPS, 100n);
  deepStrictEqual(choice.snapshot?.txOffset, 50n);
  deepStrictEqual(choice.snapshot!.bytes.length, pieces * piece.length);
  for (let i = 0; i < pieces; i++) deepStrictEqual(choice.snapshot!.bytes[i * piece.length], i);
});

Deno.test("a failed intermediate sync fails the snapshot and installs nothing", async () => {
  const memory = new MemoryFs();
  const log: string[] = [];
  const writer = new SnapshotFileWriter(asyncSyncFs(memory, log, { at: 1 }), SNAPS, 60n);
  const piece = new Uint8Array(SNAPSHOT_SYNC_STEP_BYTES);
  writer.write(piece);
  writer.write(piece);
  let failure = "";
  try {
    await writer.finish();
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
  }
  deepStrictEqual(failure, "sync 1 failed");
  writer.abort();
  deepStrictEqual(listSnapshots(memory, SNAPS), []);
  deepStrictEqual(readNewestValidSnapshot(memory, SNAPS, 100n).snapshot, undefined);
});

Deno.test("on the real file system, pieces written while a step's fdatasync runs all reach the snapshot", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-snapshot-steps-" });
  try {
    const writer = new SnapshotFileWriter(denoFs, dir, 70n);
    const piece = new Uint8Array(SNAPSHOT_SYNC_STEP_BYTES / 2);
    const pieces = 11;
    for (let i = 0; i < pieces; i++) {
      piece.fill(i + 1);
      writer.write(piece);
      // Let a started sync run on the blocking pool while later pieces are written.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const path = await writer.finish();
    ok(path.endsWith(".snap"), path);
    const choice = readNewestValidSnapshot(denoFs, dir, 100n);
    deepStrictEqual(choice.skipped, []);
    const bytes = choice.snapshot!.bytes;
    deepStrictEqual(bytes.length, pieces * piece.length);
    for (let i = 0; i < pieces; i++) {
      deepStrictEqual([bytes[i * piece.length], bytes[(i + 1) * piece.length - 1]], [i + 1, i + 1]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("abandon() during the last sync: finish rejects, nothing is renamed or removed", async () => {
  const memory = new MemoryFs();
  const log: string[] = [];
  const fs = asyncSyncFs(memory, log);
  const renames: string[] = [];
  const removes: string[] = [];
  const writer = new SnapshotFileWriter(
    {
      ...fs,
      rename: (from, to) => (renames.push(to), fs.rename(from, to)),
      remove: (path) => (removes.push(path), fs.remove(path)),
    },
    SNAPS,
    70n,
  );
  writer.write(new Uint8Array(100));
  removes.length = 0;
  const finished = writer.finish();
  ok(finished instanceof Promise);
  // The database's directory goes while the sync runs.
  writer.abandon();
  memory.remove("/data/databases/db1");
  const failure = await finished.then(() => undefined, (error) => error);
  ok(failure instanceof SnapshotAbandonedError, String(failure));
  writer.abort();
  deepStrictEqual([renames, removes], [[], []]);
  deepStrictEqual(memory.exists(SNAPS), false);
});
