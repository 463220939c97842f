/**
 * LogTail reads what the storage worker's writer wrote: whole commits, in order, across segment
 * files, in pieces of a bounded size, stopping at the durable end it is given.
 */
import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import {
  CommitLogWriter,
  databaseDir,
  denoFs,
  lengthPrefixed,
  logDir,
  readFrameAt,
} from "../storage/mod.ts";
import { LogTail } from "./log_tail.ts";

const KEY = "ab".repeat(32);

function recordBytes(tx: number): Uint8Array {
  return new TextEncoder().encode(`transaction ${tx} `.repeat(20));
}

/** The first tx offset of each commit in `frames`. */
function commitStarts(frames: Uint8Array): number[] {
  const starts: number[] = [];
  for (let at = 0; at < frames.length;) {
    const frame = readFrameAt(frames, at);
    if (frame.kind !== "ok") throw new Error(`bad frame at ${at}`);
    starts.push(Number(frame.header.firstTxOffset));
    at = frame.end;
  }
  return starts;
}

Deno.test("LogTail reads whole commits across segments, bounded, up to the durable end", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-log-tail-" });
  try {
    const dir = logDir(databaseDir(dataDir, KEY));
    // Small segments: the 30 commits below span several files.
    const writer = CommitLogWriter.open(denoFs, dir, {
      segmentBytes: 4096,
      preallocateBytes: 4096,
    });
    let tx = 0;
    for (let commit = 0; commit < 30; commit++) {
      const count = 1 + (commit % 3);
      const records = Array.from({ length: count }, (_, i) => recordBytes(tx + i));
      writer.append(BigInt(tx), count, [lengthPrefixed(records)]);
      tx += count;
      writer.sync();
    }
    writer.close();
    const segments = [...Deno.readDirSync(dir)].filter((entry) => entry.name.endsWith(".log"));
    if (segments.length < 3) throw new Error(`expected several segments, got ${segments.length}`);

    const tail = new LogTail(dataDir, KEY);
    await tail.seek(0);
    const starts: number[] = [];
    const durableEnd = tx - 3; // the last commit (3 records) is not durable yet
    for (;;) {
      const run = await tail.read(durableEnd, 2048);
      if (!run) break;
      const runStarts = commitStarts(run.frames);
      assertEquals(runStarts[0], run.firstTx);
      starts.push(...runStarts);
    }
    assertEquals(tail.nextTx, durableEnd);
    const expected: number[] = [];
    for (let commit = 0, at = 0; commit < 29; at += 1 + (commit % 3), commit++) expected.push(at);
    assertEquals(starts, expected);

    // Seeking to a commit start in a later segment, then reading the rest.
    const later = new LogTail(dataDir, KEY);
    await later.seek(expected[20]);
    const rest: number[] = [];
    for (let run = await later.read(tx, 1 << 20); run; run = await later.read(tx, 1 << 20)) {
      rest.push(...commitStarts(run.frames));
    }
    assertEquals(rest, [...expected.slice(20), expected[28] + 2]);
    // An offset inside a commit is refused.
    await rejects(() => later.seek(expected[20] + 1), /does not start a commit/);
    tail.close();
    later.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("LogTail refuses a commit header claiming a huge length before allocating for it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-log-tail-" });
  try {
    const dir = logDir(databaseDir(dataDir, KEY));
    const writer = CommitLogWriter.open(denoFs, dir, { segmentBytes: 1 << 20 });
    for (let tx = 0; tx < 4; tx++) {
      writer.append(BigInt(tx), 1, [lengthPrefixed([recordBytes(tx)])]);
      writer.sync();
    }
    writer.close();
    const segment = [...Deno.readDirSync(dir)].find((entry) => entry.name.endsWith(".log"))!;
    const path = `${dir}/${segment.name}`;
    const bytes = await Deno.readFile(path);
    const first = readFrameAt(bytes, 0);
    if (first.kind !== "ok") throw new Error("the first commit does not read");
    // The second commit's header (not covered by any CRC until its end is found) claims
    // almost 4 GiB of payload.
    new DataView(bytes.buffer).setUint32(first.end + 28, 0xfffffff0, true);
    await Deno.writeFile(path, bytes);

    // Reading from the damaged commit: the length is refused, nothing of that size is made.
    const tail = new LogTail(dataDir, KEY);
    await tail.seek(1);
    await rejects(
      () => tail.read(4, 64 * 1024),
      /damaged at transaction 1: its header claims a commit of 4294967\d+ bytes, but only \d+ bytes/,
    );
    tail.close();
    // Seeking across it: the same.
    const seeker = new LogTail(dataDir, KEY);
    await rejects(() => seeker.seek(3), /damaged at transaction 1: its header claims a commit/);
    seeker.close();
    // The commit before it still reads.
    const before = new LogTail(dataDir, KEY);
    await before.seek(0);
    const run = await before.read(1, 64 * 1024);
    assertEquals(run && [run.firstTx, run.endTx], [0, 1]);
    before.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
