/**
 * `deno task bench:subscriptions`: subscriptions at scale, end to end (issue #11 "Measure"),
 * through the real server and the official SDK.
 *
 * One Lightcone server (bench/keynote/lightcone_side.ts: keynote module, 100,000 accounts, plus a
 * `holder` row per account), one load process (this one: 64 SDK connections × 40 transfers in
 * flight, keynote pairs α=0, as `bench:keynote` pipelined) and, per configuration, one subscriber
 * child process (bench/subscription_holders.ts) whose connections hold N distinct subscriptions
 * while the load runs:
 *
 *   none   no subscriber (measured first and last: the drift of the machine over the run)
 *   table  N × `SELECT * FROM accounts WHERE id = k`
 *   join   N × `SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id
 *          WHERE holder.ident = k` (a semijoin on the indexed holder.account / accounts.id)
 *   view   N × `SELECT * FROM my_accounts WHERE id = k` over a per-sender view; each subscriber
 *          connection owns `--view-per-conn` accounts (a list: one row per value) and
 *          subscribes to each of them
 *   topn   one `SELECT * FROM accounts ORDER BY balance DESC LIMIT 100` (needs top-N support)
 *
 * k runs over 0..N-1, so with α=0 a transfer touches a subscribed account with probability
 * ~2N/100,000 (20 % at N = 10,000). Per run: TPS, p50/p99, slowdown vs the mean of the "none"
 * runs just before and after it (one follows every group), CPU µs per transfer of the server (main thread + database process) and of the
 * subscriber process, bytes the server sent to the subscribers per transfer, and the time to
 * subscribe the N queries (SDK `subscribe` to every `onApplied`) with the server CPU it took.
 *
 * Then the initial subscriptions of 100,000 rows (`SELECT * FROM accounts`, and the 2-table join
 * producing 100,000 rows), each `--initial-reps` times on a fresh connection: ms from `subscribe`
 * to `onApplied` at the SDK client, and the server's CPU ms meanwhile (main thread, database
 * process).
 *
 * Back of the envelope: routing is a map lookup per changed row, so holding N never-touched
 * subscriptions costs nothing; a touched one costs a delta, one encoded row list and a frame to
 * its connection (~40-100 B): at 20 % of ~100k TPS that is ~20k frames/s, a noticeable share of
 * the server main thread. A touched view instance re-runs its whole view (`--view-per-conn`
 * point reads), the dominant cost of the view shape.
 *
 *   deno task bench:subscriptions [--counts 0,1000,10000] [--shapes table,join,view]
 *     [--topn] [--accounts 100000] [--warmup-s 3] [--measure-s 10] [--clients 64]
 *     [--inflight 40] [--per-conn 1000] [--view-per-conn 100] [--initial-reps 3]
 *     [--no-initial] [--no-append] [--label TEXT] [--server-args "..."] [--linger-s 0]
 */
import { parseArgs } from "node:util";
import { checkBalances } from "./keynote/balance_check.ts";
import { stopTrackedChildren, trackChild } from "./keynote/children.ts";
import { runLoad } from "./keynote/driver.mjs";
import {
  connectLightconeClients,
  deployLightcone,
  type LightconeDeployment,
  readLightconeBalances,
} from "./keynote/lightcone_side.ts";
import { type CpuReport, startCpuSample } from "./keynote/proc_cpu.mjs";
import type { RunOptions } from "./keynote/types.ts";
import { generatePairs, INITIAL_BALANCE, TRANSFER_AMOUNT } from "./keynote/workload.ts";

const { values: flags } = parseArgs({
  options: {
    counts: { type: "string", default: "1000,10000" },
    shapes: { type: "string", default: "table,join,view" },
    topn: { type: "boolean", default: false },
    accounts: { type: "string", default: "100000" },
    "warmup-s": { type: "string", default: "3" },
    "measure-s": { type: "string", default: "10" },
    clients: { type: "string", default: "64" },
    inflight: { type: "string", default: "40" },
    "per-conn": { type: "string", default: "1000" },
    "view-per-conn": { type: "string", default: "100" },
    "initial-reps": { type: "string", default: "3" },
    "no-initial": { type: "boolean", default: false },
    "no-append": { type: "boolean", default: false },
    label: { type: "string", default: "" },
    // Profiling: extra `main.ts start` flags, and a wait before the server is stopped (with
    // `--hibernate-after-s 1` the database process then exits by itself and writes the
    // profile that LIGHTCONE_DB_DENO_FLAGS="--cpu-prof --cpu-prof-dir=DIR" asked for).
    "server-args": { type: "string", default: "" },
    "linger-s": { type: "string", default: "0" },
  },
});

function positiveInt(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`--${name} must be a positive integer, got '${text}'`);
  }
  return value;
}

const ACCOUNTS = positiveInt("accounts", flags.accounts);
const COUNTS = flags.counts.split(",").filter((s) => s.trim()).map((s) =>
  positiveInt("counts", s.trim())
);
const SHAPES = flags.shapes.split(",").map((s) => s.trim()).filter((s) => s);
for (const shape of SHAPES) {
  if (!["table", "join", "view"].includes(shape)) {
    throw new RangeError(`--shapes takes table, join, view; got '${shape}'`);
  }
}
for (const count of COUNTS) {
  if (count > ACCOUNTS) throw new RangeError(`--counts ${count} is over --accounts ${ACCOUNTS}`);
}
const WARMUP_MS = positiveInt("warmup-s", flags["warmup-s"]) * 1000;
const MEASURE_MS = positiveInt("measure-s", flags["measure-s"]) * 1000;
const CLIENTS = positiveInt("clients", flags.clients);
const INFLIGHT = positiveInt("inflight", flags.inflight);
const PER_CONN = positiveInt("per-conn", flags["per-conn"]);
const VIEW_PER_CONN = flags["view-per-conn"].split(",").filter((v) => v.trim()).map((v) =>
  positiveInt("view-per-conn", v.trim())
);
const INITIAL_REPS = positiveInt("initial-reps", flags["initial-reps"]);
const HOLDER_SEED_CHUNK = 10_000;
const CHILD_TIMEOUT_MS = 300_000;
const REPO_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const lines: string[] = [];
function out(line = ""): void {
  // deno-lint-ignore no-console
  console.log(line);
  lines.push(line);
}
function progress(text: string): void {
  // deno-lint-ignore no-console
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${text}`);
}
const loadavg = () => Deno.loadavg().map((l) => l.toFixed(2)).join(" ");

/** The subscriber child process and its line protocol (bench/subscription_holders.ts). */
class Holders {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";

  constructor(url: string, shape: string, count: number, perConn: number) {
    this.#child = trackChild(
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${REPO_ROOT}/bench/subscription_holders.ts`,
          "--url",
          url,
          "--shape",
          shape,
          "--count",
          String(count),
          "--per-conn",
          String(perConn),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn(),
    );
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** The next JSON line; throws on `{error}`, end of output or timeout. */
  async next(): Promise<Record<string, number>> {
    const deadline = Date.now() + CHILD_TIMEOUT_MS;
    for (;;) {
      const newline = this.#buffered.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffered.slice(0, newline);
        this.#buffered = this.#buffered.slice(newline + 1);
        const value = JSON.parse(line);
        if (typeof value.error === "string") throw new Error(`Subscriber: ${value.error}`);
        return value;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        this.#reader.read(),
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error("Subscriber process did not answer")),
            deadline - Date.now(),
          )
        ),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error("Subscriber process exited");
      this.#buffered += chunk.value;
    }
  }

  async send(command: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
  }

  async quit(): Promise<void> {
    try {
      await this.send("quit");
      await this.#writer.close();
    } catch {
      // Already gone.
    }
    await this.#child.status;
  }
}

interface Row {
  label: string;
  shape: string;
  count: number;
  connections: number;
  subscribeMs?: number;
  subscribeServerCpuMs?: number;
  tps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  cpu: CpuReport | null;
  bytes: number;
  frames: number;
  load: string;
  loadAtStart: string;
}

/** Server CPU ms (main thread and the database process) between start() and the report. */
function cpuMs(report: CpuReport | null, name: string): { main: number; db: number } {
  const threads = report?.threadPercent?.[name] ?? {};
  let main = 0;
  let db = 0;
  for (const [thread, percent] of Object.entries(threads)) {
    if (thread.startsWith("db ")) db += percent;
    else main += percent;
  }
  const seconds = report?.seconds ?? 0;
  return { main: (main / 100) * seconds * 1000, db: (db / 100) * seconds * 1000 };
}

async function main(): Promise<void> {
  const workDir = await Deno.makeTempDir({ prefix: "lightcone-subscale-" });
  progress(`generating pairs, deploying (${ACCOUNTS} accounts)`);
  const pairs = generatePairs({ alpha: 0, seed: 1, accountCount: ACCOUNTS });
  const options: RunOptions = {
    alpha: 0,
    mode: "pipelined",
    clientCount: CLIENTS,
    inflightPerClient: INFLIGHT,
    warmupMs: WARMUP_MS,
    measureMs: MEASURE_MS,
    timeoutMs: 15_000,
    accountCount: ACCOUNTS,
    initialBalance: INITIAL_BALANCE,
    amount: TRANSFER_AMOUNT,
    pairs,
    pairsPath: "",
    workDir,
    repoRoot: REPO_ROOT,
    serverArgs: flags["server-args"].split(/\s+/).filter((arg) => arg),
  };
  let deployment: LightconeDeployment | undefined;
  try {
    deployment = await deployLightcone(options);
    for (let first = 0; first < ACCOUNTS; first += HOLDER_SEED_CHUNK) {
      const count = Math.min(HOLDER_SEED_CHUNK, ACCOUNTS - first);
      const response = await fetch(`${deployment.url}/v1/database/keynote/call/seed_holders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify([first, count]),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`Seeding holders failed (${response.status}): ${text}`);
    }
    await measure(deployment, options);
    await new Promise((resolve) => setTimeout(resolve, Number(flags["linger-s"]) * 1000));
  } finally {
    await deployment?.stop();
    await stopTrackedChildren();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }
}

async function measure(deployment: LightconeDeployment, options: RunOptions): Promise<void> {
  const startedAt = new Date().toISOString();
  const commit = new TextDecoder().decode(
    (await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], cwd: REPO_ROOT })
      .output()).stdout,
  ).trim();
  const clients = await connectLightconeClients(deployment, CLIENTS);
  const ackedDelta = new Int32Array(ACCOUNTS);
  const unknownCount = new Int32Array(ACCOUNTS);
  const rows: Row[] = [];
  const cacheProblems: string[] = [];

  const configs: { shape: string; count: number; perConn: number }[] = [
    { shape: "none", count: 0, perConn: 1 },
  ];
  // A "none" run after every group: the machine is shared, so each row is compared with the
  // "none" runs right before and after it.
  for (const shape of SHAPES) {
    for (const perConn of shape === "view" ? VIEW_PER_CONN : [PER_CONN]) {
      for (const count of COUNTS) configs.push({ shape, count, perConn });
      configs.push({ shape: "none", count: 0, perConn: 1 });
    }
  }
  if (flags.topn) {
    configs.push({ shape: "topn", count: 1, perConn: 1 });
    configs.push({ shape: "none", count: 0, perConn: 1 });
  }
  if (configs.length === 1) configs.push({ shape: "none", count: 0, perConn: 1 });

  try {
    for (const { shape, count, perConn } of configs) {
      let holders: Holders | undefined;
      let connections = 0;
      let subscribeMs: number | undefined;
      let subscribeServerCpuMs: number | undefined;
      if (shape !== "none") {
        progress(`${shape} × ${count}: connecting subscribers`);
        holders = new Holders(deployment.url, shape, count, perConn);
        connections = (await holders.next()).connected;
        const sample = startCpuSample({ server: deployment.pid });
        await holders.send("subscribe");
        const ready = await holders.next();
        const cpu = cpuMs(sample.stop(), "server");
        subscribeMs = ready.ms;
        subscribeServerCpuMs = cpu.main + cpu.db;
        progress(
          `${shape} × ${count}: ${connections} connections subscribed in ${
            ready.ms.toFixed(0)
          } ms, ${ready.rows} rows cached`,
        );
      }
      let cpu: CpuReport | null = null;
      let sample: ReturnType<typeof startCpuSample> | undefined;
      const roots: Record<string, number> = { client: Deno.pid, server: deployment.pid };
      if (holders) roots.subscribers = holders.pid;
      const endTimer = setTimeout(() => cpu = sample?.stop() ?? null, WARMUP_MS + MEASURE_MS);
      let marked: Promise<void> | undefined;
      let loadAtStart = "";
      const load = await runLoad({
        pairs: options.pairs,
        clientCount: CLIENTS,
        inflightPerClient: INFLIGHT,
        warmupMs: WARMUP_MS,
        measureMs: MEASURE_MS,
        timeoutMs: options.timeoutMs,
        accountCount: ACCOUNTS,
        amount: TRANSFER_AMOUNT,
        send: clients.transfer,
        onPhase(phase) {
          if (phase !== "measure") return;
          sample = startCpuSample(roots);
          loadAtStart = Deno.loadavg()[0].toFixed(1);
          if (holders) marked = holders.send("mark").then(() => holders.next()).then(() => {});
        },
      }).finally(() => clearTimeout(endTimer));
      cpu ??= sample?.stop() ?? null;
      let bytes = 0;
      let frames = 0;
      if (holders) {
        await marked;
        await holders.send("report");
        const report = await holders.next();
        bytes = report.bytes;
        frames = report.frames;
        // Every subscribed account stays in the caches (top-N: the window's 100 rows).
        const expected = shape === "topn" ? 100 : count;
        if (report.rows !== expected) {
          cacheProblems.push(
            `${shape} × ${count}: ${report.rows} rows cached, ${expected} expected`,
          );
        }
        await holders.quit();
      }
      for (let i = 0; i < ACCOUNTS; i++) {
        ackedDelta[i] += load.ackedDelta[i];
        unknownCount[i] += load.unknownCount[i];
      }
      const row: Row = {
        label: shape === "none"
          ? "none"
          : shape === "topn"
          ? "top-N `ORDER BY balance DESC LIMIT 100`, 1 subscription"
          : shape,
        shape,
        count,
        connections,
        subscribeMs,
        subscribeServerCpuMs,
        tps: load.tps,
        p50Ms: load.p50Ms,
        p99Ms: load.p99Ms,
        errors: load.errors,
        cpu,
        bytes,
        frames,
        load: Deno.loadavg()[0].toFixed(1),
        loadAtStart,
      };
      rows.push(row);
      progress(
        `${shape} × ${count}: ${load.tps.toFixed(0)} TPS, p50 ${load.p50Ms.toFixed(1)} ms, p99 ${
          load.p99Ms.toFixed(1)
        } ms, ${frames} frames, ${bytes} bytes to subscribers, load ${row.loadAtStart} -> ${row.load}`,
      );
    }
  } finally {
    await clients.close();
  }

  const balances = checkBalances(await readLightconeBalances(deployment), {
    accountCount: ACCOUNTS,
    initialBalance: INITIAL_BALANCE,
    amount: TRANSFER_AMOUNT,
    ackedDelta,
    unknownCount,
  });

  const initial: string[] = [];
  if (!flags["no-initial"]) {
    for (const shape of ["rows", "joinrows"]) {
      for (let rep = 0; rep < INITIAL_REPS; rep++) {
        const holders = new Holders(deployment.url, shape, 1, 1);
        await holders.next();
        const sample = startCpuSample({ server: deployment.pid });
        await holders.send("subscribe");
        const ready = await holders.next();
        const cpu = cpuMs(sample.stop(), "server");
        await holders.quit();
        initial.push(
          `| ${
            shape === "rows"
              ? "`SELECT * FROM accounts`"
              : "`SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id`"
          } | ${rep + 1} | ${ready.rows} | ${(ready.bytes / 1e6).toFixed(2)} | ${
            ready.ms.toFixed(0)
          } | ${cpu.main.toFixed(0)} | ${cpu.db.toFixed(0)} | ${loadavg()} |`,
        );
        progress(`initial ${shape} rep ${rep + 1}: ${ready.ms.toFixed(0)} ms`);
      }
    }
  }

  /** Mean of `value` over the "none" runs just before and just after row `i`. */
  const aroundNone = (i: number, value: (row: Row) => number) => {
    let before = i;
    while (before >= 0 && rows[before].shape !== "none") before--;
    let after = i;
    while (after < rows.length && rows[after].shape !== "none") after++;
    const around = [rows[before], rows[after]].filter((row) => row !== undefined);
    return around.reduce((sum, row) => sum + value(row), 0) / around.length;
  };
  const cpuUs = (row: Row, name: string) => {
    const percent = row.cpu?.processPercent?.[name];
    if (percent === null || percent === undefined || row.tps <= 0) return NaN;
    return (percent / 100) * 1e6 / row.tps;
  };
  const perTransfer = (row: Row, name: string) => {
    const us = cpuUs(row, name);
    return Number.isNaN(us) ? "-" : us.toFixed(1);
  };
  /** "× slower" by TPS, and the server's CPU per transfer over that of the "none" runs. */
  const ratios = (i: number) => {
    const row = rows[i];
    if (row.shape === "none") return "-";
    const tps = aroundNone(i, (r) => r.tps) / row.tps;
    const cpu = cpuUs(row, "server") / aroundNone(i, (r) => cpuUs(r, "server"));
    return `${tps.toFixed(2)} (CPU ${Number.isNaN(cpu) ? "-" : cpu.toFixed(2)})`;
  };
  const serverSplit = (row: Row) => {
    const { main, db } = cpuMs(row.cpu, "server");
    const seconds = row.cpu?.seconds ?? 0;
    if (seconds <= 0 || row.tps <= 0) return "-";
    const transfers = row.tps * seconds;
    return `${(main * 1000 / transfers).toFixed(1)} / ${(db * 1000 / transfers).toFixed(1)}`;
  };

  out(
    `## Subscriptions at scale, end to end (bench/subscription_scale.ts), ${startedAt}${
      flags.label ? ` (${flags.label})` : ""
    }`,
  );
  out();
  out(
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, commit ${commit}, ${Deno.osRelease()}. Load: ${CLIENTS} SDK connections × ${INFLIGHT} transfers in flight (keynote pipelined, α=0, ${ACCOUNTS} accounts), ${
      WARMUP_MS / 1000
    } s warm-up, ${
      MEASURE_MS / 1000
    } s measured per row; subscribers in their own process (official SDK, compression off), ${PER_CONN} subscriptions per connection (view: as the conns column says, each connection's view instance holding its subscriptions' accounts). Balance check over all rows: ${
      balances.ok
        ? `ok (${balances.rowCount} rows, ${balances.changedCount} changed)`
        : `FAILED: ${balances.problems.join("; ")}`
    }.`,
  );
  out();
  out(
    "| subscriptions | N | conns | subscribe ms (server CPU ms) | TPS | × slower than none (server CPU per transfer × none's) | p50 ms | p99 ms | errors | server CPU µs/transfer (server process / database process) | subscriber CPU µs/transfer | bytes to subscribers per transfer | frames/s to subscribers | load avg (1 min) start → end |",
  );
  out("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |");
  for (const [i, row] of rows.entries()) {
    const seconds = row.cpu?.seconds ?? MEASURE_MS / 1000;
    const transfers = row.tps * seconds;
    out(
      `| ${row.label} | ${row.count} | ${row.connections} | ${
        row.subscribeMs === undefined
          ? "-"
          : `${row.subscribeMs.toFixed(0)} (${row.subscribeServerCpuMs!.toFixed(0)})`
      } | ${Math.round(row.tps).toLocaleString("en-US")} | ${ratios(i)} | ${
        row.p50Ms.toFixed(1)
      } | ${row.p99Ms.toFixed(1)} | ${row.errors} | ${perTransfer(row, "server")} (${
        serverSplit(row)
      }) | ${row.shape === "none" ? "-" : perTransfer(row, "subscribers")} | ${
        row.shape === "none" ? "-" : (row.bytes / transfers).toFixed(1)
      } | ${
        row.shape === "none" ? "-" : (row.frames / seconds).toFixed(0)
      } | ${row.loadAtStart} → ${row.load} |`,
    );
  }
  out();
  out(
    `"× slower": the mean TPS of the "none" runs just before and after the row, over the row's TPS; in brackets the row's server CPU per transfer over theirs. Bytes and frames: every WebSocket message the subscriber connections received during the measured window. SDK caches after each run: ${
      cacheProblems.length === 0
        ? "every subscribed row present (N rows; top-N 100)"
        : cacheProblems.join("; ")
    }.`,
  );
  if (initial.length > 0) {
    out();
    out(
      "| initial subscription (fresh connection, no load) | rep | rows | MB received | ms `subscribe` → `onApplied` | server process CPU ms | database process CPU ms | load avg after |",
    );
    out("| --- | --: | --: | --: | --: | --: | --: | --- |");
    for (const line of initial) out(line);
  }
  if (!flags["no-append"]) {
    await Deno.writeTextFile(`${REPO_ROOT}/bench/RESULTS.md`, "\n" + lines.join("\n") + "\n", {
      append: true,
    });
  }
}

await main();
