import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { checkBatchItem, checkLogLines } from "./reply_check.ts";

Deno.test("checkBatchItem() accepts well-formed items", () => {
  const good: unknown[] = [
    { kind: "call", id: 1, status: "committed", txOffset: 3, durationMicros: 5 },
    {
      kind: "connect",
      id: 2,
      status: "failed_user",
      message: "no",
      txOffset: 3,
      durationMicros: 0,
    },
    {
      kind: "procedure",
      id: 3,
      ok: true,
      value: new Uint8Array(2),
      txOffset: 3,
      durationMicros: 1,
    },
    {
      kind: "subscribe",
      id: 4,
      ok: true,
      rows: [{ table: "t", rows: [new Uint8Array(1)] }],
      queryIds: [1],
      txOffset: 0,
    },
    { kind: "unsubscribe", id: 5, ok: false, error: "x", txOffset: 2 },
    { kind: "query", id: 6, ok: true, rows: { table: "t", rows: [] }, txOffset: 2 },
    { kind: "export", id: 7, state: new Uint8Array(0), txOffset: 1 },
    {
      kind: "sql",
      id: 8,
      ok: true,
      columns: { elements: [{ name: "n", algebraicType: { tag: "U64" } }] },
      typespace: [],
      rows: [new Uint8Array(8)],
      rowsInserted: 0,
      rowsDeleted: 0,
      rowsUpdated: 0,
      txOffset: 2,
    },
    {
      kind: "update",
      txOffset: 4,
      callId: 1,
      deltas: [{
        queryId: 1,
        table: "t",
        isEvent: false,
        inserts: [new Uint8Array(1)],
        deletes: [],
      }],
    },
  ];
  for (const item of good) assertEquals(checkBatchItem(item), undefined, JSON.stringify(item));
});

Deno.test("checkBatchItem() names what is wrong with a malformed item", () => {
  const bad: unknown[] = [
    null,
    7,
    { kind: "explode", id: 1 },
    { kind: "call", id: -1, status: "committed", txOffset: 0, durationMicros: 0 },
    { kind: "call", id: 1, status: "maybe", txOffset: 0, durationMicros: 0 },
    {
      kind: "call",
      id: 1,
      status: "committed",
      txOffset: 0,
      durationMicros: 0,
      message: { toString: 1 },
    },
    // A result without the offset it was computed at could skip the durability wait.
    { kind: "call", id: 1, status: "failed_user", message: "no", durationMicros: 0 },
    { kind: "procedure", id: 1, ok: false, message: "no", durationMicros: 0 },
    { kind: "procedure", id: 1, ok: true, value: [1, 2], txOffset: 0, durationMicros: 0 },
    { kind: "subscribe", id: 1, ok: true, rows: [{ table: 3, rows: [] }], txOffset: 0 },
    { kind: "query", id: 1, ok: true, rows: { table: "t", rows: [[1]] }, txOffset: 0 },
    { kind: "sql", id: 1, ok: true, rowsInserted: -1, rowsDeleted: 0, rowsUpdated: 0, txOffset: 0 },
    {
      kind: "sql",
      id: 1,
      ok: true,
      rows: [[1]],
      rowsInserted: 0,
      rowsDeleted: 0,
      rowsUpdated: 0,
      txOffset: 0,
    },
    { kind: "sql", id: 1, ok: true, columns: 3, rowsInserted: 0, rowsDeleted: 0, rowsUpdated: 0 },
    { kind: "update", txOffset: 1, deltas: [null] },
    { kind: "update", txOffset: "1", deltas: [] },
  ];
  for (const item of bad) assert(checkBatchItem(item) !== undefined, JSON.stringify(item));
});

Deno.test("checkLogLines() rejects lines that are not log lines", () => {
  assertEquals(checkLogLines([{ level: "Info", ts: 1, message: "hi" }]), undefined);
  assert(checkLogLines(null) !== undefined);
  assert(checkLogLines([{ level: "Info", ts: "1", message: "hi" }]) !== undefined);
  assert(checkLogLines([{ level: "Info", ts: 1, message: { evil: true } }]) !== undefined);
});

Deno.test("checkLogLines() refuses lines and replies over the worker's own log bounds", () => {
  const line = (message: string, extra: Record<string, unknown> = {}) => ({
    level: "Info",
    ts: 1,
    message,
    ...extra,
  });
  assertEquals(checkLogLines([line("x".repeat(64 * 1024))]), undefined);
  assert(checkLogLines([line("x".repeat(64 * 1024 + 1))])?.includes("65537 characters"));
  assert(checkLogLines([line("x", { function: "f".repeat(2000) })])?.includes("function name"));
  // 17 lines of 64 KiB: over the 1 MiB a reply may carry.
  const many = Array.from({ length: 17 }, () => line("x".repeat(64 * 1024)));
  assert(checkLogLines(many)?.includes("characters of log"));
  assertEquals(checkLogLines(many.slice(0, 15)), undefined);
  // Empty lines count too (their fields).
  assert(checkLogLines(Array.from({ length: 20_000 }, () => line("")))?.includes("of log"));
});
