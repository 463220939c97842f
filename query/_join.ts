/**
 * Evaluation of join fragments over signed bags of rows (Z-sets), shared by initial rows,
 * one-off queries and incremental deltas.
 *
 * A *version* of the state is the committed state plus signed adjustments per table (rows to
 * add with +1 or to take away with -1); it is how the delta rule reads the state before a
 * transaction (post-state minus that transaction's delta) and, when one batch committed several
 * transactions, the state as of an earlier one (current state minus the later deltas). Event
 * tables hold no rows at rest, so their committed part is always empty.
 *
 * `evaluateJoin` binds one instance from a seed (a scan, an index point, or a delta) and then
 * every other instance in breadth-first order over the join conditions, looking rows up by the
 * join column (storage index, else an auxiliary hash index kept by the subscription index, else
 * a hash built once per evaluation); an instance with no condition to the bound ones is scanned
 * (cross join). Each tuple passing every predicate contributes the product of its rows' signs
 * to the returned instance's row.
 */
import type { TableSchema } from "../storage/mod.ts";
import type { CommittedState } from "./execute.ts";
import { assert } from "../lib/assert.ts";
import { type JoinFragment, layoutOf as layoutFor } from "./plan.ts";
import type { RowLayout, RowView } from "./_row_decode.ts";
import {
  bytesToKey,
  type Comparable,
  type Scalar,
  scalarOf,
  type ValueKey,
  valueKey,
} from "./_scalar.ts";
import { encodeComparable, lookupKey } from "./_encode.ts";

export type SignedRowFn = (row: Uint8Array, sign: number) => void;
/** A joined tuple's returned row, its multiplicity, and every instance's row. */
export type TupleFn = (row: Uint8Array, sign: number, tuple: readonly Uint8Array[]) => void;

/** A bag of signed rows of one table, hashed by column on first lookup. */
export class SignedRows {
  readonly rows: Uint8Array[] = [];
  readonly signs: number[] = [];
  readonly #layout: RowLayout;
  readonly #byColumn = new Map<number, Map<ValueKey, number[]>>();

  constructor(layout: RowLayout) {
    this.#layout = layout;
  }

  /** Adds rows with a sign; only before the first `match()` (the hashes are not updated). */
  add(rows: readonly Uint8Array[], sign: number): void {
    assert(this.#byColumn.size === 0, "SignedRows changed after it was hashed");
    for (const row of rows) {
      this.rows.push(row);
      this.signs.push(sign);
    }
  }

  get size(): number {
    return this.rows.length;
  }

  forEach(fn: SignedRowFn): void {
    for (let i = 0; i < this.rows.length; i++) fn(this.rows[i], this.signs[i]);
  }

  match(column: number, key: ValueKey, fn: SignedRowFn): void {
    let byKey = this.#byColumn.get(column);
    if (byKey === undefined) {
      byKey = new Map();
      for (let i = 0; i < this.rows.length; i++) {
        const k = valueKey(this.#layout.view(this.rows[i]).value(column));
        const list = byKey.get(k);
        if (list === undefined) byKey.set(k, [i]);
        else list.push(i);
      }
      this.#byColumn.set(column, byKey);
    }
    const hits = byKey.get(key);
    if (hits === undefined) return;
    for (const i of hits) fn(this.rows[i], this.signs[i]);
  }
}

/** Signed rows a version adds to one table: a SignedRows, or a filtered view of a batch's rows. */
export interface SignedRowSource {
  forEach(fn: SignedRowFn): void;
  match(column: number, key: ValueKey, fn: SignedRowFn): void;
}

/** Signed adjustments to the committed state, per table id. */
export type Version = ReadonlyMap<number, SignedRowSource>;
export const CURRENT: Version = new Map();

/** Committed rows of one table by one column value, maintained from commits (no storage index). */
export interface AuxLookup {
  match(tableId: number, column: number, key: ValueKey): readonly Uint8Array[] | undefined;
}

/** Reads versions of the committed state: scans and lookups by one column's value. */
export class StateReader {
  readonly #state: CommittedState;
  readonly #aux: AuxLookup | undefined;
  /** tableId -> column -> has a single-column storage index. */
  readonly #indexed = new Map<number, Map<number, boolean>>();
  /** Hashes built during this reader's life for columns with no index (one-off queries). */
  readonly #temporary = new Map<number, Map<number, Map<ValueKey, Uint8Array[]>>>();
  readonly #scalars = new Map<TableSchema, (Scalar | undefined)[]>();

  constructor(state: CommittedState, aux?: AuxLookup) {
    this.#state = state;
    this.#aux = aux;
  }

  scan(table: TableSchema, version: Version, fn: SignedRowFn): void {
    if (!table.isEvent) { for (const row of this.#state.committedRows(table.tableId)) fn(row, 1); }
    version.get(table.tableId)?.forEach(fn);
  }

  match(
    table: TableSchema,
    column: number,
    value: Comparable,
    version: Version,
    fn: SignedRowFn,
  ): void {
    const key = valueKey(value);
    if (!table.isEvent) {
      const rows = this.#committedMatch(table, column, value, key);
      for (const row of rows) fn(row, 1);
    }
    version.get(table.tableId)?.match(column, key, fn);
  }

  #committedMatch(
    table: TableSchema,
    column: number,
    value: Comparable,
    key: ValueKey,
  ): Iterable<Uint8Array> {
    const tableId = table.tableId;
    let columns = this.#indexed.get(tableId);
    if (columns === undefined) this.#indexed.set(tableId, columns = new Map());
    const indexed = columns.get(column);
    if (indexed !== false && this.#state.committedIndexPoint !== undefined) {
      const rows = this.#state.committedIndexPoint(
        tableId,
        [column],
        this.#keyBytes(table, column, value),
      );
      columns.set(column, rows !== undefined);
      if (rows !== undefined) return rows;
    } else if (indexed === undefined) columns.set(column, false);
    const aux = this.#aux?.match(tableId, column, key);
    if (aux !== undefined) return aux;
    return this.#temporaryHash(table, column).get(key) ?? [];
  }

  #keyBytes(table: TableSchema, column: number, value: Comparable): Uint8Array {
    let scalars = this.#scalars.get(table);
    if (scalars === undefined) {
      scalars = table.rowType.elements.map((e) => scalarOf(e.algebraicType, table.typespace));
      this.#scalars.set(table, scalars);
    }
    // The key is only looked up: small integers go in a shared buffer (no allocation).
    return lookupKey(value, scalars[column]!) ?? encodeComparable(value, scalars[column]!);
  }

  #temporaryHash(table: TableSchema, column: number): Map<ValueKey, Uint8Array[]> {
    let byColumn = this.#temporary.get(table.tableId);
    if (byColumn === undefined) this.#temporary.set(table.tableId, byColumn = new Map());
    let hash = byColumn.get(column);
    if (hash === undefined) {
      hash = hashRows(this.#state.committedRows(table.tableId), table, column);
      byColumn.set(column, hash);
    }
    return hash;
  }
}

/** Rows of a table hashed by one column's value. */
export function hashRows(
  rows: Iterable<Uint8Array>,
  table: TableSchema,
  column: number,
): Map<ValueKey, Uint8Array[]> {
  const layout = layoutFor(table);
  const hash = new Map<ValueKey, Uint8Array[]>();
  for (const row of rows) {
    const key = valueKey(layout.view(row).value(column));
    const list = hash.get(key);
    if (list === undefined) hash.set(key, [row]);
    else list.push(row);
  }
  return hash;
}

/** Where the seed instance's rows come from. */
export type Seed =
  | { kind: "rows"; rows: SignedRows }
  | { kind: "version"; version: Version };

interface Step {
  instance: number;
  /** Look rows up by `column` = the value of `from.column` in the bound row of `from.instance`. */
  lookup: { column: number; fromInstance: number; fromColumn: number } | undefined;
  /** Conditions to re-check once this instance is bound (besides the lookup one). */
  checks: { instance: number; column: number; otherInstance: number; otherColumn: number }[];
}

const plans = new WeakMap<JoinFragment, Map<number, Step[]>>();

/** Binding order from a seed instance: breadth-first over the conditions, then the rest. */
function stepsFrom(fragment: JoinFragment, seed: number): Step[] {
  let bySeed = plans.get(fragment);
  if (bySeed === undefined) plans.set(fragment, bySeed = new Map());
  const cached = bySeed.get(seed);
  if (cached !== undefined) return cached;
  const n = fragment.instances.length;
  const bound = new Set<number>([seed]);
  const steps: Step[] = [];
  const conditions = fragment.conditions;
  const checksFor = (instance: number, used: number) => {
    const out: Step["checks"] = [];
    conditions.forEach((c, i) => {
      if (i === used) return;
      if (c.left.instance === instance && bound.has(c.right.instance)) {
        out.push({
          instance,
          column: c.left.column,
          otherInstance: c.right.instance,
          otherColumn: c.right.column,
        });
      } else if (c.right.instance === instance && bound.has(c.left.instance)) {
        out.push({
          instance,
          column: c.right.column,
          otherInstance: c.left.instance,
          otherColumn: c.left.column,
        });
      }
    });
    return out;
  };
  // Conditions within the seed instance alone (`ON t.a = t.b` on one instance).
  steps.push({ instance: seed, lookup: undefined, checks: checksFor(seed, -1) });
  while (bound.size < n) {
    let next: Step | undefined;
    for (let i = 0; i < conditions.length && next === undefined; i++) {
      const c = conditions[i];
      const sides: [typeof c.left, typeof c.right][] = [[c.left, c.right], [c.right, c.left]];
      for (const [mine, other] of sides) {
        if (!bound.has(mine.instance) && bound.has(other.instance)) {
          bound.add(mine.instance);
          next = {
            instance: mine.instance,
            lookup: {
              column: mine.column,
              fromInstance: other.instance,
              fromColumn: other.column,
            },
            checks: checksFor(mine.instance, i),
          };
          break;
        }
      }
    }
    if (next === undefined) {
      let instance = 0;
      while (bound.has(instance)) instance++;
      bound.add(instance);
      next = { instance, lookup: undefined, checks: checksFor(instance, -1) };
    }
    steps.push(next);
  }
  bySeed.set(seed, steps);
  return steps;
}

function sameValue(a: Comparable, b: Comparable): boolean {
  if (typeof a === "object") return bytesToKey(a) === bytesToKey(b as Uint8Array);
  return a === b || (a !== a && b !== b); // NaN equals NaN in SATS order
}

/**
 * Every tuple of `fragment` whose `seedInstance` row comes from `seed` and whose other rows come
 * from `versionOf(instance)`; calls `emit` with the returned instance's row and the product of
 * the signs. Instance predicates, conditions and the residual are all applied. `lookedAt`, if
 * given, is called for every row found for an instance after the seed, before any filter: the
 * work a join does is bounded by those rows, not by the tuples it emits (delta.ts bounds both).
 */
export function evaluateJoin(
  fragment: JoinFragment,
  reader: StateReader,
  seedInstance: number,
  seed: Seed,
  versionOf: (instance: number) => Version,
  emit: TupleFn,
  lookedAt?: () => void,
): void {
  if (fragment.never) return;
  const steps = stepsFrom(fragment, seedInstance);
  const instances = fragment.instances;
  const views: RowView[] = new Array(instances.length);
  const rows: Uint8Array[] = new Array(instances.length);
  const residual = fragment.residual;
  const returns = fragment.returns;
  const last = steps.length - 1;

  const bind = (depth: number, sign: number): void => {
    if (depth > last) {
      if (residual === undefined || residual(views)) emit(rows[returns], sign, rows);
      return;
    }
    const step = steps[depth];
    const instance = instances[step.instance];
    const counted = depth > 0 ? lookedAt : undefined;
    const accept = (row: Uint8Array, rowSign: number) => {
      counted?.();
      const view = instance.layout.view(row);
      if (instance.predicate !== undefined && !instance.predicate(view)) return;
      views[step.instance] = view;
      rows[step.instance] = row;
      for (const check of step.checks) {
        if (
          !sameValue(view.value(check.column), views[check.otherInstance].value(check.otherColumn))
        ) {
          return;
        }
      }
      bind(depth + 1, sign * rowSign);
    };
    if (depth === 0) {
      if (seed.kind === "rows") {
        seed.rows.forEach(accept);
        return;
      }
      const eq = instance.equalities[0];
      if (eq !== undefined) reader.match(instance.table, eq.column, eq.value, seed.version, accept);
      else reader.scan(instance.table, seed.version, accept);
      return;
    }
    const version = versionOf(step.instance);
    const lookup = step.lookup;
    if (lookup === undefined) {
      const eq = instance.equalities[0];
      if (eq !== undefined) reader.match(instance.table, eq.column, eq.value, version, accept);
      else reader.scan(instance.table, version, accept);
      return;
    }
    const value = views[lookup.fromInstance].value(lookup.fromColumn);
    reader.match(instance.table, lookup.column, value, version, accept);
  };
  bind(0, 1);
}

/**
 * The seed instance for evaluating a whole fragment: one with a `column = constant` filter,
 * else one with any filter, else the first.
 */
export function initialSeed(fragment: JoinFragment): number {
  const withEq = fragment.instances.findIndex((i) => i.equalities.length > 0);
  if (withEq >= 0) return withEq;
  const filtered = fragment.instances.findIndex((i) => i.predicate !== undefined);
  return filtered >= 0 ? filtered : 0;
}
