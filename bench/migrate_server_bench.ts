/**
 * A migration on the real server: a database with 1,000,000 rows (`accounts(id u32, balance
 * i64)`) is republished with `age u32 default 18`. Measures the publish (probe, new process
 * replaying the log, the migration, its durable record), the new database process's peak RSS
 * (VmHWM), and a restart afterwards (the log replays the migration again).
 * Estimate: replay ~130k tx/s but here 20 big transactions, ~2-4 s; migration ~3 s (see
 * bench/migrate_bench.ts); peak ~2 × the table plus the runtime (~0.5 GiB).
 *
 *   deno run -A --unstable-worker-options bench/migrate_server_bench.ts [rows]
 */
import { call, fixtureBundle, publish, startTestServer } from "../tests/support/server.ts";
import { databaseProcesses, statusKb } from "../tests/support/proc.ts";

const rowCount = Number(Deno.args[0] ?? 1_000_000);
const batch = 50_000;
const [v1, v2] = await Promise.all(["migrate_big_v1", "migrate_big_v2"].map(fixtureBundle));
let server = await startTestServer({ databaseMemoryMb: 1024 });
try {
  const owner = await publish(server.url, "big", v1);
  const seedStart = performance.now();
  for (let from = 0; from < rowCount; from += batch) {
    const count = Math.min(batch, rowCount - from);
    const answer = await call(server.url, "big", "seed", [from, count], owner.token);
    if (answer.status !== 200) throw new Error(`seed failed: ${answer.text}`);
  }
  const seedMs = performance.now() - seedStart;
  const before = new Set(databaseProcesses());
  const auth = { authorization: `Bearer ${owner.token}` };
  const pre = await (await fetch(`${server.url}/v1/database/big/pre_publish`, {
    method: "POST",
    body: v2,
    headers: auth,
  })).json();
  const started = performance.now();
  const response = await fetch(
    `${server.url}/v1/database/big?host_type=Js&policy=BreakClients&token=${pre.AutoMigrate.token}`,
    { method: "PUT", body: v2, headers: auth },
  );
  const text = await response.text();
  const publishMs = performance.now() - started;
  if (response.status !== 200) throw new Error(`publish failed: ${text}`);
  const fresh = databaseProcesses().filter((pid) => !before.has(pid));
  const peakKb = Math.max(...fresh.map((pid) => statusKb(pid, "VmHWM") ?? 0));
  await server.close({ keepData: true });
  const restartStart = performance.now();
  server = await startTestServer({ dataDir: server.dataDir, databaseMemoryMb: 1024 });
  const restartMs = performance.now() - restartStart;
  const check = await fetch(`${server.url}/v1/database/big/sql`, {
    method: "POST",
    body: "SELECT * FROM accounts WHERE id = 7",
    headers: auth,
  });
  const rows = JSON.parse(await check.text())[0].rows;
  if (JSON.stringify(rows) !== "[[7,100,18]]") {
    throw new Error(`unexpected row ${JSON.stringify(rows)}`);
  }
  console.log(JSON.stringify({
    bench: "server migration, add column with default",
    rows: rowCount,
    seedMs: Math.round(seedMs),
    publishMs: Math.round(publishMs),
    newProcessPeakRssMiB: Math.round(peakKb / 1024),
    restartWithReplayMs: Math.round(restartMs),
    deno: Deno.version.deno,
  }));
} finally {
  await server.close();
}
