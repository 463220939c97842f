import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { thrown } from "./_assert_test_support.ts";
import { expectPositionals, parseCount, parseVerbArgs } from "./args.ts";
import { UsageError } from "./errors.ts";

const FLAGS = {
  server: { type: "string", short: "s" },
  yes: { type: "boolean", short: "y" },
  "delete-data": { type: "boolean", short: "c" },
} as const;

Deno.test("parseVerbArgs() reads short and long flags and keeps positionals in order", () => {
  const parsed = parseVerbArgs("publish", ["my-db", "-s", "http://h:1", "--yes", "-c"], FLAGS);
  assertEquals(parsed.positionals, ["my-db"]);
  assertEquals(parsed.flags.server, "http://h:1");
  assertEquals(parsed.flags.yes, true);
  assertEquals(parsed.flags["delete-data"], true);
});

Deno.test("parseVerbArgs() treats negative numbers as positionals", () => {
  const parsed = parseVerbArgs("call", ["db", "move", "-5", "-1.5", "-y"], FLAGS);
  assertEquals(parsed.positionals, ["db", "move", "-5", "-1.5"]);
  assertEquals(parsed.flags.yes, true);
});

Deno.test("parseVerbArgs() returns an attached value for optional-value flags", () => {
  const parsed = parseVerbArgs("publish", ["--delete-data=on-conflict", "db"], FLAGS, [
    "delete-data",
  ]);
  assertEquals(parsed.flags["delete-data"], true);
  assertEquals(parsed.attached, { "delete-data": "on-conflict" });
  assertEquals(parsed.positionals, ["db"]);
});

Deno.test("parseVerbArgs() passes everything after -- through as positionals", () => {
  const parsed = parseVerbArgs("call", ["db", "f", "--", "--yes", "-s"], FLAGS);
  assertEquals(parsed.positionals, ["db", "f", "--yes", "-s"]);
  assertEquals(parsed.flags.yes, undefined);
});

Deno.test("parseVerbArgs() rejects an unknown flag with a usage error naming it", () => {
  const error = thrown(() => parseVerbArgs("logs", ["--bogus"], FLAGS), UsageError);
  assertEquals(error.message, "unexpected argument '--bogus' found");
  assertEquals(error.hints, ["For more information, try 'logs --help'."]);
});

Deno.test("parseVerbArgs() rejects a string flag without its value", () => {
  const error = thrown(() => parseVerbArgs("logs", ["-s"], FLAGS), UsageError);
  assertEquals(
    error.message,
    "a value is required for '-s, --server <value>' but none was supplied",
  );
});

Deno.test("expectPositionals() names the missing arguments and rejects extra ones", () => {
  const missing = thrown(
    () => expectPositionals("call", ["db"], { required: ["DATABASE", "FUNCTION"] }),
    UsageError,
  );
  assertEquals(missing.message, "the following required arguments were not provided: <FUNCTION>");
  const extra = thrown(
    () => expectPositionals("logs", ["db", "x"], { required: ["DATABASE"] }),
    UsageError,
  );
  assertEquals(extra.message, "unexpected argument 'x' found");
  expectPositionals("call", ["db", "f", "1", "2"], {
    required: ["DATABASE", "FUNCTION"],
    rest: true,
  });
});

Deno.test("parseCount() accepts whole numbers only", () => {
  assertEquals(parseCount("logs", "-n", "20"), 20);
  thrown(() => parseCount("logs", "-n", "ten"), UsageError);
  thrown(() => parseCount("logs", "-n", "1.5"), UsageError);
});
