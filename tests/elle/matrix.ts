/**
 * The fault matrix of the list-append workload: one cell = a real server child process (the
 * public HTTP/WebSocket interface only), the elle module, concurrent SDK clients for a while
 * under one kind of fault, then a final read and the checker.
 *
 * Faults (the schedule comes from the seed):
 * - none:         no fault (a baseline);
 * - kill:         SIGKILL, then a restart on the same data directory, again and again;
 * - pause:        SIGSTOP, a pause of up to 2.5 s, SIGCONT (calls time out after 1.5 s);
 * - disk-full:    the data directory is a small tmpfs mounted for the cell (root only); a
 *                 ballast file fills it, calls carry 32 KiB of padding until the log cannot grow,
 *                 then the ballast goes, the server restarts and the load goes on;
 * - fsync-error:  the server runs with LIGHTCONE_TEST_FS_FAULT=fail-fdatasync:N (N from the seed),
 *                 so one fdatasync fails; then it restarts with another N;
 * - broken-kill:  BROKEN ON PURPOSE: LIGHTCONE_TEST_FS_FAULT=unsafe-delay-writes:MS acknowledges
 *                 writes before they reach the file, and SIGKILL loses them: the checker must
 *                 report anomalies.
 */
import { seededRandom } from "../../lib/random.ts";
import {
  fixtureBundle,
  publish,
  type ServerProcess,
  startServerProcess,
} from "../support/server.ts";
import { checkListAppend, type CheckResult, type HistoryEvent } from "./checker.ts";
import { ListAppendWorkload, type WorkloadStats } from "./workload.ts";

export const FAULTS = ["none", "kill", "pause", "disk-full", "fsync-error", "broken-kill"] as const;
export type Fault = typeof FAULTS[number];

export interface CellOptions {
  fault: Fault;
  seed: number;
  /** How long the clients run under faults. */
  durationMs: number;
  clients?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface CellResult {
  fault: Fault;
  seed: number;
  /** Set when the cell could not run here (e.g. mounting a tmpfs is not permitted). */
  skipped?: string;
  result?: CheckResult;
  history?: readonly HistoryEvent[];
  stats?: WorkloadStats;
  /** Faults that took effect (for fsync-error and disk-full: the clients saw writes stop). */
  faultsInjected: number;
  elapsedMs: number;
  /** Time the checker took. */
  checkMs?: number;
}

const DATABASE = "elle";
/** The tmpfs: room for the database plus ~one log preallocation (4 MiB) per fill round. */
const DISK_BYTES_BASE = 32 * 1024 * 1024;
const DISK_BYTES_PER_SECOND = 2 * 1024 * 1024;
const DISK_PAD_BYTES = 32 * 1024;
/**
 * How long the broken mode keeps acknowledged writes in memory: the kill comes right after an
 * acknowledgement seen by a client, which on a loaded machine can be a few hundred ms after the
 * server sent it; past this delay those writes would be on disk and nothing lost.
 */
const BROKEN_DELAY_MS = 1000;
/**
 * How long a fault round waits for the clients to see it (fsync-error, disk-full): a round that
 * does not see it in time does not count, and a slow machine reaches the Nth fdatasync later.
 */
const FAULT_SEEN_WAIT_MS = 20_000;
/**
 * After the faults, the load goes on (on a healthy server) until this many appends were
 * acknowledged in all, so a history has enough to check however slow the machine was during
 * the cell's fixed duration (tests/e2e/elle_test.ts requires more than 20; a loaded machine got
 * 29 in a pause cell).
 */
const APPENDS_OK_MIN = 40;
/** Far beyond what APPENDS_OK_MIN takes on a working server; only turns a hang into a result. */
const APPENDS_OK_WAIT_MS = 120_000;
const PAUSE_CALL_TIMEOUT_MS = 1500;
/** Rounds past the duration while a fault has not taken effect yet (fsync-error, disk-full). */
const ROUNDS_MAX = 8;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN); the reason when not. */
export async function tmpfsUnavailable(): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-elle-probe-" });
  try {
    const mounted = await run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
    if (!mounted.ok) return `cannot mount a tmpfs: ${mounted.output}`;
    await run(["umount", dir]);
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function run(command: string[]): Promise<{ ok: boolean; output: string }> {
  const output = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
  return { ok: output.success, output: text.trim() };
}

/** Fills the file system holding `path` with a ballast file until it refuses more bytes. */
async function fillDisk(path: string): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true });
  try {
    for (const chunkBytes of [1024 * 1024, 64 * 1024, 4096]) {
      const chunk = new Uint8Array(chunkBytes);
      try {
        while (true) await file.write(chunk);
      } catch { /* ENOSPC: try smaller chunks, then stop */ }
    }
  } finally {
    file.close();
  }
}

export async function runCell(options: CellOptions): Promise<CellResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const random = seededRandom(options.seed ^ 0x5eed);
  const between = (low: number, high: number) => low + random.next() * (high - low);
  const dataDir = await Deno.makeTempDir({ prefix: `lightcone-elle-${options.fault}-` });
  let mounted = false;
  if (options.fault === "disk-full") {
    const mountedDisk = await run([
      "mount",
      "-t",
      "tmpfs",
      "-o",
      `size=${DISK_BYTES_BASE + DISK_BYTES_PER_SECOND * Math.ceil(options.durationMs / 1000)}`,
      "tmpfs",
      dataDir,
    ]);
    if (!mountedDisk.ok) {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      return {
        fault: options.fault,
        seed: options.seed,
        skipped: `cannot mount a tmpfs: ${mountedDisk.output}`,
        faultsInjected: 0,
        elapsedMs: performance.now() - started,
      };
    }
    mounted = true;
  }
  const ballast = `${dataDir}/ballast`;
  let server: ServerProcess | undefined;
  let workload: ListAppendWorkload | undefined;
  let faultsInjected = 0;
  const restart = async (env: Record<string, string> = {}) => {
    await server?.stop("SIGKILL");
    server = await startServerProcess({ dataDir, env });
  };
  try {
    const brokenEnv = { LIGHTCONE_TEST_FS_FAULT: `unsafe-delay-writes:${BROKEN_DELAY_MS}` };
    // The fsync-error cell's first server already fails an fdatasync: the 10th or later, after
    // the few that publishing needs.
    const fsyncEnv = () => ({
      LIGHTCONE_TEST_FS_FAULT: `fail-fdatasync:${Math.floor(between(10, 80))}`,
    });
    let firstEnv: Record<string, string> = {};
    if (options.fault === "broken-kill") firstEnv = brokenEnv;
    if (options.fault === "fsync-error") firstEnv = fsyncEnv();
    server = await startServerProcess({ dataDir, env: firstEnv });
    await publish(server.url, DATABASE, await fixtureBundle("elle"));
    workload = new ListAppendWorkload({
      url: () => server!.url,
      database: DATABASE,
      seed: options.seed,
      clients: options.clients,
      // Pauses outlast some calls: those end as unknown and the client moves on to a new
      // connection, while the server may still commit them after SIGCONT.
      callTimeoutMs: options.fault === "pause" ? PAUSE_CALL_TIMEOUT_MS : undefined,
    }).start();
    const deadline = Date.now() + options.durationMs;
    const remaining = () => deadline - Date.now();
    const stats = workload.stats;
    /** Waits until `predicate` holds (true) or `maxMs` passed (false). */
    const waitFor = async (predicate: () => boolean, maxMs: number) => {
      const until = Date.now() + maxMs;
      while (!predicate() && Date.now() < until) await sleep(20);
      return predicate();
    };
    switch (options.fault) {
      case "none":
        await sleep(options.durationMs);
        break;
      case "kill":
      case "broken-kill":
        // At least two kills, each after some calls were acknowledged by this server and
        // right after an acknowledgement (the moment a durability bug would lose it).
        while (remaining() > 0 || faultsInjected < 2) {
          const okBefore = stats.ok;
          await sleep(between(300, 1000));
          await waitFor(() => stats.ok >= okBefore + 10, 5000);
          const okNow = stats.ok;
          await waitFor(() => stats.ok > okNow, 2000);
          await server.stop("SIGKILL");
          await sleep(between(0, 200));
          server = await startServerProcess({
            dataDir,
            env: options.fault === "broken-kill" ? brokenEnv : {},
          });
          faultsInjected++;
          log(`  ${options.fault} ${faultsInjected}: killed and restarted`);
        }
        break;
      case "pause":
        while (remaining() > 0 || faultsInjected < 2) {
          await sleep(between(300, 1000));
          const pauseMs = between(200, 2500);
          server.child.kill("SIGSTOP");
          await sleep(pauseMs);
          server.child.kill("SIGCONT");
          faultsInjected++;
          log(`  pause ${faultsInjected}: ${pauseMs.toFixed(0)} ms`);
        }
        break;
      case "fsync-error":
        // Each round: a server whose Nth fdatasync fails; once the clients see the database
        // stop (an unknown outcome), or after a while, a restart with another N.
        for (
          let round = 0;
          remaining() > 0 || (faultsInjected < 1 && round < ROUNDS_MAX);
          round++
        ) {
          const env = round === 0 ? firstEnv : fsyncEnv();
          if (round > 0) await restart(env);
          const infoBefore = stats.info;
          const hit = await waitFor(() => stats.info > infoBefore, FAULT_SEEN_WAIT_MS);
          if (hit) faultsInjected++;
          log(
            `  fsync-error: ${env.LIGHTCONE_TEST_FS_FAULT}; ${
              hit ? "clients saw it" : "not reached"
            }`,
          );
          await sleep(between(0, 300));
        }
        await restart();
        break;
      case "disk-full":
        // Each round: a ballast file fills the disk, calls carry padding until the log needs
        // more space than is left (the clients see writes stop), then the ballast goes, the
        // server restarts, and unpadded load runs until the log has grown again.
        await waitFor(() => stats.ok >= 10, 5000);
        for (
          let round = 0;
          remaining() > 0 || (faultsInjected < 1 && round < ROUNDS_MAX);
          round++
        ) {
          await fillDisk(ballast);
          workload.setPad(DISK_PAD_BYTES);
          const infoBefore = stats.info;
          const hit = await waitFor(() => stats.info > infoBefore, FAULT_SEEN_WAIT_MS);
          if (hit) faultsInjected++;
          log(`  disk-full: disk filled; ${hit ? "clients saw writes stop" : "not reached"}`);
          workload.setPad(0);
          await sleep(between(0, 500));
          await Deno.remove(ballast);
          await restart();
          const okBefore = stats.ok;
          await waitFor(() => stats.ok >= okBefore + 20, 4000);
        }
        break;
    }
    await waitFor(() => stats.appendsOk >= APPENDS_OK_MIN, APPENDS_OK_WAIT_MS);
    await workload.stop();
    await workload.finalRead();
    const checkStarted = performance.now();
    const result = checkListAppend(workload.history);
    const checkMs = performance.now() - checkStarted;
    return {
      fault: options.fault,
      seed: options.seed,
      result,
      history: workload.history,
      stats: workload.stats,
      faultsInjected,
      elapsedMs: performance.now() - started,
      checkMs,
    };
  } finally {
    workload?.closeAll();
    await server?.stop("SIGKILL");
    if (mounted) {
      // A lingering child may still hold files open: detach lazily if a plain unmount fails.
      if (!(await run(["umount", dataDir])).ok) await run(["umount", "-l", dataDir]);
    }
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/** Writes a cell's history as JSON (one event per line) to a temporary file; returns its path. */
export async function saveHistory(cell: CellResult): Promise<string> {
  const path = await Deno.makeTempFile({
    prefix: `lightcone-elle-${cell.fault}-${cell.seed}-`,
    suffix: ".jsonl",
  });
  const lines = (cell.history ?? []).map((event) => JSON.stringify(event));
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** Reads a history written by saveHistory. */
export async function loadHistory(path: string): Promise<HistoryEvent[]> {
  const text = await Deno.readTextFile(path);
  return text.split("\n").filter((line) => line.trim() !== "").map((line, index) => {
    try {
      return JSON.parse(line) as HistoryEvent;
    } catch (error) {
      throw new SyntaxError(`Line ${index + 1} of "${path}" is not JSON: ${error}`);
    }
  });
}

/** One line per cell: counts of outcomes and anomalies. */
export function summarizeCell(cell: CellResult): string {
  if (cell.skipped) return `${cell.fault}: SKIPPED (${cell.skipped})`;
  const stats = cell.stats!;
  const result = cell.result!;
  const anomalies = Object.entries(result.counts).map(([kind, n]) => `${kind}=${n}`).join(" ");
  const unknown = [...stats.unknownReasons].sort((a, b) => b[1] - a[1]).slice(0, 3)
    .map(([reason, n]) => `${n}× ${reason}`).join("; ");
  return `${cell.fault}: seed ${cell.seed}, ${cell.faultsInjected} faults, ` +
    `${(cell.elapsedMs / 1000).toFixed(1)} s; ${stats.calls} calls (${stats.ok} ok, ` +
    `${stats.fail} failed, ${stats.info} unknown), ${stats.cacheReads} cache reads, ` +
    `${stats.connections} connections (${stats.connectFailures} failed); ${result.stats.appendsOk} acknowledged appends over ` +
    `${result.stats.keys} keys, checked in ${(cell.checkMs ?? 0).toFixed(0)} ms; ` +
    `anomalies: ${anomalies || "none"}` +
    (unknown ? `; unknown because: ${unknown}` : "");
}
