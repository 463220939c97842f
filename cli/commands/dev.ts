/**
 * `dev [DATABASE]`: the development loop. Starts a local server when none answers, then
 * builds the module, regenerates the client bindings and publishes (printing the server's
 * migration plan) — once at start and again after every saved change in the module
 * directory — while streaming the database's log and running the client command.
 */
import { basename, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ApiClient } from "../api_client.ts";
import { expectPositionals, parseVerbArgs } from "../args.ts";
import { CliConfig } from "../config.ts";
import { announceConfig, type CliContext, connect, projectConfig } from "../context.ts";
import { CliError, UsageError } from "../errors.ts";
import type { CliIo } from "../io.ts";
import { formatLogLine } from "../log_format.ts";
import { PROJECT_CONFIG_FILE, type ProjectConfig } from "../project_config.ts";
import { SERVER_DENO_FLAGS } from "../runtime_flags.ts";
import { buildWithProgress } from "./build.ts";
import { runGenerate } from "./generate.ts";
import { runPublish, validateDatabaseName } from "./publish.ts";

export const DEV_HELP = `Develop a module: rebuild, republish and regenerate bindings on every save

Usage: dev [OPTIONS] [DATABASE]

Arguments:
  [DATABASE]  Database to publish to (default: spacetime.json's, else a new random name
              saved in spacetime.local.json)

Options:
      --project-path <DIR>            The project: where .env.local is, the client command
                                      runs and bindings paths start (default: the folder
                                      of spacetime.json, else .)
  -p, --module-path <DIR>             The module (default: spacetime.json's module-path,
                                      else PROJECT/spacetimedb, else PROJECT)
      --module-bindings-path <DIR>    Where bindings go when spacetime.json has no
                                      generate entries (default: none are generated)
  -s, --server <SERVER>               Server URL or nickname (default: spacetime.json's,
                                      else the CLI's default). A local server that does not
                                      answer is started (data in $LIGHTCONE_DATA_DIR or
                                      ~/.local/share/lightcone/data) and stopped on exit
  -c, --delete-data[=MODE]            on-conflict (default): wipe the data when a change
                                      cannot be migrated; always: on every publish; never
      --break-clients                 Accept changes that disconnect clients without asking
  -y, --yes                           Never ask (implies --break-clients)
      --run <COMMAND>                 Client command to run (default: spacetime.json dev.run)
      --client-lang <LANG>            typescript (the only language of bindings)
      --server-only                   Do not run a client command
      --skip-generate                 Do not regenerate bindings
      --skip-publish                  Only build (and generate)
      --skip-type-check               Do not type-check
      --type-check-first              Publish only after the type check passed (slower: by
                                      default a change is published as soon as it is bundled
                                      and the type check's outcome is printed when it ends)
      --no-start                      Never start a server; fail when it does not answer
  -h, --help                          Print help

Ctrl-C stops the watcher, the client and a server dev started. Each cycle prints how long
it took from the save to the new module serving, and whether what serves was type-checked:
"(type-checked)", "(type check skipped)", or "(NOT type-checked yet ...)" followed later by
"Type check passed ..." or "Type check FAILED ..." with the errors (the module stays
published; fix the errors and save again). A change whose check fails before its bundle is
ready is not published. A new save cancels a check still running.

Examples:
  dev                                 in a project made by \`init\`
  dev my-db --server-only -y
  dev -p ./spacetimedb --module-bindings-path client/src/module_bindings`;

const FLAGS = {
  "module-path": { type: "string", short: "p" },
  "project-path": { type: "string" },
  "client-lang": { type: "string" },
  "module-bindings-path": { type: "string" },
  server: { type: "string", short: "s" },
  "delete-data": { type: "boolean", short: "c" },
  "break-clients": { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  run: { type: "string" },
  "server-only": { type: "boolean" },
  "skip-generate": { type: "boolean" },
  "skip-publish": { type: "boolean" },
  "skip-type-check": { type: "boolean" },
  "type-check-first": { type: "boolean" },
  "no-start": { type: "boolean" },
} as const;

/** Path components whose changes never trigger a rebuild (outputs, dependencies, VCS). */
const IGNORED = new Set([
  ".git",
  ".hg",
  ".svn",
  "target",
  "build",
  "bin",
  "obj",
  "node_modules",
  "dist",
  ".next",
  ".nuxt",
  ".output",
  "__pycache__",
  ".venv",
  "venv",
  ".vs",
  ".idea",
]);
const DEBOUNCE_MS = 300;
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface GenerateJob {
  outDir: string;
  importExtension?: string;
  includePrivate?: boolean;
}

export async function runDev(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals, attached } = parseVerbArgs("dev", args, FLAGS, ["delete-data"]);
  expectPositionals("dev", positionals, { required: [], optional: ["DATABASE"] });
  const io = ctx.io;
  const deleteMode = attached["delete-data"] ?? (flags["delete-data"] ? "always" : "on-conflict");
  if (!["always", "on-conflict", "never"].includes(deleteMode)) {
    throw new UsageError(
      `invalid value '${deleteMode}' for '--delete-data': expected always, on-conflict or never`,
      "dev",
    );
  }

  const config = await projectConfig(ctx, { env: ctx.env ?? "dev" });
  announceConfig(ctx, config);
  const projectDir = flags["project-path"] !== undefined
    ? resolve(flags["project-path"])
    : config?.dir ?? Deno.cwd();
  const target = config?.targets[0];
  const moduleDir = await moduleDirOf(flags["module-path"], config, projectDir);
  if (flags["client-lang"] !== undefined && !["typescript", "ts"].includes(flags["client-lang"])) {
    throw new CliError(
      `--client-lang ${flags["client-lang"]} is not supported: bindings are TypeScript only`,
    );
  }
  const cliConfig = await CliConfig.load(ctx.configPath);
  const serverName = flags.server ?? target?.server;
  const { url: serverUrl } = cliConfig.resolveServer(serverName);
  let database = positionals[0] ?? target?.database;
  if (database === undefined) {
    database = `${slug(basename(projectDir))}-${randomSuffix()}`;
    await saveLocalDatabase(projectDir, moduleDir, database, serverName);
    io.err(`Selected database: ${database} (saved in spacetime.local.json)\n`);
    io.err(`Tip: \`dev\` in this folder uses it from now on\n`);
  }
  validateDatabaseName(database);
  const jobs = generateJobs(flags, config, projectDir);
  const clientCommand = flags["server-only"] ? undefined : flags.run ?? config?.devRun;

  const cleanups: (() => Promise<void>)[] = [];
  try {
    if (!flags["skip-publish"]) {
      const started = await ensureServer(serverUrl, io, flags["no-start"] ?? false, ctx);
      if (started) cleanups.push(started);
    }
    io.err(
      `Starting development mode...\nDatabase: ${database}\nServer: ${serverUrl}\n` +
        `Watching for changes in: ${moduleDir}\n` +
        (clientCommand ? `Client command: ${clientCommand}\n` : "") +
        "Press Ctrl+C to stop\n\n",
    );
    /** The type check of the last change, while it runs in the background. */
    let runningCheck: AbortController | undefined;
    const cycle = async (changedAt: number | undefined) => {
      const began = changedAt ?? performance.now();
      // A newer change makes the previous one's check moot.
      runningCheck?.abort();
      const checkControl = new AbortController();
      runningCheck = checkControl;
      io.err("Building...\n");
      const built = await buildWithProgress(moduleDir, io, {
        skipTypeCheck: flags["skip-type-check"],
        deferTypeCheck: !flags["type-check-first"],
        signal: checkControl.signal,
      });
      const builtAt = performance.now();
      io.err("Build complete!\n");
      await updateEnvLocal(projectDir, database!, serverUrl, io);
      // Bindings are generated while the module is published; their output is printed after.
      const generated: [("out" | "err"), string][] = [];
      let generatedAt = builtAt;
      let publishedAt = builtAt;
      const bufferedIo: CliIo = {
        ...io,
        out: (text) => generated.push(["out", text]),
        err: (text) => generated.push(["err", text]),
      };
      const generating = (async () => {
        if (flags["skip-generate"] || jobs.length === 0) return;
        for (const job of jobs) {
          const code = await runGenerate([
            "--lang",
            "typescript",
            "--bin-path",
            built.bundlePath,
            "--out-dir",
            job.outDir,
            "-y",
            ...(job.importExtension ? ["--import-extension", job.importExtension] : []),
            ...(job.includePrivate ? ["--include-private"] : []),
          ], { ...ctx, io: bufferedIo, noConfig: true });
          if (code !== 0) throw new CliError("Generating bindings failed");
        }
      })().finally(() => generatedAt = performance.now());
      const publishing = (async () => {
        if (flags["skip-publish"]) return;
        io.err("Publishing...\n");
        const code = await runPublish([
          database!,
          "--js-path",
          built.bundlePath,
          "--server",
          serverUrl,
          `--delete-data=${deleteMode}`,
          ...(flags.yes ? ["--yes"] : []),
          ...(flags["break-clients"] || flags.yes ? ["--break-clients"] : []),
        ], { ...ctx, noConfig: true });
        if (code !== 0) throw new CliError("Publishing failed");
      })().finally(() => publishedAt = performance.now());
      const [generateResult, publishResult] = await Promise.allSettled([generating, publishing]);
      if (flags["skip-generate"]) io.err("Skipping generate step (--skip-generate).\n");
      else if (jobs.length === 0) {
        io.err("No generate targets in spacetime.json. Skipping module bindings generation.\n");
      } else {
        io.err("Generating module bindings...\n");
        for (const [stream, text] of generated) (stream === "out" ? io.out : io.err)(text);
      }
      const what = changedAt === undefined ? "start" : "change";
      const check = built.typeCheck;
      const checker = await checkerName(moduleDir);
      if (generateResult.status === "rejected" || publishResult.status === "rejected") {
        checkControl.abort();
        if (generateResult.status === "rejected") throw generateResult.reason;
        throw (publishResult as PromiseRejectedResult).reason;
      }
      const done = performance.now();
      const checkState = check === "skipped"
        ? "(type check skipped)"
        : check === "passed"
        ? "(type-checked)"
        : `(NOT type-checked yet: ${checker} is still running)`;
      if (!flags["skip-publish"]) {
        io.err(
          `Published successfully! ${checkState} Serving the new module ${
            ((done - began) / 1000).toFixed(2)
          } s after the ${what} (build ${((builtAt - began) / 1000).toFixed(2)} s, then ` +
            `generate ${((generatedAt - builtAt) / 1000).toFixed(2)} s and publish ` +
            `${((publishedAt - builtAt) / 1000).toFixed(2)} s side by side)\n---\n`,
        );
      } else io.err(`Build ready ${checkState}\n`);
      if (typeof check !== "string") {
        void check.then((outcome) => {
          const at = `${((performance.now() - began) / 1000).toFixed(2)} s after the ${what}`;
          if (outcome.status === "cancelled") {
            io.err(`Type check of an earlier change cancelled (a newer change is building)\n`);
          } else if (outcome.status === "passed") {
            io.err(`Type check passed (${checker}, ${at}): the module serving is type-checked\n`);
          } else {
            io.err(outcome.report);
            printError(io, outcome.error);
            io.err(
              `Type check FAILED (${checker}, ${at}): the module serving was published ` +
                `WITHOUT a passing type check. Fix the errors and save again.\n`,
            );
            io.err("Waiting for next change...\n");
          }
        });
      }
    };
    await cycle(undefined);

    const stopLogs = flags["skip-publish"] ? undefined : streamLogs(ctx, database, serverUrl);
    if (stopLogs) cleanups.push(stopLogs);
    if (clientCommand) {
      cleanups.push(startClient(clientCommand, projectDir, database, serverUrl, io));
    }
    await watch(moduleDir, jobs.map((j) => j.outDir), io, async (changedAt) => {
      io.err("File change detected, rebuilding...\n");
      try {
        await cycle(changedAt);
      } catch (error) {
        printError(io, error);
        io.err("Waiting for next change...\n");
      }
    });
    io.err("\nStopping development mode...\n");
    return 0;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
}

/** The type checker `build` uses for the module (the project's tsc, else deno check). */
async function checkerName(moduleDir: string): Promise<string> {
  try {
    if ((await Deno.stat(join(moduleDir, "node_modules", ".bin", "tsc"))).isFile) return "tsc";
  } catch {
    // no local tsc
  }
  return "deno check";
}

function printError(io: CliIo, error: unknown): void {
  io.err(`Error: ${error instanceof Error ? error.message : String(error)}\n`);
  if (error instanceof CliError) { for (const hint of error.hints) io.err(`  ${hint}\n`); }
}

async function moduleDirOf(
  given: string | undefined,
  config: ProjectConfig | undefined,
  base: string,
) {
  if (given !== undefined) return resolve(given);
  const fromConfig = config?.targets[0]?.modulePath;
  if (fromConfig !== undefined) return fromConfig;
  const prebuilt = config?.targets[0]?.binPath;
  if (prebuilt !== undefined) {
    throw new CliError(
      `spacetime.json names a prebuilt module (${prebuilt}) and no module-path: dev rebuilds ` +
        "a TypeScript module from its source",
      ["Publish the prebuilt module with `publish`, or set module-path."],
    );
  }
  try {
    if ((await Deno.stat(join(base, "spacetimedb"))).isDirectory) return join(base, "spacetimedb");
  } catch {
    // no spacetimedb/: the module is the project itself
  }
  try {
    await Deno.stat(join(base, "src", "index.ts"));
    return base;
  } catch {
    throw new CliError("No SpacetimeDB project found in current directory.", [
      "Create one with `init <NAME>`, or pass --module-path DIR.",
    ]);
  }
}

function generateJobs(
  flags: { "module-bindings-path"?: string; "skip-generate"?: boolean },
  config: ProjectConfig | undefined,
  projectDir: string,
): GenerateJob[] {
  const given = flags["module-bindings-path"];
  if (given !== undefined) {
    if (given.startsWith("/")) {
      throw new UsageError("--module-bindings-path must be a relative path", "dev");
    }
    return [{ outDir: join(projectDir, given) }];
  }
  return (config?.generate ?? []).filter((g) => ["typescript", "ts", "TS"].includes(g.language))
    .map((g) => ({
      outDir: g.outDir,
      importExtension: g.importExtension,
      includePrivate: g.includePrivate,
    }));
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") || "dev";
}

function randomSuffix(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...crypto.getRandomValues(new Uint8Array(5))].map((b) => alphabet[b % 36]).join("");
}

async function saveLocalDatabase(
  projectDir: string,
  moduleDir: string,
  database: string,
  server: string | undefined,
): Promise<void> {
  const path = join(projectDir, "spacetime.local.json");
  let current: Record<string, unknown> = {};
  try {
    current = JSON.parse(await Deno.readTextFile(path));
  } catch {
    // new file
  }
  await Deno.writeTextFile(path, JSON.stringify({ ...current, database }, null, 2) + "\n");
  try {
    await Deno.stat(join(projectDir, PROJECT_CONFIG_FILE));
  } catch {
    await Deno.writeTextFile(
      join(projectDir, PROJECT_CONFIG_FILE),
      JSON.stringify(
        { server: server ?? "local", "module-path": `./${relative(projectDir, moduleDir)}` },
        null,
        2,
      ) + "\n",
    );
  }
}

/**
 * The prefixes under which web frameworks expose environment variables to client code; the
 * project's `.env.local` gets `<PREFIX>_DB_NAME` and `<PREFIX>_HOST` for each, as SpacetimeDB's
 * `init` and `dev` write them, so a Vite, Next.js, CRA, Expo or SvelteKit client finds the
 * database `dev` publishes to.
 */
export const CLIENT_ENV_PREFIXES = [
  "SPACETIMEDB",
  "VITE_SPACETIMEDB",
  "NEXT_PUBLIC_SPACETIMEDB",
  "REACT_APP_SPACETIMEDB",
  "EXPO_PUBLIC_SPACETIMEDB",
  "PUBLIC_SPACETIMEDB",
] as const;

/** `.env.local` lines naming the database and server for every prefix. */
export function clientEnvLines(database: string, host: string): string[] {
  return CLIENT_ENV_PREFIXES.flatMap((prefix) => [
    `${prefix}_DB_NAME=${database}`,
    `${prefix}_HOST=${host}`,
  ]);
}

/**
 * Upserts the database name and host under every prefix in the project's .env.local (made
 * when missing); other lines and comments stay as they are.
 */
export async function updateEnvLocal(dir: string, database: string, host: string, io: CliIo) {
  const path = join(dir, ".env.local");
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const before = text;
  for (const line of clientEnvLines(database, host)) {
    const key = line.slice(0, line.indexOf("="));
    const source = `^[ \\t]*${key}[ \\t]*=.*$`;
    if (new RegExp(source, "m").test(text)) {
      text = text.replace(new RegExp(source, "gm"), line);
    } else {
      text += `${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;
    }
  }
  if (text !== before) {
    io.err(`Updating .env.local with database name ${database}...\n`);
    await Deno.writeTextFile(path, text);
  }
}

function isLocal(url: URL): boolean {
  return ["127.0.0.1", "localhost", "[::1]", "::1"].includes(url.hostname);
}

/** The data directory of a server `dev` starts. */
export function devDataDir(io: CliIo): string {
  const explicit = io.env("LIGHTCONE_DATA_DIR");
  if (explicit) return explicit;
  const xdg = io.env("XDG_DATA_HOME");
  if (xdg) return join(xdg, "lightcone", "data");
  const home = io.env("HOME");
  if (!home) throw new CliError("Cannot pick a data directory: set LIGHTCONE_DATA_DIR or HOME");
  return join(home, ".local", "share", "lightcone", "data");
}

/**
 * Pings the server; when a local one does not answer, starts `lightcone start` on its
 * address and returns how to stop it.
 */
async function ensureServer(
  serverUrl: string,
  io: CliIo,
  noStart: boolean,
  ctx: CliContext,
): Promise<(() => Promise<void>) | undefined> {
  const client = new ApiClient(serverUrl, { fetch: ctx.fetch });
  const answers = async () => {
    try {
      return (await client.ping()) < 500;
    } catch {
      return false;
    }
  };
  if (await answers()) return undefined;
  const url = new URL(serverUrl);
  if (noStart || !isLocal(url)) {
    throw new CliError(`Server not reachable at ${serverUrl}`, [
      isLocal(url)
        ? "Start one with `lightcone start` (or run dev without --no-start)."
        : "dev starts only local servers; check the URL or start that server.",
    ]);
  }
  const dataDir = devDataDir(io);
  await Deno.mkdir(dataDir, { recursive: true });
  const logPath = join(dataDir, "..", "dev-server.log");
  const logFile = await Deno.open(logPath, { create: true, append: true });
  const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port || "80";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      join(REPO_ROOT, "deno.json"),
      ...SERVER_DENO_FLAGS,
      join(REPO_ROOT, "main.ts"),
      "start",
      "--listen-addr",
      host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`,
      "--data-dir",
      dataDir,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  void child.stdout.pipeTo(logFile.writable, { preventClose: true }).catch(() => {});
  void child.stderr.pipeTo(
    (await Deno.open(logPath, { append: true })).writable,
  ).catch(() => {});
  io.err(`No server answered at ${serverUrl}; starting one (data: ${dataDir}, log: ${logPath})\n`);
  const deadline = Date.now() + 30_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (!await answers()) {
    if (exited || Date.now() > deadline) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      throw new CliError(`The local server did not start; see ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  io.err(`Local server is up at ${serverUrl}\n`);
  return async () => {
    io.err("Stopping the local server dev started...\n");
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, 10_000);
    await child.status;
    clearTimeout(timer);
    logFile.close();
  };
}

function streamLogs(ctx: CliContext, database: string, serverUrl: string): () => Promise<void> {
  const stop = new AbortController();
  const run = (async () => {
    while (!stop.signal.aborted) {
      try {
        const connection = await connect(ctx, { server: serverUrl });
        for await (
          const line of connection.client.logs(database, {
            numLines: 10,
            follow: true,
            signal: stop.signal,
          })
        ) {
          ctx.io.out(`${formatLogLine(line, { colour: ctx.io.colour })}\n`);
        }
      } catch (error) {
        if (stop.signal.aborted) return;
        ctx.io.err(`Error: Log streaming error: ${(error as Error).message}\n`);
      }
      if (stop.signal.aborted) return;
      ctx.io.err("Reconnecting in 10 seconds...\n");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  })();
  return async () => {
    stop.abort();
    await run;
  };
}

function startClient(
  command: string,
  cwd: string,
  database: string,
  serverUrl: string,
  io: CliIo,
): () => Promise<void> {
  const started = Date.now();
  const child = new Deno.Command("sh", {
    args: ["-c", command],
    cwd,
    env: { SPACETIMEDB_DB_NAME: database, SPACETIMEDB_HOST: serverUrl },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  child.status.then((status) => {
    exited = true;
    if (!status.success && Date.now() - started < 200) {
      io.err(`Client command '${command}' failed immediately with exit code: ${status.code}\n`);
    } else {
      io.err(`Client process exited with code ${status.code}. File watcher is still active.\n`);
    }
  });
  return async () => {
    if (exited) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
  };
}

/** Calls `onChange` for each debounced batch of changes until Ctrl-C. */
async function watch(
  dir: string,
  ignoredDirs: string[],
  io: CliIo,
  onChange: (changedAt: number) => Promise<void>,
): Promise<void> {
  const watcher = Deno.watchFs(dir, { recursive: true });
  const stop = () => watcher.close();
  if (io.interrupt.aborted) return;
  io.interrupt.addEventListener("abort", stop, { once: true });
  let firstEventAt: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = Promise.resolve();
  let again = false;
  const relevant = (path: string) =>
    !path.slice(dir.length).split(/[\\/]/).some((part) => IGNORED.has(part)) &&
    !ignoredDirs.some((ignored) => path === ignored || path.startsWith(`${ignored}/`));
  try {
    for await (const event of watcher) {
      if (event.kind === "access" || !event.paths.some(relevant)) continue;
      firstEventAt ??= performance.now();
      clearTimeout(timer);
      timer = setTimeout(() => {
        const at = firstEventAt!;
        firstEventAt = undefined;
        // One cycle at a time; changes during a cycle run one more after it.
        if (again) return;
        again = true;
        running = running.then(async () => {
          again = false;
          await onChange(at);
        });
      }, DEBOUNCE_MS);
    }
  } catch (error) {
    if (!io.interrupt.aborted) throw error;
  } finally {
    clearTimeout(timer);
    io.interrupt.removeEventListener("abort", stop);
  }
  await running;
}
