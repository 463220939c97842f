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
  /** Columns of the rows: a SELECT's projection (a table's row type for `*`); none for DML. */
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
    const result = await database.host.sql({
      sql: request.sql,
      sender: request.caller.toBigInt(),
      isOwner: database.isOwner(request.caller),
      timestampMicros: BigInt(Date.now()) * 1000n,
    });
    // Only a write answers with no columns (every SELECT has at least one).
    const wrote = result.ok && result.columns?.elements.length === 0;
    // Errors too: every answer waits for the state it was computed from. A write is durable
    // before it is acknowledged, whatever `confirmed` says.
    if (request.confirmed || wrote) await database.whenDurable(result.txOffset);
    if (!result.ok) throw new BadRequestError(result.error ?? "query failed");
    const schema = result.columns ?? { elements: [] };
    const typespace = result.typespace ?? [];
    const decode = compileProductDecoder(schema, typespace);
    return {
      schema,
      typespace,
      rows: (result.rows ?? []).map((row) => decode(row) as Value[]),
      rowsInserted: result.rowsInserted,
      rowsDeleted: result.rowsDeleted,
      rowsUpdated: result.rowsUpdated,
      totalDurationMicros: Math.round((performance.now() - started) * 1000),
    };
  } finally {
    release();
  }
}
