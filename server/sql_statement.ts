/**
 * One SQL statement against a database, as `/sql` runs it: admitted like any request (waits
 * out a module update), run by the database's engine with the caller's permissions, answered
 * once the state it read is durable unless `confirmed` is false. Shared by the HTTP `/sql`
 * route and the PostgreSQL wire protocol (server/pgwire/), so both see the same grammar,
 * permissions and limits.
 */
import type { Identity } from "../auth/mod.ts";
import { BadRequestError } from "../lib/errors.ts";
import {
  compileProductDecoder,
  type ProductType,
  type Typespace,
  type Value,
} from "../protocol/mod.ts";
import type { Database } from "./database_registry.ts";

export interface SqlStatementResult {
  /** Columns of the rows (the table's row type). */
  schema: ProductType;
  typespace: Typespace;
  /** Decoded rows, one value per column. */
  rows: Value[][];
  rowsInserted: number;
  rowsDeleted: number;
  rowsUpdated: number;
  totalDurationMicros: number;
}

/** Runs `sql`; a refused statement throws BadRequestError with the engine's message. */
export async function runSqlStatement(
  database: Database,
  request: { sql: string; caller: Identity; confirmed: boolean },
): Promise<SqlStatementResult> {
  const release = await database.admit();
  try {
    const started = performance.now();
    const result = await database.host.query({
      sql: request.sql,
      sender: request.caller.toBigInt(),
      isOwner: database.isOwner(request.caller),
    });
    // Errors too: every answer waits for the state it was computed from.
    if (request.confirmed) await database.whenDurable(result.txOffset);
    if (!result.ok || !result.rows) throw new BadRequestError(result.error ?? "query failed");
    // A view answers with its own row type (worker/views.ts).
    const table = database.module.tablesByName.get(result.rows.table) ??
      database.module.def.views.find((view) => view.name === result.rows!.table);
    if (!table) throw new Error(`query answered for unknown table "${result.rows.table}"`);
    const decode = compileProductDecoder(table.rowType, table.typespace);
    return {
      schema: table.rowType,
      typespace: table.typespace,
      rows: result.rows.rows.map((row) => decode(row) as Value[]),
      rowsInserted: 0,
      rowsDeleted: 0,
      rowsUpdated: 0,
      totalDurationMicros: Math.round((performance.now() - started) * 1000),
    };
  } finally {
    release();
  }
}
