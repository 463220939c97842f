import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import {
  decodePairs,
  encodePairs,
  generatePairs,
  hottestAccount,
  mulberry32,
  rankToIdPermutation,
  shareTouching,
  zipfSampler,
} from "./workload.ts";

Deno.test("mulberry32() is deterministic, in [0, 1), and agrees with lib/random.ts", () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const reference = seededRandom(42);
  for (let i = 0; i < 1000; i++) {
    const value = a();
    assertEquals(value, b());
    assertEquals(value, reference.next());
    assert(value >= 0 && value < 1);
  }
  assert(mulberry32(1)() !== mulberry32(2)());
});

Deno.test("zipfSampler() with alpha 0 gives every rank the same probability", () => {
  const sampler = zipfSampler(1000, 0);
  for (const k of [0, 1, 500, 999]) assert(Math.abs(sampler.probability(k) - 0.001) < 1e-12);
  assertEquals(sampler.rankOf(0), 0);
  assertEquals(sampler.rankOf(0.0015), 1);
  assertEquals(sampler.rankOf(0.9999999), 999);
});

Deno.test("zipfSampler() with alpha 1.5 follows 1 / (k + 1)^1.5", () => {
  const sampler = zipfSampler(100_000, 1.5);
  const ratio = sampler.probability(0) / sampler.probability(1);
  assert(Math.abs(ratio - Math.pow(2, 1.5)) < 1e-9, `ratio ${ratio}`);
  const ratioFar = sampler.probability(9) / sampler.probability(99);
  assert(Math.abs(ratioFar - Math.pow(10, 1.5)) < 1e-6, `ratio ${ratioFar}`);
  let total = 0;
  for (let k = 0; k < 100_000; k++) total += sampler.probability(k);
  assert(Math.abs(total - 1) < 1e-9);
});

Deno.test("zipfSampler() samples match its probabilities", () => {
  const sampler = zipfSampler(1000, 1.5);
  const random = mulberry32(7);
  const counts = new Float64Array(1000);
  const draws = 200_000;
  for (let i = 0; i < draws; i++) counts[sampler.rankOf(random())]++;
  for (const k of [0, 1, 2, 10]) {
    const expected = sampler.probability(k) * draws;
    // Within 5 standard deviations of a binomial count.
    const tolerance = 5 * Math.sqrt(expected);
    assert(Math.abs(counts[k] - expected) < tolerance, `rank ${k}: ${counts[k]} vs ${expected}`);
  }
});

Deno.test("zipfSampler() rejects a bad n or alpha", () => {
  throws(() => zipfSampler(1, 0), RangeError);
  throws(() => zipfSampler(10, -1), RangeError);
  throws(() => zipfSampler(10, Number.NaN), RangeError);
});

Deno.test("rankToIdPermutation() is a permutation", () => {
  const ids = rankToIdPermutation(10_000, mulberry32(3));
  const seen = new Uint8Array(10_000);
  for (const id of ids) seen[id]++;
  assert(seen.every((count) => count === 1));
  assert(ids.some((id, index) => id !== index), "the permutation should move ids");
});

Deno.test("generatePairs() draws distinct in-range accounts, reproducibly", () => {
  for (const alpha of [0, 1.5]) {
    const pairs = generatePairs({ alpha, seed: 5, accountCount: 1000, pairCount: 20_000 });
    for (let i = 0; i < pairs.from.length; i++) {
      assert(pairs.from[i] !== pairs.to[i], `pair ${i} transfers to itself`);
      assert(pairs.from[i] < 1000 && pairs.to[i] < 1000);
    }
    const again = generatePairs({ alpha, seed: 5, accountCount: 1000, pairCount: 20_000 });
    assertEquals(again.from, pairs.from);
    assertEquals(again.to, pairs.to);
    const other = generatePairs({ alpha, seed: 6, accountCount: 1000, pairCount: 20_000 });
    assert(other.from.some((id, i) => id !== pairs.from[i]));
  }
});

Deno.test("generatePairs() with alpha 1.5 concentrates on a hot account and alpha 0 does not", () => {
  const uniform = generatePairs({ alpha: 0, seed: 1, pairCount: 100_000 });
  const skewed = generatePairs({ alpha: 1.5, seed: 1, pairCount: 100_000 });
  // Uniform over 100k accounts: the hottest touches a handful of 100k pairs.
  assert(hottestAccount(uniform).share < 0.001, `uniform share ${hottestAccount(uniform).share}`);
  // Zipf 1.5: P(rank 0) ≈ 0.383 per end, so about 62 % of pairs touch it.
  const hot = hottestAccount(skewed);
  assert(hot.share > 0.55 && hot.share < 0.7, `skewed share ${hot.share}`);
  assertEquals(shareTouching(skewed, hot.id), hot.share);
  // The hottest account is not simply id 0: ranks go through a random permutation.
  assert(hot.id !== 0);
});

Deno.test("encodePairs() and decodePairs() round-trip, and a truncated file is rejected", () => {
  const pairs = generatePairs({ alpha: 1.5, seed: 9, accountCount: 500, pairCount: 1000 });
  const bytes = encodePairs(pairs);
  assertEquals(bytes.length, 4 + 8 * 1000);
  const decoded = decodePairs(bytes);
  assertEquals(decoded.from, pairs.from);
  assertEquals(decoded.to, pairs.to);
  throws(() => decodePairs(bytes.subarray(0, bytes.length - 4)), RangeError);
  throws(() => decodePairs(new Uint8Array(2)), RangeError);
});
