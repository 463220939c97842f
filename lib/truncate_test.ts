import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { truncateText } from "./truncate.ts";

Deno.test("truncateText keeps short text and cuts long text to the limit with a marker", () => {
  assertEquals(truncateText("hello", 5), "hello");
  const long = "x".repeat(16 * 1024 * 1024);
  const cut = truncateText(long, 64 * 1024);
  assert(cut.length <= 64 * 1024, `${cut.length}`);
  assert(cut.startsWith("x".repeat(60_000)));
  const reported = Number(/\[(\d+) characters truncated\]$/.exec(cut)?.[1]);
  assertEquals(reported + cut.indexOf("…"), long.length);
});

Deno.test("truncateText never leaves half of a surrogate pair", () => {
  const text = "😀".repeat(100);
  for (let max = 30; max < 60; max++) {
    const cut = truncateText(text, max);
    assert(cut.length <= max);
    const head = cut.slice(0, cut.indexOf("…"));
    assert(head.length % 2 === 0, `max ${max}: "${head}"`);
    assert(head.isWellFormed());
  }
});
