/**
 * The databases this server hosts: names, identities, owners and modules, kept in
 * `<dataDir>/control.json` (written atomically) plus one directory per database
 * holding its module bundle and log. Each database runs in its own worker.
 */
import { join } from "node:path";
import { BadRequestError, NotFoundError } from "../lib/errors.ts";
import { log } from "../lib/log.ts";
import { REDUCER_TIME_BUDGET_MS_DEFAULT } from "../lib/limits.ts";
import { Identity, requireOwner } from "../auth/mod.ts";
import {
  type BatchItem,
  DatabaseHost,
  type LogLine,
  type ModuleInfo,
  moduleInfoFromDescribe,
  ModuleInitError,
} from "../worker/mod.ts";
import { LogBuffer } from "./log_buffer.ts";

/** Database names: `[a-z0-9]` and `-`, starting with `[a-z0-9]`, no leading/trailing/double hyphens. */
const DATABASE_NAME = /^[a-z0-9](?:[a-z0-9]|-(?!-))*(?<!-)$/;

export function isValidDatabaseName(name: string): boolean {
  return name.length <= 64 && DATABASE_NAME.test(name);
}

interface ControlFile {
  version: 1;
  databases: {
    identity: string;
    owner: string;
    names: string[];
    hostType: "Js";
    createdAtMicros: string;
    moduleHash: string;
  }[];
}

export interface EventListener {
  (database: Database, items: BatchItem[], originOf: (id: number) => unknown): void;
}

/** One hosted database. */
export class Database {
  host: DatabaseHost;
  module: ModuleInfo;
  moduleHash: string;
  readonly names: string[];
  /** Set while the database cannot serve (deleted, crashed). */
  stoppedReason: string | undefined;
  /**
   * Highest transaction offset known to be on disk. Infinity while the database
   * keeps no commit log, so nothing waits.
   */
  durableTxOffset = Infinity;

  constructor(
    readonly identity: Identity,
    readonly owner: Identity,
    names: string[],
    host: DatabaseHost,
    module: ModuleInfo,
    moduleHash: string,
    readonly logs: LogBuffer,
    readonly directory: string,
  ) {
    this.names = names;
    this.host = host;
    this.module = module;
    this.moduleHash = moduleHash;
  }

  isOwner(identity: Identity | undefined): boolean {
    return identity !== undefined && identity.equals(this.owner);
  }
}

export interface RegistryOptions {
  dataDir: string;
  reducerBudgetMs?: number;
  workerHeapMb?: number;
  /** Mints database identities (issuer localhost, random subject). */
  mintIdentity: () => Promise<Identity>;
  onEvents?: EventListener;
}

export type PublishOutcome = { database: Database; op: "created" | "updated" };

export class DatabaseRegistry {
  readonly #options: RegistryOptions;
  readonly #byIdentity = new Map<string, Database>();
  readonly #byName = new Map<string, Database>();
  /** Serialises publish/delete so control.json writes never interleave. */
  #controlChain: Promise<unknown> = Promise.resolve();

  private constructor(options: RegistryOptions) {
    this.#options = options;
  }

  /** Loads control.json and starts every database found there. */
  static async open(options: RegistryOptions): Promise<DatabaseRegistry> {
    const registry = new DatabaseRegistry(options);
    await Deno.mkdir(join(options.dataDir, "databases"), { recursive: true });
    let control: ControlFile = { version: 1, databases: [] };
    try {
      control = JSON.parse(await Deno.readTextFile(registry.#controlPath()));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    for (const entry of control.databases) {
      const identity = Identity.fromHex(entry.identity);
      const directory = registry.#directoryOf(identity);
      const logs = await LogBuffer.open(join(directory, "module.log"));
      try {
        const bundle = await Deno.readTextFile(join(directory, "module.js"));
        const host = await registry.#startHost(
          identity,
          Identity.fromHex(entry.owner),
          bundle,
          false,
          logs,
        );
        const module = moduleInfoFromDescribe(host.describe);
        const database = new Database(
          identity,
          Identity.fromHex(entry.owner),
          entry.names,
          host,
          module,
          entry.moduleHash,
          logs,
          directory,
        );
        registry.#bind(database);
        log.info("database started", { identity: identity.toHex(), names: entry.names.join(",") });
      } catch (error) {
        log.error("database failed to start", { identity: entry.identity, error: String(error) });
        await logs.close();
      }
    }
    return registry;
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

  list(): Database[] {
    return [...this.#byIdentity.values()];
  }

  ownedBy(identity: Identity): Database[] {
    return this.list().filter((database) => database.owner.equals(identity));
  }

  /**
   * Creates or updates a database. `target` is a name or identity, or undefined
   * for a fresh unnamed database. `clear` drops all data of an existing database.
   */
  publish(
    target: string | undefined,
    bundle: string,
    caller: Identity,
    clear: boolean,
  ): Promise<PublishOutcome> {
    return this.#serialised(() => this.#publish(target, bundle, caller, clear));
  }

  /** Deletes a database and all its data for good. Only its owner may. */
  delete(database: Database, caller: Identity): Promise<void> {
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: "delete database",
    });
    return this.#serialised(async () => {
      this.#unbind(database);
      database.stoppedReason = "database was deleted";
      database.host.stop();
      await database.logs.close();
      await this.#writeControl();
      await Deno.remove(database.directory, { recursive: true }).catch(() => {});
      log.info("database deleted", { identity: database.identity.toHex() });
    });
  }

  async close(): Promise<void> {
    await this.#controlChain;
    for (const database of this.list()) {
      database.host.stop();
      await database.logs.close();
    }
  }

  async #publish(
    target: string | undefined,
    bundle: string,
    caller: Identity,
    clear: boolean,
  ): Promise<PublishOutcome> {
    let name: string | undefined;
    let existing: Database | undefined;
    if (target !== undefined) {
      existing = this.resolve(target);
      if (!existing) {
        if (Identity.tryFromHex(target)) {
          throw new NotFoundError(`\`${target}\` not found`);
        }
        if (!isValidDatabaseName(target)) {
          throw new BadRequestError(
            `Invalid database name "${target}": use lowercase letters, digits and single hyphens`,
          );
        }
        name = target;
      }
    }
    const moduleHash = await sha256Hex(bundle);
    if (existing) return await this.#update(existing, bundle, caller, clear, moduleHash);

    const identity = await this.#options.mintIdentity();
    const directory = this.#directoryOf(identity);
    await Deno.mkdir(directory, { recursive: true });
    const logs = await LogBuffer.open(join(directory, "module.log"));
    let host: DatabaseHost;
    try {
      host = await this.#startHost(identity, caller, bundle, true, logs);
    } catch (error) {
      await logs.close();
      await Deno.remove(directory, { recursive: true }).catch(() => {});
      throw publishError(error);
    }
    await writeFileAtomic(join(directory, "module.js"), bundle);
    const database = new Database(
      identity,
      caller,
      name ? [name] : [],
      host,
      moduleInfoFromDescribe(host.describe),
      moduleHash,
      logs,
      directory,
    );
    this.#bind(database);
    await this.#writeControl();
    log.info("database created", { identity: identity.toHex(), name: name ?? "" });
    return { database, op: "created" };
  }

  async #update(
    database: Database,
    bundle: string,
    caller: Identity,
    clear: boolean,
    moduleHash: string,
  ): Promise<PublishOutcome> {
    requireOwner({
      caller,
      owner: database.owner,
      database: database.identity,
      action: clear ? "reset database" : "update database",
    });
    if (!clear && moduleHash === database.moduleHash) return { database, op: "updated" };
    let host: DatabaseHost;
    if (clear) {
      host = await this.#startHost(database.identity, database.owner, bundle, true, database.logs)
        .catch((error) => {
          throw publishError(error);
        });
    } else {
      const state = await database.host.exportState();
      host = await this.#startHost(
        database.identity,
        database.owner,
        bundle,
        false,
        database.logs,
        {
          snapshot: state.state,
          snapshotTxOffset: state.txOffset,
        },
      ).catch((error) => {
        throw new BadRequestError(`Database update rejected: ${messageOf(error)}`);
      });
      const before = moduleInfoFromDescribe(database.host.describe);
      const after = moduleInfoFromDescribe(host.describe);
      const difference = describeSchemaChange(before, after);
      if (difference) {
        host.stop();
        throw new BadRequestError(
          `Database update rejected: ${difference}. Automatic migrations are not supported yet; ` +
            `publish with --delete-data to start over with the new schema`,
        );
      }
    }
    const old = database.host;
    database.host = host;
    database.module = moduleInfoFromDescribe(host.describe);
    database.moduleHash = moduleHash;
    old.stop();
    await writeFileAtomic(join(database.directory, "module.js"), bundle);
    await this.#writeControl();
    log.info("database updated", { identity: database.identity.toHex(), clear });
    return { database, op: "updated" };
  }

  #startHost(
    identity: Identity,
    owner: Identity,
    bundle: string,
    runInit: boolean,
    logs: LogBuffer,
    restore?: { snapshot: Uint8Array; snapshotTxOffset: number },
  ): Promise<DatabaseHost> {
    let database: Database | undefined;
    const host = DatabaseHost.start({
      bundle,
      databaseIdentity: identity.toBigInt(),
      ownerIdentity: owner.toBigInt(),
      runInit,
      reducerBudgetMs: this.#options.reducerBudgetMs ?? REDUCER_TIME_BUDGET_MS_DEFAULT,
      heapMb: this.#options.workerHeapMb,
      snapshot: restore?.snapshot,
      snapshotTxOffset: restore?.snapshotTxOffset,
      onLogs: (lines: LogLine[]) => logs.append(lines),
      onEvents: (items, originOf) => {
        database ??= this.#byIdentity.get(identity.toHex());
        if (database) this.#options.onEvents?.(database, items, originOf);
      },
      onCrash: (error) => {
        const current = this.#byIdentity.get(identity.toHex());
        if (current) current.stoppedReason = error.message;
      },
    });
    return host;
  }

  #bind(database: Database): void {
    this.#byIdentity.set(database.identity.toHex(), database);
    for (const name of database.names) this.#byName.set(name, database);
  }

  #unbind(database: Database): void {
    this.#byIdentity.delete(database.identity.toHex());
    for (const name of database.names) this.#byName.delete(name);
  }

  #serialised<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#controlChain.then(operation, operation);
    this.#controlChain = run.catch(() => {});
    return run;
  }

  #controlPath(): string {
    return join(this.#options.dataDir, "control.json");
  }

  #directoryOf(identity: Identity): string {
    return join(this.#options.dataDir, "databases", identity.toHex());
  }

  async #writeControl(): Promise<void> {
    const control: ControlFile = {
      version: 1,
      databases: this.list().map((database) => ({
        identity: database.identity.toHex(),
        owner: database.owner.toHex(),
        names: database.names,
        hostType: "Js",
        createdAtMicros: "0",
        moduleHash: database.moduleHash,
      })),
    };
    await writeFileAtomic(this.#controlPath(), JSON.stringify(control, null, 2));
  }
}

/** Compares the stored shape of two module versions; returns why they differ, if they do. */
function describeSchemaChange(before: ModuleInfo, after: ModuleInfo): string | undefined {
  const shape = (module: ModuleInfo) =>
    JSON.stringify(
      module.tables.map((table) => ({
        name: table.name,
        rowType: table.rowType,
        primaryKey: table.primaryKey,
        indexes: table.indexes.map((index) => [index.name, index.algorithm, index.columns]),
        unique: table.uniqueConstraints,
        sequences: table.sequences.map((sequence) => sequence.column),
      })),
      (_key, value) => typeof value === "bigint" ? value.toString() : value,
    );
  if (shape(before) === shape(after)) return undefined;
  const beforeNames = new Set(before.tables.map((table) => table.name));
  const afterNames = new Set(after.tables.map((table) => table.name));
  const added = [...afterNames].filter((name) => !beforeNames.has(name));
  const removed = [...beforeNames].filter((name) => !afterNames.has(name));
  if (added.length || removed.length) {
    return `tables changed (added: ${added.join(", ") || "none"}; removed: ${
      removed.join(", ") || "none"
    })`;
  }
  return "the columns, indexes or constraints of existing tables changed";
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
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
