/**
 * Composition root. `deno task start [--listen-addr HOST:PORT] [--data-dir DIR]`
 * runs the server; `deno task cli <verb> ...` runs a CLI verb.
 */
import { join } from "node:path";
import { configureLog, log } from "./lib/log.ts";
import {
  type DatabaseLimits,
  SNAPSHOT_INTERVAL_BYTES,
  SNAPSHOT_INTERVAL_TX,
} from "./lib/limits.ts";
import { parseHttpAllow, startServer, VERSION } from "./server/mod.ts";
import { parseNatsUrl } from "./replication/mod.ts";
import { hasServerV8Flags, SERVER_V8_FLAGS } from "./cli/runtime_flags.ts";

const USAGE = `Lightcone ${VERSION}: a SpacetimeDB-compatible database server

Usage:
  lightcone start [--listen-addr HOST:PORT] [--data-dir DIR] [--reducer-budget-ms MS]
  lightcone <cli verb> ...        (init, dev, build, publish, generate, call, sql, logs, ...; see --help)

start options:
  -l, --listen-addr HOST:PORT  where to listen (default 127.0.0.1:3000)
      --data-dir DIR           where databases live (default: $LIGHTCONE_DATA_DIR or ./lightcone-data)
      --reducer-budget-ms MS   time a reducer may run before it is stopped (default 10000)
      --database-memory-mb MB  memory budget of each database's process: heap, ArrayBuffers and
                               table data (default 512; --worker-heap-mb is an old alias)
      --snapshot-interval-tx N write a snapshot of a database every N durable transactions
                               (default 1000000; recovery replays at most N from the log)
      --snapshot-interval-mb MB ... or every MB MiB of commit log written, whichever comes first
                               (default 256; bounds replay for databases with large transactions)
      --in-memory              keep data only for this run: a fresh temporary data directory,
                               no fsync (replies do not wait for the disk), deleted at shutdown;
                               nothing survives a restart or a crash (cannot be used with --data-dir)
      --module-log-kb-per-s KB module log a database may write per second; lines over it are
                               dropped with a marker (default 1024)
      --commit-log-mb-per-s MB commit log a database may write per second; a transaction over
                               it fails and commits nothing (default 64)
      --tx-max-mb MB           largest commit record of one transaction (default 64)
      --procedure-threads N    procedures and HTTP handlers one database runs at once (default 4,
                               at most 16): threads start when calls wait
      --procedure-idle-s S     a procedure thread beyond the first stops after S seconds without
                               a call (default 30)
      --procedure-queue N      calls of one database that may wait for a procedure thread; one more
                               fails at once (default 1024)
      --owner-sql-budget-ms MS time the database owner's SQL (/sql, the dashboard console, the
                               PostgreSQL port, one-off queries, subscriptions' initial rows) may
                               run before it is stopped (default 10000; others: --reducer-budget-ms)
      --http-body-timeout-ms MS
                               time a request body may take to arrive before a 408 (default 30000)
      --http-header-timeout-ms MS
                               time a connection may take to send a whole request header
                               (default 20000; 0 turns header and idle timeouts off)
      --http-idle-timeout-ms MS
                               keep-alive connections with no request are closed after this
                               (default 30000). Both need root/CAP_NET_ADMIN and iproute2's ss;
                               the start-up log says whether they are enforced
      --max-databases N        databases this server hosts at most (default 100)
      --max-databases-per-identity N
                               databases one identity may own at most (default 10)
      --hibernate-after-s S    hibernate a database idle this long (no connection, call or
                               schedule due): its process stops, a snapshot keeps its state,
                               the next request, connection or due schedule wakes it
                               (default 300; 0 = never)
      --warm-spare             keep one database process started ahead of need, so a wake,
                               restart or publish skips starting deno (~60-250 ms; one idle
                               process, ~40-60 MiB)
      --ws-compression         compress WebSocket frames for clients that ask (gzip/brotli);
                               off by default because the TS SDK may reorder compressed frames
      --pg-port PORT           also serve the PostgreSQL wire protocol on HOST:PORT (psql, pg;
                               password = a token); off unless given
      --ws-connections-per-address N
                               WebSocket connections one client address (an IPv6 /64) may
                               hold (default 1000; more get 503); behind a reverse proxy not
                               named by --trusted-proxy every client is the proxy's address
      --pg-connections-per-address N
                               PostgreSQL connections one client address may hold (default
                               64; more are refused with SQLSTATE 53300)
      --pg-idle-timeout-s S    end an authenticated PostgreSQL session that sends nothing for
                               S seconds (default 600; 0 = never; SQLSTATE 57P05)
      --metrics-public         serve GET /v1/metrics (Prometheus) to every client; by default
                               only clients on loopback (127.0.0.0/8, ::1) may read it
      --trusted-proxy ADDR[/PREFIX]
                               a reverse proxy in front of the server (repeatable): for
                               requests from it, the client is the right-most X-Forwarded-For
                               entry that is not a trusted proxy (per-address limits, the
                               metrics route's loopback check), and X-Forwarded-Proto/-Host give
                               module HTTP handlers' request URI; without it they are ignored
      --no-dashboard           do not serve the operator dashboard (by default at /dashboard;
                               it uses the public HTTP API with the token you sign in with)
      --http-allow DB=HOST[,HOST...]
                               hosts the procedures of database DB (a name, an identity, or *
                               for all) may fetch from; HOST is a name or IP, optionally :PORT,
                               or * (any public host). Private, loopback and link-local addresses
                               are refused unless the address itself is listed. Repeatable;
                               without it outbound HTTP is disabled. Shown by \`describe\`
      --oidc-issuer URL        trust tokens from this OpenID Connect issuer (repeatable)
      --oidc-audience AUD      required audience for OpenID Connect tokens (repeatable)
      --replicate nats://HOST:PORT
                               publish every database's commit log and module to NATS JetStream
                               (stream LIGHTCONE, subject lightcone.<identity>.log) once durable
                               here; asynchronous: NATS down or slow never blocks a commit.
                               Credentials: nats://USER:PASSWORD@HOST:PORT or nats://TOKEN@HOST;
                               TLS: tls://HOST:PORT (system roots) or --nats-ca
      --follow nats://HOST:PORT
                               be a read replica of the primary publishing there: databases are
                               created and kept up to date from the stream; SQL and subscriptions
                               work, every write (calls, publish, delete, DML) is refused
                               (synchronous replication is not built)
      --promote                with --replicate, on a replica's data directory: fail over; it
                               becomes the primary of every database it has, refused unless each
                               is caught up with the stream; publishes a takeover that fences
                               the old primary (it refuses writes when it comes back)
      --promote-discard-unapplied
                               with --promote: promote databases the replica is behind on at
                               what it has; what the stream holds past that is lost
      --replication-key-file PATH
                               shared secret (at least 16 bytes, file mode 600) both the primary
                               and its replicas pass: every message carries an HMAC-SHA256 tag,
                               a replica refuses one without the right tag (that database stops).
                               Without it messages are unauthenticated (a warning at start)
      --nats-ca FILE           PEM CA certificate(s) the NATS server's TLS certificate must chain
                               to (for --replicate / --follow); TLS is then required
      --log-format text|json   server log format (default text)
`;

export function defaultDataDir(): string {
  return Deno.env.get("LIGHTCONE_DATA_DIR") ?? join(Deno.cwd(), "lightcone-data");
}

export function parseListenAddr(text: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!match) {
    throw new Error(`Invalid --listen-addr "${text}": expected HOST:PORT, e.g. 127.0.0.1:3000`);
  }
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`Invalid port in --listen-addr "${text}"`);
  return { hostname: match[1] ?? match[2], port };
}

function positiveNumber(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`Invalid ${flag} "${text}": expected a positive number`);
  }
  return value;
}

function positiveInteger(flag: string, text: string): number {
  const value = positiveNumber(flag, text);
  if (!Number.isInteger(value)) {
    throw new Error(`Invalid ${flag} "${text}": expected a whole number`);
  }
  return value;
}

function parsePort(text: string, flag: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new Error(`Invalid ${flag} "${text}": expected a port number 0-65535`);
  }
  return port;
}

async function start(args: string[]): Promise<number> {
  let listen = "127.0.0.1:3000";
  let dataDir: string | undefined;
  let inMemory = false;
  let snapshotIntervalTx = SNAPSHOT_INTERVAL_TX;
  let snapshotIntervalBytes = SNAPSHOT_INTERVAL_BYTES;
  let reducerBudgetMs: number | undefined;
  let databaseMemoryMb: number | undefined;
  let wsCompression = false;
  const limits: Partial<DatabaseLimits> = {};
  const size = (flag: string, text: string, unitBytes: number) => {
    const amount = Number(text);
    if (!(amount > 0) || !Number.isFinite(amount)) {
      throw new Error(`Invalid ${flag} "${text}": expected a positive number`);
    }
    return Math.max(1, Math.round(amount * unitBytes));
  };
  let httpBodyTimeoutMs: number | undefined;
  let httpHeaderTimeoutMs: number | undefined;
  let httpIdleTimeoutMs: number | undefined;
  let maxDatabases: number | undefined;
  let maxDatabasesPerIdentity: number | undefined;
  let pgPort: number | undefined;
  let pgConnectionsPerAddress: number | undefined;
  let wsConnectionsPerAddress: number | undefined;
  let pgIdleTimeoutS: number | undefined;
  let metricsPublic = false;
  let dashboard = true;
  let hibernateAfterS: number | undefined;
  let warmSpare = false;
  let replicate: string | undefined;
  let follow: string | undefined;
  let replicationKeyFile: string | undefined;
  let natsCaFile: string | undefined;
  let promote = false;
  let promoteDiscardUnapplied = false;
  const issuers: string[] = [];
  const audiences: string[] = [];
  const httpAllow: string[] = [];
  const trustedProxies: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const next = args[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--listen-addr" || arg === "-l") listen = value();
    else if (arg.startsWith("--listen-addr=")) listen = arg.slice(14);
    else if (arg === "--data-dir") dataDir = value();
    else if (arg.startsWith("--data-dir=")) dataDir = arg.slice(11);
    else if (arg === "--reducer-budget-ms") reducerBudgetMs = Number(value());
    else if (arg === "--database-memory-mb" || arg === "--worker-heap-mb") {
      databaseMemoryMb = Number(value());
    } else if (arg === "--snapshot-interval-tx") {
      const text = value();
      snapshotIntervalTx = Number(text);
      if (!Number.isSafeInteger(snapshotIntervalTx) || snapshotIntervalTx < 1) {
        throw new Error(`Invalid --snapshot-interval-tx "${text}": expected a whole number >= 1`);
      }
    } else if (arg === "--snapshot-interval-mb") {
      snapshotIntervalBytes = size(arg, value(), 1024 * 1024);
    } else if (arg === "--in-memory") inMemory = true;
    else if (arg === "--module-log-kb-per-s") {
      limits.moduleLogBytesPerS = size(arg, value(), 1024);
    } else if (arg === "--commit-log-mb-per-s") {
      limits.commitLogBytesPerS = size(arg, value(), 1024 * 1024);
    } else if (arg === "--tx-max-mb") limits.txRecordBytesMax = size(arg, value(), 1024 * 1024);
    else if (arg === "--procedure-threads") limits.procedureThreads = positiveInteger(arg, value());
    else if (arg === "--procedure-queue") limits.procedureQueue = positiveInteger(arg, value());
    else if (arg === "--procedure-idle-s") limits.procedureIdleS = positiveInteger(arg, value());
    else if (arg === "--owner-sql-budget-ms") {
      limits.ownerSqlBudgetMs = positiveInteger(arg, value());
    } else if (arg === "--ws-compression") wsCompression = true;
    else if (arg === "--warm-spare") warmSpare = true;
    else if (arg === "--hibernate-after-s") {
      const text = value();
      hibernateAfterS = Number(text);
      if (!(hibernateAfterS >= 0) || !Number.isFinite(hibernateAfterS)) {
        throw new Error(`Invalid --hibernate-after-s "${text}": expected seconds >= 0 (0 = never)`);
      }
    } else if (arg === "--metrics-public") metricsPublic = true;
    else if (arg === "--trusted-proxy") trustedProxies.push(value());
    else if (arg.startsWith("--trusted-proxy=")) trustedProxies.push(arg.slice(16));
    else if (arg === "--no-dashboard") dashboard = false;
    else if (arg === "--pg-port") pgPort = parsePort(value(), "--pg-port");
    else if (arg === "--ws-connections-per-address") {
      wsConnectionsPerAddress = positiveInteger(arg, value());
    } else if (arg === "--pg-connections-per-address") {
      pgConnectionsPerAddress = positiveInteger(arg, value());
    } else if (arg === "--pg-idle-timeout-s") {
      const text = value();
      pgIdleTimeoutS = Number(text);
      if (!(pgIdleTimeoutS >= 0) || !Number.isFinite(pgIdleTimeoutS)) {
        throw new Error(`Invalid --pg-idle-timeout-s "${text}": expected seconds >= 0 (0 = never)`);
      }
    } else if (arg === "--http-body-timeout-ms") httpBodyTimeoutMs = positiveNumber(arg, value());
    else if (arg === "--http-header-timeout-ms") {
      const text = value();
      httpHeaderTimeoutMs = text === "0" ? 0 : positiveNumber(arg, text);
    } else if (arg === "--http-idle-timeout-ms") httpIdleTimeoutMs = positiveNumber(arg, value());
    else if (arg === "--max-databases") maxDatabases = positiveInteger(arg, value());
    else if (arg === "--max-databases-per-identity") {
      maxDatabasesPerIdentity = positiveInteger(arg, value());
    } else if (arg === "--oidc-issuer") issuers.push(value());
    else if (arg === "--http-allow") httpAllow.push(value());
    else if (arg.startsWith("--http-allow=")) httpAllow.push(arg.slice(13));
    else if (arg === "--oidc-audience") audiences.push(value());
    else if (arg === "--log-format") configureLog({ json: value() === "json" });
    else if (arg === "--replicate") replicate = parseNatsUrl(value(), arg);
    else if (arg === "--follow") follow = parseNatsUrl(value(), arg);
    else if (arg === "--replication-key-file") replicationKeyFile = value();
    else if (arg === "--nats-ca") natsCaFile = value();
    else if (arg === "--promote") promote = true;
    else if (arg === "--promote-discard-unapplied") promoteDiscardUnapplied = true;
    else if (/^--(failover|replicate-sync|sync-replication)\b/.test(arg)) {
      throw new Error(
        `${arg} is not supported: replication is asynchronous (to fail over, start the ` +
          `replica's data directory with --replicate URL --promote)`,
      );
    } else if (arg === "--non-interactive") continue;
    else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      return 0;
    } else throw new Error(`Unknown option "${arg}" for start (see --help)`);
  }
  const { hostname, port } = parseListenAddr(listen);
  if (inMemory && dataDir !== undefined) {
    throw new Error("--in-memory and --data-dir exclude each other: in-memory data lives nowhere");
  }
  if (inMemory && (replicate !== undefined || follow !== undefined)) {
    throw new Error("--in-memory cannot replicate or follow: replication ships what is on disk");
  }
  if (replicate !== undefined && follow !== undefined) {
    throw new Error("--replicate and --follow exclude each other: a read replica does not publish");
  }
  if (inMemory) {
    dataDir = await Deno.makeTempDir({ prefix: "lightcone-in-memory-" });
    log.warn(
      "in-memory mode: databases live in a temporary directory without fsync and are deleted " +
        "at shutdown; nothing survives a restart or a crash",
      { dataDir },
    );
  }
  dataDir ??= defaultDataDir();
  let server;
  try {
    server = await startServer({
      hostname,
      port,
      dataDir,
      reducerBudgetMs,
      databaseMemoryMb,
      snapshotIntervalTx,
      snapshotIntervalBytes,
      skipFsync: inMemory,
      // Deliberately broken durability for one test (tests/e2e/fsync_order_test.ts); never set it.
      unsafeLateFsyncMs: Number(Deno.env.get("LIGHTCONE_UNSAFE_LATE_FSYNC_MS") ?? 0) || undefined,
      limits,
      wsCompression,
      requestBodies: { timeoutMs: httpBodyTimeoutMs },
      connectionTimeouts: httpHeaderTimeoutMs === 0
        ? false
        : { headerMs: httpHeaderTimeoutMs, idleMs: httpIdleTimeoutMs },
      maxDatabases,
      maxDatabasesPerIdentity,
      pgPort,
      pgConnectionsPerAddress,
      wsConnectionsPerAddress,
      pgIdleTimeoutS,
      metricsPublic,
      trustedProxies,
      dashboard,
      httpAllow: parseHttpAllow(httpAllow),
      hibernateAfterS,
      warmSpare,
      replicate,
      follow,
      replicationKeyFile,
      natsCaFile,
      promote,
      promoteDiscardUnapplied,
      oidc: issuers.length
        ? { issuers, audiences: audiences.length ? audiences : undefined }
        : undefined,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Port ${port} is already in use. Please free up the port or specify a different port with --listen-addr.`,
      );
    }
    throw error;
  }
  if (hasServerV8Flags() === false) {
    log.warn(
      "started without the server's V8 flags (cli/runtime_flags.ts): run `lightcone start` " +
        "or `deno task start`",
      { missing: SERVER_V8_FLAGS.join(",") },
    );
  }
  // Machine-readable line for tests and tools that start us on port 0.
  console.log(`lightcone: listening on ${server.url}`);
  if (server.pgPort !== undefined) {
    console.log(`lightcone: postgres wire protocol on ${hostname}:${server.pgPort}`);
  }
  const stop = async () => {
    log.info("shutting down");
    await server.shutdown();
    if (inMemory) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await new Promise(() => {});
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === "start") return await start(rest);
  if (verb === undefined) {
    console.log(USAGE);
    return 1;
  }
  if (verb === "--help" || verb === "-h" || verb === "help") {
    console.log(USAGE);
    const { runCli } = await import("./cli/mod.ts");
    return await runCli(["--help"]);
  }
  if (verb === "--version" || verb === "version") {
    console.log(`lightcone ${VERSION}`);
    return 0;
  }
  const { runCli } = await import("./cli/mod.ts");
  return await runCli(args);
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`Error: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
