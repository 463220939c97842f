/**
 * compat2: SpacetimeDB's other TypeScript test modules on Lightcone.
 *
 *   deno run -A tests/upstream/compat2/run.ts <SpacetimeDB checkout or extracted tree>
 *       [--sdk 2.10.1,2.8.3] [--only NAME[,NAME]] [--keep]
 *
 * For each module under <tree>/modules (see MODULES) and each SDK version: copies the module
 * to a temporary project whose node_modules/spacetimedb is that released SDK (the module's
 * `workspace:^` dependency has no meaning outside SpacetimeDB's repo), then with Lightcone's own
 * CLI builds and publishes it to a server started from this worktree, generates TypeScript
 * bindings, and runs checks/<module>.ts, which connects with the official SDK and checks what
 * the upstream Rust test client checks. Prints one PASS/FAIL line per module and version and
 * exits 1 if any failed. Needs the SDK versions in tests/clients/npm/node_modules
 * (tests/support/install_clients.sh).
 */
import { startServerProcess } from "../../support/server.ts";

interface ModuleSpec {
  /** Directory under <tree>/modules. */
  dir: string;
  /** Check script under checks/. */
  check: string;
}

const MODULES: Record<string, ModuleSpec> = {
  procedure: { dir: "sdk-test-procedure-ts", check: "procedure.ts" },
  "view-pk": { dir: "sdk-test-view-pk-ts", check: "view_pk.ts" },
  "procedural-view-pk": { dir: "sdk-test-procedural-view-pk-ts", check: "procedural_view_pk.ts" },
  "connect-disconnect": { dir: "sdk-test-connect-disconnect-ts", check: "connect_disconnect.ts" },
  "case-conversion": { dir: "sdk-test-case-conversion-ts", check: "case_conversion.ts" },
  benchmarks: { dir: "benchmarks-ts", check: "benchmarks.ts" },
};

const here = new URL(".", import.meta.url).pathname;
const root = new URL("../../../", import.meta.url).pathname;
const sdkRoot = `${root}tests/clients/npm/node_modules`;

function usage(message: string): never {
  console.error(`${message}\nusage: run.ts TREE [--sdk 2.10.1,2.8.3] [--only NAME,...] [--keep]`);
  console.error(`modules: ${Object.keys(MODULES).join(", ")}`);
  Deno.exit(2);
}

const positional: string[] = [];
let versions = ["2.10.1", "2.8.3"];
let only = Object.keys(MODULES);
let keep = false;
for (let i = 0; i < Deno.args.length; i++) {
  const arg = Deno.args[i];
  if (arg === "--sdk") versions = (Deno.args[++i] ?? usage("--sdk needs a value")).split(",");
  else if (arg === "--only") only = (Deno.args[++i] ?? usage("--only needs a value")).split(",");
  else if (arg === "--keep") keep = true;
  else if (arg.startsWith("-")) usage(`unknown flag ${arg}`);
  else positional.push(arg);
}
if (positional.length !== 1) usage("give the SpacetimeDB tree");
const tree = await Deno.realPath(positional[0]);
for (const name of only) if (!(name in MODULES)) usage(`unknown module ${name}`);
for (const version of versions) {
  try {
    await Deno.stat(`${sdkRoot}/spacetimedb-${version}/package.json`);
  } catch {
    usage(`no ${sdkRoot}/spacetimedb-${version} (run tests/support/install_clients.sh)`);
  }
}

const work = await Deno.makeTempDir({ prefix: "lightcone-compat2-" });
const env = { LIGHTCONE_CLI_CONFIG: `${work}/cli.json`, NO_COLOR: "1" };
const server = await startServerProcess({
  dataDir: `${work}/data`,
  args: [
    // read_my_schema fetches this server's own schema route (loopback); invalid_request fetches
    // http://foo.invalid/, which must get as far as its (failing) name lookup: any public host.
    "--http-allow",
    "*=*,127.0.0.1",
    "--max-databases-per-identity",
    "100",
  ],
});
console.log(`server ${server.url} (work dir ${work})`);

async function run(
  args: string[],
  options: { cwd?: string; denoArgs?: string[] } = {},
): Promise<{ ok: boolean; output: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd ?? root,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    ok: output.success,
    output: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}

function cli(args: string[], cwd?: string) {
  return run(["run", "-A", `${root}main.ts`, ...args], { cwd });
}

function tail(text: string, lines = 12): string {
  return text.trimEnd().split("\n").slice(-lines).map((l) => `     | ${l}`).join("\n");
}

async function copyModule(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.name === "node_modules" || entry.name === "dist") continue;
    const source = `${from}/${entry.name}`;
    if (entry.isDirectory) await copyModule(source, `${to}/${entry.name}`);
    else await Deno.copyFile(source, `${to}/${entry.name}`);
  }
}

const results: string[] = [];
let failures = 0;
for (const name of only) {
  const spec = MODULES[name];
  for (const version of versions) {
    const label = `${spec.dir} @ spacetimedb ${version}`;
    const project = `${work}/${spec.dir}-${version}`;
    const db = `c2-${name}-${version.replaceAll(".", "-")}`;
    console.log(`\n== ${label} (database ${db})`);
    await copyModule(`${tree}/modules/${spec.dir}`, project);
    await Deno.mkdir(`${project}/node_modules`);
    await Deno.symlink(`${sdkRoot}/spacetimedb-${version}`, `${project}/node_modules/spacetimedb`);
    const notes: string[] = [];

    let published = await cli(["publish", "-p", project, "-s", server.url, "-y", db]);
    if (!published.ok && /Type check failed/.test(published.output)) {
      // Reported, then retried without it: the module's source against this SDK's types.
      notes.push("type check failed (see above), published with --skip-type-check");
      console.log(`   build: type check FAILED\n${tail(published.output, 6)}`);
      published = await cli([
        "publish",
        "-p",
        project,
        "-s",
        server.url,
        "-y",
        "--skip-type-check",
        db,
      ]);
    }
    if (!published.ok) {
      console.log(`   publish FAILED\n${tail(published.output)}`);
      results.push(`FAIL ${label}: publish failed`);
      failures++;
      continue;
    }
    console.log("   build + publish: ok");

    const generated = await cli([
      "generate",
      "--lang",
      "typescript",
      "--out-dir",
      `${project}/module_bindings`,
      "-b",
      `${project}/dist/bundle.js`,
      "--import-extension",
      ".ts",
      "-y",
    ]);
    if (!generated.ok) {
      console.log(`   generate FAILED\n${tail(generated.output)}`);
      results.push(`FAIL ${label}: generate failed`);
      failures++;
      continue;
    }
    console.log("   generate: ok");

    // The owner's token, for checks that read private tables or the module log.
    const login = await cli(["login", "show", "--token", "-s", server.url]);
    const token = /(eyJ[\w-]+\.[\w-]+\.[\w-]+)/.exec(login.output)?.[1] ?? "";
    // The checks resolve the bindings' bare `spacetimedb` through the project's node_modules.
    await Deno.writeTextFile(`${project}/deno.json`, "{}\n");
    const checked = await run([
      "run",
      "-A",
      "--config",
      `${project}/deno.json`,
      "--node-modules-dir=manual",
      "--no-lock",
      `${here}checks/${spec.check}`,
      `${project}/module_bindings/index.ts`,
      server.url,
      db,
      token,
    ], { cwd: project });
    console.log(checked.output.trimEnd().split("\n").map((l) => `   ${l}`).join("\n"));
    const note = notes.length > 0 ? ` (${notes.join("; ")})` : "";
    if (checked.ok) results.push(`PASS ${label}${note}`);
    else {
      failures++;
      results.push(`FAIL ${label}: checks failed${note}`);
    }
  }
}

await server.stop();
if (!keep) await Deno.remove(work, { recursive: true }).catch(() => {});
console.log(`\n${results.join("\n")}`);
Deno.exit(failures === 0 ? 0 : 1);
