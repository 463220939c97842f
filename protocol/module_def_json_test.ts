import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { describeFixtureModule } from "../tests/support/describe_module.ts";
import {
  canonicalRawModuleDef,
  decodeRawModuleDef,
  encodeRawModuleDef,
  ModuleDefError,
  parseJson,
  rawModuleDefFromJson,
  rawModuleDefToJson,
  resolveModuleDef,
  stringifyJson,
} from "./mod.ts";

Deno.test("rawModuleDefFromJson() reads back what rawModuleDefToJson() wrote, byte for byte", async () => {
  for (const fixture of ["protocol_everything", "codegen_everything"]) {
    const bytes = await describeFixtureModule(fixture);
    const raw = decodeRawModuleDef(bytes);
    const text = stringifyJson(rawModuleDefToJson(raw));
    assertEquals(encodeRawModuleDef(rawModuleDefFromJson(parseJson(text))), bytes, fixture);
    // The schema route's canonical form too (what `generate --database` reads).
    const canonical = canonicalRawModuleDef(resolveModuleDef(raw));
    const back = rawModuleDefFromJson(JSON.parse(stringifyJson(rawModuleDefToJson(canonical))));
    assertEquals(encodeRawModuleDef(back), encodeRawModuleDef(canonical), `${fixture} canonical`);
  }
});

Deno.test("rawModuleDefFromJson() names the JSON path of bad input", () => {
  throws(
    () => rawModuleDefFromJson({ typespace: [] }),
    (e: Error) => e instanceof ModuleDefError && /not a RawModuleDefV10/.test(e.message),
  );
  throws(
    () => rawModuleDefFromJson({ sections: [{ Typespace: { types: [{ U33: [] }] } }] }),
    (e: Error) =>
      e instanceof ModuleDefError &&
      e.message === 'Schema JSON at $.sections[0].Typespace.types[0]: unknown type "U33"',
  );
  throws(
    () => rawModuleDefFromJson({ sections: [{ Tables: [{ source_name: 3 }] }] }),
    (e: Error) =>
      e instanceof ModuleDefError && /\$\.sections\[0\]\.Tables\[0\]\.source_name/.test(e.message),
  );
});
