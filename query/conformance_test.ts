import { deepStrictEqual, ok } from "node:assert/strict";
import { runOneOffQuery } from "./execute.ts";
import { SqlError } from "./sql_error.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import { conformanceState, ID_A, ID_B, ID_C, ID_O, identityHex, labelOf } from "./_test_fixture.ts";

interface Case {
  sql: string;
  as?: "A" | "B" | "C" | "O";
  rows?: string[];
  error?: string;
  exact?: string;
  /** The one-off query's rows when they differ from the subscription's outcome. */
  oneOff?: string[];
  /** Why we deliberately differ from SpacetimeDB here (documentation only). */
  divergence?: string;
}

const file = new URL("../tests/conformance/query_subscriptions.json", import.meta.url);
const { cases } = JSON.parse(await Deno.readTextFile(file)) as { cases: Case[] };
const IDENTITIES = { A: ID_A, B: ID_B, C: ID_C, O: ID_O };

function substitute(sql: string): string {
  return sql.replaceAll("<I_A>", identityHex(ID_A)).replaceAll("<I_B>", identityHex(ID_B))
    .replaceAll("<I_C>", identityHex(ID_C));
}

function outcome(run: () => Uint8Array[]): { rows: string[] } | { error: string } {
  try {
    return { rows: run().map(labelOf).sort() };
  } catch (error) {
    ok(error instanceof SqlError, `expected SqlError, got ${String(error)}`);
    return { error: error.message };
  }
}

Deno.test("the subscription conformance cases are accepted or rejected as recorded", () => {
  ok(cases.length > 100);
  const failures: string[] = [];
  for (const c of cases) {
    const who = c.as ?? "A";
    const context = { sender: IDENTITIES[who], isOwner: who === "O" };
    const sql = substitute(c.sql);
    const state = conformanceState();
    const oneOff = outcome(() => runOneOffQuery(sql, state, context).rows);
    const index = new SubscriptionIndex(state);
    const subscribed = outcome(() => index.register(sql, context).initialRows);
    const label = `${JSON.stringify(c.sql)} as ${who}`;
    try {
      if (c.oneOff !== undefined) {
        deepStrictEqual(oneOff, { rows: [...c.oneOff].sort() }, "one-off rows");
      } else deepStrictEqual(subscribed, oneOff, "one-off and subscribe disagree");
      if (c.rows !== undefined) deepStrictEqual(subscribed, { rows: [...c.rows].sort() });
      else if (c.exact !== undefined) deepStrictEqual(subscribed, { error: c.exact });
      else {
        ok("error" in subscribed, `expected an error, got rows ${JSON.stringify(subscribed)}`);
        ok(subscribed.error.includes(c.error!), `"${subscribed.error}" lacks "${c.error}"`);
      }
    } catch (error) {
      failures.push(`${label}: ${(error as Error).message.split("\n").slice(0, 6).join(" ")}`);
    }
  }
  deepStrictEqual(failures, []);
});
