/**
 * One commit on disk (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     magic "LCMT"
 *   4       1     format version (1)
 *   5       3     reserved, zero
 *   8       8     epoch (leader term for future replication; 0 on a single node)
 *   16      8     tx offset of the first record
 *   24      4     record count (at least 1)
 *   28      4     payload length in bytes
 *   32      n     payload: `record count` records, each a u32 length then that many bytes
 *   32+n    4     CRC32C of bytes [0, 32+n)
 *
 * Segments are zero-filled ahead of the write position, so an all-zero header marks the end.
 * The payload layout is the same as a commit batch sent by a database worker, so batches are
 * framed without re-encoding and replayed without decoding.
 */
import { crc32c, crc32cUpdate } from "./crc32c.ts";

export const COMMIT_MAGIC = 0x544d434c; // "LCMT" read as a little-endian u32
export const COMMIT_FORMAT_VERSION = 1;
export const COMMIT_HEADER_BYTES = 32;
export const COMMIT_TRAILER_BYTES = 4;
export const COMMIT_OVERHEAD_BYTES = COMMIT_HEADER_BYTES + COMMIT_TRAILER_BYTES;
/** Bytes before each record inside a payload. */
export const RECORD_PREFIX_BYTES = 4;

export interface CommitHeader {
  epoch: bigint;
  firstTxOffset: bigint;
  recordCount: number;
  payloadLength: number;
}

/** Builds one framed commit from payload pieces (each piece holds whole length-prefixed records). */
export function encodeCommit(
  header: Omit<CommitHeader, "payloadLength">,
  payloadPieces: readonly Uint8Array[],
): Uint8Array {
  let payloadLength = 0;
  for (const piece of payloadPieces) payloadLength += piece.length;
  if (payloadLength > 0xffffffff) {
    throw new RangeError(`Commit payload of ${payloadLength} bytes is too large`);
  }
  const frame = new Uint8Array(COMMIT_OVERHEAD_BYTES + payloadLength);
  const view = new DataView(frame.buffer);
  writeHeader(view, 0, { ...header, payloadLength });
  let at = COMMIT_HEADER_BYTES;
  for (const piece of payloadPieces) {
    frame.set(piece, at);
    at += piece.length;
  }
  view.setUint32(at, crc32c(frame.subarray(0, at)), true);
  return frame;
}

function writeHeader(view: DataView, at: number, header: CommitHeader): void {
  view.setUint32(at, COMMIT_MAGIC, true);
  view.setUint8(at + 4, COMMIT_FORMAT_VERSION);
  view.setBigUint64(at + 8, header.epoch, true);
  view.setBigUint64(at + 16, header.firstTxOffset, true);
  view.setUint32(at + 24, header.recordCount, true);
  view.setUint32(at + 28, header.payloadLength, true);
}

export type FrameRead =
  /** An all-zero header, or the end of the bytes: no more commits here. */
  | { kind: "end" }
  | { kind: "ok"; header: CommitHeader; payloadStart: number; end: number }
  | {
    kind: "bad";
    reason: string;
    /** What failed: the header itself, the length (runs past the data), or the checksum. */
    stage: "header" | "incomplete" | "checksum";
    /** Claimed end of the commit, when the header was readable. */
    end?: number;
  };

/**
 * Decodes and checksums the commit starting at `position`. `verifyChecksum = false` is for a
 * second pass over bytes whose checksums were verified moments before.
 */
export function readFrameAt(bytes: Uint8Array, position: number, verifyChecksum = true): FrameRead {
  const available = bytes.length - position;
  if (available <= 0) return { kind: "end" };
  if (available < COMMIT_HEADER_BYTES) {
    return isZero(bytes, position, bytes.length)
      ? { kind: "end" }
      : { kind: "bad", reason: "incomplete commit header", stage: "incomplete" };
  }
  if (isZero(bytes, position, position + COMMIT_HEADER_BYTES)) return { kind: "end" };
  const view = new DataView(bytes.buffer, bytes.byteOffset + position, COMMIT_HEADER_BYTES);
  if (view.getUint32(0, true) !== COMMIT_MAGIC) {
    return { kind: "bad", reason: "bad commit magic", stage: "header" };
  }
  const version = view.getUint8(4);
  if (version !== COMMIT_FORMAT_VERSION) {
    return { kind: "bad", reason: `unknown commit format version ${version}`, stage: "header" };
  }
  if (view.getUint8(5) !== 0 || view.getUint16(6) !== 0) {
    return { kind: "bad", reason: "reserved header bytes are not zero", stage: "header" };
  }
  const header: CommitHeader = {
    epoch: view.getBigUint64(8, true),
    firstTxOffset: view.getBigUint64(16, true),
    recordCount: view.getUint32(24, true),
    payloadLength: view.getUint32(28, true),
  };
  const end = position + COMMIT_OVERHEAD_BYTES + header.payloadLength;
  if (end > bytes.length) {
    return { kind: "bad", reason: "incomplete commit", stage: "incomplete", end };
  }
  const crcAt = end - COMMIT_TRAILER_BYTES;
  const stored = (bytes[crcAt] | (bytes[crcAt + 1] << 8) | (bytes[crcAt + 2] << 16) |
    (bytes[crcAt + 3] << 24)) >>> 0;
  if (verifyChecksum && crc32cUpdate(0, bytes.subarray(position, crcAt)) !== stored) {
    return { kind: "bad", reason: "checksum mismatch", stage: "checksum", end };
  }
  return { kind: "ok", header, payloadStart: position + COMMIT_HEADER_BYTES, end };
}

/** True when bytes [start, end) are all zero. */
export function isZero(bytes: Uint8Array, start: number, end: number): boolean {
  return firstNonZero(bytes, start, end) < 0;
}

/** Index of the first non-zero byte in [start, end), or -1. */
export function firstNonZero(bytes: Uint8Array, start: number, end = bytes.length): number {
  let i = start;
  while (i < end && ((bytes.byteOffset + i) & 3) !== 0) {
    if (bytes[i] !== 0) return i;
    i++;
  }
  const wordCount = (end - i) >>> 2;
  if (wordCount > 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, wordCount);
    for (let w = 0; w < wordCount; w++) {
      if (words[w] !== 0) {
        for (let j = i + w * 4; j < i + w * 4 + 4; j++) if (bytes[j] !== 0) return j;
      }
    }
    i += wordCount * 4;
  }
  for (; i < end; i++) if (bytes[i] !== 0) return i;
  return -1;
}

/**
 * Checks that `payload` holds exactly `recordCount` length-prefixed records.
 * Returns undefined when it does, or what is wrong.
 */
export function checkRecordLayout(payload: Uint8Array, recordCount: number): string | undefined {
  let at = 0;
  for (let i = 0; i < recordCount; i++) {
    if (at + RECORD_PREFIX_BYTES > payload.length) {
      return `record ${i} of ${recordCount} is missing`;
    }
    const length = readU32(payload, at);
    at += RECORD_PREFIX_BYTES + length;
    if (at > payload.length) return `record ${i} of ${recordCount} overruns the payload`;
  }
  if (at !== payload.length) return `${payload.length - at} bytes follow the last record`;
  return undefined;
}

/** Calls `visit` with each record of a payload (views, no copies). The layout must be valid. */
export function forEachRecord(
  payload: Uint8Array,
  recordCount: number,
  visit: (index: number, record: Uint8Array) => void,
): void {
  let at = 0;
  for (let i = 0; i < recordCount; i++) {
    const length = readU32(payload, at);
    at += RECORD_PREFIX_BYTES;
    visit(i, payload.subarray(at, at + length));
    at += length;
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** Joins records into the payload layout: each record as a u32 length then its bytes. */
export function lengthPrefixed(records: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const record of records) total += RECORD_PREFIX_BYTES + record.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const record of records) {
    view.setUint32(at, record.length, true);
    out.set(record, at + RECORD_PREFIX_BYTES);
    at += RECORD_PREFIX_BYTES + record.length;
  }
  return out;
}
