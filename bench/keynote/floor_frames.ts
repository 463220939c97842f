/** Length-prefixed frames (u32 little-endian length, then the payload) for the floor servers. */

export function floorFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length, true);
  frame.set(payload, 4);
  return frame;
}

/** Reassembles frames from a byte stream; `onFrame` gets each payload (its own copy). */
export class FloorFrameReader {
  #pending = new Uint8Array(0);

  constructor(readonly onFrame: (payload: Uint8Array) => void) {}

  /** Takes the next chunk; returns the byte length of the whole frames it completed. */
  push(chunk: Uint8Array): number {
    let bytes = chunk;
    if (this.#pending.length > 0) {
      bytes = new Uint8Array(this.#pending.length + chunk.length);
      bytes.set(this.#pending);
      bytes.set(chunk, this.#pending.length);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    while (bytes.length - at >= 4) {
      const length = view.getUint32(at, true);
      if (bytes.length - at - 4 < length) break;
      this.onFrame(bytes.slice(at + 4, at + 4 + length));
      at += 4 + length;
    }
    this.#pending = bytes.slice(at);
    return at;
  }
}
