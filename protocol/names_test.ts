import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { describeFixtureModule } from "../tests/support/describe_module.ts";
import { decodeRawModuleDef, ModuleDefError, type RawModuleDefV10 } from "./module_def.ts";
import { findTable, resolveModuleDef, toCamelCase, toPascalCase, toSnakeCase } from "./names.ts";

Deno.test("toSnakeCase splits like convert_case 0.6 Case::Snake", () => {
  const cases: [string, string][] = [
    ["oneU8", "one_u_8"],
    ["CreatePlayer1", "create_player_1"],
    ["IOStream", "io_stream"],
    ["HTTPRequest", "http_request"],
    ["player", "player"],
    ["Player1Canonical", "player_1_canonical"],
    ["banPlayer1", "ban_player_1"],
    ["one_u8", "one_u_8"],
    ["u256", "u_256"],
    ["a1b2", "a_1_b_2"],
    ["ABC", "abc"],
    ["ABCd", "ab_cd"],
    ["__leading__under", "leading_under"],
    ["kebab-case name", "kebab_case_name"],
    ["already_snake_case", "already_snake_case"],
    ["scheduled_id", "scheduled_id"],
    ["Level2Person", "level_2_person"],
    ["x", "x"],
    ["", ""],
    ["émileZola", "émile_zola"],
    ["lib.libData", "lib.lib_data"],
  ];
  for (const [input, expected] of cases) deepStrictEqual(toSnakeCase(input), expected, input);
});

Deno.test("toPascalCase and toCamelCase capitalise the same words", () => {
  deepStrictEqual(toPascalCase("player_name"), "PlayerName");
  deepStrictEqual(toPascalCase("IOStream"), "IoStream");
  deepStrictEqual(toPascalCase("createPlayer1"), "CreatePlayer1");
  deepStrictEqual(toPascalCase("every_type"), "EveryType");
  deepStrictEqual(toCamelCase("RedDelicious"), "redDelicious");
  deepStrictEqual(toCamelCase("granny_smith"), "grannySmith");
  deepStrictEqual(toCamelCase("Circle"), "circle");
});

Deno.test("resolveModuleDef derives canonical names, ids and schedules from a real module", async () => {
  const def = resolveModuleDef(
    decodeRawModuleDef(await describeFixtureModule("protocol_everything")),
  );
  const everyType = findTable(def, "every_type")!;
  deepStrictEqual(everyType.sourceName, "everyType");
  deepStrictEqual(everyType.columns[3].name, "one_u_8");
  deepStrictEqual(everyType.columns[3].sourceName, "oneU8");
  deepStrictEqual(everyType.rowType.elements[3].name, "one_u_8");
  deepStrictEqual(everyType.primaryKey, 0);
  deepStrictEqual(
    everyType.indexes.map((i) => [i.name, i.sourceName, i.algorithm]),
    [
      ["every_type_id_idx_btree", "everyType_id_idx_btree", "btree"],
      ["every_type_one_u_64_idx_btree", "everyType_oneU64_idx_btree", "btree"],
      ["every_type_some_text_idx_hash", "everyType_someText_idx_hash", "hash"],
      ["every_type_category_idx_direct", "everyType_category_idx_direct", "direct"],
      ["every_type_one_i_32_one_u_32_idx_btree", "everyType_oneI32_oneU32_idx_btree", "btree"],
      ["every_type_one_i_16_one_u_16_idx_hash", "everyType_oneI16_oneU16_idx_hash", "hash"],
      ["every_type_custom_idx", "everyType_oneI64_idx_btree", "btree"],
    ],
  );
  deepStrictEqual(everyType.uniqueConstraints.map((c) => c.name), [
    "every_type_id_key",
    "every_type_one_u_64_key",
    "every_type_one_i_16_one_u_16_key",
  ]);
  deepStrictEqual(everyType.sequences.map((s) => s.name), ["every_type_id_seq"]);
  ok(everyType.columns[28].defaultValue !== undefined);
  // Special types keep their field names; user enums get camelCase variants.
  const shape = def.typespace[2];
  ok(shape.tag === "Sum");
  deepStrictEqual(shape.value.variants.map((v) => v.name), ["circle", "rect", "empty"]);
  const who = everyType.rowType.elements[20].algebraicType;
  ok(who.tag === "Product" && who.value.elements[0].name === "__identity__");

  deepStrictEqual(findTable(def, "Player1Canonical")?.sourceName, "player");
  deepStrictEqual(findTable(def, "player")?.name, "Player1Canonical", "found by source name too");
  deepStrictEqual(def.reducers.map((r) => [r.id, r.name, r.lifecycle, r.visibility]), [
    [0, "ban_player_explicit", undefined, "ClientCallable"],
    [1, "create_player_1", undefined, "ClientCallable"],
    [2, "init", "Init", "Private"],
    [3, "on_connect", "OnConnect", "Private"],
    [4, "on_disconnect", "OnDisconnect", "Private"],
    [5, "tick", undefined, "Private"],
    [6, "lib.lib_insert", undefined, "ClientCallable"],
  ]);
  deepStrictEqual(def.lifecycle, { Init: 2, OnConnect: 3, OnDisconnect: 4 });
  deepStrictEqual(def.reducers[1].params.elements.map((e) => e.name), ["name", "start_level"]);
  deepStrictEqual(def.procedures.map((p) => [p.id, p.name, p.visibility]), [
    [0, "proc_tick", "Private"],
    [1, "sum", "ClientCallable"],
    [2, "lib.lib_count", "ClientCallable"],
  ]);
  deepStrictEqual(findTable(def, "tick_timer")?.schedule, {
    name: "tick_timer_sched",
    atColumn: 1,
    idColumn: 0,
    functionName: "tick",
    functionKind: "reducer",
  });
  deepStrictEqual(findTable(def, "proc_timer")?.schedule?.functionKind, "procedure");
  deepStrictEqual(def.views.map((v) => [v.id, v.name, v.isAnonymous, v.primaryKey, v.returnKind]), [
    [0, "Level2Everyone", true, 0, "array"],
    [0, "my_level", false, 0, "option"],
  ]);
  deepStrictEqual(findTable(def, "damage_event")?.isEvent, true);
  deepStrictEqual(def.types.find((t) => t.sourceName === "Shape")?.scope, ["Namespace"]);
  deepStrictEqual(def.httpHandlers.map((h) => [h.id, h.name]), [
    [0, "get_hello"],
    [1, "post_thing_explicit"],
    [2, "lib.lib_hello"],
  ]);
  deepStrictEqual(def.httpRoutes.map((r) => [r.path, r.handlerId]), [["/hello", 0], ["/thing", 1]]);
  // Submodule items are qualified with the namespace.
  const lib = findTable(def, "lib.libData")!;
  deepStrictEqual([lib.namespace, lib.indexes[0].sourceName], ["lib", "lib.libData_id_idx_btree"]);
  deepStrictEqual(def.submodules[0].module.tables.map((t) => t.name), ["lib.libData"]);
});

Deno.test("resolveModuleDef keeps source names under CaseConversionPolicy None", async () => {
  const def = resolveModuleDef(
    decodeRawModuleDef(await describeFixtureModule("protocol_case_none")),
  );
  deepStrictEqual(def.tables[0].name, "MyTable");
  deepStrictEqual(def.tables[0].columns.map((c) => c.name), ["Id", "someValue"]);
  deepStrictEqual(def.tables[0].indexes[0].name, "MyTable_Id_idx_btree");
  deepStrictEqual(def.reducers[0].name, "DoThing");
  deepStrictEqual(def.reducers[0].params.elements[0].name, "aValue");
});

async function rawEverything(): Promise<RawModuleDefV10> {
  return decodeRawModuleDef(await describeFixtureModule("protocol_everything"));
}
function expectError(raw: RawModuleDefV10, pattern: RegExp) {
  throws(
    () => resolveModuleDef(raw),
    (e) => e instanceof ModuleDefError && pattern.test(e.message),
  );
}

Deno.test("resolveModuleDef rejects duplicate function names and doubled lifecycles", async () => {
  const dup = await rawEverything();
  dup.procedures[1].sourceName = "createPlayer1";
  expectError(dup, /Duplicate function name "create_player_1"/);
  const twice = await rawEverything();
  twice.lifecycleReducers.push({ lifecycleSpec: "Init", functionName: "createPlayer1" });
  expectError(twice, /Lifecycle Init is assigned twice/);
  const missing = await rawEverything();
  missing.lifecycleReducers[0].functionName = "nope";
  expectError(missing, /not a reducer/);
});

Deno.test("resolveModuleDef rejects a schedule table without a u64 primary key or ScheduleAt column", async () => {
  const badAt = await rawEverything();
  badAt.schedules[1].scheduleAtCol = 2;
  expectError(badAt, /needs a ScheduleAt column/);
  const badKey = await rawEverything();
  const tick = badKey.typespace[badKey.tables[2].productTypeRef];
  ok(tick.tag === "Product");
  tick.value.elements[0].algebraicType = { tag: "U32" };
  expectError(badKey, /U64 primary key/);
  const badArgs = await rawEverything();
  badArgs.schedules[1].functionName = "createPlayer1";
  expectError(badArgs, /exactly one argument/);
});

Deno.test("resolveModuleDef rejects sequences on non-integer columns and unbacked unique constraints", async () => {
  const seq = await rawEverything();
  seq.tables[0].sequences.push({
    sourceName: undefined,
    column: 16,
    start: undefined,
    minValue: undefined,
    maxValue: undefined,
    increment: 1n,
  });
  expectError(seq, /auto-increment needs an integer column/);
  const unique = await rawEverything();
  unique.tables[1].constraints.push({
    sourceName: undefined,
    data: { tag: "Unique", columns: [1] },
  });
  expectError(unique, /has no index on exactly those columns/);
  const reserved = await rawEverything();
  reserved.tables[0].sourceName = "st_thing";
  expectError(reserved, /reserved/);
  const direct = await rawEverything();
  direct.tables[0].indexes[3].algorithm = { tag: "Direct", column: 16 };
  expectError(direct, /direct indexes need/);
});

Deno.test("resolveModuleDef rejects lifecycle reducers in submodules and bad route paths", async () => {
  const sub = await rawEverything();
  const lib = sub.submodules[0].module;
  lib.lifecycleReducers.push({ lifecycleSpec: "Init", functionName: "libInsert" });
  expectError(sub, /not allowed in a submodule/);
  const route = await rawEverything();
  route.httpRoutes[0].path = "/Hello";
  expectError(route, /route path/);
});

Deno.test("resolveModuleDef refuses names with control characters (they reach terminals)", async () => {
  const mutations: [string, (raw: RawModuleDefV10) => void][] = [
    ["a reducer", (raw) => (raw.reducers[0].sourceName = "say\x1b[2J")],
    ["a procedure", (raw) => (raw.procedures[0].sourceName = "fetch\x07")],
    ["a table", (raw) => (raw.tables[raw.tables.length - 1].sourceName = "things\u009b31m")],
    ["a type", (raw) => (raw.types[0].sourceName.sourceName = "Row\x7f")],
    ["a field", (raw) => {
      const product = raw.typespace.find((t) => t.tag === "Product" && t.value.elements.length);
      if (product?.tag !== "Product") throw new Error("the fixture has no product type");
      product.value.elements[0].name = "id\r\x1b]52;c;AAAA\x07";
    }],
    ["an explicit name", (raw) => {
      raw.explicitNames.push({ kind: "Table", sourceName: "x", canonicalName: "x\n" });
    }],
  ];
  for (const [what, mutate] of mutations) {
    const raw = await rawEverything();
    mutate(raw);
    throws(
      () => resolveModuleDef(raw),
      (e) => e instanceof ModuleDefError && /contains a control character/.test(e.message),
      what,
    );
  }
  // Printable names that are not identifiers stay accepted (codegen quotes or refuses them).
  const spaced = await rawEverything();
  spaced.reducers[0].sourceName = "say hello";
  resolveModuleDef(spaced);
});
