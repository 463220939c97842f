/**
 * Starts a Lightcone server: signing keys, the database registry (which starts
 * every stored database), the WebSocket hub and the HTTP listener.
 */
import { AuthService, Identity, type OidcOptions } from "../auth/mod.ts";
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
import {
  type DatabaseHost,
  DurabilityActor,
  logIsolationCapabilities,
  ReplayFailedError,
  setWarmSpare,
} from "../worker/mod.ts";
import { createApp } from "./app.ts";
import {
  type Database,
  DatabaseRegistry,
  exists,
  isValidDatabaseName,
} from "./database_registry.ts";
import { type RequestBodyOptions, RequestBodyReader } from "./request_body.ts";
import { ResponseBudget, type ResponseBudgetOptions } from "./response_budget.ts";
import { ConnReaper } from "./conn_reaper.ts";
import { WsHub } from "./ws/hub.ts";
import { TrustedProxies } from "../lib/client_address.ts";
import { type PgServer, startPgServer } from "./pgwire/mod.ts";
import { OutboundHttp, type Resolver } from "./outbound_http.ts";
import { runSqlStatement } from "./sql_statement.ts";
import {
  Follower,
  loadReplicationKey,
  MessageRefusedError,
  natsUrlDisplay,
  PrimaryReplicator,
} from "../replication/mod.ts";
import { escapeLabelValue } from "./metrics.ts";
import { primaryStatus, replicaStatus } from "./dashboard/mod.ts";

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
  /** Bounds on large responses held for clients not reading them (default: lib/limits.ts). */
  responseBudget?: ResponseBudgetOptions;
  /** WebSockets one client address (IPv6: /64) may hold (`--ws-connections-per-address`). */
  wsConnectionsPerAddress?: number;
  /** PostgreSQL connections one client address may hold (`--pg-connections-per-address`). */
  pgConnectionsPerAddress?: number;
  /** Idle seconds after which an authenticated PostgreSQL session ends (`--pg-idle-timeout-s`). */
  pgIdleTimeoutS?: number;
  /**
   * Outbound HTTP allow-lists of procedures (`--http-allow`, server/outbound_http.ts): by
   * database name or identity, `*` for all. Absent or empty: outbound HTTP is disabled.
   */
  httpAllow?: ReadonlyMap<string, readonly string[]>;
  /** Tests only: resolves host names for outbound HTTP instead of DNS. */
  httpResolve?: Resolver;
  /** Serve GET /v1/metrics to every client, not only loopback ones (`--metrics-public`). */
  metricsPublic?: boolean;
  /**
   * Reverse proxies (addresses or ranges) whose X-Forwarded-For names the client
   * (`--trusted-proxy`, lib/client_address.ts): per-address shares and the metrics route's
   * loopback check then see the client, not the proxy.
   */
  trustedProxies?: readonly string[];
  /** Serve the operator dashboard at /dashboard (default true; `--no-dashboard`). */
  dashboard?: boolean;
  /**
   * Seconds a database may be idle before it is hibernated (`--hibernate-after-s`, default
   * HIBERNATE_AFTER_S_DEFAULT; 0 = never).
   */
  hibernateAfterS?: number;
  /** Keep one database process started ahead of need (`--warm-spare`; worker/isolation.ts). */
  warmSpare?: boolean;
  /**
   * `--replicate nats://host:port`: publish every database's commit log and module to NATS
   * JetStream (replication/primary.ts). The value is `host:port`.
   */
  replicate?: string;
  /**
   * `--follow nats://host:port`: be a read replica of the primary publishing there
   * (replication/follower.ts); writes are refused. The value is `host:port`.
   */
  follow?: string;
  /**
   * `--promote` (with `--replicate`): this data directory was a read replica's; it becomes the
   * primary of every database it has (replication/primary.ts `promote`), refused unless each is
   * caught up with its subject.
   */
  promote?: boolean;
  /**
   * `--promote-discard-unapplied`: promote databases the replica is behind on at what it has;
   * what the stream holds past it is lost.
   */
  promoteDiscardUnapplied?: boolean;
  /**
   * `--replication-key-file PATH`: the shared secret both ends tag and check replication
   * messages with (replication/auth.ts). Without it messages are unauthenticated (a warning).
   */
  replicationKeyFile?: string;
  /**
   * `--nats-ca FILE`: PEM certificate(s) the NATS server's TLS certificate must chain to; TLS
   * is then required (with `nats://` as well as `tls://`).
   */
  natsCaFile?: string;
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
  if (options.promote && options.replicate === undefined) {
    throw new RangeError(
      "--promote needs --replicate nats://… (the NATS server the replica followed)",
    );
  }
  if (options.promoteDiscardUnapplied && !options.promote) {
    throw new RangeError("--promote-discard-unapplied needs --promote");
  }
  // First: a bad key file refuses the start before anything runs.
  const replicationKey = await replicationKeyOf(options);
  const natsCa = await natsCaOf(options);
  logIsolationCapabilities(options.databaseMemoryMb ?? DATABASE_MEMORY_MB_DEFAULT);
  const auth = await AuthService.open({ dataDir: options.dataDir, oidc: options.oidc });
  const trustedProxies = options.trustedProxies?.length
    ? TrustedProxies.parse(options.trustedProxies)
    : undefined;
  const hub = new WsHub({
    auth,
    compress: options.wsCompression,
    trustedProxies,
    connectionsPerSourceMax: options.wsConnectionsPerAddress,
  });
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
  if (options.replicate !== undefined && options.follow !== undefined) {
    throw new RangeError("--replicate and --follow exclude each other: a replica does not publish");
  }
  const opened: { registry?: DatabaseRegistry } = {};
  const replicator = options.replicate === undefined ? undefined : new PrimaryReplicator({
    dataDir: options.dataDir,
    server: options.replicate,
    key: replicationKey,
    natsCa,
    promote: options.promote
      ? { discardUnapplied: options.promoteDiscardUnapplied ?? false }
      : undefined,
    // Fenced, or its takeover published: its process restarts read-only or writable.
    onReadOnlyChange: (key) => {
      // Before the registry is open, its recovery reads readOnlyReason itself (and the check
      // after `recovered` below catches a change while it started).
      const database = opened.registry?.resolve(key);
      if (database) void opened.registry!.applyReadOnly(database);
    },
    existingModule: async (key) => {
      const database = registry.resolve(key);
      if (!database) return "it is not hosted here";
      // A migration before replication was on: the log starts with another schema than the
      // module's, and no module message can say which.
      if (await exists(`${database.directory}/genesis.describe`)) {
        return "its schema changed (a migration) before --replicate was on, so its log " +
          "starts with a module that is gone";
      }
      return {
        owner: database.owner.toHex(),
        names: [...database.names],
        bundle: await Deno.readTextFile(`${database.directory}/module.js`),
      };
    },
  });
  try {
    await replicator?.start();
  } catch (error) {
    // E.g. --promote on a directory that is not a replica's.
    await replicator?.close();
    await storage.stop();
    throw error;
  }
  if (replicator) {
    storage.onDurable((key, offset, _syncMs, _txCount, bytes) =>
      replicator.durable(key, Number(offset), bytes)
    );
  }
  const registry = await DatabaseRegistry.open({
    readOnly: options.follow === undefined ? undefined : readOnlyMessage(options.follow),
    readOnlyFor: replicator ? (key) => replicator.readOnlyReason(key) : undefined,
    onModuleChange: replicator
      ? (change) =>
        replicator.moduleChanging({
          dbKey: change.identity.toHex(),
          owner: change.owner.toHex(),
          names: change.names,
          bundle: change.bundle,
          atTx: change.atTx,
        })
      : undefined,
    onDeleted: replicator ? (identity) => replicator.deleted(identity.toHex()) : undefined,
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
  opened.registry = registry;
  hub.attach(registry);
  if (replicator && options.promote) {
    await registry.recovered;
    const promoted = (database: Database) => ({
      dbKey: database.key,
      localEnd: database.durableTxOffset,
      label: database.names[0] ?? database.key,
    });
    try {
      await replicator.promote(
        registry.list().map(promoted),
        registry.unstartedDatabases().map((entry) => ({
          dbKey: entry.identity,
          localEnd: 0,
          label: entry.names[0] ?? entry.identity,
        })),
      );
    } catch (error) {
      await registry.close();
      await replicator.close();
      await storage.stop();
      throw error;
    }
  }
  if (replicator) {
    void registry.recovered.then(() => {
      for (const database of registry.list()) {
        replicator.durable(database.key, database.durableTxOffset, 0);
        // Fenced while it was starting: applyReadOnly restarts it only if it started otherwise
        // (a promotion settles its databases itself).
        if (!options.promote && replicator.readOnlyReason(database.key) !== undefined) {
          void registry.applyReadOnly(database);
        }
      }
    });
  }
  const follower = options.follow === undefined ? undefined : new Follower({
    dataDir: options.dataDir,
    server: options.follow,
    key: replicationKey,
    natsCa,
    target: {
      localEnd: (key) => registry.resolve(key)?.durableTxOffset,
      createDatabase: async (key, body) => {
        const invalid = body.names.find((name) => !isValidDatabaseName(name));
        if (invalid !== undefined) {
          throw new MessageRefusedError(
            `a module message naming the database "${invalid.slice(0, 80)}", which is not a ` +
              "valid database name",
          );
        }
        await registry.createReplica({
          identity: Identity.fromHex(key),
          owner: Identity.fromHex(body.owner),
          names: body.names,
          bundle: body.bundle,
          atTx: 0,
        });
      },
      deleteDatabase: async (key) => {
        const database = registry.resolve(key);
        if (database) await registry.deleteReplica(database);
      },
      updateModule: async (key, bundle) => {
        const database = registry.resolve(key);
        if (!database) throw new Error(`Replicated database ${key} is not here`);
        await registry.updateReplica(database, bundle);
      },
      apply: async (key, firstTx, count, records) => {
        const database = registry.resolve(key);
        if (!database) throw new Error(`Replicated database ${key} is not here`);
        const release = await database.admit();
        let host: DatabaseHost | undefined;
        try {
          host = database.host;
          host.replicate(firstTx, count, records);
          await database.whenDurable(firstTx + count);
        } catch (error) {
          // Transactions that decode but do not replay fail the same way every time.
          const failure = host?.failure;
          if (failure instanceof ReplayFailedError) {
            throw new MessageRefusedError(
              `transactions [${firstTx}, ${
                firstTx + count
              }) could not be applied: ${failure.reason}`,
            );
          }
          throw error;
        } finally {
          release();
        }
      },
    },
  });
  if (follower) {
    await registry.recovered;
    await follower.start();
  }
  const nameOf = (key: string) => registry.resolve(key)?.names[0] ?? key;
  const labelOf = (key: string) => escapeLabelValue(nameOf(key));
  if (options.warmSpare) setWarmSpare(true);
  let pg: PgServer | undefined;
  if (options.pgPort !== undefined) {
    try {
      pg = startPgServer({
        hostname: options.hostname,
        port: options.pgPort,
        connectionsPerAddressMax: options.pgConnectionsPerAddress,
        idleTimeoutS: options.pgIdleTimeoutS,
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
    responses: new ResponseBudget(options.responseBudget),
    version: VERSION,
    metricsPublic: options.metricsPublic,
    trustedProxies,
    dashboard: options.dashboard,
    replicationMetrics: replicator
      ? () => primaryMetricsText(replicator, labelOf)
      : follower
      ? () => followerMetricsText(follower, labelOf)
      : undefined,
    replicationStatus: replicator
      ? () => primaryStatus(natsUrlDisplay(options.replicate!), replicator.metrics(), nameOf)
      : follower
      ? () => replicaStatus(natsUrlDisplay(options.follow!), follower.metrics(), nameOf)
      : undefined,
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
      await follower?.close();
      await registry.close();
      await replicator?.close();
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

/**
 * The replication key of `--replication-key-file`, or undefined (then a loud warning when this
 * server replicates or follows: anyone who can publish on the subject steers the replicas).
 */
async function replicationKeyOf(options: ServerOptions): Promise<CryptoKey | undefined> {
  const replicating = options.replicate !== undefined || options.follow !== undefined;
  if (options.replicationKeyFile !== undefined) {
    if (!replicating) {
      throw new RangeError("--replication-key-file needs --replicate or --follow");
    }
    return await loadReplicationKey(options.replicationKeyFile);
  }
  if (replicating) {
    log.warn(
      "replication messages are UNAUTHENTICATED: anyone who can publish on the NATS subjects " +
        "lightcone.*.log controls every replica; pass --replication-key-file on the primary and " +
        "the replicas",
      { role: options.replicate !== undefined ? "primary" : "replica" },
    );
  }
  return undefined;
}

/** The PEM text of `--nats-ca`, checked to hold a certificate. */
async function natsCaOf(options: ServerOptions): Promise<string | undefined> {
  if (options.natsCaFile === undefined) return undefined;
  if (options.replicate === undefined && options.follow === undefined) {
    throw new RangeError("--nats-ca needs --replicate or --follow");
  }
  let text: string;
  try {
    text = await Deno.readTextFile(options.natsCaFile);
  } catch (error) {
    throw new Error(
      `--nats-ca "${options.natsCaFile}" cannot be read: ${(error as Error).message}`,
    );
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`--nats-ca "${options.natsCaFile}" holds no PEM certificate`);
  }
  return text;
}

/** What every write on a read replica fails with. */
function readOnlyMessage(server: string): string {
  return `This server is a read replica (--follow ${
    natsUrlDisplay(server)
  }): writes are refused; ` +
    `send them to the primary`;
}

/** One gauge family: HELP, TYPE, a sample per `[database label, value]` (no label: undefined). */
function gaugeFamily(
  name: string,
  help: string,
  samples: readonly (readonly [string | undefined, number])[],
): string[] {
  return [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    ...samples.map(([label, value]) =>
      label === undefined ? `${name} ${value}` : `${name}{database="${label}"} ${value}`
    ),
  ];
}

function primaryMetricsText(
  replicator: PrimaryReplicator,
  labelOf: (key: string) => string,
): string {
  const rows = replicator.metrics();
  const family = (name: string, help: string, value: (row: typeof rows[number]) => number) =>
    gaugeFamily(name, help, rows.map((row) => [labelOf(row.dbKey), value(row)] as const));
  return [
    ...family(
      "lightcone_replication_replicated_tx",
      "Transactions of the database JetStream acknowledged (the replicated log offset)",
      (row) => row.replicatedTx,
    ),
    ...family(
      "lightcone_replication_lag_tx",
      "Transactions durable here and not yet acknowledged by JetStream",
      (row) => Math.max(0, row.durableTx - row.replicatedTx),
    ),
    ...family(
      "lightcone_replication_lag_bytes",
      "Commit-log record bytes made durable since the server started and not yet acknowledged by JetStream",
      (row) => row.lagBytes,
    ),
    ...family(
      "lightcone_replication_stopped",
      "1 when replication of the database stopped for good (a conflict; see the server log)",
      (row) => (row.stopped === undefined ? 0 : 1),
    ),
    "",
  ].join("\n");
}

/** A stop reason in a metric label is cut here (the whole text is in the log and marker). */
const STOPPED_REASON_LABEL_CHARS_MAX = 300;

function followerMetricsText(follower: Follower, labelOf: (key: string) => string): string {
  const { pendingMessages, databases } = follower.metrics();
  return [
    ...gaugeFamily(
      "lightcone_replication_follower_pending_messages",
      "Stream messages not applied here yet",
      [[undefined, pendingMessages]],
    ),
    ...gaugeFamily(
      "lightcone_replication_follower_applied_tx",
      "Transactions of the primary's log durable here",
      databases.map((row) => [labelOf(row.dbKey), row.appliedTx] as const),
    ),
    ...gaugeFamily(
      "lightcone_replication_follower_stopped",
      "1 when following the database stopped (a gap or a damaged message)",
      databases.map((row) => [labelOf(row.dbKey), row.stopped === undefined ? 0 : 1] as const),
    ),
    "# HELP lightcone_replication_follower_stopped_reason Why following the database stopped " +
    "(kept across restarts until <data>/replication-stopped/<identity>.json is deleted)",
    "# TYPE lightcone_replication_follower_stopped_reason gauge",
    ...databases.filter((row) => row.stopped !== undefined).map((row) =>
      `lightcone_replication_follower_stopped_reason{database="${labelOf(row.dbKey)}",reason="${
        escapeLabelValue(row.stopped!.slice(0, STOPPED_REASON_LABEL_CHARS_MAX))
      }"} 1`
    ),
    "",
  ].join("\n");
}
