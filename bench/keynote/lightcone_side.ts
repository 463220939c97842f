/**
 * The Lightcone side of the keynote benchmark: start a Lightcone server on a scratch data dir,
 * publish bench/keynote/module with our CLI, seed the accounts, open `clientCount` connections with
 * the official `spacetimedb` SDK (DbConnection over WebSocket, confirmed reads on, no compression,
 * as keynote-2's client), and drive them with the same load driver as the baselines
 * (driver.mjs): each client keeps `inflightPerClient` reducer calls outstanding, a call counts when
 * its promise resolves (with confirmed reads, after the transaction is durable). Afterwards the
 * balances are read back over the SQL HTTP API and checked like every other system's.
 *
 * Entry point for the orchestrator: `runLightcone(options) -> SystemResult`. The pieces are
 * exported so they can be replaced one by one: `deployLightcone` (server + publish + seed),
 * `connectLightconeClients` (SDK connections and the transfer call), `readLightconeBalances`.
 */
import {
  DbConnectionBuilder,
  type DbConnectionConfig,
  DbConnectionImpl,
  reducers,
  reducerSchema,
  SenderError,
  setGlobalLogLevel,
  t,
} from "spacetimedb";
import { type AccountRow, checkBalances } from "./balance_check.ts";
import { trackChild } from "./children.ts";
import { type Outcome, runLoad } from "./driver.mjs";
import { startCpuSample } from "./proc_cpu.mjs";
import { connectRawClients } from "./raw_client.ts";
import type { RunOptions, SystemResult } from "./types.ts";

export const LIGHTCONE_DATABASE_NAME = "keynote";
const SERVER_READY_TIMEOUT_MS = 60_000;
const SERVER_STOP_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 60_000;
/** Accounts inserted per `seed` reducer call (one transaction each). */
const SEED_CHUNK = 10_000;
/** Ledger rows inserted per `seed_ledger` call. */
const LEDGER_SEED_CHUNK = 50_000;
const SDK_VERSION = "2.8.3";

/** A running Lightcone server with the keynote module published and seeded. */
export interface LightconeDeployment {
  url: string;
  databaseName: string;
  /** The server process (its database processes are its children). */
  pid: number;
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

/** Open SDK connections; `transfer` calls the reducer over connection `client`. */
export interface LightconeClients {
  transfer(client: number, from: number, to: number, amount: number): Promise<Outcome>;
  close(): Promise<void>;
}

async function runChecked(args: string[], env: Record<string, string>): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`'deno ${args.join(" ")}' failed: ${text.trim()}`);
  return text;
}

/** Starts `main.ts start` on port 0 in `options.workDir`, publishes the module, seeds accounts. */
export async function deployLightcone(options: RunOptions): Promise<LightconeDeployment> {
  const dataDir = `${options.workDir}/lightcone-data`;
  const child = trackChild(new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-worker-options",
      // Extra Deno flags for the server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it.
      ...(Deno.env.get("KEYNOTE_SERVER_DENO_FLAGS") ?? "").split(/\s+/).filter((flag) => flag),
      `${options.repoRoot}/main.ts`,
      "start",
      "--listen-addr",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
      ...(options.serverArgs ?? []),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn());
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
    await Promise.race([
      status,
      new Promise((resolve) => timer = setTimeout(resolve, SERVER_STOP_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      child.kill("SIGKILL");
      await status;
    }
  };
  try {
    const url = await readListeningUrl(child.stdout);
    const env = { LIGHTCONE_CLI_CONFIG: `${options.workDir}/lightcone-cli.json` };
    await runChecked([
      "run",
      "-A",
      `${options.repoRoot}/main.ts`,
      "publish",
      "--project-path",
      `${options.repoRoot}/bench/keynote/module`,
      "--server",
      url,
      "--yes",
      LIGHTCONE_DATABASE_NAME,
    ], env);
    for (let first = 0; first < options.accountCount; first += SEED_CHUNK) {
      const count = Math.min(SEED_CHUNK, options.accountCount - first);
      const response = await fetch(`${url}/v1/database/${LIGHTCONE_DATABASE_NAME}/call/seed`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify([first, count, options.initialBalance]),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`Seeding accounts failed (${response.status}): ${text}`);
    }
    for (let done = 0; done < (options.ledgerRows ?? 0); done += LEDGER_SEED_CHUNK) {
      const count = Math.min(LEDGER_SEED_CHUNK, options.ledgerRows! - done);
      const response = await fetch(
        `${url}/v1/database/${LIGHTCONE_DATABASE_NAME}/call/seed_ledger`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify([count]),
        },
      );
      const text = await response.text();
      if (!response.ok) throw new Error(`Seeding the ledger failed (${response.status}): ${text}`);
    }
    const version = await runChecked(["run", "-A", `${options.repoRoot}/main.ts`, "--version"], {});
    return {
      url,
      databaseName: LIGHTCONE_DATABASE_NAME,
      pid: child.pid,
      info: { lightcone: version.trim().replace(/^lightcone\s+/, ""), sdk: SDK_VERSION },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Reads stdout until the "lightcone: listening on URL" line, then keeps draining it. */
async function readListeningUrl(stdout: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Lightcone did not listen within ${SERVER_READY_TIMEOUT_MS} ms`)),
      SERVER_READY_TIMEOUT_MS,
    );
  });
  try {
    for (;;) {
      const match = /lightcone: listening on (\S+)/.exec(buffered);
      if (match) {
        (async () => {
          try {
            while (!(await reader.read()).done) { /* discard */ }
          } catch {
            // The process went away.
          }
        })();
        return match[1];
      }
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk.done) throw new Error("Lightcone exited before it listened");
      buffered += chunk.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The client-side view of the keynote module: only the transfer reducer (no subscriptions). */
const KEYNOTE_REDUCERS = reducers(
  reducerSchema("transfer", { from: t.u32(), to: t.u32(), amount: t.i64() }),
  reducerSchema("transfer_logged", { from: t.u32(), to: t.u32(), amount: t.i64() }),
);

/**
 * "update": `transfer` updates two account rows (the keynote). "append": `transfer_logged` also
 * inserts one auto-increment `ledger` row per call, so a table grows by millions of rows.
 */
export type KeynoteVariant = "update" | "append";
const KEYNOTE_REMOTE_MODULE = {
  versionInfo: { cliVersion: SDK_VERSION },
  tables: {},
  reducers: KEYNOTE_REDUCERS.reducersType.reducers,
  procedures: [],
} as const;

class KeynoteConnection extends DbConnectionImpl<typeof KEYNOTE_REMOTE_MODULE> {
  static builder(): DbConnectionBuilder<KeynoteConnection> {
    return new DbConnectionBuilder<KeynoteConnection>(
      KEYNOTE_REMOTE_MODULE,
      (config: DbConnectionConfig<typeof KEYNOTE_REMOTE_MODULE>) => new KeynoteConnection(config),
    );
  }
}

function connectOne(url: string, databaseName: string): Promise<KeynoteConnection> {
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined = undefined;
    KeynoteConnection.builder()
      .withUri(url)
      .withDatabaseName(databaseName)
      .withCompression("none")
      .withConfirmedReads(true)
      .onConnect((connection) => {
        clearTimeout(timer);
        resolve(connection);
      })
      .onConnectError((_ctx, error) => {
        clearTimeout(timer);
        reject(error);
      })
      .build();
    timer = setTimeout(
      () => reject(new Error(`No SDK connection within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
  });
}

/** Opens `clientCount` SDK connections (all of them before the clock starts). */
export async function connectLightconeClients(
  deployment: LightconeDeployment,
  clientCount: number,
  variant: KeynoteVariant = "update",
): Promise<LightconeClients> {
  // One "Connecting..." info line per connection is noise at 64 connections.
  setGlobalLogLevel("warn");
  const connections: KeynoteConnection[] = [];
  try {
    for (let i = 0; i < clientCount; i++) {
      connections.push(await connectOne(deployment.url, deployment.databaseName));
    }
  } catch (error) {
    for (const connection of connections) connection.disconnect();
    throw error;
  }
  let failureLogged = false;
  return {
    transfer(client, from, to, amount) {
      const reducers = connections[client].reducers;
      const args = { from, to, amount: BigInt(amount) };
      const call = variant === "append" ? reducers.transferLogged(args) : reducers.transfer(args);
      return call.then(
        (): Outcome => "ok",
        (error): Outcome => {
          if (error instanceof SenderError) return "refused";
          // The first failure's text, once per run: the error counts alone do not say why.
          if (!failureLogged) {
            failureLogged = true;
            console.error(
              `first failed transfer: ${error instanceof Error ? error.message : error}`,
            );
          }
          return "failed";
        },
      );
    },
    close() {
      for (const connection of connections) connection.disconnect();
      return Promise.resolve();
    },
  };
}

/** Every account row, through the SQL HTTP API (`POST /v1/database/:name/sql`). */
export async function readLightconeBalances(
  deployment: LightconeDeployment,
): Promise<AccountRow[]> {
  const response = await fetch(`${deployment.url}/v1/database/${deployment.databaseName}/sql`, {
    method: "POST",
    // accounts is (id, balance): `*` returns the same columns in that order.
    body: "SELECT * FROM accounts",
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`Reading balances over SQL failed (${response.status}): ${text}`);
  }
  const statements = JSON.parse(text) as Array<{ rows: Array<[number, number | string]> }>;
  return statements[0].rows.map(([id, balance]) => ({ id: Number(id), balance: Number(balance) }));
}

/**
 * One measured run of Lightcone on a fresh data dir. `client` "sdk" is the benchmark proper;
 * "raw" drives the same server with the reference client of raw_client.ts (not the SDK) to show
 * what the SDK client costs on a colocated machine.
 */
export async function runLightcone(
  options: RunOptions,
  client: "sdk" | "raw" = "sdk",
  variant: KeynoteVariant = "update",
): Promise<SystemResult> {
  if (client === "raw" && variant !== "update") {
    throw new Error("The raw reference client only drives the update-only variant");
  }
  const base: SystemResult = {
    systemKey: client === "raw"
      ? "lightcone-raw"
      : variant === "append"
      ? "lightcone-append"
      : "lightcone",
    systemName: client === "raw"
      ? "Lightcone (raw v3 client, reference only, confirmed reads)"
      : variant === "append"
      ? "Lightcone, append-heavy (transfer + ledger insert; spacetimedb SDK, confirmed reads)"
      : "Lightcone (spacetimedb SDK, confirmed reads)",
    alpha: options.alpha,
    mode: options.mode,
    clientCount: options.clientCount,
    inflightPerClient: options.inflightPerClient,
    status: "failed",
  };
  const deployment = await deployLightcone(options);
  try {
    const clients = client === "sdk"
      ? await connectLightconeClients(deployment, options.clientCount, variant)
      : await connectRawClients(deployment.url, deployment.databaseName, options.clientCount);
    let cpuSample: ReturnType<typeof startCpuSample> | undefined;
    let metricsBefore: Promise<GroupCommitCounters> | undefined;
    let cpu: SystemResult["cpu"] = null;
    const endTimer = setTimeout(() => {
      cpu = cpuSample?.stop() ?? null;
    }, options.warmupMs + options.measureMs);
    const tracePath = Deno.env.get("KEYNOTE_TRACE");
    const trace: number[] | undefined = tracePath ? [] : undefined;
    let load;
    try {
      load = await runLoad({
        pairs: options.pairs,
        clientCount: options.clientCount,
        inflightPerClient: options.inflightPerClient,
        warmupMs: options.warmupMs,
        measureMs: options.measureMs,
        timeoutMs: options.timeoutMs,
        accountCount: options.accountCount,
        amount: options.amount,
        send: clients.transfer,
        // KEYNOTE_TRACE=FILE: every call of the window as "ms-into-window latency-ms" lines, to
        // see whether slow calls come together (a stall) or one by one (scheduling).
        trace: trace ? (atMs, latencyMs) => trace.push(atMs, latencyMs) : undefined,
        onPhase(phase) {
          if (phase === "measure") {
            cpuSample = startCpuSample({ client: Deno.pid, server: deployment.pid });
            if (Deno.env.get("KEYNOTE_METRICS")) {
              metricsBefore = scrapeGroupCommit(deployment.url);
            }
          }
        },
      });
    } finally {
      clearTimeout(endTimer);
      await clients.close();
    }
    cpu ??= cpuSample?.stop() ?? null;
    if (tracePath && trace) {
      const lines: string[] = [];
      for (let i = 0; i < trace.length; i += 2) {
        lines.push(`${trace[i].toFixed(3)} ${trace[i + 1].toFixed(3)}`);
      }
      lines.push("# end of run");
      await Deno.writeTextFile(tracePath, lines.join("\n") + "\n", { append: true });
    }
    if (metricsBefore) {
      const before = await metricsBefore;
      const after = await scrapeGroupCommit(deployment.url);
      const fsyncs = after.fsyncs - before.fsyncs;
      console.error(
        `  group commit over the window (KEYNOTE_METRICS): ${fsyncs} fsyncs, mean ${
          ((after.fsyncSeconds - before.fsyncSeconds) / Math.max(1, fsyncs) * 1e3).toFixed(3)
        } ms, mean ${
          ((after.fsyncTx - before.fsyncTx) / Math.max(1, fsyncs)).toFixed(1)
        } tx each; ${after.replies - before.replies} database replies, ${
          ((after.transactions - before.transactions) / Math.max(1, after.replies - before.replies))
            .toFixed(1)
        } tx each`,
      );
      console.error(
        `  server-side latency over the window (KEYNOTE_METRICS; batch: sent to the database process → reply; reply/sent: call dispatch → answer handled / written): ${
          callLine(before, after)
        }`,
      );
      console.error(
        `  database process stalls ≥ 10 ms over the window (KEYNOTE_METRICS): ${
          stallLine(before, after)
        }`,
      );
    }
    const { ackedDelta, unknownCount, ...summary } = load;
    let rows: AccountRow[];
    try {
      rows = await readLightconeBalances(deployment);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return {
        ...base,
        reason: `Balance check impossible: ${message}`,
        load: summary,
        cpu,
        info: deployment.info,
      };
    }
    const balance = checkBalances(rows, {
      accountCount: options.accountCount,
      initialBalance: options.initialBalance,
      amount: options.amount,
      ackedDelta,
      unknownCount,
    });
    return {
      ...base,
      status: balance.ok ? "ok" : "failed",
      reason: balance.ok ? undefined : balance.problems.join("; "),
      load: summary,
      balance,
      cpu,
      info: deployment.info,
    };
  } finally {
    await deployment.stop();
  }
}

interface GroupCommitCounters {
  fsyncs: number;
  fsyncSeconds: number;
  fsyncTx: number;
  replies: number;
  transactions: number;
  stalls: Record<string, { count: number; seconds: number; upTo50Ms: number }>;
  /**
   * Cumulative buckets [le seconds, count] of lightcone_websocket_call_seconds per stage (reply,
   * sent) and of lightcone_host_batch_seconds (batch).
   */
  callBuckets: Record<string, [number, number][]>;
}

/** The group-commit counters of /v1/metrics, summed over databases (bench diagnostics). */
async function scrapeGroupCommit(url: string): Promise<GroupCommitCounters> {
  const text = await (await fetch(`${url}/v1/metrics`)).text();
  const sum = (prefix: string) =>
    text.split("\n").filter((line) => line.startsWith(prefix))
      .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
  return {
    fsyncs: sum("lightcone_commitlog_fsync_seconds_count"),
    fsyncSeconds: sum("lightcone_commitlog_fsync_seconds_sum"),
    fsyncTx: sum("lightcone_commitlog_fsync_transactions_sum"),
    replies: sum("lightcone_database_replies_total"),
    transactions: sum("lightcone_transactions_committed_total"),
    callBuckets: Object.fromEntries(["batch", "reply", "sent", "fsync"].map((stage) => {
      const prefix = stage === "batch"
        ? `lightcone_host_batch_seconds_bucket{database="${LIGHTCONE_DATABASE_NAME}",le="`
        : stage === "fsync"
        ? `lightcone_commitlog_fsync_seconds_bucket{database="${LIGHTCONE_DATABASE_NAME}",le="`
        : `lightcone_websocket_call_seconds_bucket{database="${LIGHTCONE_DATABASE_NAME}",stage="${stage}",le="`;
      const buckets: [number, number][] = text.split("\n")
        .filter((line) => line.startsWith(prefix))
        .map((line) => {
          const le = line.slice(prefix.length, line.indexOf('"', prefix.length));
          return [
            le === "+Inf" ? Infinity : Number(le),
            Number(line.slice(line.lastIndexOf(" ") + 1)),
          ];
        });
      return [stage, buckets];
    })),
    stalls: Object.fromEntries(
      STALL_KIND_NAMES.map((kind) => [kind, {
        count: sum(
          `lightcone_database_stall_seconds_count{database="${LIGHTCONE_DATABASE_NAME}",kind="${kind}"}`,
        ),
        seconds: sum(
          `lightcone_database_stall_seconds_sum{database="${LIGHTCONE_DATABASE_NAME}",kind="${kind}"}`,
        ),
        upTo50Ms: sum(
          `lightcone_database_stall_seconds_bucket{database="${LIGHTCONE_DATABASE_NAME}",kind="${kind}",le="0.05"}`,
        ),
      }]),
    ),
  };
}

/**
 * The q-quantile in ms of the calls between two scrapes of a cumulative histogram, interpolated
 * linearly inside its bucket (so good to about a bucket's width).
 */
function quantileMs(
  before: [number, number][],
  after: [number, number][],
  q: number,
): number | undefined {
  const counts = after.map(([le, count], i) => [le, count - (before[i]?.[1] ?? 0)] as const);
  const total = counts.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of counts) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower * 1000;
      const inside = cumulative - below;
      return (lower + (le - lower) * (inside > 0 ? (rank - below) / inside : 1)) * 1000;
    }
    lower = le;
    below = cumulative;
  }
  return undefined;
}

/**
 * Server-side latency over the window: batch round trips to the database process, and calls
 * until answered / written: p50 / p99 ms and their ratio.
 */
function callLine(before: GroupCommitCounters, after: GroupCommitCounters): string {
  return ["batch", "reply", "sent", "fsync"].map((stage) => {
    const p50 = quantileMs(before.callBuckets[stage], after.callBuckets[stage], 0.5);
    const p99 = quantileMs(before.callBuckets[stage], after.callBuckets[stage], 0.99);
    if (p50 === undefined || p99 === undefined) return `${stage} -`;
    return `${stage} p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} (${(p99 / p50).toFixed(1)}×)`;
  }).join("; ");
}

/** worker/messages.ts STALL_KINDS, as /v1/metrics labels them. */
const STALL_KIND_NAMES = ["batch", "snapshot", "schedule", "other"];

/** Stalls of the database process over the window, per kind: count (≥ 50 ms), total ms. */
function stallLine(before: GroupCommitCounters, after: GroupCommitCounters): string {
  return STALL_KIND_NAMES.map((kind) => {
    const count = after.stalls[kind].count - before.stalls[kind].count;
    const long = count - (after.stalls[kind].upTo50Ms - before.stalls[kind].upTo50Ms);
    const ms = (after.stalls[kind].seconds - before.stalls[kind].seconds) * 1000;
    return `${kind} ${count} (${long} ≥ 50 ms), ${ms.toFixed(0)} ms`;
  }).join("; ");
}
