import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseStrace } from "./strace.ts";

Deno.test("parseStrace reads lines whatever the width of the pid column", () => {
  // strace pads pids to five characters: a four-digit pid is followed by two spaces. Test runs
  // on a machine whose pids had wrapped below 10000 saw no syscall at all before this was read.
  const trace = [
    '3540  23:52:12.295952 sendto(30<TCP:[127.0.0.1:1->127.0.0.1:2]>, "\\x48\\x49", 2, 0, NULL, 0) = 2 <0.000020>',
    '14575 23:52:12.300000 sendto(31<TCP:[127.0.0.1:1->127.0.0.1:3]>, "\\x4a", 1, 0, NULL, 0) = 1 <0.000010>',
  ].join("\n");
  const calls = parseStrace(trace);
  assertEquals(calls.map((call) => [call.name, call.target, [...call.data]]), [
    ["sendto", "TCP:[127.0.0.1:1->127.0.0.1:2]", [0x48, 0x49]],
    ["sendto", "TCP:[127.0.0.1:1->127.0.0.1:3]", [0x4a]],
  ]);
});
