/**
 * The databases this server hosts: names, identities, owners and modules, kept in
 * `<dataDir>/control.json` (written atomically) plus one directory per database
 * holding its module bundle, module log and commit log. Each database runs in its
 * own worker; its commit log belongs to the storage worker (DurabilityActor).
 */
import { join } from "node:path";
import { BadRequestError, NotFoundError, QuotaExceededError } from "../lib/errors.ts";
import { log } from "../lib/log.ts";
import { syncDirectory } from "../lib/sync_directory.ts";
import {
  CRASH_PAUSE_MAX_MS,
  CRASH_PAUSE_MS,
  type DatabaseLimits,
  DATABASES_MAX_DEFAULT,
  DATABASES_PER_IDENTITY_MAX_DEFAULT,
  HIBERNATE_WAKE_LEAD_MS,
  HIBERNATION_CONCURRENCY_MAX,
  REDUCER_TIME_BUDGET_MS_DEFAULT,
  UPDATE_WAIT_MS_MAX,
} from "../lib/limits.ts";
import { Identity, requireOwner } from "../auth/mod.ts";
import {
  type BatchItem,
  DatabaseHost,
  DatabaseUnavailableError,
  type DurabilityActor,
  formatMigrationErrors,
  formatMigrationPlan,
  isWasmBundle,
  type LogLine,
  type ModuleInfo,
  moduleInfoFromDescribe,
  ModuleInitError,
  type OutboundHttpRequest,
  type OutboundHttpResponse,
  planBreaksClients,
  planMigration,
  type PreparedModule,
  type ResumedSchedule,
  SCHEMA_MISMATCH_PREFIX,
  type SegmentVerdict,
  SegmentVerifier,
  tablesFingerprint,
} from "../worker/mod.ts";
import type { OutboundHttp } from "./outbound_http.ts";
import { LogBuffer, type LogBufferOptions } from "./log_buffer.ts";
import { DatabaseMetrics } from "./metrics.ts";

/** Database names: `[a-z0-9]` and `-`, starting with `[a-z0-9]`, no leading/trailing/double hyphens. */
const DATABASE_NAME = /^[a-z0-9](?:[a-z0-9]|-(?!-))*(?<!-)$/;

/**
 * A database that crashes more often than this in a minute is restarted only after a pause
 * (CRASH_PAUSE_MS, doubling for each pause in a row up to CRASH_PAUSE_MAX_MS), not at once: a
 * module that crashes on every start costs a few restarts an hour. It used to be left stopped
 * for good, so an anonymous client that could make a database crash four times in a minute (a
 * handler or reducer that runs out of memory on its input) took it down until the owner
 * published again.
 */
const RESTARTS_PER_MINUTE_MAX = 3;

export function isValidDatabaseName(name: string): boolean {
  return name.length <= 64 && DATABASE_NAME.test(name);
}

/** The kind of module a database runs, as SpacetimeDB's `host_type` names it. */
export type HostType = "Js" | "Wasm";

/**
 * control.json. Version 1 files (written before wasm modules had their own host type) say
 * "Js" for every database, so a version 1 "Js" is checked against the module file at start;
 * version 2 files record the host type truthfully. Both are read as they are, no migration.
 */
interface ControlFile {
  version: 1 | 2;
  databases: {
    identity: string;
    owner: string;
    names: string[];
    hostType: HostType;
    moduleHash: string;
  }[];
}

/** The host type of a module bundle (wasm/bundle.ts marks a WebAssembly module's). */
function hostTypeOf(bundle: string): HostType {
  return isWasmBundle(bundle) ? "Wasm" : "Js";
}

/** The host type of the module file `directory`/module.js, from its first bytes. */
async function moduleFileHostType(directory: string): Promise<HostType> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(join(directory, "module.js"));
    const head = new Uint8Array(64);
    const read = await file.read(head) ?? 0;
    return hostTypeOf(new TextDecoder().decode(head.subarray(0, read)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "Js";
    throw error;
  } finally {
    file?.close();
  }
}

export interface EventListener {
  (database: Database, items: BatchItem[], originOf: (id: number) => unknown): void;
}

/**
 * Where a database is in its hibernation cycle: `awake` (running, or stopped: see
 * `stoppedReason`), `hibernating` (snapshot being written, process being stopped),
 * `hibernated` (no process; woken by the next request, connection or due schedule), `waking`
 * (its process is starting: after hibernation, and at server start while it recovers).
 */
export type HibernationState = "awake" | "hibernating" | "hibernated" | "waking";

/** One hosted database. */
export class Database {
  #host: DatabaseHost | undefined;
  #module: ModuleInfo | undefined;
  moduleHash: string;
  /** What runs its module: set with `moduleHash` (publish, update, recovery of an update). */
  hostType: HostType = "Js";
  readonly names: string[];
  /** Set while the database cannot serve (deleted, crashed, storage failed). */
  stoppedReason: string | undefined;
  /** Set for good once its commit log failed: the database never writes again. */
  storageFailure: string | undefined;
  /** Number of transactions known to be on disk (= offset of the last durable one). */
  durableTxOffset: number;
  readonly #durableWaiters: {
    txOffset: number;
    resolve: () => void;
    reject: (e: Error) => void;
  }[] = [];
  readonly restarts: number[] = [];
  /** Restarts paused in a row for crashing too often (resets once it ran a minute calmly). */
  crashPauses = 0;
  /** Counters and histograms for /v1/metrics (kept across worker restarts). */
  readonly metrics = new DatabaseMetrics();
  /** Set while the module is being replaced: new work waits for the new module. */
  readonly #update = new UpdateGate();
  /** HTTP calls and queries admitted and not yet answered; an update lets them finish first. */
  #inFlight = 0;
  readonly #idleWaiters: (() => void)[] = [];
  /** See HibernationState; work waits in admit() until the database is awake. */
  hibernation: HibernationState = "awake";
  /** performance.now() of the last request, connection, batch or scheduled run. */
  lastActiveMs = performance.now();
  /** The hibernation or wake in progress; work arriving meanwhile waits for it. */
  #transition: Promise<void> | undefined;
  /** Starts waking a hibernated database (set by the registry). */
  wakeHandler: (() => Promise<void>) | undefined;
  /** Row schedules armed when it hibernated, re-armed at their times when it wakes. */
  hibernatedSchedules: ResumedSchedule[] | undefined;
  /** Transaction offset of the newest snapshot this server wrote for it (hibernation). */
  snapshotTxOffset: number | undefined;

  constructor(
    readonly identity: Identity,
    readonly owner: Identity,
    names: string[],
    host: DatabaseHost | undefined,
    moduleHash: string,
    readonly logs: LogBuffer,
    readonly directory: string,
    durableTxOffset: number,
    module?: ModuleInfo,
  ) {
    this.names = names;
    this.#host = host;
    this.#module = module ?? (host ? moduleInfoFromDescribe(host.describe) : undefined);
    this.moduleHash = moduleHash;
    this.durableTxOffset = durableTxOffset;
  }

  /** The database process's handle; a database still recovering at server start has none. */
  get host(): DatabaseHost {
    if (!this.#host) throw new DatabaseUnavailableError("Database is not running now, try again");
    return this.#host;
  }

  set host(host: DatabaseHost) {
    this.#host = host;
  }

  /** True when `host` is this database's current handle. */
  hasHost(host: DatabaseHost): boolean {
    return this.#host === host;
  }

  /** Drops the stopped process's handle (hibernation): its buffers need not stay in memory. */
  releaseHost(): void {
    this.#host = undefined;
  }

  /** The handle while a process runs (awake and serving), else undefined (metrics). */
  get runningHost(): DatabaseHost | undefined {
    return this.hibernation === "awake" && this.#host?.alive ? this.#host : undefined;
  }

  /** The module's definition; known once the database first started (or from hibernation). */
  get module(): ModuleInfo {
    if (!this.#module) throw new DatabaseUnavailableError("Database is starting, try again");
    return this.#module;
  }

  set module(module: ModuleInfo) {
    this.#module = module;
  }

  /** True once the module's definition is known (false only while first recovering). */
  get hasModule(): boolean {
    return this.#module !== undefined;
  }

  /** True while a module update is in progress. */
  get updating(): boolean {
    return this.#update.active;
  }

  /** HTTP calls, queries and handshakes admitted and not yet released. */
  get admittedInFlight(): number {
    return this.#inFlight;
  }

  /**
   * Waits until the database is awake: wakes it if hibernated, waits out a hibernation or
   * wake in progress. Resolves also when a wake failed (the caller checks stoppedReason).
   */
  async ensureAwake(): Promise<void> {
    for (;;) {
      this.lastActiveMs = performance.now();
      if (this.hibernation === "awake") return;
      // "waking" with no transition yet: queued for recovery at server start; a request
      // starts it now instead of waiting for its turn.
      if (
        this.hibernation === "hibernated" ||
        (this.hibernation === "waking" && this.#transition === undefined)
      ) {
        if (!this.wakeHandler) throw new DatabaseUnavailableError("Database is hibernated");
        await this.wakeHandler();
      } else {
        await this.#transition;
      }
    }
  }

  /**
   * Runs a hibernation or a wake as the database's one transition: its `state` holds until
   * `work` resolves with the state that follows.
   */
  runTransition(
    state: "hibernating" | "waking",
    work: () => Promise<HibernationState>,
  ): Promise<void> {
    if (this.#transition) return this.#transition;
    this.hibernation = state;
    const run = work().then((next) => {
      this.hibernation = next;
    }, (error) => {
      // The steps catch what they expect; anything else must not leave work waiting forever.
      log.error("hibernation step failed", { identity: this.key, error: messageOf(error) });
      this.hibernation = "awake";
    }).finally(() => {
      this.#transition = undefined;
      this.lastActiveMs = performance.now();
    });
    this.#transition = run;
    return run;
  }

  /** Stops the database's process, if it has one (a hibernated database has none running). */
  stopProcess(): void {
    this.#host?.stop();
  }

  /** The transition in progress, if any (a delete or update waits for it). */
  get transition(): Promise<void> | undefined {
    return this.#transition;
  }

  get key(): string {
    return this.identity.toHex();
  }

  isOwner(identity: Identity | undefined): boolean {
    return identity !== undefined && identity.equals(this.owner);
  }

  /**
   * Admits one HTTP call, query or WebSocket handshake: waits out an update in progress, then fails if
   * the database is not running, else counts the work as in flight until the
   * returned release is called (an update lets admitted work finish first).
   */
  async admit(waitMs: number = UPDATE_WAIT_MS_MAX): Promise<() => void> {
    await this.ensureAwake();
    const deadline = performance.now() + waitMs;
    while (this.#update.active) {
      await this.#update.wait(Math.max(0, deadline - performance.now()));
    }
    if (this.stoppedReason) {
      throw new BadRequestError(`Database is not running: ${this.stoppedReason}`);
    }
    // A hibernation may have started while an update was waited out.
    if (this.hibernation !== "awake") {
      return await this.admit(Math.max(0, deadline - performance.now()));
    }
    this.#inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#inFlight === 0) {
        for (const wake of this.#idleWaiters.splice(0)) wake();
      }
    };
  }

  /** Marks the start of a module update: work arriving from now on waits in admit(). */
  beginUpdate(): void {
    this.#update.begin();
  }

  /** Ends the update; waiting work proceeds (and fails fast if the database is stopped). */
  endUpdate(): void {
    this.#update.end();
  }

  /** Resolves once no admitted work is in flight, or after `waitMs` regardless. */
  async drained(waitMs: number): Promise<void> {
    if (this.#inFlight === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#idleWaiters.push(resolve);
      timer = setTimeout(resolve, waitMs);
    });
    clearTimeout(timer);
  }

  /** Resolves once transaction `txOffset` is on disk; rejects if storage fails first. */
  whenDurable(txOffset: number | undefined): Promise<void> {
    if (txOffset === undefined || txOffset <= this.durableTxOffset) return Promise.resolve();
    if (this.stoppedReason) {
      return Promise.reject(new DatabaseUnavailableError(this.stoppedReason));
    }
    return new Promise((resolve, reject) =>
      this.#durableWaiters.push({ txOffset, resolve, reject })
    );
  }

  markDurable(txOffset: number): void {
    if (txOffset <= this.durableTxOffset) return;
    this.durableTxOffset = txOffset;
    let kept = 0;
    for (const waiter of this.#durableWaiters) {
      if (waiter.txOffset <= txOffset) waiter.resolve();
      else this.#durableWaiters[kept++] = waiter;
    }
    this.#durableWaiters.length = kept;
  }

  /** Storage failed or the database went away: nothing more will become durable. */
  failWaiters(reason: string): void {
    for (const waiter of this.#durableWaiters.splice(0)) {
      waiter.reject(new DatabaseUnavailableError(reason));
    }
  }
}

/**
 * An update in progress, as a promise work can wait on. `wait` resolves when the
 * update ends (whether it succeeded or not: callers check the database afterwards)
 * and rejects with a 503-style error when it takes longer than the caller may wait.
 */
export class UpdateGate {
  #ended: Promise<void> | undefined;
  #end: (() => void) | undefined;

  get active(): boolean {
    return this.#ended !== undefined;
  }

  begin(): void {
    if (this.#ended) return;
    this.#ended = new Promise((resolve) => (this.#end = resolve));
  }

  end(): void {
    const end = this.#end;
    this.#ended = undefined;
    this.#end = undefined;
    end?.();
  }

  async wait(waitMs: number): Promise<void> {
    const ended = this.#ended;
    if (!ended) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), waitMs);
    });
    const outcome = await Promise.race([ended, timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      throw new DatabaseUnavailableError(
        `Database is being updated, try again: the new module did not start within ${waitMs} ms`,
      );
    }
  }
}

export interface RegistryOptions {
  dataDir: string;
  storage: DurabilityActor;
  reducerBudgetMs?: number;
  databaseMemoryMb?: number;
  /** Per-database rates and sizes (lib/limits.ts DATABASE_LIMITS_DEFAULT when absent). */
  limits?: DatabaseLimits;
  /** Databases hosted at most (`--max-databases`), stopped ones included. */
  maxDatabases?: number;
  /** Databases one owner identity may have at most (`--max-databases-per-identity`). */
  maxDatabasesPerIdentity?: number;
  /** Mints database identities (issuer localhost, random subject). */
  mintIdentity: () => Promise<Identity>;
  onEvents?: EventListener;
  /** A database's durable offset moved. */
  onDurable?: (database: Database) => void;
  /** A database stopped serving (crash, storage failure): its clients should go. */
  onStopped?: (database: Database, reason: string) => void;
  /**
   * Idle time after which a database is hibernated (`--hibernate-after-s`, in ms here); 0 or
   * absent: never. Idle = no WebSocket connection (`inUse`), no admitted call, query or
   * handshake, nothing queued, no batch or scheduled run for that long, no schedule due within it.
   */
  hibernateAfterMs?: number;
  /** True while the database has WebSocket clients (the hub knows): it is not idle. */
  inUse?: (database: Database) => boolean;
  /** A module update begins: clients' requests must wait (server/ws/hub.ts pauseDatabase). */
  onUpdateStart?: (database: Database) => void;
  /**
   * The update ended with a module serving (the new one, or the old one back after a
   * failure): clients stay (hot swap) unless `disconnect` (the plan breaks clients, or a reset).
   */
  onUpdateEnd?: (database: Database, disconnect: boolean, reason: string) => void;
  /** Performs procedures' outbound HTTP; absent: it is disabled for every database. */
  outboundHttp?: OutboundHttp;
  /** Read rate of the background check of old commit-log segments (lib/limits.ts default). */
  segmentVerifyBytesPerS?: number;
  /**
   * Read replica (`--follow`): publish, delete and rename are refused with this text, and every
   * database process refuses writes with it (EngineOptions.readOnly). Databases come and change
   * only through `createReplica` / `updateReplica`.
   */
  readOnly?: string;
  /**
   * Primary (`--replicate`), per database: why it must not write now (a promotion whose
   * takeover is not in JetStream yet, or fenced by another primary's takeover;
   * replication/primary.ts), else undefined. Read when its process starts; `applyReadOnly`
   * restarts a running one when the answer changed. Update and delete are refused meanwhile.
   */
  readOnlyFor?: (identity: string) => string | undefined;
  /**
   * Primary (`--replicate`): a database's module changes at log offset `atTx` (0: it is new).
   * Awaited before the new module's process starts, so it is called before any transaction of
   * the new module exists; the function it resolves with is awaited once the change took
   * (`true`) or failed and the old module serves again (`false`). A reset (`clear`) is refused
   * while this is set.
   */
  onModuleChange?: (change: ModuleChange) => Promise<(ok: boolean) => Promise<void>>;
  /** Primary (`--replicate`): a database is being deleted (its files go right after). */
  onDeleted?: (identity: Identity) => Promise<void>;
}

/** A module published or updated, for replication (RegistryOptions.onModuleChange). */
export interface ModuleChange {
  identity: Identity;
  owner: Identity;
  names: string[];
  bundle: string;
  /** Log offset at which the module starts: transactions before it ran the previous module. */
  atTx: number;
}

export type PublishOutcome = { database: Database; op: "created" | "updated" };

/** `policy=BreakClients&token=…` of a publish; without it a client-breaking plan is refused. */
export interface MigrationPolicy {
  breakClients: boolean;
  token?: string;
}

export type PrePublishOutcome =
  | { kind: "auto"; plan: string; breakClients: boolean; token: string }
  | { kind: "manual"; reason: string };

/** The files of a database directory that say which schema its commit log starts with. */
const GENESIS_FILE = "genesis.describe";
/** A module whose migration may or may not have reached the commit log (see #update). */
const NEXT_MODULE_FILE = "module.next.js";

export class DatabaseRegistry {
  readonly #options: RegistryOptions;
  readonly #byIdentity = new Map<string, Database>();
  readonly #byName = new Map<string, Database>();
  /** Databases in control.json that failed to start: kept, and their names stay taken. */
  readonly #unstarted = new Map<string, ControlFile["databases"][number] & { reason: string }>();
  /** Checks commit-log segments recovery does not read (before the newest snapshot). */
  readonly #segments: SegmentVerifier;
  /** Serialises publish/delete/restart so control.json writes never interleave. */
  #controlChain: Promise<unknown> = Promise.resolve();
  #closing = false;

  private constructor(options: RegistryOptions) {
    this.#options = options;
    this.#segments = new SegmentVerifier({
      dataDir: options.dataDir,
      bytesPerS: options.segmentVerifyBytesPerS,
      onVerdict: (key, verdict) => this.#segmentVerdict(key, verdict),
    });
    // A new snapshot puts more segments behind it that recovery will not read: check those.
    options.storage.onSnapshot((key) => this.#segments.schedule(key));
    options.storage.onDurable((key, offset, syncMs, txCount, bytes) => {
      const database = this.#byIdentity.get(key);
      if (!database) return;
      database.metrics.recordFsync(syncMs, txCount, bytes);
      database.markDurable(Number(offset));
      options.onDurable?.(database);
    });
    options.storage.onFailure((key, error) => {
      const database = this.#byIdentity.get(key);
      if (!database) return;
      log.error("storage failed: the database stops accepting writes", {
        identity: key,
        error: error.message,
      });
      database.storageFailure = error.message;
      this.#stop(database, `storage failed: ${error.message}`);
    });
  }

  /**
   * Loads control.json and registers every database found there. Databases that were
   * hibernated stay so (their state is on disk); the others recover in the background,
   * a few at a time: the server answers meanwhile, and work for a database still recovering
   * waits in admit() (`recovered` resolves once all are done).
   */
  static async open(options: RegistryOptions): Promise<DatabaseRegistry> {
    const registry = new DatabaseRegistry(options);
    await Deno.mkdir(join(options.dataDir, "databases"), { recursive: true });
    let control: ControlFile = { version: 1, databases: [] };
    try {
      control = JSON.parse(await Deno.readTextFile(registry.#controlPath()));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const recovering: { database: Database; entry: ControlFile["databases"][number] }[] = [];
    let stale = false;
    for (const entry of control.databases) {
      const identity = Identity.fromHex(entry.identity);
      const owner = Identity.fromHex(entry.owner);
      const directory = registry.#directoryOf(identity);
      const logs = await LogBuffer.open(join(directory, "module.log"), registry.#logOptions());
      const hibernated = await readHibernation(directory, entry.moduleHash);
      const database = new Database(
        identity,
        owner,
        entry.names,
        undefined,
        entry.moduleHash,
        logs,
        directory,
        hibernated?.txOffset ?? 0,
        hibernated?.module,
      );
      if (entry.hostType !== "Js" && entry.hostType !== "Wasm") {
        throw new Error(`control.json: unknown hostType ${JSON.stringify(entry.hostType)}`);
      }
      // The module file is the truth: a version 1 file says "Js" for every database, and a
      // version 2 file may predate the module (a reset or a JS <-> Wasm switch that stopped
      // between writing module.js and control.json).
      const loaded = await moduleFileHostType(directory);
      if (control.version === 2 && loaded !== entry.hostType) {
        log.warn("control.json named another host type than the module file; corrected", {
          identity: entry.identity,
          recorded: entry.hostType,
          loaded,
        });
        stale = true;
      }
      entry.hostType = loaded;
      database.hostType = entry.hostType;
      registry.#bind(database);
      if (hibernated) {
        database.hibernation = "hibernated";
        database.hibernatedSchedules = hibernated.schedules;
        database.snapshotTxOffset = hibernated.txOffset;
        registry.#armScheduleWake(database, hibernated.nextScheduleMicros);
        continue;
      }
      database.hibernation = "waking";
      recovering.push({ database, entry });
    }
    registry.recovered = forEachLimited(
      recovering,
      HIBERNATION_CONCURRENCY_MAX,
      async ({ database, entry }) => {
        // A request may have started it already (Database.ensureAwake).
        if (database.transition) await database.transition;
        else if (database.hibernation === "waking") await registry.#wake(database, "recovery");
        if (database.stoppedReason !== undefined && !registry.#closing) {
          // It stays registered but stopped, and its names stay taken.
          registry.#unbind(database);
          registry.#unstarted.set(entry.identity, { ...entry, reason: database.stoppedReason });
          await database.logs.close();
        }
      },
    );
    if (stale) registry.#rewriteControlLater();
    registry.#startSweeper();
    return registry;
  }

  /** Resolves once every database that was not hibernated at start has recovered (or failed). */
  recovered: Promise<void> = Promise.resolve();

  /** Hibernation: the sweeper's timer, timers waking databases for schedules, pins. */
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #sweeping = false;
  readonly #wakeTimers = new Map<Database, ReturnType<typeof setTimeout>>();
  /** Restarts of databases that crashed too often, due after their pause. */
  readonly #crashPauseTimers = new Map<Database, ReturnType<typeof setTimeout>>();
  readonly #wakeSlots = new Slots(HIBERNATION_CONCURRENCY_MAX);
  /** Prepared bundles by module hash, the most recent few (see #rememberPrepared). */
  readonly #preparedByHash = new Map<string, PreparedModule>();
  /**
   * What probing a bundle found, by database and module hash, the most recent few: a publish
   * right after its pre_publish (what `publish` and `dev` do) does not start a third process.
   */
  readonly #probedByHash = new Map<string, ModuleInfo>();
  /** Databases a publish or delete is working on: never hibernated meanwhile. */
  readonly #pinned = new Set<Database>();

  #startSweeper(): void {
    const afterMs = this.#options.hibernateAfterMs ?? 0;
    if (!(afterMs > 0)) return;
    const periodMs = Math.min(Math.max(afterMs / 4, 100), 5_000);
    const timer = setInterval(() => void this.#sweep(), periodMs);
    Deno.unrefTimer(timer);
    this.#sweepTimer = timer;
  }

  /** Hibernates the databases idle for `hibernateAfterMs`, a few at a time. */
  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#closing) return;
    this.#sweeping = true;
    try {
      const now = performance.now();
      const idle = this.list().filter((database) => this.#isIdle(database, now));
      await forEachLimited(idle, HIBERNATION_CONCURRENCY_MAX, async (database) => {
        if (this.#isIdle(database, performance.now())) await this.#hibernate(database);
      });
    } catch (error) {
      log.error("hibernation sweep failed", { error: messageOf(error) });
    } finally {
      this.#sweeping = false;
    }
  }

  #isIdle(database: Database, nowMs: number): boolean {
    const host = database.runningHost;
    return host !== undefined && database.stoppedReason === undefined && !database.updating &&
      !this.#pinned.has(database) && database.admittedInFlight === 0 &&
      nowMs - database.lastActiveMs >= (this.#options.hibernateAfterMs ?? Infinity) &&
      host.queuedRequests === 0 && host.batchesInFlight === 0 &&
      database.durableTxOffset >= host.txOffset && !(this.#options.inUse?.(database) ?? false);
  }

  /** Hibernates an idle database now (tests, benchmarks); false if it was not idle. */
  async hibernateNow(database: Database): Promise<boolean> {
    if (!this.#isIdle(database, Infinity)) return false;
    await this.#hibernate(database, true);
    return database.hibernation === "hibernated";
  }

  /**
   * Snapshot (unless the newest one is current), stop the process, close the log. Kept: what
   * its schedules need to fire on time (a timer wakes it HIBERNATE_WAKE_LEAD_MS before the
   * next one), and a hibernation.json so a server restart leaves it hibernated.
   */
  #hibernate(database: Database, now = false): Promise<void> {
    return database.runTransition("hibernating", async () => {
      const host = database.host;
      const started = performance.now();
      try {
        const plan = await host.prepareHibernation();
        const soonMicros = Date.now() * 1000 +
          (now ? 0 : this.#options.hibernateAfterMs ?? 0) * 1000;
        if (plan.nextScheduleMicros >= 0 && plan.nextScheduleMicros <= soonMicros) {
          return "awake";
        }
        if (plan.txOffset !== database.snapshotTxOffset) {
          await this.#options.storage.requestSnapshot(database.key);
          database.snapshotTxOffset = plan.txOffset;
        }
        await database.whenDurable(plan.txOffset);
        host.stop();
        await host.exited;
        await this.#options.storage.closeDatabase(database.key);
        database.hibernatedSchedules = plan.schedules;
        await writeHibernation(database.directory, {
          moduleHash: database.moduleHash,
          txOffset: plan.txOffset,
          nextScheduleMicros: plan.nextScheduleMicros,
          schedules: plan.schedules,
          describe: host.describe,
        });
        this.#armScheduleWake(database, plan.nextScheduleMicros);
        database.releaseHost();
        database.metrics.hibernations++;
        log.info("database hibernated", {
          identity: database.key,
          names: database.names.join(","),
          transactions: plan.txOffset,
          nextScheduleInS: plan.nextScheduleMicros < 0
            ? "none"
            : Math.round((plan.nextScheduleMicros / 1000 - Date.now()) / 1000),
          durationMs: Math.round(performance.now() - started),
        });
        return "hibernated";
      } catch (error) {
        if (host.alive) {
          log.warn("hibernation did not happen; the database stays awake", {
            identity: database.key,
            error: messageOf(error),
          });
          return "awake";
        }
        // The process is gone (stopped above, or it crashed meanwhile): the next request
        // recovers it from its log, like a wake.
        await this.#options.storage.closeDatabase(database.key).catch(() => {});
        await Deno.remove(join(database.directory, HIBERNATION_FILE)).catch(() => {});
        log.warn("hibernation failed after the process stopped; it recovers on the next request", {
          identity: database.key,
          error: messageOf(error),
        });
        return "hibernated";
      }
    });
  }

  /** Wakes a database due to run a schedule HIBERNATE_WAKE_LEAD_MS before it is due. */
  #armScheduleWake(database: Database, nextScheduleMicros: number): void {
    const previous = this.#wakeTimers.get(database);
    if (previous !== undefined) clearTimeout(previous);
    this.#wakeTimers.delete(database);
    if (nextScheduleMicros < 0 || this.#closing) return;
    const delayMs = nextScheduleMicros / 1000 - Date.now() - HIBERNATE_WAKE_LEAD_MS;
    const timer = setTimeout(() => {
      this.#wakeTimers.delete(database);
      if (database.hibernation !== "hibernated" || this.#closing) return;
      // setTimeout's largest delay is ~24.8 days: a later schedule re-arms.
      if (delayMs > TIMER_DELAY_MS_MAX) {
        return this.#armScheduleWake(database, nextScheduleMicros);
      }
      database.ensureAwake().catch((error) =>
        log.error("waking a database for its schedule failed", {
          identity: database.key,
          error: messageOf(error),
        })
      );
    }, Math.min(Math.max(0, delayMs), TIMER_DELAY_MS_MAX));
    Deno.unrefTimer(timer);
    this.#wakeTimers.set(database, timer);
  }

  /**
   * Starts a hibernated database's process (or a database's first process at server start):
   * it recovers from its newest snapshot plus the log after it, with its schedules resumed.
   * The wake time is logged and recorded. A failure leaves it stopped with the reason.
   */
  #wake(database: Database, reason: "wake" | "recovery"): Promise<void> {
    const wake = async (): Promise<HibernationState> => {
      const started = performance.now();
      const timer = this.#wakeTimers.get(database);
      if (timer !== undefined) clearTimeout(timer);
      this.#wakeTimers.delete(database);
      try {
        // From here on the database may commit: a restart must not trust the old state.
        await Deno.remove(join(database.directory, HIBERNATION_FILE)).catch(() => {});
        const genesis = await readGenesis(database.directory);
        let running: { host: DatabaseHost; durableTxOffset: number } | undefined;
        const nextPath = join(database.directory, NEXT_MODULE_FILE);
        if (reason === "recovery" && await exists(nextPath)) {
          // An update was under way: its module is right exactly when its migration (if it
          // had one) reached the log; otherwise the worker reports a schema mismatch.
          const next = await Deno.readTextFile(nextPath);
          const nextHash = await sha256Hex(next);
          try {
            running = await this.#startHost(database.identity, database.owner, next, {
              runInit: false,
              logs: database.logs,
              moduleHash: nextHash,
              genesis,
            });
            await Deno.rename(nextPath, join(database.directory, "module.js"));
            await syncDirectory(database.directory, { bestEffort: true });
            database.moduleHash = nextHash;
            database.hostType = hostTypeOf(next);
            this.#rewriteControlLater();
          } catch (error) {
            if (!messageOf(error).includes(SCHEMA_MISMATCH_PREFIX)) throw error;
            await Deno.remove(nextPath);
          }
        }
        if (!running) {
          const bundle = await Deno.readTextFile(join(database.directory, "module.js"));
          running = await this.#startHost(database.identity, database.owner, bundle, {
            runInit: false,
            logs: database.logs,
            moduleHash: database.moduleHash,
            resumeSchedules: database.hibernatedSchedules,
            genesis,
          });
        }
        const { host, durableTxOffset } = running;
        if (this.#closing || this.#byIdentity.get(database.key) !== database) {
          host.stop();
          await this.#options.storage.closeDatabase(database.key).catch(() => {});
          database.stoppedReason ??= "the server is shutting down";
          return "awake";
        }
        database.host = host;
        if (!database.hasModule) database.module = moduleInfoFromDescribe(host.describe);
        database.hibernatedSchedules = undefined;
        database.durableTxOffset = durableTxOffset;
        this.#catchUpDurable(database);
        const durationMs = performance.now() - started;
        if (reason === "wake") database.metrics.recordWake(durationMs);
        log.info(reason === "wake" ? "database woke" : "database recovered", {
          identity: database.key,
          names: database.names.join(","),
          transactions: host.txOffset,
          durationMs: Math.round(durationMs),
        });
        return "awake";
      } catch (error) {
        const message = messageOf(error);
        log.error(
          reason === "wake"
            ? "database failed to wake; it stays registered but stopped"
            : "database failed to start; it stays registered but stopped",
          { identity: database.key, error: message },
        );
        database.stoppedReason = message;
        database.failWaiters(message);
        return "awake";
      }
    };
    // At most HIBERNATION_CONCURRENCY_MAX hibernated databases wake at once: anonymous requests
    // to many of them (a wake storm) queue here instead of starting every process together.
    // Start-up recovery has its own lanes, and a request may start a queued one at once.
    return database.runTransition("waking", reason === "wake" ? this.#wakeSlots.wrap(wake) : wake);
  }

  /** Wakes of hibernated databases running now (at most HIBERNATION_CONCURRENCY_MAX). */
  get wakesRunning(): number {
    return this.#wakeSlots.running;
  }

  /** Looks a database up by name or by hex identity (optionally `0x`-prefixed). */
  resolve(nameOrIdentity: string): Database | undefined {
    const identity = Identity.tryFromHex(nameOrIdentity);
    if (identity) return this.#byIdentity.get(identity.toHex());
    return this.#byName.get(nameOrIdentity);
  }

  /** Like resolve, but throws the spec's errors. */
  require(nameOrIdentity: string): Database {
    if (!Identity.tryFromHex(nameOrIdentity) && !isValidDatabaseName(nameOrIdentity)) {
      throw new BadRequestError(`Invalid database name or identity: "${nameOrIdentity}"`);
    }
    const database = this.resolve(nameOrIdentity);
    if (!database) throw new NotFoundError(`\`${nameOrIdentity}\` not found`);
    return database;
  }

  /** Databases in control.json that failed to start (kept, stopped): identity, names, why. */
  unstartedDatabases(): { identity: string; names: string[]; reason: string }[] {
    return [...this.#unstarted.values()].map(({ identity, names, reason }) => ({
      identity,
      names,
      reason,
    }));
  }

  list(): Database[] {
    return [...this.#byIdentity.values()];
  }

  ownedBy(identity: Identity): Database[] {
    return this.list().filter((database) => database.owner.equals(identity));
  }

  /**
   * Creates or updates a database. `target` is a name or identity, or undefined
   * for a fresh unnamed database. `clear` drops all data of an existing database.
   * Resolves once the new state (including `init`'s transaction) is durable.
   */
  publish(
    target: string | undefined,
    bundle: string,
    caller: Identity,
    clear: boolean,
    policy: MigrationPolicy = { breakClients: false },
  ): Promise<PublishOutcome> {
    this.#refuseOnReplica("publish", target === undefined ? undefined : this.resolve(target));
    if (clear && this.#options.onModuleChange) {
      throw new BadRequestError(
        "Clearing a database is not supported while its commit log is replicated (--replicate)",
      );
    }
    return this.#serialised(() => this.#publish(target, bundle, caller, clear, policy));
  }

  /** Read replica: creates the primary's database `change.identity` (no `init`: it replicates). */
  createReplica(change: ModuleChange): Promise<Database> {
    return this.#serialised(async () => {
      if (this.#byIdentity.has(change.identity.toHex())) {
        throw new Error(`Replicated database ${change.identity.toHex()} exists already`);
      }
      const outcome = await this.#publish(
        undefined,
        change.bundle,
        change.owner,
        false,
        { breakClients: false },
        change,
      );
      // The primary's latest claim on a name wins: a database here that still holds it (its
      // deletion or rename is later in the stream) gives it up, so that its deletion cannot
      // unbind the name from the new database.
      const created = outcome.database;
      let moved = false;
      for (const other of this.#byIdentity.values()) {
        if (other === created) continue;
        const kept = other.names.filter((name) => !created.names.includes(name));
        if (kept.length === other.names.length) continue;
        other.names.splice(0, other.names.length, ...kept);
        moved = true;
      }
      if (moved) await this.#writeControl();
      return created;
    });
  }

  /** Read replica: runs the primary's module update (the same automatic migration, if any). */
  updateReplica(database: Database, bundle: string): Promise<void> {
    return this.#serialised(async () => {
      const moduleHash = await sha256Hex(bundle);
      this.#pinned.add(database);
      try {
        await database.ensureAwake();
        await this.#updateAwake(database, bundle, database.owner, false, moduleHash, {
          breakClients: true,
          token: await migrationToken(database, moduleHash),
        });
      } finally {
        this.#pinned.delete(database);
      }
    });
  }

  #refuseOnReplica(action: string, database?: Database): void {
    if (this.#options.readOnly !== undefined) {
      throw new BadRequestError(`${action}: ${this.#options.readOnly}`);
    }
    const reason = database && this.#options.readOnlyFor?.(database.key);
    if (reason !== undefined && reason !== "") {
      throw new BadRequestError(`${action}: ${reason}`);
    }
  }

  /**
   * Restarts `database`'s process when `readOnlyFor` now says otherwise than when it started
   * (replication failover: fenced, or its takeover published). Clients stay (hot swap); work
   * admitted before finishes on the old process. A hibernated or stopped database takes the
   * new setting when it next starts.
   */
  applyReadOnly(database: Database): Promise<void> {
    return this.#serialised(async () => {
      if (this.#byIdentity.get(database.key) !== database || this.#closing) return;
      this.#pinned.add(database);
      try {
        await database.transition;
        const host = database.runningHost;
        if (host === undefined || database.stoppedReason !== undefined) return;
        const wanted = this.#options.readOnlyFor?.(database.key);
        if (this.#startedReadOnly.get(host) === wanted) return;
        database.beginUpdate();
        this.#options.onUpdateStart?.(database);
        let serving = false;
        try {
          await database.drained(this.#budgetMs());
          await hostIdle(host, this.#budgetMs());
          this.#stop(database, "restarting read-only or writable", { notify: false });
          await this.#options.storage.closeDatabase(database.key);
          const bundle = await Deno.readTextFile(join(database.directory, "module.js"));
          await this.#serveExisting(database, bundle);
          serving = true;
          this.#options.onUpdateEnd?.(database, false, "the database restarted");
          log.info(wanted === undefined ? "database writable" : "database read-only", {
            identity: database.key,
            ...(wanted === undefined ? {} : { reason: wanted }),
          });
        } catch (error) {
          database.stoppedReason ??= `restarting it failed: ${messageOf(error)}`;
          log.error("restarting a database read-only or writable failed", {
            identity: database.key,
            error: messageOf(error),
          });
        } finally {
          if (!serving) {
            this.#options.onStopped?.(database, database.stoppedReason ?? "restart failed");
          }
          database.endUpdate();
        }
      } finally {
        this.#pinned.delete(database);
      }
    });
  }

  /** What each running process was started with (readOnlyFor at its start). */
  readonly #startedReadOnly = new WeakMap<DatabaseHost, string | undefined>();

  /**
   * What publishing `bundle` to `database` would do (SpacetimeDB's pre_publish): the migration
   * plan's text and whether it disconnects clients, with the token a BreakClients publish must
   * carry; or why it needs a manual migration. Changes nothing.
   */
  async prePublish(
    database: Database,
    bundle: string,
    caller: Identity,
    color: boolean,
  ): Promise<PrePublishOutcome> {
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: "update database",
    });
    const after = await this.#probe(database, bundle);
    const planned = planMigration(database.module.def, after.def);
    if (!planned.ok) return { kind: "manual", reason: formatMigrationErrors(planned.errors) };
    const from = database.hostType;
    const to = hostTypeOf(bundle);
    const hostChange = from === to
      ? ""
      : `The module changes from ${from === "Js" ? "JavaScript" : "WebAssembly"} to ${
        to === "Js" ? "JavaScript" : "WebAssembly"
      } (host type ${from} -> ${to}); the data is kept.\n`;
    return {
      kind: "auto",
      plan: formatMigrationPlan(planned.plan, { color }) + hostChange,
      breakClients: planBreaksClients(planned.plan),
      token: await migrationToken(database, await sha256Hex(bundle)),
    };
  }

  /** Deletes a database and all its data for good. Only its owner may. */
  delete(database: Database, caller: Identity): Promise<void> {
    this.#refuseOnReplica("delete database", database);
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: "delete database",
    });
    return this.#serialised(() => this.#delete(database));
  }

  /** Read replica: deletes the database the primary deleted. */
  deleteReplica(database: Database): Promise<void> {
    return this.#serialised(() => this.#delete(database));
  }

  async #delete(database: Database): Promise<void> {
    this.#pinned.add(database);
    await database.transition;
    const timer = this.#wakeTimers.get(database);
    if (timer !== undefined) clearTimeout(timer);
    this.#wakeTimers.delete(database);
    this.#pinned.delete(database);
    this.#unbind(database);
    this.#stop(database, "database was deleted");
    // Replication stops touching its files before they go.
    await this.#options.onDeleted?.(database.identity);
    await database.logs.close();
    await this.#options.storage.deleteDatabase(database.key);
    this.#segments.forget(database.key);
    await this.#writeControl();
    await Deno.remove(database.directory, { recursive: true }).catch(() => {});
    log.info("database deleted", { identity: database.key });
  }

  /**
   * Replaces a database's names (owner only; used by `rename`). A name held by another
   * database, or by one that failed to start, is refused.
   */
  setNames(database: Database, names: string[], caller: Identity): Promise<void> {
    this.#refuseOnReplica("rename database");
    if (this.#options.onModuleChange) {
      throw new BadRequestError(
        "Renaming a database is not replicated yet: refused while --replicate is on",
      );
    }
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: "rename database",
    });
    return this.#serialised(async () => {
      for (const name of names) {
        if (!isValidDatabaseName(name)) {
          throw new BadRequestError(
            `Invalid database name "${name}": use lowercase letters, digits and single hyphens`,
          );
        }
        const holder = this.#byName.get(name);
        const unstarted = [...this.#unstarted.values()].some((e) => e.names.includes(name));
        if ((holder && holder !== database) || unstarted) {
          throw new BadRequestError(`The database name "${name}" is already taken`);
        }
      }
      this.#unbind(database);
      database.names.splice(0, database.names.length, ...new Set(names));
      this.#bind(database);
      await this.#writeControl();
      log.info("database renamed", { identity: database.key, names: names.join(",") });
    });
  }

  /**
   * Writes a snapshot of the database now (owner only) and resolves with the
   * number of transactions it covers.
   */
  async snapshot(database: Database, caller: Identity): Promise<number> {
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: "take a snapshot",
    });
    const release = await database.admit();
    try {
      return Number(await this.#options.storage.requestSnapshot(database.key));
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#segments.close();
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    for (const timer of this.#wakeTimers.values()) clearTimeout(timer);
    this.#wakeTimers.clear();
    for (const timer of this.#crashPauseTimers.values()) clearTimeout(timer);
    this.#crashPauseTimers.clear();
    await this.#controlChain;
    for (const database of this.list()) {
      await database.transition;
      database.stopProcess();
      await database.logs.close();
      await this.#options.storage.closeDatabase(database.key).catch(() => {});
    }
  }

  /** Refuses a new database over the server-wide or the caller's quota (publish is serialised). */
  #checkQuota(caller: Identity): void {
    const max = this.#options.maxDatabases ?? DATABASES_MAX_DEFAULT;
    const hosted = this.#byIdentity.size + this.#unstarted.size;
    if (hosted >= max) {
      throw new QuotaExceededError(
        `this server hosts ${hosted} databases, the limit set by ` +
          `--max-databases is ${max}; delete a database or ask the operator to raise it`,
      );
    }
    const perIdentityMax = this.#options.maxDatabasesPerIdentity ??
      DATABASES_PER_IDENTITY_MAX_DEFAULT;
    const callerHex = caller.toHex();
    let owned = this.ownedBy(caller).length;
    for (const entry of this.#unstarted.values()) if (entry.owner === callerHex) owned++;
    if (owned >= perIdentityMax) {
      throw new QuotaExceededError(
        `identity ${callerHex} owns ${owned} databases, the limit set by ` +
          `--max-databases-per-identity is ${perIdentityMax}; delete one of them or ask the ` +
          `operator to raise it`,
      );
    }
  }

  async #publish(
    target: string | undefined,
    bundle: string,
    caller: Identity,
    clear: boolean,
    policy: MigrationPolicy,
    replica?: ModuleChange,
  ): Promise<PublishOutcome> {
    let name: string | undefined;
    let existing: Database | undefined;
    if (target !== undefined) {
      existing = this.resolve(target);
      const unstarted = [...this.#unstarted.values()].find((entry) =>
        entry.names.includes(target) || entry.identity === Identity.tryFromHex(target)?.toHex()
      );
      if (!existing && unstarted) {
        throw new BadRequestError(
          `Database ${unstarted.identity} failed to start (${unstarted.reason}); ` +
            `fix or remove its data before publishing to it`,
        );
      }
      if (!existing) {
        if (Identity.tryFromHex(target)) throw new NotFoundError(`\`${target}\` not found`);
        if (!isValidDatabaseName(target)) {
          throw new BadRequestError(
            `Invalid database name "${target}": use lowercase letters, digits and single hyphens`,
          );
        }
        name = target;
      }
    }
    const moduleHash = await sha256Hex(bundle);
    if (existing) return await this.#update(existing, bundle, caller, clear, moduleHash, policy);
    if (!replica) this.#checkQuota(caller);

    const identity = replica?.identity ?? await this.#options.mintIdentity();
    const names = replica ? replica.names : name ? [name] : [];
    const directory = this.#directoryOf(identity);
    await Deno.mkdir(directory, { recursive: true });
    const settle = await this.#options.onModuleChange?.({
      identity,
      owner: caller,
      names,
      bundle,
      atTx: 0,
    });
    const logs = await LogBuffer.open(join(directory, "module.log"), this.#logOptions());
    let started: { host: DatabaseHost; durableTxOffset: number };
    try {
      started = await this.#startHost(identity, caller, bundle, {
        runInit: replica === undefined,
        logs,
        moduleHash,
      });
      await settle?.(true);
    } catch (error) {
      await settle?.(false).catch(() => {});
      await logs.close();
      await this.#options.storage.deleteDatabase(identity.toHex()).catch(() => {});
      await Deno.remove(directory, { recursive: true }).catch(() => {});
      throw publishError(error);
    }
    const database = new Database(
      identity,
      caller,
      names,
      started.host,
      moduleHash,
      logs,
      directory,
      started.durableTxOffset,
    );
    database.hostType = hostTypeOf(bundle);
    this.#bind(database);
    // Durable events that came before the bind were dropped; the actor still knows.
    this.#catchUpDurable(database);
    await writeFileAtomic(join(directory, "module.js"), bundle);
    // Only a database whose init is on disk goes into control.json.
    await database.whenDurable(started.host.txOffset);
    await this.#writeControl();
    log.info("database created", { identity: identity.toHex(), name: names.join(",") });
    return { database, op: "created" };
  }

  async #update(
    database: Database,
    bundle: string,
    caller: Identity,
    clear: boolean,
    moduleHash: string,
    policy: MigrationPolicy,
  ): Promise<PublishOutcome> {
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: clear ? "reset database" : "update database",
    });
    // A hibernated database is woken and stays awake while it is updated.
    this.#pinned.add(database);
    try {
      await database.ensureAwake();
      return await this.#updateAwake(database, bundle, caller, clear, moduleHash, policy);
    } finally {
      this.#pinned.delete(database);
    }
  }

  async #updateAwake(
    database: Database,
    bundle: string,
    _caller: Identity,
    clear: boolean,
    moduleHash: string,
    policy: MigrationPolicy,
  ): Promise<PublishOutcome> {
    if (!clear && moduleHash === database.moduleHash && !database.stoppedReason) {
      return { database, op: "updated" };
    }
    if (database.storageFailure) {
      throw new BadRequestError(
        `Database update rejected: its commit log failed (${database.storageFailure})`,
      );
    }
    // Check the new module before touching the running database: it must load, and its
    // schema must be reachable from the stored one by an automatic migration (spec §4.2).
    const after = await this.#probe(database, bundle);
    const migrate = !clear &&
      tablesFingerprint(database.module.def) !== tablesFingerprint(after.def);
    let breakClients = clear;
    if (!clear) {
      const planned = planMigration(database.module.def, after.def);
      if (!planned.ok) {
        throw new BadRequestError(
          `Database update rejected: ${formatMigrationErrors(planned.errors)}`,
        );
      }
      breakClients = planBreaksClients(planned.plan);
      if (policy.breakClients) {
        if (policy.token === undefined) {
          throw new BadRequestError(
            "Migration policy is set to `BreakClients`, but no migration token was provided.",
          );
        }
        if (policy.token !== await migrationToken(database, moduleHash)) {
          throw new BadRequestError("Token provided is invalid or does not match expected hash");
        }
      } else if (breakClients) {
        throw new BadRequestError(
          "Migration plan contains a client-breaking change which is disallowed under current policy",
        );
      }
    }
    const genesisPath = join(database.directory, GENESIS_FILE);
    const nextPath = join(database.directory, NEXT_MODULE_FILE);
    if (migrate && !(await exists(genesisPath))) {
      // The log so far holds rows of the current schema: say so before it changes.
      await writeFileAtomic(genesisPath, database.host.describe);
    }
    // Written before the migration can reach the log: a restart that finds it tries it first
    // (it is right exactly when the schema-change record is on disk).
    await writeFileAtomic(nextPath, bundle);
    // A database may switch between JS and Wasm modules: the migration rules above decide.
    const previousHostType = database.hostType;
    // Kept to restart the old module if the update fails (a reset has no way back).
    const oldBundle = clear ? "" : await Deno.readTextFile(join(database.directory, "module.js"));
    // From here HTTP calls, queries and new WebSocket connections wait for the new
    // module (Database.admit); admitted calls and handshakes finish on the old one.
    database.beginUpdate();
    this.#options.onUpdateStart?.(database);
    let started: { host: DatabaseHost; durableTxOffset: number };
    let serving = false;
    try {
      await database.drained(this.#budgetMs());
      await hostIdle(database.host, this.#budgetMs());
      // WebSocket clients stay (onUpdateEnd decides); the old process goes.
      this.#stop(database, "the module was updated", { notify: false });
      let settle: ((ok: boolean) => Promise<void>) | undefined;
      if (clear) {
        await this.#options.storage.deleteDatabase(database.key);
        await Deno.remove(genesisPath).catch(() => {});
      } else {
        await this.#options.storage.closeDatabase(database.key);
        // The old process is gone and its log closed: the new module starts at its end.
        settle = await this.#options.onModuleChange?.({
          identity: database.identity,
          owner: database.owner,
          names: [...database.names],
          bundle,
          atTx: database.durableTxOffset,
        });
      }
      try {
        started = await this.#startHost(database.identity, database.owner, bundle, {
          runInit: clear,
          logs: database.logs,
          moduleHash,
          migrate,
          genesis: await readGenesis(database.directory),
        });
      } catch (error) {
        await Deno.remove(nextPath).catch(() => {});
        await settle?.(false);
        if (clear) {
          database.stoppedReason = `the new module failed to start: ${messageOf(error)}`;
          throw publishError(error);
        }
        // Any failure leaves the old module serving with the data it had.
        await this.#options.storage.closeDatabase(database.key).catch(() => {});
        await this.#serveExisting(database, oldBundle);
        serving = true;
        this.#options.onUpdateEnd?.(database, false, "the module update failed");
        throw new BadRequestError(
          `Failed to create or update the database: ${migrationFailure(error)}`,
        );
      }
      await settle?.(true);
      database.host = started.host;
      database.module = moduleInfoFromDescribe(started.host.describe);
      database.moduleHash = moduleHash;
      database.hostType = hostTypeOf(bundle);
      database.stoppedReason = undefined;
      database.durableTxOffset = started.durableTxOffset;
      this.#catchUpDurable(database);
      serving = true;
      this.#options.onUpdateEnd?.(database, breakClients, "the module was updated");
    } finally {
      // Nothing serves (a reset whose module failed, or the old module did not come back).
      if (!serving) {
        this.#options.onStopped?.(database, database.stoppedReason ?? "the module update failed");
      }
      database.endUpdate();
    }
    await database.whenDurable(started.host.txOffset);
    if (clear) {
      // Deleting the data removed the directory's files, module.next.js included.
      await writeFileAtomic(join(database.directory, "module.js"), bundle);
      await this.#writeControl();
    } else {
      // control.json first (new module hash and host type): a restart between the two finds
      // module.next.js and starts it (the migration, if any, is durable by now), so it never
      // sees the new module.js under the old hash and host type.
      await this.#writeControl();
      await Deno.rename(nextPath, join(database.directory, "module.js"));
      await syncDirectory(database.directory, { bestEffort: true });
    }
    log.info("database updated", {
      identity: database.key,
      clear,
      migrated: migrate,
      breakClients,
      hostType: database.hostType,
      ...(previousHostType !== database.hostType ? { previousHostType } : {}),
    });
    return { database, op: "updated" };
  }

  /** Loads `bundle` in a throw-away process (no data) and returns its module definition. */
  async #probe(database: Database, bundle: string): Promise<ModuleInfo> {
    const moduleHash = await sha256Hex(bundle);
    const key = `${database.identity.toHex()}:${moduleHash}`;
    const known = this.#probedByHash.get(key);
    if (known) return known;
    const prepared = this.#preparedByHash.get(moduleHash);
    const probe = await DatabaseHost.start({
      bundle,
      // The probe prepares the bundle (instrumented, imports rewritten) for the start that
      // follows when the publish goes ahead, or uses what an earlier process prepared.
      prepared,
      onPrepared: prepared ? undefined : (module) => this.#rememberPrepared(moduleHash, module),
      databaseIdentity: database.identity.toBigInt(),
      ownerIdentity: database.owner.toBigInt(),
      runInit: false,
      reducerBudgetMs: this.#budgetMs(),
      memoryMb: this.#options.databaseMemoryMb,
      limits: this.#options.limits,
    }).catch((error) => {
      throw new BadRequestError(`Database update rejected: ${messageOf(error)}`);
    });
    probe.stop();
    const info = moduleInfoFromDescribe(probe.describe);
    this.#probedByHash.delete(key);
    this.#probedByHash.set(key, info);
    while (this.#probedByHash.size > PREPARED_KEPT_IN_MEMORY) {
      this.#probedByHash.delete(this.#probedByHash.keys().next().value!);
    }
    return info;
  }

  /** The HTTP allow-list entries of a database (shown by `describe`). */
  httpAllowListFor(database: Database): string[] {
    return this.#options.outboundHttp?.allowListFor({
      name: database.names[0],
      identity: database.identity.toHex(),
    }) ?? [];
  }

  async #outboundHttp(
    key: string,
    request: OutboundHttpRequest,
    logs: LogBuffer,
    cancel: AbortSignal,
  ): Promise<OutboundHttpResponse> {
    const outbound = this.#options.outboundHttp;
    const requestId = request.requestId;
    const database = this.#byIdentity.get(key);
    if (!outbound) {
      return {
        type: "http-response",
        requestId,
        error: "module outbound HTTP requests are disabled",
      };
    }
    const result = await outbound.perform(
      { name: database?.names[0], identity: key },
      request,
      (line) => logs.append([line]),
      cancel,
    );
    return result.ok
      ? {
        type: "http-response",
        requestId,
        status: result.status,
        headers: result.headers,
        body: result.body,
      }
      : { type: "http-response", requestId, error: result.error };
  }

  /** Opens the database's commit log and starts its worker, which replays the log. */
  async #startHost(
    identity: Identity,
    owner: Identity,
    bundle: string,
    options: {
      runInit: boolean;
      logs: LogBuffer;
      moduleHash: string;
      resumeSchedules?: ResumedSchedule[];
      migrate?: boolean;
      genesis?: Uint8Array;
    },
  ): Promise<{ host: DatabaseHost; durableTxOffset: number }> {
    const key = identity.toHex();
    const directory = this.#directoryOf(identity);
    const cached = await readPreparedModule(directory, options.moduleHash);
    // Databases publishing the same bundle share its preparation: the tick name only has to
    // be unknown to the bundle's author when the content was fixed, and it is per content.
    const prepared = cached ?? this.#preparedByHash.get(options.moduleHash);
    if (prepared && !cached) void writePreparedModule(directory, options.moduleHash, prepared);
    const opened = await this.#options.storage.openDatabase(key, this.#options.limits);
    const readOnly = this.#options.readOnly ?? this.#options.readOnlyFor?.(key);
    try {
      // Assigned when start() resolves. A reply can be handled before that continuation runs
      // (a resumed schedule due at once, its batch read with the "ready" message): its callbacks
      // then see no host yet and drop it, as they drop any host's that is not running, instead
      // of a ReferenceError that killed the database as a "malformed reply".
      let host: DatabaseHost | undefined = undefined;
      host = await DatabaseHost.start({
        prepared,
        resumeSchedules: options.resumeSchedules,
        onPrepared: (module) => {
          this.#rememberPrepared(options.moduleHash, module);
          void writePreparedModule(directory, options.moduleHash, module);
        },
        bundle,
        databaseIdentity: identity.toBigInt(),
        ownerIdentity: owner.toBigInt(),
        runInit: options.runInit,
        readOnly,
        reducerBudgetMs: this.#budgetMs(),
        memoryMb: this.#options.databaseMemoryMb,
        limits: this.#options.limits,
        durabilityPort: opened.port,
        migrate: options.migrate,
        genesisDescribe: options.genesis,
        onLogs: (lines: LogLine[]) => options.logs.append(lines),
        onEvents: (items, originOf) => {
          const database = this.#byIdentity.get(key);
          if (host === undefined || database?.runningHost !== host) return;
          database.lastActiveMs = performance.now();
          database.metrics.recordItems(items);
          this.#options.onEvents?.(database, items, originOf);
        },
        onCrash: (error) => {
          const database = this.#byIdentity.get(key);
          if (host !== undefined && database?.hasHost(host)) this.#crashed(database, error);
        },
        onStalls: (stalls) => {
          const database = this.#byIdentity.get(key);
          if (host !== undefined && database?.runningHost === host) {
            database.metrics.recordStalls(stalls);
          }
        },
        onBatchTimed: (ms) => {
          const database = this.#byIdentity.get(key);
          if (host !== undefined && database?.runningHost === host) {
            database.metrics.batchRoundTrip.observe(ms * 1000);
          }
        },
        outboundHttp: (request, cancel) => this.#outboundHttp(key, request, options.logs, cancel),
      });
      this.#startedReadOnly.set(host, readOnly);
      // Recovery read only the segments after the snapshot it started from: check the older
      // ones in the background (each once per run; a wake or restart finds them judged).
      this.#segments.schedule(key);
      return { host, durableTxOffset: Number(opened.durableOffset) };
    } catch (error) {
      await this.#options.storage.closeDatabase(key).catch(() => {});
      throw error;
    }
  }

  /** Resolves once the background check of old commit-log segments has nothing to do (tests). */
  segmentChecksIdle(): Promise<void> {
    return this.#segments.idle();
  }

  /**
   * A verdict on an old segment: counted, and a damaged one logged loudly. The database keeps
   * serving (it recovered from a snapshot after that segment); the segment would be needed only
   * if every newer snapshot were lost, which is what the operator must now prevent or repair.
   */
  #segmentVerdict(key: string, verdict: SegmentVerdict): void {
    const database = this.#byIdentity.get(key);
    if (verdict.kind === "ok") {
      if (database) database.metrics.commitLogSegmentsVerified++;
      return;
    }
    if (verdict.kind === "unreadable") {
      if (database) {
        log.warn("could not check an old commit-log segment", {
          identity: key,
          path: verdict.path,
          error: verdict.error,
        });
      }
      return;
    }
    if (database) database.metrics.commitLogSegmentsCorrupt++;
    log.error(
      "commit-log segment before the newest snapshot is corrupt: the database serves from its " +
        "snapshot, but could not be recovered without it; keep its snapshots and restore the " +
        "segment from a backup",
      {
        identity: key,
        path: verdict.path,
        byteOffset: verdict.byteOffset,
        reason: verdict.reason,
      },
    );
  }

  /** A worker died (out of memory, a host bug): restart it from the commit log. */
  #crashed(database: Database, error: Error): void {
    // A process that dies while it is being hibernated is simply hibernated: the next request
    // recovers it from its log (#hibernate), so no restart here.
    if (database.hibernation === "hibernating") return;
    const reason = `the database worker stopped: ${error.message}`;
    if (database.hibernation !== "awake") return;
    const crashedHost = database.host;
    this.#stop(database, reason);
    if (this.#closing || database.storageFailure) return;
    const now = Date.now();
    database.restarts.push(now);
    while (database.restarts.length && database.restarts[0] < now - 60_000) {
      database.restarts.shift();
    }
    if (database.restarts.length === 1) database.crashPauses = 0;
    if (database.restarts.length > RESTARTS_PER_MINUTE_MAX) {
      const pauseMs = Math.min(CRASH_PAUSE_MS * 2 ** database.crashPauses, CRASH_PAUSE_MAX_MS);
      database.crashPauses++;
      const at = new Date(now + pauseMs).toISOString();
      database.stoppedReason = `${reason} (it crashed ${database.restarts.length} times within ` +
        `a minute: it restarts at ${at})`;
      log.error("database keeps crashing; restarting it after a pause", {
        identity: database.key,
        pauseMs,
      });
      clearTimeout(this.#crashPauseTimers.get(database));
      this.#crashPauseTimers.set(
        database,
        setTimeout(() => {
          this.#crashPauseTimers.delete(database);
          // Only what is still this crash's stop: an update or a delete meanwhile took over.
          if (database.stoppedReason?.startsWith(reason) !== true) return;
          database.restarts.length = 0;
          this.#restartAfterCrash(database, crashedHost);
        }, pauseMs),
      );
      return;
    }
    this.#restartAfterCrash(database, crashedHost);
  }

  /** Starts a crashed database's process again from its commit log. */
  #restartAfterCrash(database: Database, crashedHost: DatabaseHost): void {
    void this.#serialised(async () => {
      // Something else (an update, a delete) replaced or removed this worker meanwhile.
      if (this.#byIdentity.get(database.key) !== database || this.#closing) return;
      if (database.host !== crashedHost) return;
      await this.#options.storage.closeDatabase(database.key).catch(() => {});
      // A storage failure reported while we waited makes the stop permanent.
      if (database.storageFailure) return;
      const bundle = await Deno.readTextFile(join(database.directory, "module.js"));
      const host = await this.#serveExisting(database, bundle);
      database.metrics.restarts++;
      log.info("database restarted from its commit log", {
        identity: database.key,
        transactions: host.txOffset,
      });
    }).catch((restartError) => {
      log.error("database restart failed", { identity: database.key, error: String(restartError) });
    });
  }

  /** Keeps the few most recently prepared bundles in memory, by module hash. */
  #rememberPrepared(moduleHash: string, module: PreparedModule): void {
    this.#preparedByHash.delete(moduleHash);
    this.#preparedByHash.set(moduleHash, module);
    while (this.#preparedByHash.size > PREPARED_KEPT_IN_MEMORY) {
      this.#preparedByHash.delete(this.#preparedByHash.keys().next().value!);
    }
  }

  /**
   * Starts `bundle` again for an existing database (no init: its state comes from its log) and
   * makes the new process the one serving it. The caller has stopped the old one and closed its
   * log. Returns the new host.
   */
  async #serveExisting(database: Database, bundle: string): Promise<DatabaseHost> {
    const started = await this.#startHost(database.identity, database.owner, bundle, {
      runInit: false,
      logs: database.logs,
      moduleHash: database.moduleHash,
      genesis: await readGenesis(database.directory),
    });
    database.host = started.host;
    database.stoppedReason = undefined;
    database.durableTxOffset = started.durableTxOffset;
    this.#catchUpDurable(database);
    return started.host;
  }

  /** Applies the durable offset the actor knows, in case its event came before we listened. */
  #catchUpDurable(database: Database): void {
    const offset = this.#options.storage.durableOffset(database.key);
    if (offset !== undefined) database.markDurable(Number(offset));
  }

  #stop(database: Database, reason: string, options: { notify?: boolean } = {}): void {
    database.stoppedReason = reason;
    database.stopProcess();
    database.failWaiters(reason);
    if (options.notify ?? true) this.#options.onStopped?.(database, reason);
  }

  #logOptions(): LogBufferOptions {
    return { bytesPerS: this.#options.limits?.moduleLogBytesPerS };
  }

  #budgetMs(): number {
    return this.#options.reducerBudgetMs ?? REDUCER_TIME_BUDGET_MS_DEFAULT;
  }

  #bind(database: Database): void {
    database.wakeHandler ??= () =>
      this.#wake(database, database.hibernation === "waking" ? "recovery" : "wake");
    this.#byIdentity.set(database.key, database);
    for (const name of database.names) this.#byName.set(name, database);
  }

  #unbind(database: Database): void {
    this.#byIdentity.delete(database.key);
    for (const name of database.names) this.#byName.delete(name);
  }

  #serialised<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#controlChain.then(operation, operation);
    this.#controlChain = run.catch(() => {});
    return run;
  }

  /** Writes control.json after the control operations queued so far (never waits for it). */
  #rewriteControlLater(): void {
    void this.#serialised(() => this.#writeControl()).catch((error) =>
      log.error("could not write control.json", { error: messageOf(error) })
    );
  }

  #controlPath(): string {
    return join(this.#options.dataDir, "control.json");
  }

  #directoryOf(identity: Identity): string {
    return join(this.#options.dataDir, "databases", identity.toHex());
  }

  async #writeControl(): Promise<void> {
    const control: ControlFile = {
      version: 2,
      databases: [
        ...this.list().map((database) => ({
          identity: database.key,
          owner: database.owner.toHex(),
          names: database.names,
          hostType: database.hostType,
          moduleHash: database.moduleHash,
        })),
        ...[...this.#unstarted.values()].map(({ reason: _reason, ...entry }) => entry),
      ],
    };
    await writeFileAtomic(this.#controlPath(), JSON.stringify(control, null, 2));
  }
}

/** The token a BreakClients publish must bring back from pre_publish (as SpacetimeDB derives it). */
async function migrationToken(database: Database, newModuleHash: string): Promise<string> {
  return "0x" + await sha256Hex(database.identity.toHex() + database.moduleHash + newModuleHash);
}

/** The reason a migration or the new module failed, without the worker's error class name. */
function migrationFailure(error: unknown): string {
  return messageOf(error).replace(/^(MigrationFailedError|Error): /, "");
}

/** Resolves once the host has answered everything sent to it, or after `waitMs` regardless. */
async function hostIdle(host: DatabaseHost, waitMs: number): Promise<void> {
  const deadline = performance.now() + waitMs;
  while (
    (host.batchesInFlight > 0 || host.queuedRequests > 0) && host.alive &&
    performance.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Whether `path` exists; errors other than "not found" are thrown, not read as "no". */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function readGenesis(directory: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(join(directory, GENESIS_FILE));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function publishError(error: unknown): Error {
  if (error instanceof ModuleInitError) {
    return new BadRequestError(`Failed to publish the module: ${error.message}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function writeFileAtomic(path: string, content: string | Uint8Array): Promise<void> {
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
  try {
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(temporary, path);
  // The rename is durable only once the directory is.
  await syncDirectory(join(path, ".."), { bestEffort: true });
}

/** Prepared bundles kept in memory for publishes of the same bundle (~2× bundle size each). */
const PREPARED_KEPT_IN_MEMORY = 4;

/** setTimeout's largest delay. */
const TIMER_DELAY_MS_MAX = 2_147_483_647;

/** Runs `run` for every item, at most `limit` at a time; resolves when all settled. */
/** Runs at most `limit` tasks at a time; the others wait in arrival order. */
class Slots {
  readonly #limit: number;
  readonly #waiting: (() => void)[] = [];
  running = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** `task` as a function that runs it in a slot. */
  wrap<T>(task: () => Promise<T>): () => Promise<T> {
    return () => this.run(task);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.#limit) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else this.running++;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next(); // the slot passes to the next task
      else this.running--;
    }
  }
}

async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++];
      try {
        await run(item);
      } catch (error) {
        log.error("database lifecycle step failed", { error: messageOf(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Written when a database hibernates, removed before it wakes: a server restarted meanwhile
 * leaves it hibernated (its state is the snapshot at `txOffset`, its log ends there).
 */
const HIBERNATION_FILE = "hibernation.json";

interface HibernationRecord {
  moduleHash: string;
  txOffset: number;
  nextScheduleMicros: number;
  schedules: ResumedSchedule[];
  describe: Uint8Array;
}

async function writeHibernation(directory: string, record: HibernationRecord): Promise<void> {
  const json = JSON.stringify({
    version: 1,
    moduleHash: record.moduleHash,
    txOffset: record.txOffset,
    nextScheduleMicros: record.nextScheduleMicros,
    schedules: record.schedules.map((entry) => [
      entry.tableId,
      String(entry.scheduledId),
      String(entry.intendedMicros),
    ]),
    describe: encodeBase64(record.describe),
  });
  await writeFileAtomic(join(directory, HIBERNATION_FILE), json);
}

/** The hibernation record of a database, if it has a valid one for `moduleHash`. */
async function readHibernation(
  directory: string,
  moduleHash: string,
): Promise<
  (Omit<HibernationRecord, "describe"> & { module: ModuleInfo }) | undefined
> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(directory, HIBERNATION_FILE));
  } catch {
    return undefined;
  }
  try {
    const record = JSON.parse(text);
    if (record?.version !== 1 || record.moduleHash !== moduleHash) return undefined;
    if (!Number.isSafeInteger(record.txOffset) || typeof record.nextScheduleMicros !== "number") {
      return undefined;
    }
    const schedules: ResumedSchedule[] = (record.schedules as [number, string, string][]).map((
      [tableId, scheduledId, intendedMicros],
    ) => ({ tableId, scheduledId: BigInt(scheduledId), intendedMicros: BigInt(intendedMicros) }));
    const module = moduleInfoFromDescribe(decodeBase64(record.describe));
    return {
      moduleHash,
      txOffset: record.txOffset,
      nextScheduleMicros: record.nextScheduleMicros,
      schedules,
      module,
    };
  } catch (error) {
    log.warn("ignoring an unreadable hibernation record; the database recovers from its log", {
      directory,
      error: messageOf(error),
    });
    return undefined;
  }
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Where a database's prepared bundle is cached (worker/messages.ts PreparedModule). */
const PREPARED_FILE = "module.prepared.json";

/** The cached prepared bundle of `moduleHash`, or undefined (none, another module, unreadable). */
async function readPreparedModule(
  directory: string,
  moduleHash: string,
): Promise<PreparedModule | undefined> {
  try {
    const cached = JSON.parse(await Deno.readTextFile(join(directory, PREPARED_FILE)));
    if (
      cached?.moduleHash !== moduleHash || typeof cached.source !== "string" ||
      typeof cached.tickName !== "string"
    ) return undefined;
    return { source: cached.source, tickName: cached.tickName };
  } catch {
    return undefined;
  }
}

/** Caches a prepared bundle; a cache, so no fsync (a torn file is ignored when read). */
async function writePreparedModule(
  directory: string,
  moduleHash: string,
  module: PreparedModule,
): Promise<void> {
  const path = join(directory, PREPARED_FILE);
  const temporary = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temporary, JSON.stringify({ moduleHash, ...module }));
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    log.warn("could not cache a prepared module", { directory, error: messageOf(error) });
  }
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
