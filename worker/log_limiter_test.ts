import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { LOG_MESSAGE_CHARS_MAX, LOG_REPLY_CHARS_MAX } from "../lib/limits.ts";
import { checkLogLines } from "./reply_check.ts";
import { ModuleLogLimiter } from "./log_limiter.ts";

Deno.test("ModuleLogLimiter cuts long lines and bounds what one reply carries", () => {
  const limiter = new ModuleLogLimiter(1024 * 1024 * 1024, () => 0);
  const huge = "x".repeat(16 * 1024 * 1024);
  for (let i = 0; i < 100; i++) limiter.push({ level: "Info", ts: 1, message: huge });
  const lines = limiter.drain(2);
  const marker = lines.at(-1)!;
  assert(lines.slice(0, -1).every((line) => line.message.length <= LOG_MESSAGE_CHARS_MAX));
  assert(
    lines[0].message.endsWith(
      `[${huge.length - lines[0].message.indexOf("…")} characters truncated]`,
    ),
  );
  const kept = lines.length - 1;
  assert(kept * LOG_MESSAGE_CHARS_MAX <= LOG_REPLY_CHARS_MAX, `${kept} lines kept`);
  assertEquals(marker.message.startsWith(`${100 - kept} log lines dropped`), true);
  // What the worker sends passes the main thread's check.
  assertEquals(checkLogLines(lines), undefined);
  // The next reply starts with a fresh allowance and no marker.
  limiter.push({ level: "Info", ts: 3, message: "hello" });
  assertEquals(limiter.drain(4).map((line) => line.message), ["hello"]);
});

Deno.test("ModuleLogLimiter keeps a database to its log rate across replies", () => {
  let nowMs = 0;
  // 1,000 bytes/s, so a burst of 8,000: about 80 lines of ~100 characters, then 10 per second.
  const limiter = new ModuleLogLimiter(1000, () => nowMs);
  const message = "y".repeat(30);
  let kept = 0;
  for (let i = 0; i < 1000; i++) limiter.push({ level: "Info", ts: 0, message });
  const first = limiter.drain(0);
  kept += first.length - 1;
  assert(kept > 50 && kept < 120, `${kept}`);
  assert(first.at(-1)!.message.startsWith(`${1000 - kept} log lines dropped`));
  nowMs = 1000;
  for (let i = 0; i < 1000; i++) limiter.push({ level: "Info", ts: 0, message });
  const second = limiter.drain(0);
  assert(second.length - 1 >= 5 && second.length - 1 <= 15, `${second.length - 1}`);
});
