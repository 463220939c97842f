/**
 * The HTTP verbs run in-process (runCli) against the stub server in _stub_server.ts:
 * exact output texts, exit codes, and the requests they send.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./main.ts";
import { captureIo } from "./io.ts";
import { fakeToken, startStubServer, type StubServer } from "./_stub_server.ts";
import { assertIncludes } from "./_assert_test_support.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function withStub(
  fn: (
    stub: StubServer,
    cli: (...args: string[]) => Promise<Run>,
    configPath: string,
  ) => Promise<void>,
) {
  const stub = await startStubServer();
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-test-" });
  const configPath = join(dir, "cli.json");
  const bundlePath = join(dir, "bundle.js");
  await Deno.writeTextFile(bundlePath, 'import "spacetime:sys@2.0";\nexport { x as default };\n');
  const cli = async (...args: string[]): Promise<Run> => {
    const io = captureIo();
    const expanded = args.map((a) => a === "$BUNDLE" ? bundlePath : a);
    const code = await runCli(["--config-path", configPath, ...expanded], { io });
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  try {
    await fn(stub, cli, configPath);
  } finally {
    await stub.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("publish logs in once, creates the database, then updates it as the same owner", async () => {
  await withStub(async (stub, cli, configPath) => {
    const first = await cli("publish", "my-db", "--js-path", "$BUNDLE", "-s", stub.url);
    assertEquals(first.code, 0, first.stderr);
    const identity = stub.databases.get([...stub.databases.keys()][0])!.identity;
    assertEquals(first.stdout, `Created new database with name: my-db, identity: ${identity}\n`);
    assertIncludes(first.stderr, "Logged in with identity c200");
    assertIncludes(first.stderr, `Saving config to ${configPath}.`);
    const saved = JSON.parse(await Deno.readTextFile(configPath));
    assertEquals(Object.keys(saved.tokens), [stub.url]);

    const second = await cli("publish", "my-db", "--js-path", "$BUNDLE", "-s", stub.url);
    assertEquals(second.code, 0, second.stderr);
    assertEquals(second.stdout, `Updated database with name: my-db, identity: ${identity}\n`);
    assert(!second.stderr.includes("Logged in"), "the saved token is reused");
    assertIncludes(second.stderr, "Checking for breaking changes...");
    const puts = stub.requests.filter((r) => r.method === "PUT");
    assertEquals(puts.length, 2);
    assertEquals(puts[0].query, { host_type: "Js" });
    assertEquals(puts[1].query, { host_type: "Js", token: "0xabc", policy: "BreakClients" });
    assertEquals(puts[1].authorization, puts[0].authorization);
    assertEquals(puts[1].body, await Deno.readTextFile(join(configPath, "..", "bundle.js")));
  });
});

Deno.test("publish -c -y clears the data; without -y it asks and aborts on no", async () => {
  await withStub(async (stub, cli) => {
    assertEquals((await cli("publish", "wipe-me", "-j", "$BUNDLE", "-s", stub.url)).code, 0);
    const refused = await cli("publish", "wipe-me", "-j", "$BUNDLE", "-s", stub.url, "-c");
    assertEquals(refused.code, 1);
    assertIncludes(
      refused.stderr,
      "This will DESTROY the current wipe-me module, and ALL corresponding data.",
    );
    assertIncludes(refused.stderr, "Error: Aborted.");
    const cleared = await cli("publish", "wipe-me", "-j", "$BUNDLE", "-s", stub.url, "-c", "-y");
    assertEquals(cleared.code, 0, cleared.stderr);
    const puts = stub.requests.filter((r) => r.method === "PUT");
    assertEquals(puts.at(-1)!.query.clear, "true");
    assertEquals(puts.length, 2, "the refused publish sent nothing");
  });
});

Deno.test("publish without a name creates a database known by identity only", async () => {
  await withStub(async (stub, cli) => {
    const run = await cli("publish", "--js-path", "$BUNDLE", "-s", stub.url);
    assertEquals(run.code, 0, run.stderr);
    assert(/^Created new database with identity: c200[0-9a-f]{60}\n$/.test(run.stdout), run.stdout);
    assertEquals(stub.requests.at(-1)!.method, "POST");
    assertEquals(stub.requests.at(-1)!.path, "/v1/database");
  });
});

Deno.test("publish rejects bad database names before doing anything", async () => {
  await withStub(async (stub, cli) => {
    const hyphen = await cli("publish", "bad--name", "-j", "$BUNDLE", "-s", stub.url);
    assertEquals(hyphen.code, 1);
    assertIncludes(hyphen.stderr, "Error: invalid hyphen in database name 'bad--name'");
    const chars = await cli("publish", "My_DB", "-j", "$BUNDLE", "-s", stub.url);
    assertIncludes(chars.stderr, "Error: invalid characters in database name 'My_DB'");
    assertEquals(stub.requests.length, 0);
  });
});

Deno.test("publish as someone else is refused with the server's reason and who you are", async () => {
  await withStub(async (stub, cli, configPath) => {
    assertEquals((await cli("publish", "owned", "-j", "$BUNDLE", "-s", stub.url)).code, 0);
    const other = "c200" + "f".repeat(60);
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({ tokens: { [stub.url]: fakeToken(other) } }),
    );
    const run = await cli("publish", "owned", "-j", "$BUNDLE", "-s", stub.url);
    assertEquals(run.code, 1);
    assertIncludes(run.stderr, "Error: Publishing failed with status 403");
    assertIncludes(run.stderr, `You are identity ${other}`);
  });
});

Deno.test("call sends JSON arguments, bare text for strings, and prints nothing on success", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "calls", "-j", "$BUNDLE", "-s", stub.url);
    const add = await cli("call", "calls", "add", "Alice", "-s", stub.url);
    assertEquals([add.code, add.stdout, add.stderr], [0, "", ""]);
    const quoted = await cli("call", "calls", "add", '"Bob"', "-s", stub.url);
    assertEquals(quoted.code, 0, quoted.stderr);
    const big = await cli(
      "call",
      "calls",
      "set_count",
      "18446744073709551615",
      "-7",
      "-s",
      stub.url,
    );
    assertEquals(big.code, 0, big.stderr);
    const bodies = stub.requests.filter((r) => r.path.includes("/call/")).map((r) => r.body);
    assertEquals(bodies, ['["Alice"]', '["Bob"]', "[18446744073709551615,-7]"]);
  });
});

Deno.test("call prints the reducer's error text from a 530", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "fails", "-j", "$BUNDLE", "-s", stub.url);
    const run = await cli("call", "fails", "add", '""', "-s", stub.url);
    assertEquals(run.code, 1);
    assertEquals(run.stderr, "Error: Reducer `add` failed: name must not be empty\n");
  });
});

Deno.test("call of an unknown reducer suggests the similar one", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "hints", "-j", "$BUNDLE", "-s", stub.url);
    const run = await cli("call", "hints", "sayHello", "-s", stub.url);
    assertEquals(run.code, 1);
    assertIncludes(
      run.stderr,
      "Error: No such reducer OR procedure `sayHello` for database `hints` resolving to identity `c200",
    );
    assertIncludes(run.stderr, "A reducer with a similar name exists: `say_hello`");
    const stranger = await cli("call", "hints", "launch_rockets", "-s", stub.url);
    assertIncludes(
      stranger.stderr,
      "Here are some existing reducers:\n  - add\n  - say_hello\n  - set_count\n",
    );
    assert(!stub.requests.some((r) => r.path.endsWith("/call/sayHello")), "nothing was called");
  });
});

Deno.test("call checks the argument count and shows the signature", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "arity", "-j", "$BUNDLE", "-s", stub.url);
    const run = await cli("call", "arity", "add", "-s", stub.url);
    assertEquals(run.code, 1);
    assertEquals(
      run.stderr,
      "Error: Invalid arguments provided for reducer `add`\n" +
        "  1 parameters were expected, but 0 were provided.\n" +
        "  The reducer has the following signature:\n" +
        "  \tadd(name: String)\n",
    );
    const notJson = await cli("call", "arity", "set_count", "one", "2", "-s", stub.url);
    assertIncludes(notJson.stderr, "Error: Argument `id` (U64) is not valid JSON: 'one'");
  });
});

Deno.test("call and describe of a missing database say so", async () => {
  await withStub(async (stub, cli) => {
    const call = await cli("call", "nope", "add", "x", "-s", stub.url);
    assertEquals(call.code, 1);
    assertIncludes(call.stderr, "Error: failed to find database `nope`.");
    const describe = await cli("describe", "nope", "-s", stub.url);
    assertIncludes(describe.stderr, "Error: failed to find database `nope`.");
  });
});

Deno.test("logs prints readable lines, or raw NDJSON with --format json, and tails with -n", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "logged", "-j", "$BUNDLE", "-s", stub.url);
    stub.appendLog(
      "logged",
      JSON.stringify({
        ts: 1736263977447286,
        level: "Info",
        function: "say_hello",
        filename: "src/index.ts",
        line_number: 23,
        message: "Hello, World!",
      }),
    );
    const text = await cli("logs", "logged", "-s", stub.url);
    assertEquals(text.code, 0, text.stderr);
    assertEquals(
      text.stdout,
      "2025-01-07T15:32:57.447286Z  INFO: Database initialized\n" +
        "2025-01-07T15:32:57.447286Z  INFO: say_hello src/index.ts:23: Hello, World!\n",
    );
    const json = await cli("logs", "logged", "-n", "1", "--format", "json", "-s", stub.url);
    assertEquals(JSON.parse(json.stdout).message, "Hello, World!");
    assertEquals(stub.requests.at(-1)!.query, { follow: "false", num_lines: "1" });
    const bad = await cli("logs", "logged", "--format", "xml", "-s", stub.url);
    assertEquals(bad.code, 1);
    assertIncludes(bad.stderr, "invalid value 'xml' for '--format'");
  });
});

Deno.test("logs of someone else's database explains ownership", async () => {
  await withStub(async (stub, cli, configPath) => {
    await cli("publish", "private-log", "-j", "$BUNDLE", "-s", stub.url);
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({ tokens: { [stub.url]: fakeToken("c200" + "e".repeat(60)) } }),
    );
    const run = await cli("logs", "private-log", "-s", stub.url);
    assertEquals(run.code, 1);
    assertIncludes(run.stderr, "(HTTP 403)");
    assertIncludes(run.stderr, "only the database's owner may do this");
  });
});

Deno.test("logs --follow streams new lines until interrupted", async () => {
  const stub = await startStubServer();
  const dir = await Deno.makeTempDir();
  try {
    const configPath = join(dir, "cli.json");
    const bundle = join(dir, "b.js");
    await Deno.writeTextFile(bundle, 'import "spacetime:sys@2.0";\nexport { x as default };\n');
    const setup = captureIo();
    assertEquals(
      await runCli(["--config-path", configPath, "publish", "live", "-j", bundle, "-s", stub.url], {
        io: setup,
      }),
      0,
    );
    const interrupt = new AbortController();
    const io = captureIo({ interrupt: interrupt.signal });
    const running = runCli(["--config-path", configPath, "logs", "live", "-f", "-s", stub.url], {
      io,
    });
    // Wait until the first line arrived, then push one more and interrupt after it shows.
    while (!io.stdout.includes("Database initialized")) await new Promise((r) => setTimeout(r, 10));
    stub.appendLog("live", JSON.stringify({ ts: 0, level: "Warn", message: "later line" }));
    while (!io.stdout.includes("later line")) await new Promise((r) => setTimeout(r, 10));
    interrupt.abort();
    assertEquals(await running, 0);
    assertEquals(stub.requests.at(-1)!.query, { follow: "true", num_lines: "10" });
  } finally {
    await stub.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("describe prints the schema readably, as JSON, or one entity", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "described", "-j", "$BUNDLE", "-s", stub.url);
    const text = await cli("describe", "described", "-s", stub.url);
    assertEquals(text.code, 0, text.stderr);
    assertIncludes(text.stdout, "Database described (module def v10)");
    assertIncludes(text.stdout, "  person (public)\n");
    assertIncludes(text.stdout, "  say_hello()\n");
    const json = await cli("describe", "described", "--json", "-s", stub.url);
    assertEquals(Array.isArray(JSON.parse(json.stdout).sections), true);
    const table = await cli("describe", "described", "table", "person", "--json", "-s", stub.url);
    assertEquals(JSON.parse(table.stdout).source_name, "person");
    const reducer = await cli("describe", "described", "reducer", "add", "-s", stub.url);
    assertEquals(reducer.stdout, "add(name: String)\n");
    const missing = await cli("describe", "described", "table", "ghost", "-s", stub.url);
    assertIncludes(missing.stderr, "Error: no such table: 'ghost'");
    const badType = await cli("describe", "described", "widget", "x", "-s", stub.url);
    assertIncludes(
      badType.stderr,
      "Invalid entity_type 'widget'. Expected one of: table, reducer, procedure, view.",
    );
  });
});

Deno.test("delete asks first, aborts on end of input, and deletes with -y", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "doomed", "-j", "$BUNDLE", "-s", stub.url);
    const refused = await cli("delete", "doomed", "-s", stub.url);
    assertEquals(refused.code, 1);
    assertIncludes(refused.stderr, "Are you sure you want to delete database doomed (c200");
    assertEquals(stub.databases.size, 1);
    const done = await cli("delete", "doomed", "-y", "-s", stub.url);
    assertEquals(done.code, 0, done.stderr);
    assertIncludes(done.stdout, "Deleted database doomed (c200");
    assertEquals(stub.databases.size, 0);
  });
});

Deno.test("list shows the databases of the saved identity", async () => {
  await withStub(async (stub, cli) => {
    await cli("publish", "listed-one", "-j", "$BUNDLE", "-s", stub.url);
    const run = await cli("list", "-s", stub.url);
    assertEquals(run.code, 0, run.stderr);
    assertIncludes(run.stdout, "Associated databases for user c200");
    assertIncludes(run.stdout, " Database Name(s) | Identity");
    assertIncludes(run.stdout, " listed-one       | c200");
  });
});

Deno.test("server ping says whether the server is online", async () => {
  await withStub(async (stub, cli) => {
    const online = await cli("server", "ping", stub.url);
    assertEquals([online.code, online.stdout], [0, `Server is online: ${stub.url}\n`]);
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const io = captureIo({ env: { HOME: "/nonexistent-home" } });
  const code = await runCli(["server", "ping", `http://127.0.0.1:${port}`], { io });
  assertEquals(code, 1);
  assertIncludes(
    io.stderr,
    `Error: Cannot reach the server at http://127.0.0.1:${port}: connection refused`,
  );
  assertIncludes(io.stderr, "Is the server running?");
});

Deno.test("runCli() prints help for every verb and rejects unknown verbs", async () => {
  for (
    const verb of [
      "build",
      "publish",
      "call",
      "logs",
      "describe",
      "delete",
      "list",
      "server",
      "login",
    ]
  ) {
    const io = captureIo();
    assertEquals(await runCli([verb, "--help"], { io }), 0);
    assertIncludes(io.stdout, "Usage:");
  }
  const io = captureIo();
  assertEquals(await runCli(["--help"], { io }), 0);
  assertIncludes(io.stdout, "publish");
  const unknown = captureIo();
  assertEquals(await runCli(["frobnicate"], { io: unknown }), 1);
  assertEquals(
    unknown.stderr,
    "Error: unrecognized subcommand 'frobnicate'\n  For more information, try '--help'.\n",
  );
});

/** A server answering GET /v1/identity/public-key with `key.pem` (changeable) and /v1/ping. */
function keyServer(key: { pem: string }) {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/v1/identity/public-key") return new Response(key.pem);
    if (path === "/v1/ping") return new Response("");
    return new Response("not found", { status: 404 });
  });
  return { host: `127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("server fingerprint saves the key and asks before saving a changed one", async () => {
  const key = { pem: "-----BEGIN PUBLIC KEY-----\nFIRST\n-----END PUBLIC KEY-----\n" };
  const server = keyServer(key);
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-test-" });
  const configPath = join(dir, "cli.json");
  const run = async (args: string[], answers: string[] = []) => {
    const io = captureIo({ answers });
    const code = await runCli(["--config-path", configPath, ...args], { io });
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  const saved = async () =>
    JSON.parse(await Deno.readTextFile(configPath)).server_configs.find((
      s: { nickname: string },
    ) => s.nickname === "k");
  try {
    const added = await run(["server", "add", "k", "--url", `http://${server.host}`]);
    assertEquals(added.code, 0, added.stderr);
    assertEquals((await saved()).ecdsa_public_key, key.pem);
    const same = await run(["server", "fingerprint", "k"]);
    assertEquals(same.code, 0, same.stderr);
    assertIncludes(same.stdout, "Fingerprint is unchanged for server k");

    key.pem = "-----BEGIN PUBLIC KEY-----\nSECOND\n-----END PUBLIC KEY-----\n";
    const refused = await run(["server", "fingerprint", "k"], ["n"]);
    assertEquals(refused.code, 1);
    assertIncludes(refused.stderr, "The fingerprint of server k has changed");
    assertEquals((await saved()).ecdsa_public_key.includes("FIRST"), true);
    const accepted = await run(["server", "fingerprint", "k"], ["y"]);
    assertEquals(accepted.code, 0, accepted.stderr);
    assertIncludes(accepted.stdout, "Saved the fingerprint of server k");
    assertEquals((await saved()).ecdsa_public_key, key.pem);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server edit renames and moves a server; server clear deletes a data directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-test-" });
  const configPath = join(dir, "cli.json");
  const run = async (args: string[], answers: string[] = []) => {
    // The default server points at a closed port, so `clear` sees no running server.
    const io = captureIo({ answers, env: { HOME: dir } });
    const code = await runCli(["--config-path", configPath, ...args], { io });
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  try {
    assertEquals(
      (await run(["server", "add", "a", "--url", "http://10.0.0.1:3000", "--no-fingerprint", "-d"]))
        .code,
      0,
    );
    await run(["server", "add", "b", "--url", "http://10.0.0.2:3000", "--no-fingerprint"]);
    const clash = await run(["server", "edit", "a", "--new-name", "b", "-y"]);
    assertEquals(clash.code, 1);
    assertIncludes(clash.stderr, "Server nickname b already in use: http://10.0.0.2:3000");
    const nothing = await run(["server", "edit", "a"]);
    assertEquals(nothing.code, 1);
    assertIncludes(nothing.stderr, "nothing to change");
    const aborted = await run(["server", "edit", "a", "--new-name", "c"], ["n"]);
    assertEquals(aborted.code, 1);
    const edited = await run([
      "server",
      "edit",
      "a",
      "--new-name",
      "c",
      "--url",
      "http://10.0.0.3:3000/",
      "--no-fingerprint",
      "-y",
    ]);
    assertEquals(edited.code, 0, edited.stderr);
    assertIncludes(
      edited.stdout,
      "Nickname: a -> c\nURL: http://10.0.0.1:3000 -> http://10.0.0.3:3000",
    );
    const config = JSON.parse(await Deno.readTextFile(configPath));
    assertEquals(config.default_server, "c");
    assertEquals(
      config.server_configs.find((s: { nickname: string }) => s.nickname === "c").host,
      "10.0.0.3:3000",
    );

    // clear: the local default server must not answer; point the default at a closed port.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    await run([
      "server",
      "add",
      "l",
      "--url",
      `http://127.0.0.1:${port}`,
      "--no-fingerprint",
      "-d",
    ]);
    const data = join(dir, "data");
    await Deno.mkdir(join(data, "databases"), { recursive: true });
    await Deno.writeTextFile(join(data, "control.json"), "{}");
    const kept = await run(["server", "clear", "--data-dir", data], ["n"]);
    assertEquals(kept.code, 1);
    assertIncludes(
      kept.stderr,
      "Are you sure you want to delete all data from the local database?",
    );
    assertEquals((await Deno.stat(data)).isDirectory, true);
    const cleared = await run(["server", "clear", "--data-dir", data, "-y"]);
    assertEquals(cleared.code, 0, cleared.stderr);
    assertIncludes(cleared.stdout, `Deleted all data from ${data}`);
    let gone = false;
    try {
      await Deno.stat(data);
    } catch {
      gone = true;
    }
    assertEquals(gone, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server clear refuses while the default local server answers", async () => {
  const server = keyServer({ pem: "k" });
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-test-" });
  const configPath = join(dir, "cli.json");
  try {
    const io = captureIo({ env: { HOME: dir } });
    await runCli([
      "--config-path",
      configPath,
      "server",
      "add",
      "up",
      "--url",
      `http://${server.host}`,
      "-d",
    ], { io });
    await Deno.mkdir(join(dir, "data"));
    const clear = captureIo({ env: { HOME: dir } });
    const code = await runCli(
      ["--config-path", configPath, "server", "clear", "--data-dir", join(dir, "data"), "-y"],
      { io: clear },
    );
    assertEquals(code, 1);
    assertIncludes(clear.stderr, `A server is running at http://${server.host}`);
    assertEquals((await Deno.stat(join(dir, "data"))).isDirectory, true);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
