import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { CliError } from "./errors.ts";
import {
  applyProjectDatabase,
  loadProjectConfig,
  parseJsonWithComments,
  selectTargets,
} from "./project_config.ts";
import { assertIncludes, rejected, thrown } from "./_assert_test_support.ts";

async function project(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-project-config-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.mkdir(join(dir, name, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, name), text);
  }
  return dir;
}

Deno.test("spacetime.json is found from a subdirectory; local and env layers replace top-level keys", async () => {
  const dir = await project({
    "spacetime.json": `{
      // the shared config
      "server": "local",
      "module-path": "./spacetimedb",
      "generate": [{ "language": "typescript", "out-dir": "./src/module_bindings" }],
    }`,
    "spacetime.local.json": '{ "database": "app-local" }',
    "spacetime.dev.json": '{ "database": "app-dev", "server": "http://127.0.0.1:4000" }',
    "spacetimedb/src/index.ts": "",
  });
  try {
    const plain = await loadProjectConfig({ from: join(dir, "spacetimedb", "src") });
    assert(plain !== undefined);
    assertEquals(plain.dir, dir);
    assertEquals(plain.files, [join(dir, "spacetime.json"), join(dir, "spacetime.local.json")]);
    assertEquals(plain.targets, [{
      database: "app-local",
      server: "local",
      modulePath: join(dir, "spacetimedb"),
      jsPath: undefined,
      binPath: undefined,
      buildOptions: undefined,
      breakClients: undefined,
      anonymous: undefined,
    }]);
    assertEquals(plain.generate[0].outDir, join(dir, "src", "module_bindings"));
    const dev = await loadProjectConfig({ from: dir, env: "dev" });
    assertEquals(dev?.targets[0].database, "app-dev");
    assertEquals(dev?.targets[0].server, "http://127.0.0.1:4000");
    assertEquals(dev?.files.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("children are targets that inherit what they do not set; module-path and js-path go together", async () => {
  const dir = await project({
    "spacetime.json": JSON.stringify({
      server: "local",
      "module-path": "./server",
      "break-clients": true,
      children: [
        { database: "region-a" },
        { database: "region-b", "js-path": "./prebuilt.js", server: "staging" },
        { database: "region-c", "wasm-file": "./target/module.wasm" },
        { database: "region-d", "bin-path": "./module.wasm", "module-path": "./other" },
      ],
    }),
  });
  try {
    const config = (await loadProjectConfig({ from: dir }))!;
    assertEquals(
      config.targets.map((t) => [t.database, t.server, t.modulePath, t.jsPath, t.binPath]),
      [
        ["region-a", "local", join(dir, "server"), undefined, undefined],
        ["region-b", "staging", undefined, join(dir, "prebuilt.js"), undefined],
        ["region-c", "local", undefined, undefined, join(dir, "target", "module.wasm")],
        ["region-d", "local", join(dir, "other"), undefined, join(dir, "module.wasm")],
      ],
    );
    assertEquals(config.targets.map((t) => t.breakClients), [true, true, true, true]);
    assertEquals(selectTargets(config, undefined).length, 4);
    assertEquals(selectTargets(config, "region-*").length, 4);
    assertEquals(selectTargets(config, "region-b").map((t) => t.database), ["region-b"]);
    assertEquals(
      thrown(() => selectTargets(config, "other"), CliError).message,
      "No database target matches 'other'. Available databases: region-a, region-b, region-c, " +
        "region-d",
    );
    assertIncludes(
      thrown(() => applyProjectDatabase(config, [], "optional"), CliError).message,
      "Multiple databases found in config: region-a, region-b, region-c, region-d.",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unknown keys and keys of missing features are refused with a reason", async () => {
  for (
    const [text, expected] of [
      ['{ "databse": "x" }', "Config key 'databse' is not supported in the config file."],
      ['{ "organization": "x" }', "organizations are not supported by Lightcone"],
      ['{ "database": 5 }', "Config key 'database' must be a string"],
      ['{ "generate": [{ "language": "typescript" }] }', "needs 'language' and 'out-dir'"],
      ["{ nope }", "is not valid JSON"],
    ]
  ) {
    const dir = await project({ "spacetime.json": text });
    try {
      const error = await rejected(() => loadProjectConfig({ from: dir }), CliError);
      assertIncludes(error.message, expected);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("read commands get the project's database unless the first argument names it", async () => {
  const dir = await project({
    "spacetime.json": '{ "server": "local", "database": "chat-x1y2z" }',
  });
  try {
    const config = (await loadProjectConfig({ from: dir }))!;
    const apply = (args: string[], shape: Parameters<typeof applyProjectDatabase>[2]) =>
      applyProjectDatabase(config, args, shape).positionals;
    assertEquals(apply(["add", "Alice"], "leading"), ["chat-x1y2z", "add", "Alice"]);
    assertEquals(apply(["chat-x1y2z", "add"], "leading"), ["chat-x1y2z", "add"]);
    assertEquals(apply(["SELECT 1"], "sql"), ["chat-x1y2z", "SELECT 1"]);
    assertEquals(apply([], "sql"), ["chat-x1y2z"]);
    assertEquals(apply(["other", "SELECT 1"], "sql"), ["other", "SELECT 1"]);
    assertEquals(apply([], "optional"), ["chat-x1y2z"]);
    assertEquals(apply(["table", "person"], "describe"), ["chat-x1y2z", "table", "person"]);
    assertEquals(applyProjectDatabase(config, [], "optional").server, "local");
    // A hyphenated first argument is a database name, never a function: refused, not guessed.
    assertIncludes(
      thrown(() => apply(["other-db", "add"], "leading"), CliError).message,
      "Database 'other-db' is not in the config file.",
    );
    assertEquals(applyProjectDatabase(undefined, ["a"], "optional").positionals, ["a"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JSON with comments: comment markers inside strings are kept", () => {
  assertEquals(
    parseJsonWithComments('{ "url": "http://x//y", /* c */ "a": [1, 2,], }', "f"),
    { url: "http://x//y", a: [1, 2] },
  );
});
