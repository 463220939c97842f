/**
 * Appends commits to one database's log. Synchronous and single-threaded: the storage actor
 * calls `append` for every database with queued batches, then `sync` once per database.
 *
 * Invariants that recovery relies on:
 * - at most one commit is unsynced at any moment (a second append syncs the first);
 * - a segment is synced before the next one is created, and the directory is synced after;
 * - after any failed write or sync the writer refuses everything and its durable offset
 *   never moves again (fsync errors cannot be retried safely).
 */
import { assert } from "../../lib/assert.ts";
import { LOG_PREALLOCATE_BYTES, LOG_SEGMENT_BYTES } from "../../lib/limits.ts";
import type { FileHandle, FsLayer } from "../fs_layer.ts";
import { joinPath, makeDirsDurable } from "../fs_layer.ts";
import {
  checkRecordLayout,
  COMMIT_HEADER_BYTES,
  COMMIT_TRAILER_BYTES,
  encodeCommit,
} from "./frame.ts";
import { type CommitLog, readCommitLog } from "./reader.ts";
import { segmentFileName } from "./segment.ts";

export interface CommitLogWriterOptions {
  /** A segment is closed once the next commit would not fit (an oversized commit gets its own). */
  segmentBytes?: number;
  /**
   * How far ahead of the write position the segment is zero-filled. The fill grows with the
   * commits (each commit's bytes again, at least PREALLOCATE_STEP_MIN_BYTES) rather than in
   * one lump of this size.
   */
  preallocateBytes?: number;
  /** Epoch stamped on new commits; defaults to the log's last epoch. Must not go down. */
  epoch?: bigint;
  /** An already-read log of this directory (from readCommitLog), to skip reading it again. */
  log?: CommitLog;
}

/** The log refused an operation because an earlier write or sync failed. */
export class CommitLogFailedError extends Error {
  override name = "CommitLogFailedError";
  constructor(readonly dir: string, override readonly cause: unknown) {
    super(`Commit log "${dir}" stopped after a failed write or sync: ${describe(cause)}`);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let zeroChunk = new Uint8Array(0);

/**
 * Least zero fill a commit adds while the fill is short of its target, so a run of tiny commits
 * still builds it up in few writes.
 */
const PREALLOCATE_STEP_MIN_BYTES = 64 * 1024;

export class CommitLogWriter {
  readonly dir: string;
  #fs: FsLayer;
  #segmentBytes: number;
  #preallocateBytes: number;
  #epoch: bigint;
  #file: FileHandle | undefined;
  #segmentPath = "";
  #segmentFirstTxOffset = 0n;
  #position = 0;
  #allocatedEnd = 0;
  #nextTxOffset: bigint;
  #durableOffset: bigint;
  #unsynced = false;
  #failure: unknown = undefined;
  #closed = false;

  /** Opens (creating if needed) the log in `dir`, truncating a torn tail. */
  static open(fs: FsLayer, dir: string, options: CommitLogWriterOptions = {}): CommitLogWriter {
    makeDirsDurable(fs, dir);
    const log = options.log ?? readCommitLog(fs, dir);
    return new CommitLogWriter(fs, dir, log, options);
  }

  private constructor(fs: FsLayer, dir: string, log: CommitLog, options: CommitLogWriterOptions) {
    this.#fs = fs;
    this.dir = dir;
    this.#segmentBytes = options.segmentBytes ?? LOG_SEGMENT_BYTES;
    this.#preallocateBytes = options.preallocateBytes ?? LOG_PREALLOCATE_BYTES;
    if (options.epoch !== undefined && options.epoch < log.lastEpoch) {
      throw new RangeError(`Epoch ${options.epoch} is lower than the log's epoch ${log.lastEpoch}`);
    }
    this.#epoch = options.epoch ?? log.lastEpoch;
    this.#nextTxOffset = log.durableEnd;
    this.#durableOffset = log.durableEnd;
    const last = log.segments.at(-1);
    if (last) {
      this.#file = fs.open(last.path);
      this.#segmentPath = last.path;
      this.#segmentFirstTxOffset = last.firstTxOffset;
      this.#position = last.validBytes;
      this.#allocatedEnd = this.#file.size();
    }
  }

  /** Offset the next appended transaction must have. */
  get nextTxOffset(): bigint {
    return this.#nextTxOffset;
  }

  /** One past the last transaction known to be on disk. */
  get durableOffset(): bigint {
    return this.#durableOffset;
  }

  get epoch(): bigint {
    return this.#epoch;
  }

  /** The error that stopped this log, if one did. */
  get failure(): unknown {
    return this.#failure;
  }

  get hasUnsynced(): boolean {
    return this.#unsynced;
  }

  setEpoch(epoch: bigint): void {
    if (epoch < this.#epoch) throw new RangeError(`Epoch ${epoch} is lower than ${this.#epoch}`);
    this.#epoch = epoch;
  }

  /**
   * Writes one commit holding `recordCount` transactions starting at `firstTxOffset`. The
   * pieces are length-prefixed records (the payload layout of frame.ts). Not durable until
   * `sync()`.
   */
  append(firstTxOffset: bigint, recordCount: number, payloadPieces: readonly Uint8Array[]): void {
    this.#checkUsable();
    if (firstTxOffset !== this.#nextTxOffset) {
      throw new RangeError(
        `Commit starts at tx ${firstTxOffset} but the log "${this.dir}" expects tx ${this.#nextTxOffset}`,
      );
    }
    if (!Number.isInteger(recordCount) || recordCount < 1 || recordCount > 0xffffffff) {
      throw new RangeError(`Record count ${recordCount} is not a positive u32`);
    }
    const frame = encodeCommit({ epoch: this.#epoch, firstTxOffset, recordCount }, payloadPieces);
    const layoutProblem = checkRecordLayout(
      frame.subarray(COMMIT_HEADER_BYTES, frame.length - COMMIT_TRAILER_BYTES),
      recordCount,
    );
    if (layoutProblem) throw new TypeError(`Commit batch is malformed: ${layoutProblem}`);
    try {
      if (this.#unsynced) this.#syncNow();
      if (
        !this.#file || (this.#position > 0 && this.#position + frame.length > this.#segmentBytes)
      ) {
        this.#startSegment(firstTxOffset);
      }
      this.#fillZerosTo(this.#position + frame.length);
      this.#file!.write(frame, this.#position);
      this.#position += frame.length;
      this.#extendFill(frame.length);
    } catch (error) {
      this.#failure = error;
      throw new CommitLogFailedError(this.dir, error);
    }
    this.#nextTxOffset += BigInt(recordCount);
    this.#unsynced = true;
  }

  /** fdatasync if anything is unsynced; returns the durable offset. Throws once failed. */
  sync(): bigint {
    this.#checkUsable();
    if (this.#unsynced) {
      try {
        this.#syncNow();
      } catch (error) {
        this.#failure = error;
        throw new CommitLogFailedError(this.dir, error);
      }
    }
    return this.#durableOffset;
  }

  /** Closes the file. Unsynced data is synced first unless the log has failed. */
  close(): void {
    if (this.#closed) return;
    try {
      if (this.#failure === undefined && this.#unsynced) this.sync();
    } finally {
      this.#closed = true;
      this.#file?.close();
      this.#file = undefined;
    }
  }

  #checkUsable(): void {
    if (this.#failure !== undefined) throw new CommitLogFailedError(this.dir, this.#failure);
    if (this.#closed) throw new Error(`Commit log "${this.dir}" is closed`);
  }

  #syncNow(): void {
    assert(this.#file, "An unsynced commit has a file");
    this.#file.syncData();
    this.#unsynced = false;
    this.#durableOffset = this.#nextTxOffset;
  }

  #startSegment(firstTxOffset: bigint): void {
    if (this.#file) {
      assert(!this.#unsynced, "A segment is synced before the next one starts");
      this.#file.close();
      this.#file = undefined;
    }
    const path = joinPath(this.dir, segmentFileName(firstTxOffset));
    this.#file = this.#fs.open(path, { createNew: true });
    this.#segmentPath = path;
    this.#segmentFirstTxOffset = firstTxOffset;
    this.#position = 0;
    this.#allocatedEnd = 0;
    this.#fs.syncDir(this.dir);
  }

  /**
   * Keeps the zero fill ahead of the write position (fdatasync then needs no size update) by
   * adding about as many zeros as the commit just written. The zeros are written back by the
   * same fdatasync as the commit: a lump of the whole preallocation at once made that one
   * fdatasync take ~40 ms under load (4 MiB; bench/RESULTS.md "The zero fill"), and every
   * call waiting for it with it.
   */
  #extendFill(written: number): void {
    const goal = Math.min(this.#position + this.#preallocateBytes, this.#segmentBytes);
    if (this.#allocatedEnd >= goal) return;
    const step = Math.max(written, PREALLOCATE_STEP_MIN_BYTES);
    this.#fillZerosTo(Math.min(goal, this.#allocatedEnd + step));
  }

  /** Writes zeros from the end of the fill to `end` (nothing if already there). */
  #fillZerosTo(end: number): void {
    if (end <= this.#allocatedEnd) return;
    const chunkBytes = Math.min(end - this.#allocatedEnd, this.#preallocateBytes);
    if (zeroChunk.length < chunkBytes) zeroChunk = new Uint8Array(chunkBytes);
    let at = this.#allocatedEnd;
    while (at < end) {
      const count = Math.min(zeroChunk.length, end - at);
      this.#file!.write(zeroChunk.subarray(0, count), at);
      at += count;
    }
    this.#allocatedEnd = end;
  }

  /** For tests and diagnostics: the segment being written and the write position in it. */
  get position(): { segmentPath: string; segmentFirstTxOffset: bigint; byteOffset: number } {
    return {
      segmentPath: this.#segmentPath,
      segmentFirstTxOffset: this.#segmentFirstTxOffset,
      byteOffset: this.#position,
    };
  }
}
