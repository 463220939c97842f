import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import {
  type CrashMode,
  denoFs,
  type FsLayer,
  type FsOperation,
  joinPath,
  MemoryFs,
} from "../fs_layer.ts";
import { lengthPrefixed } from "./frame.ts";
import { CorruptLogError, readCommitLog } from "./reader.ts";
import { segmentFileName } from "./segment.ts";
import { CommitLogFailedError, CommitLogWriter } from "./writer.ts";

const DIR = "/data/databases/db1/log";
const SMALL = { segmentBytes: 1024, preallocateBytes: 256 };

function recordBytes(offset: number): Uint8Array {
  const text = `tx-${offset}-` + "x".repeat(offset % 23);
  return new TextEncoder().encode(text);
}

/** Appends commits of 1..3 records; returns each commit's [firstTxOffset, count]. */
function writeCommits(
  writer: CommitLogWriter,
  commitCount: number,
  options: { syncEach?: boolean } = {},
): Array<[number, number]> {
  const written: Array<[number, number]> = [];
  for (let i = 0; i < commitCount; i++) {
    const first = Number(writer.nextTxOffset);
    const count = 1 + (i % 3);
    const records = Array.from({ length: count }, (_, k) => recordBytes(first + k));
    writer.append(BigInt(first), count, [lengthPrefixed(records)]);
    if (options.syncEach ?? true) writer.sync();
    written.push([first, count]);
  }
  return written;
}

function readAll(fs: FsLayer, dir = DIR): Array<[number, string]> {
  const log = readCommitLog(fs, dir);
  return [...log.records()].map((r) => [Number(r.offset), new TextDecoder().decode(r.bytes)]);
}

function expectedRecords(count: number): Array<[number, string]> {
  return Array.from(
    { length: count },
    (_, i) => [i, new TextDecoder().decode(recordBytes(i))] as [number, string],
  );
}

for (
  const [name, makeFs] of [
    ["MemoryFs", () => ({ fs: new MemoryFs() as FsLayer, dir: DIR })],
    ["denoFs", () => ({ fs: denoFs, dir: joinPath(Deno.makeTempDirSync(), "log") })],
  ] as const
) {
  Deno.test(`${name}: a written log reads back every record in order across segments`, () => {
    const { fs, dir } = makeFs();
    const writer = CommitLogWriter.open(fs, dir, SMALL);
    const commits = writeCommits(writer, 60);
    writer.close();
    const total = commits.at(-1)![0] + commits.at(-1)![1];
    const log = readCommitLog(fs, dir);
    ok(log.segments.length > 3, `expected several segments, got ${log.segments.length}`);
    deepStrictEqual(log.durableEnd, BigInt(total));
    deepStrictEqual(readAll(fs, dir), expectedRecords(total));
    deepStrictEqual(log.truncatedTornTail, false);
  });

  Deno.test(`${name}: a reopened writer continues at the next offset`, () => {
    const { fs, dir } = makeFs();
    let writer = CommitLogWriter.open(fs, dir, SMALL);
    writeCommits(writer, 10);
    writer.close();
    writer = CommitLogWriter.open(fs, dir, SMALL);
    const before = writer.nextTxOffset;
    ok(before > 0n);
    writeCommits(writer, 30);
    const total = Number(writer.durableOffset);
    writer.close();
    deepStrictEqual(readAll(fs, dir), expectedRecords(total));
  });
}

Deno.test("records(from) and commits(from) start at the requested offset", () => {
  const fs = new MemoryFs();
  const writer = CommitLogWriter.open(fs, DIR, SMALL);
  writeCommits(writer, 40);
  const total = Number(writer.durableOffset);
  const log = readCommitLog(fs, DIR);
  for (const from of [0, 1, 7, 30, total - 1, total]) {
    const got = [...log.records(BigInt(from))].map((r) => Number(r.offset));
    deepStrictEqual(got, Array.from({ length: total - from }, (_, i) => from + i));
  }
});

Deno.test("append() rejects a batch whose first offset is not the next one", () => {
  const fs = new MemoryFs();
  const writer = CommitLogWriter.open(fs, DIR, SMALL);
  writeCommits(writer, 2);
  throws(() => writer.append(99n, 1, [lengthPrefixed([recordBytes(99)])]), RangeError);
  throws(
    () => writer.append(writer.nextTxOffset, 2, [lengthPrefixed([recordBytes(1)])]),
    TypeError,
  );
  writeCommits(writer, 1);
});

Deno.test("a lower epoch is refused and epochs are stored per commit", () => {
  const fs = new MemoryFs();
  let writer = CommitLogWriter.open(fs, DIR, { ...SMALL, epoch: 3n });
  writeCommits(writer, 2);
  writer.close();
  throws(() => CommitLogWriter.open(fs, DIR, { ...SMALL, epoch: 2n }), RangeError);
  writer = CommitLogWriter.open(fs, DIR, SMALL);
  deepStrictEqual(writer.epoch, 3n);
  writer.setEpoch(5n);
  writeCommits(writer, 1);
  const epochs = [...readCommitLog(fs, DIR).commits()].map((c) => c.epoch);
  deepStrictEqual(epochs, [3n, 3n, 5n]);
});

/** Byte ranges [start, end) of every commit in a log's last segment. */
function lastSegmentCommitRanges(fs: FsLayer): { path: string; ranges: Array<[number, number]> } {
  const log = readCommitLog(fs, DIR, { truncateTornTail: false });
  const last = log.segments.at(-1)!;
  const ranges: Array<[number, number]> = [];
  const bytes = fs.readFile(last.path);
  let at = 0;
  while (at < last.validBytes) {
    const length = new DataView(bytes.buffer, at + 28, 4).getUint32(0, true);
    ranges.push([at, at + 36 + length]);
    at += 36 + length;
  }
  return { path: last.path, ranges };
}

for (const layout of ["in one segment", "with the last commit opening a new segment"]) {
  Deno.test(`cutting the log at every byte of the last two commits (${layout}) keeps exactly the complete commits`, () => {
    const base = new MemoryFs();
    const writer = CommitLogWriter.open(base, DIR, { segmentBytes: 4096, preallocateBytes: 512 });
    let commits = writeCommits(writer, 8);
    if (layout !== "in one segment") {
      // Fill the segment so the next commit starts a new one.
      while (writer.position.segmentFirstTxOffset === 0n) {
        commits = commits.concat(writeCommits(writer, 1));
      }
    }
    writer.close();
    const { path, ranges } = lastSegmentCommitRanges(base);
    const segmentStart = readCommitLog(base, DIR).segments.at(-1)!.firstTxOffset;
    const lastTwo = ranges.slice(-2);
    const from = lastTwo[0][0];
    const to = lastTwo.at(-1)![1];
    let cases = 0;
    for (let cut = from; cut <= to; cut++) {
      for (const style of ["truncate", "zero-fill"] as const) {
        const fs = base.crash("keep-unsynced");
        const file = fs.open(path);
        if (style === "truncate") file.truncate(cut);
        else file.write(new Uint8Array(to - cut), cut);
        file.close();
        const complete = ranges.filter(([, end]) => end <= cut).length;
        // Offsets covered by complete commits in this segment, plus all earlier segments.
        const segmentCommits = commits.filter(([first]) => BigInt(first) >= segmentStart);
        const keptCommits = commits.length - segmentCommits.length + complete;
        const kept = keptCommits === 0
          ? 0
          : commits[keptCommits - 1][0] + commits[keptCommits - 1][1];
        const log = readCommitLog(fs, DIR);
        deepStrictEqual(log.durableEnd, BigInt(kept), `cut at ${cut} (${style})`);
        // A cut exactly on a commit boundary leaves nothing torn behind.
        const onBoundary = ranges.some(([start, end]) => start === cut || end === cut);
        deepStrictEqual(log.truncatedTornTail, !onBoundary, `cut at ${cut} (${style})`);
        deepStrictEqual(readAll(fs), expectedRecords(kept), `cut at ${cut} (${style})`);
        // The log accepts new commits after the cut and reads back whole.
        const again = CommitLogWriter.open(fs, DIR, { segmentBytes: 4096, preallocateBytes: 512 });
        writeCommits(again, 2);
        const total = Number(again.durableOffset);
        again.close();
        deepStrictEqual(readAll(fs), expectedRecords(total));
        cases++;
      }
    }
    ok(cases > 100);
  });
}

Deno.test("a cut inside a commit is reported as a truncated torn tail naming file and offset", () => {
  const fs = new MemoryFs();
  const writer = CommitLogWriter.open(fs, DIR, SMALL);
  writeCommits(writer, 3);
  writer.close();
  const { path, ranges } = lastSegmentCommitRanges(fs);
  const file = fs.open(path);
  file.truncate(ranges.at(-1)![1] - 3);
  file.close();
  const log = readCommitLog(fs, DIR);
  deepStrictEqual(log.truncatedTornTail, true);
  deepStrictEqual(log.tornTail?.file, path);
  deepStrictEqual(log.tornTail?.byteOffset, ranges.at(-1)![0]);
  deepStrictEqual(fs.readFile(path).length, ranges.at(-1)![0]);
  const readOnly = readCommitLog(fs, DIR, { truncateTornTail: false });
  deepStrictEqual(readOnly.truncatedTornTail, false);
});

Deno.test("random bit flips in sealed data are always detected, and no flip ever loads wrong data", () => {
  const base = new MemoryFs();
  const writer = CommitLogWriter.open(base, DIR, SMALL);
  writeCommits(writer, 40);
  const total = Number(writer.durableOffset);
  writer.close();
  const clean = readCommitLog(base, DIR, { truncateTornTail: false });
  const { ranges } = lastSegmentCommitRanges(base);
  const lastCommitStart = ranges.at(-1)![0];
  const random = seededRandom(42);
  const trials = 3000;
  let detected = 0;
  for (let trial = 0; trial < trials; trial++) {
    const fs = base.crash("keep-unsynced");
    const segmentIndex = Math.floor(random.next() * clean.segments.length);
    const segment = clean.segments[segmentIndex];
    const isLast = segmentIndex === clean.segments.length - 1;
    // Sealed: every byte of a non-last segment (commits and zero fill), and the last segment's
    // commits before its last one. Anything in the last commit may be indistinguishable from a tear.
    const sealedBytes = isLast ? lastCommitStart : segment.fileBytes;
    if (sealedBytes === 0) continue;
    const bit = Math.floor(random.next() * sealedBytes * 8);
    fs.flipBit(segment.path, bit);
    try {
      readCommitLog(fs, DIR);
      throw new Error(`flip of bit ${bit} in ${segment.path} was not detected`);
    } catch (error) {
      ok(error instanceof CorruptLogError, String(error));
      ok(error.message.includes(segment.path), error.message);
      detected++;
    }
  }
  ok(detected > trials * 0.9);
  // A flip inside the last commit is told apart from a torn write (no zero hole), nearly always.
  const lastSegment = clean.segments.at(-1)!;
  const lastCommitEnd = ranges.at(-1)![1];
  let lastDetected = 0;
  for (let trial = 0; trial < 500; trial++) {
    const fs = base.crash("keep-unsynced");
    const byte = lastCommitStart + Math.floor(random.next() * (lastCommitEnd - lastCommitStart));
    fs.flipBit(lastSegment.path, byte * 8 + Math.floor(random.next() * 8));
    try {
      readCommitLog(fs, DIR);
    } catch (error) {
      ok(error instanceof CorruptLogError, String(error));
      lastDetected++;
    }
  }
  ok(lastDetected >= 490, `${lastDetected} of 500 flips in the last commit detected`);
  // Flips anywhere (including the last commit and the zero fill) never load changed bytes.
  for (let trial = 0; trial < 2000; trial++) {
    const fs = base.crash("keep-unsynced");
    const segment = clean.segments[Math.floor(random.next() * clean.segments.length)];
    fs.flipBit(segment.path, Math.floor(random.next() * segment.fileBytes * 8));
    try {
      const got = readAll(fs);
      deepStrictEqual(got, expectedRecords(total).slice(0, got.length));
    } catch (error) {
      ok(error instanceof CorruptLogError, String(error));
    }
  }
});

Deno.test("a gap between segments is corruption", () => {
  const fs = new MemoryFs();
  const writer = CommitLogWriter.open(fs, DIR, SMALL);
  writeCommits(writer, 40);
  writer.close();
  const log = readCommitLog(fs, DIR);
  fs.rename(
    log.segments[1].path,
    joinPath(DIR, segmentFileName(log.segments[1].firstTxOffset + 1n)),
  );
  throws(() => readCommitLog(fs, DIR), CorruptLogError);
});

function faultWorkload(
  fs: MemoryFs,
  random: ReturnType<typeof seededRandom>,
): { acked: number; attempted: number; error: unknown } {
  let acked = 0;
  let attempted = 0;
  let writer: CommitLogWriter | undefined;
  try {
    writer = CommitLogWriter.open(fs, DIR, { segmentBytes: 700, preallocateBytes: 200 });
    for (let i = 0; i < 40; i++) {
      const first = Number(writer.nextTxOffset);
      const count = 1 + (i % 3);
      const records = Array.from({ length: count }, (_, k) => recordBytes(first + k));
      attempted = first + count;
      writer.append(BigInt(first), count, [lengthPrefixed(records)]);
      acked = Number(writer.durableOffset);
      if (random.next() < 0.6) acked = Number(writer.sync());
    }
    acked = Number(writer.sync());
    return { acked, attempted, error: undefined };
  } catch (error) {
    if (writer) {
      // Once failed, nothing more is accepted and the durable offset stays put.
      ok(error instanceof CommitLogFailedError, String(error));
      // A sync inside the failed call may have succeeded first; whatever it reports is acked.
      acked = Number(writer.durableOffset);
      throws(() => writer!.sync(), CommitLogFailedError);
      throws(
        () => writer!.append(writer!.nextTxOffset, 1, [lengthPrefixed([recordBytes(0)])]),
        CommitLogFailedError,
      );
      deepStrictEqual(Number(writer.durableOffset), acked);
    }
    return { acked, attempted, error };
  }
}

for (const operation of ["write", "sync"] as FsOperation[]) {
  Deno.test(`failing the Nth ${operation} for every N never acknowledges after the failure and recovers a consistent prefix`, () => {
    const probe = new MemoryFs();
    faultWorkload(probe, seededRandom(5));
    const totalCalls = probe.counts[operation];
    ok(totalCalls > 20, `workload makes ${totalCalls} ${operation} calls`);
    const modes: CrashMode[] = ["lose-unsynced", "keep-unsynced", "tear-unsynced"];
    for (let nth = 1; nth <= totalCalls + 1; nth++) {
      for (const persistent of [false, true]) {
        const fs = new MemoryFs({ random: seededRandom(nth) });
        fs.injectFault({ operation, nth, persistent });
        const result = faultWorkload(fs, seededRandom(5));
        ok(
          nth > totalCalls ? result.error === undefined : result.error !== undefined,
          `nth ${nth}`,
        );
        for (const mode of modes) {
          const after = fs.crash(mode);
          const got = readAll(after);
          ok(
            got.length >= result.acked,
            `nth ${nth} ${mode}: lost acked tx (${got.length} < ${result.acked})`,
          );
          ok(got.length <= result.attempted, `nth ${nth} ${mode}`);
          deepStrictEqual(got, expectedRecords(got.length), `nth ${nth} ${mode}`);
          // And the database can carry on writing after the restart.
          const again = CommitLogWriter.open(after, DIR, {
            segmentBytes: 700,
            preallocateBytes: 200,
          });
          writeCommits(again, 3);
          const total = Number(again.durableOffset);
          again.close();
          deepStrictEqual(
            readAll(after),
            expectedRecords(total),
            `nth ${nth} ${mode} after restart`,
          );
        }
      }
    }
  });
}

Deno.test("the zero fill ahead of the write position grows with the commits, never in one lump", () => {
  const fs = new MemoryFs();
  const preallocateBytes = 1024 * 1024;
  const writer = CommitLogWriter.open(fs, DIR, {
    segmentBytes: 64 * 1024 * 1024,
    preallocateBytes,
  });
  const record = new Uint8Array(1000).fill(7);
  const fileSize = () => fs.open(writer.position.segmentPath).size();
  let previousSize = 0;
  let largestGrowth = 0;
  for (let i = 0; i < 400; i++) {
    writer.append(BigInt(i), 1, [lengthPrefixed([record])]);
    writer.sync();
    const size = fileSize();
    const position = writer.position.byteOffset;
    ok(size >= position, `the fill covers the commits (${size} < ${position})`);
    ok(size <= position + preallocateBytes, `at most preallocateBytes ahead (${size - position})`);
    largestGrowth = Math.max(largestGrowth, size - previousSize);
    previousSize = size;
  }
  // Each commit (~1 KiB) extends the fill by at most 64 KiB, not by the whole 1 MiB at once...
  ok(largestGrowth <= 64 * 1024 + 1100, `largest growth in one commit: ${largestGrowth} bytes`);
  // ...and the fill does reach its target ahead of the write position, so an fdatasync of the
  // next commits needs no size update.
  deepStrictEqual(fileSize(), writer.position.byteOffset + preallocateBytes);
  writer.close();
  deepStrictEqual(readCommitLog(fs, DIR).durableEnd, 400n);
});
