/**
 * The net effect of one committed transaction: rows inserted and deleted per table (BSATN row
 * bytes) and the sequence positions that moved since the previous commit (sequence values are
 * not transactional, so positions consumed by rolled-back transactions ride along here).
 * `encodeTxDelta`/`decodeTxDelta` give a compact binary form for the commit log.
 */
import { decodeError } from "./datastore_error.ts";
import { copyBytes } from "./row_arena.ts";

export interface TxDelta {
  tables: { tableId: number; inserts: Uint8Array[]; deletes: Uint8Array[] }[];
  sequences: { tableId: number; column: number; next: bigint }[];
}

const DELTA_FORMAT_VERSION = 1;

/** Growable little-endian byte writer. */
export class ByteWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #length = 0;

  /** `capacityBytes`: room made up front (a writer that knows its size copies nothing as it grows). */
  constructor(capacityBytes = 256) {
    this.#bytes = new Uint8Array(Math.max(16, capacityBytes));
    this.#view = new DataView(this.#bytes.buffer);
  }

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.#length + extra) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = bigger;
    this.#view = new DataView(bigger.buffer);
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = value;
  }

  u32(value: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.#length, value, true);
    this.#length += 4;
  }

  bytes(value: Uint8Array): void {
    this.u32(value.length);
    this.#reserve(value.length);
    this.#bytes.set(value, this.#length);
    this.#length += value.length;
  }

  /** Like `bytes()` for row `id` of a row store, copied in place (no intermediate row array). */
  storedRow(
    store: { size(id: number): number; copyInto(id: number, out: Uint8Array, at: number): number },
    id: number,
  ): void {
    const size = store.size(id);
    this.u32(size);
    this.#reserve(size);
    this.#length += store.copyInto(id, this.#bytes, this.#length);
  }

  /** A signed integer of any size: u8 byte count, then two's complement little-endian. */
  bigint(value: bigint): void {
    const out: number[] = [];
    let rest = value;
    do {
      out.push(Number(rest & 0xffn));
      rest >>= 8n;
    } while (
      !((rest === 0n && (out[out.length - 1] & 0x80) === 0) ||
        (rest === -1n && (out[out.length - 1] & 0x80) !== 0))
    );
    this.u8(out.length);
    for (const byte of out) this.u8(byte);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }
}

/** Bounds-checked little-endian reader; malformed input gives DecodeError. */
export class ByteReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.#pos === this.#bytes.length;
  }

  /** Bytes read so far. */
  get position(): number {
    return this.#pos;
  }

  /** Steps over `count` bytes (bounds-checked). */
  skip(count: number): void {
    this.#need(count);
    this.#pos += count;
  }

  #need(count: number): void {
    if (this.#pos + count > this.#bytes.length) throw decodeError("Unexpected end of input");
  }

  u8(): number {
    this.#need(1);
    return this.#bytes[this.#pos++];
  }

  u32(): number {
    this.#need(4);
    const value = this.#view.getUint32(this.#pos, true);
    this.#pos += 4;
    return value;
  }

  bytes(): Uint8Array {
    const length = this.u32();
    this.#need(length);
    // Small rows share slabs (row_arena.ts): one ArrayBuffer per row is what made loads GC-bound.
    const out = copyBytes(this.#bytes, this.#pos, this.#pos + length);
    this.#pos += length;
    return out;
  }

  bigint(): bigint {
    const count = this.u8();
    this.#need(count);
    let value = 0n;
    for (let i = count - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.#bytes[this.#pos + i]);
    if (count > 0 && this.#bytes[this.#pos + count - 1] & 0x80) value -= 1n << BigInt(count * 8);
    this.#pos += count;
    return value;
  }
}

export function encodeTxDelta(delta: TxDelta): Uint8Array {
  const writer = new ByteWriter();
  writer.u8(DELTA_FORMAT_VERSION);
  writer.u32(delta.tables.length);
  for (const table of delta.tables) {
    writer.u32(table.tableId);
    writer.u32(table.deletes.length);
    for (const row of table.deletes) writer.bytes(row);
    writer.u32(table.inserts.length);
    for (const row of table.inserts) writer.bytes(row);
  }
  writer.u32(delta.sequences.length);
  for (const sequence of delta.sequences) {
    writer.u32(sequence.tableId);
    writer.u32(sequence.column);
    writer.bigint(sequence.next);
  }
  return writer.finish();
}

export function decodeTxDelta(bytes: Uint8Array): TxDelta {
  const reader = new ByteReader(bytes);
  const version = reader.u8();
  if (version !== DELTA_FORMAT_VERSION) throw decodeError(`Unknown delta version '${version}'`);
  const tables: TxDelta["tables"] = [];
  for (let t = reader.u32(); t > 0; t--) {
    const tableId = reader.u32();
    const deletes: Uint8Array[] = [];
    for (let n = reader.u32(); n > 0; n--) deletes.push(reader.bytes());
    const inserts: Uint8Array[] = [];
    for (let n = reader.u32(); n > 0; n--) inserts.push(reader.bytes());
    tables.push({ tableId, inserts, deletes });
  }
  const sequences: TxDelta["sequences"] = [];
  for (let n = reader.u32(); n > 0; n--) {
    sequences.push({ tableId: reader.u32(), column: reader.u32(), next: reader.bigint() });
  }
  if (!reader.done) throw decodeError("Delta has trailing bytes");
  return { tables, sequences };
}
