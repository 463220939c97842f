/**
 * One database inside its worker: the module instance, the datastore and the
 * per-call transaction rules of module-abi.md §1.5, §3.7 and §7.5. Pure logic over
 * injected clock and budget, so it can be driven without a Worker in tests.
 */
import { assert } from "../lib/assert.ts";
import type { Clock } from "../lib/clock.ts";
import {
  commitLogBurstBytes,
  DATABASE_LIMITS_DEFAULT,
  DATABASE_MEMORY_MB_DEFAULT,
  type DatabaseLimits,
  LOG_MESSAGE_CHARS_MAX,
} from "../lib/limits.ts";
import { TokenBucket } from "../lib/token_bucket.ts";
import { truncateText } from "../lib/truncate.ts";
import {
  Datastore,
  type MutTx,
  type StateCursor,
  type TableSchema,
  type TxDelta,
  type TxRecord,
} from "../storage/mod.ts";
import { concatBytes } from "../lib/bytes.ts";
import { ST_VAR_SCHEMA } from "../query/mod.ts";
import { BinaryReader, skipValue } from "../protocol/mod.ts";
import {
  createSyscalls,
  FatalHostError,
  LOG_LEVEL_NAMES,
  type Syscalls,
  type SysEnv,
} from "./sys_abi.ts";
import {
  describeError,
  describeErrorStack,
  loadModule,
  type ModuleHooks,
} from "./module_loader.ts";
import { type ModuleInfo, moduleInfoFromDescribe, type ReducerInfo } from "./module_info.ts";
import { isWasmBundle, loadWasmModule, wasmBundleBytes } from "../wasm/mod.ts";

import type { CallResult, LogLine, ProcedureResult, ResumedSchedule } from "./messages.ts";
import { ModuleLogLimiter } from "./log_limiter.ts";
import { formatMigrationErrors, planMigration, tablesFingerprint } from "./auto_migrate.ts";
import {
  decodeMigrationArgs,
  encodeMigrationArgs,
  migrateDatastore,
  MIGRATION_RECORD_NAME,
  MigrationFailedError,
  unwrapSnapshot,
  wrapSnapshot,
} from "./migrate_datastore.ts";
import { nextIntervalTick, ScheduleQueue } from "./scheduler.ts";
import type { ViewDef } from "../protocol/mod.ts";
import { NO_RLS_RULES, resolveRlsRules, type RlsRules } from "../query/mod.ts";
import type { ViewReadRecorder } from "./sys_abi.ts";
import { type PendingViewChanges, ViewFailureError, ViewManager } from "./views.ts";

/** Starts the error of a module whose schema is not the one its commit log holds. */
export const SCHEMA_MISMATCH_PREFIX = "Schema mismatch";

export class SchemaMismatchError extends Error {
  override name = "SchemaMismatchError";
}

/** The caller-facing text of any internal reducer failure (SpacetimeDB's wording). */
export const GENERIC_FAILURE_MESSAGE = "The instance encountered a fatal error.";

/** Runaway protection: start before a hook call, stop after. */
export interface CallBudget {
  /** `nowMs`: the engine clock's monotonic time, just read (budget and engine share a clock). */
  start(budgetMs: number, nowMs?: number): void;
  /**
   * Ends the call's budget; true when the call ran over it (a tick saw the deadline pass, or
   * `nowMs`, the engine clock's time just read, is past it).
   */
  stop(nowMs?: number): boolean;
  /** True when `error` is the budget's own "time is up" error. */
  isExceeded(error: unknown): boolean;
}

export const NO_BUDGET: CallBudget = {
  start() {},
  stop: () => false,
  isExceeded: () => false,
};

export interface EngineOptions {
  clock: Clock;
  budget: CallBudget;
  reducerBudgetMs: number;
  /** The process's memory budget in MiB, named in out-of-memory errors. */
  memoryBudgetMb?: number;
  databaseIdentity: bigint;
  /** The database owner: the only caller allowed to call private (e.g. scheduled) reducers. */
  ownerIdentity?: bigint;
  loadTimeoutMs: number;
  /** Per-database rates and sizes (lib/limits.ts); the defaults when absent. */
  limits?: DatabaseLimits;
  /**
   * Hands a scheduled procedure run to the procedure thread (worker/procedures.ts); false when
   * there is none, and the procedure then runs here.
   */
  runProcedureElsewhere?: (
    name: string,
    args: Uint8Array,
    sender: bigint,
    timestampMicros: bigint,
  ) => boolean;
  /**
   * Set on a read replica (`--follow`): the text every write attempt (reducer or procedure call,
   * owner DML) fails with. Lifecycle reducers and schedules do not run; the state changes only
   * by replicated transactions (`applyReplicated`, which re-runs the views they touch).
   */
  readOnly?: string;
}

/**
 * The longest delay a schedule row may ask for (2^36 - 1 ms, about 2.18 years, as in
 * SpacetimeDB); a longer one fails the insert with errno SCHEDULE_AT_DELAY_TOO_LONG.
 */
export const SCHEDULE_DELAY_MICROS_MAX = ((1n << 36n) - 1n) * 1000n;

/** The `ScheduleAt` of a schedule row: tag 0 `Interval(µs)`, tag 1 `Time(µs since epoch)`. */
interface ScheduleFields {
  scheduledId: bigint;
  kind: "Interval" | "Time";
  micros: bigint;
}

/** A table whose rows schedule a reducer or a procedure (module-abi.md §5.2). */
interface ScheduleTable {
  tableId: number;
  name: string;
  /** Canonical name of the function to call. */
  functionName: string;
  functionKind: "reducer" | "procedure";
  /** Index on the `scheduled_id` primary key, for the lookup when a timer fires. */
  idIndexId: number | undefined;
  read(row: Uint8Array): ScheduleFields;
}

/** A committed transaction, ready for the commit log and subscription evaluation. */
export interface CommittedTx {
  txOffset: number;
  reducer: string;
  sender: bigint;
  connectionId: bigint;
  timestampMicros: bigint;
  args: Uint8Array;
  /** The datastore's net change, plus the changes of view instance tables (never logged). */
  delta: TxDelta;
  /** True when `delta` lists view instance tables (worker/views.ts), which the log skips. */
  hasViewTables?: boolean;
}

/** A view's own code threw (any error, SenderError too, fails the surrounding call). */
class ViewHookError extends Error {
  override name = "ViewHookError";
}

/**
 * A commit record's bytes besides its rows (storage/commit_record.ts): format, reserved,
 * timestamp, caller identity and connection id, the u32 lengths of reducer name and arguments,
 * and the table and sequence counts.
 */
const TX_RECORD_FIXED_BYTES = 1 + 1 + 8 + 32 + 16 + 4 + 4 + 4 + 4;
/** One sequence position in a commit record: table id, column, next value (i128). */
const TX_RECORD_SEQUENCE_BYTES = 4 + 2 + 16;

export class DatabaseEngine {
  readonly #options: EngineOptions;
  #hooks!: ModuleHooks;
  #sys!: Syscalls;
  #datastore!: Datastore;
  #module!: ModuleInfo;
  #describe!: Uint8Array;
  /** The schema the datastore holds: the module's, or an older one while the log replays. */
  #stored!: ModuleInfo;
  #storedDescribe!: Uint8Array;
  #tx: MutTx | undefined;
  #poison: Error | undefined;
  #currentFunction: string | undefined;
  #txOffset = 0;
  readonly #logs: ModuleLogLimiter;
  readonly #limits: DatabaseLimits;
  /** Commit-log bytes this database may still write (refills at limits.commitLogBytesPerS). */
  readonly #commitBucket: TokenBucket;
  /** Sequences of the module's tables: each can add a position to a commit record. */
  #sequenceCount = 0;
  #jwtPayloads = new Map<bigint, Uint8Array>();
  /** Connected clients (connection id -> identity), for `st_client`. */
  readonly #clients = new Map<bigint, bigint>();
  #committed: CommittedTx[] = [];
  readonly #schedules = new ScheduleQueue();
  #scheduleTables = new Map<number, ScheduleTable>();
  #anonymous = false;
  #procedure:
    | { name: string; sender: bigint; connectionId: bigint; args: Uint8Array; startMs: number }
    | undefined;
  #views!: ViewManager;
  #rlsRules: RlsRules = NO_RLS_RULES;
  /** The read set of the view running now, if one is. */
  #viewReads: ViewReadRecorder | undefined;

  constructor(options: EngineOptions) {
    this.#options = options;
    const limits = options.limits ?? DATABASE_LIMITS_DEFAULT;
    this.#limits = limits;
    this.#commitBucket = new TokenBucket(
      limits.commitLogBytesPerS,
      commitLogBurstBytes(limits),
      () => options.clock.monotonicMs(),
    );
    this.#logs = new ModuleLogLimiter(limits.moduleLogBytesPerS, () => options.clock.monotonicMs());
  }

  get module(): ModuleInfo {
    return this.#module;
  }
  get datastore(): Datastore {
    return this.#datastore;
  }
  get describeBytes(): Uint8Array {
    return this.#describe;
  }
  get txOffset(): number {
    return this.#txOffset;
  }
  get views(): ViewManager {
    return this.#views;
  }
  /** The module's row-level security rules by protected table (checked at load). */
  get rlsRules(): RlsRules {
    return this.#rlsRules;
  }
  get databaseIdentity(): bigint {
    return this.#options.databaseIdentity;
  }

  /**
   * Loads the module, decodes its definition and builds an empty datastore. `importsRewritten`:
   * the bundle's `spacetime:sys` imports were already rewritten (module_loader.rewriteImports).
   */
  async load(bundle: string, loadOptions?: { importsRewritten?: boolean }): Promise<void> {
    this.#sys = createSyscalls(this.#sysEnv());
    // A WebAssembly module (wasm/): the same hooks, run on the same syscalls.
    this.#hooks = isWasmBundle(bundle)
      ? loadWasmModule(wasmBundleBytes(bundle), this.#sys, {
        memoryBudgetMb: this.#options.memoryBudgetMb ?? DATABASE_MEMORY_MB_DEFAULT,
      })
      : await loadModule(bundle, this.#sys, {
        timeoutMs: this.#options.loadTimeoutMs,
        importsRewritten: loadOptions?.importsRewritten,
      });
    this.#describe = this.#hooks.__describe_module__();
    if (!(this.#describe instanceof Uint8Array)) {
      throw new Error("__describe_module__ did not return a Uint8Array");
    }
    this.#module = moduleInfoFromDescribe(this.#describe);
    this.#datastore = new Datastore(storedTables(this.#module));
    this.#stored = this.#module;
    this.#storedDescribe = this.#describe;
    const tables = this.#module.tables;
    this.#rlsRules = resolveRlsRules(this.#module.def.rowLevelSecurity.map((rule) => rule.sql), {
      tableIdFromName: (name) => this.#datastore.tableIdFromName(name),
      schema: (tableId) => tables.find((table) => table.tableId === tableId),
    });
    this.#views = new ViewManager(this.#module.def.views, {
      callHook: (view, sender, reads, tx) => this.#callViewHook(view, sender, reads, tx),
      tables: () => this.#module.tables,
      tableIdFromName: (name) => this.#datastore.tableIdFromName(name),
    });
    this.#sequenceCount = this.#module.tables.reduce((n, table) => n + table.sequences.length, 0);
    this.#scheduleTables = scheduleTables(this.#module);
  }

  // --- procedures running in the procedure thread (worker/procedures.ts) ----------------------

  /**
   * Syscalls for a procedure whose code runs in the procedure thread: the same datastore and
   * transaction as this engine's, with errno errors built by `errorConstructor` (the thread
   * rebuilds them as its own module's classes).
   */
  createRemoteSyscalls(
    errorConstructor: (code: number) => new (message: string) => Error,
  ): Syscalls {
    return createSyscalls({ ...this.#sysEnv(), errorConstructor });
  }

  /**
   * Makes `procedure` the engine's current call while its `withTx` runs here; its transaction
   * budget (the reducer budget) starts now.
   */
  beginRemoteProcedure(
    procedure: { name: string; sender: bigint; connectionId: bigint; args: Uint8Array },
  ): void {
    assert(this.#tx === undefined && this.#procedure === undefined, "a call is already running");
    this.#currentFunction = procedure.name;
    this.#procedure = { ...procedure, startMs: this.#options.clock.monotonicMs() };
  }

  /** Ends what beginRemoteProcedure began; a transaction still open is rolled back. */
  endRemoteProcedure(reason?: string): void {
    if (this.#anonymous && this.#tx) {
      this.#tx.rollback();
      this.#pushLog(
        "Warn",
        reason ?? "the procedure left a transaction open; it was rolled back",
        this.#procedure?.name,
      );
    }
    this.#tx = undefined;
    this.#anonymous = false;
    this.#procedure = undefined;
    this.#poison = undefined;
    this.#currentFunction = undefined;
  }

  /** A module log line from the procedure thread, through this database's log limits. */
  pushRemoteLog(level: string, message: string, functionName: string | undefined): void {
    this.#pushLog(level, message, functionName);
  }

  #sysEnv(): SysEnv {
    const options = this.#options;
    return {
      tx: () => this.#tx,
      tableIdFromName: (name) => this.#datastore?.tableIdFromName(name),
      indexIdFromName: (name) => this.#datastore?.indexIdFromName(name),
      errorConstructor: (code) => this.#hooks?.__get_error_constructor__(code),
      databaseIdentity: () => options.databaseIdentity,
      jwtPayload: (connectionId) => this.#jwtPayloads.get(connectionId) ?? new Uint8Array(),
      consoleLog: (level, message) => this.#log(level, message),
      poison: (error) => {
        this.#poison ??= error;
      },
      isPoisoned: () => this.#poison !== undefined,
      scheduleImmediate: (reducer, args) =>
        this.#schedules.pushImmediate(reducer, args, Number(options.clock.nowMicros())),
      scheduleDelayTooLong: (tableId, row) => this.#scheduleDelayTooLong(tableId, row),
      checkScheduleImmediateArgs: (byteLength) => this.#schedules.checkImmediateArgs(byteLength),
      nowMicros: () => options.clock.nowMicros(),
      viewReads: () => this.#viewReads,
      startAnonymousTx: () => {
        if (this.#tx || !this.#procedure) return false;
        this.#tx = this.#datastore.beginMutTx();
        this.#anonymous = true;
        return true;
      },
      commitAnonymousTx: () => {
        if (!this.#tx || !this.#anonymous || !this.#procedure) return false;
        const overBudget = options.clock.monotonicMs() - this.#procedure.startMs >=
          options.reducerBudgetMs;
        if (this.#poison || overBudget) {
          // A fatal host error happened in this transaction, or the call is past its deadline
          // (time inside a builtin is never ticked): it must not commit.
          this.#tx.rollback();
          this.#tx = undefined;
          this.#anonymous = false;
          throw this.#poison ?? new Error(this.#budgetMessage());
        }
        const tx = this.#tx;
        let views: PendingViewChanges | undefined;
        try {
          views = this.#views.refresh(tx);
        } catch (error) {
          this.#tx = undefined;
          this.#anonymous = false;
          tx.rollback();
          throw new Error(this.#viewFailureMessage(error));
        }
        this.#tx = undefined;
        this.#anonymous = false;
        const refusal = this.#commitRefusal(tx, this.#procedure.name, this.#procedure.args);
        if (refusal !== undefined) {
          tx.rollback();
          throw new Error(refusal);
        }
        this.#recordCommit(
          tx.commit(),
          this.#procedure.name,
          this.#procedure.sender,
          this.#procedure.connectionId,
          options.clock.nowMicros(),
          this.#procedure.args,
          views,
        );
        return true;
      },
      abortAnonymousTx: () => {
        if (!this.#tx || !this.#anonymous) return false;
        this.#tx.rollback();
        this.#tx = undefined;
        this.#anonymous = false;
        return true;
      },
    };
  }

  // --- schedules (module-abi.md §5.2) ---------------------------------------------------------

  /** Pending schedules: armed rows plus queued immediate runs. */
  get pendingScheduleCount(): number {
    return this.#schedules.size;
  }

  /** Queued `volatile_nonatomic_schedule_immediate` runs. */
  get pendingImmediateCount(): number {
    return this.#schedules.immediateCount;
  }

  /**
   * Arms every schedule row of the current state (after recovery, and for a new module):
   * `Time(t)` rows are due at t, `Interval(d)` rows at now + d.
   */
  armAllSchedules(): void {
    if (this.#options.readOnly !== undefined) return;
    // Arming replaces a row's earlier timer; queued immediate runs stay queued.
    const now = this.#options.clock.nowMicros();
    for (const table of this.#scheduleTables.values()) {
      for (const row of this.#datastore.committedRows(table.tableId)) this.#arm(table, row, now);
    }
  }

  /**
   * The armed row schedules with their intended times, to resume them after a restart
   * (hibernation): an `Interval` row keeps its tick grid instead of restarting at now + d.
   */
  armedSchedules(): ResumedSchedule[] {
    return this.#schedules.armedRows();
  }

  /**
   * Re-arms, after armAllSchedules(), the rows of `schedules` that are still armed at their
   * earlier intended times (a time already past runs at once, then an `Interval` moves on to
   * the first tick of its grid after now, as for a late timer).
   */
  resumeSchedules(schedules: readonly ResumedSchedule[]): void {
    if (this.#options.readOnly !== undefined) return;
    for (const { tableId, scheduledId, intendedMicros } of schedules) {
      if (!this.#schedules.isArmed(tableId, scheduledId)) continue;
      this.#schedules.arm(tableId, scheduledId, intendedMicros, Number(intendedMicros));
    }
  }

  /** Wall-clock µs of the earliest pending schedule, or undefined. */
  nextScheduleDueMicros(): number | undefined {
    return this.#schedules.nextDueMicros();
  }

  /**
   * Runs the schedules that are due, at most `runCountMax` of them, each as its own
   * transaction(s) (taken with drainCommitted). Returns how many ran.
   */
  runDueSchedules(runCountMax: number): number {
    let ran = 0;
    while (ran < runCountMax) {
      const now = this.#options.clock.nowMicros();
      const entry = this.#schedules.popDue(Number(now));
      if (!entry) break;
      ran++;
      const identity = this.#options.databaseIdentity;
      if (entry.kind === "immediate") {
        const reducer = this.#module.reducersByName.get(entry.reducer);
        if (!reducer) {
          this.#pushLog(
            "Error",
            `volatile_nonatomic_schedule_immediate named "${entry.reducer}", which is not a reducer`,
            undefined,
          );
          continue;
        }
        this.#runReducer(reducer, entry.args, identity, 0n, now, 0);
        continue;
      }
      const table = this.#scheduleTables.get(entry.tableId);
      if (!table) continue;
      const row = this.#findScheduleRow(table, entry.scheduledId);
      // The row was deleted: the schedule was cancelled.
      if (!row) continue;
      const timestamp = entry.intendedMicros > now ? entry.intendedMicros : now;
      if (table.functionKind === "procedure") {
        // A procedure may stop midway and must not be retried: the row is deleted (Time) or
        // re-armed (Interval) before it runs. It runs outside any transaction; its value is
        // dropped and its failures are logged.
        this.#afterScheduledRun(table, entry.scheduledId, entry.intendedMicros);
        const handedOff = this.#options.runProcedureElsewhere?.(
          table.functionName,
          row,
          identity,
          timestamp,
        );
        if (!handedOff) this.callProcedure(0, table.functionName, row, identity, 0n, timestamp);
        continue;
      }
      const reducer = this.#module.reducersByName.get(table.functionName)!;
      this.#runReducer(reducer, row, identity, 0n, timestamp, 0);
      this.#afterScheduledRun(table, entry.scheduledId, entry.intendedMicros);
    }
    return ran;
  }

  /** `Time` rows are deleted (own transaction); `Interval` rows re-armed on their grid. */
  #afterScheduledRun(table: ScheduleTable, scheduledId: bigint, intendedMicros: bigint): void {
    const row = this.#findScheduleRow(table, scheduledId);
    if (!row) return;
    const fields = table.read(row);
    const now = this.#options.clock.nowMicros();
    if (fields.kind === "Time") {
      const tx = this.#datastore.beginMutTx();
      const relation = new Uint8Array(4 + row.length);
      new DataView(relation.buffer).setUint32(0, 1, true);
      relation.set(row, 4);
      tx.deleteByRelation(table.tableId, relation);
      let views: PendingViewChanges | undefined;
      try {
        views = this.#views.refresh(tx);
      } catch (error) {
        // The row stays; its timer is not re-armed (it would fail the same way).
        tx.rollback();
        this.#pushLog("Error", this.#viewFailureMessage(error), table.functionName);
        return;
      }
      this.#recordCommit(tx.commit(), "", this.#options.databaseIdentity, 0n, now, EMPTY, views);
      return;
    }
    // The reducer rewrote its own row: that write armed the timer already.
    if (this.#schedules.isArmed(table.tableId, scheduledId)) return;
    const next = nextIntervalTick(intendedMicros, fields.micros, now);
    this.#schedules.arm(table.tableId, scheduledId, next, Number(next));
  }

  #findScheduleRow(table: ScheduleTable, scheduledId: bigint): Uint8Array | undefined {
    if (table.idIndexId !== undefined) {
      const key = new Uint8Array(8);
      new DataView(key.buffer).setBigUint64(0, scheduledId, true);
      return this.#datastore.committedIndexPoint(table.idIndexId, key)[0];
    }
    return this.#datastore.committedRows(table.tableId).find((row) =>
      table.read(row).scheduledId === scheduledId
    );
  }

  #arm(table: ScheduleTable, row: Uint8Array, nowMicros: bigint): void {
    const fields = table.read(row);
    const intended = fields.kind === "Time" ? fields.micros : nowMicros + abs(fields.micros);
    this.#schedules.arm(table.tableId, fields.scheduledId, intended, Number(intended));
  }

  /** Commit hook: deleted schedule rows are disarmed, inserted (or updated) ones armed. */
  #armFromDelta(delta: TxDelta, callStartMicros: bigint): void {
    if (this.#options.readOnly !== undefined) return;
    let now: bigint | undefined;
    for (const change of delta.tables) {
      const table = this.#scheduleTables.get(change.tableId);
      if (!table) continue;
      for (const row of change.deletes) {
        this.#schedules.cancel(table.tableId, table.read(row).scheduledId);
      }
      if (change.inserts.length === 0) continue;
      if (now === undefined) {
        const wall = this.#options.clock.nowMicros();
        now = wall > callStartMicros ? wall : callStartMicros;
      }
      for (const row of change.inserts) this.#arm(table, row, now);
    }
  }

  /** For the insert/update syscalls: true when a schedule row asks for too long a delay. */
  #scheduleDelayTooLong(tableId: number, row: Uint8Array): boolean {
    const table = this.#scheduleTables.get(tableId);
    if (!table) return false;
    let fields: ScheduleFields;
    try {
      fields = table.read(row);
    } catch {
      return false; // A malformed row: the insert itself reports it.
    }
    const delay = fields.kind === "Interval"
      ? abs(fields.micros)
      : fields.micros - this.#options.clock.nowMicros();
    return delay >= SCHEDULE_DELAY_MICROS_MAX;
  }

  /** Recovery: replaces the state with a snapshot taken after `txOffset` transactions. */
  restoreSnapshot(bytes: Uint8Array, txOffset: number): void {
    const { describe, state } = unwrapSnapshot(bytes);
    if (describe) this.useStoredSchema(describe.slice());
    this.#datastore = Datastore.importState(storedTables(this.#stored), state);
    this.#txOffset = txOffset;
  }

  /**
   * The state as of now as a snapshot body that names its schema, read out in pieces while
   * transactions go on (copy-on-write, see Datastore.captureState); restoreSnapshot reads the
   * concatenated pieces back.
   */
  captureSnapshot(): StateCursor {
    const inner = this.#datastore.captureState();
    const header = wrapSnapshot(this.#storedDescribe, new Uint8Array(0));
    let first = true;
    return {
      next(maxBytes: number): Uint8Array | null {
        const piece = inner.next(maxBytes);
        if (!first) return piece;
        first = false;
        return piece === null ? header : concatBytes([header, piece]);
      },
      release: () => inner.release(),
    };
  }

  /**
   * Recovery: the log starts with the rows of another schema than the module's (the first
   * one this database had; see `genesis.describe` in server/database_registry.ts).
   */
  useStoredSchema(describe: Uint8Array): void {
    this.#stored = moduleInfoFromDescribe(describe);
    this.#storedDescribe = describe;
    this.#datastore = new Datastore(storedTables(this.#stored));
  }

  /** Recovery: a schema-change record; runs the same migration again on the same rows. */
  replayMigration(args: Uint8Array, txOffset: number): void {
    if (txOffset !== this.#txOffset + 1) {
      throw new Error(`Replay out of order: transaction ${txOffset} after ${this.#txOffset}`);
    }
    const { from, to } = decodeMigrationArgs(args);
    const before = moduleInfoFromDescribe(from);
    if (tablesFingerprint(before.def) !== tablesFingerprint(this.#stored.def)) {
      throw new Error(
        `The commit log's schema change at transaction ${txOffset} starts from another schema`,
      );
    }
    const after = moduleInfoFromDescribe(to);
    const planned = planMigration(before.def, after.def);
    if (!planned.ok) throw new Error(formatMigrationErrors(planned.errors));
    this.#datastore = migrateDatastore(this.#datastore, before, after, planned.plan, {
      systemTables: [ST_VAR_SCHEMA],
    });
    this.#stored = after;
    this.#storedDescribe = to;
    this.#txOffset = txOffset;
  }

  /**
   * After recovery: the stored rows must have the module's schema. When they do not and
   * `migrate` is set, plans and runs the automatic migration as one transaction whose record
   * carries both schemas; otherwise throws SchemaMismatchError. Returns true when it migrated.
   */
  finishRecovery(migrate: boolean, timestampMicros: bigint): boolean {
    if (tablesFingerprint(this.#stored.def) === tablesFingerprint(this.#module.def)) {
      // Same tables (ids follow the names, so they are equal too), maybe other reducers.
      this.#stored = this.#module;
      this.#storedDescribe = this.#describe;
      return false;
    }
    if (!migrate) {
      throw new SchemaMismatchError(
        `${SCHEMA_MISMATCH_PREFIX}: the commit log holds another schema than this module's`,
      );
    }
    const planned = planMigration(this.#stored.def, this.#module.def);
    if (!planned.ok) throw new MigrationFailedError(formatMigrationErrors(planned.errors));
    this.#datastore = migrateDatastore(
      this.#datastore,
      this.#stored,
      this.#module,
      planned.plan,
      { systemTables: [ST_VAR_SCHEMA], log: (line) => this.#log(2, line) },
    );
    const args = encodeMigrationArgs(this.#storedDescribe, this.#describe);
    this.#stored = this.#module;
    this.#storedDescribe = this.#describe;
    this.#recordCommit(
      { tables: [], sequences: [] },
      MIGRATION_RECORD_NAME,
      this.#options.databaseIdentity,
      0n,
      timestampMicros,
      args,
    );
    return true;
  }

  /** Recovery: applies one committed transaction from the log. */
  replayTx(delta: TxDelta, txOffset: number): void {
    if (txOffset !== this.#txOffset + 1) {
      throw new Error(`Replay out of order: transaction ${txOffset} after ${this.#txOffset}`);
    }
    this.#datastore.replay(delta);
    this.#txOffset = txOffset;
  }

  /**
   * Read replica: applies one transaction of the primary's commit log (its record bytes) as a
   * commit of this database, so it reaches this database's own log and its subscribers like a
   * local one. `txOffset` is the transaction's number (one past its log offset).
   */
  applyReplicated(record: TxRecord, txOffset: number): void {
    if (this.#options.readOnly === undefined) {
      throw new Error("Only a read replica applies replicated transactions");
    }
    if (txOffset !== this.#txOffset + 1) {
      throw new Error(
        `Replication out of order: transaction ${txOffset} after ${this.#txOffset}`,
      );
    }
    if (record.reducerName === MIGRATION_RECORD_NAME) {
      throw new Error(
        `Replicated schema change at transaction ${txOffset} arrived before its module update`,
      );
    }
    const delta: TxDelta = { tables: record.tables, sequences: record.sequences };
    this.#datastore.replay(delta);
    this.#recordCommit(
      delta,
      record.reducerName,
      bigintFromLittleEndian(record.callerIdentity),
      bigintFromLittleEndian(record.callerConnectionId),
      record.timestampMicros,
      record.args,
      this.#views.hasInstances ? this.#refreshViewsAfter(delta, txOffset) : undefined,
    );
  }

  /**
   * Read replica: the views a replicated transaction touched, re-run over the state after it
   * (as the primary re-runs its own inside the transaction), in a transaction of their own that
   * is rolled back. The transaction stands whatever they do: a failing view is logged and keeps
   * its previous rows (the primary had no such instance, or it would not have committed).
   */
  #refreshViewsAfter(delta: TxDelta, txOffset: number): PendingViewChanges | undefined {
    const tx = this.#datastore.beginMutTx();
    this.#tx = tx;
    try {
      return this.#views.refreshAfter(delta.tables, tx, (view, error) => {
        this.#pushLog(
          "Error",
          `${
            this.#viewFailureMessage(error)
          } (re-run after replicated transaction ${txOffset}; the view keeps its previous rows)`,
          view.name,
        );
      });
    } finally {
      this.#tx = undefined;
      tx.rollback();
    }
  }

  /** Takes the log lines produced since the last call. */
  drainLogs(): LogLine[] {
    return this.#logs.drain(Number(this.#options.clock.nowMicros()));
  }

  /** Takes the transactions committed since the last call, in commit order. */
  drainCommitted(): CommittedTx[] {
    const committed = this.#committed;
    if (committed.length === 0) return [];
    this.#committed = [];
    return committed;
  }

  /** Connected clients (`st_client`). */
  clients(): { identity: bigint; connectionId: bigint }[] {
    return [...this.#clients].map(([connectionId, identity]) => ({ identity, connectionId }));
  }

  /**
   * Runs `body` in a transaction of its own that no module code sees (a /sql DML statement):
   * committed like a reducer's (logged with an empty reducer name, subject to the commit-log
   * limits, broadcast), or rolled back completely when `body` throws or the limits refuse it.
   */
  runHostTransaction<T>(
    sender: bigint,
    timestampMicros: bigint,
    body: (tx: MutTx) => T,
  ): { ok: true; value: T; txOffset: number } | { ok: false; error: unknown; txOffset: number } {
    if (this.#options.readOnly !== undefined) {
      return { ok: false, error: new Error(this.#options.readOnly), txOffset: this.#txOffset };
    }
    const tx = this.#datastore.beginMutTx();
    let value: T;
    try {
      value = body(tx);
    } catch (error) {
      tx.rollback();
      return { ok: false, error, txOffset: this.#txOffset };
    }
    // Stale views re-run inside the transaction; a failing one fails the statement (as in
    // SpacetimeDB, for SQL DML too).
    let views: PendingViewChanges | undefined;
    try {
      views = this.#views.refresh(tx);
    } catch (error) {
      tx.rollback();
      return {
        ok: false,
        error: new Error(this.#viewFailureMessage(error)),
        txOffset: this.#txOffset,
      };
    }
    const refusal = this.#commitRefusal(tx, "", EMPTY);
    if (refusal !== undefined) {
      tx.rollback();
      return { ok: false, error: new Error(refusal), txOffset: this.#txOffset };
    }
    const delta = tx.commit();
    if (delta.tables.length === 0 && delta.sequences.length === 0) {
      // Nothing changed (e.g. a DELETE that matched no row): no transaction to log.
      return { ok: true, value, txOffset: this.#txOffset };
    }
    const txOffset = this.#recordCommit(delta, "", sender, 0n, timestampMicros, EMPTY, views);
    return { ok: true, value, txOffset };
  }

  reducerByName(name: string): ReducerInfo | undefined {
    return this.#module.reducersByName.get(name);
  }

  /** Runs the `init` lifecycle reducer (first publish). */
  runInit(owner: bigint, timestampMicros: bigint): CallResult {
    const init = this.#module.lifecycle.init;
    if (!init) return this.#emptyCommit(timestampMicros);
    return this.#runReducer(init, new Uint8Array(), owner, 0n, timestampMicros, 0);
  }

  /** Runs a client-callable reducer by canonical name. */
  callReducer(
    id: number,
    name: string,
    args: Uint8Array,
    sender: bigint,
    connectionId: bigint,
    timestampMicros: bigint,
  ): CallResult {
    if (this.#options.readOnly !== undefined) {
      return {
        kind: "call",
        id,
        status: "failed_internal",
        message: this.#options.readOnly,
        txOffset: this.#txOffset,
        durationMicros: 0,
      };
    }
    const reducer = this.#module.reducersByName.get(name);
    if (!reducer) {
      return {
        kind: "call",
        id,
        status: "failed_internal",
        message: `no such reducer`,
        txOffset: this.#txOffset,
        durationMicros: 0,
      };
    }
    if (reducer.lifecycle) {
      return {
        kind: "call",
        id,
        status: "failed_internal",
        message: `can't directly call special ${reducer.lifecycle} lifecycle reducer`,
        txOffset: this.#txOffset,
        durationMicros: 0,
      };
    }
    if (reducer.visibility === "Private" && sender !== this.#options.ownerIdentity) {
      // As in SpacetimeDB: a private reducer does not exist for anyone but the owner.
      return {
        kind: "call",
        id,
        status: "failed_internal",
        message: `no such reducer`,
        txOffset: this.#txOffset,
        durationMicros: 0,
      };
    }
    return this.#runReducer(reducer, args, sender, connectionId, timestampMicros, id);
  }

  /**
   * client_connected: stores the JWT payload and runs the lifecycle reducer, if any (not for a
   * connection `resumed` after a module hot swap).
   */
  connect(
    id: number,
    sender: bigint,
    connectionId: bigint,
    timestampMicros: bigint,
    jwtPayload: string,
    resumed = false,
  ): CallResult {
    this.#jwtPayloads.set(connectionId, new TextEncoder().encode(jwtPayload));
    if (resumed) return { ...this.#noTransaction(id), kind: "connect" };
    // A read replica runs no lifecycle reducer: its state changes only by replication.
    const reducer = this.#options.readOnly === undefined
      ? this.#module.lifecycle.onConnect
      : undefined;
    const result = reducer
      ? this.#runReducer(reducer, new Uint8Array(), sender, connectionId, timestampMicros, id)
      : this.#noTransaction(id);
    if (result.status !== "committed") this.#jwtPayloads.delete(connectionId);
    else this.#clients.set(connectionId, sender);
    return { ...result, kind: "connect" };
  }

  /** client_disconnected: runs the lifecycle reducer (errors are swallowed by the caller). */
  disconnect(
    id: number,
    sender: bigint,
    connectionId: bigint,
    timestampMicros: bigint,
  ): CallResult {
    const reducer = this.#options.readOnly === undefined
      ? this.#module.lifecycle.onDisconnect
      : undefined;
    const result = reducer
      ? this.#runReducer(reducer, new Uint8Array(), sender, connectionId, timestampMicros, id)
      : this.#noTransaction(id);
    this.#jwtPayloads.delete(connectionId);
    this.#clients.delete(connectionId);
    return { ...result, kind: "disconnect" };
  }

  callProcedure(
    id: number,
    name: string,
    args: Uint8Array,
    sender: bigint,
    connectionId: bigint,
    timestampMicros: bigint,
  ): ProcedureResult {
    const procedure = this.#module.proceduresByName.get(name);
    if (!procedure || this.#options.readOnly !== undefined) {
      return {
        kind: "procedure",
        id,
        ok: false,
        message: this.#options.readOnly ?? "No such procedure",
        txOffset: this.#txOffset,
        durationMicros: 0,
      };
    }
    const startMs = this.#options.clock.monotonicMs();
    this.#currentFunction = procedure.name;
    this.#procedure = { name: procedure.name, sender, connectionId, args, startMs };
    this.#options.budget.start(this.#options.reducerBudgetMs);
    let exceeded = false;
    let stopped = false;
    try {
      const value = this.#hooks.__call_procedure__(
        procedure.id,
        sender,
        connectionId,
        timestampMicros,
        args,
      );
      stopped = true;
      exceeded = this.#options.budget.stop();
      if (exceeded) throw new Error("time budget exceeded");
      if (this.#poison) throw this.#poison;
      if (!(value instanceof Uint8Array)) {
        throw new TypeError("Procedure did not return a Uint8Array");
      }
      return {
        kind: "procedure",
        id,
        ok: true,
        value,
        txOffset: this.#txOffset,
        durationMicros: this.#elapsedMicros(startMs),
      };
    } catch (error) {
      if (!stopped) {
        stopped = true;
        exceeded = this.#options.budget.stop();
      }
      if (this.#options.budget.isExceeded(error)) exceeded = true;
      this.#logFailure(procedure.name, error, exceeded);
      return {
        kind: "procedure",
        id,
        ok: false,
        message: exceeded
          ? this.#budgetMessage()
          : isOutOfMemory(error)
          ? this.#memoryMessage(error)
          : describeError(error),
        txOffset: this.#txOffset,
        durationMicros: 0,
      };
    } finally {
      if (this.#anonymous && this.#tx) {
        this.#tx.rollback();
        this.#pushLog(
          "Warn",
          "the procedure left a transaction open; it was rolled back",
          procedure.name,
        );
      }
      this.#tx = undefined;
      this.#anonymous = false;
      this.#procedure = undefined;
      this.#poison = undefined;
      this.#endCall();
    }
  }

  #recordCommit(
    delta: TxDelta,
    reducer: string,
    sender: bigint,
    connectionId: bigint,
    timestampMicros: bigint,
    args: Uint8Array,
    views?: PendingViewChanges,
  ): number {
    const txOffset = ++this.#txOffset;
    const tx: CommittedTx = {
      txOffset,
      reducer,
      sender,
      connectionId,
      timestampMicros,
      args,
      delta,
    };
    if (views !== undefined) {
      const changes = this.#views.apply(views);
      if (changes.length > 0) {
        tx.delta = { tables: delta.tables.concat(changes), sequences: delta.sequences };
        tx.hasViewTables = true;
      }
    }
    if (this.#scheduleTables.size > 0) this.#armFromDelta(delta, timestampMicros);
    // Usually one transaction per drain: an exact-size array instead of push's growth.
    if (this.#committed.length === 0) this.#committed = [tx];
    else this.#committed.push(tx);
    return txOffset;
  }

  #emptyCommit(timestampMicros: bigint): CallResult {
    void timestampMicros;
    return this.#noTransaction(0);
  }

  /** A lifecycle call the module does not define: nothing ran, nothing committed. */
  #noTransaction(id: number): CallResult {
    return { kind: "call", id, status: "committed", txOffset: this.#txOffset, durationMicros: 0 };
  }

  #runReducer(
    reducer: ReducerInfo,
    args: Uint8Array,
    sender: bigint,
    connectionId: bigint,
    timestampMicros: bigint,
    id: number,
  ): CallResult {
    const startMs = this.#options.clock.monotonicMs();
    const tx = this.#datastore.beginMutTx();
    this.#tx = tx;
    this.#currentFunction = reducer.name;
    let failure: unknown;
    let failed = false;
    let exceeded = false;
    let endMs = startMs;
    this.#options.budget.start(this.#options.reducerBudgetMs, startMs);
    try {
      const view = new DataView(args.buffer, args.byteOffset, args.byteLength);
      const returned = this.#hooks.__call_reducer__(
        reducer.id,
        sender,
        connectionId,
        timestampMicros,
        view,
      );
      if (returned !== undefined) {
        throw new TypeError("Reducer returned a value other than `undefined`");
      }
    } catch (error) {
      failed = true;
      failure = error;
    } finally {
      endMs = this.#options.clock.monotonicMs();
      exceeded = this.#options.budget.stop(endMs);
      this.#tx = undefined;
      this.#endCall();
    }
    if (exceeded && !failed) {
      failed = true;
      failure = new Error("time budget exceeded");
    }
    if (this.#poison && !failed) {
      failed = true;
      failure = this.#poison;
    }
    this.#poison = undefined;
    let views: PendingViewChanges | undefined;
    if (!failed && this.#views.hasInstances) {
      // Stale views re-run inside the transaction; a failing one fails the whole call.
      try {
        views = this.#views.refresh(tx);
      } catch (error) {
        tx.rollback();
        const message = this.#viewFailureMessage(error);
        this.#pushLog("Error", message, reducer.name);
        const txOffset = this.#txOffset;
        const durationMicros = Math.round((endMs - startMs) * 1000);
        return { kind: "call", id, status: "failed_internal", message, txOffset, durationMicros };
      }
    }
    const durationMicros = Math.round((endMs - startMs) * 1000);
    const refusal = failed ? undefined : this.#commitRefusal(tx, reducer.name, args, endMs);
    if (refusal !== undefined) {
      tx.rollback();
      this.#pushLog("Error", refusal, reducer.name);
      const txOffset = this.#txOffset;
      return {
        kind: "call",
        id,
        status: "failed_internal",
        message: refusal,
        txOffset,
        durationMicros,
      };
    }
    if (!failed) {
      const txOffset = this.#recordCommit(
        tx.commit(),
        reducer.name,
        sender,
        connectionId,
        timestampMicros,
        args,
        views,
      );
      return { kind: "call", id, status: "committed", txOffset, durationMicros };
    }
    tx.rollback();
    // Rolled back, but it may have read rows of transactions that are not durable yet.
    const txOffset = this.#txOffset;
    if (!exceeded && failure instanceof this.#hooks.__sender_error_class__) {
      // The caller gets the module's own message, cut like a log line (it also goes to the log).
      const message = truncateText(String((failure as Error).message), LOG_MESSAGE_CHARS_MAX);
      this.#pushLog("Error", message, reducer.name);
      return { kind: "call", id, status: "failed_user", message, txOffset, durationMicros };
    }
    this.#logFailure(reducer.name, failure, exceeded);
    const message = exceeded
      ? this.#budgetMessage()
      : isOutOfMemory(failure)
      ? this.#memoryMessage(failure)
      : GENERIC_FAILURE_MESSAGE;
    return { kind: "call", id, status: "failed_internal", message, txOffset, durationMicros };
  }

  /**
   * Why `tx` must not commit under the database's commit-log limits, or undefined (then its
   * bytes are taken from the rate budget). Sized before commit from an upper bound of its record
   * (storage/commit_record.ts layout), so a refused transaction can still be rolled back.
   * `nowMs`: the caller's fresh reading of the engine clock, if it has one.
   */
  #commitRefusal(
    tx: MutTx,
    reducer: string,
    args: Uint8Array,
    nowMs?: number,
  ): string | undefined {
    const bytes = TX_RECORD_FIXED_BYTES + reducer.length * 3 + args.byteLength +
      tx.deltaBytesMax() + this.#sequenceCount * TX_RECORD_SEQUENCE_BYTES;
    const limits = this.#limits;
    if (bytes > limits.txRecordBytesMax) {
      return `The transaction would write ${bytes} bytes to the commit log, over the limit of ` +
        `${limits.txRecordBytesMax} bytes per transaction; nothing was committed`;
    }
    if (!this.#commitBucket.take(bytes, nowMs)) {
      const available = Math.floor(this.#commitBucket.available());
      return `The database's commit log budget of ${limits.commitLogBytesPerS} bytes/s is spent: ` +
        `the transaction needs ${bytes} bytes and ${available} are available; nothing was committed`;
    }
    return undefined;
  }

  // --- views (worker/views.ts) ------------------------------------------------------------------

  /**
   * Materializes `view` for `sender` between transactions (a subscription or query reads it):
   * runs it in a transaction of its own that is rolled back (a view cannot write). Returns the
   * instance's table schema; throws an Error with the caller-facing text when the view fails.
   */
  materializeView(view: ViewDef, sender: bigint, source?: string): TableSchema {
    const existing = this.#views.instance(view, sender);
    if (existing !== undefined) return existing;
    const tx = this.#datastore.beginMutTx();
    this.#tx = tx;
    try {
      return this.#views.materialize(view, sender, tx, source);
    } catch (error) {
      const message = this.#viewFailureMessage(error);
      this.#pushLog("Error", message, view.name);
      throw new Error(message);
    } finally {
      this.#tx = undefined;
      tx.rollback();
    }
  }

  /** Calls a view's hook with the open transaction, recording its reads into `reads`. */
  #callViewHook(
    view: ViewDef,
    sender: bigint | undefined,
    reads: ViewReadRecorder,
    tx: MutTx,
  ): Uint8Array {
    const outer = this.#currentFunction;
    const outerReads = this.#viewReads;
    const outerTx = this.#tx;
    this.#tx = tx;
    this.#currentFunction = view.name;
    this.#viewReads = reads;
    this.#options.budget.start(this.#options.reducerBudgetMs);
    let exceeded = false;
    let stopped = false;
    try {
      const args = new Uint8Array(0);
      const returned = sender === undefined
        ? this.#hooks.__call_view_anon__(view.id, args)
        : this.#hooks.__call_view__(view.id, sender, args);
      stopped = true;
      exceeded = this.#options.budget.stop();
      if (exceeded) throw new Error("time budget exceeded");
      if (this.#poison) throw this.#poison;
      const data = (returned as { data?: unknown } | undefined)?.data;
      if (!(data instanceof Uint8Array)) {
        throw new TypeError("The view hook did not return { data: Uint8Array }");
      }
      return data;
    } catch (error) {
      if (!stopped) {
        stopped = true;
        exceeded = this.#options.budget.stop();
      }
      if (!exceeded) exceeded = this.#options.budget.isExceeded(error);
      this.#logFailure(view.name, error, exceeded);
      throw new ViewHookError(exceeded ? this.#budgetMessage() : GENERIC_FAILURE_MESSAGE);
    } finally {
      this.#tx = outerTx;
      this.#viewReads = outerReads;
      if (outer === undefined) this.#endCall();
      this.#currentFunction = outer;
    }
  }

  /** The caller-facing text of a failed view run (SpacetimeDB's wording where it has one). */
  #viewFailureMessage(error: unknown): string {
    if (error instanceof ViewFailureError) return error.message;
    if (error instanceof ViewHookError) return error.message;
    return `Error materializing view: ${describeError(error)}`;
  }

  #memoryMessage(error: unknown): string {
    const budget = this.#options.memoryBudgetMb;
    return `The call ran out of memory: the database's memory budget${
      budget ? ` of ${budget} MiB` : ""
    } is used up (${describeError(error)})`;
  }

  #budgetMessage(): string {
    return `The call exceeded its time budget of ${this.#options.reducerBudgetMs} ms and was stopped`;
  }

  #logFailure(functionName: string, error: unknown, exceeded: boolean): void {
    if (exceeded) {
      this.#pushLog("Error", this.#budgetMessage(), functionName);
      return;
    }
    const text = error instanceof Error
      ? describeErrorStack(error)
      : `Uncaught ${formatThrown(error)}`;
    this.#pushLog("Error", text, functionName);
  }

  #endCall(): void {
    const open = this.#sys.endCall();
    if (open.openTimers > 0) {
      this.#pushLog(
        "Warn",
        `${open.openTimers} console timer(s) were left open`,
        this.#currentFunction,
      );
    }
    this.#currentFunction = undefined;
  }

  #elapsedMicros(startMs: number): number {
    return Math.round((this.#options.clock.monotonicMs() - startMs) * 1000);
  }

  #log(level: number, message: string): void {
    this.#pushLog(LOG_LEVEL_NAMES[level] ?? "Debug", message, this.#currentFunction);
  }

  #pushLog(level: string, message: string, functionName: string | undefined): void {
    const line: LogLine = {
      level,
      ts: Number(this.#options.clock.nowMicros()),
      target: functionName,
      function: functionName,
      message,
    };
    if (functionName === undefined) {
      delete line.function;
      delete line.target;
    }
    this.#logs.push(line);
  }
}

const EMPTY = new Uint8Array(0);

/** The datastore's tables: the module's, plus the stored system table `st_var` (row_limit). */
function storedTables(module: ModuleInfo): TableSchema[] {
  return [...module.tables, ST_VAR_SCHEMA];
}

function abs(value: bigint): bigint {
  return value < 0n ? -value : value;
}

/** The schedule tables of a module, by table id. */
function scheduleTables(module: ModuleInfo): Map<number, ScheduleTable> {
  const out = new Map<number, ScheduleTable>();
  for (const table of module.def.tables) {
    const schedule = table.schedule;
    if (!schedule) continue;
    const schema = module.tablesByName.get(table.name)!;
    const idIndex = schema.indexes.find((index) =>
      index.columns.length === 1 && index.columns[0] === schedule.idColumn
    );
    out.set(schema.tableId, {
      tableId: schema.tableId,
      name: schema.name,
      functionName: schedule.functionName,
      functionKind: schedule.functionKind,
      idIndexId: idIndex?.indexId,
      read: scheduleFieldReader(schema, schedule.idColumn, schedule.atColumn),
    });
  }
  return out;
}

/** Reads `scheduled_id` (u64) and the `ScheduleAt` column out of a row's BSATN. */
function scheduleFieldReader(
  schema: TableSchema,
  idColumn: number,
  atColumn: number,
): (row: Uint8Array) => ScheduleFields {
  const columns = schema.rowType.elements;
  const last = Math.max(idColumn, atColumn);
  const reader = new BinaryReader(EMPTY);
  return (row) => {
    reader.reset(row);
    let scheduledId = 0n;
    let kind: ScheduleFields["kind"] = "Time";
    let micros = 0n;
    for (let column = 0; column <= last; column++) {
      if (column === idColumn) scheduledId = reader.readU64();
      else if (column === atColumn) {
        kind = reader.readU8() === 0 ? "Interval" : "Time";
        micros = reader.readI64();
      } else skipValue(reader, columns[column].algebraicType, schema.typespace);
    }
    return { scheduledId, kind, micros };
  };
}

function formatThrown(value: unknown): string {
  try {
    return typeof value === "string" ? JSON.stringify(value) : String(value);
  } catch {
    return "a value that cannot be printed";
  }
}

export { FatalHostError };

/** An allocation the memory budget refused (ArrayBuffer backing stores, oversized arrays). */
function isOutOfMemory(error: unknown): boolean {
  return error instanceof RangeError &&
    /allocation failed|Invalid array buffer length|Invalid typed array length|Array buffer allocation/i
      .test(error.message);
}

/** A u256 identity or u128 connection id from its little-endian bytes (commit records). */
function bigintFromLittleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  return value;
}
