/**
 * `sql` and `subscribe` against a real server with the chat fixture: rendered tables,
 * errors and exit codes, the interactive session (in-process and with stdin piped into a
 * real `main.ts sql` process), and subscriptions that receive updates the test causes.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./main.ts";
import { captureIo, type CliIo } from "./io.ts";
import { assertIncludes } from "./_assert_test_support.ts";
import { escapeC1, formatDuration, psqlValue, splitStatements } from "./sql_format.ts";
import { call, fixtureBundle, publish, startTestServer } from "../tests/support/server.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Fixture {
  url: string;
  db: string;
  token: string;
  configPath: string;
  cli(args: string[], io?: CliIo & { stdout: string; stderr: string }): Promise<Run>;
}

async function withChat(fn: (f: Fixture) => Promise<void>) {
  const server = await startTestServer();
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-sql-" });
  try {
    const published = await publish(server.url, "chat-sql", await fixtureBundle("chat"));
    const configPath = join(dir, "cli.json");
    const cli = async (args: string[], io = captureIo()): Promise<Run> => {
      const code = await runCli(["--config-path", configPath, ...args], { io });
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    await fn({ url: server.url, db: "chat-sql", token: published.token, configPath, cli });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function send(f: Fixture, text: string): Promise<void> {
  const response = await call(f.url, f.db, "send_message", [text], f.token);
  assertEquals(response.status, 200, response.text);
}

const HEX64 = "0x[0-9a-f]{64}";
const RFC3339 = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{3}|\\.\\d{6})?\\+00:00";

Deno.test("sql renders rows as a psql table with SpacetimeDB's value notation", async () => {
  await withChat(async (f) => {
    await send(f, "hello");
    await send(f, 'say "hi"');
    const run = await f.cli(["sql", f.db, "SELECT * FROM message", "-s", f.url, "--anonymous"]);
    assertEquals(run.code, 0, run.stderr);
    const lines = run.stdout.split("\n");
    assertEquals(lines.length, 5, run.stdout); // header, rule, 2 rows, final ""
    assertEquals(lines[4], "");
    // Column widths: id is 2 wide (header), identities 66, timestamps vary.
    const header = new RegExp(`^ id \\| sender {61}\\| sent +\\| text$`);
    assert(header.test(lines[0]), `header: ${JSON.stringify(lines[0])}`);
    assert(/^----\+-{68}\+-+\+-+$/.test(lines[1]), `rule: ${JSON.stringify(lines[1])}`);
    const row = (id: number, text: string) =>
      new RegExp(`^ ${id}  \\| ${HEX64} \\| ${RFC3339} *\\| ${text}$`);
    const texts = lines.slice(2, 4).sort();
    assert(row(1, '"hello"').test(texts[0]), texts[0]);
    assert(row(2, '"say \\\\"hi\\\\""').test(texts[1]), texts[1]);
    // Every line of a table has its `|` at the same columns.
    const bars = (line: string) => [...line].flatMap((c, i) => c === "|" ? [i] : []);
    assertEquals(bars(lines[2]), bars(lines[0]));
    assertEquals(bars(lines[3]), bars(lines[0]));
    assert(!run.stdout.includes("rows)"), "one-shot prints no row count");
    assertEquals(
      run.stderr,
      "WARNING: This command is UNSTABLE and subject to breaking changes.\n\n",
    );

    // Options: none/some and bools, through `user` (the HTTP calls connected the publisher).
    const users = await f.cli(["sql", f.db, "SELECT * FROM user", "-s", f.url]);
    assertEquals(users.code, 0, users.stderr);
    assert(
      new RegExp(`^ ${HEX64} \\| \\(none = \\(\\)\\) \\| (true|false) *$`, "m").test(users.stdout),
      users.stdout,
    );
    assertEquals(
      (await call(f.url, f.db, "set_name", ["Alice"], f.token)).status,
      200,
    );
    const named = await f.cli(["sql", f.db, "SELECT * FROM user", "-s", f.url]);
    assertEquals(named.code, 0, named.stderr);
    assertIncludes(named.stdout, '(some = "Alice")');

    const json = await f.cli([
      "sql",
      f.db,
      "SELECT * FROM message",
      "-s",
      f.url,
      "--format",
      "json",
    ]);
    assertEquals(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assertEquals(parsed.length, 1);
    assertEquals(parsed[0].rows.length, 2);
  });
});

Deno.test("sql errors: bad query, unknown database, bad flags exit 1 with a clear message", async () => {
  await withChat(async (f) => {
    const bad = await f.cli(["sql", f.db, "SELECT * FROM nope", "-s", f.url]);
    assertEquals(bad.code, 1);
    assertEquals(bad.stdout, "");
    assert(/\nError: .*nope/.test(bad.stderr), bad.stderr);

    const missing = await f.cli(["sql", "no-such-db", "SELECT * FROM message", "-s", f.url]);
    assertEquals(missing.code, 1);
    assertIncludes(missing.stderr, "Error: failed to find database `no-such-db`.");

    const both = await f.cli(["sql", f.db, "SELECT 1", "--interactive", "-s", f.url]);
    assertEquals(both.code, 1);
    assertIncludes(both.stderr, "cannot be used with");

    const format = await f.cli(["sql", f.db, "SELECT * FROM user", "--format", "csv"]);
    assertEquals(format.code, 1);
    assertIncludes(format.stderr, "invalid value 'csv' for '--format'");
  });
});

Deno.test("sql REPL: statements end with ';', span lines, errors do not end it, \\q leaves", async () => {
  await withChat(async (f) => {
    await send(f, "a;b");
    await send(f, "plain");
    const io = captureIo({
      answers: [
        "SELECT * FROM message",
        "  WHERE text = 'a;b';",
        "SELECT * FROM nope;",
        "SELECT * FROM message WHERE text = 'plain'; SELECT * FROM message",
        "WHERE text = 'zzz';",
        "\\q",
        "SELECT * FROM message;",
      ],
      interactive: true,
    });
    const run = await f.cli(["sql", f.db, "-s", f.url], io);
    assertEquals(run.code, 0, run.stderr);
    assertIncludes(run.stdout, ".exit: Exit the REPL");
    assertIncludes(run.stdout, `🪐${f.db}> `);
    // The banner/prompts aside, three result tables came out, in order.
    const tables = run.stdout.split(/ id \| sender [^\n]*\n/).slice(1);
    assertEquals(tables.length, 3, run.stdout);
    assertIncludes(tables[0], '| "a;b"\n(1 row) [server: ');
    assertIncludes(tables[1], '| "plain"\n(1 row) [server: ');
    assertIncludes(tables[2], "(0 rows) [server: ");
    assertEquals(run.stdout.match(/^Roundtrip time: \d+\.\d\d(ns|µs|ms|s)$/gm)?.length, 3);
    assert(/^Error: .*nope/m.test(run.stderr), run.stderr);
    assertEquals(
      run.stdout.match(/\(\d+ rows?\)/g)?.length,
      3,
      "the statement after \\q was not run",
    );
  });
});

Deno.test("sql --interactive reads piped stdin in a real process (no prompts, clean output)", async () => {
  await withChat(async (f) => {
    await send(f, "piped");
    const root = new URL("../", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${root}main.ts`,
        "--config-path",
        f.configPath,
        "sql",
        f.db,
        "--interactive",
        "-s",
        f.url,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(
        "SELECT *\nFROM message;\nSELECT * FROM nope;\nSELECT * FROM message WHERE text = 'piped'",
      ),
    );
    await writer.close();
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 0, stderr);
    assert(!stdout.includes("🪐"), "no prompt when stdin is not a terminal");
    const lines = stdout.split("\n");
    assert(/^ id \| sender +\| sent +\| text$/.test(lines[0]), JSON.stringify({ stdout, stderr }));
    assert(/^-+\+-+\+-+\+-+$/.test(lines[1]), stdout);
    assert(/\| "piped"$/.test(lines[2]), stdout);
    assert(/^\(1 row\) \[server: [\d.]+(ns|µs|ms|s)\]$/.test(lines[3]), lines[3]);
    assert(/^Roundtrip time: /.test(lines[4]), stdout);
    // The last query had no ';' and ran at end of input.
    assertEquals(stdout.match(/\| "piped"$/gm)?.length, 2, stdout);
    assertIncludes(stderr, "Error:");
  });
});

Deno.test("subscribe prints the initial rows and N updates caused by calls, then exits 0", async () => {
  await withChat(async (f) => {
    await send(f, "before");
    const io = captureIo();
    const running = f.cli(
      [
        "subscribe",
        f.db,
        "SELECT * FROM message",
        "-n",
        "2",
        "--print-initial-update",
        "-t",
        "60",
        "-s",
        f.url,
      ],
      io,
    );
    // Wait for the initial update so the calls below happen after the subscription.
    const deadline = Date.now() + 30_000;
    while (!io.stdout.includes("\n") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await send(f, "first");
    await send(f, "second");
    await send(f, "third");
    const run = await running;
    assertEquals(run.code, 0, run.stderr);
    const lines = run.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assertEquals(lines.length, 3, run.stdout);
    assertEquals(lines[0].message.deletes, []);
    assertEquals(lines[0].message.inserts.map((r: { text: string }) => r.text), ["before"]);
    assertEquals(lines[1].message.inserts.map((r: { text: string }) => r.text), ["first"]);
    assertEquals(lines[2].message.inserts.map((r: { text: string }) => r.text), ["second"]);
    const row = lines[1].message.inserts[0];
    assertEquals(Object.keys(row), ["id", "sender", "sent", "text"]);
    assertEquals(row.id, 2);
  });
});

Deno.test("subscribe: the timeout ends it with 0; a refused query exits 1", async () => {
  await withChat(async (f) => {
    const started = performance.now();
    const quiet = await f.cli(["subscribe", f.db, "SELECT * FROM message", "-t", "1", "-s", f.url]);
    const elapsed = performance.now() - started;
    assertEquals(quiet.code, 0, quiet.stderr);
    assertEquals(quiet.stdout, "");
    assert(elapsed >= 950, `stopped after ${elapsed} ms, before the 1 s timeout`);
    console.log(`subscribe -t 1 returned after ${elapsed.toFixed(0)} ms`);

    const refused = await f.cli(["subscribe", f.db, "SELECT * FROM nope", "-t", "30", "-s", f.url]);
    assertEquals(refused.code, 1);
    assert(/\nError: .*nope/.test(refused.stderr), refused.stderr);

    const missing = await f.cli(["subscribe", "no-such-db", "SELECT * FROM x", "-s", f.url]);
    assertEquals(missing.code, 1);
    assertIncludes(missing.stderr, "failed to find database `no-such-db`.");

    const badCount = await f.cli(["subscribe", f.db, "SELECT * FROM message", "-n", "x"]);
    assertEquals(badCount.code, 1);
    assertIncludes(badCount.stderr, "invalid value 'x'");
  });
});

Deno.test("psql notation of values and statement splitting", () => {
  const identity = {
    tag: "Product" as const,
    value: { elements: [{ name: "__identity__", algebraicType: { tag: "U256" as const } }] },
  };
  assertEquals(psqlValue(identity, [0xc200n]), "0x" + "0".repeat(60) + "c200");
  const timestamp = {
    tag: "Product" as const,
    value: {
      elements: [{
        name: "__timestamp_micros_since_unix_epoch__",
        algebraicType: { tag: "I64" as const },
      }],
    },
  };
  assertEquals(psqlValue(timestamp, [1_718_614_904_711_241n]), "2024-06-17T09:01:44.711241+00:00");
  assertEquals(psqlValue(timestamp, [1_718_614_904_711_000n]), "2024-06-17T09:01:44.711+00:00");
  assertEquals(psqlValue(timestamp, [0n]), "1970-01-01T00:00:00+00:00");
  const duration = {
    tag: "Product" as const,
    value: {
      elements: [{ name: "__time_duration_micros__", algebraicType: { tag: "I64" as const } }],
    },
  };
  assertEquals(psqlValue(duration, [1_500_000n]), "+1.500000");
  assertEquals(psqlValue(duration, [-2n]), "-0.000002");
  const shape = {
    tag: "Sum" as const,
    value: {
      variants: [
        { name: "Fighter", algebraicType: { tag: "Product" as const, value: { elements: [] } } },
        {
          name: "Point",
          algebraicType: {
            tag: "Product" as const,
            value: {
              elements: [{ name: "x", algebraicType: { tag: "F64" as const } }, {
                name: "tags",
                algebraicType: { tag: "Array" as const, value: { tag: "String" as const } },
              }],
            },
          },
        },
      ],
    },
  };
  assertEquals(psqlValue(shape, { tag: 0, value: [] }), "(Fighter = ())");
  assertEquals(
    psqlValue(shape, { tag: 1, value: [1.5, ["a", "b"]] }),
    '(Point = (x = 1.5, tags = ["a", "b"]))',
  );
  assertEquals(
    psqlValue({ tag: "Array", value: { tag: "U8" } }, new Uint8Array([1, 255])),
    "0x01ff",
  );
  assertEquals(formatDuration(1.234), "1.23ms");
  assertEquals(formatDuration(0.5), "500.00µs");
  assertEquals(formatDuration(2500), "2.50s");
  assertEquals(splitStatements("a; 'x;y' ; \"q;\"; rest"), {
    statements: ["a", "'x;y'", '"q;"'],
    rest: " rest",
  });
  assertEquals(splitStatements("'it''s;' ;"), { statements: ["'it''s;'"], rest: "" });
});

Deno.test("subscribe exits 0 with 'disconnected by server' when the database goes away", async () => {
  await withChat(async (f) => {
    const io = captureIo();
    const running = f.cli(
      [
        "subscribe",
        f.db,
        "SELECT * FROM message",
        "--print-initial-update",
        "-t",
        "60",
        "-s",
        f.url,
      ],
      io,
    );
    const deadline = Date.now() + 30_000;
    while (!io.stdout.includes("\n") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assertEquals(io.stdout, '{"message":{"deletes":[],"inserts":[]}}\n');
    const deleted = await fetch(`${f.url}/v1/database/${f.db}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${f.token}` },
    });
    await deleted.body?.cancel();
    assertEquals(deleted.status, 200);
    const started = performance.now();
    const run = await running;
    assertEquals(run.code, 0, run.stderr);
    assertIncludes(run.stderr, "disconnected by server");
    console.log(`subscribe ended ${(performance.now() - started).toFixed(0)} ms after the delete`);
  });
});

Deno.test("strings a client stored reach the terminal without raw control characters", () => {
  const stored = "hi\x1b[2J\u009b31m\x7fend";
  const shown = psqlValue({ tag: "String" }, stored);
  assertEquals(shown, '"hi\\u001b[2J\\u009b31m\\u007fend"');
  assertEquals(JSON.parse(shown), stored);
  // subscribe prints JSON lines: the same escapes, the same values.
  const line = escapeC1(JSON.stringify({ text: stored }));
  // deno-lint-ignore no-control-regex
  assertEquals(/[\x00-\x1f\x7f-\x9f]/.test(line), false, line);
  assertEquals(JSON.parse(line).text, stored);
});
