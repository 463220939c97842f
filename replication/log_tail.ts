/**
 * Reads a database's commit log from disk, commit by commit, while the storage worker keeps
 * appending to it: the primary's replicator publishes what is durable from here (so NATS being
 * down costs nothing but a backlog on disk, never memory or a blocked commit).
 *
 * Only transactions below the durable offset the caller passes are read; a commit's checksum is
 * verified before it leaves. Reads are asynchronous (Deno's blocking-I/O pool), in pieces of
 * at most `maxBytes`, so the main thread never reads a whole segment at once.
 */
import {
  COMMIT_OVERHEAD_BYTES,
  databaseDir,
  logDir,
  readFrameAt,
  segmentFileName,
} from "../storage/mod.ts";

/** Whole commits [firstTx, endTx) as they lie in the log: framed, checksummed. */
export interface CommitRun {
  firstTx: number;
  endTx: number;
  frames: Uint8Array;
}

/**
 * The largest commit read back (bytes, framing included): far above any commit the storage
 * writes (one transaction is at most TX_RECORD_BYTES_MAX_DEFAULT, 64 MiB, unless raised), far
 * below what a damaged header's 32-bit length could claim (4 GiB). Each length read from a
 * commit header is also bounded by what is left of its segment file, before its CRC can be
 * checked and before anything is allocated for it.
 */
export const LOG_TAIL_COMMIT_BYTES_MAX = 1024 * 1024 * 1024;

/** The smallest read: most commits are far smaller, a trickle of them fits. */
const READ_BYTES_MIN = 64 * 1024;

export class LogTail {
  readonly #dir: string;
  #file: Deno.FsFile | undefined;
  /** Byte position of the next commit in the open segment. */
  #position = 0;
  #nextTx = 0;
  #positioned = false;
  #buffer = new Uint8Array(READ_BYTES_MIN);

  constructor(dataDir: string, dbKey: string) {
    this.#dir = logDir(databaseDir(dataDir, dbKey));
  }

  /** The transaction the next read starts at. */
  get nextTx(): number {
    return this.#nextTx;
  }

  /**
   * Puts the cursor at transaction `tx`, which must start a commit (replication always stops at
   * commit ends). Reads only commit headers on the way.
   */
  async seek(tx: number): Promise<void> {
    this.close();
    const names: bigint[] = [];
    for await (const entry of Deno.readDir(this.#dir)) {
      const match = /^(\d{20})\.log$/.exec(entry.name);
      if (match) names.push(BigInt(match[1]));
    }
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let first: bigint | undefined;
    for (const name of names) if (name <= BigInt(tx)) first = name;
    if (first === undefined) {
      if (tx === 0 && names.length === 0) {
        this.#nextTx = 0;
        this.#positioned = true;
        return;
      }
      throw new Error(`The commit log of "${this.#dir}" has no segment holding transaction ${tx}`);
    }
    await this.#open(Number(first));
    const header = new Uint8Array(32);
    const size = (await this.#file!.stat()).size;
    while (this.#nextTx < tx) {
      const read = await this.#readAt(this.#position, header);
      if (read < header.length) throw this.#gone(tx);
      const view = new DataView(header.buffer);
      const firstTx = Number(view.getBigUint64(16, true));
      const count = view.getUint32(24, true);
      if (count === 0 || firstTx !== this.#nextTx) throw this.#gone(tx);
      const commitBytes = COMMIT_OVERHEAD_BYTES + view.getUint32(28, true);
      this.#checkCommitBytes(commitBytes, size);
      this.#position += commitBytes;
      this.#nextTx = firstTx + count;
    }
    if (this.#nextTx !== tx) {
      throw new Error(
        `Transaction ${tx} does not start a commit in "${this.#dir}" (a commit ends at ${this.#nextTx})`,
      );
    }
    this.#positioned = true;
  }

  /**
   * Whole commits from the cursor up to `durableEnd` (exclusive), at most `maxBytes` unless the
   * first commit alone is bigger; undefined when the cursor is at `durableEnd`.
   */
  async read(durableEnd: number, maxBytes: number): Promise<CommitRun | undefined> {
    if (!this.#positioned) throw new Error("LogTail.read before seek");
    if (this.#nextTx >= durableEnd) return undefined;
    if (!this.#file) await this.#open(this.#nextTx);
    // A reused buffer, grown (up to maxBytes) while commits keep filling it: a trickle of small
    // commits reads 64 KiB, a backlog reads big pieces.
    if (this.#buffer.length > maxBytes && maxBytes >= READ_BYTES_MIN) {
      this.#buffer = new Uint8Array(maxBytes);
    }
    let chunk = this.#buffer;
    let length = await this.#readAt(this.#position, chunk);
    let at = 0;
    let switched = false;
    const firstTx = this.#nextTx;
    while (this.#nextTx < durableEnd) {
      const frame = readFrameAt(chunk.subarray(0, length), at);
      if (frame.kind === "end") {
        if (at > 0) break;
        if (switched) {
          throw new Error(`The commit log of "${this.#dir}" ends before transaction ${firstTx}`);
        }
        switched = true;
        // The segment ends (zero fill): the next one starts at the next transaction.
        await this.#open(this.#nextTx);
        length = await this.#readAt(this.#position, chunk);
        continue;
      }
      if (frame.kind === "bad") {
        if (frame.stage === "incomplete" && at === 0 && frame.end !== undefined) {
          // One commit bigger than the buffer: read exactly it, once its length (not checked by
          // any CRC yet) is known to fit in what the segment holds.
          this.#checkCommitBytes(frame.end, (await this.#file!.stat()).size);
          chunk = new Uint8Array(frame.end);
          length = await this.#readAt(this.#position, chunk);
          if (length < frame.end) {
            throw new Error(`The commit at transaction ${this.#nextTx} is cut short on disk`);
          }
          continue;
        }
        if (frame.stage === "incomplete") {
          if (this.#buffer.length < maxBytes) {
            this.#buffer = new Uint8Array(Math.min(maxBytes, this.#buffer.length * 2));
          }
          break;
        }
        throw new Error(
          `Commit log "${this.#dir}" is damaged at transaction ${this.#nextTx}: ${frame.reason}`,
        );
      }
      if (Number(frame.header.firstTxOffset) !== this.#nextTx) {
        throw new Error(
          `Commit log "${this.#dir}": expected transaction ${this.#nextTx}, found ${frame.header.firstTxOffset}`,
        );
      }
      if (at > 0 && frame.end > maxBytes) break;
      this.#nextTx += frame.header.recordCount;
      at = frame.end;
    }
    if (at === 0) return undefined;
    const frames = chunk.slice(0, at);
    this.#position += at;
    return { firstTx, endTx: this.#nextTx, frames };
  }

  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  async #open(firstTx: number): Promise<void> {
    this.close();
    this.#file = await Deno.open(`${this.#dir}/${segmentFileName(BigInt(firstTx))}`, {
      read: true,
    });
    this.#position = 0;
    this.#nextTx = firstTx;
  }

  async #readAt(position: number, into: Uint8Array): Promise<number> {
    const file = this.#file!;
    await file.seek(position, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < into.length) {
      const n = await file.read(into.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return filled;
  }

  /**
   * Refuses a commit length read from a header (unchecked: its CRC comes after it) that is
   * more than what is left of the segment (`segmentBytes`) or LOG_TAIL_COMMIT_BYTES_MAX.
   */
  #checkCommitBytes(commitBytes: number, segmentBytes: number): void {
    const left = segmentBytes - this.#position;
    if (commitBytes > left || commitBytes > LOG_TAIL_COMMIT_BYTES_MAX) {
      throw new Error(
        `Commit log "${this.#dir}" is damaged at transaction ${this.#nextTx}: its header ` +
          `claims a commit of ${commitBytes} bytes, but ${
            commitBytes > left
              ? `only ${left} bytes of the segment follow`
              : `a commit is at most ${LOG_TAIL_COMMIT_BYTES_MAX}`
          }`,
      );
    }
  }

  #gone(tx: number): Error {
    return new Error(`The commit log of "${this.#dir}" ends before transaction ${tx}`);
  }
}
