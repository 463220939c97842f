/**
 * The CLI against the real server: build the fixture project, publish, call, logs,
 * describe, republish, delete — as a user would, with a fresh config and data dir.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { captureIo, runCli } from "../../cli/mod.ts";
import { startTestServer } from "../support/server.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const FIXTURE = join(REPO_ROOT, "tests", "fixtures", "modules", "cli_project");

function assertIncludes(text: string, part: string): void {
  assert(text.includes(part), `expected to find ${JSON.stringify(part)} in:\n${text}`);
}

async function copyFixture(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-e2e-project-" });
  await Deno.mkdir(join(dir, "src"));
  for (const file of ["package.json", "tsconfig.json", "src/index.ts"]) {
    await Deno.copyFile(join(FIXTURE, file), join(dir, file));
  }
  return dir;
}

Deno.test("the CLI builds, publishes, calls, reads logs, describes, republishes and deletes on a real server", async () => {
  const server = await startTestServer();
  const project = await copyFixture();
  const configPath = join(project, "cli.json");
  const cli = async (...args: string[]) => {
    const io = captureIo();
    const code = await runCli(["--config-path", configPath, ...args], { io });
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  try {
    const published = await cli("publish", "e2e-db", "-p", project, "-s", server.url);
    assertEquals(published.code, 0, published.stderr);
    assert(
      /^Created new database with name: e2e-db, identity: [0-9a-f]{64}\n$/.test(published.stdout),
      published.stdout,
    );
    assertIncludes(published.stderr, "Logged in with identity");

    const add = await cli("call", "e2e-db", "add", "Alice", "-s", server.url);
    assertEquals([add.code, add.stdout], [0, ""], add.stderr);
    const hello = await cli("call", "e2e-db", "say_hello", "-s", server.url);
    assertEquals(hello.code, 0, hello.stderr);

    const logs = await cli("logs", "e2e-db", "-n", "2", "-s", server.url);
    assertEquals(logs.code, 0, logs.stderr);
    const lines = logs.stdout.trimEnd().split("\n");
    assertEquals(lines.length, 2, logs.stdout);
    assert(lines[0].endsWith("Hello, Alice!"), logs.stdout);
    assert(lines[1].endsWith("Hello, World!"), logs.stdout);
    assertIncludes(lines[0], " INFO: ");

    const failing = await cli("call", "e2e-db", "add", '""', "-s", server.url);
    assertEquals(failing.code, 1);
    assertIncludes(failing.stderr, "Error: Reducer `add` failed:");

    const similar = await cli("call", "e2e-db", "sayHello", "-s", server.url);
    assertEquals(similar.code, 1);
    assertIncludes(similar.stderr, "No such reducer OR procedure `sayHello` for database `e2e-db`");
    assertIncludes(similar.stderr, "A reducer with a similar name exists: `say_hello`");

    const arity = await cli("call", "e2e-db", "add", "-s", server.url);
    assertIncludes(arity.stderr, "add(name: String)");

    const described = await cli("describe", "e2e-db", "-s", server.url);
    assertEquals(described.code, 0, described.stderr);
    assertIncludes(described.stdout, "  person (public)\n");
    assertIncludes(described.stdout, "  add(name: String)\n");
    assertIncludes(described.stdout, "  say_hello()\n");
    const describedJson = await cli(
      "describe",
      "e2e-db",
      "table",
      "person",
      "--json",
      "-s",
      server.url,
    );
    assertEquals(describedJson.code, 0, describedJson.stderr);
    assert(JSON.parse(describedJson.stdout), describedJson.stdout);

    const republished = await cli("publish", "e2e-db", "-p", project, "-s", server.url);
    assertEquals(republished.code, 0, republished.stderr);
    assertIncludes(republished.stdout, "Updated database with name: e2e-db, identity: ");

    const listed = await cli("list", "-s", server.url);
    assertEquals(listed.code, 0, listed.stderr);
    assertIncludes(listed.stdout, "e2e-db");

    const deleted = await cli("delete", "e2e-db", "-y", "-s", server.url);
    assertEquals(deleted.code, 0, deleted.stderr);
    const gone = await cli("describe", "e2e-db", "-s", server.url);
    assertEquals(gone.code, 1);
    assertIncludes(gone.stderr, "failed to find database `e2e-db`");
  } finally {
    await server.close();
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("another identity cannot update or read the logs of a database it does not own", async () => {
  const server = await startTestServer();
  const project = await copyFixture();
  try {
    const run = async (configName: string, ...args: string[]) => {
      const io = captureIo();
      const code = await runCli(["--config-path", join(project, configName), ...args], { io });
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    const created = await run("owner.json", "publish", "owned-db", "-p", project, "-s", server.url);
    assertEquals(created.code, 0, created.stderr);
    const bundle = join(project, "dist", "bundle.js");
    const intruder = await run("other.json", "publish", "owned-db", "-j", bundle, "-s", server.url);
    assertEquals(intruder.code, 1);
    assertIncludes(intruder.stderr, "403");
    const logs = await run("other.json", "logs", "owned-db", "-s", server.url);
    assertEquals(logs.code, 1);
    assertIncludes(logs.stderr, "only the database's owner may do this");
  } finally {
    await server.close();
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("main.ts runs CLI verbs as a separate process", async () => {
  const server = await startTestServer();
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(REPO_ROOT, "main.ts"), "server", "ping", server.url],
      cwd: REPO_ROOT,
      env: { LIGHTCONE_CLI_CONFIG: join(server.dataDir, "cli.json") },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
    assertEquals(stdout, `Server is online: ${server.url}\n`);
  } finally {
    await server.close();
  }
});
