/**
 * The keynote transfer workload: 100,000 accounts holding 1,000,000,000 each, and transfers of
 * amount 1 between account pairs drawn from a Zipf distribution (α = 0 is uniform).
 *
 * Pairs are precomputed from a seeded mulberry32 PRNG, so every system in one run sees exactly the
 * same sequence. Ranks are mapped to account ids through a fixed random permutation, so the hot
 * accounts are spread over the id space (and over B-tree pages) instead of being ids 0, 1, 2.
 *
 * Pure code: no I/O. The orchestrator writes the pairs to a file the Node load client reads.
 */

export const ACCOUNT_COUNT_DEFAULT = 100_000;
export const INITIAL_BALANCE = 1_000_000_000;
export const TRANSFER_AMOUNT = 1;
/** 2^20 pairs: more than a short run uses per client, small enough to generate in well under 1 s. */
export const PAIR_COUNT_DEFAULT = 1 << 20;

/** mulberry32: the PRNG keynote-2 seeds its sampler with. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sampler of ranks 0..n-1 where P(rank k) ∝ 1 / (k + 1)^α. α = 0 is uniform. Sampling is a
 * binary search over the cumulative distribution (n doubles, 800 kB for 100k accounts).
 */
export interface ZipfSampler {
  readonly n: number;
  readonly alpha: number;
  /** The probability of rank `k` (for tests and the contention estimate). */
  probability(k: number): number;
  /** Maps a uniform `u` in [0, 1) to a rank. */
  rankOf(u: number): number;
}

export function zipfSampler(n: number, alpha: number): ZipfSampler {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`Zipf needs n >= 2, got '${n}'`);
  if (!(alpha >= 0) || !Number.isFinite(alpha)) {
    throw new RangeError(`Zipf needs a finite alpha >= 0, got '${alpha}'`);
  }
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += alpha === 0 ? 1 : Math.pow(k + 1, -alpha);
    cdf[k] = total;
  }
  for (let k = 0; k < n; k++) cdf[k] /= total;
  cdf[n - 1] = 1;
  return {
    n,
    alpha,
    probability: (k) => (k === 0 ? cdf[0] : cdf[k] - cdf[k - 1]),
    rankOf(u) {
      // First k with cdf[k] > u.
      let low = 0;
      let high = n - 1;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if (cdf[mid] > u) high = mid;
        else low = mid + 1;
      }
      return low;
    },
  };
}

/** A random permutation of 0..n-1 (Fisher–Yates): rank -> account id. */
export function rankToIdPermutation(n: number, random: () => number): Uint32Array {
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = ids[i];
    ids[i] = ids[j];
    ids[j] = swap;
  }
  return ids;
}

export interface TransferPairs {
  readonly from: Uint32Array;
  readonly to: Uint32Array;
}

export interface PairOptions {
  alpha: number;
  seed: number;
  accountCount?: number;
  pairCount?: number;
}

/**
 * Precomputes `pairCount` (from, to) pairs of account ids 0..accountCount-1. Both ends are drawn
 * from the same Zipf distribution; `to` is redrawn until it differs from `from`.
 */
export function generatePairs(options: PairOptions): TransferPairs {
  const accountCount = options.accountCount ?? ACCOUNT_COUNT_DEFAULT;
  const pairCount = options.pairCount ?? PAIR_COUNT_DEFAULT;
  if (!Number.isInteger(pairCount) || pairCount < 1) {
    throw new RangeError(`Pair count must be a positive integer, got '${pairCount}'`);
  }
  const random = mulberry32(options.seed);
  const ids = rankToIdPermutation(accountCount, random);
  const sampler = zipfSampler(accountCount, options.alpha);
  const from = new Uint32Array(pairCount);
  const to = new Uint32Array(pairCount);
  for (let i = 0; i < pairCount; i++) {
    const a = ids[sampler.rankOf(random())];
    let b = ids[sampler.rankOf(random())];
    while (b === a) b = ids[sampler.rankOf(random())];
    from[i] = a;
    to[i] = b;
  }
  return { from, to };
}

/** Share of pairs that touch the account `id` (as from or to). */
export function shareTouching(pairs: TransferPairs, id: number): number {
  let hits = 0;
  for (let i = 0; i < pairs.from.length; i++) {
    if (pairs.from[i] === id || pairs.to[i] === id) hits++;
  }
  return hits / pairs.from.length;
}

/** The account touched by the most pairs, and the share of pairs touching it. */
export function hottestAccount(pairs: TransferPairs): { id: number; share: number } {
  const counts = new Map<number, number>();
  for (let i = 0; i < pairs.from.length; i++) {
    counts.set(pairs.from[i], (counts.get(pairs.from[i]) ?? 0) + 1);
    counts.set(pairs.to[i], (counts.get(pairs.to[i]) ?? 0) + 1);
  }
  let bestId = -1;
  let bestCount = -1;
  for (const [id, count] of counts) {
    if (count > bestCount) {
      bestId = id;
      bestCount = count;
    }
  }
  return { id: bestId, share: shareTouching(pairs, bestId) };
}

/**
 * Pairs file layout: u32 little-endian count, then `count` from ids, then `count` to ids. Read by
 * bench/keynote/http_load.mjs.
 */
export function encodePairs(pairs: TransferPairs): Uint8Array {
  const count = pairs.from.length;
  const bytes = new Uint8Array(4 + 8 * count);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, count, true);
  for (let i = 0; i < count; i++) {
    view.setUint32(4 + 4 * i, pairs.from[i], true);
    view.setUint32(4 + 4 * count + 4 * i, pairs.to[i], true);
  }
  return bytes;
}

export function decodePairs(bytes: Uint8Array): TransferPairs {
  if (bytes.length < 4) throw new RangeError(`Pairs file too short: '${bytes.length}' bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (bytes.length !== 4 + 8 * count) {
    throw new RangeError(`Pairs file has '${bytes.length}' bytes, expected '${4 + 8 * count}'`);
  }
  const from = new Uint32Array(count);
  const to = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    from[i] = view.getUint32(4 + 4 * i, true);
    to[i] = view.getUint32(4 + 4 * count + 4 * i, true);
  }
  return { from, to };
}
