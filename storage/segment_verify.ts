/**
 * Checking the commit-log segments recovery never reads. Recovery starts from the newest valid
 * snapshot and reads only the segments holding transactions after it, so a segment wholly before
 * that snapshot could rot unnoticed until a lost snapshot made it needed. These functions find
 * such sealed segments and verify one (every commit's checksum, contiguous offsets, its end where
 * the next segment begins); segment_verifier_worker.ts runs them in the background.
 */
import { CorruptLogError, verifySealedSegment } from "./commitlog/reader.ts";
import { parseSegmentFileName } from "./commitlog/segment.ts";
import { type FsLayer, joinPath } from "./fs_layer.ts";
import { logDir, snapshotDir } from "./recovery.ts";
import { listSnapshots } from "./snapshot.ts";

/** A segment that is not the last of its log: no writer touches it again. */
export interface SealedSegment {
  path: string;
  firstTxOffset: bigint;
  /** One past its last transaction: the next segment's first. */
  endTxOffset: bigint;
}

/** The outcome of checking one segment. */
export type SegmentVerdict =
  | { kind: "ok"; path: string; bytes: number }
  | { kind: "corrupt"; path: string; bytes: number; byteOffset: number; reason: string }
  /** Not judged: the file could not be read (gone with its database, an I/O error). */
  | { kind: "unreadable"; path: string; error: string };

/**
 * The sealed segments of the log in `dbDir` that end at or before its newest snapshot file's
 * offset (valid or not: a segment an older valid snapshot's replay needs is checked by that replay
 * anyway), oldest first.
 */
export function segmentsBeforeNewestSnapshot(fs: FsLayer, dbDir: string): SealedSegment[] {
  const newest = listSnapshots(fs, snapshotDir(dbDir))[0];
  if (newest === undefined) return [];
  const dir = logDir(dbDir);
  const named = fs.readDir(dir)
    .map((name) => ({ name, first: parseSegmentFileName(name) }))
    .filter((entry): entry is { name: string; first: bigint } => entry.first !== undefined)
    .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const sealed: SealedSegment[] = [];
  for (let i = 0; i + 1 < named.length; i++) {
    const endTxOffset = named[i + 1].first;
    if (endTxOffset > newest.txOffset) break;
    sealed.push({ path: joinPath(dir, named[i].name), firstTxOffset: named[i].first, endTxOffset });
  }
  return sealed;
}

/** Reads one sealed segment whole and verifies it. */
export function verifySegment(fs: FsLayer, segment: SealedSegment): SegmentVerdict {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFile(segment.path);
  } catch (error) {
    return {
      kind: "unreadable",
      path: segment.path,
      error: error instanceof Error ? error.message : String(error),
    };
  }
  try {
    verifySealedSegment(bytes, segment.path, segment.firstTxOffset, segment.endTxOffset);
    return { kind: "ok", path: segment.path, bytes: bytes.length };
  } catch (error) {
    if (!(error instanceof CorruptLogError)) throw error;
    return {
      kind: "corrupt",
      path: segment.path,
      bytes: bytes.length,
      byteOffset: error.byteOffset,
      reason: error.reason,
    };
  }
}
