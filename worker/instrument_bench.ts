/**
 * Cost of the inserted tick calls (worker/instrument.ts + worker/budget.ts).
 *
 * Estimate: a tick is a call to a constant global that V8 inlines, then one decrement and one
 * compare; the clock is read every few thousand ticks. A tight loop of ~1 ns per iteration
 * might slow down by 30-100%; a transfer-like function doing Map lookups and allocations
 * (~100-300 ns) by 1-5%.
 */
import { createBudget } from "./budget.ts";
import { instrumentModule } from "./instrument.ts";

const TICK_NAME = "__lc_tick_bench";
const budget = createBudget({ monotonicMs: () => performance.now() });
// As in the sandbox: a non-writable, non-configurable global the optimiser can treat as constant.
Object.defineProperty(globalThis, TICK_NAME, { value: budget.tick });

const WORKLOAD = `
export function tightLoop(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + i * 7) | 0;
  return s;
}

function readRow(table, id) {
  const row = table.get(id);
  if (row === undefined) throw new Error("no row " + id);
  return row;
}

export function transfer(table, undo, from, to, amount) {
  const a = readRow(table, from);
  const b = readRow(table, to);
  if (a.balance < amount) return false;
  const a2 = { id: a.id, owner: a.owner, team: a.team, balance: a.balance - amount };
  const b2 = { id: b.id, owner: b.owner, team: b.team, balance: b.balance + amount };
  table.set(from, a2);
  table.set(to, b2);
  undo.push(a, b);
  return true;
}
`;

type Workload = {
  tightLoop(n: number): number;
  transfer(
    table: Map<number, Row>,
    undo: Row[],
    from: number,
    to: number,
    amount: number,
  ): boolean;
};
interface Row {
  id: number;
  owner: string;
  team: number;
  balance: number;
}

async function load(source: string): Promise<Workload> {
  const url = `data:text/javascript,${encodeURIComponent(source)}`;
  return await import(url) as Workload;
}

const plain = await load(WORKLOAD);
const instrumented = await load(instrumentModule(WORKLOAD, { tickName: TICK_NAME }));

const ROWS = 10_000;
function makeTable(): Map<number, Row> {
  const table = new Map<number, Row>();
  for (let id = 0; id < ROWS; id++) {
    table.set(id, { id, owner: `owner${id}`, team: id % 16, balance: 1_000_000 });
  }
  return table;
}
const pairs = new Uint32Array(2 * 4096);
for (let i = 0; i < pairs.length; i++) pairs[i] = (i * 2654435761) % ROWS;

function runTransfers(workload: Workload, table: Map<number, Row>): void {
  const undo: Row[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    workload.transfer(table, undo, pairs[i], pairs[i + 1], 1);
  }
}

const LOOP_N = 1_000_000;
const plainTable = makeTable();
const instrumentedTable = makeTable();

Deno.bench("tight loop, 1M iterations, plain", { group: "tight-loop", baseline: true }, () => {
  plain.tightLoop(LOOP_N);
});
Deno.bench("tight loop, 1M iterations, instrumented", { group: "tight-loop" }, () => {
  budget.start(60_000);
  instrumented.tightLoop(LOOP_N);
  budget.stop();
});
Deno.bench("4096 transfers, plain", { group: "transfer", baseline: true }, () => {
  runTransfers(plain, plainTable);
});
Deno.bench("4096 transfers, instrumented", { group: "transfer" }, () => {
  budget.start(60_000);
  runTransfers(instrumented, instrumentedTable);
  budget.stop();
});
