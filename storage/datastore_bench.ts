/**
 * Bank `transfer` on table accounts {id: u32 pk, balance: i64} with 100k rows: two point
 * lookups by pk, two updates, commit. The baseline runs the same logic on a plain Map of row
 * bytes with an undo log and delta arrays (deno-feasibility.md §5 measured ~1.95M tx/s for a
 * Map of objects). Estimate: 2 Map gets + 2 row copies + ~6 small key reads + delta arrays,
 * ~0.3-0.6 µs per transfer, so the datastore path should clear 1M tx/s.
 */
import { Datastore } from "./datastore.ts";
import type { TableSchema } from "./schema.ts";
import { seededRandom } from "../lib/random.ts";

const ACCOUNT_COUNT = 100_000;
const PAIR_COUNT = 1 << 16;
const TABLE_ID = 1;
const PK_INDEX_ID = 1;
const START_BALANCE = 1_000_000;

const accounts: TableSchema = {
  tableId: TABLE_ID,
  name: "accounts",
  sourceName: "accounts",
  rowType: {
    elements: [
      { name: "id", algebraicType: { tag: "U32" } },
      { name: "balance", algebraicType: { tag: "I64" } },
    ],
  },
  typespace: [],
  primaryKey: [0],
  indexes: [{
    indexId: PK_INDEX_ID,
    name: "accounts_id_idx_btree",
    sourceName: "accounts_id_idx_btree",
    accessorName: "id",
    algorithm: "btree",
    columns: [0],
    unique: true,
  }],
  uniqueConstraints: [[0]],
  sequences: [],
  isPublic: true,
  isEvent: false,
};

function writeU32(bytes: Uint8Array, pos: number, value: number): void {
  bytes[pos] = value;
  bytes[pos + 1] = value >>> 8;
  bytes[pos + 2] = value >>> 16;
  bytes[pos + 3] = value >>> 24;
}

/** Balance as a number (balances stay far below 2^53 here). */
function readBalance(row: Uint8Array): number {
  const low = (row[4] | (row[5] << 8) | (row[6] << 16) | (row[7] << 24)) >>> 0;
  const high = row[8] | (row[9] << 8) | (row[10] << 16) | (row[11] << 24);
  return high * 4294967296 + low;
}

function writeBalance(row: Uint8Array, balance: number): void {
  writeU32(row, 4, balance >>> 0);
  writeU32(row, 8, Math.floor(balance / 4294967296));
}

function accountRow(id: number, balance: number): Uint8Array {
  const row = new Uint8Array(12);
  writeU32(row, 0, id);
  writeBalance(row, balance);
  return row;
}

const random = seededRandom(42);
const pairs = new Uint32Array(PAIR_COUNT * 2);
for (let i = 0; i < pairs.length; i++) pairs[i] = Math.floor(random.next() * ACCOUNT_COUNT);

// --- datastore path ---------------------------------------------------------------------------
const datastore = new Datastore([accounts]);
{
  const tx = datastore.beginMutTx();
  for (let id = 0; id < ACCOUNT_COUNT; id++) tx.insert(TABLE_ID, accountRow(id, START_BALANCE));
  tx.commit();
}
const keyBuffer = new Uint8Array(4);
const rowBuffer = new Uint8Array(12);
let datastoreStep = 0;

function datastoreTransfer(amount: number): void {
  const at = (datastoreStep++ & (PAIR_COUNT - 1)) * 2;
  const from = pairs[at];
  const to = pairs[at + 1];
  const tx = datastore.beginMutTx();
  writeU32(keyBuffer, 0, from);
  const fromRow = tx.indexScanPoint(PK_INDEX_ID, keyBuffer)[0];
  writeU32(keyBuffer, 0, to);
  const toRow = tx.indexScanPoint(PK_INDEX_ID, keyBuffer)[0];
  const fromBalance = readBalance(fromRow);
  if (fromBalance < amount) {
    tx.rollback();
    return;
  }
  rowBuffer.set(fromRow);
  writeBalance(rowBuffer, fromBalance - amount);
  tx.update(TABLE_ID, PK_INDEX_ID, rowBuffer);
  const toBalance = from === to ? fromBalance - amount : readBalance(toRow);
  rowBuffer.set(toRow);
  writeBalance(rowBuffer, toBalance + amount);
  tx.update(TABLE_ID, PK_INDEX_ID, rowBuffer);
  tx.commit();
}

// --- plain Map baseline -----------------------------------------------------------------------
const plain = new Map<number, Uint8Array>();
for (let id = 0; id < ACCOUNT_COUNT; id++) plain.set(id, accountRow(id, START_BALANCE));
let plainStep = 0;

function plainTransfer(amount: number): unknown {
  const at = (plainStep++ & (PAIR_COUNT - 1)) * 2;
  const from = pairs[at];
  const to = pairs[at + 1];
  const undo: [number, Uint8Array][] = [];
  const inserts: Uint8Array[] = [];
  const deletes: Uint8Array[] = [];
  const fromRow = plain.get(from)!;
  const fromBalance = readBalance(fromRow);
  if (fromBalance < amount) return null;
  const newFrom = fromRow.slice();
  writeBalance(newFrom, fromBalance - amount);
  undo.push([from, fromRow]);
  plain.set(from, newFrom);
  deletes.push(fromRow);
  inserts.push(newFrom);
  const toRow = plain.get(to)!;
  const newTo = toRow.slice();
  writeBalance(newTo, readBalance(toRow) + amount);
  undo.push([to, toRow]);
  plain.set(to, newTo);
  deletes.push(toRow);
  inserts.push(newTo);
  return { tables: [{ tableId: TABLE_ID, inserts, deletes }], sequences: [] };
}

/** Transactions per bench iteration: per-call timing of a sub-microsecond body is noise. */
const BATCH = 1000;

Deno.bench({
  name: "1000 transfers on plain Map of row bytes",
  group: "transfer",
  baseline: true,
  fn: () => {
    for (let i = 0; i < BATCH; i++) plainTransfer(1);
  },
});

// Context: the deno-feasibility.md §5 shape (objects, not bytes), where rows need no allocation
// of an ArrayBuffer.
const objects = new Map<number, { id: number; balance: number }>();
for (let id = 0; id < ACCOUNT_COUNT; id++) objects.set(id, { id, balance: START_BALANCE });
let objectStep = 0;

function objectTransfer(amount: number): unknown {
  const at = (objectStep++ & (PAIR_COUNT - 1)) * 2;
  const from = pairs[at];
  const to = pairs[at + 1];
  const undo: [number, { id: number; balance: number }][] = [];
  const inserts: unknown[] = [];
  const deletes: unknown[] = [];
  const fromRow = objects.get(from)!;
  if (fromRow.balance < amount) return null;
  const newFrom = { id: from, balance: fromRow.balance - amount };
  undo.push([from, fromRow]);
  objects.set(from, newFrom);
  deletes.push(fromRow);
  inserts.push(newFrom);
  const toRow = objects.get(to)!;
  const newTo = { id: to, balance: toRow.balance + amount };
  undo.push([to, toRow]);
  objects.set(to, newTo);
  deletes.push(toRow);
  inserts.push(newTo);
  return { tables: [{ tableId: TABLE_ID, inserts, deletes }], sequences: [] };
}

Deno.bench({
  name: "1000 transfers on plain Map of objects (no bytes)",
  group: "transfer",
  fn: () => {
    for (let i = 0; i < BATCH; i++) objectTransfer(1);
  },
});

Deno.bench({
  name: "1000 transfers on Datastore (2 pk lookups, 2 updates, commit)",
  group: "transfer",
  fn: () => {
    for (let i = 0; i < BATCH; i++) datastoreTransfer(1);
  },
});

Deno.bench({
  name: "1000 inserts of a row with u64 autoinc pk, each committed",
  group: "insert",
  fn: (() => {
    const store = new Datastore([{
      ...accounts,
      rowType: {
        elements: [
          { name: "id", algebraicType: { tag: "U64" } },
          { name: "balance", algebraicType: { tag: "I64" } },
        ],
      },
      sequences: [{ column: 0, start: undefined, min: undefined, max: undefined, increment: 1n }],
    }]);
    const row = new Uint8Array(16);
    return () => {
      for (let i = 0; i < BATCH; i++) {
        const tx = store.beginMutTx();
        tx.insert(TABLE_ID, row);
        tx.commit();
      }
    };
  })(),
});
