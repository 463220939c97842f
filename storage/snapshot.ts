/**
 * Snapshots: one file per snapshot, `<dir>/<20-digit tx offset>.snap`, holding the state after
 * transactions [0, txOffset). The bytes are opaque (the datastore encodes them).
 *
 * File layout (little-endian): magic "LCSN" u32, version u8, 3 reserved bytes, tx offset u64,
 * body length u64, CRC32C u32 of header bytes [0, 24) followed by the body, 4 reserved bytes,
 * then the body.
 *
 * Written atomically: temp file, fsync, rename, directory fsync. A reader verifies the checksum
 * and falls back to older snapshots when the newest one is damaged.
 */
import { SNAPSHOTS_KEPT } from "../lib/limits.ts";
import { crc32c, crc32cUpdate } from "./commitlog/crc32c.ts";
import { type FsLayer, joinPath, makeDirsDurable } from "./fs_layer.ts";

const SNAPSHOT_MAGIC = 0x4e53434c; // "LCSN"
const SNAPSHOT_FORMAT_VERSION = 1;
const SNAPSHOT_HEADER_BYTES = 32;
const SNAPSHOT_NAME = /^(\d{20})\.snap$/;
const TEMP_SUFFIX = ".tmp";

export function snapshotFileName(txOffset: bigint): string {
  return `${txOffset.toString().padStart(20, "0")}.snap`;
}

export interface SnapshotEntry {
  txOffset: bigint;
  path: string;
}

/** Snapshot files in `dir`, newest first. */
export function listSnapshots(fs: FsLayer, dir: string): SnapshotEntry[] {
  const entries: SnapshotEntry[] = [];
  for (const name of fs.readDir(dir)) {
    const match = SNAPSHOT_NAME.exec(name);
    if (match) entries.push({ txOffset: BigInt(match[1]), path: joinPath(dir, name) });
  }
  return entries.sort((a, b) => (a.txOffset > b.txOffset ? -1 : a.txOffset < b.txOffset ? 1 : 0));
}

export interface WriteSnapshotOptions {
  /** Snapshots to keep, counting the new one; older ones are deleted. */
  keep?: number;
}

/** Writes a snapshot durably and prunes old ones. Returns the snapshot's path. */
export function writeSnapshot(
  fs: FsLayer,
  dir: string,
  txOffset: bigint,
  bytes: Uint8Array,
  options: WriteSnapshotOptions = {},
): string {
  const keep = options.keep ?? SNAPSHOTS_KEPT;
  if (keep < 1) throw new RangeError(`Snapshots to keep is ${keep}, must be at least 1`);
  makeDirsDurable(fs, dir);
  const header = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, SNAPSHOT_MAGIC, true);
  view.setUint8(4, SNAPSHOT_FORMAT_VERSION);
  view.setBigUint64(8, txOffset, true);
  view.setBigUint64(16, BigInt(bytes.length), true);
  view.setUint32(24, crc32cUpdate(crc32c(header.subarray(0, 24)), bytes), true);

  const finalPath = joinPath(dir, snapshotFileName(txOffset));
  const tempPath = finalPath + TEMP_SUFFIX;
  fs.remove(tempPath);
  const file = fs.open(tempPath, { createNew: true });
  try {
    file.write(header, 0);
    file.write(bytes, SNAPSHOT_HEADER_BYTES);
    file.syncData();
  } finally {
    file.close();
  }
  fs.rename(tempPath, finalPath);
  fs.syncDir(dir);

  let removed = false;
  for (const name of fs.readDir(dir)) {
    if (name.endsWith(TEMP_SUFFIX)) {
      fs.remove(joinPath(dir, name));
      removed = true;
    }
  }
  const older = listSnapshots(fs, dir).filter((entry) => entry.txOffset < txOffset);
  for (const entry of older.slice(keep - 1)) {
    fs.remove(entry.path);
    removed = true;
  }
  if (removed) fs.syncDir(dir);
  return finalPath;
}

export interface LoadedSnapshot {
  txOffset: bigint;
  bytes: Uint8Array;
  path: string;
}

export interface SnapshotChoice {
  snapshot: LoadedSnapshot | undefined;
  /** Snapshots passed over, newest first, with why. */
  skipped: Array<{ path: string; reason: string }>;
}

/** The newest snapshot at or below `maxTxOffset` whose checksum verifies. */
export function readNewestValidSnapshot(
  fs: FsLayer,
  dir: string,
  maxTxOffset: bigint,
): SnapshotChoice {
  const skipped: SnapshotChoice["skipped"] = [];
  for (const entry of listSnapshots(fs, dir)) {
    if (entry.txOffset > maxTxOffset) {
      skipped.push({ path: entry.path, reason: `newer than the log's end (tx ${maxTxOffset})` });
      continue;
    }
    const problem = { reason: "" };
    const bytes = readSnapshotFile(fs, entry, problem);
    if (bytes) return { snapshot: { txOffset: entry.txOffset, bytes, path: entry.path }, skipped };
    skipped.push({ path: entry.path, reason: problem.reason });
  }
  return { snapshot: undefined, skipped };
}

function readSnapshotFile(
  fs: FsLayer,
  entry: SnapshotEntry,
  problem: { reason: string },
): Uint8Array | undefined {
  let file: Uint8Array;
  try {
    file = fs.readFile(entry.path);
  } catch (error) {
    problem.reason = `unreadable: ${error instanceof Error ? error.message : String(error)}`;
    return undefined;
  }
  if (file.length < SNAPSHOT_HEADER_BYTES) {
    problem.reason = "shorter than its header";
    return undefined;
  }
  const view = new DataView(file.buffer, file.byteOffset, SNAPSHOT_HEADER_BYTES);
  if (view.getUint32(0, true) !== SNAPSHOT_MAGIC || view.getUint8(4) !== SNAPSHOT_FORMAT_VERSION) {
    problem.reason = "bad magic or version";
    return undefined;
  }
  if (view.getUint8(5) !== 0 || view.getUint16(6) !== 0 || view.getUint32(28) !== 0) {
    problem.reason = "reserved header bytes are not zero";
    return undefined;
  }
  if (view.getBigUint64(8, true) !== entry.txOffset) {
    problem.reason = "tx offset in the header does not match the file name";
    return undefined;
  }
  const bodyLength = view.getBigUint64(16, true);
  if (bodyLength !== BigInt(file.length - SNAPSHOT_HEADER_BYTES)) {
    problem.reason = `body is ${
      file.length - SNAPSHOT_HEADER_BYTES
    } bytes, header says ${bodyLength}`;
    return undefined;
  }
  const body = file.subarray(SNAPSHOT_HEADER_BYTES);
  const expected = crc32cUpdate(crc32c(file.subarray(0, 24)), body);
  if (view.getUint32(24, true) !== expected) {
    problem.reason = "checksum mismatch";
    return undefined;
  }
  return body;
}
