/**
 * Recovery reads the log once (`readCommitLog(..., { verifyEarlierSegments: false })`): only the
 * last segment is read at open; every earlier segment is read and verified when the replay
 * reaches it, and damage there still stops the replay with an error naming file and byte.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import { type FsLayer, joinPath, MemoryFs } from "../fs_layer.ts";
import { lengthPrefixed } from "./frame.ts";
import { CorruptLogError, readCommitLog } from "./reader.ts";
import { segmentFileName } from "./segment.ts";
import { CommitLogWriter } from "./writer.ts";

const DIR = "/data/databases/db1/log";
const SMALL = { segmentBytes: 1024, preallocateBytes: 256 };

function writeLog(fs: FsLayer, commits: number, epochFrom?: number): number {
  const writer = CommitLogWriter.open(fs, DIR, SMALL);
  for (let i = 0; i < commits; i++) {
    if (epochFrom !== undefined && i >= epochFrom) writer.setEpoch(7n);
    const first = Number(writer.nextTxOffset);
    const count = 1 + (i % 3);
    const records = Array.from(
      { length: count },
      (_, k) => new TextEncoder().encode(`tx-${first + k}-${"y".repeat((first + k) % 19)}`),
    );
    writer.append(BigInt(first), count, [lengthPrefixed(records)]);
    writer.sync();
  }
  const end = Number(writer.durableOffset);
  writer.close();
  return end;
}

/** `fs` counting readFile calls per path. */
function counting(fs: FsLayer): { fs: FsLayer; reads: Map<string, number> } {
  const reads = new Map<string, number>();
  return {
    reads,
    fs: {
      open: (path, options) => fs.open(path, options),
      readFile: (path) => {
        reads.set(path, (reads.get(path) ?? 0) + 1);
        return fs.readFile(path);
      },
      readDir: (path) => fs.readDir(path),
      exists: (path) => fs.exists(path),
      mkdir: (path) => fs.mkdir(path),
      rename: (from, to) => fs.rename(from, to),
      remove: (path) => fs.remove(path),
      syncDir: (path) => fs.syncDir(path),
    },
  };
}

function records(log: ReturnType<typeof readCommitLog>, from = 0n): Array<[bigint, string]> {
  return [...log.records(from)].map((r) => [r.offset, new TextDecoder().decode(r.bytes)]);
}

Deno.test("a deferred open reads the last segment only; open + replay reads each segment once", () => {
  const memory = new MemoryFs();
  const end = writeLog(memory, 60);
  const full = readCommitLog(memory, DIR);
  ok(full.segments.length > 3, `several segments: ${full.segments.length}`);
  const { fs, reads } = counting(memory);
  const log = readCommitLog(fs, DIR, { verifyEarlierSegments: false });
  deepStrictEqual([...reads.keys()], [full.segments.at(-1)!.path], "open reads the last only");
  deepStrictEqual(log.durableEnd, BigInt(end));
  deepStrictEqual(records(log), records(full));
  for (const segment of full.segments) deepStrictEqual(reads.get(segment.path), 1, segment.path);
  deepStrictEqual(
    log.segments.map((s) => [s.endTxOffset, s.validBytes, s.fileBytes]),
    full.segments.map((s) => [s.endTxOffset, s.validBytes, s.fileBytes]),
  );
  // A replay that starts after the first segments never reads them.
  const { fs: fs2, reads: reads2 } = counting(memory);
  const from = full.segments[2].firstTxOffset + 1n;
  const later = readCommitLog(fs2, DIR, { verifyEarlierSegments: false });
  deepStrictEqual(records(later, from), records(full, from));
  ok(!reads2.has(full.segments[0].path) && !reads2.has(full.segments[1].path));
});

Deno.test("damage in an earlier segment stops a deferred replay with the file and byte", () => {
  const base = new MemoryFs();
  writeLog(base, 60);
  const clean = readCommitLog(base, DIR);
  const random = seededRandom(11);
  let detected = 0;
  for (let trial = 0; trial < 800; trial++) {
    const fs = base.crash("keep-unsynced");
    const index = Math.floor(random.next() * (clean.segments.length - 1));
    const segment = clean.segments[index];
    fs.flipBit(segment.path, Math.floor(random.next() * segment.fileBytes * 8));
    const log = readCommitLog(fs, DIR, { verifyEarlierSegments: false });
    try {
      records(log);
      throw new Error(`flip in ${segment.path} was not detected`);
    } catch (error) {
      ok(error instanceof CorruptLogError, String(error));
      ok(error.message.includes(segment.path) && /at byte \d+/.test(error.message), error.message);
      detected++;
    }
  }
  deepStrictEqual(detected, 800);
});

Deno.test("a gap between segments stops a deferred replay", () => {
  const fs = new MemoryFs();
  writeLog(fs, 60);
  const log = readCommitLog(fs, DIR);
  fs.rename(
    log.segments[1].path,
    joinPath(DIR, segmentFileName(log.segments[1].firstTxOffset + 1n)),
  );
  const deferred = readCommitLog(fs, DIR, { verifyEarlierSegments: false });
  throws(() => records(deferred), CorruptLogError);
});

Deno.test("a deferred open of a log whose last segment is still empty keeps the last epoch", () => {
  const fs = new MemoryFs();
  const end = writeLog(fs, 40, 30);
  // A crash right after the next segment was created: zero-filled, no commit.
  const file = fs.open(joinPath(DIR, segmentFileName(BigInt(end))), { createNew: true });
  file.write(new Uint8Array(256), 0);
  file.syncData();
  file.close();
  const full = readCommitLog(fs, DIR);
  const deferred = readCommitLog(fs, DIR, { verifyEarlierSegments: false });
  deepStrictEqual(full.lastEpoch, 7n);
  deepStrictEqual(deferred.lastEpoch, 7n);
  deepStrictEqual(deferred.durableEnd, BigInt(end));
  deepStrictEqual(records(deferred), records(full));
  // The writer continues the log where it ended.
  const writer = CommitLogWriter.open(fs, DIR, { ...SMALL, log: deferred });
  deepStrictEqual(writer.epoch, 7n);
  deepStrictEqual(writer.nextTxOffset, BigInt(end));
  writer.close();
});
