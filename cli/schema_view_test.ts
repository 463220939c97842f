import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { FIXTURE_SCHEMA_V10 } from "./_stub_server.ts";
import {
  describeModuleText,
  renderType,
  similarName,
  summariseModule,
  toSnakeCase,
} from "./schema_view.ts";
import { assertIncludes, thrown } from "./_assert_test_support.ts";

Deno.test("toSnakeCase() splits like convert_case: humps, acronyms and digits", () => {
  assertEquals(toSnakeCase("sayHello"), "say_hello");
  assertEquals(toSnakeCase("loggedOutPlayer"), "logged_out_player");
  assertEquals(toSnakeCase("HTTPRequest"), "http_request");
  assertEquals(toSnakeCase("player2"), "player_2");
  assertEquals(toSnakeCase("characterV2"), "character_v_2");
  assertEquals(toSnakeCase("already_snake"), "already_snake");
});

Deno.test("renderType() names options, arrays, bytes and special products", () => {
  assertEquals(renderType({ Array: { U8: [] } }), "Bytes");
  assertEquals(renderType({ Array: { String: [] } }), "Array<String>");
  assertEquals(
    renderType({
      Sum: {
        variants: [
          { name: { some: "some" }, algebraic_type: { I32: [] } },
          { name: { some: "none" }, algebraic_type: { Product: { elements: [] } } },
        ],
      },
    }),
    "Option<I32>",
  );
  assertEquals(
    renderType({
      Product: { elements: [{ name: { some: "__identity__" }, algebraic_type: { U256: [] } }] },
    }),
    "Identity",
  );
  assertEquals(renderType({ Ref: 3 }, new Map([[3, "Point"]])), "Point");
});

Deno.test("summariseModule() reads V10 tables, keys, indexes and canonical reducer names", () => {
  const module = summariseModule(FIXTURE_SCHEMA_V10);
  assertEquals(module.tables.map((t) => t.name), ["person", "counter"]);
  const counter = module.tables[1];
  assertEquals(counter.isPublic, false);
  assertEquals(counter.columns, [{ name: "id", type: "U64" }, {
    name: "value",
    type: "Option<U32>",
  }]);
  assertEquals(counter.primaryKey, ["id"]);
  assertEquals(counter.autoIncrement, ["id"]);
  assertEquals(counter.indexes, [{
    name: "counter_id_idx_btree",
    algorithm: "btree",
    columns: ["id"],
  }]);
  assertEquals(
    module.reducers.map((r) => [r.name, r.callable, r.lifecycle ?? null]),
    [
      ["add", true, null],
      ["init", false, "Init"],
      ["on_connect", false, "OnConnect"],
      ["on_disconnect", false, "OnDisconnect"],
      ["say_hello", true, null],
      ["set_count", true, null],
    ],
  );
});

Deno.test("summariseModule() accepts camelCase field names too", () => {
  const camel = {
    sections: [
      {
        Typespace: {
          types: [{ Product: { elements: [{ name: { some: "x" }, algebraicType: { U8: [] } }] } }],
        },
      },
      {
        Tables: [{
          sourceName: "thing",
          productTypeRef: 0,
          primaryKey: [0],
          indexes: [],
          constraints: [],
          sequences: [],
          tableType: { User: [] },
          tableAccess: { Public: [] },
          defaultValues: [],
          isEvent: false,
        }],
      },
    ],
  };
  const module = summariseModule(camel);
  assertEquals(module.tables[0].columns, [{ name: "x", type: "U8" }]);
  assertEquals(module.tables[0].primaryKey, ["x"]);
});

Deno.test("summariseModule() rejects JSON that is no module def", () => {
  thrown(() => summariseModule({ hello: 1 }), TypeError);
});

Deno.test("describeModuleText() lists tables with columns and reducers with signatures", () => {
  const text = describeModuleText("demo", summariseModule(FIXTURE_SCHEMA_V10));
  assertIncludes(text, "  person (public)\n    name  String\n");
  assertIncludes(text, "  counter (private)\n    id     U64  [primary key, auto-inc]\n");
  assertIncludes(text, "  add(name: String)\n");
  assertIncludes(text, "  init()  [lifecycle: Init]\n");
  assertIncludes(text, "  set_count(id: U64, value: U32)\n");
});

Deno.test("similarName() finds the snake_case twin and near misses, not strangers", () => {
  const names = ["add", "say_hello", "set_count"];
  assertEquals(similarName("sayHello", names), "say_hello");
  assertEquals(similarName("say_helo", names), "say_hello");
  assertEquals(similarName("delete_everything", names), undefined);
});
