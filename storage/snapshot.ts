/**
 * Snapshots: one file per snapshot, `<dir>/<20-digit tx offset>.snap`, holding the state after
 * transactions [0, txOffset). The bytes are opaque (the datastore encodes them).
 *
 * File layout (little-endian): magic "LCSN" u32, version u8, 3 reserved bytes, tx offset u64,
 * body length u64, CRC32C u32, 4 reserved bytes, then the body. The CRC covers the body followed
 * by header bytes [0, 24) (version 2, written now; version 1 files, still read, covered the
 * header bytes first).
 *
 * Written atomically: temp file, fsync, rename, directory fsync. A reader verifies the checksum
 * and falls back to older snapshots when the newest one is damaged.
 */
import { SNAPSHOTS_KEPT } from "../lib/limits.ts";
import { crc32c, crc32cUpdate } from "./commitlog/crc32c.ts";
import { type FileHandle, type FsLayer, joinPath, makeDirsDurable } from "./fs_layer.ts";

const SNAPSHOT_MAGIC = 0x4e53434c; // "LCSN"
/** 2: checksum over body then header prefix (streamed writes); 1 (still read): prefix then body. */
const SNAPSHOT_FORMAT_VERSION = 2;
const SNAPSHOT_HEADER_BYTES = 32;
const SNAPSHOT_NAME = /^(\d{20})\.snap$/;
const TEMP_SUFFIX = ".tmp";

/**
 * Body bytes written between two fdatasyncs of a snapshot file being streamed (on a file system
 * that syncs off-thread). One fdatasync of a whole snapshot at the end made a commit log's
 * fdatasync running meanwhile on the same ext4 disk wait for most of it (the journal commit
 * carries the snapshot's data): a 64 MB snapshot's sync took ~31-40 ms, and so did the one
 * commit-log sync that met it, delaying every reply waiting for that commit. Synced in 4 MiB
 * steps, a commit-log sync met 4-8 ms (bench/RESULTS.md, "Stalls of the append variant").
 */
export const SNAPSHOT_SYNC_STEP_BYTES = 4 * 1024 * 1024;

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

/**
 * A snapshot written piece by piece as the database sends it: `write` appends a piece to the
 * temp file (page cache only), `finish` writes the header, makes the file durable, renames it
 * into place and prunes older snapshots. With `syncDataAsync` on the file (the real file
 * system), the fdatasync of a large file runs off the caller's thread: `finish` returns a
 * promise and the storage worker keeps committing meanwhile. `abort` drops the temp file.
 */
export class SnapshotFileWriter {
  readonly txOffset: bigint;
  readonly tempPath: string;
  readonly #fs: FsLayer;
  readonly #dir: string;
  readonly #keep: number;
  readonly #file: FileHandle;
  #length = 0;
  #crc: number;
  #done = false;
  /** Body bytes written since the last intermediate sync started. */
  #unsynced = 0;
  /** The intermediate fdatasync in flight, and the first one that failed. */
  #syncing: Promise<void> | undefined;
  #syncError: unknown;
  /** Its directory is being removed (`abandon`): touch no path again. */
  #abandoned = false;

  constructor(fs: FsLayer, dir: string, txOffset: bigint, options: WriteSnapshotOptions = {}) {
    this.#keep = options.keep ?? SNAPSHOTS_KEPT;
    if (this.#keep < 1) {
      throw new RangeError(`Snapshots to keep is ${this.#keep}, must be at least 1`);
    }
    this.#fs = fs;
    this.#dir = dir;
    this.txOffset = txOffset;
    makeDirsDurable(fs, dir);
    this.tempPath = joinPath(dir, snapshotFileName(txOffset)) + TEMP_SUFFIX;
    fs.remove(this.tempPath);
    this.#file = fs.open(this.tempPath, { createNew: true });
    this.#crc = 0;
  }

  /** Body bytes written so far. */
  get length(): number {
    return this.#length;
  }

  /**
   * Appends a piece. With `syncDataAsync` on the file, every SNAPSHOT_SYNC_STEP_BYTES also
   * start an fdatasync off-thread (not awaited; one at a time), so the disk takes the snapshot
   * in steps instead of all at once in `finish`.
   */
  write(piece: Uint8Array): void {
    if (this.#done) throw new Error("Snapshot writer already finished");
    if (this.#syncError !== undefined) throw this.#syncError;
    if (piece.length === 0) return;
    this.#file.write(piece, SNAPSHOT_HEADER_BYTES + this.#length);
    this.#crc = crc32cUpdate(this.#crc, piece);
    this.#length += piece.length;
    this.#unsynced += piece.length;
    if (this.#unsynced >= SNAPSHOT_SYNC_STEP_BYTES && this.#syncing === undefined) {
      const syncAsync = this.#file.syncDataAsync?.bind(this.#file);
      if (syncAsync === undefined) return;
      this.#unsynced = 0;
      this.#syncing = syncAsync().then(
        () => {
          this.#syncing = undefined;
        },
        (error) => {
          this.#syncing = undefined;
          this.#syncError ??= error;
        },
      );
    }
  }

  /**
   * Header, fdatasync, rename, directory fsync, pruning. Returns the final path, or a promise of
   * it when the file system can sync off-thread.
   */
  finish(): string | Promise<string> {
    if (this.#done) throw new Error("Snapshot writer already finished");
    this.#done = true;
    const header = snapshotHeader(this.txOffset, this.#length, this.#crc);
    try {
      this.#file.write(header, 0);
    } catch (error) {
      this.#closeQuietly();
      throw error;
    }
    const syncAsync = this.#file.syncDataAsync?.bind(this.#file);
    if (syncAsync === undefined) {
      try {
        this.#file.syncData();
      } finally {
        this.#file.close();
      }
      return this.#install();
    }
    // After the intermediate sync in flight, if any: one fdatasync at a time per file.
    return (this.#syncing ?? Promise.resolve()).then(() => {
      if (this.#abandoned) throw new SnapshotAbandonedError(this.txOffset);
      if (this.#syncError !== undefined) throw this.#syncError;
      return syncAsync();
    }).then(
      () => {
        this.#file.close();
        if (this.#abandoned) throw new SnapshotAbandonedError(this.txOffset);
        return this.#install();
      },
      (error) => {
        this.#closeQuietly();
        throw error;
      },
    );
  }

  abort(): void {
    if (!this.#done) {
      this.#done = true;
      this.#closeQuietly();
    }
    if (this.#abandoned) return;
    try {
      this.#fs.remove(this.tempPath);
    } catch {
      // Best effort: a stray temp file is ignored by readers and removed by the next snapshot.
    }
  }

  /**
   * Its directory is being removed (the database deleted): the file is closed, no path is
   * touched again, and a `finish` in flight rejects with SnapshotAbandonedError instead of
   * renaming the file into place.
   */
  abandon(): void {
    this.#abandoned = true;
    if (!this.#done) {
      this.#done = true;
      this.#closeQuietly();
    }
  }

  #closeQuietly(): void {
    try {
      this.#file.close();
    } catch {
      // Already broken.
    }
  }

  #install(): string {
    const finalPath = joinPath(this.#dir, snapshotFileName(this.txOffset));
    this.#fs.rename(this.tempPath, finalPath);
    this.#fs.syncDir(this.#dir);
    pruneSnapshots(this.#fs, this.#dir, this.txOffset, this.#keep);
    return finalPath;
  }
}

/** A snapshot's `finish` given up because its directory was removed (`abandon`). */
export class SnapshotAbandonedError extends Error {
  constructor(txOffset: bigint) {
    super(`Snapshot at tx ${txOffset} abandoned: its directory was removed`);
    this.name = "SnapshotAbandonedError";
  }
}

/** Writes a snapshot durably and prunes old ones, synchronously. Returns the snapshot's path. */
export function writeSnapshot(
  fs: FsLayer,
  dir: string,
  txOffset: bigint,
  bytes: Uint8Array,
  options: WriteSnapshotOptions = {},
): string {
  const writer = new SnapshotFileWriter(syncOnly(fs), dir, txOffset, options);
  try {
    writer.write(bytes);
  } catch (error) {
    writer.abort();
    throw error;
  }
  return writer.finish() as string;
}

/** `fs` with files that only sync on the calling thread (writeSnapshot is synchronous). */
function syncOnly(fs: FsLayer): FsLayer {
  return {
    open: (path, options) => {
      const file = fs.open(path, options);
      return {
        path: file.path,
        write: (bytes, position) => file.write(bytes, position),
        read: (into, position) => file.read(into, position),
        syncData: () => file.syncData(),
        size: () => file.size(),
        truncate: (length) => file.truncate(length),
        close: () => file.close(),
      };
    },
    readFile: (path) => fs.readFile(path),
    readDir: (path) => fs.readDir(path),
    exists: (path) => fs.exists(path),
    mkdir: (path) => fs.mkdir(path),
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.remove(path),
    syncDir: (path) => fs.syncDir(path),
  };
}

/**
 * Header of format version 2: the checksum covers the body, then header bytes [0, 24), so a
 * writer can checksum the body as it streams and fill in the length at the end.
 */
function snapshotHeader(txOffset: bigint, bodyLength: number, bodyCrc: number): Uint8Array {
  const header = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, SNAPSHOT_MAGIC, true);
  view.setUint8(4, SNAPSHOT_FORMAT_VERSION);
  view.setBigUint64(8, txOffset, true);
  view.setBigUint64(16, BigInt(bodyLength), true);
  view.setUint32(24, crc32cUpdate(bodyCrc, header.subarray(0, 24)), true);
  return header;
}

/**
 * Removes temp files of snapshots at or below `txOffset` (a newer one may still be being
 * written) and keeps `keep` snapshots counting the one at `txOffset`.
 */
function pruneSnapshots(fs: FsLayer, dir: string, txOffset: bigint, keep: number): void {
  let removed = false;
  for (const name of fs.readDir(dir)) {
    if (!name.endsWith(TEMP_SUFFIX)) continue;
    const match = SNAPSHOT_NAME.exec(name.slice(0, -TEMP_SUFFIX.length));
    if (match && BigInt(match[1]) > txOffset) continue;
    fs.remove(joinPath(dir, name));
    removed = true;
  }
  const older = listSnapshots(fs, dir).filter((entry) => entry.txOffset < txOffset);
  for (const entry of older.slice(keep - 1)) {
    fs.remove(entry.path);
    removed = true;
  }
  if (removed) fs.syncDir(dir);
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
  const version = view.getUint8(4);
  if (view.getUint32(0, true) !== SNAPSHOT_MAGIC || (version !== 1 && version !== 2)) {
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
  const expected = version === 1
    ? crc32cUpdate(crc32c(file.subarray(0, 24)), body)
    : crc32cUpdate(crc32c(body), file.subarray(0, 24));
  if (view.getUint32(24, true) !== expected) {
    problem.reason = "checksum mismatch";
    return undefined;
  }
  return body;
}
