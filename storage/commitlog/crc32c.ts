/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), computed with slicing-by-8 tables.
 * Used to checksum every commit frame and snapshot file.
 */

const POLYNOMIAL_REFLECTED = 0x82f63b78;

/** TABLES[k * 256 + b]: CRC of byte b followed by k zero bytes. */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL_REFLECTED : crc >>> 1;
    }
    tables[byte] = crc >>> 0;
  }
  for (let byte = 0; byte < 256; byte++) {
    let crc = tables[byte];
    for (let k = 1; k < 8; k++) {
      crc = tables[crc & 0xff] ^ (crc >>> 8);
      tables[k * 256 + byte] = crc >>> 0;
    }
  }
  return tables;
}

/**
 * Continues a CRC32C over `bytes`. Start with `crc32cUpdate(0, first)` and feed the
 * previous result back in for the next piece; the result equals `crc32c` of the concatenation.
 */
export function crc32cUpdate(crcSoFar: number, bytes: Uint8Array): number {
  const t = TABLES;
  let crc = ~crcSoFar >>> 0;
  let i = 0;
  const length = bytes.length;
  // Byte-wise until 4-byte aligned inside the underlying buffer, so the word reads below are fast.
  while (i < length && ((bytes.byteOffset + i) & 3) !== 0) {
    crc = t[(crc ^ bytes[i++]) & 0xff] ^ (crc >>> 8);
  }
  const wordCount = (length - i) >>> 3;
  if (wordCount > 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, wordCount * 2);
    for (let w = 0; w < words.length; w += 2) {
      // Little-endian platforms only (asserted at module load below).
      const low = words[w] ^ crc;
      const high = words[w + 1];
      crc = t[1792 + (low & 0xff)] ^ t[1536 + ((low >>> 8) & 0xff)] ^
        t[1280 + ((low >>> 16) & 0xff)] ^ t[1024 + (low >>> 24)] ^
        t[768 + (high & 0xff)] ^ t[512 + ((high >>> 8) & 0xff)] ^
        t[256 + ((high >>> 16) & 0xff)] ^ t[high >>> 24];
    }
    i += wordCount * 8;
  }
  while (i < length) {
    crc = t[(crc ^ bytes[i++]) & 0xff] ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}

/** CRC32C of `bytes` as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array): number {
  return crc32cUpdate(0, bytes);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
if (!LITTLE_ENDIAN) throw new Error("Lightcone's CRC32C needs a little-endian platform");
