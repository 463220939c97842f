/**
 * Runs the two baseline stacks (bench/baselines/) under the keynote load: installs their npm
 * packages, starts and stops the throw-away PostgreSQL cluster, starts one Node server per run on
 * a fresh database, drives it with the Node HTTP client (http_load.mjs), then checks balances.
 */
import { checkBalances } from "./balance_check.ts";
import { trackChild } from "./children.ts";
import type { CpuReport } from "./proc_cpu.mjs";
import type { LoadSummary, RunOptions, SystemResult } from "./types.ts";

export interface BaselineSystem {
  key: "sqlite" | "sqlite-wal-full" | "sqlite-wal" | "pg" | "pg-immediate";
  name: string;
  script: "server_sqlite.mjs" | "server_pg.mjs";
  args: string[];
  usesPostgres: boolean;
}

export const BASELINE_SYSTEMS: Record<BaselineSystem["key"], BaselineSystem> = {
  sqlite: {
    key: "sqlite",
    name: "Node + SQLite (better-sqlite3 defaults: DELETE journal, synchronous FULL)",
    script: "server_sqlite.mjs",
    args: ["--mode", "default"],
    usesPostgres: false,
  },
  "sqlite-wal-full": {
    key: "sqlite-wal-full",
    name: "Node + SQLite (WAL + synchronous FULL: one fsync per commit, durable)",
    script: "server_sqlite.mjs",
    args: ["--mode", "wal-full"],
    usesPostgres: false,
  },
  "sqlite-wal": {
    key: "sqlite-wal",
    name: "Node + SQLite (WAL + synchronous NORMAL; not durable per commit)",
    script: "server_sqlite.mjs",
    args: ["--mode", "wal"],
    usesPostgres: false,
  },
  pg: {
    key: "pg",
    name: "Node + PostgreSQL (serializable, pool 64, 10 tries with jittered backoff)",
    script: "server_pg.mjs",
    args: ["--retry", "backoff"],
    usesPostgres: true,
  },
  "pg-immediate": {
    key: "pg-immediate",
    name: "Node + PostgreSQL (serializable, pool 64, 6 immediate tries)",
    script: "server_pg.mjs",
    args: ["--retry", "immediate"],
    usesPostgres: true,
  },
};

const SERVER_READY_TIMEOUT_MS = 180_000;
const SERVER_STOP_TIMEOUT_MS = 15_000;

function baselinesDir(repoRoot: string): string {
  return `${repoRoot}/bench/baselines`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(
      `'${command} ${args.join(" ")}' failed (exit ${output.code}): ${
        stderr.trim() || stdout.trim()
      }`,
    );
  }
  return stdout;
}

/** True when bench/baselines/node_modules holds a loadable better-sqlite3, pg and undici. */
export async function baselinePackagesInstalled(repoRoot: string): Promise<boolean> {
  const dir = baselinesDir(repoRoot);
  for (const name of ["better-sqlite3", "pg", "undici"]) {
    if (!await exists(`${dir}/node_modules/${name}/package.json`)) return false;
  }
  return await exists(`${dir}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`);
}

/**
 * `npm ci` in bench/baselines when its node_modules is missing. better-sqlite3 builds from source
 * when no prebuilt binary can be downloaded; with Node's headers under /usr/include/node (Debian's
 * nodejs package) node-gyp needs no download either.
 */
export async function installBaselinePackages(repoRoot: string): Promise<void> {
  if (await baselinePackagesInstalled(repoRoot)) return;
  const env: Record<string, string> = {};
  if (await exists("/usr/include/node/node.h")) env.npm_config_nodedir = "/usr";
  await run("npm", ["ci", "--no-audit", "--no-fund"], { cwd: baselinesDir(repoRoot), env });
  if (!await baselinePackagesInstalled(repoRoot)) {
    throw new Error("npm ci in bench/baselines did not produce a loadable better-sqlite3");
  }
}

export async function nodeVersion(): Promise<string> {
  return (await run("node", ["--version"])).trim();
}

/** A running throw-away PostgreSQL cluster. */
export interface PostgresCluster {
  port: number;
  dir: string;
  version: string;
  /** The postmaster's pid (its backends are its children). */
  pid: number;
  stop(): Promise<void>;
}

export async function startPostgres(repoRoot: string, port: number): Promise<PostgresCluster> {
  const script = `${baselinesDir(repoRoot)}/pg_cluster.sh`;
  await run("bash", [script, "install"]);
  const version = (await run("bash", [script, "version"])).trim().replace(
    /^postgres \(PostgreSQL\) /,
    "",
  );
  const dir = await Deno.makeTempDir({ prefix: "keynote-pg-" });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await run("bash", [script, "stop", dir]);
  };
  try {
    await run("bash", [script, "start", dir, String(port)]);
    const pidText = await Deno.readTextFile(`${dir}/data/postmaster.pid`);
    return { port, dir, version, pid: Number(pidText.split("\n")[0]), stop };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}

interface RunningServer {
  pid: number;
  port: number;
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

async function startServer(
  system: BaselineSystem,
  options: RunOptions,
  postgres: PostgresCluster | undefined,
): Promise<RunningServer> {
  const args = [
    `${baselinesDir(options.repoRoot)}/${system.script}`,
    "--port",
    "0",
    "--accounts",
    String(options.accountCount),
    "--balance",
    String(options.initialBalance),
    ...system.args,
  ];
  if (system.usesPostgres) {
    if (!postgres) throw new Error(`${system.key} needs a PostgreSQL cluster`);
    args.push("--pg-port", String(postgres.port));
  } else {
    args.push("--db", `${options.workDir}/${system.key}.sqlite`);
  }
  const child = trackChild(
    new Deno.Command("node", { args, stdout: "piped", stderr: "inherit" }).spawn(),
  );
  let exited = false;
  const status = child.status.then((value) => {
    exited = true;
    return value;
  });
  const stop = async () => {
    if (exited) return;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(resolve, SERVER_STOP_TIMEOUT_MS);
    });
    await Promise.race([status, deadline]);
    clearTimeout(timer);
    if (!exited) {
      child.kill("SIGKILL");
      await status;
    }
  };
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${system.key} server not ready after ${SERVER_READY_TIMEOUT_MS} ms`)),
      SERVER_READY_TIMEOUT_MS,
    );
  });
  try {
    while (!buffered.includes("\n")) {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk.done) throw new Error(`${system.key} server exited before it was ready`);
      buffered += chunk.value;
    }
  } catch (error) {
    clearTimeout(timer);
    await stop();
    throw error;
  }
  clearTimeout(timer);
  // Keep draining stdout so the server never blocks on a full pipe.
  (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch {
      // The process went away.
    }
  })();
  const ready = JSON.parse(buffered.slice(0, buffered.indexOf("\n"))) as Record<string, unknown>;
  const { port, ready: _ready, ...info } = ready;
  return { pid: child.pid, port: Number(port), info, stop };
}

interface HttpLoadOutput extends LoadSummary {
  connectedSockets: number;
  cpu: CpuReport | null;
  client: Record<string, string>;
  ackedDeltaBase64: string;
  unknownCountBase64: string;
}

function decodeInt32Array(base64: string): Int32Array {
  const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
  return new Int32Array(bytes.buffer, 0, bytes.length / 4);
}

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
  return await response.json();
}

/** Runs the Node HTTP load client against `url` and returns what it wrote. */
async function runHttpLoad(
  url: string,
  options: RunOptions,
  watch: Record<string, number>,
): Promise<HttpLoadOutput> {
  const outPath = `${options.workDir}/load-${crypto.randomUUID()}.json`;
  const args = [
    `${options.repoRoot}/bench/keynote/http_load.mjs`,
    "--url",
    url,
    "--pairs",
    options.pairsPath,
    "--out",
    outPath,
    "--clients",
    String(options.clientCount),
    "--inflight",
    String(options.inflightPerClient),
    "--warmup-ms",
    String(options.warmupMs),
    "--measure-ms",
    String(options.measureMs),
    "--timeout-ms",
    String(options.timeoutMs),
    "--accounts",
    String(options.accountCount),
  ];
  for (const [name, pid] of Object.entries(watch)) args.push("--watch", `${name}=${pid}`);
  const status = await trackChild(
    new Deno.Command("node", { args, stdout: "inherit", stderr: "inherit" }).spawn(),
  ).status;
  if (!status.success) throw new Error(`The HTTP load client failed (exit ${status.code})`);
  const output = JSON.parse(await Deno.readTextFile(outPath)) as HttpLoadOutput;
  await Deno.remove(outPath);
  return output;
}

/** One measured run of one baseline system on a freshly seeded database. */
export async function runBaseline(
  system: BaselineSystem,
  options: RunOptions,
  postgres?: PostgresCluster,
): Promise<SystemResult> {
  const base: SystemResult = {
    systemKey: system.key,
    systemName: system.name,
    alpha: options.alpha,
    mode: options.mode,
    clientCount: options.clientCount,
    inflightPerClient: options.inflightPerClient,
    status: "failed",
  };
  const server = await startServer(system, options, postgres);
  try {
    const url = `http://127.0.0.1:${server.port}`;
    const watch: Record<string, number> = { server: server.pid };
    if (postgres && system.usesPostgres) watch.postgres = postgres.pid;
    const output = await runHttpLoad(url, options, watch);
    const { ackedDeltaBase64, unknownCountBase64, cpu, client, connectedSockets, ...load } = output;
    const snapshot = await getJson(`${url}/balances`) as { ids: number[]; balances: number[] };
    const rows = snapshot.ids.map((id, index) => ({ id, balance: snapshot.balances[index] }));
    const balance = checkBalances(rows, {
      accountCount: options.accountCount,
      initialBalance: options.initialBalance,
      amount: options.amount,
      ackedDelta: decodeInt32Array(ackedDeltaBase64),
      unknownCount: decodeInt32Array(unknownCountBase64),
    });
    const serverStats = await getJson(`${url}/stats`) as Record<string, unknown>;
    const expectedSockets = options.clientCount * options.inflightPerClient;
    const problems = [...balance.problems];
    if (connectedSockets !== expectedSockets) {
      problems.push(`Client opened ${connectedSockets} of ${expectedSockets} sockets`);
    }
    return {
      ...base,
      status: balance.ok ? "ok" : "failed",
      reason: problems.length > 0 ? problems.join("; ") : undefined,
      load,
      balance,
      cpu,
      info: { ...server.info, client, postgresVersion: postgres?.version },
      serverStats,
    };
  } finally {
    await server.stop();
  }
}
