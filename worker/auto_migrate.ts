/**
 * Automatic migration planning: old module definition + new one -> the steps that turn the
 * stored database into the new schema, or every reason it cannot be done automatically.
 * Pure (no I/O); the rules, step order and error texts are SpacetimeDB's
 * (crates/schema/src/auto_migrate.rs): tables, columns, indexes, constraints, sequences and
 * row-level security are matched by canonical name.
 */
import type { AlgebraicType, ModuleDef, TableDef, Typespace } from "../protocol/mod.ts";

/** One step of a plan. `name` is the canonical name of the object the step is about. */
export type MigrationStep =
  | { kind: "RemoveIndex"; name: string; table: string }
  | { kind: "RemoveConstraint"; name: string; table: string }
  | { kind: "RemoveSequence"; name: string; table: string }
  | { kind: "RemoveSchedule"; name: string; table: string }
  | { kind: "RemoveView"; name: string }
  | { kind: "RemoveRowLevelSecurity"; name: string }
  | { kind: "RemoveTable"; name: string }
  | { kind: "ChangeColumns"; name: string }
  | { kind: "ReschemaEventTable"; name: string }
  | { kind: "AddColumns"; name: string }
  | { kind: "ChangeIndexSourceName"; name: string; table: string }
  | { kind: "ChangeTableAccessorName"; name: string }
  | { kind: "ChangeColumnAccessorName"; name: string; column: string }
  | { kind: "AddTable"; name: string }
  | { kind: "AddIndex"; name: string; table: string }
  | { kind: "AddConstraint"; name: string; table: string }
  | { kind: "AddSequence"; name: string; table: string }
  | { kind: "AddSchedule"; name: string; table: string }
  | { kind: "AddView"; name: string }
  | { kind: "AddRowLevelSecurity"; name: string }
  | { kind: "ChangeAccess"; name: string }
  | { kind: "ChangePrimaryKey"; name: string }
  | { kind: "UpdateView"; name: string }
  | { kind: "DisconnectAllUsers"; name: "" };

/** Declaration order of SpacetimeDB's `AutoMigrateStep`: removes sort before adds. */
const STEP_ORDER: MigrationStep["kind"][] = [
  "RemoveIndex",
  "RemoveConstraint",
  "RemoveSequence",
  "RemoveSchedule",
  "RemoveView",
  "RemoveRowLevelSecurity",
  "RemoveTable",
  "ChangeColumns",
  "ReschemaEventTable",
  "AddColumns",
  "ChangeIndexSourceName",
  "ChangeTableAccessorName",
  "ChangeColumnAccessorName",
  "AddTable",
  "AddIndex",
  "AddConstraint",
  "AddSequence",
  "AddSchedule",
  "AddView",
  "AddRowLevelSecurity",
  "ChangeAccess",
  "ChangePrimaryKey",
  "UpdateView",
  "DisconnectAllUsers",
];

/** A check against the stored rows before the steps run: a sequence added to a filled table. */
export interface SequencePrecheck {
  sequence: string;
  table: string;
}

export interface MigrationPlan {
  old: ModuleDef;
  new: ModuleDef;
  prechecks: SequencePrecheck[];
  steps: MigrationStep[];
}

export type PlanOutcome =
  | { ok: true; plan: MigrationPlan }
  | { ok: false; errors: string[] };

/** True when the plan disconnects every client (SpacetimeDB's `break_clients`). */
export function planBreaksClients(plan: MigrationPlan): boolean {
  return plan.steps.some((step) => step.kind === "DisconnectAllUsers");
}

/**
 * The stored shape of a module's tables, as text: equal fingerprints mean the datastore built
 * for one module holds the other's rows unchanged (same names, columns, indexes, ids).
 */
export function tablesFingerprint(def: ModuleDef): string {
  const tables = [...def.tables].sort((a, b) => compareText(a.name, b.name)).map((table) => ({
    name: table.name,
    sourceName: table.sourceName,
    columns: table.columns.map((column) => [
      column.name,
      column.sourceName,
      resolveDeep(column.type, table.typespace),
    ]),
    primaryKey: table.primaryKey,
    indexes: table.indexes.map((index) => [
      index.name,
      index.sourceName,
      index.accessorName,
      index.algorithm,
      index.columns,
    ]),
    unique: table.uniqueConstraints.map((constraint) => [constraint.name, constraint.columns]),
    sequences: table.sequences,
    schedule: table.schedule,
    access: table.access,
    tableType: table.tableType,
    isEvent: table.isEvent,
  }));
  return JSON.stringify(
    tables,
    (_key, value) => typeof value === "bigint" ? `${value}n` : value,
  );
}

/** Plans the migration from `oldDef` to `newDef` (SpacetimeDB's `ponder_auto_migrate`). */
export function planMigration(oldDef: ModuleDef, newDef: ModuleDef): PlanOutcome {
  const plan: MigrationPlan = { old: oldDef, new: newDef, prechecks: [], steps: [] };
  const errors: MigrationError[] = [];
  const oldTables = tablesByName(oldDef);
  const newTables = tablesByName(newDef);

  planViews(plan, oldDef, newDef);
  for (const name of oldTables.keys()) {
    if (!newTables.has(name)) {
      plan.steps.push({ kind: "RemoveTable", name });
      ensureDisconnect(plan);
    }
  }
  for (const name of newTables.keys()) {
    if (!oldTables.has(name)) plan.steps.push({ kind: "AddTable", name });
  }
  for (const [name, oldTable] of oldTables) {
    const newTable = newTables.get(name);
    if (newTable) planTable(plan, errors, oldTable, newTable);
  }
  const added = new Set([...newTables.keys()].filter((name) => !oldTables.has(name)));
  const removed = new Set([...oldTables.keys()].filter((name) => !newTables.has(name)));
  planIndexes(plan, errors, oldTables, newTables, added, removed);
  planSequences(plan, oldTables, newTables, added, removed);
  planConstraints(plan, errors, oldTables, newTables, added, removed);
  planRowLevelSecurity(plan, oldDef, newDef);

  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };
  plan.steps.sort(compareSteps);
  plan.prechecks.sort((a, b) => compareText(a.sequence, b.sequence));
  return { ok: true, plan };
}

/** SpacetimeDB's `ErrorStream` display: `Errors occurred:` then each error and a blank line. */
export function formatMigrationErrors(errors: string[]): string {
  return "Errors occurred:\n" + errors.map((error) => `${error}\n\n`).join("");
}

// --- tables and columns --------------------------------------------------------------------

function planTable(
  plan: MigrationPlan,
  errors: MigrationError[],
  oldTable: TableDef,
  newTable: TableDef,
): void {
  const name = oldTable.name;
  const tableErrors: MigrationError[] = [];
  if (oldTable.tableType !== newTable.tableType) {
    tableErrors.push(
      error(
        "ChangeTableType",
        [name],
        `Changing the table type of table ${name} from ${oldTable.tableType} to ${newTable.tableType} requires a manual migration`,
      ),
    );
  }
  if (oldTable.isEvent !== newTable.isEvent) {
    tableErrors.push(
      error(
        "ChangeTableEventFlag",
        [name],
        `Changing the event flag of table ${name} requires a manual migration`,
      ),
    );
  }
  const isEvent = oldTable.isEvent;
  if (oldTable.access !== newTable.access) plan.steps.push({ kind: "ChangeAccess", name });
  if (oldTable.primaryKey !== newTable.primaryKey) {
    plan.steps.push({ kind: "ChangePrimaryKey", name });
  }
  if (oldTable.sourceName !== newTable.sourceName) {
    plan.steps.push({ kind: "ChangeTableAccessorName", name });
  }
  if (!sameJson(oldTable.schedule, newTable.schedule)) {
    if (oldTable.schedule) {
      plan.steps.push({ kind: "RemoveSchedule", name: oldTable.schedule.name, table: name });
    }
    if (newTable.schedule) {
      plan.steps.push({ kind: "AddSchedule", name: newTable.schedule.name, table: name });
    }
  }

  let rowTypeChanged = false;
  let columnsAdded = false;
  let eventSchemaChanged = false;
  const newColumns = new Map(newTable.columns.map((column) => [column.name, column]));
  const oldColumns = new Map(oldTable.columns.map((column) => [column.name, column]));
  for (const oldColumn of oldTable.columns) {
    const newColumn = newColumns.get(oldColumn.name);
    if (!newColumn) {
      if (isEvent) eventSchemaChanged = true;
      else {
        tableErrors.push(
          error(
            "RemoveColumn",
            [name, oldColumn.name],
            `Removing a column ${oldColumn.name} from table ${name} requires a manual migration`,
          ),
        );
      }
      continue;
    }
    const oldType = resolveDeep(oldColumn.type, oldTable.typespace);
    const newType = resolveDeep(newColumn.type, newTable.typespace);
    const typeErrors: MigrationError[] = [];
    const typeChanged = upgradable(false, name, oldColumn.name, oldType, newType, typeErrors);
    let changed = false;
    if (typeErrors.length > 0) {
      if (isEvent) changed = true;
      else tableErrors.push(...typeErrors);
    } else changed = typeChanged;
    let moved = false;
    if (oldColumn.colId !== newColumn.colId) {
      if (isEvent) moved = true;
      else {
        tableErrors.push(
          error("ReorderTable", [name], `Reordering table ${name} requires a manual migration`),
        );
      }
    }
    if (oldColumn.sourceName !== newColumn.sourceName) {
      plan.steps.push({ kind: "ChangeColumnAccessorName", name, column: oldColumn.name });
    }
    if (isEvent) eventSchemaChanged ||= changed || moved;
    else rowTypeChanged ||= changed;
  }
  for (const newColumn of newTable.columns) {
    if (oldColumns.has(newColumn.name)) continue;
    if (isEvent) eventSchemaChanged = true;
    else if (newColumn.defaultValue !== undefined) columnsAdded = true;
    else {
      tableErrors.push(
        error(
          "AddColumn",
          [name, newColumn.name],
          `Adding a column ${newColumn.name} to table ${name} requires a default value annotation`,
        ),
      );
    }
  }
  if (tableErrors.length > 0) {
    errors.push(...tableErrors);
    return;
  }
  if (eventSchemaChanged) {
    ensureDisconnect(plan);
    plan.steps.push({ kind: "ReschemaEventTable", name });
  } else if (columnsAdded) {
    ensureDisconnect(plan);
    plan.steps.push({ kind: "AddColumns", name });
  } else if (rowTypeChanged) {
    plan.steps.push({ kind: "ChangeColumns", name });
  }
}

/**
 * Whether a column of type `oldType` can hold as `newType` (SpacetimeDB's
 * `ensure_old_ty_upgradable_to_new`): sums may gain variants at the end with the same layout,
 * products and arrays recurse, everything else must stay equal. Returns whether it changed.
 */
function upgradable(
  within: boolean,
  table: string,
  column: string,
  oldType: AlgebraicType,
  newType: AlgebraicType,
  errors: MigrationError[],
): boolean {
  const fail = (variant: string, because: string) => {
    const from = formatType(oldType);
    const to = formatType(newType);
    const lead = within ? "Changing a type within column" : "Changing the type of column";
    errors.push(
      error(
        (within ? "Within" : "") + variant,
        [table, column, from, to],
        `${lead} ${column} in table ${table} from ${from} to ${to}${because}`,
      ),
    );
  };
  const manual = " requires a manual migration";
  if (oldType.tag === "Sum" && newType.tag === "Sum") {
    const oldVariants = oldType.value.variants;
    const newVariants = newType.value.variants;
    let changed = oldVariants.length < newVariants.length;
    if (oldVariants.length > newVariants.length) {
      fail("FewerVariants", `, with fewer variants,${manual}`);
    }
    const count = Math.min(oldVariants.length, newVariants.length);
    for (let i = 0; i < count; i++) {
      changed = upgradable(
        true,
        table,
        column,
        oldVariants[i].algebraicType,
        newVariants[i].algebraicType,
        errors,
      ) || changed;
      if (oldVariants[i].name !== newVariants[i].name) {
        fail("RenamedVariant", `, with a renamed variant,${manual}`);
      }
    }
    const oldLayout = layoutOf(oldType);
    const newLayout = layoutOf(newType);
    if (oldLayout.size !== newLayout.size) fail("SizeMismatch", `,${manual}, due to size mismatch`);
    if (oldLayout.align !== newLayout.align) {
      fail("AlignMismatch", `,${manual}, due to alignment mismatch`);
    }
    return changed;
  }
  if (oldType.tag === "Product" && newType.tag === "Product") {
    const oldFields = oldType.value.elements;
    const newFields = newType.value.elements;
    if (oldFields.length !== newFields.length) {
      fail("FewerFields", `, with fewer fields,${manual}`);
    }
    let changed = false;
    const count = Math.min(oldFields.length, newFields.length);
    for (let i = 0; i < count; i++) {
      changed = upgradable(
        true,
        table,
        column,
        oldFields[i].algebraicType,
        newFields[i].algebraicType,
        errors,
      ) || changed;
      if (oldFields[i].name !== newFields[i].name) {
        fail("RenamedField", `, with a renamed field,${manual}`);
      }
    }
    return changed;
  }
  if (oldType.tag === "Array" && newType.tag === "Array") {
    return upgradable(true, table, column, oldType.value, newType.value, errors);
  }
  if (sameJson(oldType, newType)) return false;
  fail("ChangeColumnType", manual);
  return false;
}

// --- indexes, sequences, constraints -------------------------------------------------------

function planIndexes(
  plan: MigrationPlan,
  errors: MigrationError[],
  oldTables: Map<string, TableDef>,
  newTables: Map<string, TableDef>,
  added: Set<string>,
  removed: Set<string>,
): void {
  const oldIndexes = objectsOf(oldTables, (table) => table.indexes);
  const newIndexes = objectsOf(newTables, (table) => table.indexes);
  for (const [name, { table }] of oldIndexes) {
    if (!newIndexes.has(name) && !removed.has(table)) {
      plan.steps.push({ kind: "RemoveIndex", name, table });
    }
  }
  for (const [name, { table }] of newIndexes) {
    if (!oldIndexes.has(name) && !added.has(table)) {
      plan.steps.push({ kind: "AddIndex", name, table });
    }
  }
  for (const [name, { table, object: oldIndex }] of oldIndexes) {
    const newIndex = newIndexes.get(name)?.object;
    if (!newIndex) continue;
    if (oldIndex.accessorName !== newIndex.accessorName) {
      errors.push(
        error(
          "ChangeIndexAccessor",
          [name],
          `Changing the accessor name on index ${name} from ${
            rustOption(oldIndex.accessorName)
          } to ${rustOption(newIndex.accessorName)} requires a manual migration`,
        ),
      );
    } else if (
      oldIndex.algorithm !== newIndex.algorithm || !sameJson(oldIndex.columns, newIndex.columns)
    ) {
      plan.steps.push({ kind: "RemoveIndex", name, table });
      plan.steps.push({ kind: "AddIndex", name, table });
    } else if (oldIndex.sourceName !== newIndex.sourceName) {
      plan.steps.push({ kind: "ChangeIndexSourceName", name, table });
    }
  }
}

function planSequences(
  plan: MigrationPlan,
  oldTables: Map<string, TableDef>,
  newTables: Map<string, TableDef>,
  added: Set<string>,
  removed: Set<string>,
): void {
  const oldSequences = objectsOf(oldTables, (table) => table.sequences);
  const newSequences = objectsOf(newTables, (table) => table.sequences);
  for (const [name, { table }] of oldSequences) {
    if (!newSequences.has(name) && !removed.has(table)) {
      plan.steps.push({ kind: "RemoveSequence", name, table });
    }
  }
  for (const [name, { table, object }] of newSequences) {
    const old = oldSequences.get(name)?.object;
    if (old) {
      if (!sameJson(old, object)) {
        plan.prechecks.push({ sequence: name, table });
        plan.steps.push({ kind: "RemoveSequence", name, table });
        plan.steps.push({ kind: "AddSequence", name, table });
      }
    } else if (!added.has(table)) {
      plan.prechecks.push({ sequence: name, table });
      plan.steps.push({ kind: "AddSequence", name, table });
    }
  }
}

function planConstraints(
  plan: MigrationPlan,
  errors: MigrationError[],
  oldTables: Map<string, TableDef>,
  newTables: Map<string, TableDef>,
  added: Set<string>,
  removed: Set<string>,
): void {
  const oldConstraints = objectsOf(oldTables, (table) => table.uniqueConstraints);
  const newConstraints = objectsOf(newTables, (table) => table.uniqueConstraints);
  for (const [name, { table }] of newConstraints) {
    if (!oldConstraints.has(name) && !added.has(table)) {
      plan.steps.push({ kind: "AddConstraint", name, table });
    }
  }
  for (const [name, { table }] of oldConstraints) {
    if (!newConstraints.has(name) && !removed.has(table)) {
      plan.steps.push({ kind: "RemoveConstraint", name, table });
    }
  }
  for (const [name, { object }] of newConstraints) {
    const old = oldConstraints.get(name)?.object;
    if (old && !sameJson(old, object)) {
      errors.push(
        error(
          "ChangeUniqueConstraint",
          [name],
          `Changing a unique constraint ${name} requires a manual migration`,
        ),
      );
    }
  }
}

// --- views and row-level security ----------------------------------------------------------

function planViews(plan: MigrationPlan, oldDef: ModuleDef, newDef: ModuleDef): void {
  const oldViews = new Map(oldDef.views.map((view) => [view.name, view]));
  const newViews = new Map(newDef.views.map((view) => [view.name, view]));
  for (const name of oldViews.keys()) {
    if (!newViews.has(name)) {
      plan.steps.push({ kind: "RemoveView", name });
      ensureDisconnect(plan);
    }
  }
  for (const name of newViews.keys()) {
    if (!oldViews.has(name)) plan.steps.push({ kind: "AddView", name });
  }
  for (const [name, oldView] of oldViews) {
    const newView = newViews.get(name);
    if (!newView) continue;
    // Anonymity, primary key, parameter and row types: a change re-creates the view.
    const shape = (view: typeof oldView) =>
      JSON.stringify({
        anonymous: view.isAnonymous,
        primaryKey: view.primaryKey ?? null,
        params: resolveDeep({ tag: "Product", value: view.params }, view.typespace),
        row: resolveDeep({ tag: "Product", value: view.rowType }, view.typespace),
      });
    if (oldView.isPublic !== newView.isPublic) plan.steps.push({ kind: "ChangeAccess", name });
    if (shape(oldView) !== shape(newView)) {
      plan.steps.push({ kind: "AddView", name });
      plan.steps.push({ kind: "RemoveView", name });
      ensureDisconnect(plan);
    } else {
      plan.steps.push({ kind: "UpdateView", name });
    }
  }
}

function planRowLevelSecurity(plan: MigrationPlan, oldDef: ModuleDef, newDef: ModuleDef): void {
  const oldSql = oldDef.rowLevelSecurity.map((rule) => rule.sql);
  const newSql = newDef.rowLevelSecurity.map((rule) => rule.sql);
  const changed = !sameJson([...new Set(oldSql)].sort(), [...new Set(newSql)].sort());
  for (const sql of oldSql) plan.steps.push({ kind: "RemoveRowLevelSecurity", name: sql });
  for (const sql of newSql) plan.steps.push({ kind: "AddRowLevelSecurity", name: sql });
  if (changed) ensureDisconnect(plan);
}

// --- helpers -------------------------------------------------------------------------------

interface MigrationError {
  /** Position of SpacetimeDB's error variant, then its fields: the sort key. */
  order: number;
  fields: string[];
  text: string;
}

/** Declaration order of SpacetimeDB's `AutoMigrateError` (errors sort by it, then fields). */
const ERROR_ORDER = [
  "AddColumn",
  "RemoveColumn",
  "ReorderTable",
  "ChangeColumnType",
  "WithinChangeColumnType",
  "FewerVariants",
  "WithinFewerVariants",
  "RenamedVariant",
  "WithinRenamedVariant",
  "SizeMismatch",
  "WithinSizeMismatch",
  "AlignMismatch",
  "WithinAlignMismatch",
  "FewerFields",
  "WithinFewerFields",
  "RenamedField",
  "WithinRenamedField",
  "AddUniqueConstraint",
  "ChangeUniqueConstraint",
  "ChangeTableType",
  "ChangeTableEventFlag",
  "ChangeIndexAccessor",
];

function error(variant: string, fields: string[], text: string): MigrationError {
  const order = ERROR_ORDER.indexOf(variant);
  if (order < 0) throw new Error(`Unknown migration error kind "${variant}"`);
  return { order, fields, text };
}

function sortErrors(errors: MigrationError[]): string[] {
  const sorted = [...errors].sort((a, b) => {
    if (a.order !== b.order) return a.order - b.order;
    for (let i = 0; i < Math.min(a.fields.length, b.fields.length); i++) {
      const c = compareText(a.fields[i], b.fields[i]);
      if (c !== 0) return c;
    }
    return a.fields.length - b.fields.length;
  });
  const texts: string[] = [];
  for (const entry of sorted) if (texts.at(-1) !== entry.text) texts.push(entry.text);
  return texts;
}

function compareSteps(a: MigrationStep, b: MigrationStep): number {
  const order = STEP_ORDER.indexOf(a.kind) - STEP_ORDER.indexOf(b.kind);
  if (order !== 0) return order;
  const byName = compareText(a.name, b.name);
  if (byName !== 0) return byName;
  if (a.kind === "ChangeColumnAccessorName" && b.kind === "ChangeColumnAccessorName") {
    return compareText(a.column, b.column);
  }
  return 0;
}

function ensureDisconnect(plan: MigrationPlan): void {
  if (!planBreaksClients(plan)) plan.steps.push({ kind: "DisconnectAllUsers", name: "" });
}

function tablesByName(def: ModuleDef): Map<string, TableDef> {
  return new Map(def.tables.map((table) => [table.name, table]));
}

function objectsOf<T extends { name: string }>(
  tables: Map<string, TableDef>,
  pick: (table: TableDef) => T[],
): Map<string, { table: string; object: T }> {
  const out = new Map<string, { table: string; object: T }>();
  for (const table of tables.values()) {
    for (const object of pick(table)) out.set(object.name, { table: table.name, object });
  }
  return out;
}

/** Byte order, as Rust compares strings. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sameJson(a: unknown, b: unknown): boolean {
  const text = (value: unknown) =>
    JSON.stringify(value, (_key, v) => typeof v === "bigint" ? `${v}n` : v);
  return text(a) === text(b);
}

function rustOption(value: string | undefined): string {
  return value === undefined ? "None" : `Some(${JSON.stringify(value)})`;
}

/**
 * Nodes one resolved type may have. A typespace can reference one type several times per level
 * (Ref i = (a: Ref i+1, b: Ref i+1)), so a small definition can resolve to 2^depth nodes; the
 * definition is tenant output and migrations are planned on the server's main thread.
 */
const RESOLVED_TYPE_NODES_MAX = 65_536;

/** Resolves every Ref, at any depth (types of stored columns are never recursive). */
export function resolveDeep(type: AlgebraicType, typespace: Typespace): AlgebraicType {
  return resolveWithin(type, typespace, 0, { nodes: 0 });
}

function resolveWithin(
  type: AlgebraicType,
  typespace: Typespace,
  depth: number,
  counted: { nodes: number },
): AlgebraicType {
  if (depth > 64) throw new RangeError("Type nesting is too deep to compare");
  if (++counted.nodes > RESOLVED_TYPE_NODES_MAX) {
    throw new RangeError(
      `Type is too large to compare: over ${RESOLVED_TYPE_NODES_MAX} nodes once its references are resolved`,
    );
  }
  switch (type.tag) {
    case "Ref": {
      const target = typespace[type.value];
      if (target === undefined) throw new RangeError(`Type reference ${type.value} is unknown`);
      return resolveWithin(target, typespace, depth + 1, counted);
    }
    case "Sum":
      return {
        tag: "Sum",
        value: {
          variants: type.value.variants.map((variant) => ({
            name: variant.name,
            algebraicType: resolveWithin(variant.algebraicType, typespace, depth + 1, counted),
          })),
        },
      };
    case "Product":
      return {
        tag: "Product",
        value: {
          elements: type.value.elements.map((element) => ({
            name: element.name,
            algebraicType: resolveWithin(element.algebraicType, typespace, depth + 1, counted),
          })),
        },
      };
    case "Array":
      return { tag: "Array", value: resolveWithin(type.value, typespace, depth + 1, counted) };
    default:
      return type;
  }
}

/** SpacetimeDB's type notation (`fmt_algebraic_type`): `U32`, `Array<String>`, `(a: U8 | b: ())`. */
export function formatType(type: AlgebraicType): string {
  switch (type.tag) {
    case "Ref":
      return String(type.value);
    case "Sum": {
      const variants = type.value.variants;
      if (variants.length === 0) return "(|)";
      return "(" +
        variants.map((variant) =>
          (variant.name !== undefined ? `${variant.name}: ` : "") +
          formatType(variant.algebraicType)
        ).join(" | ") + ")";
    }
    case "Product":
      return "(" +
        type.value.elements.map((element, i) =>
          `${element.name ?? i}: ${formatType(element.algebraicType)}`
        ).join(", ") + ")";
    case "Array":
      return `Array<${formatType(type.value)}>`;
    default:
      return type.tag;
  }
}

interface Layout {
  size: number;
  align: number;
}

const PRIMITIVE_LAYOUTS: Record<string, Layout> = {
  Bool: { size: 1, align: 1 },
  I8: { size: 1, align: 1 },
  U8: { size: 1, align: 1 },
  I16: { size: 2, align: 2 },
  U16: { size: 2, align: 2 },
  I32: { size: 4, align: 4 },
  U32: { size: 4, align: 4 },
  F32: { size: 4, align: 4 },
  I64: { size: 8, align: 8 },
  U64: { size: 8, align: 8 },
  F64: { size: 8, align: 8 },
  I128: { size: 16, align: 16 },
  U128: { size: 16, align: 16 },
  I256: { size: 32, align: 32 },
  U256: { size: 32, align: 32 },
  // Strings and arrays live behind a 4-byte reference aligned to 2 in SpacetimeDB's tables.
  String: { size: 4, align: 2 },
};

const alignTo = (offset: number, align: number) => Math.ceil(offset / align) * align;

/** The in-table layout SpacetimeDB gives a (resolved) type: what a sum change must keep. */
function layoutOf(type: AlgebraicType): Layout {
  switch (type.tag) {
    case "Array":
      return PRIMITIVE_LAYOUTS.String;
    case "Product": {
      let offset = 0;
      let align = 1;
      for (const element of type.value.elements) {
        const child = layoutOf(element.algebraicType);
        offset = alignTo(offset, child.align) + child.size;
        align = Math.max(align, child.align);
      }
      return { size: alignTo(offset, align), align };
    }
    case "Sum": {
      let size = 0;
      let childAlign = 0;
      for (const variant of type.value.variants) {
        const child = layoutOf(variant.algebraicType);
        size = Math.max(size, child.size);
        childAlign = Math.max(childAlign, child.align);
      }
      const align = Math.max(childAlign, 1);
      const payload = childAlign === 0 ? size : alignTo(size, childAlign);
      return { size: align + payload, align };
    }
    case "Ref":
      throw new RangeError("Resolve type references before computing a layout");
    default:
      return PRIMITIVE_LAYOUTS[type.tag];
  }
}
