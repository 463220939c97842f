/**
 * One transaction as stored in the commit log (all integers little-endian):
 *
 *   u8  format version (1)      u8  reserved (0)
 *   i64 timestamp, microseconds since the Unix epoch
 *   32  caller identity          16  caller connection id
 *   u32 + utf-8   reducer name   u32 + bytes   reducer arguments (BSATN, opaque here)
 *   u32 table count, then per table:
 *       u32 table id, u32 insert count, (u32 + row bytes)*, u32 delete count, (u32 + row bytes)*
 *   u32 sequence count, then per sequence: u32 table id, u16 column, i128 next value
 *
 * Row bytes are opaque (BSATN rows, encoded by the datastore). A batch is many records, each
 * prefixed by its u32 length: exactly the payload layout of a commit frame, so batches go
 * into the log without re-encoding.
 */
import { assert } from "../lib/assert.ts";

export const TX_RECORD_FORMAT_VERSION = 1;

export interface TableChanges {
  tableId: number;
  inserts: Uint8Array[];
  deletes: Uint8Array[];
}

export interface SequenceState {
  tableId: number;
  column: number;
  next: bigint;
}

export interface TxRecord {
  reducerName: string;
  /** 32 bytes. */
  callerIdentity: Uint8Array;
  /** 16 bytes. */
  callerConnectionId: Uint8Array;
  timestampMicros: bigint;
  args: Uint8Array;
  tables: TableChanges[];
  sequences: SequenceState[];
}

const IDENTITY_BYTES = 32;
const CONNECTION_ID_BYTES = 16;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** A growable little-endian byte buffer. Reuse one across batches to avoid allocation. */
class Buffer {
  bytes: Uint8Array;
  view: DataView;
  length = 0;
  constructor(initialBytes: number) {
    this.bytes = new Uint8Array(initialBytes);
    this.view = new DataView(this.bytes.buffer);
  }
  reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.bytes.length) return;
    const next = new Uint8Array(Math.max(needed, this.bytes.length * 2));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
  u8(value: number): void {
    this.reserve(1);
    this.bytes[this.length++] = value;
  }
  u16(value: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, value, true);
    this.length += 2;
  }
  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }
  i64(value: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, value, true);
    this.length += 8;
  }
  i128(value: bigint): void {
    this.reserve(16);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, value), true);
    this.view.setBigInt64(this.length + 8, BigInt.asIntN(64, value >> 64n), true);
    this.length += 16;
  }
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    copyInto(this.bytes, bytes, this.length);
    this.length += bytes.length;
  }
  sized(bytes: Uint8Array): void {
    this.reserve(4 + bytes.length);
    this.view.setUint32(this.length, bytes.length, true);
    copyInto(this.bytes, bytes, this.length + 4);
    this.length += 4 + bytes.length;
  }
  string(text: string): void {
    this.reserve(4 + text.length * 3);
    // Reducer names are short ASCII: copying code units beats a TextEncoder call.
    if (text.length <= 64) {
      const out = this.bytes;
      const start = this.length + 4;
      let i = 0;
      while (i < text.length) {
        const code = text.charCodeAt(i);
        if (code >= 0x80) break;
        out[start + i] = code;
        i++;
      }
      if (i === text.length) {
        this.view.setUint32(this.length, i, true);
        this.length += 4 + i;
        return;
      }
    }
    const { written } = textEncoder.encodeInto(text, this.bytes.subarray(this.length + 4));
    this.view.setUint32(this.length, written, true);
    this.length += 4 + written;
  }
}

/** `out.set(bytes, at)`; a plain loop is several times faster for the small rows of most tables. */
function copyInto(out: Uint8Array, bytes: Uint8Array, at: number): void {
  const length = bytes.length;
  if (length > 64) {
    out.set(bytes, at);
    return;
  }
  for (let i = 0; i < length; i++) out[at + i] = bytes[i];
}

function writeRecord(out: Buffer, record: TxRecord): void {
  if (record.callerIdentity.length !== IDENTITY_BYTES) {
    throw new TypeError(`Caller identity is ${record.callerIdentity.length} bytes, expected 32`);
  }
  if (record.callerConnectionId.length !== CONNECTION_ID_BYTES) {
    throw new TypeError(
      `Caller connection id is ${record.callerConnectionId.length} bytes, expected 16`,
    );
  }
  out.u8(TX_RECORD_FORMAT_VERSION);
  out.u8(0);
  out.i64(record.timestampMicros);
  out.raw(record.callerIdentity);
  out.raw(record.callerConnectionId);
  out.string(record.reducerName);
  out.sized(record.args);
  out.u32(record.tables.length);
  for (const table of record.tables) {
    out.u32(table.tableId);
    out.u32(table.inserts.length);
    for (const row of table.inserts) out.sized(row);
    out.u32(table.deletes.length);
    for (const row of table.deletes) out.sized(row);
  }
  out.u32(record.sequences.length);
  for (const sequence of record.sequences) {
    out.u32(sequence.tableId);
    out.u16(sequence.column);
    out.i128(sequence.next);
  }
}

/** Encodes one record (without the batch length prefix). */
export function encodeTxRecord(record: TxRecord): Uint8Array {
  const out = new Buffer(256);
  writeRecord(out, record);
  return out.bytes.slice(0, out.length);
}

/**
 * Encodes many records into one buffer in the commit payload layout. `finish()` hands out the
 * batch in its own ArrayBuffer (transferable to the storage worker) and starts a new batch.
 */
export class TxBatchEncoder {
  #out: Buffer;
  #recordCount = 0;
  constructor(initialBytes = 64 * 1024) {
    this.#out = new Buffer(initialBytes);
  }
  get recordCount(): number {
    return this.#recordCount;
  }
  get byteLength(): number {
    return this.#out.length;
  }
  add(record: TxRecord): void {
    const out = this.#out;
    const lengthAt = out.length;
    out.u32(0);
    try {
      writeRecord(out, record);
    } catch (error) {
      out.length = lengthAt;
      throw error;
    }
    out.view.setUint32(lengthAt, out.length - lengthAt - 4, true);
    this.#recordCount++;
  }
  /** The batch so far, as `{ bytes, recordCount }`; the encoder is empty afterwards. */
  finish(): { bytes: Uint8Array; recordCount: number } {
    const bytes = this.#out.bytes.slice(0, this.#out.length);
    const recordCount = this.#recordCount;
    this.#out.length = 0;
    this.#recordCount = 0;
    return { bytes, recordCount };
  }
}

/** Thrown when record bytes do not parse; the log's checksum passed, so this is a writer bug. */
export class MalformedRecordError extends Error {
  override name = "MalformedRecordError";
}

class Reader {
  at = 0;
  #view: DataView | undefined;
  constructor(readonly bytes: Uint8Array) {}
  /** Made on first use: replay reads records through u32/raw only (no DataView per record). */
  get view(): DataView {
    const bytes = this.bytes;
    return this.#view ??= new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(count: number): void {
    if (this.at + count > this.bytes.length) {
      throw new MalformedRecordError(`Record ends early at byte ${this.at} (needs ${count} more)`);
    }
  }
  u8(): number {
    this.need(1);
    return this.bytes[this.at++];
  }
  u16(): number {
    this.need(2);
    const value = this.view.getUint16(this.at, true);
    this.at += 2;
    return value;
  }
  u32(): number {
    this.need(4);
    const bytes = this.bytes;
    const at = this.at;
    this.at = at + 4;
    return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>>
      0;
  }
  i64(): bigint {
    this.need(8);
    const value = this.view.getBigInt64(this.at, true);
    this.at += 8;
    return value;
  }
  i128(): bigint {
    this.need(16);
    const low = this.view.getBigUint64(this.at, true);
    const high = this.view.getBigInt64(this.at + 8, true);
    this.at += 16;
    return (high << 64n) | low;
  }
  raw(count: number): Uint8Array {
    this.need(count);
    const view = this.bytes.subarray(this.at, this.at + count);
    this.at += count;
    return view;
  }
  sized(): Uint8Array {
    return this.raw(this.u32());
  }
  /** Steps over `count` bytes without making a view. */
  skip(count: number): void {
    this.need(count);
    this.at += count;
  }
  /** Steps over a u32-length-prefixed field. */
  skipSized(): void {
    this.skip(this.u32());
  }
}

/** Decodes one record. Byte fields are views into `bytes` (copy them to keep them). */
export function decodeTxRecord(bytes: Uint8Array): TxRecord {
  const reader = new Reader(bytes);
  const version = reader.u8();
  if (version !== TX_RECORD_FORMAT_VERSION) {
    throw new MalformedRecordError(`Unknown transaction record version ${version}`);
  }
  reader.u8();
  const timestampMicros = reader.i64();
  const callerIdentity = reader.raw(IDENTITY_BYTES);
  const callerConnectionId = reader.raw(CONNECTION_ID_BYTES);
  let reducerName: string;
  try {
    reducerName = textDecoder.decode(reader.sized());
  } catch (error) {
    if (error instanceof MalformedRecordError) throw error;
    throw new MalformedRecordError("Reducer name is not valid UTF-8");
  }
  const args = reader.sized();
  const tableCount = reader.u32();
  const tables: TableChanges[] = [];
  for (let t = 0; t < tableCount; t++) {
    const tableId = reader.u32();
    const insertCount = reader.u32();
    const inserts: Uint8Array[] = [];
    for (let i = 0; i < insertCount; i++) inserts.push(reader.sized());
    const deleteCount = reader.u32();
    const deletes: Uint8Array[] = [];
    for (let i = 0; i < deleteCount; i++) deletes.push(reader.sized());
    tables.push({ tableId, inserts, deletes });
  }
  const sequenceCount = reader.u32();
  const sequences: SequenceState[] = [];
  for (let s = 0; s < sequenceCount; s++) {
    sequences.push({ tableId: reader.u32(), column: reader.u16(), next: reader.i128() });
  }
  if (reader.at !== bytes.length) {
    throw new MalformedRecordError(`${bytes.length - reader.at} bytes follow the record`);
  }
  return {
    reducerName,
    callerIdentity,
    callerConnectionId,
    timestampMicros,
    args,
    tables,
    sequences,
  };
}

/** Whether a record's reducer name is `name` (UTF-8), without decoding the rest. */
export function txRecordHasReducerName(bytes: Uint8Array, name: Uint8Array): boolean {
  const reader = new Reader(bytes);
  if (reader.u8() !== TX_RECORD_FORMAT_VERSION) return false;
  reader.raw(1 + 8 + IDENTITY_BYTES + CONNECTION_ID_BYTES);
  const stored = reader.sized();
  if (stored.length !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (stored[i] !== name[i]) return false;
  return true;
}

/**
 * Only what replay needs of a record: its row changes and sequence positions (the caller,
 * reducer name, arguments and timestamp are skipped, not decoded). Same checks on the layout as
 * `decodeTxRecord`; rows are views into `bytes`.
 */
export function decodeTxChanges(
  bytes: Uint8Array,
): { tables: TableChanges[]; sequences: SequenceState[] } {
  const reader = new Reader(bytes);
  const version = reader.u8();
  if (version !== TX_RECORD_FORMAT_VERSION) {
    throw new MalformedRecordError(`Unknown transaction record version ${version}`);
  }
  reader.skip(1 + 8 + IDENTITY_BYTES + CONNECTION_ID_BYTES);
  reader.skipSized(); // reducer name
  reader.skipSized(); // arguments
  const tableCount = reader.u32();
  const tables: TableChanges[] = [];
  for (let t = 0; t < tableCount; t++) {
    const tableId = reader.u32();
    const insertCount = reader.u32();
    const inserts: Uint8Array[] = new Array(insertCount);
    for (let i = 0; i < insertCount; i++) inserts[i] = reader.sized();
    const deleteCount = reader.u32();
    const deletes: Uint8Array[] = new Array(deleteCount);
    for (let i = 0; i < deleteCount; i++) deletes[i] = reader.sized();
    tables.push({ tableId, inserts, deletes });
  }
  const sequenceCount = reader.u32();
  const sequences: SequenceState[] = [];
  for (let s = 0; s < sequenceCount; s++) {
    sequences.push({ tableId: reader.u32(), column: reader.u16(), next: reader.i128() });
  }
  if (reader.at !== bytes.length) {
    throw new MalformedRecordError(`${bytes.length - reader.at} bytes follow the record`);
  }
  return { tables, sequences };
}

/** Decodes every record of a batch (the commit payload layout). */
export function decodeTxBatch(bytes: Uint8Array): TxRecord[] {
  const records: TxRecord[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) {
      throw new MalformedRecordError(`Batch ends inside a length at ${at}`);
    }
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.length) {
      throw new MalformedRecordError(`Record at ${at} overruns the batch`);
    }
    records.push(decodeTxRecord(bytes.subarray(at, at + length)));
    at += length;
  }
  assert(at === bytes.length, "Batch decoded to its end");
  return records;
}
