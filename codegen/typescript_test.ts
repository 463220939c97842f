/**
 * Golden tests of the TypeScript bindings: the generated files for fixture modules
 * (built with the official spacetimedb@2.8.3 library) must equal the committed copies
 * under tests/fixtures/codegen/<module>/. Regenerate those after a deliberate change with
 * `UPDATE_GOLDEN=1 deno test -A codegen/typescript_test.ts` and review the diff.
 * Also: the bindings type-check against the official SDK, and what cannot be expressed
 * is refused with a clear error.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  canonicalRawModuleDef,
  decodeRawModuleDef,
  emptyRawModuleDefV10,
  type ModuleDef,
  rawModuleDefFromJson,
  rawModuleDefToJson,
  type RawModuleDefV10,
  resolveModuleDef,
  stringifyJson,
} from "../protocol/mod.ts";
import { describeFixtureModule } from "../tests/support/describe_module.ts";
import { CodegenError, GENERATED_FILE_MARKER, generateTypeScript } from "./mod.ts";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const GOLDEN_ROOT = join(REPO_ROOT, "tests", "fixtures", "codegen");

async function fixtureDef(name: string): Promise<ModuleDef> {
  return resolveModuleDef(decodeRawModuleDef(await describeFixtureModule(name)));
}

async function readTree(dir: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [k, v] of await readTree(join(dir, entry.name), rel)) out.set(k, v);
    } else out.set(rel, await Deno.readTextFile(join(dir, entry.name)));
  }
  return out;
}

async function writeTree(dir: string, files: { path: string; text: string }[]): Promise<void> {
  for (const file of files) {
    const path = join(dir, file.path);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, file.text);
  }
}

async function checkGolden(module: string): Promise<void> {
  const { files } = generateTypeScript(await fixtureDef(module));
  const goldenDir = join(GOLDEN_ROOT, module);
  if (Deno.env.get("UPDATE_GOLDEN") === "1") {
    await Deno.remove(goldenDir, { recursive: true }).catch(() => {});
    await writeTree(goldenDir, files);
  }
  const golden = await readTree(goldenDir);
  assertEquals(files.map((f) => f.path), [...golden.keys()].sort());
  for (const file of files) {
    assertEquals(file.text, golden.get(file.path), `${module}/${file.path} differs from golden`);
  }
}

Deno.test("generateTypeScript() matches the golden bindings of the every-type module", async () => {
  await checkGolden("codegen_everything");
});

Deno.test("generateTypeScript() matches the golden bindings of the chat module", async () => {
  await checkGolden("chat");
});

Deno.test("generateTypeScript() writes views as tables without indexes", async () => {
  await checkGolden("codegen_view");
  const { files } = generateTypeScript(await fixtureDef("codegen_view"));
  assertEquals(files.map((f) => f.path), [
    "index.ts",
    "my_best_score_table.ts",
    "scores_table.ts",
    "top_scores_table.ts",
    "types.ts",
    "types/procedures.ts",
    "types/reducers.ts",
  ]);
  const index = files.find((f) => f.path === "index.ts")!.text;
  assert(
    index.includes(
      "  myBestScore: __table({\n    name: 'explicit_best_view',\n    indexes: [\n    ],",
    ),
    index,
  );
  assert(index.includes("  topScores: __table({\n    name: 'top_scores',"), index);
});

Deno.test("tests/fixtures/bindings/chat is the chat module's generated bindings (.ts imports)", async () => {
  // Other tests import these bindings without --sloppy-imports; regenerate with
  // `deno task cli generate -l ts -o tests/fixtures/bindings/chat -b <chat bundle>
  // --import-extension .ts` after changing the chat module or the generator.
  const { files } = generateTypeScript(await fixtureDef("chat"), { importExtension: ".ts" });
  const committed = await readTree(join(REPO_ROOT, "tests", "fixtures", "bindings", "chat"));
  assertEquals(files.map((f) => f.path), [...committed.keys()].sort());
  for (const file of files) assertEquals(file.text, committed.get(file.path), file.path);
  const index = files.find((f) => f.path === "index.ts")!.text;
  assert(index.includes(`import UserRow from "./user_table.ts";`), index);
});

Deno.test("tests/fixtures/bindings/views_rls is the views_rls module's generated bindings", async () => {
  // Regenerate like the chat bindings above, from the views_rls fixture's bundle.
  const { files } = generateTypeScript(await fixtureDef("views_rls"), { importExtension: ".ts" });
  const committed = await readTree(join(REPO_ROOT, "tests", "fixtures", "bindings", "views_rls"));
  assertEquals(files.map((f) => f.path), [...committed.keys()].sort());
  for (const file of files) assertEquals(file.text, committed.get(file.path), file.path);
});

Deno.test("tests/fixtures/bindings/client_features is the client_features module's generated bindings", async () => {
  // Regenerate like the chat bindings above, from the client_features fixture's bundle.
  const { files } = generateTypeScript(await fixtureDef("client_features"), {
    importExtension: ".ts",
  });
  const committed = await readTree(
    join(REPO_ROOT, "tests", "fixtures", "bindings", "client_features"),
  );
  assertEquals(files.map((f) => f.path), [...committed.keys()].sort());
  for (const file of files) assertEquals(file.text, committed.get(file.path), file.path);
});

Deno.test("the schema route's JSON gives the same bindings as the module (generate --database)", async () => {
  for (const module of ["codegen_everything", "codegen_view"]) {
    const def = await fixtureDef(module);
    const json = JSON.parse(stringifyJson(rawModuleDefToJson(canonicalRawModuleDef(def))));
    const fromServer = resolveModuleDef(rawModuleDefFromJson(json));
    assertEquals(generateTypeScript(fromServer), generateTypeScript(def), module);
  }
});

Deno.test("generateTypeScript() names files and keys as spacetime generate does", async () => {
  const { files, skippedPrivateTables } = generateTypeScript(
    await fixtureDef("codegen_everything"),
  );
  const paths = files.map((f) => f.path);
  // Digits and acronyms split into words for file names: player2Stats, setHPValue2, noop2.
  for (
    const expected of [
      "player_2_stats_table.ts",
      "snake_case_table_table.ts",
      "set_hp_value_2_reducer.ts",
      "do_snake_thing_reducer.ts",
      "renamed_reducer_reducer.ts",
      "noop_2_procedure.ts",
      "index.ts",
      "types.ts",
      "types/reducers.ts",
      "types/procedures.ts",
    ]
  ) assert(paths.includes(expected), `missing ${expected} in ${paths.join(", ")}`);
  // Private tables, lifecycle and scheduled reducers are not client-visible.
  assertEquals(skippedPrivateTables, ["secret_notes"]);
  for (const absent of ["secret_notes_table.ts", "init_reducer.ts", "tick_reducer.ts"]) {
    assert(!paths.includes(absent), `${absent} must not be generated`);
  }
  for (const file of files) assert(file.text.startsWith(GENERATED_FILE_MARKER), file.path);
  const index = files.find((f) => f.path === "index.ts")!.text;
  assert(index.includes(`__reducerSchema("explicit_reducer_name", RenamedReducerReducer)`));
  assert(index.includes(`__reducerSchema("set_hp_value_2", SetHpValue2Reducer)`));
  assert(index.includes(`player2Stats: __table({\n    name: 'player2_stats_explicit',`));
  assert(index.includes(`snakeCaseTable: __table({`));
  assert(index.includes(`cliVersion: "2.8.3" as const`));
  const types = files.find((f) => f.path === "types.ts")!.text;
  assert(types.includes(`export const HttpRequest2 = __t.object("HttpRequest2", {`));
  assert(types.includes(`  userId: __t.u32(),\n  apiUrl: __t.string(),`));
  assert(types.includes(`export const GeometryShape = __t.enum("GeometryShape", {`));
  // Reducer parameter types carry the reducer's name and are not repeated in types.ts.
  assert(!types.includes(`export const AddShape =`));
  const withPrivate = generateTypeScript(await fixtureDef("codegen_everything"), {
    includePrivate: true,
  });
  assertEquals(withPrivate.skippedPrivateTables, []);
  assert(withPrivate.files.some((f) => f.path === "secret_notes_table.ts"));
});

function rawWithTable(columnType: RawModuleDefV10["typespace"][number]): RawModuleDefV10 {
  const raw = emptyRawModuleDefV10();
  raw.typespace = [{
    tag: "Product",
    value: { elements: [{ name: "col", algebraicType: columnType }] },
  }];
  raw.types = [{ sourceName: { scope: [], sourceName: "Row" }, ty: 0, customOrdering: true }];
  raw.tables = [{
    sourceName: "things",
    productTypeRef: 0,
    primaryKey: [],
    indexes: [],
    constraints: [],
    sequences: [],
    tableType: "User",
    tableAccess: "Public",
    defaultValues: [],
    isEvent: false,
  }];
  return raw;
}

Deno.test("generateTypeScript() refuses types the client SDK cannot express", () => {
  const anonymousProduct = rawWithTable({
    tag: "Product",
    value: { elements: [{ name: "a", algebraicType: { tag: "U8" } }] },
  });
  throws(
    () => generateTypeScript(resolveModuleDef(anonymousProduct)),
    (e: Error) =>
      e instanceof CodegenError && /table "things", field "col" has an unnamed product/.test(
        e.message,
      ),
  );
  const never = rawWithTable({ tag: "Sum", value: { variants: [] } });
  throws(
    () => generateTypeScript(resolveModuleDef(never)),
    (e: Error) => e instanceof CodegenError && /empty sum type \(never\)/.test(e.message),
  );
});

Deno.test("generateTypeScript() quotes keys that are not identifiers and refuses clashing names", () => {
  const oddColumn = rawWithTable({ tag: "U8" });
  const row = oddColumn.typespace[0] as {
    tag: "Product";
    value: { elements: { name?: string }[] };
  };
  row.value.elements[0].name = "1st place";
  const table = generateTypeScript(resolveModuleDef(oddColumn)).files
    .find((f) => f.path === "things_table.ts")!.text;
  assert(table.includes(`  "1StPlace": __t.u8().name("1_st_place"),\n`), table);

  const clash = rawWithTable({ tag: "U8" });
  clash.caseConversionPolicy = "None";
  clash.tables.push({ ...clash.tables[0], sourceName: "fooBar" });
  clash.tables[0] = { ...clash.tables[0], sourceName: "foo_bar" };
  throws(
    () => generateTypeScript(resolveModuleDef(clash)),
    (e: Error) =>
      e instanceof CodegenError && /both be written to "foo_bar_table.ts"/.test(e.message),
  );

  const clashingType = rawWithTable({ tag: "Ref", value: 1 });
  clashingType.typespace.push({ tag: "Product", value: { elements: [] } });
  clashingType.types.push({
    sourceName: { scope: [], sourceName: "DoThing" },
    ty: 1,
    customOrdering: true,
  });
  clashingType.reducers = [{
    sourceName: "doThing",
    params: { elements: [] },
    visibility: "ClientCallable",
    okReturnType: { tag: "Product", value: { elements: [] } },
    errReturnType: { tag: "String" },
  }];
  throws(
    () => generateTypeScript(resolveModuleDef(clashingType)),
    (e: Error) =>
      e instanceof CodegenError && /Type "DoThing" has the name of a reducer/.test(e.message),
  );

  const badType = rawWithTable({ tag: "U8" });
  badType.types[0].sourceName.sourceName = "2D";
  throws(
    () => generateTypeScript(resolveModuleDef(badType)),
    (e: Error) =>
      e instanceof CodegenError && /type "2D" becomes "2D" in the bindings/.test(e.message),
  );
});

const CLIENT_SOURCE = `
import { DbConnection, procedures, reducers, tables, type EventContext } from "./index";
import type { BoundingBox, Color, GeometryShape, HttpRequest2 } from "./types";
import type { AddShapeParams } from "./types/reducers";
import type { FindBoxResult } from "./types/procedures";

const box: BoundingBox = { topLeft: { x: 0, y: 0 }, bottomRight: { x: 1, y: 1 }, center: undefined };
const color: Color = { tag: "DarkBlue" };
const shape: GeometryShape = { tag: "Rect", value: box };
const req: HttpRequest2 = { userId: 1, apiUrl: "u", retry3Times: true, v2Field: ["a", undefined] };
const params: AddShapeParams = { shapeId: 1, color, shape, box, label: "x" };
const found: FindBoxResult = box;
const sql: string = tables.shapes.toSql();
const conn = DbConnection.builder().withUri("ws://127.0.0.1:1").withDatabaseName("x").build();
conn.db.shapes.onInsert((_ctx: EventContext, row) => {
  const n: number = row.shapeId + row.layer2;
  const c: Color = row.color;
  const h: GeometryShape[] = row.history;
  console.log(n, c, h);
});
conn.db.everyPrimitive.onInsert((_ctx, row) => {
  const big: bigint = row.oneU128 + row.oneI256 + row.id;
  const bytes: Uint8Array = row.rawBytes;
  console.log(big, bytes);
});
conn.db.specialTypes.onInsert((_ctx, row) => {
  console.log(row.who.toHexString(), row.when.toDate(), row.maybeWho?.toHexString());
});
conn.db.player2Stats.player2Id.find(3);
// The module's own (snake_case) table key still works, as a deprecated alias.
const viaAlias: string | undefined = [...conn.db.snake_case_table.iter()][0]?.someColumn;
const aliasSql: string = tables.snake_case_table.toSql();
conn.db.snakeCaseTable.onInsert((ctx: EventContext) => console.log(ctx.db.snake_case_table.count()));
console.log(viaAlias, aliasSql);
conn.reducers.addShape({ shapeId: 1, color, shape, box, label: "y" });
conn.reducers.explicitReducerName({ value: 5n });
conn.reducers.setHpValue2({ player2Id: 1, hpValue: 2, request: req });
conn.reducers.doSnakeThing({ someArg: 1n });
conn.reducers.noArgs({});
const sum: Promise<bigint> = conn.procedures.addNumbers({ a: 1, b: 2 });
console.log(params, found, sql, sum, procedures, reducers);
// @ts-expect-error: a string is not a u32
conn.reducers.addShape({ shapeId: "1", color, shape, box, label: "y" });
// @ts-expect-error: no such table
conn.db.secretNotes;
`;

/** Runs `deno check` on `entry` with the repo's import map (spacetimedb@2.8.3) or `config`. */
async function denoCheck(
  entry: string,
  config = join(REPO_ROOT, "deno.json"),
): Promise<{ success: boolean; output: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", "--sloppy-imports", "--no-lock", "--config", config, entry],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    success: result.success,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

const SUBMODULE_CLIENT = `
import { DbConnection, procedures, reducers, tables } from "./index";
import type { Tag } from "./lib/types";
const tag: Tag = { tag: "Colored", value: "red" };
const conn = DbConnection.builder().withUri("ws://127.0.0.1:1").withDatabaseName("x").build();
const sql: string = tables.lib.libData.toSql();
conn.db["lib.lib_data"].onInsert((_ctx, row) => {
  const id: bigint = row.id;
  const t: Tag = row.tag;
  console.log(id, t);
});
conn.reducers["lib.libInsert"]({ value: "v", tag });
conn.reducers.addNote({ id: 1, text: "x" });
const count: Promise<bigint> = conn.procedures["lib.libCount"]({});
console.log(sql, count, reducers.lib.libInsert, procedures.lib.libCount, reducers.addNote);
// @ts-expect-error: the tag must be a Tag
conn.reducers["lib.libInsert"]({ value: "v", tag: "Plain" });
`;

Deno.test("generateTypeScript() puts a submodule's files in its folder, its items under its namespace", async () => {
  await checkGolden("codegen_submodule");
  const { files } = generateTypeScript(await fixtureDef("codegen_submodule"));
  assertEquals(files.map((f) => f.path), [
    "add_note_reducer.ts",
    "index.ts",
    "lib/lib_count_procedure.ts",
    "lib/lib_data_table.ts",
    "lib/lib_insert_reducer.ts",
    "lib/types.ts",
    "notes_table.ts",
    "types.ts",
    "types/procedures.ts",
    "types/reducers.ts",
  ]);
  const dir = await Deno.makeTempDir({ prefix: "lightcone-codegen-" });
  try {
    await writeTree(dir, files);
    await Deno.writeTextFile(join(dir, "client.ts"), SUBMODULE_CLIENT);
    const checked = await denoCheck(join(dir, "client.ts"));
    assert(checked.success, checked.output);
    // At run time the namespaced accessors point at the SDK's entries.
    await Deno.writeTextFile(
      join(dir, "run.ts"),
      `import { procedures, reducers, tables } from "./index";\n` +
        `console.log(JSON.stringify([tables.lib.libData.toSql(), ` +
        `reducers.lib.libInsert.accessorName, procedures.lib.libCount.accessorName]));\n`,
    );
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--sloppy-imports",
        "--config",
        join(REPO_ROOT, "deno.json"),
        join(dir, "run.ts"),
      ],
      cwd: REPO_ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(run.success, new TextDecoder().decode(run.stderr));
    assertEquals(JSON.parse(new TextDecoder().decode(run.stdout)), [
      'SELECT * FROM "lib"."lib_data"',
      "lib.libInsert",
      "lib.libCount",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generated bindings type-check against the official SDK with deno check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-codegen-" });
  try {
    const { files } = generateTypeScript(await fixtureDef("codegen_everything"));
    await writeTree(dir, files);
    await Deno.writeTextFile(join(dir, "client.ts"), CLIENT_SOURCE);
    const good = await denoCheck(join(dir, "client.ts"));
    assert(good.success, good.output);
    // The newest 2.x SDK the client matrix covers accepts the same bindings.
    const newer = join(dir, "deno.json");
    await Deno.writeTextFile(
      newer,
      JSON.stringify({
        imports: {
          spacetimedb: "npm:spacetimedb@2.10.1",
          "spacetimedb/": "npm:/spacetimedb@2.10.1/",
        },
        nodeModulesDir: "none",
      }),
    );
    const withNewer = await denoCheck(join(dir, "client.ts"), newer);
    assert(withNewer.success, withNewer.output);
    // The check can fail: a wrong column type in a client is reported.
    await Deno.writeTextFile(
      join(dir, "bad_client.ts"),
      `import { DbConnection } from "./index";\n` +
        `const conn = DbConnection.builder().build();\n` +
        `conn.db.shapes.onInsert((_ctx, row) => { const s: string = row.shapeId; console.log(s); });\n`,
    );
    const bad = await denoCheck(join(dir, "bad_client.ts"));
    assert(!bad.success, "a client assigning a u32 column to a string must not type-check");
    assert(/TS2322/.test(bad.output), bad.output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
