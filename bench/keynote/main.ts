/**
 * `deno task bench:keynote`: the keynote-2 transfer benchmark, Lightcone against two baselines on
 * this machine in the same run.
 *
 * Back of the envelope (2 vCPU, fsync ≈ 0.2 ms): durable SQLite does ~4 fsyncs per transfer, one
 * at a time → ~500 TPS whatever α or pipelining; PostgreSQL pays 5 loopback round trips per
 * transfer on shared cores → ~1k TPS at α=0 and a few hundred at α=1.5 (hot-row aborts); a
 * group-committing server can amortise one fsync over thousands of transfers, so its ceiling is
 * CPU (tens of thousands of TPS over the SDK).
 *
 * It installs what it needs (npm packages into bench/baselines/node_modules, PostgreSQL from
 * Debian's packages), starts a throw-away cluster, runs every system × α × mode on a freshly
 * seeded database, checks balances after each run, prints a markdown report, appends it to
 * bench/RESULTS.md and cleans up (servers stopped by pid, cluster stopped and removed).
 *
 * Flags (defaults are laptop-short):
 *   --warmup-s 5 --measure-s 10     per run
 *   --alphas 0,1.5                  Zipf exponents
 *   --modes closed,pipelined        closed = 1 in flight per client; pipelined = --inflight
 *   --systems lightcone,sqlite,sqlite-wal-full,pg
 *                                  also: sqlite-wal (non-durable reference), pg-immediate,
 *                                  lightcone-raw (same server, a minimal non-SDK client: shows
 *                                  what the SDK client costs; never used for the ratios),
 *                                  lightcone-append (transfer also inserts a ledger row)
 *   --clients 64 --inflight 40
 *   --accounts 100000 --seed 1 --timeout-s 15 --pg-port 25432
 *   --reps 1                        repetitions per configuration, interleaved; medians reported
 *   --quiet-wait-s 20               before each run, wait up to this long for the machine to idle
 *   --results bench/RESULTS.md      where to append; --no-append to only print
 *   --json FILE                     also write every result as JSON
 */
import { parseArgs } from "node:util";
import { log } from "../../lib/log.ts";
import {
  BASELINE_SYSTEMS,
  type BaselineSystem,
  installBaselinePackages,
  nodeVersion,
  type PostgresCluster,
  runBaseline,
  startPostgres,
} from "./baseline_side.ts";
import { stopTrackedChildren } from "./children.ts";
import { runLightcone } from "./lightcone_side.ts";
import { startCpuSample } from "./proc_cpu.mjs";
import { describeMachine, reportMarkdown } from "./report.ts";
import type { LoadMode, RunOptions, SystemResult } from "./types.ts";
import {
  ACCOUNT_COUNT_DEFAULT,
  encodePairs,
  generatePairs,
  hottestAccount,
  INITIAL_BALANCE,
  PAIR_COUNT_DEFAULT,
  TRANSFER_AMOUNT,
  type TransferPairs,
} from "./workload.ts";

export interface KeynoteOptions {
  warmupMs: number;
  measureMs: number;
  alphas: number[];
  modes: LoadMode[];
  systems: string[];
  clientCount: number;
  inflightPipelined: number;
  accountCount: number;
  seed: number;
  timeoutMs: number;
  pgPort: number;
  /** Repetitions of every configuration (interleaved); the report shows medians. */
  reps: number;
  /** How long to wait for a quiet machine before each run. */
  quietWaitMs: number;
  resultsPath: string | null;
  jsonPath: string | null;
}

/** Below this machine busy % (of all cores) a run may start. */
const QUIET_BUSY_PERCENT = 25;

const SYSTEM_KEYS = [
  "lightcone",
  "lightcone-append",
  "lightcone-raw",
  ...Object.keys(BASELINE_SYSTEMS),
];

function parseList(text: string): string[] {
  return text.split(",").map((item) => item.trim()).filter((item) => item !== "");
}

function positiveNumber(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`--${name} must be a positive number, got '${text}'`);
  }
  return value;
}

export function parseKeynoteArgs(argv: string[], repoRoot: string): KeynoteOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      "warmup-s": { type: "string", default: "5" },
      "measure-s": { type: "string", default: "10" },
      alphas: { type: "string", default: "0,1.5" },
      modes: { type: "string", default: "closed,pipelined" },
      systems: { type: "string", default: "lightcone,sqlite,sqlite-wal-full,pg" },
      clients: { type: "string", default: "64" },
      inflight: { type: "string", default: "40" },
      accounts: { type: "string", default: String(ACCOUNT_COUNT_DEFAULT) },
      seed: { type: "string", default: "1" },
      "timeout-s": { type: "string", default: "15" },
      "pg-port": { type: "string", default: "25432" },
      "quiet-wait-s": { type: "string", default: "20" },
      reps: { type: "string", default: "1" },
      results: { type: "string", default: `${repoRoot}/bench/RESULTS.md` },
      "no-append": { type: "boolean", default: false },
      json: { type: "string" },
    },
    strict: true,
  });
  const alphas = parseList(values.alphas).map((text) => {
    const alpha = Number(text);
    if (!Number.isFinite(alpha) || alpha < 0) throw new RangeError(`Bad alpha '${text}'`);
    return alpha;
  });
  const modes = parseList(values.modes).map((mode) => {
    if (mode !== "closed" && mode !== "pipelined") throw new RangeError(`Bad mode '${mode}'`);
    return mode as LoadMode;
  });
  const systems = parseList(values.systems);
  for (const system of systems) {
    if (!SYSTEM_KEYS.includes(system)) {
      throw new RangeError(`Unknown system '${system}', expected one of ${SYSTEM_KEYS.join(", ")}`);
    }
  }
  const warmupS = Number(values["warmup-s"]);
  if (!(warmupS >= 0)) throw new RangeError(`--warmup-s must be >= 0, got '${values["warmup-s"]}'`);
  return {
    warmupMs: warmupS * 1000,
    measureMs: positiveNumber("measure-s", values["measure-s"]) * 1000,
    alphas,
    modes,
    systems,
    clientCount: Math.floor(positiveNumber("clients", values.clients)),
    inflightPipelined: Math.floor(positiveNumber("inflight", values.inflight)),
    accountCount: Math.floor(positiveNumber("accounts", values.accounts)),
    seed: Math.floor(Number(values.seed)),
    timeoutMs: positiveNumber("timeout-s", values["timeout-s"]) * 1000,
    pgPort: Math.floor(positiveNumber("pg-port", values["pg-port"])),
    reps: Math.floor(positiveNumber("reps", values.reps)),
    quietWaitMs: Math.max(0, Number(values["quiet-wait-s"]) || 0) * 1000,
    resultsPath: values["no-append"] ? null : values.results,
    jsonPath: values.json ?? null,
  };
}

/** Stops everything that was started, once, also on Ctrl-C. */
class Cleanup {
  #tasks: Array<() => Promise<void>> = [];
  #done = false;

  add(task: () => Promise<void>): void {
    this.#tasks.push(task);
  }

  async run(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    for (const task of this.#tasks.reverse()) {
      try {
        await task();
      } catch (error) {
        log.warn("Cleanup step failed", { error });
      }
    }
  }
}

export async function runKeynote(
  options: KeynoteOptions,
  repoRoot: string,
  command: string,
): Promise<SystemResult[]> {
  const cleanup = new Cleanup();
  const onSignal = () => {
    log.warn("Interrupted; cleaning up");
    cleanup.run().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const results: SystemResult[] = [];
  cleanup.add(() => stopTrackedChildren());
  try {
    const workDir = await Deno.makeTempDir({ prefix: "keynote-" });
    cleanup.add(() => Deno.remove(workDir, { recursive: true }));

    const baselines = options.systems
      .filter((key) => !key.startsWith("lightcone"))
      .map((key) => BASELINE_SYSTEMS[key as BaselineSystem["key"]]);
    if (baselines.length > 0) {
      log.info("Installing baseline npm packages (bench/baselines) if missing");
      await installBaselinePackages(repoRoot);
    }
    let postgres: PostgresCluster | undefined;
    if (baselines.some((system) => system.usesPostgres)) {
      const port = freePort(options.pgPort);
      log.info("Starting a throw-away PostgreSQL cluster", { port });
      postgres = await startPostgres(repoRoot, port);
      cleanup.add(() => postgres!.stop());
    }

    const pairsByAlpha = new Map<
      number,
      { pairs: TransferPairs; path: string; hottestShare: number }
    >();
    for (const alpha of options.alphas) {
      const pairs = generatePairs({
        alpha,
        seed: options.seed,
        accountCount: options.accountCount,
      });
      const path = `${workDir}/pairs-${alpha}.bin`;
      await Deno.writeFile(path, encodePairs(pairs));
      pairsByAlpha.set(alpha, { pairs, path, hottestShare: hottestAccount(pairs).share });
    }

    for (let rep = 1; rep <= options.reps; rep++) {
      for (const alpha of options.alphas) {
        for (const mode of options.modes) {
          for (const systemKey of options.systems) {
            const { pairs, path } = pairsByAlpha.get(alpha)!;
            const runDir = await Deno.makeTempDir({ dir: workDir, prefix: `${systemKey}-` });
            const run: RunOptions = {
              alpha,
              mode,
              clientCount: options.clientCount,
              inflightPerClient: mode === "closed" ? 1 : options.inflightPipelined,
              warmupMs: options.warmupMs,
              measureMs: options.measureMs,
              timeoutMs: options.timeoutMs,
              accountCount: options.accountCount,
              initialBalance: INITIAL_BALANCE,
              amount: TRANSFER_AMOUNT,
              pairs,
              pairsPath: path,
              workDir: runDir,
              repoRoot,
            };
            const startBusyPercent = await waitForQuiet(options.quietWaitMs);
            log.info("Run", { rep, system: systemKey, alpha, mode, startBusyPercent });
            const result = await runOne(systemKey, run, postgres);
            if (startBusyPercent !== null) result.startBusyPercent = startBusyPercent;
            results.push(result);
            log.info("Result", {
              system: systemKey,
              alpha,
              mode,
              status: result.status,
              tps: Math.round(result.load?.tps ?? 0),
              p50Ms: result.load?.p50Ms,
              p99Ms: result.load?.p99Ms,
              errors: result.load?.errors,
              reason: result.reason,
            });
            await Deno.remove(runDir, { recursive: true }).catch(() => {});
          }
        }
      }
    }

    const machine = await describeMachine(await nodeVersion().catch(() => "not installed"));
    const markdown = reportMarkdown(machine, {
      date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      warmupMs: options.warmupMs,
      measureMs: options.measureMs,
      clientCount: options.clientCount,
      inflightPipelined: options.inflightPipelined,
      accountCount: options.accountCount,
      initialBalance: INITIAL_BALANCE,
      seed: options.seed,
      reps: options.reps,
      pairCount: PAIR_COUNT_DEFAULT,
      hottestShareByAlpha: Object.fromEntries(
        [...pairsByAlpha].map(([alpha, entry]) => [String(alpha), entry.hottestShare]),
      ),
      command,
    }, results);
    // deno-lint-ignore no-console
    console.log("\n" + markdown);
    if (options.resultsPath) {
      const fresh = !await Deno.stat(options.resultsPath).then(() => true, () => false);
      const header = fresh ? "# Benchmark results\n" : "";
      await Deno.writeTextFile(options.resultsPath, header + "\n" + markdown, { append: true });
      // Keep the file `deno fmt --check` clean (it aligns markdown tables); best effort.
      await new Deno.Command(Deno.execPath(), {
        args: ["fmt", "--quiet", options.resultsPath],
        stdout: "null",
        stderr: "null",
      }).output().catch(() => {});
      log.info("Appended the report", { path: options.resultsPath });
    }
    if (options.jsonPath) {
      await Deno.writeTextFile(options.jsonPath, JSON.stringify({ machine, results }, null, 2));
    }
    return results;
  } finally {
    await cleanup.run();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/**
 * The first port from `preferred` on that nothing listens on (a cluster left over from a killed
 * run keeps its port). Stays below the ephemeral range, where client sockets could collide.
 */
function freePort(preferred: number): number {
  for (let port = preferred; port < preferred + 50; port++) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error(`No free port in ${preferred}..${preferred + 49} for PostgreSQL`);
}

/**
 * Waits (up to `waitMs`) until the machine is below QUIET_BUSY_PERCENT busy over one second, so a
 * run does not start while another process is still loading the CPU. Returns the last busy %.
 */
async function waitForQuiet(waitMs: number): Promise<number | null> {
  const deadlineMs = performance.now() + waitMs;
  let busyPercent: number | null = null;
  do {
    const sample = startCpuSample({});
    await new Promise((resolve) => setTimeout(resolve, 1000));
    busyPercent = sample.stop().machine?.busyPercent ?? null;
    if (busyPercent === null || busyPercent < QUIET_BUSY_PERCENT) break;
  } while (performance.now() < deadlineMs);
  return busyPercent;
}

async function runOne(
  systemKey: string,
  run: RunOptions,
  postgres?: PostgresCluster,
): Promise<SystemResult> {
  const base = {
    systemKey,
    systemName: systemKey,
    alpha: run.alpha,
    mode: run.mode,
    clientCount: run.clientCount,
    inflightPerClient: run.inflightPerClient,
  };
  try {
    if (systemKey === "lightcone") return await runLightcone(run);
    if (systemKey === "lightcone-raw") return await runLightcone(run, "raw");
    if (systemKey === "lightcone-append") return await runLightcone(run, "sdk", "append");
    const system = BASELINE_SYSTEMS[systemKey as BaselineSystem["key"]];
    return await runBaseline(system, run, postgres);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    log.error("Run failed", { system: systemKey, alpha: run.alpha, mode: run.mode, reason });
    const name = systemKey.startsWith("lightcone")
      ? `Lightcone (${systemKey})`
      : BASELINE_SYSTEMS[systemKey as BaselineSystem["key"]]?.name ?? systemKey;
    return { ...base, systemName: name, status: "failed", reason };
  }
}

if (import.meta.main) {
  const repoRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const options = parseKeynoteArgs(Deno.args, repoRoot);
  const command = ["deno task bench:keynote", ...Deno.args].join(" ");
  const results = await runKeynote(options, repoRoot, command);
  const broken = results.filter((result) => result.balance && !result.balance.ok);
  Deno.exit(broken.length > 0 ? 1 : 0);
}
