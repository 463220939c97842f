/**
 * Copies of small rows are carved out of shared 16 KiB slabs: allocating one ArrayBuffer per
 * row costs ~250 ns in V8 (more once they survive a GC), a slab view ~35 ns. A slab is freed
 * when the last row viewing it dies. Rows above SMALL_ROW_BYTES_MAX get their own buffer, so a
 * long-lived small row pins at most one slab's worth of short-lived neighbours.
 *
 * Consequence for callers: a stored row is a view (`byteOffset` may be non-zero); copy it with
 * `set()`, never through `.buffer`.
 */
const SLAB_BYTES = 16 * 1024;
const SMALL_ROW_BYTES_MAX = 256;

let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/** A private copy of `bytes[start, end)`. */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const length = end - start;
  if (length > SMALL_ROW_BYTES_MAX) return bytes.slice(start, end);
  if (slabUsed + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += length;
  for (let i = 0; i < length; i++) out[i] = bytes[start + i];
  return out;
}
