import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeModule } from "../tests/support/describe_module.ts";
import { decodeRawModuleDef } from "../protocol/module_def.ts";
import { CliError } from "./errors.ts";
import { captureIo } from "./io.ts";
import {
  buildModule,
  bundleError,
  checkBundle,
  denoCheckDiagnostics,
  formatDiagnostic,
  importsFromPackageJson,
  tscDiagnostics,
} from "./module_build.ts";
import { assertIncludes, rejected, thrown } from "./_assert_test_support.ts";

const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "tests",
  "fixtures",
  "modules",
  "cli_project",
);

/** A fresh copy of the fixture project (without node_modules or dist) in a temp dir. */
export async function copyFixtureProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-project-" });
  await Deno.mkdir(join(dir, "src"));
  for (const file of ["package.json", "tsconfig.json", "src/index.ts"]) {
    await Deno.copyFile(join(FIXTURE, file), join(dir, file));
  }
  return dir;
}

async function hasNpm(): Promise<boolean> {
  try {
    const output = await new Deno.Command("npm", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return output.success;
  } catch {
    return false;
  }
}

const npmAvailable = await hasNpm();

Deno.test({
  name:
    "buildModule() bundles a project from its npm-installed node_modules into a loadable module",
  ignore: !npmAvailable,
  async fn() {
    const dir = await copyFixtureProject();
    try {
      const install = await new Deno.Command("npm", {
        args: ["install", "--no-fund", "--no-audit", "--prefer-offline", "--loglevel=error"],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(install.success, new TextDecoder().decode(install.stderr));
      const io = captureIo();
      const result = await buildModule(dir, io);
      assertEquals(result.resolution, "node_modules");
      assertEquals(result.syscallVersions, ["2.0", "2.1"]);
      assertEquals(result.bundlePath, join(await Deno.realPath(dir), "dist", "bundle.js"));
      const text = await Deno.readTextFile(result.bundlePath);
      assertIncludes(text, 'from "spacetime:sys@2.0"');
      assertIncludes(text, "//# sourceMappingURL=data:application/json");
      // The bundle is a real module: its describe hook yields the fixture's schema.
      const def = decodeRawModuleDef(await describeModule(text));
      assertEquals(def.tables.map((t) => t.sourceName), ["person"]);
      assertEquals(
        def.reducers.map((r) => r.sourceName).sort(),
        ["add", "init", "onConnect", "onDisconnect", "sayHello"],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("buildModule() resolves from package.json through Deno's npm cache without node_modules", async () => {
  const dir = await copyFixtureProject();
  try {
    const io = captureIo();
    const result = await buildModule(dir, io);
    assertEquals(result.resolution, "package.json");
    assertIncludes(io.stderr, "no node_modules");
    const text = await Deno.readTextFile(result.bundlePath);
    assertEquals(checkBundle(text), ["2.0", "2.1"]);
    assert(/^export\s*\{[^}]*as default/m.test(text));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildModule() reports a syntax error with file:line:column", async () => {
  const dir = await copyFixtureProject();
  try {
    await Deno.writeTextFile(join(dir, "src/index.ts"), "\nconst x = ;\n", { append: true });
    const error = await rejected(() => buildModule(dir, captureIo()), CliError);
    assert(
      /^Build failed: src\/index\.ts:\d+:11: SyntaxError: Expression expected$/.test(error.message),
      error.message,
    );
    assertIncludes(error.hints.join("\n"), "const x = ;");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildModule() says a dependency is missing and how to install it", async () => {
  const dir = await copyFixtureProject();
  try {
    await Deno.writeTextFile(join(dir, "src/index.ts"), '\nimport "./helpers.ts";\n', {
      append: true,
    });
    const error = await rejected(() => buildModule(dir, captureIo()), CliError);
    assertIncludes(error.message, "helpers.ts");
    assertIncludes(
      error.hints.join("\n"),
      "Module not found. You may have forgotten to install dependencies",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildModule() rejects a module without `export default`", async () => {
  const dir = await copyFixtureProject();
  try {
    const source = await Deno.readTextFile(join(dir, "src/index.ts"));
    await Deno.writeTextFile(
      join(dir, "src/index.ts"),
      source.replace("export default spacetimedb;", ""),
    );
    const error = await rejected(() => buildModule(dir, captureIo()), CliError);
    assertEquals(
      error.message,
      "It seems like you haven't exported your schema. You must `export default schema(...);`",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildModule() rejects a module that never imports spacetimedb/server", async () => {
  const dir = await copyFixtureProject();
  try {
    await Deno.writeTextFile(join(dir, "src/index.ts"), "export default 1;\n");
    const error = await rejected(() => buildModule(dir, captureIo()), CliError);
    assertIncludes(
      error.message,
      "Your module doesn't import the `spacetimedb/server` package at all",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildModule() names a missing project dir and a missing entry point", async () => {
  const missing = await rejected(
    () => buildModule("/nonexistent/lightcone-project", captureIo()),
    CliError,
  );
  assertIncludes(
    missing.message,
    "Module directory does not exist: '/nonexistent/lightcone-project'",
  );
  const dir = await Deno.makeTempDir();
  try {
    const noEntry = await rejected(() => buildModule(dir, captureIo()), CliError);
    assertIncludes(noEntry.message, "Could not find the module entry point");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkBundle() rejects two major versions of the host ABI", () => {
  const text =
    'import * as a from "spacetime:sys@1.0";\nimport * as b from "spacetime:sys@2.0";\n' +
    "export { x as default };\n";
  const error = thrown(() => checkBundle(text), CliError);
  assertIncludes(
    error.message,
    "The module pulls in 2 different versions of the `spacetimedb/server` package",
  );
});

Deno.test("bundleError() keeps the first error, its location and the code frame", () => {
  const stderr = [
    "⚠️  deno bundle is experimental and subject to changes",
    "error: SyntaxError: Expression expected",
    "   |",
    "28 | const x = ;",
    "   |           ~",
    "    at file:///tmp/p/src/index.ts:28:11",
    "error: bundling failed",
    "",
    "Stack backtrace:",
    "   0: <unknown>",
  ].join("\n");
  const error = bundleError(stderr, "/tmp/p", "node_modules");
  assertEquals(error.message, "Build failed: src/index.ts:28:11: SyntaxError: Expression expected");
  assertEquals(error.hints, ["   |", "28 | const x = ;", "   |           ~"]);
});

Deno.test("importsFromPackageJson() maps ranges to npm: specifiers and skips workspace links", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      join(dir, "package.json"),
      JSON.stringify({
        dependencies: { spacetimedb: "workspace:*", "left-pad": "^1.3.0", local: "file:../x" },
      }),
    );
    assertEquals(await importsFromPackageJson(join(dir, "package.json")), {
      spacetimedb: "npm:spacetimedb@2.8.3",
      "spacetimedb/": "npm:/spacetimedb@2.8.3/",
      "left-pad": "npm:left-pad@^1.3.0",
      "left-pad/": "npm:/left-pad@^1.3.0/",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildModule() type-checks by default: a wrong type fails with file:line and the message, and nothing is bundled", async () => {
  const dir = await copyFixtureProject();
  try {
    const source = await Deno.readTextFile(join(dir, "src/index.ts"));
    const broken = source.replace(
      "ctx.db.person.insert({ name });",
      "ctx.db.person.insert({ name: 7 });",
    );
    assert(broken !== source, "the fixture has the line this test breaks");
    await Deno.writeTextFile(join(dir, "src/index.ts"), broken);
    const lines = broken.split("\n");
    const line = lines.findIndex((l) => l.includes("name: 7")) + 1;
    const column = lines[line - 1].indexOf("name: 7") + 1;
    const io = captureIo();
    const error = await rejected(() => buildModule(dir, io), CliError);
    assertEquals(
      error.message,
      `Type check failed: 1 error, the first at src/index.ts:${line}:${column}`,
    );
    assertIncludes(
      io.stderr,
      `src/index.ts:${line}:${column} - error TS2322: Type 'number' is not assignable to type 'string'.`,
    );
    assertIncludes(io.stderr, "ctx.db.person.insert({ name: 7 });");
    assertIncludes(error.hints.join("\n"), "--skip-type-check");
    await rejected(() => Deno.stat(join(dir, "dist", "bundle.js")), Deno.errors.NotFound);

    const skipped = await buildModule(dir, captureIo(), { skipTypeCheck: true });
    assert((await Deno.stat(skipped.bundlePath)).size > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("type checker output is parsed into file:line:column diagnostics", () => {
  const dir = "/home/me/app/spacetimedb";
  const deno = [
    "TS2322 [ERROR]: Type 'number' is not assignable to type 'string'.",
    "  ctx.db.person.insert({ name: 5 });",
    "                         ~~~~",
    `    at file://${dir}/src/index.ts:19:26`,
    "",
    "    The expected type comes from property 'name' which is declared here",
    "        at file:///cache/spacetimedb/dist/lib/type_util.d.ts:10:57",
    "",
    "TS2304 [ERROR]: Cannot find name 'nope'.",
    "  nope();",
    "  ~~~~",
    `    at file://${dir}/src/other.ts:3:3`,
    "",
    "Found 2 errors.",
  ].join("\n");
  assertEquals(denoCheckDiagnostics(deno, dir).map(formatDiagnostic), [
    "src/index.ts:19:26 - error TS2322: Type 'number' is not assignable to type 'string'.\n" +
    "    ctx.db.person.insert({ name: 5 });",
    "src/other.ts:3:3 - error TS2304: Cannot find name 'nope'.\n    nope();",
  ]);
  const tsc =
    `src/index.ts(4,7): error TS2322: Type 'string' is not assignable to type 'number'.\n`;
  assertEquals(tscDiagnostics(tsc, dir).map(formatDiagnostic), [
    "src/index.ts:4:7 - error TS2322: Type 'string' is not assignable to type 'number'.",
  ]);
});

Deno.test({
  name:
    "buildModule() type-checks the init template's module with the project's own tsc when it is installed",
  ignore: !npmAvailable,
  async fn() {
    const template = join(dirname(fileURLToPath(import.meta.url)), "..", "templates", "basic");
    const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-tsc-" });
    try {
      await Deno.mkdir(join(dir, "src"));
      for (const file of ["package.json", "tsconfig.json", "src/index.ts"]) {
        const text = await Deno.readTextFile(join(template, "spacetimedb", file));
        await Deno.writeTextFile(
          join(dir, file),
          text.replaceAll("{{project_name}}", "tsc-test").replaceAll(
            "{{spacetimedb_version}}",
            "2.8.3",
          ),
        );
      }
      const install = await new Deno.Command("npm", {
        args: [
          "install",
          "--no-fund",
          "--no-audit",
          "--prefer-offline",
          "--loglevel=error",
          "--save-dev",
          "typescript@5.6.3",
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(install.success, new TextDecoder().decode(install.stderr));
      const io = captureIo();
      await buildModule(dir, io);
      assertIncludes(io.stderr, "Type-checking with tsc --noEmit...");

      const source = await Deno.readTextFile(join(dir, "src/index.ts"));
      await Deno.writeTextFile(
        join(dir, "src/index.ts"),
        source.replace("ctx.db.person.insert({ name });", "ctx.db.person.insert({ name: 1 });"),
      );
      const failing = captureIo();
      const error = await rejected(() => buildModule(dir, failing), CliError);
      assert(
        /^Type check failed: 1 error, the first at src\/index\.ts:\d+:\d+$/.test(error.message),
      );
      assert(
        /src\/index\.ts:\d+:\d+ - error TS2322: Type 'number' is not assignable to type 'string'\./
          .test(failing.stderr),
        failing.stderr,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("buildModule() type-checks and bundles a module whose files import each other without extensions, as directories and as .js", async () => {
  const fixture = join(FIXTURE, "..", "cli_project_split");
  const dir = await Deno.makeTempDir({ prefix: "lightcone-cli-split-" });
  try {
    await Deno.mkdir(join(dir, "src", "rules"), { recursive: true });
    for (
      const file of [
        "package.json",
        "tsconfig.json",
        "src/index.ts",
        "src/titles.ts",
        "src/describe.ts",
        "src/rules/index.ts",
      ]
    ) {
      await Deno.copyFile(join(fixture, file), join(dir, file));
    }
    const io = captureIo();
    const result = await buildModule(dir, io);
    assertIncludes(io.stderr, "Type-checking with deno check");
    const def = decodeRawModuleDef(
      await describeModule(await Deno.readTextFile(result.bundlePath)),
    );
    assertEquals(def.tables.map((t) => t.sourceName), ["note"]);
    assertEquals(def.reducers.map((r) => r.sourceName), ["addNote"]);

    // The imported files are type-checked too: an error in one is reported where it is.
    const titles = join(dir, "src", "titles.ts");
    const source = await Deno.readTextFile(titles);
    const broken = source.replace("return title.trim()", "return 7 + title.trim()");
    assert(broken !== source, "the fixture has the line this test breaks");
    await Deno.writeTextFile(titles, broken.replace("): string {", "): number {"));
    const error = await rejected(() => buildModule(dir, captureIo()), CliError);
    assertIncludes(error.message, "the first at src/");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
