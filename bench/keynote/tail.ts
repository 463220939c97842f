/**
 * Tail latency of the keynote load on Lightcone, update-only vs append-heavy, over calls in flight.
 *
 * The load is the plain SDK shape: one process, `--clients` SDK connections (64), N reducer calls
 * outstanding on each, the next call sent from the previous one's `.then` (driver.mjs). For every
 * N in `--inflight` and every variant in `--variants`, one measured run on a fresh server:
 *   update  `transfer`: two account rows updated (the keynote)
 *   append  `transfer_logged`: the same, plus one auto-increment `ledger` row per call, so a table
 *           grows by ~TPS × (warm-up + window) rows during the run
 *   echo, relay, durable  the same load shape (raw WebSocket messages) against a server that does
 *           nothing (bench/keynote/floor.ts): the floor this machine sets for p99 ÷ p50
 * Runs alternate (variant inside N inside repetition) so before/after comparisons made in one
 * sitting see the same machine. Prints a markdown table (TPS, p50/p99/p999/max, p99 ÷ p50, CPU
 * per transfer by process) and appends it to bench/RESULTS.md unless `--no-append`.
 *
 *   deno task bench:tail [--inflight 1,5,20,40] [--variants update,append] [--warmup-s 3]
 *     [--measure-s 15] [--reps 1] [--clients 64] [--alpha 0] [--accounts 100000] [--no-append]
 *     [--label TEXT] [--ledger-rows 1000000] [--snapshot-interval-tx 250000]
 *
 * The append variant starts with `--ledger-rows` rows already in the ledger, and both variants run
 * the server with `--snapshot-interval-tx` (default 250,000: several snapshots of the large table
 * inside one window, where the server default of 1,000,000 takes one every ~10 s at this load).
 */
import { parseArgs } from "node:util";
import { type KeynoteVariant, runLightcone } from "./lightcone_side.ts";
import { stopTrackedChildren } from "./children.ts";
import { FLOOR_MODES, type FloorMode, runFloor } from "./floor.ts";
import type { RunOptions, SystemResult } from "./types.ts";
import {
  ACCOUNT_COUNT_DEFAULT,
  encodePairs,
  generatePairs,
  INITIAL_BALANCE,
  TRANSFER_AMOUNT,
} from "./workload.ts";

/** A Lightcone variant, or a do-nothing floor server (bench/keynote/floor.ts) under the same load. */
type TailVariant = KeynoteVariant | FloorMode;

function isFloor(variant: TailVariant): variant is FloorMode {
  return (FLOOR_MODES as readonly string[]).includes(variant);
}

interface TailRow {
  variant: TailVariant;
  inflight: number;
  result: SystemResult;
}

function list(text: string): string[] {
  return text.split(",").map((part) => part.trim()).filter((part) => part.length > 0);
}

function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`--${name} must be a positive number, got '${text}'`);
  }
  return value;
}

function fixed(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "-";
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** µs of CPU per acknowledged transfer for each watched process tree. */
function cpuPerTransfer(result: SystemResult): string {
  const tps = result.load?.tps ?? 0;
  const percent = result.cpu?.processPercent;
  if (!percent || tps <= 0) return "-";
  const parts: string[] = [];
  for (const [name, value] of Object.entries(percent)) {
    if (value === null) continue;
    parts.push(`${name} ${((value / 100) * 1e6 / tps).toFixed(1)}`);
  }
  const machine = result.cpu?.machine;
  if (machine) parts.push(`machine ${machine.busyPercent.toFixed(0)} % busy`);
  return parts.join(", ");
}

export function tailTable(rows: TailRow[]): string {
  const lines = [
    "| variant | clients × in flight | TPS | p50 ms | p99 ms | p999 ms | max ms | p99 ÷ p50 | errors | CPU µs per transfer (client, server incl. database process) |",
    "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --- |",
  ];
  for (const { variant: key, inflight, result } of rows) {
    const variant = isFloor(key) ? `floor: ${key}` : key;
    const load = result.load;
    if (!load || result.status !== "ok") {
      lines.push(
        `| ${variant} | ${result.clientCount} × ${inflight} | failed: ${
          (result.reason ?? "").replaceAll("|", "/").slice(0, 120)
        } | | | | | | | |`,
      );
      continue;
    }
    lines.push(
      `| ${variant} | ${result.clientCount} × ${inflight} | ${
        Math.round(load.tps).toLocaleString("en-US")
      } | ${fixed(load.p50Ms)} | ${fixed(load.p99Ms)} | ${fixed(load.p999Ms)} | ${
        fixed(load.maxMs)
      } | ${(load.p99Ms / load.p50Ms).toFixed(1)} | ${load.errors} | ${cpuPerTransfer(result)} |`,
    );
  }
  return lines.join("\n");
}

/** µs of CPU per acknowledged transfer by thread ("db main" = the database process's thread). */
export function threadLine(result: SystemResult): string {
  const tps = result.load?.tps ?? 0;
  const threads = result.cpu?.threadPercent;
  if (!threads || tps <= 0) return "";
  const parts: string[] = [];
  for (const [process, perThread] of Object.entries(threads)) {
    const named = Object.entries(perThread).sort((a, b) => b[1] - a[1])
      .filter(([, percent]) => (percent * 10_000) / tps >= 0.5)
      .map(([thread, percent]) => `${thread} ${((percent * 10_000) / tps).toFixed(1)}`);
    if (named.length) parts.push(`${process}: ${named.join(", ")}`);
  }
  return parts.join("; ");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      inflight: { type: "string", default: "1,5,20,40" },
      variants: { type: "string", default: "update,append" },
      "warmup-s": { type: "string", default: "3" },
      "measure-s": { type: "string", default: "15" },
      reps: { type: "string", default: "1" },
      clients: { type: "string", default: "64" },
      alpha: { type: "string", default: "0" },
      accounts: { type: "string", default: String(ACCOUNT_COUNT_DEFAULT) },
      results: { type: "string", default: "bench/RESULTS.md" },
      "no-append": { type: "boolean", default: false },
      label: { type: "string", default: "" },
      "ledger-rows": { type: "string", default: "1000000" },
      "snapshot-interval-tx": { type: "string", default: "250000" },
    },
    strict: true,
  });
  const inflights = list(values.inflight).map((text) => Math.floor(positive("inflight", text)));
  const variants = list(values.variants).map((text) => {
    if (text !== "update" && text !== "append" && !isFloor(text as TailVariant)) {
      throw new RangeError(
        `--variants takes update, append, ${FLOOR_MODES.join(", ")} (floor servers), got '${text}'`,
      );
    }
    return text as TailVariant;
  });
  const repoRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const accountCount = Math.floor(positive("accounts", values.accounts));
  const alpha = Number(values.alpha);
  const pairs = generatePairs({ alpha, seed: 1, accountCount });
  const workDir = await Deno.makeTempDir({ prefix: "keynote-tail-" });
  const pairsPath = `${workDir}/pairs.bin`;
  await Deno.writeFile(pairsPath, encodePairs(pairs));
  const rows: TailRow[] = [];
  const startedAt = new Date().toISOString();
  try {
    for (let rep = 0; rep < Math.floor(positive("reps", values.reps)); rep++) {
      for (const inflight of inflights) {
        for (const variant of variants) {
          const runDir = await Deno.makeTempDir({ dir: workDir, prefix: `${variant}-` });
          const run: RunOptions = {
            alpha,
            mode: inflight === 1 ? "closed" : "pipelined",
            clientCount: Math.floor(positive("clients", values.clients)),
            inflightPerClient: inflight,
            warmupMs: positive("warmup-s", values["warmup-s"]) * 1000,
            measureMs: positive("measure-s", values["measure-s"]) * 1000,
            timeoutMs: 15_000,
            accountCount,
            initialBalance: INITIAL_BALANCE,
            amount: TRANSFER_AMOUNT,
            pairs,
            pairsPath,
            workDir: runDir,
            repoRoot,
            serverArgs: ["--snapshot-interval-tx", values["snapshot-interval-tx"]],
            ledgerRows: variant === "append" ? Number(values["ledger-rows"]) : 0,
          };
          let result: SystemResult;
          try {
            result = isFloor(variant)
              ? await runFloor({
                mode: variant,
                clientCount: run.clientCount,
                inflightPerClient: inflight,
                warmupMs: run.warmupMs,
                measureMs: run.measureMs,
                workDir: runDir,
              })
              : await runLightcone(run, "sdk", variant);
          } catch (error) {
            result = {
              systemKey: variant,
              systemName: variant,
              alpha,
              mode: run.mode,
              clientCount: run.clientCount,
              inflightPerClient: inflight,
              status: "failed",
              reason: error instanceof Error ? error.message : String(error),
            };
          }
          rows.push({ variant, inflight, result });
          const load = result.load;
          console.error(
            `${variant} 64×${inflight}: ${result.status} ${Math.round(load?.tps ?? 0)} TPS p50 ${
              fixed(load?.p50Ms)
            } p99 ${fixed(load?.p99Ms)} p999 ${fixed(load?.p999Ms)} max ${fixed(load?.maxMs)} ${
              result.reason ?? ""
            }${
              load?.errors
                ? ` errors ${JSON.stringify(load.errorKinds)} first: ${load.firstError ?? "-"}`
                : ""
            }`,
          );
          const threads = threadLine(result);
          if (threads) console.error(`  CPU µs per transfer by thread: ${threads}`);
          await Deno.remove(runDir, { recursive: true }).catch(() => {});
        }
      }
    }
  } finally {
    await stopTrackedChildren();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }
  const git = new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], cwd: repoRoot });
  const commit = new TextDecoder().decode((await git.output()).stdout).trim();
  const header = [
    `## Keynote tail, update-only vs append-heavy (bench/keynote/tail.ts), ${startedAt}${
      values.label ? ` — ${values.label}` : ""
    }`,
    "",
    `Deno ${Deno.version.deno}, commit ${commit}, ${Deno.osRelease()}; load average at the end ${
      Deno.loadavg().map((value) => value.toFixed(2)).join(" ")
    }. Command: \`deno task bench:tail ${
      Deno.args.join(" ")
    }\`. α=${alpha}, ${accountCount} accounts, ${values["warmup-s"]} s warm-up, ${
      values["measure-s"]
    } s measured per run, official SDK, confirmed reads (floor rows: raw WebSocket, bench/keynote/floor.ts); ledger starts with ${
      values["ledger-rows"]
    } rows (append); server \`--snapshot-interval-tx ${values["snapshot-interval-tx"]}\`.`,
    "",
  ].join("\n");
  const markdown = header + tailTable(rows) + "\n";
  console.log(markdown);
  if (!values["no-append"]) {
    await Deno.writeTextFile(`${repoRoot}/${values.results}`, "\n" + markdown, { append: true });
  }
}
