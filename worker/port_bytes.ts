/**
 * Byte arrays across the MessagePorts between the database thread and its procedure threads.
 *
 * Those ports are read with node:worker_threads' `receiveMessageOnPort` (port events cannot be
 * listened to inside the sandbox), and Deno 2.9.6's version walks every element of every
 * Uint8Array in a received message looking for ports: measured, a 12 MiB body took 1.7 s and
 * ~560 MiB of address space, so one HTTP handler answer of 12 MiB ran the database process
 * out of memory and crashed it, for anyone who asked. An ArrayBuffer is not walked (2 ms). So
 * each side boxes its Uint8Arrays as `{ [BYTES_KEY]: ArrayBuffer }` before posting and the other
 * side unboxes them after taking the message.
 */

/** The key of a boxed byte array; only the host's own code posts on these ports. */
const BYTES_KEY = "__lightcone_bytes__";
const isArray = Array.isArray;
const objectKeys = Object.keys;
const getPrototypeOf = Object.getPrototypeOf;
const objectPrototype = Object.prototype;
const Uint8ArrayCtor = Uint8Array;
const ArrayBufferCtor = ArrayBuffer;
const DEPTH_MAX = 32;

/** `value` with every Uint8Array in plain objects and arrays replaced by a boxed copy. */
export function boxBytes(value: unknown, depth = 0): unknown {
  if (value instanceof Uint8ArrayCtor) {
    // A view of a whole ArrayBuffer is posted as that buffer (the port copies it); anything
    // else (part of a buffer, a SharedArrayBuffer) is copied out first.
    const buffer = value.buffer;
    if (
      buffer instanceof ArrayBufferCtor && value.byteOffset === 0 &&
      value.byteLength === buffer.byteLength
    ) {
      return { [BYTES_KEY]: buffer };
    }
    const copy = new Uint8ArrayCtor(value.length);
    copy.set(value);
    return { [BYTES_KEY]: copy.buffer };
  }
  if (typeof value !== "object" || value === null || depth >= DEPTH_MAX) return value;
  if (isArray(value)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = boxBytes(value[i], depth + 1);
    return out;
  }
  if (getPrototypeOf(value) !== objectPrototype) return value;
  const out: Record<string, unknown> = {};
  const record = value as Record<string, unknown>;
  for (const key of objectKeys(record)) out[key] = boxBytes(record[key], depth + 1);
  return out;
}

/** The reverse of `boxBytes`. */
export function unboxBytes(value: unknown, depth = 0): unknown {
  if (typeof value !== "object" || value === null || depth >= DEPTH_MAX) return value;
  if (isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = unboxBytes(value[i], depth + 1);
    return value;
  }
  if (getPrototypeOf(value) !== objectPrototype) return value;
  const record = value as Record<string, unknown>;
  const keys = objectKeys(record);
  if (keys.length === 1 && keys[0] === BYTES_KEY && record[BYTES_KEY] instanceof ArrayBufferCtor) {
    return new Uint8ArrayCtor(record[BYTES_KEY] as ArrayBuffer);
  }
  for (const key of keys) record[key] = unboxBytes(record[key], depth + 1);
  return value;
}
