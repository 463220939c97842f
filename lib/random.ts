/** Randomness passed in as a parameter so simulations replay from a seed. */

// Captured at load: a database process later removes `crypto` from its globals.
const hostCrypto = crypto;
export interface Random {
  /** Fills `bytes` and returns it. */
  fill(bytes: Uint8Array): Uint8Array;
  /** A float in [0, 1). */
  next(): number;
}

export const systemRandom: Random = {
  fill: (bytes) => hostCrypto.getRandomValues(bytes),
  next: () => Math.random(),
};

/** mulberry32: small, fast, seeded; for tests and simulations only. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    fill(bytes) {
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      return bytes;
    },
  };
}
