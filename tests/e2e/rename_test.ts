/**
 * `rename`: the owner renames a database (the old name is released, the new one survives a
 * restart); anyone else is refused; a taken name is refused.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { captureIo, runCli } from "../../cli/mod.ts";
import { startTestServer } from "../support/server.ts";

const FIXTURE = join(
  resolve(dirname(fileURLToPath(import.meta.url)), "..", ".."),
  "tests",
  "fixtures",
  "modules",
  "cli_project",
);

function assertIncludes(text: string, part: string): void {
  assert(text.includes(part), `expected to find ${JSON.stringify(part)} in:\n${text}`);
}

Deno.test("rename: the owner renames, others are refused, a taken name is refused, the name survives a restart", async () => {
  let server = await startTestServer();
  const work = await Deno.makeTempDir({ prefix: "lightcone-rename-" });
  const cliAs = (who: string) => async (...args: string[]) => {
    const io = captureIo();
    const code = await runCli(
      ["--config-path", join(work, `${who}.json`), "--no-config", ...args, "-s", server.url],
      { io },
    );
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  const alice = cliAs("alice");
  const bob = cliAs("bob");
  try {
    for (const name of ["first-name", "taken-name"]) {
      const published = await alice("publish", name, "-p", FIXTURE, "--skip-type-check");
      assertEquals(published.code, 0, published.stderr);
    }
    const identity = await (await fetch(`${server.url}/v1/database/first-name/identity`)).text();
    assert(/^[0-9a-f]{64}$/.test(identity), identity);

    const login = await bob("login");
    assertEquals(login.code, 0, login.stderr);
    const refused = await bob("rename", "--to", "bobs-name", "first-name");
    assertEquals(refused.code, 1);
    assertIncludes(
      refused.stderr,
      "You cannot rename first-name because it is owned by another identity.",
    );
    const taken = await alice("rename", "--to", "taken-name", "first-name");
    assertEquals(taken.code, 1);
    assertIncludes(taken.stderr, 'The database name "taken-name" is already taken');
    const bad = await alice("rename", "--to", "Bad_Name", "first-name");
    assertEquals(bad.code, 1);
    assertIncludes(bad.stderr, "invalid characters in database name");

    const renamed = await alice("rename", "--to", "second-name", "first-name");
    assertEquals(renamed.code, 0, renamed.stderr);
    assertEquals(renamed.stdout, `Name set to second-name for identity ${identity}.\n`);
    assertEquals((await alice("sql", "first-name", "SELECT * FROM person")).code, 1);
    assertEquals((await alice("call", "second-name", "add", "Ann")).code, 0);

    // Restart on a fresh port (reusing the old one races with any process that took it); the CLI
    // reads `server.url` on each call, and the identities live in the data directory.
    await server.close({ keepData: true });
    server = await startTestServer({ dataDir: server.dataDir });
    const after = await alice("sql", "second-name", "SELECT * FROM person");
    assertEquals([after.code, after.stdout], [0, ' name\n-------\n "Ann"\n'], after.stderr);
  } finally {
    await server.close();
    await Deno.remove(work, { recursive: true });
  }
});
