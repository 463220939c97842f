/**
 * Starts a Lightcone server: signing keys, the database registry (which starts
 * every stored database), the WebSocket hub and the HTTP listener.
 */
import { AuthService, type OidcOptions } from "../auth/mod.ts";
import {
  DATABASE_LIMITS_DEFAULT,
  DATABASE_MEMORY_MB_DEFAULT,
  type DatabaseLimits,
  HIBERNATE_AFTER_S_DEFAULT,
  HTTP_HEADER_TIMEOUT_MS_DEFAULT,
  HTTP_IDLE_TIMEOUT_MS_DEFAULT,
  MODULE_LOG_FILE_BYTES_MAX,
  PROCEDURE_THREADS_MAX,
  REDUCER_TIME_BUDGET_MS_DEFAULT,
  SCHEDULE_IMMEDIATE_PENDING_MAX,
} from "../lib/limits.ts";
import { log } from "../lib/log.ts";
import { DurabilityActor, logIsolationCapabilities, setWarmSpare } from "../worker/mod.ts";
import { createApp } from "./app.ts";
import { DatabaseRegistry } from "./database_registry.ts";
import { type RequestBodyOptions, RequestBodyReader } from "./request_body.ts";
import { ConnReaper } from "./conn_reaper.ts";
import { WsHub } from "./ws/hub.ts";
import { type PgServer, startPgServer } from "./pgwire/mod.ts";
import { OutboundHttp, type Resolver } from "./outbound_http.ts";
import { runSqlStatement } from "./sql_statement.ts";

export const VERSION = "0.1.0";

export interface ServerOptions {
  hostname: string;
  port: number;
  dataDir: string;
  reducerBudgetMs?: number;
  /** Compress WebSocket frames when a client asks (see WsHub). */
  wsCompression?: boolean;
  /** Memory budget of each database process in MiB (worker/isolation.ts). */
  databaseMemoryMb?: number;
  /** Transactions between automatic snapshots (default lib/limits.ts SNAPSHOT_INTERVAL_TX). */
  snapshotIntervalTx?: number;
  /** Commit-log record bytes between automatic snapshots (default SNAPSHOT_INTERVAL_BYTES). */
  snapshotIntervalBytes?: number;
  /** Size of a commit-log segment (default LOG_SEGMENT_BYTES); tests make it small. */
  logSegmentBytes?: number;
  /**
   * `--in-memory`: nothing is fsynced, so replies do not wait for the disk and a crash loses
   * everything (main.ts also puts the data in a temporary directory removed at shutdown).
   */
  skipFsync?: boolean;
  /**
   * Deliberately broken, tests only (LIGHTCONE_UNSAFE_LATE_FSYNC_MS): acknowledge before the
   * fdatasync, which runs this many ms later; proves tests/e2e/fsync_order_test.ts can fail.
   */
  unsafeLateFsyncMs?: number;
  /** Per-database rates and sizes; each absent one is lib/limits.ts's default. */
  limits?: Partial<DatabaseLimits>;
  oidc?: OidcOptions;
  /** Request body timeout and server-wide bounds (defaults in lib/limits.ts). */
  requestBodies?: RequestBodyOptions;
  /** Databases this server hosts at most (default DATABASES_MAX_DEFAULT). */
  maxDatabases?: number;
  /** Databases one identity may own at most (default DATABASES_PER_IDENTITY_MAX_DEFAULT). */
  maxDatabasesPerIdentity?: number;
  /**
   * Header and idle timeouts of HTTP connections (server/conn_reaper.ts); defaults from
   * lib/limits.ts; `false` turns the reaper off.
   */
  connectionTimeouts?: { headerMs?: number; idleMs?: number } | false;
  /** Port of the PostgreSQL wire protocol listener on `hostname` (0: any free port); off when absent. */
  pgPort?: number;
  /**
   * Outbound HTTP allow-lists of procedures (`--http-allow`, server/outbound_http.ts): by
   * database name or identity, `*` for all. Absent or empty: outbound HTTP is disabled.
   */
  httpAllow?: ReadonlyMap<string, readonly string[]>;
  /** Tests only: resolves host names for outbound HTTP instead of DNS. */
  httpResolve?: Resolver;
  /** Serve GET /v1/metrics to every client, not only loopback ones (`--metrics-public`). */
  metricsPublic?: boolean;
  /** Serve the operator dashboard at /dashboard (default true; `--no-dashboard`). */
  dashboard?: boolean;
  /**
   * Seconds a database may be idle before it is hibernated (`--hibernate-after-s`, default
   * HIBERNATE_AFTER_S_DEFAULT; 0 = never).
   */
  hibernateAfterS?: number;
  /** Keep one database process started ahead of need (`--warm-spare`; worker/isolation.ts). */
  warmSpare?: boolean;
  /** Called once the listener is bound, with the actual port. */
  onListen?: (address: { hostname: string; port: number }) => void;
}

export interface RunningServer {
  port: number;
  hostname: string;
  url: string;
  /** Port of the PostgreSQL wire protocol listener, when started. */
  pgPort?: number;
  registry: DatabaseRegistry;
  shutdown(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  await Deno.mkdir(options.dataDir, { recursive: true });
  logIsolationCapabilities(options.databaseMemoryMb ?? DATABASE_MEMORY_MB_DEFAULT);
  const auth = await AuthService.open({ dataDir: options.dataDir, oidc: options.oidc });
  const hub = new WsHub({ auth, compress: options.wsCompression });
  const limits = databaseLimits(options.limits);
  const storage = await DurabilityActor.start({
    dataDir: options.dataDir,
    snapshotIntervalTx: options.snapshotIntervalTx,
    snapshotIntervalBytes: options.snapshotIntervalBytes,
    segmentBytes: options.logSegmentBytes,
    unsafeSkipSync: options.skipFsync,
    unsafeLateSyncMs: options.unsafeLateFsyncMs,
  });
  if (options.unsafeLateFsyncMs) {
    log.warn("UNSAFE test mode: replies are sent before their transactions are fsynced", {
      lateFsyncMs: options.unsafeLateFsyncMs,
    });
  }
  const registry = await DatabaseRegistry.open({
    dataDir: options.dataDir,
    storage,
    onDurable: (database) => hub.onDurable(database),
    onStopped: (database, reason) => hub.closeDatabase(database, reason),
    onUpdateStart: (database) => hub.pauseDatabase(database),
    onUpdateEnd: (database, disconnect, reason) => hub.resumeDatabase(database, disconnect, reason),
    reducerBudgetMs: options.reducerBudgetMs,
    databaseMemoryMb: options.databaseMemoryMb,
    limits,
    maxDatabases: options.maxDatabases,
    maxDatabasesPerIdentity: options.maxDatabasesPerIdentity,
    mintIdentity: async () => (await auth.mintIdentity()).identity,
    onEvents: (database, items, originOf) => hub.onEvents(database, items, originOf),
    outboundHttp: new OutboundHttp({
      allow: options.httpAllow ?? new Map(),
      resolve: options.httpResolve,
    }),
    hibernateAfterMs: (options.hibernateAfterS ?? HIBERNATE_AFTER_S_DEFAULT) * 1000,
    inUse: (database) => hub.hasClients(database),
  });
  hub.attach(registry);
  if (options.warmSpare) setWarmSpare(true);
  let pg: PgServer | undefined;
  if (options.pgPort !== undefined) {
    try {
      pg = startPgServer({
        hostname: options.hostname,
        port: options.pgPort,
        backend: {
          resolveDatabase: (nameOrIdentity) => registry.resolve(nameOrIdentity),
          authenticate: async (token) => (await auth.authenticate(token)).identity,
          // PostgreSQL clients read what they were told: confirmed reads, as SpacetimeDB does.
          runSql: (database, sql, caller) =>
            runSqlStatement(database, { sql, caller, confirmed: true }),
          serverVersion: `spacetime ${VERSION} (lightcone)`,
        },
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      throw new Error(
        `Port ${options.pgPort} is already in use: free it or pass another --pg-port`,
      );
    }
  }
  const bodies = new RequestBodyReader(options.requestBodies);
  const app = createApp({
    auth,
    registry,
    hub,
    bodies,
    version: VERSION,
    metricsPublic: options.metricsPublic,
    dashboard: options.dashboard,
  });
  let resolveListening!: (address: { hostname: string; port: number }) => void;
  const listening = new Promise<{ hostname: string; port: number }>((r) => (resolveListening = r));
  let reaper: ConnReaper | undefined;
  const handler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    if (reaper === undefined) return app.fetch(request, info);
    const done = reaper.requestStarted(info.remoteAddr);
    const settled = (response: Response) => {
      if (response.status === 101) done(true);
      else info.completed.then(() => done(false), () => done(false));
      return response;
    };
    try {
      const result = app.fetch(request, info);
      if (result instanceof Response) return settled(result);
      return result.then(settled, (error) => {
        done(false);
        throw error;
      });
    } catch (error) {
      done(false);
      throw error;
    }
  };
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: (address) => resolveListening(address),
  }, handler);
  const address = await listening;
  let connectionTimeouts: Record<string, unknown> = { enforced: false, reason: "turned off" };
  if (options.connectionTimeouts !== false) {
    const headerTimeoutMs = options.connectionTimeouts?.headerMs ??
      HTTP_HEADER_TIMEOUT_MS_DEFAULT;
    const idleTimeoutMs = options.connectionTimeouts?.idleMs ?? HTTP_IDLE_TIMEOUT_MS_DEFAULT;
    const candidate = new ConnReaper({ port: address.port, headerTimeoutMs, idleTimeoutMs });
    const started = await candidate.start();
    if (started.enforced) {
      reaper = candidate;
      connectionTimeouts = { enforced: true, headerTimeoutMs, idleTimeoutMs };
    } else {
      connectionTimeouts = { enforced: false, reason: started.reason };
      log.warn(
        "HTTP header and idle timeouts are NOT enforced: a client can hold a connection open " +
          "by sending nothing; run as root (CAP_NET_ADMIN) with iproute2's ss, or put a reverse " +
          "proxy with timeouts in front",
        { reason: started.reason },
      );
    }
  }
  const url = `http://${
    address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
  }:${address.port}`;
  log.info("lightcone listening", {
    url,
    dataDir: options.dataDir,
    databases: registry.list().length,
  });
  log.info("per-database limits enforced", {
    reducerBudgetMs: options.reducerBudgetMs ?? REDUCER_TIME_BUDGET_MS_DEFAULT,
    txRecordBytesMax: limits.txRecordBytesMax,
    commitLogBytesPerS: limits.commitLogBytesPerS,
    moduleLogBytesPerS: limits.moduleLogBytesPerS,
    procedureThreads: limits.procedureThreads,
    procedureQueue: limits.procedureQueue,
    procedureIdleS: limits.procedureIdleS,
    ownerSqlBudgetMs: limits.ownerSqlBudgetMs,
    moduleLogFileBytesMax: MODULE_LOG_FILE_BYTES_MAX,
    scheduleImmediatePendingMax: SCHEDULE_IMMEDIATE_PENDING_MAX,
  });
  log.info("connection timeouts", connectionTimeouts);
  options.onListen?.(address);
  return {
    port: address.port,
    hostname: address.hostname,
    url,
    pgPort: pg?.port,
    registry,
    async shutdown() {
      hub.closeAll("server shutting down");
      await pg?.close();
      reaper?.stop();
      await server.shutdown();
      await registry.close();
      if (options.warmSpare) setWarmSpare(false);
      await storage.stop();
    },
  };
}

/** `partial` over the defaults, each value checked (operator flags end up here). */
export function databaseLimits(partial: Partial<DatabaseLimits> = {}): DatabaseLimits {
  const limits: DatabaseLimits = { ...DATABASE_LIMITS_DEFAULT };
  for (const name of Object.keys(limits) as (keyof DatabaseLimits)[]) {
    const value = partial[name];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`Limit ${name} "${value}" must be a positive whole number`);
    }
    limits[name] = value;
  }
  if (limits.procedureThreads > PROCEDURE_THREADS_MAX) {
    throw new RangeError(
      `Limit procedureThreads "${limits.procedureThreads}" is over the most a database may ` +
        `have, ${PROCEDURE_THREADS_MAX}`,
    );
  }
  return limits;
}
