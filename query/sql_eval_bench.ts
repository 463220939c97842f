/**
 * /sql evaluation over a real datastore: a full scan, a filtered scan, COUNT, a projection and
 * a 2-table equi-join (hash join), on 100,000-row tables. Estimate: building a RowView per row
 * and testing one predicate is ~100-200 ns, so a 100k scan should take ~10-30 ms; the hash
 * join adds one Map insert and one lookup per row (~2x).
 */
import { Datastore } from "../storage/mod.ts";
import { compileSql, evaluateSelect } from "./sql_eval.ts";
import { datastoreSqlState } from "./sql_state.ts";
import { ST_VAR_SCHEMA } from "./system_tables.ts";
import { encodeRow, makeSchema } from "./_test_fixture.ts";

const ROWS = 100_000;
const ACCOUNT = makeSchema(4096, "account", [["id", { tag: "U64" }], ["balance", { tag: "I64" }]]);
const OWNER = makeSchema(4097, "owner", [["account_id", { tag: "U64" }], ["name", {
  tag: "String",
}]]);

const datastore = new Datastore([ACCOUNT, OWNER, ST_VAR_SCHEMA]);
const tx = datastore.beginMutTx();
for (let i = 0; i < ROWS; i++) {
  tx.insert(ACCOUNT.tableId, encodeRow(ACCOUNT, [BigInt(i), BigInt(i % 1000)]));
  tx.insert(OWNER.tableId, encodeRow(OWNER, [BigInt(i), `owner ${i}`]));
}
tx.commit();
const state = datastoreSqlState(datastore, {
  userTables: () => [],
  clients: () => [],
  rlsRules: () => [],
  views: () => [],
});
const context = { sender: 1n, isOwner: true };

function bench(name: string, sql: string, baseline = false): void {
  const plan = compileSql(sql, state, context);
  if (plan.kind !== "select") throw new Error(`${sql} is not a SELECT`);
  Deno.bench({ name, group: "sql", baseline, fn: () => void evaluateSelect(plan, state) });
}

bench("SELECT * (100k rows)", "SELECT * FROM account", true);
bench("WHERE balance < 10 (100k scanned, 1k out)", "SELECT * FROM account WHERE balance < 10");
bench("COUNT(*) (100k)", "SELECT COUNT(*) AS n FROM account");
bench("projection id (100k)", "SELECT id FROM account");
bench(
  "join 100k x 100k on id (hash join)",
  "SELECT owner.name, account.balance FROM account JOIN owner ON account.id = owner.account_id",
);
