import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { describeFixtureModule } from "../tests/support/describe_module.ts";
import type { AlgebraicType, ProductType } from "./algebraic_type.ts";
import { decodeRawModuleDef } from "./module_def.ts";
import { resolveModuleDef } from "./names.ts";
import {
  algebraicTypeToJson,
  callArgumentsFromJson,
  canonicalRawModuleDef,
  formatFloat,
  JSON_DEPTH_MAX,
  jsonToValue,
  JsonValueError,
  moduleDefToSchemaJson,
  parseJson,
  rawModuleDefToJson,
  stringifyJson,
  typedValueToJson,
  untypedValueToJson,
} from "./sats_json.ts";

const unit: AlgebraicType = { tag: "Product", value: { elements: [] } };
const option = (t: AlgebraicType): AlgebraicType => ({
  tag: "Sum",
  value: { variants: [{ name: "some", algebraicType: t }, { name: "none", algebraicType: unit }] },
});
const identity: AlgebraicType = {
  tag: "Product",
  value: { elements: [{ name: "__identity__", algebraicType: { tag: "U256" } }] },
};
const timestamp: AlgebraicType = {
  tag: "Product",
  value: {
    elements: [{ name: "__timestamp_micros_since_unix_epoch__", algebraicType: { tag: "I64" } }],
  },
};
const person: ProductType = {
  elements: [
    { name: "id", algebraicType: { tag: "U64" } },
    { name: "name", algebraicType: { tag: "String" } },
    { name: "nick", algebraicType: option({ tag: "String" }) },
    { name: "owner", algebraicType: identity },
  ],
};

Deno.test("stringifyJson writes big integers exactly and parseJson reads them back", () => {
  const big = (1n << 64n) - 1n;
  const text = stringifyJson({ a: big, b: [1, -2n, "x"], c: null });
  deepStrictEqual(text, '{"a":18446744073709551615,"b":[1,-2,"x"],"c":null}');
  deepStrictEqual(parseJson(text), { a: big, b: [1, -2, "x"], c: null });
  deepStrictEqual(parseJson("[1.5, 9007199254740993]"), [1.5, 9007199254740993n]);
});

Deno.test("formatFloat matches serde_json float output", () => {
  deepStrictEqual(formatFloat(1), "1.0");
  deepStrictEqual(formatFloat(1.5), "1.5");
  deepStrictEqual(formatFloat(1e21), "1e21");
  deepStrictEqual(formatFloat(NaN), "null");
  deepStrictEqual(formatFloat(Math.fround(0.1), true), "0.1");
  deepStrictEqual(formatFloat(-0), "-0.0");
});

Deno.test("algebraicTypeToJson uses the SATS-JSON type shapes", () => {
  deepStrictEqual(stringifyJson(algebraicTypeToJson({ tag: "U32" })), '{"U32":[]}');
  deepStrictEqual(
    stringifyJson(algebraicTypeToJson({ tag: "Array", value: option({ tag: "Ref", value: 3 }) })),
    '{"Array":{"Sum":{"variants":[{"name":{"some":"some"},"algebraic_type":{"Ref":3}},' +
      '{"name":{"some":"none"},"algebraic_type":{"Product":{"elements":[]}}}]}}}',
  );
});

Deno.test("typed and untyped value JSON differ for products, sums, options and wide ints", () => {
  const type: AlgebraicType = { tag: "Product", value: person };
  const value = [18446744073709551615n, "ann", { tag: 1, value: [] }, [0xc200n]];
  deepStrictEqual(
    stringifyJson(typedValueToJson(type, value)),
    '{"id":18446744073709551615,"name":"ann","nick":{"none":{}},"owner":{"__identity__":"0xc200"}}',
  );
  deepStrictEqual(
    stringifyJson(untypedValueToJson(type, value)),
    '[18446744073709551615,"ann",[1,[]],["0xc200"]]',
  );
  deepStrictEqual(
    stringifyJson(
      untypedValueToJson({ tag: "Array", value: { tag: "U8" } }, new Uint8Array([0, 255])),
    ),
    '"00ff"',
  );
  deepStrictEqual(stringifyJson(untypedValueToJson({ tag: "I256" }, -255n)), '"-0xff"');
  deepStrictEqual(stringifyJson(untypedValueToJson({ tag: "F32" }, Math.fround(0.1))), "0.1");
});

Deno.test("jsonToValue accepts the input forms /call allows", () => {
  const type: AlgebraicType = { tag: "Product", value: person };
  const id = "c200" + "0".repeat(60);
  const expected = [5n, "ann", { tag: 0, value: "a" }, [BigInt("0x" + id)]];
  deepStrictEqual(jsonToValue(type, [5, "ann", { some: "a" }, "0x" + id]), expected);
  deepStrictEqual(
    jsonToValue(type, { id: "5", name: "ann", nick: "a", owner: { __identity__: id } }),
    expected,
  );
  deepStrictEqual(jsonToValue(type, [5, "ann", [0, "a"], [id]]), expected);
  deepStrictEqual(jsonToValue(option({ tag: "U8" }), null), { tag: 1, value: [] });
  deepStrictEqual(jsonToValue(option({ tag: "U8" }), { none: [] }), { tag: 1, value: [] });
  deepStrictEqual(jsonToValue(timestamp, 1700000000000000), [1700000000000000n]);
  deepStrictEqual(
    jsonToValue({ tag: "U128" }, parseJson("340282366920938463463374607431768211455")),
    (1n << 128n) - 1n,
  );
  deepStrictEqual(
    jsonToValue({ tag: "Array", value: { tag: "U8" } }, "0aff"),
    new Uint8Array([10, 255]),
  );
  deepStrictEqual(callArgumentsFromJson(person, `[1, "b", null, "${id}"]`)[0], 1n);
  deepStrictEqual(callArgumentsFromJson({ elements: [] }, "[]"), []);
});

Deno.test("jsonToValue errors name the field path and the expected type", () => {
  const type: AlgebraicType = { tag: "Product", value: person };
  throws(
    () => jsonToValue(type, [5, 7, null, "00"]),
    (e) =>
      e instanceof JsonValueError && e.path === "name" && /expected String, got 7/.test(e.message),
  );
  throws(
    () => jsonToValue({ tag: "U8" }, 256),
    (e) => e instanceof JsonValueError && /expected U8/.test(e.message),
  );
  throws(() => jsonToValue(type, [1, 2]), JsonValueError);
  throws(() => jsonToValue(type, { id: 1, name: "x", owner: "00", bogus: 1 }), JsonValueError);
  throws(() => callArgumentsFromJson(person, "{not json"), JsonValueError);
});

Deno.test("rawModuleDefToJson uses the Rust field names and variant shapes", async () => {
  const raw = decodeRawModuleDef(await describeFixtureModule("protocol_everything"));
  const json = JSON.parse(stringifyJson(rawModuleDefToJson(raw)));
  deepStrictEqual(Object.keys(json.sections[2]), ["Tables"]);
  const table = json.sections[2].Tables[0];
  deepStrictEqual(Object.keys(table), [
    "source_name",
    "product_type_ref",
    "primary_key",
    "indexes",
    "constraints",
    "sequences",
    "table_type",
    "table_access",
    "default_values",
    "is_event",
  ]);
  deepStrictEqual(table.indexes[0], {
    source_name: { some: "everyType_id_idx_btree" },
    accessor_name: { some: "id" },
    algorithm: { BTree: { columns: [0] } },
  });
  deepStrictEqual(table.sequences[0].start, { none: [] });
  deepStrictEqual(table.default_values[0], { col_id: 28, value: "0500000068656c6c6f" });
  deepStrictEqual(table.table_access, { Public: [] });
  deepStrictEqual(json.sections[13], { CaseConversionPolicy: { SnakeCase: [] } });
});

Deno.test("the schema JSON is rebuilt from the validated module with canonical names", async () => {
  const def = resolveModuleDef(
    decodeRawModuleDef(await describeFixtureModule("protocol_everything")),
  );
  const canonical = canonicalRawModuleDef(def);
  ok(!canonical.sectionOrder.includes("CaseConversionPolicy"));
  ok(canonical.sectionOrder.includes("ExplicitNames"));
  deepStrictEqual(canonical.tables[0].indexes[0].sourceName, "everyType_id_idx_btree");
  deepStrictEqual(canonical.tables[0].constraints[0].sourceName, "every_type_id_key");
  deepStrictEqual(canonical.schedules.map((s) => [s.sourceName, s.tableName, s.functionName]), [
    ["tick_timer_sched", "tick_timer", "tick"],
    ["proc_timer_sched", "proc_timer", "proc_tick"],
  ]);
  deepStrictEqual(canonical.reducers.find((r) => r.sourceName === "init")?.visibility, "Private");
  deepStrictEqual(canonical.submodules[0].module.reducers[0].sourceName, "libInsert");
  const json = JSON.parse(moduleDefToSchemaJson(def));
  const typespace = json.sections[0].Typespace.types[0].Product.elements;
  deepStrictEqual(typespace[3].name, { some: "one_u_8" });
  const names =
    json.sections.find((s: Record<string, unknown>) => "ExplicitNames" in s).ExplicitNames.entries;
  ok(
    names.some((e: Record<string, unknown>) =>
      JSON.stringify(e) === '{"Table":{"source_name":"player","canonical_name":"Player1Canonical"}}'
    ),
  );
});

/** The earlier parseJson (a reviver with the source text): the reference for the one-pass one. */
function parseJsonWithReviver(text: string): unknown {
  return JSON.parse(text, function (_key, value, context?: { source?: string }) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source) {
      if (/^-?\d+$/.test(context.source)) return BigInt(context.source);
    }
    return value;
  });
}

Deno.test("parseJson: unsafe integers become bigints exactly as with a reviver, strings untouched", () => {
  const cases = [
    "18446744073709551615",
    "-9223372036854775808",
    "[9007199254740991, 9007199254740992, -9007199254740993, 1.5, 1e400, 12345678901234567890.5]",
    '{"a": 340282366920938463463374607431768211455, "b": "340282366920938463463374607431768211455"}',
    '["\\"", "\\\\", 99999999999999999999, "x\\"99999999999999999999\\"", {"k": [[-1e21]]}]',
    '{"99999999999999999999": 99999999999999999999}',
    "[0, -0, 123456789012345, 1234567890123456, 12345678901234567, 1E+30, -5e-3]",
    '"plain"',
    "null",
    "  [ 1 , { } , [ ] , true , false ]  ",
  ];
  for (const text of cases) {
    deepStrictEqual(parseJson(text), parseJsonWithReviver(text), text);
  }
  throws(() => parseJson('["open'), SyntaxError);
  throws(() => parseJson("[1,]"), SyntaxError);
});

Deno.test("parseJson refuses nesting deeper than JSON_DEPTH_MAX before parsing", () => {
  const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
  deepStrictEqual(
    JSON.stringify(parseJson(nested(JSON_DEPTH_MAX))).length,
    2 * JSON_DEPTH_MAX,
  );
  // 4M levels: the reviver parse overflowed the stack after ~1.6 s of the main thread.
  throws(() => parseJson(nested(4_000_000)), /nested deeper than 1024 levels/);
  // Brackets inside strings do not count.
  deepStrictEqual(parseJson(JSON.stringify(["[".repeat(5000)])), ["[".repeat(5000)]);
});

Deno.test("a call argument error shows the start of a huge value, not all of it", () => {
  const params: ProductType = {
    elements: [{ name: "count", algebraicType: { tag: "U32" } as AlgebraicType }],
  };
  const started = performance.now();
  const text = "[" + "1,".repeat(1_000_000) + "1]";
  try {
    callArgumentsFromJson(params, text);
    ok(false, "accepted");
  } catch (error) {
    ok(error instanceof JsonValueError);
    ok(error.message.length < 200, error.message);
    ok(error.message.includes("[1,1,1,1"), error.message);
  }
  console.log(`1M-element argument refused in ${Math.round(performance.now() - started)} ms`);
});
