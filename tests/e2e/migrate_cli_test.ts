/**
 * `publish` over a migration, as a user runs it: the plan is printed, a client-breaking plan is
 * confirmed (answer, `--break-clients` or `-y`), a manual migration aborts with SpacetimeDB's
 * texts unless `--delete-data=on-conflict`, and the database is unchanged when it aborts.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { captureIo, runCli } from "../../cli/mod.ts";
import { fixtureBundle, startTestServer } from "../support/server.ts";

function assertIncludes(text: string, part: string): void {
  assert(text.includes(part), `expected to find ${JSON.stringify(part)} in:\n${text}`);
}

Deno.test("publish prints the migration plan and asks before breaking clients", async () => {
  const server = await startTestServer();
  const dir = await Deno.makeTempDir({ prefix: "lightcone-migrate-cli-" });
  const files: Record<string, string> = {};
  for (const name of ["migrate_v1", "migrate_v1n", "migrate_v2", "migrate_bad"]) {
    files[name] = join(dir, `${name}.js`);
    await Deno.writeTextFile(files[name], await fixtureBundle(name));
  }
  const cli = async (answers: string[], ...args: string[]) => {
    const io = captureIo({ answers, interactive: answers.length > 0 });
    const code = await runCli(["--config-path", join(dir, "cli.json"), ...args, "-s", server.url], {
      io,
    });
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  const columns = async () => {
    const result = await cli([], "sql", "mig", "SELECT * FROM person");
    assertEquals(result.code, 0, result.stderr);
    return result.stdout.split("\n")[0];
  };
  try {
    assertEquals((await cli([], "publish", "mig", "-j", files.migrate_v1)).code, 0);
    assertEquals((await cli([], "call", "mig", "add", "1", "Ann")).code, 0);

    // Additive: the plan is printed, no question.
    const additive = await cli([], "publish", "mig", "-j", files.migrate_v1n);
    assertEquals(additive.code, 0, additive.stderr);
    assertIncludes(additive.stderr, "Checking for breaking changes...");
    assertIncludes(additive.stderr, "Database Migration Plan");
    assertIncludes(additive.stderr, "▸ Created user table: note (public)");
    assert(!additive.stderr.includes("BREAK"), additive.stderr);
    assertIncludes(additive.stdout, "Updated database with name: mig");

    // Breaking: asked; "n" aborts and nothing changes.
    const refused = await cli(["n"], "publish", "mig", "-j", files.migrate_v2);
    assertEquals(refused.code, 1);
    assertIncludes(refused.stderr, "▸ Created column in table person");
    assertIncludes(
      refused.stderr,
      "!!! Warning: All clients will be disconnected due to breaking schema changes",
    );
    assertIncludes(
      refused.stderr,
      "The above changes will BREAK existing clients. Do you want to proceed? [y/N]",
    );
    assertIncludes(refused.stderr, "Publishing aborted by user");
    assertEquals((await columns()).replace(/\s+/g, " ").trim(), "id | name");

    // --break-clients: no question, the migration runs, existing rows get the default.
    const accepted = await cli([], "publish", "mig", "-j", files.migrate_v2, "--break-clients");
    assertEquals(accepted.code, 0, accepted.stderr);
    assert(!accepted.stderr.includes("Do you want to proceed"), accepted.stderr);
    assertEquals((await columns()).replace(/\s+/g, " ").trim(), "id | name | age");
    const rows = await cli([], "sql", "mig", "SELECT * FROM person");
    assert(/\b1\s*\|\s*"Ann"\s*\|\s*7\b/.test(rows.stdout), rows.stdout);

    // Manual migration: SpacetimeDB's texts, abort, data intact.
    const manual = await cli([], "publish", "mig", "-j", files.migrate_bad);
    assertEquals(manual.code, 1);
    assertIncludes(
      manual.stderr,
      "Errors occurred:\nRemoving a column age from table person requires a manual migration\n\n" +
        "Removing a column name from table person requires a manual migration",
    );
    assertIncludes(manual.stderr, "Aborting publish due to required manual migration.");
    assertIncludes(
      manual.stderr,
      "Aborting because publishing would require manual migration or deletion of data and " +
        "--delete-data was not specified.",
    );
    assertEquals((await columns()).replace(/\s+/g, " ").trim(), "id | name | age");

    // --delete-data=on-conflict -y: reset to the new schema.
    const reset = await cli(
      [],
      "publish",
      "mig",
      "-j",
      files.migrate_bad,
      "--delete-data=on-conflict",
      "-y",
    );
    assertEquals(reset.code, 0, reset.stderr);
    assertIncludes(
      reset.stderr,
      "Proceeding with database clear due to --delete-data=on-conflict.",
    );
    assertEquals((await columns()).replace(/\s+/g, " ").trim(), "id");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
