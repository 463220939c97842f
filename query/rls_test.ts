import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { executePlan } from "./execute.ts";
import { checkSelect } from "./check.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import { applyRls, compileWithRls, resolveRlsRules, RlsRuleError } from "./rls.ts";
import {
  conformanceState,
  encodeRow,
  HIT,
  ID_A,
  ID_B,
  ID_C,
  labelOf,
  rowKey,
} from "./_test_fixture.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import { planSelect } from "./plan.ts";
import { SqlError } from "./sql_error.ts";
import { RLS_FRAGMENTS_MAX } from "../lib/limits.ts";

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
    () => resolveRlsRules(["SELECT * FROM pet JOIN person ON pet.owner_id = person.id"], state),
    /SELECT \* is not supported for joins/,
  );
  // A rule that joins tables is accepted.
  const joined = resolveRlsRules(
    ["SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id"],
    state,
  );
  assertEquals([...joined.keys()], [2]);
});

function labelsUnder(rules: string[], sql: string, sender: bigint, subscription = true): string[] {
  const state = conformanceState();
  const resolved = resolveRlsRules(rules, state);
  return compileWithRls(
    sql,
    state,
    { sender, isOwner: false },
    resolved,
    (checked) => planSelect(checked, { subscription }),
  ).flatMap((plan) => executePlan(plan, state)).map(labelOf).sort();
}

const PET_OF_SENDER =
  "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id WHERE person.ident = :sender";

Deno.test("a rule that joins tables restricts the protected table through the join", () => {
  assertEquals(labelsUnder([PET_OF_SENDER], "SELECT * FROM pet", ID_A), ["pet10", "pet11"]);
  assertEquals(labelsUnder([PET_OF_SENDER], "SELECT * FROM pet", ID_B), ["pet12"]);
  assertEquals(labelsUnder([PET_OF_SENDER], "SELECT * FROM pet", ID_C), []);
  assertEquals(labelsUnder([PET_OF_SENDER], "SELECT * FROM pet WHERE species = 'dog'", ID_A), [
    "pet11",
  ]);
  // The rule written the other way round (protected table second) gives the same rows.
  const flipped =
    "SELECT pet.* FROM person JOIN pet ON person.id = pet.owner_id WHERE person.ident = :sender";
  assertEquals(labelsUnder([flipped], "SELECT * FROM pet", ID_A, false), ["pet10", "pet11"]);
  // In a join query: the protected instance is expanded wherever it stands.
  assertEquals(
    labelsUnder(
      [PET_OF_SENDER],
      "SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id",
      ID_A,
    ),
    ["P1", "P1"],
  );
  // A join rule OR-ed with a single-table rule: a row both admit comes twice.
  assertEquals(
    labelsUnder(
      [PET_OF_SENDER, "SELECT * FROM pet WHERE species = 'cat'"],
      "SELECT * FROM pet",
      ID_A,
    ),
    ["pet10", "pet10", "pet11", "pet12"],
  );
});

Deno.test("a join rule's other tables are expanded under their own rules", () => {
  const rules = [
    "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id",
    "SELECT * FROM person WHERE age = 30",
  ];
  // person is P1 and P3 for everyone; pet12 belongs to P2 (25), pet13 to nobody.
  assertEquals(labelsUnder(rules, "SELECT * FROM pet", ID_B), ["pet10", "pet11"]);
  // Without the person rule, pet12 is visible too.
  assertEquals(labelsUnder(rules.slice(0, 1), "SELECT * FROM pet", ID_B), [
    "pet10",
    "pet11",
    "pet12",
  ]);
  // A rule may join its own table (not expanded again).
  assertEquals(
    labelsUnder(
      ["SELECT p.* FROM person p JOIN person q ON p.age = q.age WHERE q.ident = :sender"],
      "SELECT * FROM person",
      ID_C,
    ),
    ["P1", "P3"],
  );
});

Deno.test("a cycle between rules fails every query touching them, with SpacetimeDB's text", () => {
  const rules = [
    "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id",
    "SELECT person.* FROM person JOIN pet ON person.id = pet.owner_id",
  ];
  resolveRlsRules(rules, conformanceState()); // publishing succeeds
  throws(
    () => labelsUnder(rules, "SELECT * FROM pet", ID_A),
    (error: Error) =>
      error instanceof SqlError &&
      error.message === "Discovered cyclic dependency when resolving RLS rules for table id `2`",
  );
  throws(
    () => labelsUnder(rules, "SELECT * FROM person", ID_A),
    /Discovered cyclic dependency when resolving RLS rules for table id `1`/,
  );
  assertEquals(labelsUnder(rules, "SELECT * FROM tag", ID_A), ["tag1", "tag3"]);
});

Deno.test("an expanded subscription must still pass the join index rule", () => {
  const crossRule = "SELECT pet.* FROM pet JOIN person WHERE person.ident = :sender";
  throws(
    () => labelsUnder([crossRule], "SELECT * FROM pet", ID_A),
    /Subscriptions require indexes on join columns/,
  );
  // One-off queries are not held to it.
  assertEquals(labelsUnder([crossRule], "SELECT * FROM pet", ID_A, false), [
    "pet10",
    "pet11",
    "pet12",
    "pet13",
  ]);
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

Deno.test("an event table under a join rule: subscribers get only the events the rule admits", () => {
  const state = conformanceState();
  const rules = resolveRlsRules(
    ["SELECT hit.* FROM hit JOIN person ON hit.target = person.id WHERE hit.dmg > 0 AND person.ident = :sender"],
    state,
  );
  const index = new SubscriptionIndex(state);
  const forA = compileWithRls("SELECT * FROM hit", state, { sender: ID_A, isOwner: false }, rules)
    .map((plan) => index.registerPlan(plan));
  const forB = compileWithRls("SELECT * FROM hit", state, { sender: ID_B, isOwner: false }, rules)
    .map((plan) => index.registerPlan(plan));
  assertEquals([...forA, ...forB].flatMap((r) => r.initialRows), []);
  const hits = [[1n, 5], [2n, 7], [1n, 0], [99n, 3]].map(([target, dmg]) =>
    encodeRow(HIT, [target, dmg])
  );
  const [out] = index.onCommits([{
    tables: [{ tableId: HIT.tableId, inserts: hits, deletes: [] }],
  }]);
  const got = (registered: { queryId: number }[]) =>
    registered.flatMap((r) => out.get(r.queryId)?.inserts ?? []).map(rowKey);
  assertEquals(got(forA), [rowKey(hits[0])]);
  assertEquals(got(forB), [rowKey(hits[1])]);
  // With the event table as the lookup side, the subscription is refused as SpacetimeDB does.
  const probeRules = resolveRlsRules(
    ["SELECT hit.* FROM hit JOIN person ON hit.target = person.id WHERE person.ident = :sender"],
    state,
  );
  throws(
    () => compileWithRls("SELECT * FROM hit", state, { sender: ID_A, isOwner: false }, probeRules),
    /Event tables cannot be used as the lookup table in subscription joins/,
  );
});

Deno.test("a query whose rule combinations exceed RLS_FRAGMENTS_MAX is refused before they are built", () => {
  const state = conformanceState();
  const rules = resolveRlsRules([...RULES, "SELECT * FROM person WHERE age = 40"], state);
  // 3 rules on person, 8 instances: 3^8 = 6,561 fragments (an anonymous client's query).
  const instances = Array.from({ length: 8 }, (_, i) => `p${i}`);
  const sql = `SELECT p0.* FROM person p0 ${
    instances.slice(1).map((p) => `JOIN person ${p} ON p0.id = ${p}.id`).join(" ")
  }`;
  throws(
    () => compileWithRls(sql, state, { sender: ID_A, isOwner: false }, rules),
    (error: Error) =>
      error instanceof SqlError &&
      error.message === `The query expands to more than ${RLS_FRAGMENTS_MAX} row-level ` +
          `security fragments (3^8 here); join fewer tables that have rules`,
  );
  // Four instances are 81 fragments: fine.
  const small = `SELECT p0.* FROM person p0 ${
    instances.slice(1, 4).map((p) => `JOIN person ${p} ON p0.id = ${p}.id`).join(" ")
  }`;
  assertEquals(compileWithRls(small, state, { sender: ID_A, isOwner: false }, rules).length, 81);
});
