/**
 * Row-level security (query-subscriptions.md §4): `clientVisibilityFilter.sql` rules, each a
 * subscription-grammar query returning rows of the table it protects. For a caller other than
 * the owner, a query over a protected table becomes one fragment per rule, the query's WHERE
 * AND the rule's WHERE (`:sender` bound to the caller); in a join, every instance of a protected
 * table gets one of its rules, one fragment per combination. Fragments are evaluated separately,
 * so a row two rules admit is returned twice, as in SpacetimeDB. Rules that join tables are not
 * supported yet and are refused when the module is published.
 */
import {
  type CheckedSelect,
  checkSelect,
  type QueryCatalog,
  type QueryContext,
  type TableInstance,
} from "./check.ts";
import type { TypedExpr } from "./check.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import { planSelect, type QueryPlan } from "./plan.ts";
import type { SqlSelectPlan } from "./sql_check.ts";
import { evaluateSelect, type SqlSelectResult, type SqlState } from "./sql_eval.ts";

/** The rules of a module by protected table id, in declaration order. */
export type RlsRules = ReadonlyMap<number, readonly string[]>;

export const NO_RLS_RULES: RlsRules = new Map();

/** A rule the module declares cannot be installed; publishing fails with this message. */
export class RlsRuleError extends Error {
  override name = "RlsRuleError";
}

/**
 * Checks every rule as SpacetimeDB does when it installs them (the owner's view of the schema)
 * and groups them by the table they protect. Throws RlsRuleError naming the rule.
 */
export function resolveRlsRules(rules: readonly string[], catalog: QueryCatalog): RlsRules {
  const out = new Map<number, string[]>();
  for (const sql of rules) {
    const fail = (cause: string) =>
      new RlsRuleError(`failed to create row-level security: \`${sql}\`: ${cause}`);
    let checked: CheckedSelect;
    try {
      checked = checkSelect(parseSubscriptionQuery(sql), catalog, { sender: 0n, isOwner: true });
    } catch (error) {
      throw fail(error instanceof Error ? error.message : String(error));
    }
    const table = checked.tables[checked.returns].schema;
    if (checked.tables.length > 1) {
      throw fail(
        "Lightcone does not support row-level security rules that join tables yet " +
          `(the rule on \`${table.name}\` reads ${checked.tables.length} tables); ` +
          "write it over the protected table alone, or expose the rows through a view",
      );
    }
    if (!table.isPublic) {
      throw fail(
        `Cannot define RLS rule on private table: ${table.name}. ` +
          "Please make table public if you wish to restrict access using RLS.",
      );
    }
    let list = out.get(table.tableId);
    if (list === undefined) out.set(table.tableId, list = []);
    list.push(sql);
  }
  return out;
}

/**
 * Parses, checks and plans a subscription-grammar query for `context`, with the caller's
 * row-level security applied: one plan per fragment (a single plan when no rule applies).
 * `plan` plans each fragment (default: planSelect with the subscription rules). Throws SqlError.
 */
export function compileWithRls(
  sql: string,
  catalog: QueryCatalog,
  context: QueryContext,
  rules: RlsRules,
  plan: (checked: CheckedSelect) => QueryPlan = (checked) => planSelect(checked),
): QueryPlan[] {
  const checked = checkSelect(parseSubscriptionQuery(sql), catalog, context, {
    subscription: true,
  });
  return applyRls(checked, catalog, context, rules).map((fragment) => plan(fragment));
}

/** What row-level security rewrites: the tables a query reads and its WHERE. */
export interface RlsTarget {
  tables: TableInstance[];
  where: TypedExpr | undefined;
  usesSender: boolean;
}

/** Conjuncts the planner may keep per instance (when the checker records them). */
type Pushed = { instance: number }[];

function pushedOf(value: object): Pushed | undefined {
  const pushed = (value as { pushed?: unknown }).pushed;
  return Array.isArray(pushed) ? pushed as Pushed : undefined;
}

/**
 * The fragments of a checked query under the caller's rules (the query itself if none apply):
 * every table instance the query reads, joined ones included, is restricted by one of its
 * table's rules, and each combination of rules is one fragment (SpacetimeDB's product). The
 * rule's conditions join the query's WHERE as if written there.
 */
export function applyRls<T extends RlsTarget>(
  checked: T,
  catalog: QueryCatalog,
  context: QueryContext,
  rules: RlsRules,
): T[] {
  if (context.isOwner || rules.size === 0) return [checked];
  if (!checked.tables.some((table) => rules.has(table.schema.tableId))) return [checked];
  const ruleContext = { sender: context.sender, isOwner: true };
  // Per instance: the WHERE of each rule on its table, re-targeted at that instance.
  const choices = checked.tables.map((table, instance) => {
    const sqls = rules.get(table.schema.tableId);
    if (sqls === undefined) return [{ where: undefined, usesSender: false, pushed: [] }];
    return sqls.map((rule) => {
      const ruleChecked = checkSelect(parseSubscriptionQuery(rule), catalog, ruleContext);
      return {
        where: ruleChecked.where && onInstance(ruleChecked.where, instance),
        usesSender: ruleChecked.usesSender,
        pushed: (pushedOf(ruleChecked) ?? []).map((conjunct) => ({ ...conjunct, instance })),
      };
    });
  });
  let fragments: T[] = [checked];
  for (const options of choices) {
    fragments = fragments.flatMap((fragment) =>
      options.map((option) => {
        const out: T = {
          ...fragment,
          where: conjoin(fragment.where, option.where),
          usesSender: fragment.usesSender || option.usesSender,
        };
        const pushed = pushedOf(fragment);
        if (pushed !== undefined) {
          (out as { pushed?: Pushed }).pushed = [...pushed, ...option.pushed];
        }
        return out;
      })
    );
  }
  return fragments;
}

/** A single-table rule's WHERE (over instance 0) made to read table instance `instance`. */
function onInstance(expr: TypedExpr, instance: number): TypedExpr {
  switch (expr.kind) {
    case "const":
      return expr;
    case "and":
    case "or":
      return {
        kind: expr.kind,
        left: onInstance(expr.left, instance),
        right: onInstance(expr.right, instance),
      };
    case "cmp": {
      const operand = (o: typeof expr.left) => o.kind === "col" ? { ...o, instance } : o;
      return { ...expr, left: operand(expr.left), right: operand(expr.right) };
    }
  }
}

/** `left AND right`, folding constants. */
function conjoin(left: TypedExpr | undefined, right: TypedExpr | undefined): TypedExpr | undefined {
  if (left === undefined) return right;
  if (right === undefined) return left;
  if (left.kind === "const") return left.value ? right : left;
  if (right.kind === "const") return right.value ? left : right;
  return { kind: "and", left, right };
}

/**
 * A /sql SELECT under the caller's rules: one plan per fragment (the plan itself when no rule
 * applies). Evaluate each and add the results up (`evaluateSelectWithRls`).
 */
export function sqlSelectFragments(
  plan: SqlSelectPlan,
  catalog: QueryCatalog,
  context: QueryContext,
  rules: RlsRules,
): SqlSelectPlan[] {
  return applyRls({ ...plan, usesSender: false }, catalog, context, rules);
}

/**
 * Evaluates a /sql SELECT fragment by fragment and adds the results as bags, as SpacetimeDB
 * does: rows are concatenated (a row two rules admit comes twice) up to the LIMIT, and
 * `COUNT(*)` sums the fragments' counts.
 */
export function evaluateSelectWithRls(
  plan: SqlSelectPlan,
  state: SqlState,
  context: QueryContext,
  rules: RlsRules,
): SqlSelectResult {
  const fragments = sqlSelectFragments(plan, state, context, rules);
  if (fragments.length === 1) return evaluateSelect(fragments[0], state);
  const results = fragments.map((fragment) => evaluateSelect(fragment, state));
  if (plan.output.kind === "count") {
    let total = 0n;
    let any = false;
    for (const result of results) {
      for (const row of result.rows) {
        total += new DataView(row.buffer, row.byteOffset, row.byteLength).getBigUint64(0, true);
        any = true;
      }
    }
    const row = new Uint8Array(8);
    new DataView(row.buffer).setBigUint64(0, total, true);
    return { ...results[0], rows: any ? [row] : [] };
  }
  const limit = plan.limit === undefined ? Infinity : Number(plan.limit);
  const rows: Uint8Array[] = [];
  for (const result of results) {
    for (const row of result.rows) {
      if (rows.length >= limit) break;
      rows.push(row);
    }
  }
  return { ...results[0], rows };
}
