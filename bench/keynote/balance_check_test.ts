import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type AccountRow, checkBalances } from "./balance_check.ts";

const INITIAL = 1_000;

function freshRows(count: number): AccountRow[] {
  return Array.from({ length: count }, (_, id) => ({ id, balance: INITIAL }));
}

/** Applies transfers to rows and returns the matching acknowledged deltas. */
function applyTransfers(rows: AccountRow[], transfers: Array<[number, number]>): Int32Array {
  const delta = new Int32Array(rows.length);
  for (const [from, to] of transfers) {
    rows[from].balance -= 1;
    rows[to].balance += 1;
    delta[from] -= 1;
    delta[to] += 1;
  }
  return delta;
}

Deno.test("checkBalances() passes a table that matches the acknowledged transfers", () => {
  const rows = freshRows(10);
  const ackedDelta = applyTransfers(rows, [[0, 1], [0, 2], [3, 0]]);
  const report = checkBalances(rows, { accountCount: 10, initialBalance: INITIAL, ackedDelta });
  assert(report.ok, report.problems.join("; "));
  assertEquals(report.rowCount, 10);
  assertEquals(report.sum, 10 * INITIAL);
  assertEquals(report.changedCount, 4);
  assertEquals(report.mismatchCount, 0);
});

Deno.test("checkBalances() finds a lost acknowledged transfer even when the sum is preserved", () => {
  const rows = freshRows(10);
  const ackedDelta = applyTransfers(rows, [[0, 1], [2, 3]]);
  // The server acknowledged 2 -> 3 but never applied it.
  rows[2].balance += 1;
  rows[3].balance -= 1;
  const report = checkBalances(rows, { accountCount: 10, initialBalance: INITIAL, ackedDelta });
  assert(!report.ok);
  assertEquals(report.sum, report.expectedSum);
  assertEquals(report.mismatchCount, 2);
  assert(report.problems.some((problem) => problem.includes("'2'")));
});

Deno.test("checkBalances() allows one unit per transfer of unknown outcome", () => {
  const rows = freshRows(4);
  const ackedDelta = applyTransfers(rows, [[0, 1]]);
  // A timed-out 2 -> 3 that the server did apply.
  rows[2].balance -= 1;
  rows[3].balance += 1;
  const unknownCount = new Int32Array(4);
  unknownCount[2] = 1;
  unknownCount[3] = 1;
  const strict = checkBalances(rows, { accountCount: 4, initialBalance: INITIAL, ackedDelta });
  assert(!strict.ok);
  const lenient = checkBalances(rows, {
    accountCount: 4,
    initialBalance: INITIAL,
    ackedDelta,
    unknownCount,
  });
  assert(lenient.ok, lenient.problems.join("; "));
});

Deno.test("checkBalances() rejects a changed sum, a missing row and a duplicate row", () => {
  const minted = freshRows(5);
  minted[4].balance += 7;
  const mintedReport = checkBalances(minted, { accountCount: 5, initialBalance: INITIAL });
  assert(!mintedReport.ok);
  assert(mintedReport.problems.some((problem) => problem.includes("sum")));

  const missing = freshRows(5).slice(1);
  const missingReport = checkBalances(missing, { accountCount: 5, initialBalance: INITIAL });
  assert(!missingReport.ok);
  assert(missingReport.problems.some((problem) => problem.includes("'0' is missing")));

  const duplicated = freshRows(5);
  duplicated[4] = { id: 3, balance: INITIAL };
  const duplicateReport = checkBalances(duplicated, { accountCount: 5, initialBalance: INITIAL });
  assert(!duplicateReport.ok);
  assert(duplicateReport.problems.some((problem) => problem.includes("twice")));
});

Deno.test("checkBalances() without deltas checks only rows and the sum", () => {
  const rows = freshRows(3);
  rows[0].balance -= 5;
  rows[1].balance += 5;
  const report = checkBalances(rows, { accountCount: 3, initialBalance: INITIAL });
  assert(report.ok);
  assertEquals(report.changedCount, 2);
});
