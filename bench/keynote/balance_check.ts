/**
 * The check run against every system after its load: the table still has exactly one row per
 * account, the summed balance is unchanged, and no acknowledged transfer was lost.
 *
 * "Not lost" is checked per account: its balance must equal the initial balance plus the net of
 * every acknowledged transfer touching it, give or take one unit per transfer touching it whose
 * outcome the client never learned (timeouts, failures). With no such transfers the check is exact.
 */

export interface AccountRow {
  id: number;
  balance: number;
}

export interface BalanceExpectation {
  accountCount: number;
  initialBalance: number;
  /** Per account id, net amount of acknowledged transfers (from the load driver). */
  ackedDelta?: Int32Array;
  /** Per account id, transfers with an unknown outcome; each allows `amount` of slack. */
  unknownCount?: Int32Array;
  /** Amount per transfer; default 1. */
  amount?: number;
}

export interface BalanceReport {
  ok: boolean;
  rowCount: number;
  sum: number;
  expectedSum: number;
  /** Accounts whose balance differs from the initial one (shows the load really wrote). */
  changedCount: number;
  /** Accounts whose balance contradicts the acknowledged transfers. */
  mismatchCount: number;
  /** Human-readable problems, at most `PROBLEMS_SHOWN_MAX`. */
  problems: string[];
}

const PROBLEMS_SHOWN_MAX = 10;

export function checkBalances(
  rows: readonly AccountRow[],
  expect: BalanceExpectation,
): BalanceReport {
  const { accountCount, initialBalance } = expect;
  const amount = expect.amount ?? 1;
  const problems: string[] = [];
  const note = (problem: string) => {
    if (problems.length < PROBLEMS_SHOWN_MAX) problems.push(problem);
  };
  const seen = new Uint8Array(accountCount);
  let sum = 0;
  let changedCount = 0;
  let mismatchCount = 0;
  let invalid = false;
  for (const row of rows) {
    if (!Number.isSafeInteger(row.balance)) {
      note(`Account '${row.id}' has a non-integer balance '${row.balance}'`);
      invalid = true;
      continue;
    }
    sum += row.balance;
    if (!Number.isInteger(row.id) || row.id < 0 || row.id >= accountCount) {
      note(`Unexpected account id '${row.id}'`);
      invalid = true;
      continue;
    }
    if (seen[row.id]) {
      note(`Account '${row.id}' appears twice`);
      invalid = true;
      continue;
    }
    seen[row.id] = 1;
    if (row.balance !== initialBalance) changedCount++;
    if (expect.ackedDelta) {
      const expected = initialBalance + expect.ackedDelta[row.id];
      const slack = (expect.unknownCount?.[row.id] ?? 0) * amount;
      if (Math.abs(row.balance - expected) > slack) {
        mismatchCount++;
        note(
          `Account '${row.id}' holds '${row.balance}', acknowledged transfers give '${expected}'` +
            (slack > 0 ? ` (± ${slack})` : ""),
        );
      }
    }
  }
  const expectedSum = accountCount * initialBalance;
  if (rows.length !== accountCount) note(`Expected ${accountCount} rows, found ${rows.length}`);
  for (let id = 0, missing = 0; id < accountCount && rows.length < accountCount; id++) {
    if (!seen[id] && missing++ < 3) note(`Account '${id}' is missing`);
  }
  if (sum !== expectedSum) note(`Balances sum to '${sum}', expected '${expectedSum}'`);
  const ok = !invalid && rows.length === accountCount && sum === expectedSum &&
    mismatchCount === 0;
  return { ok, rowCount: rows.length, sum, expectedSum, changedCount, mismatchCount, problems };
}
