/**
 * Memory per 1,000,000 rows, measured in one Deno process on the datastore directly (no server):
 *   accounts  {id: u32 pk, balance: i64}                       the keynote table
 *   ledger    {id: u64 pk auto-inc, from: u32, to: u32, amount: i64}   the append-heavy table
 *   messages  {id: u64 pk auto-inc, sender: string, text: string}     a table with strings
 * Rows go in through transactions of 10,000 inserts each (sequences fire as in a module). The
 * figure is the V8 heap (used + external array buffers) after a forced GC, minus the figure
 * before, and the wall time of each snapshot export is printed too.
 *
 *   deno run -A --v8-flags=--expose-gc bench/table_memory.ts [--rows 1000000]
 * Each table is measured in a child process of its own (`--table NAME`), so one table's garbage
 * never lands in another's figure.
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { Datastore } from "../storage/datastore.ts";
import type { TableSchema } from "../storage/schema.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rows: { type: "string", default: "1000000" },
    table: { type: "string", default: "" },
  },
});
const ROWS = Number(values.rows);
const CHUNK = 10_000;

function schema(
  tableId: number,
  name: string,
  columns: Array<[string, string]>,
  sequence: boolean,
): TableSchema {
  return {
    tableId,
    name,
    sourceName: name,
    rowType: {
      elements: columns.map(([column, tag]) => ({
        name: column,
        algebraicType: { tag } as never,
      })),
    },
    typespace: [],
    primaryKey: [0],
    indexes: [{
      indexId: tableId,
      name: `${name}_id_idx_btree`,
      sourceName: `${name}_id_idx_btree`,
      accessorName: "id",
      algorithm: "btree",
      columns: [0],
      unique: true,
    }],
    uniqueConstraints: [[0]],
    sequences: sequence
      ? [{ column: 0, start: undefined, min: undefined, max: undefined, increment: 1n }]
      : [],
    isPublic: true,
    isEvent: false,
  };
}

const tables: Array<{ schema: TableSchema; row(i: number): Uint8Array }> = [
  {
    schema: schema(1, "accounts", [["id", "U32"], ["balance", "I64"]], false),
    row(i) {
      const bytes = new Uint8Array(12);
      const view = new DataView(bytes.buffer);
      view.setUint32(0, i, true);
      view.setBigInt64(4, 1_000_000_000n, true);
      return bytes;
    },
  },
  {
    schema: schema(2, "ledger", [["id", "U64"], ["from", "U32"], ["to", "U32"], [
      "amount",
      "I64",
    ]], true),
    row(i) {
      const bytes = new Uint8Array(24); // id 0: the sequence fills it
      const view = new DataView(bytes.buffer);
      view.setUint32(8, i % 100_000, true);
      view.setUint32(12, (i + 1) % 100_000, true);
      view.setBigInt64(16, 1n, true);
      return bytes;
    },
  },
  {
    schema: schema(3, "messages", [["id", "U64"], ["sender", "String"], ["text", "String"]], true),
    row(i) {
      const encoder = new TextEncoder();
      const sender = encoder.encode(`user-${i % 1000}`);
      const text = encoder.encode(`message number ${i}: hello there, how are you?`);
      const bytes = new Uint8Array(8 + 4 + sender.length + 4 + text.length);
      const view = new DataView(bytes.buffer);
      view.setUint32(8, sender.length, true);
      bytes.set(sender, 12);
      view.setUint32(12 + sender.length, text.length, true);
      bytes.set(text, 16 + sender.length);
      return bytes;
    },
  },
];

// deno-lint-ignore no-explicit-any
const gc = (globalThis as any).gc as (() => void) | undefined;
if (!gc) throw new Error("Run with --v8-flags=--expose-gc");

/** User + system CPU milliseconds of a `cpuUsage(previous)` difference. */
function cpuMs(usage: { user: number; system: number }): number {
  return (usage.user + usage.system) / 1000;
}

function heapBytes(): number {
  gc!();
  gc!();
  const usage = Deno.memoryUsage();
  return usage.heapUsed + usage.external;
}

if (!values.table) {
  console.log(`Deno ${Deno.version.deno}, ${ROWS.toLocaleString("en-US")} rows per table`);
  for (const table of tables) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        import.meta.filename!,
        "--rows",
        String(ROWS),
        "--table",
        table.schema.name,
      ],
      stderr: "inherit",
    }).output();
    Deno.stdout.writeSync(output.stdout);
  }
  Deno.exit(0);
}
for (const table of tables.filter((t) => t.schema.name === values.table)) {
  const before = heapBytes();
  const datastore = new Datastore([table.schema]);
  let inserted = 0;
  const insertStart = performance.now();
  while (inserted < ROWS) {
    const tx = datastore.beginMutTx();
    const end = Math.min(ROWS, inserted + CHUNK);
    for (let i = inserted; i < end; i++) tx.insert(table.schema.tableId, table.row(i));
    tx.commit();
    inserted = end;
  }
  const insertMs = performance.now() - insertStart;
  const after = heapBytes();
  // A full (mark-compact) GC with the table alive: what every major GC of the database process
  // costs on top of its other objects (the pause that can land inside any transaction).
  let fullGcMs = Infinity;
  for (let i = 0; i < 3; i++) {
    const gcStart = performance.now();
    gc!();
    fullGcMs = Math.min(fullGcMs, performance.now() - gcStart);
  }
  const exportStart = performance.now();
  const state = datastore.exportState();
  const exportMs = performance.now() - exportStart;
  // The way a database sends a snapshot now: capture (copy-on-write), then 256 KiB pieces (SNAPSHOT_PIECE_BYTES), each
  // its own macrotask; the longest of these is the longest pause a snapshot causes.
  const captureStart = performance.now();
  const cursor = datastore.captureState();
  const captureMs = performance.now() - captureStart;
  let pieceMaxMs = 0;
  let pieces = 0;
  const pieceMs: number[] = [];
  for (;;) {
    const pieceStart = performance.now();
    const piece = cursor.next(512 * 1024);
    pieceMs.push(performance.now() - pieceStart);
    pieceMaxMs = Math.max(pieceMaxMs, performance.now() - pieceStart);
    if (piece === null) break;
    pieces++;
  }
  pieceMs.sort((a, b) => a - b);
  cursor.release();
  // What a restart with this snapshot spends loading it (rows, keys, indexes).
  const importStart = performance.now();
  const importCpu = cpuUsage();
  Datastore.importState([table.schema], state);
  const importCpuMs = cpuMs(cpuUsage(importCpu));
  const importMs = performance.now() - importStart;
  console.log(
    `${table.schema.name}: ${((after - before) / ROWS).toFixed(1)} bytes per row (${
      ((after - before) / 2 ** 20 * 1e6 / ROWS).toFixed(1)
    } MiB per 1,000,000 rows); insert ${(insertMs * 1000 / ROWS).toFixed(2)} µs per row; full GC ${
      fullGcMs.toFixed(1)
    } ms; ` +
      `snapshot in one piece ${exportMs.toFixed(0)} ms for ${
        (state.length / 2 ** 20).toFixed(1)
      } MiB; in pieces: capture ${captureMs.toFixed(2)} ms, ${pieces} pieces, median ${
        pieceMs[pieceMs.length >> 1].toFixed(1)
      } ms, longest ${pieceMaxMs.toFixed(1)} ms; snapshot load ${importMs.toFixed(0)} ms (CPU ${
        importCpuMs.toFixed(0)
      } ms)`,
  );
  // Keep it alive until measured; drop before the next table.
  if (datastore.committedCount(table.schema.tableId) !== ROWS) throw new Error("row count");
}
