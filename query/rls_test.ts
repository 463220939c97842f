import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { executePlan } from "./execute.ts";
import { checkSelect } from "./check.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import { applyRls, compileWithRls, resolveRlsRules, RlsRuleError } from "./rls.ts";
import { conformanceState, ID_A, ID_B, labelOf } from "./_test_fixture.ts";

const RULES = [
  "SELECT * FROM person WHERE ident = :sender",
  "SELECT * FROM person WHERE age = 30",
  "SELECT * FROM pet WHERE owner_id = 1",
];

function labels(sql: string, sender: bigint, isOwner = false): string[] {
  const state = conformanceState();
  const rules = resolveRlsRules(RULES, state);
  return compileWithRls(sql, state, { sender, isOwner }, rules)
    .flatMap((plan) => executePlan(plan, state))
    .map(labelOf).sort();
}

Deno.test("resolveRlsRules() groups rules by the table they protect", () => {
  const rules = resolveRlsRules(RULES, conformanceState());
  assertEquals([...rules.keys()], [1, 2]);
  assertEquals(rules.get(1), RULES.slice(0, 2));
});

Deno.test("resolveRlsRules() refuses bad rules with SpacetimeDB's wording", () => {
  const state = conformanceState();
  throws(
    () => resolveRlsRules(["SELECT * FROM vault"], state),
    (error: Error) =>
      error instanceof RlsRuleError &&
      error.message ===
        "failed to create row-level security: `SELECT * FROM vault`: Cannot define RLS rule on " +
          "private table: vault. Please make table public if you wish to restrict access using RLS.",
  );
  throws(
    () => resolveRlsRules(["SELECT * FROM nosuch"], state),
    /failed to create row-level security: `SELECT \* FROM nosuch`: no such table: `nosuch`/,
  );
  throws(
    () => resolveRlsRules(["SELECT name FROM person"], state),
    /Column projections are not supported in subscriptions/,
  );
  throws(
    () => resolveRlsRules(["SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id"], state),
    /does not support row-level security rules that join tables yet/,
  );
});

Deno.test("each rule is a fragment: OR-ed, a row two rules admit comes twice", () => {
  // A is P1 (age 30), so P1 passes both rules; P3 (age 30) the second only.
  assertEquals(labels("SELECT * FROM person", ID_A), ["P1", "P1", "P3"]);
  assertEquals(labels("SELECT * FROM person", ID_B), ["P1", "P2", "P3"]);
  assertEquals(labels("SELECT * FROM person WHERE id = 2", ID_A), []);
  assertEquals(labels("SELECT * FROM pet", ID_B), ["pet10", "pet11"]);
  assertEquals(labels("SELECT * FROM tag", ID_B), ["tag1", "tag3"]);
});

Deno.test("the owner bypasses RLS", () => {
  assertEquals(labels("SELECT * FROM person", ID_A, true), ["P1", "P2", "P3"]);
  assertEquals(labels("SELECT * FROM pet", ID_A, true), ["pet10", "pet11", "pet12", "pet13"]);
});

Deno.test(":sender in a rule is the caller: plans differ per caller", () => {
  const state = conformanceState();
  const rules = resolveRlsRules(RULES, state);
  const forA = compileWithRls(
    "SELECT * FROM person",
    state,
    { sender: ID_A, isOwner: false },
    rules,
  );
  const forB = compileWithRls(
    "SELECT * FROM person",
    state,
    { sender: ID_B, isOwner: false },
    rules,
  );
  assert(forA[0].key !== forB[0].key);
  assertEquals(forA[1].key, forB[1].key);
  assert(forA[0].usesSender);
});

Deno.test("in a join every instance of a protected table is restricted: one fragment per rule pair", () => {
  const state = conformanceState();
  const rules = resolveRlsRules(RULES, state);
  const checked = checkSelect(
    parseSubscriptionQuery("SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id"),
    state,
    { sender: ID_A, isOwner: false },
  );
  const fragments = applyRls(checked, state, { sender: ID_A, isOwner: false }, rules);
  // pet has one rule, person two: two fragments, each with the pet rule on instance 0 and a
  // person rule on instance 1.
  assertEquals(fragments.length, 2);
  const instancesRead = (expr: unknown): number[] =>
    JSON.stringify(expr, (_k, v) => typeof v === "bigint" ? String(v) : v)
      .match(/"instance":(\d)/g)!.map((m) => Number(m.at(-1))).sort();
  assertEquals(instancesRead(fragments[0].where), [0, 1]);
  assertEquals(instancesRead(fragments[1].where), [0, 1]);
  assert(fragments[0].usesSender && !fragments[1].usesSender);
  // The owner's query is untouched.
  assertEquals(applyRls(checked, state, { sender: ID_A, isOwner: true }, rules), [checked]);
});
