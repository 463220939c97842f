/**
 * A local server with new keys (a new data dir) cannot accept the token the CLI saved for it:
 * `publish` notices (GET /v1/identity/ID/verify), logs in again and goes on.
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

Deno.test("publish to a local server whose keys changed logs in again instead of failing", async () => {
  let server = await startTestServer();
  const port = Number(new URL(server.url).port);
  const work = await Deno.makeTempDir({ prefix: "lightcone-relogin-" });
  const cli = async (...args: string[]) => {
    const io = captureIo();
    const code = await runCli(
      ["--config-path", join(work, "cli.json"), "--no-config", ...args, "-s", server.url],
      { io },
    );
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
  try {
    const first = await cli("publish", "relogin-db", "-p", FIXTURE, "--skip-type-check");
    assertEquals(first.code, 0, first.stderr);
    const tokenBefore = JSON.parse(await Deno.readTextFile(join(work, "cli.json"))).tokens;

    await server.close(); // its data dir (and signing keys) are gone
    server = await startTestServer({ port });
    const second = await cli("publish", "relogin-db", "-p", FIXTURE, "--skip-type-check");
    assertEquals(second.code, 0, second.stderr);
    assert(
      second.stderr.includes(`The token saved for ${server.url} was not signed by this server`),
      second.stderr,
    );
    assert(second.stdout.startsWith("Created new database with name: relogin-db"), second.stdout);
    const tokenAfter = JSON.parse(await Deno.readTextFile(join(work, "cli.json"))).tokens;
    assert(tokenAfter[server.url] !== tokenBefore[server.url]);

    // With a token the server accepts, nothing is said and the identity stays.
    const third = await cli("publish", "relogin-db", "-p", FIXTURE, "--skip-type-check");
    assertEquals(third.code, 0, third.stderr);
    assert(!third.stderr.includes("was not signed"), third.stderr);
  } finally {
    await server.close();
    await Deno.remove(work, { recursive: true });
  }
});
