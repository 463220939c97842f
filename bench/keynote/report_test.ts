import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { parseKeynoteArgs } from "./main.ts";
import {
  bestBaselineTable,
  medianRuns,
  ratioTable,
  reportMarkdown,
  resultsTable,
} from "./report.ts";
import type { LoadSummary, SystemResult } from "./types.ts";

function load(tps: number): LoadSummary {
  const none = { refused: 0, failed: 0, timeout: 0, transport: 0 };
  return {
    committed: tps * 10,
    errors: 0,
    errorKinds: none,
    totalErrorKinds: none,
    tps,
    p50Ms: 2,
    p99Ms: 9,
    p999Ms: 12,
    maxMs: 20,
    meanMs: 3,
    perSecondTps: [],
    measuredMs: 10_000,
    totalSent: tps * 15,
    totalAcked: tps * 15,
    undrained: 0,
  };
}

function result(
  systemKey: string,
  alpha: number,
  mode: "closed" | "pipelined",
  tps: number,
  status: SystemResult["status"] = "ok",
): SystemResult {
  return {
    systemKey,
    systemName: `name of ${systemKey}`,
    alpha,
    mode,
    clientCount: 64,
    inflightPerClient: mode === "closed" ? 1 : 40,
    status,
    load: load(tps),
  };
}

Deno.test("ratioTable() divides Lightcone by each baseline, same mode and keynote-style", () => {
  const table = ratioTable([
    result("lightcone", 0, "closed", 5_000),
    result("lightcone", 0, "pipelined", 40_000),
    result("sqlite", 0, "closed", 500),
    result("sqlite", 0, "pipelined", 400),
  ]);
  const row = table.split("\n").find((line) => line.startsWith("| name of sqlite"));
  assert(row, table);
  assert(row.includes("closed: 10.0×"), row);
  assert(row.includes("pipelined: 100×"), row);
  // Keynote compares Lightcone pipelined with the baseline closed: 40,000 / 500.
  assert(row.endsWith("| 80.0× |"), row);
  assert(!table.includes("†"));
});

Deno.test("bestBaselineTable() divides by the best durable run: same mode and best of any mode", () => {
  const table = bestBaselineTable([
    result("lightcone", 0, "closed", 6_000),
    result("lightcone", 0, "pipelined", 60_000),
    result("sqlite", 0, "closed", 500),
    result("sqlite", 0, "pipelined", 400),
    result("sqlite-wal-full", 0, "closed", 3_000),
    result("sqlite-wal-full", 0, "pipelined", 2_000),
    // Not durable per commit: faster, but never the denominator.
    result("sqlite-wal", 0, "closed", 7_000),
    result("sqlite-wal", 0, "pipelined", 7_500),
  ]);
  const rows = table.split("\n").filter((line) => line.startsWith("| 0 |"));
  assertEquals(rows.length, 3, table);
  assert(rows[0].includes("closed vs closed") && rows[0].endsWith("| 3,000 | 2.00× |"), rows[0]);
  assert(rows[0].includes("name of sqlite-wal-full (closed)"), rows[0]);
  assert(
    rows[1].includes("pipelined vs pipelined") && rows[1].endsWith("| 2,000 | 30.0× |"),
    rows[1],
  );
  // The mixed ratio uses the baseline's best run in any mode (its closed run here).
  assert(rows[2].includes("best of any mode") && rows[2].endsWith("| 3,000 | 20.0× |"), rows[2]);
  assert(!table.includes("name of sqlite-wal "), "a non-durable baseline is not a denominator");
});

Deno.test("ratioTable() marks a ratio whose Lightcone run failed its balance check", () => {
  const table = ratioTable([
    result("lightcone", 1.5, "closed", 3_000, "failed"),
    result("pg", 1.5, "closed", 300),
  ]);
  assert(table.includes("closed: 10.0× †"), table);
});

Deno.test("resultsTable() shows one row per run with TPS, latency and the check", () => {
  const ok = result("pg", 0, "closed", 1234.4);
  ok.balance = {
    ok: true,
    rowCount: 100_000,
    sum: 1,
    expectedSum: 1,
    changedCount: 7,
    mismatchCount: 0,
    problems: [],
  };
  const failed: SystemResult = { ...result("sqlite", 0, "closed", 0), load: undefined };
  failed.status = "failed";
  failed.reason = "server | crashed";
  const table = resultsTable([ok, failed]);
  const lines = table.split("\n");
  assertEquals(lines.length, 4);
  assert(lines[2].includes("**1,234**"), lines[2]);
  assert(lines[2].includes("ok (100,000 rows, 7 changed)"), lines[2]);
  assert(lines[3].includes("server \\| crashed"), lines[3]);
});

Deno.test("reportMarkdown() names the machine, versions and contention", () => {
  const text = reportMarkdown(
    {
      cpuCount: 2,
      cpuModel: "Test CPU",
      memoryGib: 4,
      os: "TestOS",
      kernel: "1.0",
      deno: "9.9.9",
      node: "v20.0.0",
    },
    {
      date: "2026-01-01T00:00:00Z",
      warmupMs: 5000,
      measureMs: 10000,
      clientCount: 64,
      inflightPipelined: 40,
      accountCount: 100_000,
      initialBalance: 1_000_000_000,
      seed: 1,
      reps: 1,
      pairCount: 1024,
      hottestShareByAlpha: { "0": 0, "1.5": 0.633 },
      command: "deno task bench:keynote",
    },
    [result("sqlite", 1.5, "closed", 100)],
  );
  assert(text.startsWith("## Keynote transfer benchmark, 2026-01-01T00:00:00Z"));
  assert(text.includes("2 × Test CPU, 4 GiB RAM"));
  assert(text.includes("Deno 9.9.9, Node v20.0.0"));
  assert(text.includes("α=1.5: 63.3 %"));
});

Deno.test("parseKeynoteArgs() has laptop-short defaults and rejects unknown systems", () => {
  const options = parseKeynoteArgs([], "/repo");
  assertEquals(options.warmupMs, 5000);
  assertEquals(options.measureMs, 10_000);
  assertEquals(options.alphas, [0, 1.5]);
  assertEquals(options.modes, ["closed", "pipelined"]);
  assertEquals(options.systems, ["lightcone", "sqlite", "sqlite-wal-full", "pg"]);
  assertEquals(options.resultsPath, "/repo/bench/RESULTS.md");
  const longer = parseKeynoteArgs(
    ["--measure-s", "300", "--systems", "sqlite,pg-immediate", "--no-append"],
    "/repo",
  );
  assertEquals(longer.measureMs, 300_000);
  assertEquals(longer.systems, ["sqlite", "pg-immediate"]);
  assertEquals(longer.resultsPath, null);
  throws(() => parseKeynoteArgs(["--systems", "mysql"], "/repo"), RangeError);
  throws(() => parseKeynoteArgs(["--modes", "open"], "/repo"), RangeError);
  throws(() => parseKeynoteArgs(["--measure-s", "0"], "/repo"), RangeError);
});

Deno.test("medianRuns() keeps the median repetition and lists every run's TPS", () => {
  const rows = medianRuns([
    result("pg", 0, "closed", 900),
    result("sqlite", 0, "closed", 500),
    result("pg", 0, "closed", 1200),
    result("pg", 0, "closed", 1000),
    result("sqlite", 0, "closed", 450, "failed"),
  ]);
  assertEquals(rows.map((row) => row.systemKey), ["pg", "sqlite"]);
  assertEquals(rows[0].load?.tps, 1000);
  assertEquals(rows[0].runTps, [900, 1200, 1000]);
  assertEquals(rows[0].status, "ok");
  // A failed repetition fails the row.
  assertEquals(rows[1].status, "failed");
  assertEquals(rows[1].load?.tps, 450);
  assert(resultsTable(rows).includes("**1,000** (900, 1,200, 1,000)"));
});
