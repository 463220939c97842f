/**
 * The dashboard's parsers and formatters against what the server really writes: the metrics
 * text of server/metrics.ts, the SATS-JSON of protocol/ (types from /schema, values from /sql).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  type AlgebraicType,
  algebraicTypeToJson,
  callArgumentsFromJson,
  type ProductType,
  productTypeToJson,
  stringifyJson,
  untypedValueToJson,
  type Value,
} from "../../protocol/mod.ts";
import { DatabaseMetrics, type DatabaseSample, renderMetrics } from "../metrics.ts";
import {
  averageMs,
  callBody,
  formatBytes,
  formatValue,
  hexIdentityClaim,
  hostTypeLabel,
  httpRoutesOf,
  metricsByDatabase,
  moduleSummary,
  paramsOf,
  parseJson,
  parseMetrics,
  quoteIdent,
  replicationProgress,
  replicationSummary,
  stateOf,
  typeName,
} from "./static/format.js";

function sample(label: string, overrides: Partial<DatabaseSample> = {}): DatabaseSample {
  return {
    label,
    metrics: new DatabaseMetrics(),
    up: true,
    hibernation: "awake",
    durableTxOffset: 0,
    clients: 0,
    subscriptions: 0,
    outboundBytes: 0,
    outboxMessages: 0,
    queuedRequests: 0,
    batchesInFlight: 0,
    residentBytes: undefined,
    ...overrides,
  };
}

Deno.test("parseMetrics() reads the server's exposition: states, counters by status, averages", () => {
  const busy = sample('odd "name" \\ here', { clients: 3, subscriptions: 7, residentBytes: 5e6 });
  busy.metrics.recordItems([
    { kind: "call", status: "committed", durationMicros: 1_000, txOffset: 1 },
    { kind: "call", status: "committed", durationMicros: 3_000, txOffset: 2 },
    { kind: "call", status: "failed_user", durationMicros: 500 },
  ] as never);
  const text = renderMetrics(
    [
      busy,
      sample("sleepy", { hibernation: "hibernated" }),
      sample("broken", { up: false }),
    ],
    { heapUsedBytes: 2048, residentBytes: 4096 },
  );
  const { databases, server } = metricsByDatabase(parseMetrics(text));
  assertEquals([...databases.keys()], ['odd "name" \\ here', "sleepy", "broken"]);
  assertEquals(server, {
    lightcone_server_heap_used_bytes: 2048,
    lightcone_server_resident_memory_bytes: 4096,
  });
  const m = databases.get('odd "name" \\ here')!;
  assertEquals(stateOf(m), "running");
  assertEquals(stateOf(databases.get("sleepy")), "hibernated");
  assertEquals(stateOf(databases.get("broken")), "stopped");
  assertEquals(stateOf(undefined), "unknown");
  assertEquals(m.lightcone_transactions_committed_total, 2);
  assertEquals(m["lightcone_reducer_calls_total:committed"], 2);
  assertEquals(m["lightcone_reducer_calls_total:failed_user"], 1);
  assertEquals(m.lightcone_websocket_clients, 3);
  assertEquals(m.lightcone_subscriptions, 7);
  assertEquals(m.lightcone_database_resident_memory_bytes, 5e6);
  // (1 + 3 + 0.5 ms) / 3 calls.
  assertEquals(averageMs(m, "lightcone_reducer_duration_seconds"), "1.50 ms");
  assertEquals(averageMs(databases.get("sleepy"), "lightcone_reducer_duration_seconds"), "—");
  assertEquals(formatBytes(5e6), "4.8 MiB");
});

Deno.test("metricsByDatabase() keeps samples apart that differ only by a stage or kind label", () => {
  const db = sample("staged");
  db.metrics.callReply.observe(1_000);
  db.metrics.callSent.observe(3_000);
  db.metrics.callSent.observe(5_000);
  db.metrics.recordStalls(new Float64Array([0, 20, 1, 40, 1, 60]));
  const text = renderMetrics([db], { heapUsedBytes: 0, residentBytes: 0 });
  const m = metricsByDatabase(parseMetrics(text)).databases.get("staged")!;
  assertEquals(m["lightcone_websocket_call_seconds_count:reply"], 1);
  assertEquals(m["lightcone_websocket_call_seconds_count:sent"], 2);
  assertEquals(m["lightcone_database_stall_seconds_count:batch"], 1);
  assertEquals(m["lightcone_database_stall_seconds_count:snapshot"], 2);
  assertEquals(m["lightcone_database_stall_seconds_count:schedule"], 0);
  assertEquals(m["lightcone_database_stall_seconds_sum:snapshot"], 0.1);
  assertEquals(m.lightcone_websocket_call_seconds_count, undefined);
  assertEquals(m.lightcone_database_stall_seconds_count, undefined);
});

const identityType: AlgebraicType = {
  tag: "Product",
  value: { elements: [{ name: "__identity__", algebraicType: { tag: "U256" } }] },
};
const timestampType: AlgebraicType = {
  tag: "Product",
  value: {
    elements: [{ name: "__timestamp_micros_since_unix_epoch__", algebraicType: { tag: "I64" } }],
  },
};
const optionString: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [
      { name: "some", algebraicType: { tag: "String" } },
      { name: "none", algebraicType: { tag: "Product", value: { elements: [] } } },
    ],
  },
};
const shape: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [
      { name: "circle", algebraicType: { tag: "U32" } },
      { name: "empty", algebraicType: { tag: "Product", value: { elements: [] } } },
    ],
  },
};
const point: AlgebraicType = {
  tag: "Product",
  value: {
    elements: [
      { name: "x", algebraicType: { tag: "I32" } },
      { name: "tags", algebraicType: { tag: "Array", value: { tag: "String" } } },
    ],
  },
};

/** The type as /schema writes it and the value as /sql writes it, read back by the dashboard. */
function roundTrip(type: AlgebraicType, value: Value): { type: unknown; value: unknown } {
  return {
    type: parseJson(stringifyJson(algebraicTypeToJson(type))),
    value: parseJson(stringifyJson(untypedValueToJson(type, value))),
  };
}

Deno.test("formatValue() and typeName() read /schema and /sql SATS-JSON as the server writes it", () => {
  const cases: [AlgebraicType, Value, string, string][] = [
    [identityType, [0xc200n << 240n | 0xabcn], "Identity", `0x${"c200" + "0".repeat(57)}abc`],
    [timestampType, [1_700_000_000_123_456n], "Timestamp", "2023-11-14T22:13:20.123Z"],
    [optionString, { tag: 0, value: "Ada" }, "Option<string>", "Ada"],
    [optionString, { tag: 1, value: [] }, "Option<string>", "none"],
    [shape, { tag: 0, value: 7 }, "circle | empty", "circle(7)"],
    [shape, { tag: 1, value: [] }, "circle | empty", "empty"],
    [point, [-5, ["a", "b"]], "{ x: i32, tags: string[] }", "{ x: -5, tags: [a, b] }"],
    [{ tag: "U64" }, 18_446_744_073_709_551_615n, "u64", "18446744073709551615"],
    [{ tag: "Bool" }, true, "bool", "true"],
  ];
  for (const [type, value, name, text] of cases) {
    const json = roundTrip(type, value);
    assertEquals(typeName(json.type, []), name);
    assertEquals(formatValue(json.type, json.value, []), text, name);
  }
});

Deno.test("parseJson() keeps integers beyond 2^53 exact; quoteIdent() doubles quotes", () => {
  assertEquals(parseJson('[18446744073709551615, 1.5, 3, "x"]'), [
    18446744073709551615n,
    1.5,
    3,
    "x",
  ]);
  assertEquals(quoteIdent('my "table"'), '"my ""table"""');
});

Deno.test("hexIdentityClaim() reads a token's hex_identity claim and nothing else", () => {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const hex = "AB".repeat(32);
  assertEquals(
    hexIdentityClaim(`${encode({})}.${encode({ hex_identity: hex })}.sig`),
    hex.toLowerCase(),
  );
  assertEquals(hexIdentityClaim(`${encode({})}.${encode({ sub: "x" })}.sig`), null);
  assertEquals(hexIdentityClaim(`${encode({})}.${encode({ hex_identity: "zz" })}.sig`), null);
  assertEquals(hexIdentityClaim("not a token"), null);
});

/** The dashboard's call body for `params` (as /schema writes them), read by the call route's own parser. */
function callThroughServer(params: ProductType, texts: string[]) {
  const json = paramsOf(parseJson(stringifyJson(productTypeToJson(params))));
  const body = callBody(json, texts, []);
  return { body, value: callArgumentsFromJson(params, body, []) };
}

const u8Array: AlgebraicType = { tag: "Array", value: { tag: "U8" } };
const u64Array: AlgebraicType = { tag: "Array", value: { tag: "U64" } };
const optionIdentity: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [
      { name: "some", algebraicType: identityType },
      { name: "none", algebraicType: { tag: "Product", value: { elements: [] } } },
    ],
  },
};

Deno.test("callBody() writes each argument as the call route reads it, big integers exact", () => {
  const cases: [AlgebraicType, string, Value][] = [
    [{ tag: "U64" }, "18446744073709551615", 18_446_744_073_709_551_615n],
    [{ tag: "U64" }, " 9007199254740993 ", 9_007_199_254_740_993n],
    [{ tag: "I128" }, "-170141183460469231731687303715884105728", -(1n << 127n)],
    [{ tag: "I8" }, "-128", -128],
    [{ tag: "U32" }, "4294967295", 4_294_967_295],
    [{ tag: "F64" }, "-2.5e3", -2500],
    [{ tag: "Bool" }, "true", true],
    [{ tag: "Bool" }, "false", false],
    [{ tag: "String" }, ' say "hi" \\ ', ' say "hi" \\ '],
    [identityType, "0xC2" + "0".repeat(60) + "0a", [(0xc2n << 248n) | 10n]],
    [identityType, "ff", [255n]],
    [timestampType, "2023-11-14T22:13:20.123Z", [1_700_000_000_123_000n]],
    [timestampType, "1700000000123456", [1_700_000_000_123_456n]],
    [optionString, "", { tag: 1, value: [] }],
    [optionString, "Ada", { tag: 0, value: "Ada" }],
    [optionIdentity, "", { tag: 1, value: [] }],
    [optionIdentity, "abc", { tag: 0, value: [0xabcn] }],
    [shape, '{"circle": 7}', { tag: 0, value: 7 }],
    [shape, "[0, 9]", { tag: 0, value: 9 }],
    [shape, "empty", { tag: 1, value: [] }],
    [shape, '{"empty": []}', { tag: 1, value: [] }],
    [point, '{"x": -5, "tags": ["a", "b"]}', [-5, ["a", "b"]]],
    [point, "[7, []]", [7, []]],
    [u64Array, "[18446744073709551615, 1]", [18_446_744_073_709_551_615n, 1n]],
    [u8Array, "0a0bff", Uint8Array.of(10, 11, 255)],
    [u8Array, "[1, 2]", Uint8Array.of(1, 2)],
  ];
  for (const [type, text, expected] of cases) {
    const params: ProductType = { elements: [{ name: "arg", algebraicType: type }] };
    const { body, value } = callThroughServer(params, [text]);
    assertEquals(value, [expected], `${text} -> ${body}`);
  }
  // Several parameters, in order; the u64 is written as an exact JSON number.
  const params: ProductType = {
    elements: [
      { name: "id", algebraicType: { tag: "U64" } },
      { name: "label", algebraicType: { tag: "String" } },
      { name: "shape", algebraicType: shape },
    ],
  };
  const { body, value } = callThroughServer(params, ["9007199254740993", "x", "empty"]);
  assertEquals(body, '[9007199254740993,"x","empty"]');
  assertEquals(value, [9_007_199_254_740_993n, "x", { tag: 1, value: [] }]);
  assertEquals(callBody([], [], []), "[]");
});

Deno.test("callBody() refuses a bad argument before sending, naming the parameter and its type", () => {
  const refusals: [AlgebraicType, string, RegExp][] = [
    [{ tag: "U32" }, "1.5", /^arg \(u32\): expected a whole number \(u32\), got "1\.5"$/],
    [{ tag: "U8" }, "256", /^arg \(u8\): 256 is out of range for u8 \(0 to 255\)$/],
    [{ tag: "U64" }, "-1", /^arg \(u64\): -1 is out of range for u64/],
    [{ tag: "U64" }, "18446744073709551616", /out of range for u64/],
    [{ tag: "I32" }, "", /^arg \(i32\): expected a whole number/],
    [{ tag: "Bool" }, "yes", /^arg \(bool\): expected true or false, got "yes"$/],
    [{ tag: "F32" }, "lots", /^arg \(f32\): expected a finite number/],
    [identityType, "xyz", /^arg \(Identity\): expected Identity as up to 64 hex digits/],
    [identityType, "1".repeat(65), /expected Identity as up to 64 hex digits/],
    [timestampType, "someday", /expected a Timestamp/],
    [point, "{x: 1}", /^arg \(\{ x: i32, tags: string\[\] \}\): expected a product .* as JSON/],
    [point, "5", /expected a product as a JSON array or object/],
    [shape, "square", /^arg \(circle \| empty\): expected one of circle \| empty/],
    [u64Array, "{}", /expected a JSON array/],
  ];
  for (const [type, text, expected] of refusals) {
    const params = paramsOf(
      parseJson(
        stringifyJson(productTypeToJson({ elements: [{ name: "arg", algebraicType: type }] })),
      ),
    );
    let message = "(nothing thrown)";
    try {
      callBody(params, [text], []);
    } catch (error) {
      message = (error as Error).message;
    }
    assert(expected.test(message), `${text}: ${message}`);
  }
});

Deno.test("moduleSummary() lists reducers (lifecycle marked), procedures, views, schedules; httpRoutesOf() the routes", () => {
  // The shapes GET /schema?version=9 and ?version=10 write (protocol/module_def_v9.ts, sats_json.ts).
  const schema = {
    typespace: {
      types: [{
        Product: {
          elements: [{ name: { some: "id" }, algebraic_type: { U64: [] } }, {
            name: { some: "at" },
            algebraic_type: {
              Sum: {
                variants: [
                  { name: { some: "Interval" }, algebraic_type: { U64: [] } },
                  { name: { some: "Time" }, algebraic_type: { U64: [] } },
                ],
              },
            },
          }],
        },
      }],
    },
    tables: [
      { name: "plain", product_type_ref: 0, schedule: { none: [] } },
      {
        name: "ticks",
        product_type_ref: 0,
        schedule: {
          some: { name: { some: "ticks_sched" }, reducer_name: "tick", scheduled_at_column: 1 },
        },
      },
    ],
    reducers: [
      { name: "init", params: { elements: [] }, lifecycle: { some: { Init: [] } } },
      { name: "on_connect", params: { elements: [] }, lifecycle: { some: { OnConnect: [] } } },
      {
        name: "add",
        params: { elements: [{ name: { some: "n" }, algebraic_type: { U64: [] } }] },
        lifecycle: { none: [] },
      },
    ],
    misc_exports: [
      { ColumnDefaultValue: { table: "plain", col_id: 0, value: "00" } },
      { Procedure: { name: "count", params: { elements: [] }, return_type: { U64: [] } } },
      {
        View: {
          name: "mine",
          index: 0,
          is_public: true,
          is_anonymous: false,
          params: { elements: [] },
          return_type: { Array: { Ref: 0 } },
        },
      },
    ],
  };
  const summary = moduleSummary(schema);
  assertEquals(
    summary.reducers.map((r) => [r.name, r.lifecycle, r.params.map((p) => p.name)]),
    [["init", "init", []], ["on_connect", "client_connected", []], ["add", null, ["n"]]],
  );
  assertEquals(typeName(summary.reducers[2].params[0].type, summary.typespace), "u64");
  assertEquals(summary.procedures.map((p) => [p.name, typeName(p.returnType, [])]), [[
    "count",
    "u64",
  ]]);
  assertEquals(
    summary.views.map((
      v,
    ) => [v.name, v.anonymous, v.isPublic, typeName(v.returnType, summary.typespace)]),
    [["mine", false, true, "{ id: u64, at: Interval | Time }[]"]],
  );
  assertEquals(summary.schedules, [{ table: "ticks", reducer: "tick", column: "at" }]);
  assertEquals(
    httpRoutesOf({
      sections: [
        { Typespace: { types: [] } },
        {
          HttpRoutes: [
            { handler_function: "hello", method: { Method: { Get: [] } }, path: "/hello" },
            { handler_function: "any", method: { Any: [] }, path: "/any" },
            { handler_function: "odd", method: { Method: { Extension: "PURGE" } }, path: "/x" },
          ],
        },
      ],
    }),
    [
      { method: "GET", path: "/hello", handler: "hello" },
      { method: "any", path: "/any", handler: "any" },
      { method: "PURGE", path: "/x", handler: "odd" },
    ],
  );
  assertEquals(httpRoutesOf({ sections: [] }), []);
});

Deno.test("hostTypeLabel reads GET /v1/database/:name's host_type", () => {
  assertEquals(hostTypeLabel({ Js: [] }), "JS");
  assertEquals(hostTypeLabel({ Wasm: [] }), "Wasm");
  assertEquals(hostTypeLabel(undefined), "?");
  assertEquals(hostTypeLabel("Wasm"), "?");
  assertEquals(hostTypeLabel({ Python: [] }), "?");
});

Deno.test("replicationSummary and replicationProgress describe /dashboard/api/replication", () => {
  assertEquals(replicationSummary({ role: "none" }), "");
  const synced = {
    database: "a",
    identity: "c2",
    durableTx: 12,
    replicatedTx: 12,
    lagTx: 0,
    lagBytes: 0,
    stopped: null,
  };
  const behind = { ...synced, replicatedTx: 7, lagTx: 5, lagBytes: 2048 };
  const primary = {
    role: "primary" as const,
    nats: "nats://10.0.0.5:4222",
    databases: [synced, behind],
  };
  assertEquals(
    replicationSummary(primary),
    "Primary: publishes every database to nats://10.0.0.5:4222",
  );
  assertEquals(replicationProgress(synced, "primary"), "in sync (12 tx)");
  assertEquals(replicationProgress(behind, "primary"), "5 tx (2.0 KiB) behind");
  assertEquals(
    replicationProgress({ ...behind, stopped: "a conflict" }, "primary"),
    "stopped: a conflict",
  );
  const replica = {
    role: "replica" as const,
    nats: "nats://10.0.0.5:4222",
    pendingMessages: 1,
    databases: [{ database: "a", identity: "c2", appliedTx: 1200, stopped: null }],
  };
  assertEquals(
    replicationSummary(replica),
    "Read replica of nats://10.0.0.5:4222: 1 stream message not applied yet",
  );
  assertEquals(
    replicationSummary({ ...replica, pendingMessages: 3 }),
    "Read replica of nats://10.0.0.5:4222: 3 stream messages not applied yet",
  );
  assertEquals(replicationProgress(replica.databases[0], "replica"), "1,200 tx applied");
});
