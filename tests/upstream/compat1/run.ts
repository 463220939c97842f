/**
 * SpacetimeDB's `modules/module-test-ts` and `modules/sdk-test-ts` on Lightcone, built,
 * published and bound with Lightcone's CLI as a user would, then checked with the official SDK.
 *
 *   deno run -A tests/upstream/compat1/run.ts <SpacetimeDB checkout or extracted tree>
 *       [--sdk 2.10.1,2.8.3] [--only TEXT]
 *
 * For each SDK version (npm packages installed by tests/support/install_clients.sh) and each
 * module: copy the module to a temporary project whose node_modules/spacetimedb is that version
 * (package.json's `workspace:^` has no meaning outside SpacetimeDB's repository), `build` it,
 * `publish` it to a server started from this checkout, `generate --include-private` its
 * bindings, and run driver.ts with them. Prints one line per step and check, then one
 * `PASS`/`FAIL` line per module and version. Exits 1 when anything failed.
 */
import { join } from "node:path";
import { startServerProcess } from "../../support/server.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const NPM = join(ROOT, "tests/clients/npm/node_modules");
const MAIN = join(ROOT, "main.ts");
const HERE = new URL("./", import.meta.url).pathname;

const MODULES = [
  { key: "module", dir: "modules/module-test-ts" },
  { key: "sdk", dir: "modules/sdk-test-ts" },
] as const;

function usage(message: string): never {
  console.error(`${message}\nUsage: run.ts <SpacetimeDB tree> [--sdk 2.10.1,2.8.3] [--only TEXT]`);
  Deno.exit(2);
}

const args = [...Deno.args];
let upstream: string | undefined;
let versions = ["2.10.1", "2.8.3"];
let only: string | undefined;
while (args.length > 0) {
  const arg = args.shift()!;
  if (arg === "--sdk") versions = (args.shift() ?? usage("--sdk needs a value")).split(",");
  else if (arg === "--only") only = args.shift() ?? usage("--only needs a value");
  else if (upstream === undefined) upstream = arg;
  else usage(`Unexpected argument '${arg}'`);
}
if (upstream === undefined) usage("Missing the path to a SpacetimeDB tree");
for (const { dir } of MODULES) {
  try {
    await Deno.stat(join(upstream, dir, "src/index.ts"));
  } catch {
    usage(`'${join(upstream, dir, "src/index.ts")}' does not exist`);
  }
}
for (const version of versions) {
  try {
    await Deno.stat(join(NPM, `spacetimedb-${version}`, "package.json"));
  } catch {
    usage(`spacetimedb@${version} is not installed in ${NPM} (tests/support/install_clients.sh)`);
  }
}

const work = await Deno.makeTempDir({ prefix: "lightcone-compat1-" });
const cliConfig = join(work, "cli.json");
const server = await startServerProcess({ dataDir: join(work, "data") });
console.log(`server ${server.url}, work dir ${work}`);

async function run(
  command: string,
  argv: string[],
  cwd: string,
): Promise<{ ok: boolean; text: string }> {
  const output = await new Deno.Command(command, {
    args: argv,
    cwd,
    env: { LIGHTCONE_CLI_CONFIG: cliConfig, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    ok: output.success,
    text: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}

const lightcone = (argv: string[], cwd: string) =>
  run(Deno.execPath(), ["run", "-A", MAIN, ...argv], cwd);

/** The last lines of a command's output, for a failure line. */
const tail = (text: string) => text.trim().split("\n").slice(-6).join("\n    ");

const summary: string[] = [];
let failures = 0;

for (const version of versions) {
  const client = join(work, `client-${version}`);
  await Deno.mkdir(join(client, "node_modules"), { recursive: true });
  await Deno.symlink(join(NPM, `spacetimedb-${version}`), join(client, "node_modules/spacetimedb"));
  await Deno.writeTextFile(join(client, "deno.json"), "{}\n");
  await Deno.copyFile(join(HERE, "driver.ts"), join(client, "driver.ts"));

  for (const module of MODULES) {
    const label = `${module.dir.split("/").pop()} with spacetimedb@${version}`;
    console.log(`\n== ${label}`);
    const project = join(work, `${module.key}-${version}`);
    await Deno.mkdir(project, { recursive: true });
    // The module's files as they are upstream; only the dependency is pinned.
    for (const file of ["package.json", "tsconfig.json"]) {
      await Deno.copyFile(join(upstream, module.dir, file), join(project, file));
    }
    await Deno.mkdir(join(project, "src"));
    for await (const entry of Deno.readDir(join(upstream, module.dir, "src"))) {
      if (entry.isFile) {
        await Deno.copyFile(
          join(upstream, module.dir, "src", entry.name),
          join(project, "src", entry.name),
        );
      }
    }
    const manifest = JSON.parse(await Deno.readTextFile(join(project, "package.json")));
    manifest.dependencies.spacetimedb = version;
    await Deno.writeTextFile(join(project, "package.json"), JSON.stringify(manifest, null, 2));
    await Deno.mkdir(join(project, "node_modules"));
    await Deno.symlink(
      join(NPM, `spacetimedb-${version}`),
      join(project, "node_modules/spacetimedb"),
    );

    const steps: string[] = [];
    let moduleFailed = false;
    const step = (name: string, ok: boolean, detail = "") => {
      steps.push(`${ok ? "ok" : "FAILED"} ${name}`);
      console.log(`${ok ? "PASS" : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
      if (!ok) moduleFailed = true;
    };

    const build = await lightcone(["build", "-p", project], project);
    let skipTypeCheck = false;
    if (build.ok) {
      step("build (type-checked)", true);
    } else {
      // SpacetimeDB's build type-checks only with the project's own tsc, which these
      // projects do not install; Lightcone falls back to deno check. Report, then go on
      // without the check, as `spacetime build` would.
      console.log(`NOTE build (type-checked) refused:\n    ${tail(build.text)}`);
      steps.push("build (type-checked) refused: the module's own type errors");
      const unchecked = await lightcone(["build", "-p", project, "--skip-type-check"], project);
      step("build --skip-type-check", unchecked.ok, unchecked.ok ? "" : tail(unchecked.text));
      skipTypeCheck = true;
      if (!unchecked.ok) {
        failures++;
        summary.push(`FAIL ${label}: build failed`);
        continue;
      }
    }
    const database = `compat1-${module.key}-${version.replaceAll(".", "-")}`;
    const publish = await lightcone([
      "publish",
      "-p",
      project,
      "-s",
      server.url,
      ...(skipTypeCheck ? ["--skip-type-check"] : []),
      database,
      "-y",
    ], project);
    step("publish", publish.ok, publish.ok ? "" : tail(publish.text));
    const bindings = join(client, `${module.key}_bindings`);
    const generate = await lightcone([
      "generate",
      "--lang",
      "typescript",
      "--out-dir",
      bindings,
      "--include-private",
      "--import-extension",
      ".ts",
      "-s",
      server.url,
      "--database",
      database,
      "-y",
    ], project);
    step(
      "generate (from the running database)",
      generate.ok,
      generate.ok ? "" : tail(generate.text),
    );
    const check = await run(Deno.execPath(), [
      "check",
      "--config",
      join(client, "deno.json"),
      "--node-modules-dir=manual",
      "--no-lock",
      join(bindings, "index.ts"),
    ], client);
    step(
      `bindings type-check against spacetimedb@${version}`,
      check.ok,
      check.ok ? "" : tail(check.text),
    );
    if (!publish.ok || !generate.ok) {
      failures++;
      summary.push(`FAIL ${label}: ${steps.join(", ")}`);
      continue;
    }
    const driverConfig = {
      url: server.url,
      module: module.key,
      cli: [Deno.execPath(), "run", "-A", MAIN],
      cliConfig,
      bundlePath: join(project, "dist/bundle.js"),
      prefix: `c1${module.key}${version.replaceAll(".", "")}`,
      only,
    };
    const driver = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        "--config",
        join(client, "deno.json"),
        "--node-modules-dir=manual",
        "--no-lock",
        join(client, "driver.ts"),
        JSON.stringify(driverConfig),
      ],
      cwd: client,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let result = { passed: 0, failed: 0 };
    let buffered = "";
    for await (const chunk of driver.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("RESULT ")) result = JSON.parse(line.slice("RESULT ".length));
        else if (!line.includes("Connecting to SpacetimeDB WS")) console.log(line);
      }
    }
    const status = await driver.status;
    if (!status.success) step("driver exited cleanly", false, `exit code ${status.code}`);
    const failed = moduleFailed || result.failed > 0 || result.passed === 0;
    if (failed) failures++;
    summary.push(
      `${failed ? "FAIL" : "PASS"} ${label}: ${steps.join(", ")}; ` +
        `checks ${result.passed} passed, ${result.failed} failed`,
    );
  }
}

await server.stop();
console.log("\n== summary");
for (const line of summary) console.log(line);
await Deno.remove(work, { recursive: true }).catch(() => {});
Deno.exit(failures === 0 ? 0 : 1);
