/**
 * Worker side of `/sql` (and the PostgreSQL wire protocol): one statement of the /sql grammar
 * against the database's committed state. A SELECT reads between transactions; INSERT,
 * UPDATE, DELETE and SET run as a transaction of their own through the engine, so they are
 * logged, made durable and broadcast to subscribers like a reducer's commit (the batch loop in
 * worker_main.ts takes the commit with the engine's other commits).
 */
import {
  checkRowLimit,
  compileSql,
  evaluateSelect,
  executeDml,
  isSystemTableId,
  SqlError,
  type SqlState,
  type SqlWriteTx,
  ST_VAR_TABLE_ID,
  type SystemTableSource,
  type UserTableInfo,
  virtualSystemRows,
  virtualSystemSchema,
  virtualSystemTableId,
} from "../query/mod.ts";
import { DatastoreError, type MutTx } from "../storage/mod.ts";
import type { DatabaseEngine } from "./engine.ts";
import type { SqlRequest, SqlResult } from "./messages.ts";

export class SqlHost {
  readonly #engine: DatabaseEngine;
  #userTables: UserTableInfo[] | undefined;

  constructor(engine: DatabaseEngine) {
    this.#engine = engine;
  }

  run(request: SqlRequest): SqlResult {
    const engine = this.#engine;
    const context = { sender: request.sender, isOwner: request.isOwner };
    const state = this.#state();
    const empty = { rowsInserted: 0, rowsDeleted: 0, rowsUpdated: 0 };
    try {
      const plan = compileSql(request.sql, state, context);
      if (plan.kind === "select") {
        checkRowLimit(plan, state, context);
        const result = evaluateSelect(plan, state);
        return {
          kind: "sql",
          id: request.id,
          ok: true,
          columns: result.columns,
          typespace: result.typespace,
          rows: result.rows,
          ...empty,
          txOffset: engine.txOffset,
        };
      }
      const outcome = engine.runHostTransaction(
        request.sender,
        request.timestampMicros,
        (tx) => executeDml(plan, writeTx(tx)),
      );
      if (!outcome.ok) {
        return {
          kind: "sql",
          id: request.id,
          ok: false,
          error: errorText(outcome.error),
          ...empty,
          txOffset: outcome.txOffset,
        };
      }
      return {
        kind: "sql",
        id: request.id,
        ok: true,
        columns: { elements: [] },
        typespace: [],
        rows: [],
        ...outcome.value,
        txOffset: outcome.txOffset,
      };
    } catch (error) {
      return {
        kind: "sql",
        id: request.id,
        ok: false,
        error: errorText(error),
        ...empty,
        txOffset: engine.txOffset,
      };
    }
  }

  /** The module's tables with what the system tables say about them (cached: fixed per module). */
  #tableInfo(): UserTableInfo[] {
    if (this.#userTables) return this.#userTables;
    const module = this.#engine.module;
    this.#userTables = module.tables.map((schema) => {
      const def = module.def.tables.find((table) => table.name === schema.name);
      return {
        schema,
        constraintNames: def?.uniqueConstraints.map((c) => c.name) ?? [],
        sequenceNames: def?.sequences.map((s) => s.name) ?? [],
        columnAccessors: def?.columns.map((c) => c.sourceName) ?? [],
        schedule: def?.schedule === undefined ? undefined : {
          name: def.schedule.name,
          functionName: def.schedule.functionName,
          atColumn: def.schedule.atColumn,
        },
      };
    });
    return this.#userTables;
  }

  #state(): SqlState {
    const datastore = this.#engine.datastore;
    const source: SystemTableSource = {
      userTables: () => this.#tableInfo(),
      clients: () => this.#engine.clients(),
      rlsRules: () => [],
      views: () => [],
    };
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
        const system = virtualSystemRows(tableId, source, datastore.tables());
        if (system) return system;
        return datastore.schema(tableId).isEvent ? [] : datastore.committedRows(tableId);
      },
      rowCount: (tableId) => {
        if (isSystemTableId(tableId) && tableId !== ST_VAR_TABLE_ID) {
          return virtualSystemRows(tableId, source, datastore.tables())?.length ?? 0;
        }
        return datastore.committedCount(tableId);
      },
      rowLimit: () => rowLimit(datastore.committedRows(ST_VAR_TABLE_ID)),
    };
  }
}

/** `row_limit` from st_var's rows: (name String, value StVarValue); U64 is what SET writes. */
function rowLimit(rows: Uint8Array[]): bigint | undefined {
  for (const row of rows) {
    const view = new DataView(row.buffer, row.byteOffset, row.byteLength);
    const nameLength = view.getUint32(0, true);
    const name = new TextDecoder().decode(row.subarray(4, 4 + nameLength));
    if (name !== "row_limit") continue;
    const at = 4 + nameLength;
    const tag = row[at];
    return readVarNumber(tag, view, at + 1);
  }
  return undefined;
}

/** The StVarValue at `at` (after its tag) as an integer limit; non-numbers count as no limit. */
function readVarNumber(tag: number, view: DataView, at: number): bigint | undefined {
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

/** The datastore's transaction as the DML executor writes it. */
function writeTx(tx: MutTx): SqlWriteTx {
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

function errorText(error: unknown): string {
  if (error instanceof SqlError) return error.message;
  if (error instanceof DatastoreError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
