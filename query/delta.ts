/**
 * Transaction deltas and how a plan turns them into result deltas (query-subscriptions.md
 * §2.4, §2.5). For a single-table query the result delta is the filtered table delta; no
 * netting is needed because the datastore already nets each transaction.
 */
import { fragmentMatches, type QueryPlan } from "./plan.ts";

/** The net change of one table in one transaction (row bytes; duplicates are multiplicities). */
export interface TableDelta {
  tableId: number;
  inserts: Uint8Array[];
  deletes: Uint8Array[];
}
export interface TxDelta {
  tables: TableDelta[];
}
export interface QueryDelta {
  inserts: Uint8Array[];
  deletes: Uint8Array[];
}

/** The change of one plan's result for a transaction, without any routing (the reference). */
export function planDelta(plan: QueryPlan, delta: TxDelta): QueryDelta {
  const out: QueryDelta = { inserts: [], deletes: [] };
  for (const fragment of plan.fragments) {
    if (fragment.never) continue;
    for (const table of delta.tables) {
      if (table.tableId !== fragment.table.tableId) continue;
      for (const row of table.inserts) if (fragmentMatches(fragment, row)) out.inserts.push(row);
      for (const row of table.deletes) if (fragmentMatches(fragment, row)) out.deletes.push(row);
    }
  }
  return out;
}
