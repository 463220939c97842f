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

Deno.test("formatLogLine() shows control characters from the module as escapes, never raw", () => {
  // What a module logging a client's chat message sends: clear the screen, set the window title,
  // write the clipboard (OSC 52), return to the line start, a C1 CSI.
  const hostile = "hi\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZWNobyBoaQ==\x07\rfake\u009b31m\x7f";
  const line = JSON.stringify({
    ts: 0,
    level: "Info",
    function: "say\x1b[8m",
    filename: "chat.ts\r",
    line_number: 1,
    message: hostile + "\nsecond line\ttabbed",
    trace: [{ module_name: "m\x1b[1m", func_name: "f" }],
  });
  for (const colour of [false, true]) {
    const text = formatLogLine(line, { colour });
    // The CLI's own level and time colours are the only escapes left.
    // deno-lint-ignore no-control-regex
    const raw = colour ? text.replaceAll(/\x1b\[[0-9;]*m(?=[ :\d])/g, "") : text;
    // deno-lint-ignore no-control-regex
    assertEquals(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(raw), false, JSON.stringify(text));
    assertEquals(
      text.endsWith(
        "say\\x1b[8m chat.ts\\x0d:1: hi\\x1b[2J\\x1b]0;pwned\\x07\\x1b]52;c;ZWNobyBoaQ==\\x07\\x0dfake" +
          "\\x9b31m\\x7f\nsecond line\ttabbed\n    in m\\x1b[1m :: f",
      ),
      true,
      JSON.stringify(text),
    );
  }
  assertEquals(formatLogLine("not json\x1b[2J", { colour: false }), "not json\\x1b[2J");
});
