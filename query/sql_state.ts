/**
 * The datastore as /sql reads and writes it: committed rows of user tables and `st_var`, the
 * computed system tables, the row limit, and a MutTx seen as the DML executor's write side.
 */
import type { Datastore, MutTx } from "../storage/mod.ts";
import type { SqlState, SqlWriteTx } from "./sql_eval.ts";
import {
  isSystemTableId,
  ST_VAR_TABLE_ID,
  type SystemTableSource,
  virtualSystemRows,
  virtualSystemSchema,
  virtualSystemTableId,
} from "./system_tables.ts";

export function datastoreSqlState(datastore: Datastore, source: SystemTableSource): SqlState {
  const systemRows = (tableId: number) =>
    virtualSystemRows(tableId, source, datastore.tables()) ?? [];
  return {
    tableIdFromName: (name) => virtualSystemTableId(name) ?? datastore.tableIdFromName(name),
    schema: (tableId) => {
      const system = virtualSystemSchema(tableId);
      if (system) return system;
      try {
        return datastore.schema(tableId);
      } catch {
        return undefined;
      }
    },
    rows: (tableId) => {
      if (virtualSystemSchema(tableId)) return systemRows(tableId);
      return datastore.schema(tableId).isEvent ? [] : datastore.committedRows(tableId);
    },
    rowCount: (tableId) => {
      if (isSystemTableId(tableId) && tableId !== ST_VAR_TABLE_ID) {
        return systemRows(tableId).length;
      }
      return datastore.committedCount(tableId);
    },
    rowLimit: () => rowLimit(datastore.committedRows(ST_VAR_TABLE_ID)),
  };
}

/** `SET row_limit`'s value (st_var), if set. */
export function datastoreRowLimit(datastore: Datastore): bigint | undefined {
  return rowLimit(datastore.committedRows(ST_VAR_TABLE_ID));
}

/** `row_limit` from st_var's rows (name String, value StVarValue); SET writes a U64. */
function rowLimit(rows: Uint8Array[]): bigint | undefined {
  for (const row of rows) {
    const view = new DataView(row.buffer, row.byteOffset, row.byteLength);
    const nameLength = view.getUint32(0, true);
    const name = new TextDecoder().decode(row.subarray(4, 4 + nameLength));
    if (name !== "row_limit") continue;
    const at = 4 + nameLength;
    return varInteger(row[at], view, at + 1);
  }
  return undefined;
}

/** The StVarValue after its tag as an integer; other variants mean no limit. */
function varInteger(tag: number, view: DataView, at: number): bigint | undefined {
  switch (tag) {
    case 1:
      return BigInt(view.getInt8(at));
    case 2:
      return BigInt(view.getUint8(at));
    case 3:
      return BigInt(view.getInt16(at, true));
    case 4:
      return BigInt(view.getUint16(at, true));
    case 5:
      return BigInt(view.getInt32(at, true));
    case 6:
      return BigInt(view.getUint32(at, true));
    case 7:
      return view.getBigInt64(at, true);
    case 8:
      return view.getBigUint64(at, true);
    default:
      return undefined;
  }
}

/** The datastore's open transaction as the DML executor writes it. */
export function mutTxWriter(tx: MutTx): SqlWriteTx {
  return {
    scan: (tableId) => tx.scan(tableId),
    insert: (tableId, row) => {
      const before = tx.count(tableId);
      tx.insert(tableId, row);
      return tx.count(tableId) > before;
    },
    delete: (tableId, rows) => {
      if (rows.length === 0) return 0;
      let bytes = 4;
      for (const row of rows) bytes += row.length;
      const relation = new Uint8Array(bytes);
      new DataView(relation.buffer).setUint32(0, rows.length, true);
      let at = 4;
      for (const row of rows) {
        relation.set(row, at);
        at += row.length;
      }
      return tx.deleteByRelation(tableId, relation);
    },
  };
}
