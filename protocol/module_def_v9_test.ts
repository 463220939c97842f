import { deepStrictEqual, ok } from "node:assert/strict";
import { describeFixtureModule } from "../tests/support/describe_module.ts";
import { decodeRawModuleDef } from "./module_def.ts";
import { moduleDefToV9SchemaJson } from "./module_def_v9.ts";
import { resolveModuleDef } from "./names.ts";

Deno.test("the V9 schema JSON has canonical names, schedules and misc exports and drops submodules", async () => {
  const def = resolveModuleDef(
    decodeRawModuleDef(await describeFixtureModule("protocol_everything")),
  );
  const json = JSON.parse(moduleDefToV9SchemaJson(def));
  deepStrictEqual(Object.keys(json), [
    "typespace",
    "tables",
    "reducers",
    "types",
    "misc_exports",
    "row_level_security",
  ]);
  deepStrictEqual(json.tables.map((t: { name: string }) => t.name), [
    "every_type",
    "Player1Canonical",
    "tick_timer",
    "proc_timer",
    "damage_event",
  ]);
  deepStrictEqual(json.tables[2].schedule, {
    some: { name: { some: "tick_timer_sched" }, reducer_name: "tick", scheduled_at_column: 1 },
  });
  deepStrictEqual(json.tables[0].indexes[0].name, { some: "every_type_id_idx_btree" });
  const init = json.reducers.find((r: { name: string }) => r.name === "init");
  deepStrictEqual(init.lifecycle, { some: { Init: [] } });
  ok(json.reducers.every((r: { name: string }) => !r.name.startsWith("lib.")));
  deepStrictEqual(Object.keys(json.misc_exports[0]), ["ColumnDefaultValue"]);
  ok(json.misc_exports.some((m: Record<string, { name: string }>) => m.Procedure?.name === "sum"));
  ok(
    json.misc_exports.some((m: Record<string, { name: string }>) =>
      m.View?.name === "Level2Everyone"
    ),
  );
});
