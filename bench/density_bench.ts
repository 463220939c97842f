/**
 * Many small databases on one server (issue #14 "Density"): memory per idle database,
 * hibernated and awake, and what waking one costs, with nothing lost while it wakes.
 *
 *   deno run -A bench/density_bench.ts [--databases 1000] [--rows 300] [--wakes 200]
 *       [--publish-concurrency 4] [--hibernate-after-s 3] [--awake-sample 10] [--warm-spare]
 *
 * Estimate first: an awake database is one `deno` process, ~100-120 MiB RSS idle
 * (bench/RESULTS.md "Isolation cost"), so 1,000 awake would need ~110 GiB and cannot fit this
 * 24 GiB machine; hibernated, it should cost only the server's bookkeeping for it (its
 * Database object, metrics histograms, log buffer, a few hundred bytes of control data: tens
 * of KiB). A wake is one process start from a prepared bundle plus a snapshot load: ~0.2 s on an
 * idle 2-core machine, more when other work competes. Publishing is one process start per
 * database (~0.3 s), so 1,000 take ~2-5 minutes with a few in parallel.
 *
 * Phases: (1) start a server process (real data directory, fsync on) and read its RSS;
 * (2) publish `--databases` copies of bench/density_module, each seeded with `--rows` messages
 * in one call, `--publish-concurrency` at a time (each hibernates `--hibernate-after-s` after
 * its last call); (3) once all are hibernated: server RSS and database processes (none);
 * (4) `--wakes` sequential wakes of random hibernated databases, each by 5 concurrent
 * `send_message` calls plus a SQL count that must see every row (a lost or failed request is
 * counted); (5) `--awake-sample` databases woken together: RSS of their processes.
 */
import { parseArgs } from "node:util";
import { bundleModule } from "../tests/support/describe_module.ts";
import { call, startServerProcess } from "../tests/support/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    databases: { type: "string", default: "1000" },
    rows: { type: "string", default: "300" },
    wakes: { type: "string", default: "200" },
    "publish-concurrency": { type: "string", default: "4" },
    "hibernate-after-s": { type: "string", default: "3" },
    "awake-sample": { type: "string", default: "10" },
    "warm-spare": { type: "boolean", default: false },
  },
});
const databaseCount = Number(values.databases);
const rowCount = Number(values.rows);
const wakeCount = Math.min(Number(values.wakes), databaseCount);
const publishConcurrency = Number(values["publish-concurrency"]);
const hibernateAfterS = Number(values["hibernate-after-s"]);
const awakeSample = Math.min(Number(values["awake-sample"]), databaseCount);
const CALLS_DURING_WAKE = 5;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function statusKib(pid: number, field: string): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Pids of the database processes the server started (its children running worker_main.ts). */
function databasePids(serverPid: number): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.split(") ")[1].split(" ")[1]);
      if (ppid !== serverPid) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes("worker_main.ts")) pids.push(Number(entry.name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function metricsText(url: string): Promise<string> {
  return await (await fetch(`${url}/v1/metrics`)).text();
}

function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      sum += Number(line.split(" ").at(-1));
    }
  }
  return sum;
}

async function sqlCount(url: string, database: string): Promise<number> {
  const response = await fetch(`${url}/v1/database/${database}/sql`, {
    method: "POST",
    body: "SELECT * FROM message",
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`sql on ${database}: ${response.status} ${text}`);
  return JSON.parse(text)[0].rows.length;
}

const bundle = await bundleModule(new URL("./density_module/index.ts", import.meta.url).pathname);
const server = await startServerProcess({
  args: [
    "--hibernate-after-s",
    String(hibernateAfterS),
    "--max-databases",
    String(databaseCount + 10),
    "--max-databases-per-identity",
    String(databaseCount + 10),
    "--log-format",
    "json",
    ...(values["warm-spare"] ? ["--warm-spare"] : []),
  ],
});
const serverPid = server.child.pid;
const names = Array.from({ length: databaseCount }, (_, i) => `chat-${i}`);
const expectedRows = new Map<string, number>();
let lost = 0;
const startedAt = performance.now();
try {
  await sleep(500);
  const baseServerKib = statusKib(serverPid, "VmRSS");
  const baseHeapBytes = metricSum(
    await metricsText(server.url),
    "lightcone_server_heap_used_bytes",
  );

  // (2) publish and seed
  let next = 0;
  let peakAwake = 0;
  const publishMs: number[] = [];
  await Promise.all(Array.from({ length: publishConcurrency }, async () => {
    while (next < names.length) {
      const name = names[next++];
      const started = performance.now();
      const response = await fetch(`${server.url}/v1/database/${name}?host_type=Js`, {
        method: "PUT",
        body: bundle,
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`publish ${name}: ${response.status} ${text}`);
      publishMs.push(performance.now() - started);
      const seeded = await call(server.url, name, "seed", [rowCount, name]);
      if (seeded.status !== 200) throw new Error(`seed ${name}: ${seeded.status} ${seeded.text}`);
      expectedRows.set(name, rowCount);
      if (next % 50 === 0) {
        const awake = databasePids(serverPid).length;
        peakAwake = Math.max(peakAwake, awake);
        console.error(`published ${next}/${databaseCount}, ${awake} awake`);
      }
    }
  }));
  const publishS = (performance.now() - startedAt) / 1000;

  // (3) everything hibernated
  const hibernationDeadline = Date.now() + 120_000 + hibernateAfterS * 1000;
  for (;;) {
    const hibernated = metricSum(await metricsText(server.url), "lightcone_database_hibernated");
    // With --warm-spare one process is the spare, not a database.
    const spares = values["warm-spare"] ? 1 : 0;
    if (hibernated === databaseCount && databasePids(serverPid).length <= spares) break;
    if (Date.now() > hibernationDeadline) {
      throw new Error(`only ${hibernated} of ${databaseCount} databases hibernated`);
    }
    await sleep(500);
  }
  await sleep(1000);
  const hibernatedServerKib = statusKib(serverPid, "VmRSS");
  const hibernatedHeapBytes = metricSum(
    await metricsText(server.url),
    "lightcone_server_heap_used_bytes",
  );
  const processesWhileHibernated = databasePids(serverPid).length;
  const hibernatedPerDatabaseKib = (hibernatedServerKib - baseServerKib) / databaseCount;

  // (4) wakes: 5 calls + a count, at once, against a hibernated database
  const wakeMs: number[] = [];
  const order = [...names].sort(() => Math.random() - 0.5).slice(0, wakeCount);
  for (const name of order) {
    const started = performance.now();
    const calls = Array.from(
      { length: CALLS_DURING_WAKE },
      (_, i) => call(server.url, name, "send_message", [`during wake ${i}`]),
    );
    const results = await Promise.all(calls);
    wakeMs.push(performance.now() - started);
    const committed = results.filter((result) => result.status === 200).length;
    lost += CALLS_DURING_WAKE - committed;
    expectedRows.set(name, expectedRows.get(name)! + committed);
    const rows = await sqlCount(server.url, name);
    if (rows !== expectedRows.get(name)) {
      lost += Math.abs(expectedRows.get(name)! - rows);
      console.error(`${name}: ${rows} rows, expected ${expectedRows.get(name)}`);
    }
  }
  const metrics = await metricsText(server.url);
  const serverWakeCount = metricSum(metrics, "lightcone_database_wakes_total");
  const serverWakeSumS = metricSum(metrics, "lightcone_database_wake_seconds_sum");

  // (5) awake memory: wake a sample together, read their processes' RSS once all are up
  const sample = names.filter((name) => !order.includes(name)).slice(0, awakeSample);
  const awakeFrom = sample.length === awakeSample ? sample : names.slice(0, awakeSample);
  await Promise.all(awakeFrom.map((name) => sqlCount(server.url, name)));
  await sleep(300);
  const awakePids = databasePids(serverPid);
  const awakeRssKib = awakePids.map((pid) => statusKib(pid, "VmRSS"));
  const awakeServerKib = statusKib(serverPid, "VmRSS");

  const report = {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    machine: `${navigator.hardwareConcurrency} cores, ${
      Math.round(statusKibOfMachine() / 1024 / 1024)
    } GiB`,
    databases: databaseCount,
    rowsPerDatabase: rowCount,
    hibernateAfterS,
    warmSpare: values["warm-spare"],
    publishAndSeedS: Number(publishS.toFixed(1)),
    publishMs: {
      p50: Math.round(percentile(publishMs, 0.5)),
      p99: Math.round(percentile(publishMs, 0.99)),
    },
    peakAwakeDuringPublish: peakAwake,
    serverRssMiB: {
      empty: Number((baseServerKib / 1024).toFixed(1)),
      allHibernated: Number((hibernatedServerKib / 1024).toFixed(1)),
      withSampleAwake: Number((awakeServerKib / 1024).toFixed(1)),
    },
    processesWhileAllHibernated: processesWhileHibernated,
    hibernatedKiBPerDatabase: Number(hibernatedPerDatabaseKib.toFixed(1)),
    // V8 heap in use on the server's main thread per hibernated database: what it holds;
    // the RSS figure above also counts heap the server grew while publishing and keeps.
    hibernatedHeapKiBPerDatabase: Number(
      ((hibernatedHeapBytes - baseHeapBytes) / 1024 / databaseCount).toFixed(1),
    ),
    awakeDatabaseProcessRssMiB: {
      count: awakeRssKib.length,
      median: Number((percentile(awakeRssKib, 0.5) / 1024).toFixed(1)),
      max: Number((Math.max(...awakeRssKib) / 1024).toFixed(1)),
    },
    wakes: {
      count: wakeMs.length,
      clientMs: {
        p50: Math.round(percentile(wakeMs, 0.5)),
        p99: Math.round(percentile(wakeMs, 0.99)),
        max: Math.round(Math.max(...wakeMs)),
      },
      serverMeanMs: serverWakeCount ? Math.round(serverWakeSumS / serverWakeCount * 1000) : null,
      callsDuringWake: wakeMs.length * CALLS_DURING_WAKE,
      lostOrFailed: lost,
    },
    totalS: Number(((performance.now() - startedAt) / 1000).toFixed(1)),
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  await server.stop();
  await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
}

function statusKibOfMachine(): number {
  const meminfo = Deno.readTextFileSync("/proc/meminfo");
  return Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0);
}
