/** `server add/set-default/remove/list`, their own help, and `init`'s checks, in-process. */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { captureIo, runCli } from "./mod.ts";
import { assertIncludes } from "./_assert_test_support.ts";

function cliIn(dir: string) {
  const configPath = join(dir, "cli.json");
  return async (args: string[], answers: string[] = []) => {
    const io = captureIo({ answers });
    const code = await runCli(["--config-path", configPath, "--no-config", ...args], { io });
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
}

Deno.test("server add, set-default, list and remove keep the config and refuse clashes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-server-cmd-" });
  try {
    const cli = cliIn(dir);
    const added = await cli([
      "server",
      "add",
      "staging",
      "--url",
      "https://db.example.com/",
      "--no-fingerprint",
      "-d",
    ]);
    assertEquals(added.code, 0, added.stderr);
    assertEquals(added.stdout, "Host: db.example.com\nProtocol: https\nDefault server: staging\n");
    const listed = await cli(["server", "list"]);
    assertEquals(
      listed.stdout.split("\n").map((l) => l.split("|").map((c) => c.trim())),
      [
        ["DEFAULT", "HOSTNAME", "PROTOCOL", "NICKNAME"],
        ["---------+----------------+----------+----------"],
        ["", "127.0.0.1:3000", "http", "local"],
        ["***", "db.example.com", "https", "staging"],
        [""],
      ],
    );
    const clash = await cli([
      "server",
      "add",
      "other",
      "--url",
      "http://127.0.0.1:3000",
      "--no-fingerprint",
    ]);
    assertEquals(clash.code, 1);
    assertIncludes(clash.stderr, "Error: Server already configured for host: 127.0.0.1:3000");
    const sameName = await cli([
      "server",
      "add",
      "local",
      "--url",
      "http://10.0.0.1:3000",
      "--no-fingerprint",
    ]);
    assertIncludes(sameName.stderr, "Server nickname local already in use: http://127.0.0.1:3000");
    const badUrl = await cli(["server", "add", "x", "--url", "db.example.com"]);
    assertIncludes(badUrl.stderr, "Error: Invalid url: db.example.com");
    const unknown = await cli(["server", "set-default", "nope"]);
    assertEquals(unknown.code, 1);
    assertIncludes(unknown.stderr, "Cannot set default server to unknown server nope");
    assertEquals((await cli(["server", "set-default", "local"])).stdout, "Default server: local\n");

    const refused = await cli(["server", "remove", "staging"], ["n"]);
    assertEquals(refused.code, 1);
    assertIncludes(
      refused.stderr,
      "Remove server staging (https://db.example.com) and its saved token? [y/N]",
    );
    const removed = await cli(["server", "remove", "staging", "-y"]);
    assertEquals([removed.code, removed.stdout], [0, "Removed server staging\n"]);
    const config = JSON.parse(await Deno.readTextFile(join(dir, "cli.json")));
    assertEquals(config.server_configs.map((s: { nickname: string }) => s.nickname), ["local"]);
    assertEquals(config.default_server, "local");

    // Unreachable server without --no-fingerprint: a clear error, nothing saved.
    const down = await cli(["server", "add", "down", "--url", "http://127.0.0.1:1"]);
    assertEquals(down.code, 1);
    assertIncludes(down.stderr, "Unable to retrieve fingerprint for server: http://127.0.0.1:1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("each server subcommand, rename, logout, init and dev print their own help", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-help-" });
  try {
    const cli = cliIn(dir);
    const expected: [string[], string][] = [
      [["server", "add", "--help"], "Usage: server add <NAME> --url <URL>"],
      [["server", "remove", "-h"], "Usage: server remove <SERVER>"],
      [["server", "set-default", "--help"], "Usage: server set-default <SERVER>"],
      [["server", "list", "--help"], "Usage: server list"],
      [["server", "ping", "--help"], "Usage: server ping [SERVER]"],
      [["server", "--help"], "Usage: server <COMMAND>"],
      [["rename", "--help"], "Usage: rename --to <NEW_NAME> [DATABASE]"],
      [["logout", "--help"], "Usage: logout [OPTIONS]"],
      [["init", "--help"], "Usage: init [OPTIONS] [PROJECT_NAME]"],
      [["dev", "--help"], "Usage: dev [OPTIONS] [DATABASE]"],
    ];
    for (const [args, usage] of expected) {
      const out = await cli(args);
      assertEquals(out.code, 0, out.stderr);
      assertIncludes(out.stdout, usage);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("init writes the project and refuses a non-empty directory and bad options", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-init-" });
  try {
    const cli = cliIn(dir);
    const target = join(dir, "My App");
    const made = await cli(["init", "MyApp", "--project-path", target, "-t", "chat"]);
    assertEquals(made.code, 0, made.stderr);
    const local = JSON.parse(await Deno.readTextFile(join(target, "spacetime.local.json")));
    assert(/^my-app-[a-z0-9]{5}$/.test(local.database), local.database);
    const pkg = JSON.parse(await Deno.readTextFile(join(target, "spacetimedb", "package.json")));
    assertEquals([pkg.name, pkg.dependencies.spacetimedb], ["my-app-module", "2.8.3"]);
    const env = await Deno.readTextFile(join(target, ".env.local"));
    for (const prefix of ["SPACETIMEDB", "VITE_SPACETIMEDB", "NEXT_PUBLIC_SPACETIMEDB"]) {
      assertIncludes(
        env,
        `${prefix}_DB_NAME=${local.database}\n${prefix}_HOST=http://127.0.0.1:3000\n`,
      );
    }
    await Deno.stat(join(target, ".gitignore"));
    assertIncludes(
      await Deno.readTextFile(join(target, "spacetimedb", "src", "index.ts")),
      "sendMessage",
    );

    const again = await cli(["init", "MyApp", "--project-path", target]);
    assertEquals(again.code, 1);
    assertIncludes(
      again.stderr,
      `Cannot create new SpacetimeDB project in non-empty directory: ${target}`,
    );
    const both = await cli(["init", "x", "--template", "chat", "--lang", "typescript"]);
    assertIncludes(both.stderr, "Cannot specify both --template and --lang.");
    const rust = await cli(["init", "x", "--lang", "rust"]);
    assertIncludes(rust.stderr, "--lang rust is not supported");
    const nameless = await cli(["init", "--non-interactive"]);
    assertIncludes(nameless.stderr, "PROJECT_NAME is required in non-interactive mode");
    const unknown = await cli(["init", "x", "-t", "vue"]);
    assertIncludes(unknown.stderr, "Unknown template 'vue'");
    const listed = await cli(["init", "-t"]);
    assertIncludes(listed.stdout, "Available templates:");
    assertIncludes(listed.stdout, "basic");

    const serverOnly = join(dir, "solo");
    const solo = await cli(["init", "solo", "--project-path", serverOnly, "--server-only"]);
    assertEquals(solo.code, 0, solo.stderr);
    const names = [...Deno.readDirSync(serverOnly)].map((e) => e.name).sort();
    assertEquals(names, [".gitignore", "spacetime.json", "spacetime.local.json", "spacetimedb"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
