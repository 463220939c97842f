import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { describeFixtureModule } from "../tests/support/describe_module.ts";
import { BsatnDecodeError } from "./bsatn.ts";
import {
  decodeRawModuleDef,
  emptyRawModuleDefV10,
  encodeRawModuleDef,
  LIBRARY_SECTION_ORDER,
  ModuleDefError,
} from "./module_def.ts";

Deno.test("decodeRawModuleDef consumes every byte of a real describe and re-encodes identically", async () => {
  for (const fixture of ["protocol_everything", "protocol_case_none"]) {
    const bytes = await describeFixtureModule(fixture);
    deepStrictEqual(bytes[0], 2, "the library emits V10");
    const def = decodeRawModuleDef(bytes);
    deepStrictEqual(def.sectionOrder, [...LIBRARY_SECTION_ORDER]);
    deepStrictEqual(encodeRawModuleDef(def), bytes);
  }
});

Deno.test("decodeRawModuleDef reads every section of the kitchen-sink module", async () => {
  const def = decodeRawModuleDef(await describeFixtureModule("protocol_everything"));
  deepStrictEqual(def.tables.map((t) => t.sourceName), [
    "everyType",
    "player",
    "tickTimer",
    "procTimer",
    "damageEvent",
  ]);
  const everyType = def.tables[0];
  deepStrictEqual(everyType.primaryKey, [0]);
  deepStrictEqual(everyType.indexes.map((i) => i.algorithm.tag), [
    "BTree",
    "BTree",
    "Hash",
    "Direct",
    "BTree",
    "Hash",
    "BTree",
  ]);
  deepStrictEqual(everyType.sequences[0].increment, 1n);
  deepStrictEqual(everyType.sequences[0].start, undefined);
  deepStrictEqual(everyType.defaultValues.length, 1);
  ok(def.tables[4].isEvent);
  deepStrictEqual(def.tables[2].tableAccess, "Private");
  // Reducers are in export-name order; lifecycle entries name them.
  deepStrictEqual(def.reducers.map((r) => r.sourceName), [
    "banPlayer",
    "createPlayer1",
    "init",
    "onConnect",
    "onDisconnect",
    "tick",
  ]);
  deepStrictEqual(def.lifecycleReducers.map((l) => l.lifecycleSpec), [
    "Init",
    "OnConnect",
    "OnDisconnect",
  ]);
  deepStrictEqual(def.procedures.map((p) => p.sourceName), ["procTick", "sum"]);
  deepStrictEqual(def.views.map((v) => [v.sourceName, v.index, v.isAnonymous]), [
    ["allLevels", 0, true],
    ["myLevel", 0, false],
  ]);
  deepStrictEqual(def.schedules.map((s) => [s.tableName, s.scheduleAtCol, s.functionName]), [
    ["procTimer", 1, "procTick"],
    ["tickTimer", 1, "tick"],
  ]);
  deepStrictEqual(def.rowLevelSecurity, [{ sql: "SELECT * FROM every_type WHERE one_u_8 = 1" }]);
  ok(def.explicitNames.some((e) => e.kind === "Table" && e.canonicalName === "Player1Canonical"));
  ok(
    def.explicitNames.some((e) =>
      e.kind === "Index" && e.canonicalName === "every_type_custom_idx"
    ),
  );
  deepStrictEqual(def.httpRoutes.map((r) => [r.path, r.method]), [
    ["/hello", { tag: "Method", value: { tag: "Get" } }],
    ["/thing", { tag: "Method", value: { tag: "Post" } }],
  ]);
  deepStrictEqual(def.viewPrimaryKeys, [
    { viewSourceName: "allLevels", columns: ["id"] },
    { viewSourceName: "myLevel", columns: ["id"] },
  ]);
  deepStrictEqual(def.submodules.map((s) => s.namespace), ["lib"]);
  deepStrictEqual(def.submodules[0].module.tables[0].sourceName, "libData");
  deepStrictEqual(def.caseConversionPolicy, "SnakeCase");
});

Deno.test("decodeRawModuleDef rejects trailing bytes, truncation and other versions", async () => {
  const bytes = await describeFixtureModule("protocol_case_none");
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  throws(
    () => decodeRawModuleDef(longer),
    (e) => e instanceof BsatnDecodeError && /Trailing/.test(e.message),
  );
  for (const cut of [1, 5, Math.floor(bytes.length / 2), bytes.length - 1]) {
    throws(() => decodeRawModuleDef(bytes.subarray(0, cut)), BsatnDecodeError);
  }
  throws(
    () => decodeRawModuleDef(new Uint8Array([1, 0, 0, 0, 0])),
    (e) => e instanceof ModuleDefError && /V9 is not supported/.test(e.message),
  );
  throws(() => decodeRawModuleDef(new Uint8Array([7])), ModuleDefError);
});

Deno.test("encodeRawModuleDef writes only the sections listed, and decode restores them", () => {
  const def = emptyRawModuleDefV10();
  def.sectionOrder = ["CaseConversionPolicy", "RowLevelSecurity"];
  def.caseConversionPolicy = "None";
  def.rowLevelSecurity = [{ sql: "SELECT * FROM t" }];
  const bytes = encodeRawModuleDef(def);
  deepStrictEqual(Array.from(bytes.subarray(0, 7)), [2, 2, 0, 0, 0, 9, 0]);
  const back = decodeRawModuleDef(bytes);
  deepStrictEqual(back, def);
  const twice = emptyRawModuleDefV10();
  twice.sectionOrder = ["Tables", "Tables"];
  throws(() => decodeRawModuleDef(encodeRawModuleDef(twice)), ModuleDefError);
});
