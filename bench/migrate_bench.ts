/**
 * Migrating a 1,000,000-row table by adding a column with a default (the datastore part of a
 * migration, as the database process runs it: every row copied with the default's bytes
 * appended, indexes rebuilt). Estimate: ~1 µs per row to copy and ~1 µs to insert with a
 * unique index, so ~2 s; memory: old and new tables side by side, ~2 × 1M × (row + index entry).
 *
 *   deno run -A bench/migrate_bench.ts [rows]
 */
import { encodeValueToBytes, type ModuleDef, type TableDef } from "../protocol/mod.ts";
import { Datastore } from "../storage/mod.ts";
import { planMigration } from "../worker/auto_migrate.ts";
import { migrateDatastore } from "../worker/migrate_datastore.ts";
import { type ModuleInfo, tableSchemas } from "../worker/module_info.ts";

const rowCount = Number(Deno.args[0] ?? 1_000_000);

function accounts(withAge: boolean): ModuleDef {
  const columns = [
    {
      colId: 0,
      name: "id",
      sourceName: "id",
      type: { tag: "U32" as const },
      defaultValue: undefined,
    },
    {
      colId: 1,
      name: "balance",
      sourceName: "balance",
      type: { tag: "I64" as const },
      defaultValue: undefined,
    },
  ];
  if (withAge) {
    columns.push({
      colId: 2,
      name: "age",
      sourceName: "age",
      type: { tag: "U32" as const },
      defaultValue: encodeValueToBytes({ tag: "U32" }, 18) as unknown as undefined,
    });
  }
  const table: TableDef = {
    name: "accounts",
    sourceName: "accounts",
    localName: "accounts",
    namespace: "",
    productTypeRef: 0,
    rowType: { elements: columns.map((c) => ({ name: c.name, algebraicType: c.type })) },
    typespace: [],
    columns,
    primaryKey: 0,
    indexes: [{
      name: "accounts_id_idx_btree",
      sourceName: "accounts_id_idx_btree",
      accessorName: "id",
      algorithm: "btree",
      columns: [0],
    }],
    uniqueConstraints: [{ name: "accounts_id_key", columns: [0] }],
    sequences: [],
    schedule: undefined,
    tableType: "User",
    access: "Public",
    isPublic: true,
    isEvent: false,
  };
  return {
    namespace: "",
    caseConversionPolicy: "SnakeCase",
    typespace: [],
    sourceTypespace: [],
    types: [],
    tables: [table],
    reducers: [],
    procedures: [],
    views: [],
    rowLevelSecurity: [],
    httpHandlers: [],
    httpRoutes: [],
    lifecycle: {},
    submodules: [],
  };
}

const before = accounts(false);
const after = accounts(true);
const info = (def: ModuleDef) => ({ def, tables: tableSchemas(def) }) as ModuleInfo;
const store = new Datastore(tableSchemas(before));
const tableId = tableSchemas(before)[0].tableId;
const chunk: Uint8Array[] = [];
for (let id = 0; id < rowCount; id++) {
  const row = new Uint8Array(12);
  const view = new DataView(row.buffer);
  view.setUint32(0, id, true);
  view.setBigInt64(4, BigInt(id) * 10n, true);
  chunk.push(row);
  if (chunk.length === 65_536 || id === rowCount - 1) {
    store.replay({ tables: [{ tableId, inserts: chunk.splice(0), deletes: [] }], sequences: [] });
  }
}
const planned = planMigration(before, after);
if (!planned.ok) throw new Error(planned.errors.join("\n"));

const rssMiB = () => Deno.memoryUsage().rss / 2 ** 20;
const rssBefore = rssMiB();
let peak = rssBefore;
const sampler = setInterval(() => (peak = Math.max(peak, rssMiB())), 5);
const started = performance.now();
// Sampling needs the event loop: the migration runs in one synchronous call, so the peak is
// also read right after it (the old datastore is still alive then).
const migrated = migrateDatastore(store, info(before), info(after), planned.plan);
const durationMs = performance.now() - started;
peak = Math.max(peak, rssMiB());
clearInterval(sampler);
const newTableId = tableSchemas(after)[0].tableId;
if (migrated.committedCount(newTableId) !== rowCount) throw new Error("rows lost");
console.log(
  JSON.stringify({
    bench: "migrate add column with default",
    rows: rowCount,
    durationMs: Math.round(durationMs),
    rssBeforeMiB: Math.round(rssBefore),
    rssPeakMiB: Math.round(peak),
    deno: Deno.version.deno,
  }),
);
