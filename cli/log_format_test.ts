import { strictEqual as assertEquals } from "node:assert/strict";
import { formatLogLine, formatTimestampMicros } from "./log_format.ts";

Deno.test("formatTimestampMicros() keeps all six fractional digits", () => {
  assertEquals(formatTimestampMicros(1736263977447286), "2025-01-07T15:32:57.447286Z");
  assertEquals(formatTimestampMicros(1736263977000001), "2025-01-07T15:32:57.000001Z");
});

Deno.test("formatLogLine() prints time, right-aligned level, function, file:line and message", () => {
  const line = JSON.stringify({
    ts: 1736263977447286,
    level: "Info",
    filename: "src/index.ts",
    line_number: 18,
    function: "say_hello",
    message: "Hello, World!",
  });
  assertEquals(
    formatLogLine(line, { colour: false }),
    "2025-01-07T15:32:57.447286Z  INFO: say_hello src/index.ts:18: Hello, World!",
  );
});

Deno.test("formatLogLine() leaves out the system sentinel origin", () => {
  const line = JSON.stringify({
    ts: 1736263977447286,
    level: "Warn",
    target: "__spacetimedb__",
    filename: "__spacetimedb__",
    function: "__spacetimedb__",
    message: "Database initialized",
  });
  assertEquals(
    formatLogLine(line, { colour: false }),
    "2025-01-07T15:32:57.447286Z  WARN: Database initialized",
  );
});

Deno.test("formatLogLine() colours the level only when asked", () => {
  const line = JSON.stringify({ ts: 0, level: "Error", message: "boom" });
  assertEquals(formatLogLine(line, { colour: false }).includes("\x1b["), false);
  assertEquals(formatLogLine(line, { colour: true }).includes("\x1b[31mERROR"), true);
});

Deno.test("formatLogLine() prints panic traces and passes non-JSON lines through", () => {
  const line = JSON.stringify({
    ts: 0,
    level: "Panic",
    message: "oops",
    trace: [{ module_name: "m", func_name: "f" }],
  });
  assertEquals(formatLogLine(line, { colour: false }).split("\n")[1], "    in m :: f");
  assertEquals(formatLogLine("not json", { colour: false }), "not json");
});
