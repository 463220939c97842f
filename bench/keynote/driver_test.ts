import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { checkBalances } from "./balance_check.ts";
import { LatencyHistogram, type Outcome, runLoad } from "./driver.mjs";
import { generatePairs } from "./workload.ts";

const ACCOUNTS = 200;
const INITIAL = 1_000_000;

/** An in-memory bank standing in for a server; `lose` acknowledges without applying. */
function fakeBank(
  options: { lose?: (index: number) => boolean; hang?: (index: number) => boolean } = {},
) {
  const balances = new Array<number>(ACCOUNTS).fill(INITIAL);
  let calls = 0;
  const send = async (
    _client: number,
    from: number,
    to: number,
    amount: number,
  ): Promise<Outcome> => {
    const index = calls++;
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (options.hang?.(index)) {
      // Applied, but the answer never arrives.
      balances[from] -= amount;
      balances[to] += amount;
      return await new Promise<Outcome>(() => {});
    }
    if (from === to) return "refused";
    if (!options.lose?.(index)) {
      balances[from] -= amount;
      balances[to] += amount;
    }
    return "ok";
  };
  const rows = () => balances.map((balance, id) => ({ id, balance }));
  return { send, rows, calls: () => calls };
}

const pairs = generatePairs({ alpha: 1.5, seed: 3, accountCount: ACCOUNTS, pairCount: 4096 });

Deno.test("runLoad() acknowledgements account for every balance of an honest server", async () => {
  const bank = fakeBank();
  const result = await runLoad({
    pairs,
    clientCount: 4,
    inflightPerClient: 3,
    warmupMs: 20,
    measureMs: 100,
    accountCount: ACCOUNTS,
    send: bank.send,
  });
  assert(result.totalAcked > 0);
  assertEquals(result.totalAcked, bank.calls());
  assertEquals(result.totalSent, bank.calls());
  assert(result.committed <= result.totalAcked);
  assertEquals(result.errors, 0);
  assertEquals(result.perSecondTps.reduce((sum, count) => sum + count, 0), result.committed);
  const report = checkBalances(bank.rows(), {
    accountCount: ACCOUNTS,
    initialBalance: INITIAL,
    ackedDelta: result.ackedDelta,
    unknownCount: result.unknownCount,
  });
  assert(report.ok, report.problems.join("; "));
  assert(report.changedCount > 0);
});

Deno.test("runLoad() plus checkBalances() catch a server that loses acknowledged transfers", async () => {
  const bank = fakeBank({ lose: (index) => index % 50 === 7 });
  const result = await runLoad({
    pairs,
    clientCount: 2,
    inflightPerClient: 2,
    warmupMs: 0,
    // Long enough for > 50 transfers even on a loaded CI machine (the fake bank is instant; 600
    // ms left ~100 ms per transfer pair of slack at 2 clients × 2 in flight, too little at load 25).
    measureMs: 3000,
    accountCount: ACCOUNTS,
    send: bank.send,
  });
  assert(result.totalAcked > 50, `only ${result.totalAcked} transfers ran`);
  const report = checkBalances(bank.rows(), {
    accountCount: ACCOUNTS,
    initialBalance: INITIAL,
    ackedDelta: result.ackedDelta,
    unknownCount: result.unknownCount,
  });
  assertEquals(report.sum, report.expectedSum);
  assert(!report.ok, "lost transfers went unnoticed");
  assert(report.mismatchCount > 0);
});

Deno.test("runLoad() counts a hung transfer as a timeout of unknown outcome", async () => {
  const bank = fakeBank({ hang: (index) => index === 3 });
  const result = await runLoad({
    pairs,
    clientCount: 1,
    inflightPerClient: 2,
    warmupMs: 0,
    measureMs: 150,
    timeoutMs: 30,
    drainMs: 10,
    accountCount: ACCOUNTS,
    send: bank.send,
  });
  assertEquals(result.totalErrorKinds.timeout, 1);
  assertEquals(result.undrained, 1);
  const unknownTotal = result.unknownCount.reduce((sum, count) => sum + count, 0);
  assertEquals(unknownTotal, 2);
  // The hung transfer was applied; the slack for its two accounts covers it.
  const report = checkBalances(bank.rows(), {
    accountCount: ACCOUNTS,
    initialBalance: INITIAL,
    ackedDelta: result.ackedDelta,
    unknownCount: result.unknownCount,
  });
  assert(report.ok, report.problems.join("; "));
});

Deno.test("runLoad() counts a throwing send as a transport error", async () => {
  let calls = 0;
  const result = await runLoad({
    pairs,
    clientCount: 1,
    inflightPerClient: 1,
    warmupMs: 0,
    measureMs: 40,
    accountCount: ACCOUNTS,
    send: () => {
      calls++;
      return Promise.reject(new Error("connection reset"));
    },
  });
  assertEquals(result.totalAcked, 0);
  assertEquals(result.totalErrorKinds.transport, calls);
  assertEquals(result.firstError, "connection reset");
});

Deno.test("LatencyHistogram quantiles are within 1 % of the exact ones", () => {
  const histogram = new LatencyHistogram();
  const values: number[] = [];
  let state = 1;
  for (let i = 0; i < 10_000; i++) {
    state = (state * 48271) % 2147483647;
    const ms = 0.05 + (state / 2147483647) * 500;
    values.push(ms);
    histogram.record(ms);
  }
  values.sort((a, b) => a - b);
  for (const q of [0.5, 0.9, 0.99]) {
    const exact = values[Math.ceil(q * values.length) - 1];
    const estimate = histogram.quantileMs(q);
    assert(Math.abs(estimate - exact) / exact < 0.01, `q${q}: ${estimate} vs ${exact}`);
  }
  assertEquals(histogram.count, 10_000);
  assertEquals(histogram.maxMs, values.at(-1));
  assertEquals(new LatencyHistogram().quantileMs(0.5), 0);
});

Deno.test("runLoad() counts a late answer as a timeout, keeps the slot going and drains it", async () => {
  const balances = new Array<number>(ACCOUNTS).fill(INITIAL);
  let calls = 0;
  const send = async (_client: number, from: number, to: number, amount: number) => {
    const index = calls++;
    // Transfer 2 is applied but answers after its 30 ms timeout (and after the window).
    await new Promise((resolve) => setTimeout(resolve, index === 2 ? 200 : 1));
    if (from === to) return "refused" as Outcome;
    balances[from] -= amount;
    balances[to] += amount;
    return "ok" as Outcome;
  };
  const result = await runLoad({
    pairs,
    clientCount: 1,
    inflightPerClient: 2,
    warmupMs: 0,
    measureMs: 100,
    timeoutMs: 30,
    drainMs: 1_000,
    accountCount: ACCOUNTS,
    send,
  });
  assertEquals(result.totalErrorKinds.timeout, 1);
  // The drain waited for the late answer.
  assertEquals(result.undrained, 0);
  // Every transfer sent has exactly one outcome; the late answer is not counted again.
  assertEquals(result.totalSent, calls);
  assertEquals(
    result.totalAcked + result.totalErrorKinds.timeout +
      result.totalErrorKinds.refused,
    calls,
  );
  const report = checkBalances(balances.map((balance, id) => ({ id, balance })), {
    accountCount: ACCOUNTS,
    initialBalance: INITIAL,
    ackedDelta: result.ackedDelta,
    unknownCount: result.unknownCount,
  });
  assert(report.ok, report.problems.join("; "));
  // Without the slack for the timed-out transfer, its two accounts would not add up.
  const strict = checkBalances(balances.map((balance, id) => ({ id, balance })), {
    accountCount: ACCOUNTS,
    initialBalance: INITIAL,
    ackedDelta: result.ackedDelta,
    unknownCount: new Int32Array(ACCOUNTS),
  });
  assert(!strict.ok);
});
