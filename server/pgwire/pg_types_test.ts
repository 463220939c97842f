import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { AlgebraicType } from "../../protocol/mod.ts";
import { columnCodec, PG_TYPE } from "./pg_types.ts";

const special = (name: string, tag: "U256" | "U128" | "I64"): AlgebraicType => ({
  tag: "Product",
  value: { elements: [{ name, algebraicType: { tag } }] },
});
const unit: AlgebraicType = { tag: "Product", value: { elements: [] } };

Deno.test("columnCodec maps SpacetimeDB types to PostgreSQL types and text", () => {
  const cases: [AlgebraicType, unknown, number, string][] = [
    [{ tag: "String" }, "a b", PG_TYPE.varchar, "a b"],
    [{ tag: "Bool" }, false, PG_TYPE.bool, "f"],
    [{ tag: "U8" }, 255, PG_TYPE.int2, "255"],
    [{ tag: "U16" }, 65535, PG_TYPE.int4, "65535"],
    [{ tag: "U32" }, 4294967295, PG_TYPE.int8, "4294967295"],
    [{ tag: "I64" }, -(2n ** 63n), PG_TYPE.int8, "-9223372036854775808"],
    [{ tag: "U128" }, 2n ** 128n - 1n, PG_TYPE.numeric, String(2n ** 128n - 1n)],
    [{ tag: "F32" }, Math.fround(0.1), PG_TYPE.float4, "0.1"],
    [{ tag: "F64" }, NaN, PG_TYPE.float8, "NaN"],
    [{ tag: "F64" }, -Infinity, PG_TYPE.float8, "-Infinity"],
    [{ tag: "Array", value: { tag: "U8" } }, new Uint8Array([1, 171]), PG_TYPE.bytea, "\\x01ab"],
    [
      { tag: "Array", value: { tag: "String" } },
      ["a", "", "x,y", 'q"', "null"],
      PG_TYPE.varcharArray,
      '{a,"","x,y","q\\"","null"}',
    ],
    [special("__identity__", "U256"), [0xc2n], PG_TYPE.bytea, "\\x" + "0".repeat(62) + "c2"],
    [special("__connection_id__", "U128"), [1n], PG_TYPE.bytea, "\\x" + "0".repeat(31) + "1"],
    [
      special("__timestamp_micros_since_unix_epoch__", "I64"),
      [-1n],
      PG_TYPE.timestamptz,
      "1969-12-31 23:59:59.999999+00",
    ],
    [special("__time_duration_micros__", "I64"), [3_723_000_000n], PG_TYPE.interval, "01:02:03"],
    [special("__time_duration_micros__", "I64"), [0n], PG_TYPE.interval, "00:00:00"],
    [special("__uuid__", "U128"), [0n], PG_TYPE.uuid, "00000000-0000-0000-0000-000000000000"],
    [
      {
        tag: "Sum",
        value: {
          variants: [{ name: "red", algebraicType: unit }, { name: "blue", algebraicType: unit }],
        },
      },
      { tag: 1, value: [] },
      PG_TYPE.anyenum,
      "blue",
    ],
    [
      {
        tag: "Sum",
        value: {
          variants: [{ name: "some", algebraicType: { tag: "I64" } }, {
            name: "none",
            algebraicType: unit,
          }],
        },
      },
      { tag: 1, value: [] },
      PG_TYPE.json,
      '{"none": {}}',
    ],
    [
      {
        tag: "Product",
        value: {
          elements: [
            { name: "at", algebraicType: special("__identity__", "U256") },
            { name: undefined, algebraicType: { tag: "Array", value: { tag: "Bool" } } },
          ],
        },
      },
      [[1n], [true, false]],
      PG_TYPE.json,
      `{"at": "\\\\x${"0".repeat(63)}1", "col_1": [true, false]}`,
    ],
  ];
  for (const [type, value, oid, text] of cases) {
    const codec = columnCodec(type, []);
    assertEquals([codec.typeOid, codec.text(value as never)], [oid, text], JSON.stringify(type));
  }
});

Deno.test("columnCodec's json text parses as JSON", () => {
  const codec = columnCodec({
    tag: "Product",
    value: {
      elements: [
        { name: "s", algebraicType: { tag: "String" } },
        { name: "f", algebraicType: { tag: "F64" } },
      ],
    },
  }, []);
  assertEquals(JSON.parse(codec.text(['a"\\\n', Infinity])), { s: 'a"\\\n', f: null });
});
