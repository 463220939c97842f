/**
 * The dashboard's parsers and formatters against what the server really writes: the metrics
 * text of server/metrics.ts, the SATS-JSON of protocol/ (types from /schema, values from /sql).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  type AlgebraicType,
  algebraicTypeToJson,
  stringifyJson,
  untypedValueToJson,
  type Value,
} from "../../protocol/mod.ts";
import { DatabaseMetrics, type DatabaseSample, renderMetrics } from "../metrics.ts";
import {
  averageMs,
  formatBytes,
  formatValue,
  hexIdentityClaim,
  metricsByDatabase,
  parseJson,
  parseMetrics,
  quoteIdent,
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
