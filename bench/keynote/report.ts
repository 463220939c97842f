/**
 * The keynote report: machine and versions, one row per system × α × mode, and the ratios
 * Lightcone / baseline. Formatting is pure; `describeMachine` reads /proc.
 */
import type { SystemResult } from "./types.ts";

export interface MachineInfo {
  cpuCount: number;
  cpuModel: string;
  memoryGib: number;
  os: string;
  kernel: string;
  deno: string;
  node: string;
}

export interface ReportSettings {
  date: string;
  warmupMs: number;
  measureMs: number;
  clientCount: number;
  inflightPipelined: number;
  accountCount: number;
  initialBalance: number;
  seed: number;
  /** Repetitions of every configuration. */
  reps: number;
  pairCount: number;
  /** Share of pairs touching the hottest account, per α (shows the contention). */
  hottestShareByAlpha: Record<string, number>;
  command: string;
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return fallback;
  }
}

export async function describeMachine(node: string): Promise<MachineInfo> {
  const cpuinfo = await readOr("/proc/cpuinfo", "");
  const meminfo = await readOr("/proc/meminfo", "");
  const osRelease = await readOr("/etc/os-release", "");
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
  const memoryKib = Number(/^MemTotal:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const os = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1] ?? Deno.build.os;
  return {
    cpuCount: navigator.hardwareConcurrency,
    cpuModel,
    memoryGib: Math.round((memoryKib / 1024 / 1024) * 10) / 10,
    os,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    node,
  };
}

function formatInteger(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

function formatMs(value: number): string {
  if (value >= 100) return formatInteger(value);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function formatAlpha(alpha: number): string {
  return String(alpha);
}

function formatRatio(value: number): string {
  if (value >= 100) return `${Math.round(value)}×`;
  if (value >= 10) return `${value.toFixed(1)}×`;
  return `${value.toFixed(2)}×`;
}

function cpuCell(result: SystemResult): string {
  const cpu = result.cpu;
  if (!cpu) return "—";
  const ours = Object.entries(cpu.processPercent).filter(([, percent]) =>
    percent !== null
  ) as Array<
    [string, number]
  >;
  const parts = ours.map(([name, percent]) => `${name} ${Math.round(percent)}`);
  if (cpu.machine) {
    // Everything else that ran meanwhile (other processes, kernel threads), in % of one core.
    const oursTotal = ours.reduce((sum, [, percent]) => sum + percent, 0);
    const rest = Math.max(0, cpu.machine.busyPercent * cpu.cores - oursTotal);
    parts.push(`rest ${Math.round(rest)}`);
    parts.push(
      `machine ${Math.round(cpu.machine.busyPercent)}/${Math.round(cpu.machine.iowaitPercent)}/${
        Math.round(cpu.machine.stealPercent)
      }`,
    );
  }
  if (result.startBusyPercent !== undefined) {
    parts.push(`busy before ${Math.round(result.startBusyPercent)}`);
  }
  return parts.join(", ");
}

function retryCell(result: SystemResult): string {
  const stats = result.serverStats;
  if (!stats || typeof stats.retries !== "number") return "";
  return ` (retries ${formatInteger(stats.retries)}, gave up ${
    formatInteger(Number(stats.gaveUp ?? 0))
  })`;
}

/**
 * Collapses repetitions of the same system × α × mode into their median-TPS run (order of first
 * appearance kept). The median row lists every repetition's TPS and fails if any repetition did.
 */
export function medianRuns(results: readonly SystemResult[]): SystemResult[] {
  const groups = new Map<string, SystemResult[]>();
  for (const result of results) {
    const key = `${result.systemKey}|${result.alpha}|${result.mode}`;
    const group = groups.get(key);
    if (group) group.push(result);
    else groups.set(key, [result]);
  }
  return [...groups.values()].map((group) => {
    if (group.length === 1) return group[0];
    const measured = group.filter((result) => result.load);
    if (measured.length === 0) return group[0];
    const sorted = [...measured].sort((a, b) => a.load!.tps - b.load!.tps);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    const failed = group.find((result) => result.status !== "ok");
    return {
      ...median,
      status: failed ? failed.status : median.status,
      reason: failed?.reason ?? median.reason,
      runTps: group.map((result) => result.load?.tps ?? 0),
    };
  });
}

/** The main table: one row per system × α × mode (the median run when repeated). */
export function resultsTable(results: readonly SystemResult[]): string {
  const lines = [
    "| system | mode | α | TPS | p50 ms | p99 ms | errors | balance check | CPU: % of one core (client, server, db, rest of machine); machine % busy/iowait/steal; machine % busy before the run |",
    "|---|---|---:|---:|---:|---:|---:|---|---|",
  ];
  for (const result of results) {
    const mode = `${result.mode} (${result.clientCount}×${result.inflightPerClient})`;
    if (!result.load) {
      lines.push(
        `| ${result.systemName} | ${mode} | ${
          formatAlpha(result.alpha)
        } | — | — | — | — | ${result.status}: ${escapeCell(result.reason ?? "")} | — |`,
      );
      continue;
    }
    const load = result.load;
    const check = result.balance
      ? result.balance.ok
        ? `ok (${formatInteger(result.balance.rowCount)} rows, ${
          formatInteger(result.balance.changedCount)
        } changed)`
        : `FAILED: ${escapeCell(result.reason ?? result.balance.problems.join("; "))}`
      : `${result.status}${result.reason ? `: ${escapeCell(result.reason)}` : ""}`;
    lines.push(
      `| ${result.systemName} | ${mode} | ${formatAlpha(result.alpha)} | **${
        formatInteger(load.tps)
      }**${result.runTps ? ` (${result.runTps.map(formatInteger).join(", ")})` : ""} | ${
        formatMs(load.p50Ms)
      } | ${formatMs(load.p99Ms)} | ${formatInteger(load.errors)}${
        retryCell(result)
      } | ${check} | ${cpuCell(result)} |`,
    );
  }
  return lines.join("\n");
}

/**
 * Where the CPU went, per acknowledged transfer: for every measured run that has per-thread
 * accounting, µs of CPU per transfer of each thread of each watched process (thread % of one
 * core × 10,000 / TPS). This is the "which hop, how many µs per call" view of a run.
 */
export function cpuPerCallTable(results: readonly SystemResult[]): string {
  const lines: string[] = [];
  for (const result of results) {
    const threads = result.cpu?.threadPercent;
    const tps = result.load?.tps ?? 0;
    if (!threads || tps <= 0) continue;
    const cells: string[] = [];
    let total = 0;
    for (const [process, perThread] of Object.entries(threads)) {
      const entries = Object.entries(perThread).sort((a, b) => b[1] - a[1]);
      const named = entries.map(([thread, percent]) => {
        const micros = (percent * 10_000) / tps;
        total += micros;
        return `${thread} ${micros.toFixed(1)}`;
      });
      if (named.length) cells.push(`${process}: ${named.join(", ")}`);
    }
    if (!cells.length) continue;
    lines.push(
      `| ${result.systemName} | ${result.mode} | ${formatAlpha(result.alpha)} | ${
        formatInteger(tps)
      } | ${total.toFixed(1)} | ${escapeCell(cells.join("; "))} |`,
    );
  }
  if (!lines.length) return "";
  return [
    "CPU per acknowledged transfer, by thread (µs; main = the process's own thread, gc = V8 helper threads, worker-N = Deno workers in start order):",
    "",
    "| system | mode | α | TPS | µs total | µs per thread |",
    "|---|---|---:|---:|---:|---|",
    ...lines,
  ].join("\n");
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/**
 * Ratios Lightcone / baseline per α: against the baseline in the same mode, and (the keynote's
 * headline comparison) Lightcone pipelined against the baseline closed-loop.
 */
export function ratioTable(results: readonly SystemResult[]): string {
  const measured = results.filter((result) => result.load);
  const lightcone = measured.filter((result) => result.systemKey === "lightcone");
  // lightcone-raw (a reference client, not the SDK) is neither side of a ratio.
  const baselines = measured.filter((result) => !result.systemKey.startsWith("lightcone"));
  const find = (list: readonly SystemResult[], alpha: number, mode: string) =>
    list.find((result) => result.alpha === alpha && result.mode === mode);
  const lines = [
    "| baseline | α | Lightcone TPS / baseline TPS, same mode | Lightcone pipelined / baseline closed (keynote) |",
    "|---|---:|---|---|",
  ];
  const seen = new Set<string>();
  for (const baseline of baselines) {
    const key = `${baseline.systemKey}|${baseline.alpha}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const cells: string[] = [];
    for (const mode of ["closed", "pipelined"]) {
      const ours = find(lightcone, baseline.alpha, mode);
      const theirs = find(
        baselines.filter((result) => result.systemKey === baseline.systemKey),
        baseline.alpha,
        mode,
      );
      if (ours?.load && theirs?.load && theirs.load.tps > 0) {
        cells.push(`${mode}: ${formatRatio(ours.load.tps / theirs.load.tps)}${mark(ours, theirs)}`);
      }
    }
    const oursPipelined = find(lightcone, baseline.alpha, "pipelined");
    const theirsClosed = find(
      baselines.filter((result) => result.systemKey === baseline.systemKey),
      baseline.alpha,
      "closed",
    );
    const keynote = oursPipelined?.load && theirsClosed?.load && theirsClosed.load.tps > 0
      ? formatRatio(oursPipelined.load.tps / theirsClosed.load.tps) +
        mark(oursPipelined, theirsClosed)
      : "—";
    lines.push(
      `| ${baseline.systemName} | ${formatAlpha(baseline.alpha)} | ${
        cells.join(", ") || "—"
      } | ${keynote} |`,
    );
  }
  if (lines.length === 2) lines.push("| — | — | no baseline measured | — |");
  if (measured.some((result) => result.status !== "ok")) {
    lines.push(
      "",
      "† one side of this ratio did not pass its balance check (see the table above).",
    );
  }
  return lines.join("\n");
}

/**
 * Baselines that acknowledge a transfer before it is on disk (SQLite WAL + synchronous=NORMAL
 * syncs only at checkpoints). Lightcone acknowledges only durable transactions, so these are
 * shown as references and never used as a ratio's denominator.
 */
export const NOT_DURABLE_PER_COMMIT: ReadonlySet<string> = new Set(["sqlite-wal"]);

/**
 * The ratios worth quoting: per α, Lightcone against the best durable baseline run. Same mode
 * (closed against the best closed run, pipelined against the best pipelined run) and the
 * keynote's mixed comparison made fair: Lightcone pipelined against the best baseline run in
 * any mode (a baseline that does not gain from pipelining is measured at its best).
 */
export function bestBaselineTable(results: readonly SystemResult[]): string {
  const measured = results.filter((result) => result.load && result.load.tps > 0);
  const lightcone = measured.filter((result) => result.systemKey === "lightcone");
  const durable = measured.filter((result) =>
    !result.systemKey.startsWith("lightcone") && !NOT_DURABLE_PER_COMMIT.has(result.systemKey)
  );
  const best = (list: readonly SystemResult[]) =>
    list.reduce<SystemResult | undefined>(
      (top, result) => !top || result.load!.tps > top.load!.tps ? result : top,
      undefined,
    );
  const lines = [
    "| α | comparison | Lightcone TPS | best durable baseline run | its TPS | ratio |",
    "|---:|---|---:|---|---:|---:|",
  ];
  const alphas = [...new Set(lightcone.map((result) => result.alpha))];
  for (const alpha of alphas) {
    const rows: [string, SystemResult | undefined, SystemResult | undefined][] = [
      ...["closed", "pipelined"].map((
        mode,
      ): [string, SystemResult | undefined, SystemResult | undefined] => [
        `${mode} vs ${mode}`,
        lightcone.find((result) => result.alpha === alpha && result.mode === mode),
        best(durable.filter((result) => result.alpha === alpha && result.mode === mode)),
      ]),
      [
        "pipelined vs best of any mode",
        lightcone.find((result) => result.alpha === alpha && result.mode === "pipelined"),
        best(durable.filter((result) => result.alpha === alpha)),
      ],
    ];
    for (const [label, ours, theirs] of rows) {
      if (!ours?.load || !theirs?.load) continue;
      lines.push(
        `| ${formatAlpha(alpha)} | ${label} | ${
          formatInteger(ours.load.tps)
        } | ${theirs.systemName} (${theirs.mode}) | ${formatInteger(theirs.load.tps)} | ${
          formatRatio(ours.load.tps / theirs.load.tps)
        }${mark(ours, theirs)} |`,
      );
    }
  }
  if (lines.length === 2) return "";
  return lines.join("\n");
}

/** "†" when either side of a ratio is not a verified run. */
function mark(ours: SystemResult, theirs: SystemResult): string {
  return ours.status === "ok" && theirs.status === "ok" ? "" : " †";
}

function versionsLine(machine: MachineInfo, results: readonly SystemResult[]): string {
  const versions = new Map<string, string>();
  versions.set("Deno", machine.deno);
  versions.set("Node", machine.node);
  for (const result of results) {
    const info = result.info ?? {};
    if (typeof info.betterSqlite3 === "string") versions.set("better-sqlite3", info.betterSqlite3);
    if (typeof info.sqlite === "string") versions.set("SQLite", info.sqlite);
    if (typeof info.pg === "string") versions.set("pg", info.pg);
    if (typeof info.postgresVersion === "string") versions.set("PostgreSQL", info.postgresVersion);
    const client = info.client as Record<string, string> | undefined;
    if (client?.undici) versions.set("undici (HTTP client)", client.undici);
    if (typeof info.lightcone === "string") versions.set("Lightcone", info.lightcone);
    if (typeof info.sdk === "string") versions.set("spacetimedb SDK", info.sdk);
  }
  return [...versions].map(([name, version]) => `${name} ${version}`).join(", ");
}

function settingsLines(results: readonly SystemResult[]): string[] {
  const lines: string[] = [];
  const seenSqlite = new Set<string>();
  for (const sqlite of results) {
    if (!sqlite.systemKey.startsWith("sqlite") || !sqlite.info) continue;
    if (seenSqlite.has(sqlite.systemKey)) continue;
    seenSqlite.add(sqlite.systemKey);
    lines.push(
      `* SQLite settings read back (${sqlite.systemKey}): journal_mode=${sqlite.info.journalMode}, synchronous=${sqlite.info.synchronous}, cache_size=${sqlite.info.cacheSize}.`,
    );
  }
  const pg = results.find((result) => result.systemKey.startsWith("pg") && result.info);
  const settings = pg?.info?.postgres as Record<string, string> | undefined;
  if (settings) {
    lines.push(
      `* PostgreSQL settings read back: ${
        Object.entries(settings).filter(([name]) => name !== "server_version").map((
          [name, value],
        ) => `${name}=${value}`).join(", ")
      }.`,
    );
  }
  return lines;
}

/** The whole markdown section appended to bench/RESULTS.md. */
export function reportMarkdown(
  machine: MachineInfo,
  settings: ReportSettings,
  results: readonly SystemResult[],
): string {
  const contention = Object.entries(settings.hottestShareByAlpha)
    .map(([alpha, share]) => `α=${alpha}: ${(share * 100).toFixed(1)} %`)
    .join(", ");
  const failed = results.filter((result) => result.status !== "ok");
  const rows = medianRuns(results);
  const repetition = settings.reps > 1
    ? `Each configuration ran ${settings.reps} times, interleaved; a row is the run with the median TPS, the TPS of all runs in brackets.`
    : "One run per row";
  return [
    `## Keynote transfer benchmark, ${settings.date}`,
    "",
    `* Machine: ${machine.cpuCount} × ${machine.cpuModel}, ${machine.memoryGib} GiB RAM, ${machine.os}, kernel ${machine.kernel}.`,
    `* Versions: ${versionsLine(machine, results)}.`,
    `* Workload: ${formatInteger(settings.accountCount)} accounts at ${
      formatInteger(settings.initialBalance)
    }, transfers of 1, ${
      formatInteger(settings.pairCount)
    } precomputed pairs (seed ${settings.seed}, Zipf over ranks with a random rank→id permutation, from ≠ to). Transfers touching the hottest account: ${contention}.`,
    `* Load: ${settings.clientCount} clients; closed = 1 in flight per client, pipelined = ${settings.inflightPipelined} in flight per client. ${
      settings.warmupMs / 1000
    } s warm-up, then ${
      settings.measureMs / 1000
    } s measured; TPS counts acknowledged transfers completed inside the window; p50/p99 over those; errors = non-acknowledged transfers completed inside the window. ${repetition} (expect ±15 % between runs on a shared VM).`,
    "* Balance check after every run: row count, summed balance, and each account against the acknowledged transfers (no acknowledged transfer lost).",
    ...settingsLines(results),
    `* Command: \`${settings.command}\``,
    "",
    resultsTable(rows),
    "",
    "Ratios (Lightcone / baseline):",
    "",
    ratioTable(rows),
    ...((table) =>
      table
        ? [
          "",
          `Ratios against the best durable baseline run (the ones to quote; ${
            [...NOT_DURABLE_PER_COMMIT].join(", ")
          } acknowledges before its commit is on disk and is never a denominator):`,
          "",
          table,
        ]
        : [])(bestBaselineTable(rows)),
    ...((table) => table ? ["", table] : [])(cpuPerCallTable(rows)),
    ...(failed.length > 0
      ? [
        "",
        `Not measured or failed: ${
          failed.map((r) => `${r.systemKey} ${r.mode} α=${r.alpha} (${r.reason ?? r.status})`).join(
            "; ",
          )
        }.`,
      ]
      : []),
    "",
  ].join("\n");
}
