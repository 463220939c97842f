/**
 * Small private BSATN reader/writer for the WebSocket messages (ws_v2.ts).
 * The reader checks every bound and throws WsDecodeError; the writer writes
 * into a buffer of exactly the size computed beforehand, so messages are
 * built with one allocation.
 */

/** A client or server message could not be decoded: truncated, bad tag, bad UTF-8, trailing bytes. */
export class WsDecodeError extends Error {
  override name = "WsDecodeError";
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export class WsReader {
  #bytes: Uint8Array;
  #view: DataView;
  #offset: number;

  constructor(bytes: Uint8Array, offset = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = offset;
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  fail(message: string): never {
    throw new WsDecodeError(message, this.#offset);
  }

  #need(byteCount: number, what: string): number {
    const at = this.#offset;
    if (byteCount > this.#bytes.length - at) {
      this.fail(`Truncated message: ${what} needs ${byteCount} bytes at offset ${at}`);
    }
    this.#offset = at + byteCount;
    return at;
  }

  u8(what = "u8"): number {
    return this.#bytes[this.#need(1, what)];
  }

  u16(what = "u16"): number {
    return this.#view.getUint16(this.#need(2, what), true);
  }

  u32(what = "u32"): number {
    return this.#view.getUint32(this.#need(4, what), true);
  }

  u64(what = "u64"): bigint {
    return this.#view.getBigUint64(this.#need(8, what), true);
  }

  i64(what = "i64"): bigint {
    return this.#view.getBigInt64(this.#need(8, what), true);
  }

  /** Little-endian unsigned integer of `byteCount` bytes (16 for u128, 32 for u256). */
  uintWide(byteCount: number, what: string): bigint {
    const at = this.#need(byteCount, what);
    let value = 0n;
    for (let i = byteCount - 8; i >= 0; i -= 8) {
      value = (value << 64n) | this.#view.getBigUint64(at + i, true);
    }
    return value;
  }

  bool(what = "bool"): boolean {
    const byte = this.u8(what);
    if (byte > 1) this.fail(`Invalid bool byte ${byte} for ${what}`);
    return byte === 1;
  }

  /** A u32 length followed by that many bytes; returns a copy-free view. */
  bytes(what = "bytes"): Uint8Array {
    const length = this.u32(`${what} length`);
    const at = this.#need(length, what);
    // Cheaper than subarray(), which looks up the species constructor on every call.
    const bytes = this.#bytes;
    return new Uint8Array(bytes.buffer, bytes.byteOffset + at, length);
  }

  string(what = "string"): string {
    const raw = this.bytes(what);
    try {
      return utf8Decoder.decode(raw);
    } catch {
      this.fail(`Invalid UTF-8 in ${what}`);
    }
  }

  /** Reads an array length and checks it against the bytes left, so a forged count cannot allocate. */
  arrayLength(elementBytesMin: number, what: string): number {
    const count = this.u32(`${what} length`);
    if (elementBytesMin > 0 && count > this.remaining / elementBytesMin) {
      this.fail(`Truncated message: ${what} claims ${count} elements`);
    }
    return count;
  }
}

/** Writes into a preallocated buffer; the caller computed the exact size. */
export class WsWriter {
  readonly bytes: Uint8Array;
  #view: DataView;
  offset = 0;

  constructor(byteCount: number) {
    this.bytes = new Uint8Array(byteCount);
    this.#view = new DataView(this.bytes.buffer);
  }

  u8(value: number): void {
    this.bytes[this.offset++] = value;
  }

  u16(value: number): void {
    this.#view.setUint16(this.offset, value, true);
    this.offset += 2;
  }

  u32(value: number): void {
    this.#view.setUint32(this.offset, value, true);
    this.offset += 4;
  }

  u64(value: bigint): void {
    this.#view.setBigUint64(this.offset, value, true);
    this.offset += 8;
  }

  i64(value: bigint): void {
    this.#view.setBigInt64(this.offset, value, true);
    this.offset += 8;
  }

  uintWide(value: bigint, byteCount: number): void {
    let rest = value;
    for (let i = 0; i < byteCount; i += 8) {
      this.#view.setBigUint64(this.offset + i, rest & 0xffff_ffff_ffff_ffffn, true);
      rest >>= 64n;
    }
    this.offset += byteCount;
  }

  raw(bytes: Uint8Array): void {
    const length = bytes.length;
    if (length < 64) {
      // TypedArray.set has a high fixed cost; rows are usually small.
      const out = this.bytes;
      let at = this.offset;
      for (let i = 0; i < length; i++) out[at++] = bytes[i];
    } else {
      this.bytes.set(bytes, this.offset);
    }
    this.offset += length;
  }

  bytesWithLength(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }

  /** Writes a u32 byte length and the UTF-8 text; `byteLength` must be `utf8Length(text)`. */
  string(text: string, byteLength: number): void {
    this.u32(byteLength);
    const { written } = utf8Encoder.encodeInto(text, this.bytes.subarray(this.offset));
    if (written !== byteLength) throw new RangeError("String length changed while encoding");
    this.offset += byteLength;
  }
}

/** UTF-8 byte length of `text` as TextEncoder writes it (lone surrogates become U+FFFD, 3 bytes). */
export function utf8Length(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) length += 1;
    else if (unit < 0x800) length += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        length += 4;
        i++;
      } else {
        length += 3;
      }
    } else length += 3;
  }
  return length;
}
