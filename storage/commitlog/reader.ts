/**
 * Reading a commit log directory: validate every commit, cut off a torn tail, refuse anything
 * else that is damaged.
 *
 * The writer keeps at most one unsynced commit per log at any moment, always the last one, and
 * syncs a segment before starting the next. So after a crash only the last commit of the last
 * segment can be incomplete. A bad commit there, with no valid commit anywhere after it, is a torn
 * tail: it was never acknowledged and is truncated. Every other damage (bad checksum mid-log,
 * offset gaps, bytes after a sealed segment's end) throws CorruptLogError naming file and offset.
 */
import { assert } from "../../lib/assert.ts";
import type { FsLayer } from "../fs_layer.ts";
import { joinPath } from "../fs_layer.ts";
import { crc32c, crc32cUpdate } from "./crc32c.ts";
import {
  checkRecordLayout,
  COMMIT_HEADER_BYTES,
  COMMIT_MAGIC,
  COMMIT_OVERHEAD_BYTES,
  firstNonZero,
  forEachRecord,
  type FrameRead,
  isZero,
  readFrameAt,
} from "./frame.ts";
import { parseSegmentFileName } from "./segment.ts";

export class CorruptLogError extends Error {
  override name = "CorruptLogError";
  constructor(readonly file: string, readonly byteOffset: number, readonly reason: string) {
    super(`Commit log is corrupt in "${file}" at byte ${byteOffset}: ${reason}`);
  }
}

export interface SegmentSummary {
  path: string;
  firstTxOffset: bigint;
  /** One past the last tx in this segment. */
  endTxOffset: bigint;
  /** Bytes holding valid commits; the rest is zero fill. */
  validBytes: number;
  fileBytes: number;
}

export interface CommitView {
  epoch: bigint;
  firstTxOffset: bigint;
  recordCount: number;
  /** Length-prefixed records; a view into the segment bytes. */
  payload: Uint8Array;
}

export interface RecordView {
  offset: bigint;
  bytes: Uint8Array;
}

export interface TornTail {
  file: string;
  byteOffset: number;
  reason: string;
}

export interface CommitLog {
  segments: SegmentSummary[];
  /** One past the last complete transaction: transactions [0, durableEnd) are in the log. */
  durableEnd: bigint;
  /** Epoch of the last commit (0 for an empty log). */
  lastEpoch: bigint;
  truncatedTornTail: boolean;
  tornTail: TornTail | undefined;
  /** Commits that hold any transaction at or after `fromTxOffset`, in order. */
  commits(fromTxOffset?: bigint): Generator<CommitView>;
  /** Records with offset at or after `fromTxOffset`, in order. */
  records(fromTxOffset?: bigint): Generator<RecordView>;
}

export interface ReadCommitLogOptions {
  /** Cut a torn tail off the file (and fsync). Default true; false only looks. */
  truncateTornTail?: boolean;
  /**
   * Default true: every segment is read and verified now, and read again by `commits()`. False
   * (recovery): only the last segment is read now (its end and a torn tail are decided there) and
   * kept in memory; earlier segments are read once, when `commits()` reaches them, and verified
   * then (damage throws CorruptLogError from the generator). Segments wholly before the
   * `fromTxOffset` a replay starts at are never read.
   */
  verifyEarlierSegments?: boolean;
}

export function readCommitLog(
  fs: FsLayer,
  dir: string,
  options: ReadCommitLogOptions = {},
): CommitLog {
  const named = fs.readDir(dir)
    .map((name) => ({ name, firstTxOffset: parseSegmentFileName(name) }))
    .filter((entry): entry is { name: string; firstTxOffset: bigint } =>
      entry.firstTxOffset !== undefined
    )
    .sort((
      a,
      b,
    ) => (a.firstTxOffset < b.firstTxOffset ? -1 : a.firstTxOffset > b.firstTxOffset ? 1 : 0));

  const segments: SegmentSummary[] = [];
  /** Per segment: verified already (at open, or by an earlier pass of `commits()`). */
  const verified: boolean[] = [];
  let expected = 0n;
  let epoch = 0n;
  let tornTail: TornTail | undefined;
  /** The last segment's bytes, read at open and kept for the first replay (deferred mode). */
  let lastBytes: Uint8Array | undefined;
  const deferred = options.verifyEarlierSegments === false;
  // Deferred: the segments before the last are taken at their names' word for now; a segment
  // just rolled over (the last holds no commit yet) is read too, for the log's last epoch.
  let deferUntil = 0;
  if (deferred && named.length > 1) deferUntil = named.length - 1;
  for (let i = 0; i < named.length; i++) {
    const path = joinPath(dir, named[i].name);
    const isLast = i === named.length - 1;
    if (named[i].firstTxOffset !== expected) {
      throw new CorruptLogError(
        path,
        0,
        `segment starts at tx ${named[i].firstTxOffset} but the log so far ends at tx ${expected}`,
      );
    }
    if (i < deferUntil) {
      segments.push({
        path,
        firstTxOffset: named[i].firstTxOffset,
        endTxOffset: named[i + 1].firstTxOffset,
        validBytes: -1,
        fileBytes: -1,
      });
      verified.push(false);
      expected = named[i + 1].firstTxOffset;
      continue;
    }
    const bytes = fs.readFile(path);
    const scan = scanSegment(bytes, path, expected, epoch, isLast);
    if (
      deferred && isLast && i > 0 && !verified[i - 1] && scan.endTxOffset === named[i].firstTxOffset
    ) {
      // The last segment holds no commit yet (it just rolled over): the previous one holds the
      // log's last epoch, so it is read and verified now (and not again by `commits()`).
      const previous = segments[i - 1];
      const previousBytes = fs.readFile(previous.path);
      const previousScan = scanSegment(
        previousBytes,
        previous.path,
        previous.firstTxOffset,
        0n,
        false,
      );
      checkSegmentEnd(previous, previousScan.endTxOffset);
      previous.validBytes = previousScan.validBytes;
      previous.fileBytes = previousBytes.length;
      verified[i - 1] = true;
      scan.lastEpoch = previousScan.lastEpoch;
    }
    pushScanned(path, named[i].firstTxOffset, scan, bytes);
  }

  function pushScanned(path: string, first: bigint, scan: SegmentScan, bytes: Uint8Array): void {
    segments.push({
      path,
      firstTxOffset: first,
      endTxOffset: scan.endTxOffset,
      validBytes: scan.validBytes,
      fileBytes: bytes.length,
    });
    verified.push(true);
    expected = scan.endTxOffset;
    epoch = scan.lastEpoch;
    tornTail = scan.tornTail;
    if (deferred) lastBytes = bytes;
  }

  let truncated = false;
  if (tornTail && options.truncateTornTail !== false) {
    const file = fs.open(tornTail.file);
    try {
      file.truncate(tornTail.byteOffset);
      file.syncData();
    } finally {
      file.close();
    }
    segments[segments.length - 1].fileBytes = tornTail.byteOffset;
    truncated = true;
  }

  const durableEnd = expected;
  function* commits(fromTxOffset = 0n): Generator<CommitView> {
    /** Epoch of the last commit streamed, for the check across deferred segments. */
    let streamedEpoch = 0n;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i];
      if (segment.endTxOffset <= fromTxOffset) continue;
      const isLast = i === segments.length - 1;
      let bytes: Uint8Array;
      if (isLast && lastBytes !== undefined) {
        bytes = lastBytes;
        lastBytes = undefined; // one replay streams it; a later one reads the file again
      } else {
        bytes = fs.readFile(segment.path);
      }
      if (!verified[i]) {
        // Read once: verified here, as the replay reaches it.
        const scan = scanSegment(bytes, segment.path, segment.firstTxOffset, streamedEpoch, false);
        checkSegmentEnd(segment, scan.endTxOffset);
        segment.validBytes = scan.validBytes;
        segment.fileBytes = bytes.length;
        verified[i] = true;
      }
      let position = 0;
      let next = segment.firstTxOffset;
      while (position < segment.validBytes) {
        // Checksums were verified when the log was opened; headers and offsets are re-checked.
        const frame = readFrameAt(bytes, position, false);
        if (frame.kind !== "ok" || frame.header.firstTxOffset !== next) {
          throw new CorruptLogError(
            segment.path,
            position,
            "commit changed since the log was opened",
          );
        }
        if (frame.header.epoch < streamedEpoch) {
          throw new CorruptLogError(
            segment.path,
            position,
            `epoch went down from ${streamedEpoch} to ${frame.header.epoch}`,
          );
        }
        streamedEpoch = frame.header.epoch;
        next += BigInt(frame.header.recordCount);
        if (next > fromTxOffset) {
          yield {
            epoch: frame.header.epoch,
            firstTxOffset: frame.header.firstTxOffset,
            recordCount: frame.header.recordCount,
            payload: bytes.subarray(frame.payloadStart, frame.end - 4),
          };
        }
        position = frame.end;
      }
      assert(next === segment.endTxOffset, "Replay ended where the scan did");
    }
  }
  function* records(fromTxOffset = 0n): Generator<RecordView> {
    for (const commit of commits(fromTxOffset)) {
      const views: Uint8Array[] = [];
      forEachRecord(commit.payload, commit.recordCount, (_index, record) => views.push(record));
      for (let i = 0; i < views.length; i++) {
        const offset = commit.firstTxOffset + BigInt(i);
        if (offset >= fromTxOffset) yield { offset, bytes: views[i] };
      }
    }
  }
  return {
    segments,
    durableEnd,
    lastEpoch: epoch,
    truncatedTornTail: truncated,
    tornTail,
    commits,
    records,
  };
}

/**
 * Verifies one sealed segment (not the last of its log) read whole: every commit's checksum,
 * offsets contiguous from `firstTxOffset`, and its end at `endTxOffset` (where the next segment's
 * name says the log goes on). Throws CorruptLogError naming the file and byte of the first damage.
 * Used in the background for segments recovery never reads (wholly before the newest snapshot).
 */
export function verifySealedSegment(
  bytes: Uint8Array,
  path: string,
  firstTxOffset: bigint,
  endTxOffset: bigint,
): void {
  const scan = scanSegment(bytes, path, firstTxOffset, 0n, false);
  checkSegmentEnd(
    { path, firstTxOffset, endTxOffset, validBytes: -1, fileBytes: -1 },
    scan.endTxOffset,
  );
}

/** A deferred segment must end exactly where the next one's name says the log goes on. */
function checkSegmentEnd(segment: SegmentSummary, scannedEnd: bigint): void {
  if (scannedEnd !== segment.endTxOffset) {
    throw new CorruptLogError(
      segment.path,
      0,
      `segment ends at tx ${scannedEnd} but the next segment starts at tx ${segment.endTxOffset}`,
    );
  }
}

interface SegmentScan {
  endTxOffset: bigint;
  validBytes: number;
  lastEpoch: bigint;
  tornTail: TornTail | undefined;
}

function scanSegment(
  bytes: Uint8Array,
  path: string,
  firstTxOffset: bigint,
  epochFloor: bigint,
  isLast: boolean,
): SegmentScan {
  let position = 0;
  let next = firstTxOffset;
  let epoch = epochFloor;
  let bad: Extract<FrameRead, { kind: "bad" }>;
  for (;;) {
    const frame = readFrameAt(bytes, position);
    if (frame.kind === "ok") {
      const { header } = frame;
      if (header.firstTxOffset !== next) {
        throw new CorruptLogError(
          path,
          position,
          `commit starts at tx ${header.firstTxOffset}, expected tx ${next}`,
        );
      }
      if (header.epoch < epoch) {
        throw new CorruptLogError(
          path,
          position,
          `epoch went down from ${epoch} to ${header.epoch}`,
        );
      }
      if (header.recordCount === 0) {
        throw new CorruptLogError(path, position, "commit has no records");
      }
      const layoutProblem = checkRecordLayout(
        bytes.subarray(frame.payloadStart, frame.end - 4),
        header.recordCount,
      );
      if (layoutProblem) throw new CorruptLogError(path, position, layoutProblem);
      epoch = header.epoch;
      next += BigInt(header.recordCount);
      position = frame.end;
      continue;
    }
    if (frame.kind === "end") {
      const stray = firstNonZero(bytes, position);
      if (stray < 0) {
        return { endTxOffset: next, validBytes: position, lastEpoch: epoch, tornTail: undefined };
      }
      // An unwritten header sector followed by written ones: only a tear looks like this.
      bad = {
        kind: "bad",
        reason: `zero header followed by data at byte ${stray}`,
        stage: "incomplete",
      };
    } else {
      bad = frame;
    }
    break;
  }
  if (!isLast) throw new CorruptLogError(path, position, bad.reason);
  const later = findValidCommit(bytes, position + 1);
  if (later >= 0) {
    throw new CorruptLogError(
      path,
      position,
      `${bad.reason}, and a valid commit follows at byte ${later}`,
    );
  }
  const notTorn = whyNotTorn(bytes, position, bad);
  if (notTorn) {
    throw new CorruptLogError(path, position, `${bad.reason} in the last commit, ${notTorn}`);
  }
  return {
    endTxOffset: next,
    validBytes: position,
    lastEpoch: epoch,
    tornTail: { file: path, byteOffset: position, reason: bad.reason },
  };
}

/** Sector size assumed for torn writes: a power loss keeps or loses whole sectors. */
const SECTOR_BYTES = 512;
/** A zero run shorter than this inside a sector is not taken as evidence of a tear. */
const HOLE_BYTES_MIN = 8;

/**
 * Decides whether a damaged last commit looks like an interrupted write rather than bit rot.
 * Segments are zero-filled ahead of writing, so an interrupted write leaves zeros where the
 * commit was not written: a zero tail (a cut write) or whole zero sectors (a power loss).
 * Returns undefined for "torn", or why the damage cannot be a tear.
 */
function whyNotTorn(
  bytes: Uint8Array,
  start: number,
  bad: Extract<FrameRead, { kind: "bad" }>,
): string | undefined {
  if (bad.stage === "incomplete") {
    if (bad.end !== undefined && lengthFieldIsDamaged(bytes, start)) {
      return "its length field is damaged (not a torn write)";
    }
    return undefined;
  }
  if (bad.stage === "header") {
    // A write cut inside the magic leaves the rest of the header zero; a lost sector under the
    // header's start leaves a zero prefix up to a sector boundary (a real header starts non-zero).
    const boundary = start + SECTOR_BYTES - (start % SECTOR_BYTES);
    const zeroTail = isZero(bytes, start + 4, start + COMMIT_HEADER_BYTES);
    const zeroPrefix = boundary < start + COMMIT_HEADER_BYTES && isZero(bytes, start, boundary);
    return zeroTail || zeroPrefix ? undefined : "its header is damaged (not a torn write)";
  }
  const end = bad.end!;
  if (lengthFieldIsDamaged(bytes, start)) return "its length field is damaged (not a torn write)";
  if (bytes[end - 1] === 0) return undefined;
  for (let sector = start - (start % SECTOR_BYTES); sector < end; sector += SECTOR_BYTES) {
    const from = Math.max(sector, start);
    const to = Math.min(sector + SECTOR_BYTES, end);
    if (to - from >= HOLE_BYTES_MIN && isZero(bytes, from, to)) return undefined;
  }
  return "its checksum fails with every byte written (bit rot, not a torn write)";
}

/** True when the commit at `start` verifies once its length field is set to where the data ends. */
function lengthFieldIsDamaged(bytes: Uint8Array, start: number): boolean {
  let last = bytes.length - 1;
  while (last > start && bytes[last] === 0) last--;
  const header = bytes.slice(start, start + COMMIT_HEADER_BYTES);
  const view = new DataView(header.buffer);
  // The checksum's own last bytes may be zero, so try a few ends past the last non-zero byte.
  for (let end = last + 1; end <= Math.min(last + 4, bytes.length); end++) {
    const payloadLength = end - start - COMMIT_OVERHEAD_BYTES;
    if (payloadLength < 0 || payloadLength === view.getUint32(28, true)) continue;
    view.setUint32(28, payloadLength, true);
    const crc = crc32cUpdate(crc32c(header), bytes.subarray(start + COMMIT_HEADER_BYTES, end - 4));
    const stored = new DataView(bytes.buffer, bytes.byteOffset + end - 4, 4).getUint32(0, true);
    if (crc === stored) return true;
  }
  return false;
}

/** Position of the first checksum-valid commit at or after `from`, or -1. */
function findValidCommit(bytes: Uint8Array, from: number): number {
  const first = COMMIT_MAGIC & 0xff;
  for (let at = bytes.indexOf(first, from); at >= 0; at = bytes.indexOf(first, at + 1)) {
    if (readFrameAt(bytes, at).kind === "ok") return at;
  }
  return -1;
}
