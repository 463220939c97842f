/**
 * Executes an automatic migration plan on a datastore: prechecks against the stored rows
 * (SpacetimeDB's crates/engine/src/update.rs texts), then builds the new schema's datastore and
 * moves the rows over (new columns get their default value appended). Deterministic: replay runs
 * the same function on the same rows and gets the same state. Throws MigrationFailedError
 * without touching the old datastore.
 */
import {
  type AlgebraicType,
  BinaryReader,
  decodeValue,
  INTEGER_BITS,
  isIntegerTag,
  type TableDef,
  type Value,
} from "../protocol/mod.ts";
import { Datastore, type TableSchema } from "../storage/mod.ts";
import type { ModuleInfo } from "./module_info.ts";
import { type MigrationPlan, resolveDeep } from "./auto_migrate.ts";
import { debugValue } from "./auto_migrate_format.ts";

export class MigrationFailedError extends Error {
  override name = "MigrationFailedError";
}

/** Rows moved per chunk: bounds the extra memory to one chunk of copies. */
const ROWS_PER_CHUNK = 16_384;

/**
 * Runs `plan` against `old` (built from `before`'s tables and `systemTables`); returns the new
 * datastore.
 */
export function migrateDatastore(
  old: Datastore,
  before: ModuleInfo,
  after: ModuleInfo,
  plan: MigrationPlan,
  options: {
    /** Host tables kept in the datastore besides the module's (e.g. st_var): carried as is. */
    systemTables?: TableSchema[];
    /** Receives SpacetimeDB's log lines for the steps (`Creating table `x``, …). */
    log?: (line: string) => void;
  } = {},
): Datastore {
  const log = options.log ?? (() => {});
  const systemTables = options.systemTables ?? [];
  const oldSchemas = new Map(before.tables.map((table) => [table.name, table]));
  const oldDefs = new Map(before.def.tables.map((table) => [table.name, table]));
  const newDefs = new Map(after.def.tables.map((table) => [table.name, table]));
  const rowsOf = (name: string) => old.committedCount(oldSchemas.get(name)!.tableId);

  for (const precheck of plan.prechecks) {
    const table = newDefs.get(precheck.table)!;
    const sequence = table.sequences.find((s) => s.name === precheck.sequence)!;
    const type = resolveDeep(table.columns[sequence.column].type, table.typespace);
    const [low, high] = integerRange(type);
    const min = clamp(sequence.minValue ?? 1n, low, high);
    const max = clamp(sequence.maxValue ?? (1n << 127n) - 1n, low, high);
    const oldSchema = oldSchemas.get(precheck.table)!;
    for (
      const value of columnValues(old, oldSchema, oldDefs.get(precheck.table)!, [sequence.column])
    ) {
      const n = BigInt(value[0] as number | bigint);
      if (n >= min && n <= max) {
        throw new MigrationFailedError(
          `Precheck failed: added sequence ${precheck.sequence} already has values in range`,
        );
      }
    }
  }

  const addColumns = new Set<string>();
  const resetSequences = new Set<string>();
  for (const step of plan.steps) {
    switch (step.kind) {
      case "RemoveTable":
        if (rowsOf(step.name) > 0) {
          throw new MigrationFailedError(
            `Cannot remove table \`${step.name}\`: table contains data. Clear the table's rows ` +
              "(e.g. via a reducer) before removing it from your schema.",
          );
        }
        log(`Dropping table \`${step.name}\``);
        break;
      case "AddTable":
        log(`Creating table \`${step.name}\``);
        break;
      case "AddSchedule":
        throw new MigrationFailedError("Adding schedules is not yet implemented");
      case "RemoveSchedule":
        throw new MigrationFailedError("Removing schedules is not yet implemented");
      case "AddConstraint": {
        const table = newDefs.get(step.table)!;
        const constraint = table.uniqueConstraints.find((c) => c.name === step.name)!;
        checkUnique(old, oldSchemas.get(step.table)!, oldDefs.get(step.table)!, constraint.columns);
        log(`Adding constraint \`${step.name}\` on table \`${step.table}\``);
        break;
      }
      case "RemoveConstraint":
        log(`Dropping constraint \`${step.name}\` on table \`${step.table}\``);
        break;
      case "AddIndex":
        log(`Creating index \`${step.name}\` on table \`${step.table}\``);
        break;
      case "RemoveIndex":
        log(`Dropping index \`${step.name}\` on table \`${step.table}\``);
        break;
      case "AddSequence":
        resetSequences.add(`${step.table}\u0000${step.name}`);
        log(`Adding sequence \`${step.name}\` to table \`${step.table}\``);
        break;
      case "RemoveSequence":
        resetSequences.add(`${step.table}\u0000${step.name}`);
        log(`Dropping sequence \`${step.name}\` from table \`${step.table}\``);
        break;
      case "ChangeColumns":
        log(`Changing columns of table \`${step.name}\``);
        break;
      case "AddColumns":
        addColumns.add(step.name);
        break;
      case "ChangeAccess":
        log(`Changing access of table \`${step.name}\``);
        break;
      case "ChangePrimaryKey":
        log(`Changing primary key for table \`${step.name}\``);
        break;
      case "DisconnectAllUsers":
        log("Disconnecting all users");
        break;
      default:
        break;
    }
  }

  const next = new Datastore([...after.tables, ...systemTables]);
  for (const schema of systemTables) moveRows(old, schema, next, schema, undefined);
  const positions = old.sequencePositions();
  for (const schema of after.tables) {
    const oldSchema = oldSchemas.get(schema.name);
    if (!oldSchema) continue;
    const suffix = addColumns.has(schema.name)
      ? defaultSuffix(oldDefs.get(schema.name)!, newDefs.get(schema.name)!)
      : undefined;
    moveRows(old, oldSchema, next, schema, suffix);
    const newDef = newDefs.get(schema.name)!;
    const oldDef = oldDefs.get(schema.name)!;
    const sequences = [];
    for (const sequence of schema.sequences) {
      const name = newDef.sequences.find((s) => s.column === sequence.column)?.name ?? "";
      if (resetSequences.has(`${schema.name}\u0000${name}`)) continue;
      if (!oldDef.sequences.some((s) => s.name === name)) continue;
      const position = positions.find((p) =>
        p.tableId === oldSchema.tableId && p.column === sequence.column
      );
      if (position) {
        sequences.push({ tableId: schema.tableId, column: sequence.column, next: position.next });
      }
    }
    if (sequences.length > 0) next.replay({ tables: [], sequences });
  }
  return next;
}

/** Copies every row of one table into the new datastore, a chunk at a time. */
function moveRows(
  old: Datastore,
  from: TableSchema,
  into: Datastore,
  to: TableSchema,
  suffix: Uint8Array | undefined,
): void {
  if (from.isEvent) return;
  const tx = old.beginMutTx();
  try {
    const { ids } = tx.scanIds(from.tableId);
    const extra = suffix?.length ?? 0;
    // Each row is copied once, straight into its new array (one allocation per row).
    let scratch = new Uint8Array(256);
    for (let start = 0; start < ids.length; start += ROWS_PER_CHUNK) {
      const end = Math.min(ids.length, start + ROWS_PER_CHUNK);
      const inserts: Uint8Array[] = new Array(end - start);
      for (let i = start; i < end; i++) {
        let length = tx.copyRow(from.tableId, ids[i], scratch, 0);
        if (length < 0) {
          scratch = new Uint8Array(Math.max(-length, scratch.length * 2));
          length = tx.copyRow(from.tableId, ids[i], scratch, 0);
        }
        const row = new Uint8Array(length + extra);
        for (let b = 0; b < length; b++) row[b] = scratch[b];
        if (suffix !== undefined) row.set(suffix, length);
        inserts[i - start] = row;
      }
      into.replay({ tables: [{ tableId: to.tableId, inserts, deletes: [] }], sequences: [] });
    }
  } finally {
    tx.rollback();
  }
}

/** BSATN of the default values of the columns `after` adds at the end of `before`'s. */
function defaultSuffix(before: TableDef, after: TableDef): Uint8Array {
  const added = after.columns.slice(before.columns.length);
  const parts = added.map((column) => {
    if (column.defaultValue === undefined) {
      throw new MigrationFailedError(
        `Adding a column ${column.name} to table ${after.name} requires a default value annotation`,
      );
    }
    return column.defaultValue;
  });
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The values of `columns` of every stored row of a table. */
function* columnValues(
  old: Datastore,
  schema: TableSchema,
  def: TableDef,
  columns: number[],
): Generator<Value[]> {
  const rowType: AlgebraicType = { tag: "Product", value: def.rowType };
  for (const row of old.committedRows(schema.tableId)) {
    const values = decodeValue(new BinaryReader(row), rowType, def.typespace) as Value[];
    yield columns.map((column) => values[column]);
  }
}

/** SpacetimeDB's duplicate report when a unique constraint is added to a filled table. */
function checkUnique(old: Datastore, schema: TableSchema, def: TableDef, columns: number[]): void {
  const groups = new Map<string, { key: Value[]; count: number }>();
  for (const key of columnValues(old, schema, def, columns)) {
    const text = JSON.stringify(
      key,
      (_k, v) => typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? [...v] : v,
    );
    const group = groups.get(text);
    if (group) group.count++;
    else groups.set(text, { key, count: 1 });
  }
  const duplicates = [...groups.values()].filter((group) => group.count > 1);
  if (duplicates.length === 0) return;
  duplicates.sort((a, b) => compareValues(a.key, b.key));
  const types = columns.map((column) => resolveDeep(def.columns[column].type, def.typespace));
  const shown = duplicates.slice(0, 10).map((group) => {
    const value = columns.length === 1 ? debugValue(types[0], group.key[0], false) : debugValue(
      {
        tag: "Product",
        value: { elements: types.map((type) => ({ name: undefined, algebraicType: type })) },
      },
      group.key,
      false,
    );
    return `  - ${value} appears ${group.count} times`;
  });
  const columnList = `[${columns.map((column) => `ColId(${column})`).join(", ")}]`;
  throw new MigrationFailedError(
    `Cannot add unique constraint on table ${schema.tableId} column(s) ${columnList} ` +
      `(committed state):\n${duplicates.length} duplicate group(s) found.\n${shown.join("\n")}${
        duplicates.length > 10 ? "\n  ... and more" : ""
      }`,
  );
}

function compareValues(a: unknown, b: unknown): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = compareValues(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  if (
    (typeof a === "number" || typeof a === "bigint") &&
    (typeof b === "number" || typeof b === "bigint")
  ) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function integerRange(type: AlgebraicType): [bigint, bigint] {
  if (!isIntegerTag(type.tag)) {
    throw new MigrationFailedError(`A sequence needs an integer column, not ${type.tag}`);
  }
  const width = INTEGER_BITS[type.tag];
  if (type.tag.startsWith("U")) return [0n, (1n << BigInt(width)) - 1n];
  return [-(1n << BigInt(width - 1)), (1n << BigInt(width - 1)) - 1n];
}

function clamp(value: bigint, low: bigint, high: bigint): bigint {
  return value < low ? low : value > high ? high : value;
}

// --- what the commit log and snapshots say about schemas ------------------------------------

/**
 * The reducer name of a schema-change record in the commit log. No module can declare it (a
 * reducer name is an identifier), so replay tells the records apart by it.
 */
export const MIGRATION_RECORD_NAME = ":migrate";

const MIGRATION_MAGIC = 0x474d434c; // "LCMG"
const SNAPSHOT_SCHEMA_MAGIC = 0x4d53434c; // "LCSM"

/** The arguments of a schema-change record: the module definitions before and after. */
export function encodeMigrationArgs(from: Uint8Array, to: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + from.length + to.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MIGRATION_MAGIC, true);
  view.setUint32(4, from.length, true);
  out.set(from, 8);
  view.setUint32(8 + from.length, to.length, true);
  out.set(to, 12 + from.length);
  return out;
}

export function decodeMigrationArgs(bytes: Uint8Array): { from: Uint8Array; to: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = () => new Error("Malformed schema-change record in the commit log");
  if (bytes.length < 12 || view.getUint32(0, true) !== MIGRATION_MAGIC) throw fail();
  const fromLength = view.getUint32(4, true);
  if (8 + fromLength + 4 > bytes.length) throw fail();
  const toLength = view.getUint32(8 + fromLength, true);
  if (12 + fromLength + toLength !== bytes.length) throw fail();
  return {
    from: bytes.slice(8, 8 + fromLength),
    to: bytes.slice(12 + fromLength),
  };
}

/** A snapshot body that names the schema its rows belong to. */
export function wrapSnapshot(describe: Uint8Array, state: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + describe.length + state.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, SNAPSHOT_SCHEMA_MAGIC, true);
  view.setUint32(4, describe.length, true);
  out.set(describe, 8);
  out.set(state, 8 + describe.length);
  return out;
}

/** Splits a snapshot body; a snapshot written before migrations existed has no schema. */
export function unwrapSnapshot(
  bytes: Uint8Array,
): { describe: Uint8Array | undefined; state: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8 || view.getUint32(0, true) !== SNAPSHOT_SCHEMA_MAGIC) {
    return { describe: undefined, state: bytes };
  }
  const length = view.getUint32(4, true);
  if (8 + length > bytes.length) throw new Error("Malformed snapshot: schema runs past the end");
  return { describe: bytes.subarray(8, 8 + length), state: bytes.subarray(8 + length) };
}
