/**
 * Every row of spec/cli-codegen.md §4.2: the plan (steps, disconnect, text) for accepted
 * changes, SpacetimeDB's exact text for rejected ones, and the execution's prechecks and row
 * rewrites on a real datastore.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

/** Runs `fn`, which must throw; returns what it threw. */
function assertThrows(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an exception");
}
import {
  type AlgebraicType,
  encodeValueToBytes,
  type ModuleDef,
  type TableDef,
  type Value,
} from "../protocol/mod.ts";
import { Datastore } from "../storage/mod.ts";
import {
  formatMigrationErrors,
  type MigrationPlan,
  planBreaksClients,
  planMigration,
  resolveDeep,
} from "./auto_migrate.ts";
import { formatMigrationPlan } from "./auto_migrate_format.ts";
import { migrateDatastore } from "./migrate_datastore.ts";
import { type ModuleInfo, tableSchemas } from "./module_info.ts";

const U32: AlgebraicType = { tag: "U32" };
const U64: AlgebraicType = { tag: "U64" };
const STRING: AlgebraicType = { tag: "String" };
const unitVariant = (name: string) => ({
  name,
  algebraicType: { tag: "Product", value: { elements: [] } } as AlgebraicType,
});

interface ColumnSpec {
  name: string;
  type: AlgebraicType;
  default?: Value;
  source?: string;
}

function table(name: string, columns: ColumnSpec[], extra: Partial<TableDef> = {}): TableDef {
  const typespace = extra.typespace ?? [];
  return {
    name,
    sourceName: name,
    localName: name,
    namespace: "",
    productTypeRef: 0,
    rowType: {
      elements: columns.map((column) => ({ name: column.name, algebraicType: column.type })),
    },
    typespace,
    columns: columns.map((column, colId) => ({
      colId,
      name: column.name,
      sourceName: column.source ?? column.name,
      type: column.type,
      defaultValue: column.default === undefined
        ? undefined
        : encodeValueToBytes(column.type, column.default, typespace),
    })),
    primaryKey: undefined,
    indexes: [],
    uniqueConstraints: [],
    sequences: [],
    schedule: undefined,
    tableType: "User",
    access: "Public",
    isPublic: true,
    isEvent: false,
    ...extra,
  };
}

function view(
  name: string,
  row: ColumnSpec[],
  extra: Partial<ModuleDef["views"][number]> = {},
): ModuleDef["views"][number] {
  const rowType = { elements: row.map((c) => ({ name: c.name, algebraicType: c.type })) };
  return {
    id: 0,
    rawIndex: 0,
    name,
    sourceName: name,
    localName: name,
    namespace: "",
    isPublic: true,
    isAnonymous: false,
    params: { elements: [] },
    returnType: { tag: "Array", value: { tag: "Product", value: rowType } },
    returnKind: "array",
    productTypeRef: 0,
    rowType,
    columns: [],
    primaryKey: undefined,
    typespace: [],
    ...extra,
  };
}

function module(tables: TableDef[], rowLevelSecurity: string[] = []): ModuleDef {
  return {
    namespace: "",
    caseConversionPolicy: "SnakeCase",
    typespace: [],
    sourceTypespace: [],
    types: [],
    tables,
    reducers: [],
    procedures: [],
    views: [],
    rowLevelSecurity: rowLevelSecurity.map((sql) => ({ sql })) as ModuleDef["rowLevelSecurity"],
    httpHandlers: [],
    httpRoutes: [],
    lifecycle: {},
    submodules: [],
  };
}

const person = (extra: Partial<TableDef> = {}, more: ColumnSpec[] = []) =>
  table("person", [{ name: "id", type: U32 }, { name: "name", type: STRING }, ...more], extra);

function plan(before: ModuleDef, after: ModuleDef): MigrationPlan {
  const outcome = planMigration(before, after);
  if (!outcome.ok) throw new Error(`expected a plan, got: ${outcome.errors.join(" / ")}`);
  return outcome.plan;
}

function rejected(before: ModuleDef, after: ModuleDef): string[] {
  const outcome = planMigration(before, after);
  if (outcome.ok) throw new Error("expected the change to be refused");
  return outcome.errors;
}

const kinds = (p: MigrationPlan) => p.steps.map((step) => step.kind);
const text = (p: MigrationPlan) => formatMigrationPlan(p, { color: false });
const HEADER = `${"━".repeat(60)}\nDatabase Migration Plan\n${"━".repeat(60)}\n\n`;

function info(def: ModuleDef): ModuleInfo {
  return { def, tables: tableSchemas(def) } as ModuleInfo;
}

/** A datastore of `def` holding `rows` (values per table name). */
function filled(def: ModuleDef, rows: Record<string, Value[][]>): Datastore {
  const tables = tableSchemas(def);
  const store = new Datastore(tables);
  for (const schema of tables) {
    const tableDef = def.tables.find((t) => t.name === schema.name)!;
    const rowType: AlgebraicType = { tag: "Product", value: tableDef.rowType };
    const inserts = (rows[schema.name] ?? []).map((row) =>
      encodeValueToBytes(rowType, row, tableDef.typespace)
    );
    store.replay({ tables: [{ tableId: schema.tableId, inserts, deletes: [] }], sequences: [] });
  }
  return store;
}

function runMigration(before: ModuleDef, after: ModuleDef, store: Datastore): Datastore {
  return migrateDatastore(store, info(before), info(after), plan(before, after));
}

Deno.test("add table: AddTable with its indexes, no disconnect; plan text as SpacetimeDB's", () => {
  const note = table("note", [{ name: "id", type: U64 }, { name: "text", type: STRING }], {
    primaryKey: 0,
    indexes: [{
      name: "note_id_idx_btree",
      sourceName: "note_id_idx_btree",
      accessorName: "id",
      algorithm: "btree",
      columns: [0],
    }],
    uniqueConstraints: [{ name: "note_id_key", columns: [0] }],
    sequences: [{
      name: "note_id_seq",
      column: 0,
      start: undefined,
      minValue: undefined,
      maxValue: undefined,
      increment: 1n,
    }],
  });
  const p = plan(module([person()]), module([person(), note]));
  assertEquals(kinds(p), ["AddTable"]);
  assertEquals(planBreaksClients(p), false);
  assertEquals(
    text(p),
    HEADER +
      "▸ Created user table: note (public)\n    Columns:\n        • id: U64\n        • text: String\n" +
      "    Unique constraints:\n        • note_id_key on [id]\n    Indexes:\n" +
      "        • note_id_idx_btree on [id]\n    Auto-increment constraints:\n" +
      "        • note_id_seq on id\n\n",
  );
});

Deno.test("remove table: planned with a disconnect; fails at execution while it has rows", () => {
  const before = module([person(), table("old", [{ name: "x", type: U32 }])]);
  const after = module([person()]);
  const p = plan(before, after);
  assertEquals(kinds(p), ["RemoveTable", "DisconnectAllUsers"]);
  assertEquals(
    text(p),
    HEADER + "▸ Removed table: old\n\n" +
      "!!! Warning: All clients will be disconnected due to breaking schema changes\n",
  );
  const error = assertThrows(() => runMigration(before, after, filled(before, { old: [[1]] })));
  assertEquals(
    (error as Error).message,
    "Cannot remove table `old`: table contains data. Clear the table's rows (e.g. via a reducer) " +
      "before removing it from your schema.",
  );
  const emptied = runMigration(before, after, filled(before, { person: [[1, "a"]] }));
  assertEquals(emptied.tables().map((t) => t.name), ["person"]);
});

Deno.test("rename table = remove + add (works only when the old table is empty)", () => {
  const p = plan(
    module([person()]),
    module([table("human", person().columns.map((c) => ({ name: c.name, type: c.type })))]),
  );
  assertEquals(kinds(p), ["RemoveTable", "AddTable", "DisconnectAllUsers"]);
});

Deno.test("add column with a default: AddColumns, disconnect; existing rows get the default", () => {
  const before = module([person()]);
  const after = module([person({}, [{ name: "age", type: U32, default: 0 }])]);
  const p = plan(before, after);
  assertEquals(kinds(p), ["AddColumns", "DisconnectAllUsers"]);
  assertEquals(
    text(p),
    HEADER + "▸ Created column in table person\n    + age: U32 (default: U32(\n    0,\n))\n" +
      "!!! Warning: All clients will be disconnected due to breaking schema changes\n",
  );
  const migrated = runMigration(before, after, filled(before, { person: [[1, "a"], [2, "b"]] }));
  const rows = migrated.committedRows(tableSchemas(after)[0].tableId);
  const expected = [[1, "a", 0], [2, "b", 0]].map((row) =>
    encodeValueToBytes({ tag: "Product", value: after.tables[0].rowType }, row)
  );
  assertEquals(rows.map((r) => [...r]).sort(), expected.map((r) => [...r]).sort());
});

Deno.test("add column without a default, remove column, reorder, rename: refused with the texts", () => {
  const base = module([person()]);
  assertEquals(rejected(base, module([person({}, [{ name: "age", type: U32 }])])), [
    "Adding a column age to table person requires a default value annotation",
  ]);
  assertEquals(rejected(base, module([table("person", [{ name: "id", type: U32 }])])), [
    "Removing a column name from table person requires a manual migration",
  ]);
  assertEquals(
    rejected(
      base,
      module([table("person", [{ name: "name", type: STRING }, { name: "id", type: U32 }])]),
    ),
    ["Reordering table person requires a manual migration"],
  );
  const inserted = rejected(
    base,
    module([table("person", [{ name: "id", type: U32 }, { name: "age", type: U32 }, {
      name: "name",
      type: STRING,
    }])]),
  );
  assertEquals(inserted, [
    "Adding a column age to table person requires a default value annotation",
    "Reordering table person requires a manual migration",
  ]);
  assertEquals(
    rejected(
      base,
      module([table("person", [{ name: "id", type: U32 }, { name: "nom", type: STRING }])]),
    ),
    [
      "Adding a column nom to table person requires a default value annotation",
      "Removing a column name from table person requires a manual migration",
    ],
  );
  // ErrorStream's display: a header, then each error and a blank line.
  assertEquals(
    formatMigrationErrors(["a", "b"]),
    "Errors occurred:\na\n\nb\n\n",
  );
});

Deno.test("change a column's type: refused with both types", () => {
  assertEquals(
    rejected(
      module([person()]),
      module([table("person", [{ name: "id", type: U64 }, { name: "name", type: STRING }])]),
    ),
    ["Changing the type of column id in table person from U32 to U64 requires a manual migration"],
  );
});

Deno.test("enum column: appended variants are ChangeColumns (no disconnect); others refused", () => {
  const color = (...names: string[]): AlgebraicType => ({
    tag: "Sum",
    value: { variants: names.map(unitVariant) },
  });
  const with_ = (type: AlgebraicType) =>
    module([table("paint", [{ name: "id", type: U32 }, { name: "color", type }])]);
  const p = plan(with_(color("Red", "Green")), with_(color("Red", "Green", "Blue")));
  assertEquals(kinds(p), ["ChangeColumns"]);
  assertEquals(planBreaksClients(p), false);
  assertEquals(
    text(p),
    HEADER + "▸ Changed columns for table paint\n" +
      "    ~ Modified: color ((Red: () | Green: ()) → (Red: () | Green: () | Blue: ()))\n",
  );
  assertEquals(rejected(with_(color("Red", "Green")), with_(color("Red"))), [
    "Changing the type of column color in table paint from (Red: () | Green: ()) to (Red: ()), with fewer variants, requires a manual migration",
  ]);
  assertEquals(rejected(with_(color("Red", "Green")), with_(color("Red", "Blue"))), [
    "Changing the type of column color in table paint from (Red: () | Green: ()) to (Red: () | Blue: ()), with a renamed variant, requires a manual migration",
  ]);
  const wide: AlgebraicType = {
    tag: "Sum",
    value: {
      variants: [unitVariant("Red"), unitVariant("Green"), { name: "Rgb", algebraicType: U32 }],
    },
  };
  assertEquals(rejected(with_(color("Red", "Green")), with_(wide)), [
    "Changing the type of column color in table paint from (Red: () | Green: ()) to (Red: () | Green: () | Rgb: U32), requires a manual migration, due to size mismatch",
    "Changing the type of column color in table paint from (Red: () | Green: ()) to (Red: () | Green: () | Rgb: U32), requires a manual migration, due to alignment mismatch",
  ]);
  const point = (names: string[]): AlgebraicType => ({
    tag: "Product",
    value: { elements: names.map((name) => ({ name, algebraicType: U32 })) },
  });
  assertEquals(rejected(with_(point(["x", "y"])), with_(point(["x", "z"]))), [
    "Changing the type of column color in table paint from (x: U32, y: U32) to (x: U32, z: U32), with a renamed field, requires a manual migration",
  ]);
  assertEquals(rejected(with_(point(["x", "y"])), with_(point(["x"]))), [
    "Changing the type of column color in table paint from (x: U32, y: U32) to (x: U32), with fewer fields, requires a manual migration",
  ]);
  assertEquals(
    rejected(
      with_({ tag: "Array", value: color("Red", "Green") }),
      with_({ tag: "Array", value: color("Red") }),
    ),
    [
      "Changing a type within column color in table paint from (Red: () | Green: ()) to (Red: ()), with fewer variants, requires a manual migration",
    ],
  );
});

Deno.test("private <-> public: ChangeAccess, no disconnect", () => {
  const p = plan(module([person()]), module([person({ access: "Private", isPublic: false })]));
  assertEquals(kinds(p), ["ChangeAccess"]);
  assertEquals(text(p), HEADER + "▸ Changed access for table person (public → private)\n");
  const back = plan(module([person({ access: "Private", isPublic: false })]), module([person()]));
  assertEquals(text(back), HEADER + "▸ Changed access for table person (private → public)\n");
});

const nameIndex = (extra: Partial<TableDef["indexes"][number]> = {}) => ({
  name: "person_name_idx_btree",
  sourceName: "person_name_idx_btree",
  accessorName: "byName" as string | undefined,
  algorithm: "btree" as const,
  columns: [1],
  ...extra,
});

Deno.test("indexes: add, remove, algorithm change = remove + add; accessor rename refused", () => {
  const bare = module([person()]);
  const indexed = module([person({ indexes: [nameIndex()] })]);
  const added = plan(bare, indexed);
  assertEquals(kinds(added), ["AddIndex"]);
  assertEquals(
    text(added),
    HEADER + "▸ Created index person_name_idx_btree on [name] of table person\n",
  );
  const removed = plan(indexed, bare);
  assertEquals(
    text(removed),
    HEADER + "▸ Removed index person_name_idx_btree on [name] of table person\n",
  );
  assertEquals(
    kinds(plan(indexed, module([person({ indexes: [nameIndex({ algorithm: "hash" })] })]))),
    ["RemoveIndex", "AddIndex"],
  );
  assertEquals(
    rejected(indexed, module([person({ indexes: [nameIndex({ accessorName: "named" })] })])),
    [
      'Changing the accessor name on index person_name_idx_btree from Some("byName") to Some("named") requires a manual migration',
    ],
  );
  // Rows stay; the new index is built over them.
  const store = runMigration(bare, indexed, filled(bare, { person: [[1, "a"], [2, "a"]] }));
  assertEquals(store.committedCount(tableSchemas(indexed)[0].tableId), 2);
});

Deno.test("unique constraint / primary key added: planned, duplicate groups refuse it at execution", () => {
  const bare = module([person()]);
  const unique = module([person({
    primaryKey: 1,
    indexes: [nameIndex()],
    uniqueConstraints: [{ name: "person_name_key", columns: [1] }],
  })]);
  const p = plan(bare, unique);
  assertEquals(kinds(p), ["AddIndex", "AddConstraint", "ChangePrimaryKey"]);
  assertEquals(
    text(p),
    HEADER + "▸ Created index person_name_idx_btree on [name] of table person\n" +
      "▸ Created unique constraint person_name_key on [name] of table person\n" +
      "▸ Changed primary key on table person (added on column 1)\n",
  );
  const tableId = tableSchemas(bare)[0].tableId;
  const error = assertThrows(() =>
    runMigration(
      bare,
      unique,
      filled(bare, { person: [[1, "a"], [2, "a"], [3, "b"], [4, "b"], [5, "b"], [6, "c"]] }),
    )
  );
  assertEquals(
    (error as Error).message,
    `Cannot add unique constraint on table ${tableId} column(s) [ColId(1)] (committed state):\n` +
      '2 duplicate group(s) found.\n  - String("a") appears 2 times\n  - String("b") appears 3 times',
  );
  const ok = runMigration(bare, unique, filled(bare, { person: [[1, "a"], [2, "b"]] }));
  assertEquals(ok.committedCount(tableId), 2);
  // Removing it again is always allowed.
  assertEquals(kinds(plan(unique, bare)), ["RemoveIndex", "RemoveConstraint", "ChangePrimaryKey"]);
});

const idSequence = {
  name: "person_id_seq",
  column: 0,
  start: undefined,
  minValue: undefined,
  maxValue: undefined,
  increment: 1n,
};

Deno.test("auto-increment added: precheck refuses existing values in range; removal allowed", () => {
  const bare = module([person()]);
  const auto = module([person({ sequences: [idSequence] })]);
  const p = plan(bare, auto);
  assertEquals(kinds(p), ["AddSequence"]);
  assertEquals(p.prechecks, [{ sequence: "person_id_seq", table: "person" }]);
  assertEquals(
    text(p),
    HEADER + "▸ Created auto-increment constraint person_id_seq on column id of table person\n",
  );
  const error = assertThrows(() => runMigration(bare, auto, filled(bare, { person: [[3, "a"]] })));
  assertEquals(
    (error as Error).message,
    "Precheck failed: added sequence person_id_seq already has values in range",
  );
  runMigration(bare, auto, filled(bare, { person: [[0, "zero"]] }));
  assertEquals(kinds(plan(auto, bare)), ["RemoveSequence"]);
});

Deno.test("schedules: planned, refused at execution as not yet implemented", () => {
  const schedule = {
    name: "person_sched",
    atColumn: 1,
    idColumn: 0,
    functionName: "tick",
    functionKind: "reducer" as const,
  };
  const bare = module([person()]);
  const scheduled = module([person({ schedule })]);
  const p = plan(bare, scheduled);
  assertEquals(kinds(p), ["AddSchedule"]);
  assertEquals(text(p), HEADER + "▸ Created schedule for table person calling reducer tick\n");
  assertEquals(
    (assertThrows(() => runMigration(bare, scheduled, filled(bare, {}))) as Error).message,
    "Adding schedules is not yet implemented",
  );
  assertEquals(
    (assertThrows(() => runMigration(scheduled, bare, filled(scheduled, {}))) as Error).message,
    "Removing schedules is not yet implemented",
  );
});

Deno.test("table type and event flag changes are refused", () => {
  assertEquals(rejected(module([person()]), module([person({ tableType: "System" })])), [
    "Changing the table type of table person from User to System requires a manual migration",
  ]);
  assertEquals(rejected(module([person()]), module([person({ isEvent: true })])), [
    "Changing the event flag of table person requires a manual migration",
  ]);
  // Columns of an event table may change: it holds no rows, but clients must reconnect.
  const event = (columns: ColumnSpec[]) => module([table("ping", columns, { isEvent: true })]);
  const p = plan(event([{ name: "x", type: U32 }]), event([{ name: "y", type: STRING }]));
  assertEquals(kinds(p), ["ReschemaEventTable", "DisconnectAllUsers"]);
});

Deno.test("row-level security added, removed or changed: disconnect all", () => {
  const p = plan(module([person()]), module([person()], ["SELECT * FROM person"]));
  assertEquals(kinds(p), ["AddRowLevelSecurity", "DisconnectAllUsers"]);
  assertEquals(
    text(p),
    HEADER + "▸ Created row level security policy:\n    `SELECT * FROM person`\n" +
      "!!! Warning: All clients will be disconnected due to breaking schema changes\n",
  );
  const same = plan(
    module([person()], ["SELECT * FROM person"]),
    module([person()], ["SELECT * FROM person"]),
  );
  assertEquals(planBreaksClients(same), false);
  assertEquals(text(same), HEADER);
});

Deno.test("accessor-only renames: ChangeTableAccessorName / ChangeColumnAccessorName", () => {
  const renamed = module([table("person", [{ name: "id", type: U32 }, {
    name: "name",
    type: STRING,
    source: "fullName",
  }], { sourceName: "people" })]);
  const p = plan(module([person()]), renamed);
  assertEquals(kinds(p), ["ChangeTableAccessorName", "ChangeColumnAccessorName"]);
  assertEquals(
    text(p),
    HEADER + "▸ Changed table accessor name for person\n" +
      "▸ Changed column accessor name for person.name\n",
  );
});

Deno.test("an unchanged schema plans nothing but the header (printed on every update)", () => {
  const p = plan(module([person()]), module([person()]));
  assertEquals(p.steps, []);
  assertEquals(text(p), HEADER);
});

Deno.test("coloured plan: termcolor's ANSI codes around the same text", () => {
  const p = plan(
    module([person()]),
    module([person({}, [{ name: "age", type: U32, default: 0 }])]),
  );
  const colored = formatMigrationPlan(p, { color: true });
  assert(colored.includes("\x1b[0m\x1b[1m\x1b[32mCreated\x1b[0m"));
  assert(colored.includes("\x1b[41m!!! Warning"));
  // deno-lint-ignore no-control-regex
  assertEquals(colored.replace(/\x1b\[[0-9;]*m/g, ""), text(p));
});

Deno.test("views: added, recomputed, access changed; a changed row type or removal disconnects", () => {
  const withViews = (...views: ModuleDef["views"]) => ({ ...module([person()]), views });
  const mine = view("my_people", [{ name: "id", type: U32 }]);
  assertEquals(kinds(plan(withViews(), withViews(mine))), ["AddView"]);
  assertEquals(
    text(plan(withViews(), withViews(mine))),
    HEADER + "▸ ▸ Created view: my_people\n    Columns:\n        • id: U32\n\n",
  );
  // Same shape: recomputed, nothing printed, clients kept.
  const same = plan(withViews(mine), withViews({ ...mine, id: 3, rawIndex: 2 }));
  assertEquals(kinds(same), ["UpdateView"]);
  assertEquals(text(same), HEADER);
  const hidden = plan(withViews(mine), withViews({ ...mine, isPublic: false }));
  assertEquals(kinds(hidden), ["ChangeAccess", "UpdateView"]);
  assertEquals(planBreaksClients(hidden), false);
  const reshaped = plan(
    withViews(mine),
    withViews(view("my_people", [{ name: "id", type: U32 }, { name: "name", type: STRING }])),
  );
  assertEquals(kinds(reshaped), ["RemoveView", "AddView", "DisconnectAllUsers"]);
  assertEquals(kinds(plan(withViews(mine), withViews())), ["RemoveView", "DisconnectAllUsers"]);
});

Deno.test("reducers and procedures are not part of the plan", () => {
  const before = module([person()]);
  const after = {
    ...module([person()]),
    reducers: [{ name: "brand_new" }] as unknown as ModuleDef["reducers"],
  };
  assertEquals(plan(before, after).steps, []);
});

Deno.test("resolveDeep() refuses a type that references the same type twice per level (a type bomb)", () => {
  // Ref i = (a: Ref i+1, b: Ref i+1): 20 levels are 2^20 nodes once resolved. The module's
  // describe is tenant output and planMigration runs on the server's main thread.
  const typespace: AlgebraicType[] = Array.from({ length: 20 }, (_, i) => ({
    tag: "Product",
    value: {
      elements: [
        { name: "a", algebraicType: { tag: "Ref", value: i + 1 } },
        { name: "b", algebraicType: { tag: "Ref", value: i + 1 } },
      ],
    },
  }));
  typespace.push(U32);
  const error = assertThrows(() => resolveDeep({ tag: "Ref", value: 0 }, typespace));
  assert(error instanceof RangeError && /too large/.test(error.message), String(error));
  // An ordinary nested type resolves.
  assertEquals(resolveDeep({ tag: "Ref", value: 19 }, typespace).tag, "Product");
});
