/**
 * The background check of commit-log segments recovery never reads (wholly before the newest
 * snapshot): a flipped byte in such a segment is found and named (file, byte), intact ones pass,
 * segments after the snapshot and the last one are left to recovery, and the worker-backed
 * SegmentVerifier reports each segment once per run.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { lengthPrefixed } from "./commitlog/frame.ts";
import { CommitLogWriter } from "./commitlog/writer.ts";
import { denoFs, joinPath } from "./fs_layer.ts";
import { logDir, snapshotDir } from "./recovery.ts";
import { snapshotFileName } from "./snapshot.ts";
import {
  segmentsBeforeNewestSnapshot,
  type SegmentVerdict,
  verifySegment,
} from "./segment_verify.ts";
import { SegmentVerifier } from "./segment_verifier.ts";

/** A database directory with a log of several 1 KiB segments and a snapshot name after the second. */
function makeDatabase(): { dataDir: string; dbKey: string; dbDir: string; segments: string[] } {
  const dataDir = Deno.makeTempDirSync({ prefix: "lightcone-verify-" });
  const dbKey = "ab".repeat(32);
  const dbDir = joinPath(joinPath(dataDir, "databases"), dbKey);
  const writer = CommitLogWriter.open(denoFs, logDir(dbDir), {
    segmentBytes: 1024,
    preallocateBytes: 256,
  });
  const text = new TextEncoder();
  for (let i = 0; i < 60; i++) {
    writer.append(BigInt(i), 1, [lengthPrefixed([text.encode(`record ${i} ${"x".repeat(40)}`)])]);
    writer.sync();
  }
  writer.close();
  const segments = [...Deno.readDirSync(logDir(dbDir))].map((e) => e.name).sort();
  assert(segments.length >= 4, `a log of several segments, not ${segments.length}`);
  // Only the name matters for which segments recovery skips: the third segment's first offset.
  Deno.mkdirSync(snapshotDir(dbDir), { recursive: true });
  const third = BigInt(segments[2].slice(0, 20));
  Deno.writeFileSync(joinPath(snapshotDir(dbDir), snapshotFileName(third)), new Uint8Array(8));
  return {
    dataDir,
    dbKey,
    dbDir,
    segments: segments.map((name) => joinPath(logDir(dbDir), name)),
  };
}

/** Flips one bit of a commit's payload in `path` (well inside its first commit). */
function flipByte(path: string, at = 40): void {
  const bytes = Deno.readFileSync(path);
  bytes[at] ^= 0x01;
  Deno.writeFileSync(path, bytes);
}

Deno.test("the segments wholly before the newest snapshot are the ones checked", () => {
  const db = makeDatabase();
  try {
    const sealed = segmentsBeforeNewestSnapshot(denoFs, db.dbDir);
    assertEquals(sealed.map((s) => s.path), db.segments.slice(0, 2));
    for (const segment of sealed) assertEquals(verifySegment(denoFs, segment).kind, "ok");
  } finally {
    Deno.removeSync(db.dataDir, { recursive: true });
  }
});

Deno.test("a flipped byte in an old segment is found, naming the file and the commit's byte", () => {
  const db = makeDatabase();
  try {
    flipByte(db.segments[0]);
    const [first, second] = segmentsBeforeNewestSnapshot(denoFs, db.dbDir);
    const verdict = verifySegment(denoFs, first);
    assertEquals(verdict.kind, "corrupt");
    if (verdict.kind !== "corrupt") return;
    assertEquals(verdict.path, db.segments[0]);
    assertEquals(verdict.byteOffset, 0);
    assert(/checksum/.test(verdict.reason), verdict.reason);
    assertEquals(verifySegment(denoFs, second).kind, "ok");
  } finally {
    Deno.removeSync(db.dataDir, { recursive: true });
  }
});

Deno.test({
  name: "SegmentVerifier checks old segments in its worker and reports each one once",
  async fn() {
    const db = makeDatabase();
    const verdicts: SegmentVerdict[] = [];
    const verifier = new SegmentVerifier({
      dataDir: db.dataDir,
      onVerdict: (dbKey, verdict) => {
        assertEquals(dbKey, db.dbKey);
        verdicts.push(verdict);
      },
    });
    try {
      flipByte(db.segments[1]);
      verifier.schedule(db.dbKey);
      await verifier.idle();
      assertEquals(verdicts.map((v) => [v.path, v.kind]), [
        [db.segments[0], "ok"],
        [db.segments[1], "corrupt"],
      ]);
      // A later snapshot puts the third segment behind it: only that one is read now.
      const fourth = BigInt(db.segments[3].slice(-24, -4));
      Deno.writeFileSync(
        joinPath(snapshotDir(db.dbDir), snapshotFileName(fourth)),
        new Uint8Array(8),
      );
      verifier.schedule(db.dbKey);
      await verifier.idle();
      assertEquals(verdicts.slice(2).map((v) => [v.path, v.kind]), [[db.segments[2], "ok"]]);
    } finally {
      verifier.close();
      Deno.removeSync(db.dataDir, { recursive: true });
    }
  },
});

Deno.test("SegmentVerifier starts no worker for a database without a snapshot", async () => {
  const dataDir = Deno.makeTempDirSync({ prefix: "lightcone-verify-" });
  const verdicts: SegmentVerdict[] = [];
  const verifier = new SegmentVerifier({ dataDir, onVerdict: (_, v) => verdicts.push(v) });
  try {
    verifier.schedule("cd".repeat(32));
    await verifier.idle();
    assertEquals(verdicts, []);
  } finally {
    verifier.close();
    Deno.removeSync(dataDir, { recursive: true });
  }
});
