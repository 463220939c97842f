/**
 * Row-level security (query-subscriptions.md §4): `clientVisibilityFilter.sql` rules, each a
 * subscription-grammar query returning rows of the table it protects. For a caller other than
 * the owner, a query over a protected table becomes one fragment per rule, the query's WHERE
 * AND the rule's WHERE (`:sender` bound to the caller); in a join, every instance of a protected
 * table gets one of its rules, one fragment per combination. Fragments are evaluated separately,
 * so a row two rules admit is returned twice, as in SpacetimeDB. A rule may join tables: its
 * other tables join the query (and are expanded under their own rules in turn).
 */
import {
  type CheckedJoin,
  type CheckedSelect,
  checkSelect,
  type ColumnRef,
  foldLogic,
  type PushedConjunct,
  type QueryCatalog,
  type QueryContext,
  type TableInstance,
} from "./check.ts";
import type { TypedExpr } from "./check.ts";
import { parseSubscriptionQuery } from "./parse.ts";
import { planSelect, type QueryPlan } from "./plan.ts";
import type { SqlOutput, SqlSelectPlan } from "./sql_check.ts";
import { SqlError } from "./sql_error.ts";
import { RLS_FRAGMENTS_MAX } from "../lib/limits.ts";
import { scalarOf } from "./_scalar.ts";
import {
  type EvaluateOptions,
  evaluateSelect,
  type SqlSelectResult,
  type SqlState,
} from "./sql_eval.ts";

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
    // ORDER BY … LIMIT is ours, for subscriptions; a rule filters rows (SpacetimeDB's refusal).
    if (checked.topN !== undefined) throw fail(`Unsupported: ${sql.trim()}`);
    const table = checked.tables[checked.returns].schema;
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
  const fragments = applyRls(checked, catalog, context, rules);
  if (checked.topN !== undefined) return [plan(mergeTopNFragments(fragments))];
  return fragments.map((fragment) => plan(fragment));
}

/**
 * A top-N query has one window over the rows the caller may see: the rule fragments of its
 * table, each a single-table filter, become one filter (the query's WHERE and any rule's), so a
 * row two rules admit counts once in the window. A rule that joins other tables cannot be
 * maintained this way and is refused rather than ignored.
 */
function mergeTopNFragments(fragments: CheckedSelect[]): CheckedSelect {
  if (fragments.some((fragment) => fragment.tables.length !== 1)) {
    throw new SqlError(
      `ORDER BY ... LIMIT is not supported on table \`${fragments[0].tables[0].schema.name}\` ` +
        "for this caller: a row-level security rule for it joins other tables",
      "plan",
    );
  }
  if (fragments.length === 1) return fragments[0];
  let where: TypedExpr | undefined;
  for (const fragment of fragments) {
    const own: TypedExpr = fragment.where ?? { kind: "const", value: true };
    where = where === undefined ? own : foldLogic("or", where, own);
  }
  return {
    ...fragments[0],
    where,
    pushed: [],
    usesSender: fragments.some((fragment) => fragment.usesSender),
  };
}

/** What row-level security rewrites: the tables a query reads, its joins and its WHERE. */
export interface RlsTarget {
  tables: TableInstance[];
  joins: CheckedJoin[];
  where: TypedExpr | undefined;
  usesSender: boolean;
}

/** A query or rule in the shape expansion works on (instance-numbered, FROM order). */
interface Shape {
  tables: TableInstance[];
  joins: CheckedJoin[];
  where: TypedExpr | undefined;
  pushed: PushedConjunct[];
  usesSender: boolean;
  /** The rule's returned instance (unused for the caller's query). */
  returns: number;
}

/**
 * The fragments of a checked query under the caller's rules (the query itself if none apply),
 * as SpacetimeDB resolves them (§4): every table instance the query reads, joined ones
 * included, is replaced by one of its table's rules; a rule that joins tables brings its other
 * tables along (placed where the instance stood, so the join tree stays in FROM order) and is
 * itself expanded for them, except for its own table. Each combination of rules is one
 * fragment. A table met again while its own rule is being expanded is a cycle: SpacetimeDB's
 * "Discovered cyclic dependency ..." error (SqlError), raised when a query touches it.
 */
export function applyRls<T extends RlsTarget>(
  checked: T,
  catalog: QueryCatalog,
  context: QueryContext,
  rules: RlsRules,
): T[] {
  if (context.isOwner || rules.size === 0) return [checked];
  if (!checked.tables.some((table) => rules.has(table.schema.tableId))) return [checked];
  const shape: Shape = {
    tables: checked.tables,
    joins: checked.joins,
    where: checked.where,
    pushed: pushedOf(checked) ?? [],
    usesSender: checked.usesSender,
    returns: 0,
  };
  const expansions = expand(shape, undefined, [], catalog, context, rules, { next: 0 });
  return expansions.map(({ shape: out, map }) => {
    const result: T = {
      ...checked,
      tables: out.tables,
      joins: out.joins,
      where: out.where,
      usesSender: out.usesSender,
    };
    if (pushedOf(checked) !== undefined) (result as { pushed?: Pushed }).pushed = out.pushed;
    const returns = (checked as { returns?: unknown }).returns;
    if (typeof returns === "number") (result as { returns?: number }).returns = map(returns);
    const output = (checked as { output?: SqlOutput }).output;
    if (output !== undefined) {
      (result as { output?: SqlOutput }).output = output.kind === "rows"
        ? { kind: "rows", instance: map(output.instance) }
        : output.kind === "columns"
        ? {
          kind: "columns",
          refs: output.refs.map((ref) => ({ ...ref, instance: map(ref.instance) })),
        }
        : output;
    }
    return result;
  });
}

/** Conjuncts the planner may keep per instance (when the checker records them). */
type Pushed = PushedConjunct[];

function pushedOf(value: object): Pushed | undefined {
  const pushed = (value as { pushed?: unknown }).pushed;
  return Array.isArray(pushed) ? pushed as Pushed : undefined;
}

/** An expanded shape and where each instance of the input went. */
interface Expansion {
  shape: Shape;
  map: (instance: number) => number;
}

function cycleError(tableId: number): SqlError {
  return new SqlError(
    `Discovered cyclic dependency when resolving RLS rules for table id \`${tableId}\``,
    "plan",
  );
}

/**
 * Expands the instances of `shape` whose table has rules (all but those of `ownTable`, the
 * table a rule being expanded protects). `resolving` lists the tables whose rules are being
 * expanded around this one.
 */
function expand(
  shape: Shape,
  ownTable: number | undefined,
  resolving: readonly number[],
  catalog: QueryCatalog,
  context: QueryContext,
  rules: RlsRules,
  suffix: { next: number },
): Expansion[] {
  const targets: number[] = [];
  shape.tables.forEach((table, instance) => {
    if (table.schema.tableId !== ownTable) targets.push(instance);
  });
  for (const instance of targets) {
    const tableId = shape.tables[instance].schema.tableId;
    if (resolving.includes(tableId)) throw cycleError(tableId);
  }
  // Per protected instance: the expanded fragments of each of its table's rules.
  const choices: { instance: number; options: Shape[] }[] = [];
  for (const instance of targets) {
    const tableId = shape.tables[instance].schema.tableId;
    const sqls = rules.get(tableId);
    if (sqls === undefined || sqls.length === 0) continue;
    const options: Shape[] = [];
    for (const sql of sqls) {
      const rule = checkSelect(parseSubscriptionQuery(sql), catalog, context);
      const ruleShape: Shape = {
        tables: rule.tables,
        joins: rule.joins,
        where: rule.where,
        pushed: rule.pushed,
        usesSender: rule.usesSender,
        returns: rule.returns,
      };
      for (
        const inner of expand(
          ruleShape,
          tableId,
          [tableId, ...resolving],
          catalog,
          context,
          rules,
          suffix,
        )
      ) {
        suffix.next++;
        const alias = shape.tables[instance].alias;
        const returns = inner.map(rule.returns);
        options.push({
          ...inner.shape,
          returns,
          tables: inner.shape.tables.map((t, i) =>
            i === returns ? { ...t, alias } : { ...t, alias: `${t.alias}_${suffix.next}` }
          ),
        });
      }
    }
    choices.push({ instance, options });
  }
  // Each instance's options are bounded by their own expansion's check; their product is here.
  const product = choices.reduce((total, choice) => total * choice.options.length, 1);
  if (product > RLS_FRAGMENTS_MAX) {
    const counts = choices.map((choice) => choice.options.length);
    const shown = counts.every((count) => count === counts[0])
      ? `${counts[0]}^${counts.length}`
      : counts.join(" × ");
    throw new SqlError(
      `The query expands to more than ${RLS_FRAGMENTS_MAX} row-level security fragments ` +
        `(${shown} here); join fewer tables that have rules`,
      "limit",
    );
  }
  let out: Expansion[] = [{ shape, map: (i) => i }];
  for (const { instance, options } of choices) {
    out = out.flatMap((done) =>
      options.map((option) => {
        const at = done.map(instance);
        const step = substitute(done.shape, at, option);
        return { shape: step.shape, map: (i: number) => step.map(done.map(i)) };
      })
    );
  }
  return out;
}

/**
 * Replaces instance `at` of `shape` by the rule fragment `rule`: the rule's instances take its
 * place in FROM order, the rule's returned instance stands for it, the rule's joins and WHERE
 * join the query's. The ON condition that joined the replaced instance stays the join of the
 * rule's first instance when that is the returned one, else it becomes a WHERE conjunct (the
 * rule's first instance then joins without a condition, as in SpacetimeDB's expansion).
 */
function substitute(
  shape: Shape,
  at: number,
  rule: Shape,
): { shape: Shape; map: (instance: number) => number } {
  const width = rule.tables.length;
  const map = (i: number) => i < at ? i : i === at ? at + rule.returns : i + width - 1;
  const mapRule = (i: number) => at + i;
  const tables = [
    ...shape.tables.slice(0, at),
    ...rule.tables,
    ...shape.tables.slice(at + 1),
  ];
  const onOf = (join: CheckedJoin, f: (i: number) => number) =>
    join.on === undefined ? undefined : {
      left: { ...join.on.left, instance: f(join.on.left.instance) },
      right: { ...join.on.right, instance: f(join.on.right.instance) },
    };
  const joins: CheckedJoin[] = [];
  let extra: TypedExpr | undefined;
  for (const join of shape.joins) {
    const on = onOf(join, map);
    if (join.instance === at) {
      if (rule.returns === 0) joins.push({ instance: at, on });
      else {
        joins.push({ instance: at, on: undefined });
        if (on !== undefined) extra = conjoin(extra, equalityOf(tables, on));
      }
    } else joins.push({ instance: map(join.instance), on });
  }
  for (const join of rule.joins) {
    joins.push({ instance: mapRule(join.instance), on: onOf(join, mapRule) });
  }
  joins.sort((a, b) => a.instance - b.instance);
  const where = conjoin(
    conjoin(shape.where && remap(shape.where, map), extra),
    rule.where && remap(rule.where, mapRule),
  );
  return {
    shape: {
      tables,
      joins,
      where,
      pushed: [
        ...shape.pushed.map((p) => ({ ...p, instance: map(p.instance) })),
        ...rule.pushed.map((p) => ({ ...p, instance: mapRule(p.instance) })),
      ],
      usesSender: shape.usesSender || rule.usesSender,
      returns: map(shape.returns),
    },
    map,
  };
}

/** `left = right` over two columns, as a WHERE conjunct. */
function equalityOf(
  tables: TableInstance[],
  on: { left: ColumnRef; right: ColumnRef },
): TypedExpr {
  const schema = tables[on.left.instance].schema;
  const scalar = scalarOf(schema.rowType.elements[on.left.column].algebraicType, schema.typespace)!;
  return { kind: "cmp", op: "=", left: on.left, right: on.right, scalar };
}

/** An expression with its column references moved by `map`. */
function remap(expr: TypedExpr, map: (instance: number) => number): TypedExpr {
  switch (expr.kind) {
    case "const":
      return expr;
    case "and":
    case "or":
      return { kind: expr.kind, left: remap(expr.left, map), right: remap(expr.right, map) };
    case "cmp": {
      const operand = (o: typeof expr.left) =>
        o.kind === "col" ? { ...o, instance: map(o.instance) } : o;
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
  return applyRls({ ...plan, usesSender: false }, catalog, context, rules)
    .map(({ usesSender: _, ...fragment }) => fragment);
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
  options: EvaluateOptions = {},
): SqlSelectResult {
  const fragments = sqlSelectFragments(plan, state, context, rules);
  if (fragments.length === 1) return evaluateSelect(fragments[0], state, options);
  const results = fragments.map((fragment) => evaluateSelect(fragment, state, options));
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
