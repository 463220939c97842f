/**
 * Views (query-subscriptions.md §3, module-abi.md §5.4): every view call the clients use is
 * materialized here, one instance per (view, sender) for `spacetimedb.view` and one per view for
 * `anonymousView`. An instance keeps its rows (a set: identical rows collapse) and the read set
 * its last run recorded: whole tables, or exact points of an index. Before a writing transaction
 * commits, the instances whose read set its changed rows touch are re-run inside it; their
 * diffs are applied when it commits and travel to subscribers as changes of the instance's own
 * table (a table id of its own, never in the datastore and never in the commit log: views are
 * derived data, re-materialized on demand after a restart).
 */
import {
  BinaryReader,
  fixedSizeOf,
  type ProductType,
  skipValue,
  type Typespace,
  type ViewDef,
} from "../protocol/mod.ts";
import {
  compileSubscriptionQuery,
  executePlan,
  formatType,
  type QueryCatalog,
} from "../query/mod.ts";
import type { MutTx, TableSchema, TxDelta } from "../storage/mod.ts";
import {
  VIEW_INSTANCES_READING_TABLE_MAX,
  VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX,
  VIEW_SENDER_INSTANCES_MAX,
} from "../lib/limits.ts";
import type { ViewReadRecorder } from "./sys_abi.ts";

/** Instance tables get ids from here up; datastore tables stay far below. */
export const VIEW_TABLE_ID_BASE = 0x4000_0000;

export function isViewTableId(tableId: number): boolean {
  return tableId >= VIEW_TABLE_ID_BASE;
}

type TableDelta = TxDelta["tables"][number];

/** What the views need from the engine and datastore. */
export interface ViewEnv {
  /** Calls `__call_view__` / `__call_view_anon__` with the transaction open; throws on failure. */
  callHook(
    view: ViewDef,
    sender: bigint | undefined,
    reads: ViewReadRecorder,
    tx: MutTx,
  ): Uint8Array;
  /** Schemas of the datastore's tables (for index columns and view SQL). */
  tables(): TableSchema[];
  tableIdFromName(name: string): number | undefined;
}

/** A view declares parameters: the module is refused when it loads (at publish). */
export class ViewParamsError extends Error {
  override name = "ViewParamsError";
}

/**
 * A module definition may give a view parameters, but a view is only ever called with empty
 * arguments (as in SpacetimeDB, which builds every view call's arguments as nullary, and whose
 * module libraries cannot declare them yet), so such a view could never run: the module is
 * refused, naming the view, instead of failing each call.
 */
export function refuseViewParams(views: readonly ViewDef[]): void {
  for (const view of views) {
    if (view.params.elements.length === 0) continue;
    const names = view.params.elements.map((e, i) => e.name ?? `#${i}`).join(", ");
    throw new ViewParamsError(
      `The ${view.isAnonymous ? "anonymous " : ""}view "${view.name}" declares parameters ` +
        `(${names}): views with parameters are not supported (a view is called without ` +
        "arguments); remove its parameters",
    );
  }
}

/** A view failed: the transaction that ran it must not commit. */
export class ViewFailureError extends Error {
  override name = "ViewFailureError";
}

interface ReadSet {
  tables: Set<number>;
  /** index id -> keys (BSATN as a binary string). */
  points: Map<number, Set<string>>;
}

interface Instance {
  key: string;
  view: ViewDef;
  sender: bigint | undefined;
  /**
   * The client source (its address) the instance was created for and is charged to; undefined
   * for the owner, HTTP statements and anything else not charged to a client.
   */
  source: string | undefined;
  schema: TableSchema;
  /** Row bytes (as a binary string) -> row. */
  rows: Map<string, Uint8Array>;
  reads: ReadSet;
  /** Live subscription queries reading this instance. */
  refs: number;
}

/** Re-run results waiting for their transaction to commit. */
export interface PendingViewChanges {
  runs: { instance: Instance; rows: Map<string, Uint8Array>; reads: ReadSet }[];
}

export class ViewManager {
  readonly #views: ViewDef[];
  readonly #byName = new Map<string, ViewDef>();
  readonly #env: ViewEnv;
  readonly #instances = new Map<string, Instance>();
  readonly #byTableId = new Map<number, Instance>();
  /** Reverse read sets: table id -> instances reading all of it. */
  readonly #tableReaders = new Map<number, Set<Instance>>();
  /** index id -> key -> instances reading that point. */
  readonly #pointReaders = new Map<number, Map<string, Set<Instance>>>();
  #nextTableId = VIEW_TABLE_ID_BASE;
  /** Live per-sender instances (anonymous views have one instance each, not counted). */
  #senderInstanceCount = 0;
  /** View runs so far (for tests and metrics). */
  runCount = 0;

  /** Throws ViewParamsError when a view declares parameters (see refuseViewParams). */
  constructor(views: ViewDef[], env: ViewEnv) {
    refuseViewParams(views);
    this.#views = views;
    this.#env = env;
    for (const view of views) {
      this.#byName.set(view.name, view);
      if (!this.#byName.has(view.sourceName)) this.#byName.set(view.sourceName, view);
    }
  }

  get hasInstances(): boolean {
    return this.#instances.size > 0;
  }

  /** The view with this canonical or source name. */
  viewNamed(name: string): ViewDef | undefined {
    return this.#byName.get(name);
  }

  /**
   * A schema per declared view, for `SELECT * FROM *` listings: names only, under a table id
   * no table has (just below the instance ids; listings never resolve it).
   */
  declaredSchemas(): TableSchema[] {
    return this.#views.map((view) => viewSchema(view, VIEW_TABLE_ID_BASE - 1));
  }

  /** The instance table's schema, if `tableId` is a live instance. */
  schema(tableId: number): TableSchema | undefined {
    return this.#byTableId.get(tableId)?.schema;
  }

  /** The rows of a live instance table. */
  rows(tableId: number): Uint8Array[] {
    const instance = this.#byTableId.get(tableId);
    return instance === undefined ? [] : [...instance.rows.values()];
  }

  /** The live instance of `view` for `sender` (ignored for anonymous views), if any. */
  instance(view: ViewDef, sender: bigint): TableSchema | undefined {
    return this.#instances.get(instanceKey(view, sender))?.schema;
  }

  /**
   * Materializes `view` for `sender` with `tx` open (the caller rolls it back or commits it;
   * the view itself cannot write). Returns the instance's table schema. Throws ViewFailureError.
   * `source`: the client source a new per-sender instance is charged to (its share of
   * VIEW_INSTANCES_READING_TABLE_MAX); an existing instance is shared whoever asks.
   */
  materialize(view: ViewDef, sender: bigint, tx: MutTx, source?: string): TableSchema {
    const key = instanceKey(view, sender);
    const existing = this.#instances.get(key);
    if (existing !== undefined) return existing.schema;
    if (!view.isAnonymous && this.#senderInstanceCount >= VIEW_SENDER_INSTANCES_MAX) {
      throw new ViewFailureError(
        `Cannot materialize view \`${view.name}\` for another sender: the database already ` +
          `holds ${VIEW_SENDER_INSTANCES_MAX} per-sender view instances`,
      );
    }
    const run = this.#run(view, view.isAnonymous ? undefined : sender, tx);
    if (!view.isAnonymous) this.#checkTableReaders(view, run.reads, source);
    const instance: Instance = {
      key,
      view,
      sender: view.isAnonymous ? undefined : sender,
      source: view.isAnonymous ? undefined : source,
      schema: viewSchema(view, this.#nextTableId++),
      rows: run.rows,
      reads: run.reads,
      refs: 0,
    };
    this.#instances.set(key, instance);
    this.#byTableId.set(instance.schema.tableId, instance);
    this.#index(instance);
    if (instance.sender !== undefined) this.#senderInstanceCount++;
    return instance.schema;
  }

  /**
   * Refuses a new per-sender instance that reads a table whole when VIEW_INSTANCES_READING_TABLE_MAX
   * per-sender instances already do: each one is re-run inside every write to that table, so
   * without a bound the writer pays for every anonymous connection. (An instance whose read set
   * grows to whole tables when re-run inside a write is not refused there: the write stands.)
   * Each client source may hold VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX of them per table, so
   * fresh identities from one address cannot take every place and lock the other clients out.
   */
  #checkTableReaders(view: ViewDef, reads: ReadSet, source: string | undefined): void {
    for (const tableId of reads.tables) {
      let count = 0;
      let fromSource = 0;
      for (const reader of this.#tableReaders.get(tableId) ?? []) {
        if (reader.sender === undefined) continue;
        count++;
        if (source !== undefined && reader.source === source) fromSource++;
      }
      const tableName = () =>
        this.#env.tables().find((schema) => schema.tableId === tableId)?.name ?? tableId;
      if (fromSource >= VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX) {
        throw new ViewFailureError(
          `Cannot materialize view \`${view.name}\` for another sender: clients from this ` +
            `address already hold ${VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX} of the ` +
            `${VIEW_INSTANCES_READING_TABLE_MAX} per-sender view instances that may read table ` +
            `\`${tableName()}\` whole (each is re-run on every write to it); ` +
            `a view that reads it through an index point is not limited`,
        );
      }
      if (count < VIEW_INSTANCES_READING_TABLE_MAX) continue;
      const table = { name: tableName() };
      throw new ViewFailureError(
        `Cannot materialize view \`${view.name}\` for another sender: ` +
          `${VIEW_INSTANCES_READING_TABLE_MAX} per-sender view instances already read table ` +
          `\`${table.name}\` whole, and each is re-run on every write to it; ` +
          `a view that reads it through an index point is not limited`,
      );
    }
  }

  /** One more live query reads the instance table. */
  retain(tableId: number): void {
    const instance = this.#byTableId.get(tableId);
    if (instance !== undefined) instance.refs++;
  }

  /** One live query fewer; an instance nobody reads is dropped. */
  release(tableId: number): void {
    const instance = this.#byTableId.get(tableId);
    if (instance === undefined) return;
    if (--instance.refs <= 0) this.#drop(instance);
  }

  /** Drops an instance no live query reads (after a one-off query materialized it). */
  dropIfUnused(tableId: number): void {
    const instance = this.#byTableId.get(tableId);
    if (instance !== undefined && instance.refs <= 0) this.#drop(instance);
  }

  /**
   * Re-runs, inside `tx`, every instance whose read set the transaction's changes touch.
   * Returns what to apply at commit, or undefined when nothing was stale. Throws
   * ViewFailureError (or the view's own error) when a view fails: roll `tx` back then.
   */
  refresh(tx: MutTx): PendingViewChanges | undefined {
    if (this.#instances.size === 0) return undefined;
    const stale = this.#stale(tx.changedRows());
    if (stale.size === 0) return undefined;
    const runs: PendingViewChanges["runs"] = [];
    for (const instance of stale) {
      const run = this.#run(instance.view, instance.sender, tx);
      runs.push({ instance, rows: run.rows, reads: run.reads });
    }
    return { runs };
  }

  /**
   * Read replica: re-runs, with `tx` open over the state after a replicated transaction, every
   * instance whose read set `changes` (that transaction's rows) touch. The transaction stands
   * whatever the views do, so a failing instance does not stop the others: it is reported to
   * `failed` and keeps its previous rows.
   */
  refreshAfter(
    changes: TableDelta[],
    tx: MutTx,
    failed: (view: ViewDef, error: unknown) => void,
  ): PendingViewChanges | undefined {
    if (this.#instances.size === 0) return undefined;
    const stale = this.#stale(changes);
    if (stale.size === 0) return undefined;
    const runs: PendingViewChanges["runs"] = [];
    for (const instance of stale) {
      try {
        const run = this.#run(instance.view, instance.sender, tx);
        runs.push({ instance, rows: run.rows, reads: run.reads });
      } catch (error) {
        failed(instance.view, error);
      }
    }
    return runs.length === 0 ? undefined : { runs };
  }

  /** Applies re-run results once their transaction committed; returns the instance tables' changes. */
  apply(pending: PendingViewChanges): TableDelta[] {
    const out: TableDelta[] = [];
    for (const { instance, rows, reads } of pending.runs) {
      if (this.#instances.get(instance.key) !== instance) continue;
      const inserts: Uint8Array[] = [];
      const deletes: Uint8Array[] = [];
      for (const [key, row] of instance.rows) if (!rows.has(key)) deletes.push(row);
      for (const [key, row] of rows) if (!instance.rows.has(key)) inserts.push(row);
      instance.rows = rows;
      // A re-run usually reads the same points (a view over the sender's rows, one changed):
      // then the reverse index stays as it is.
      if (!sameReads(instance.reads, reads)) {
        this.#unindex(instance);
        instance.reads = reads;
        this.#index(instance);
      }
      if (inserts.length > 0 || deletes.length > 0) {
        out.push({ tableId: instance.schema.tableId, inserts, deletes });
      }
    }
    return out;
  }

  #stale(changes: TableDelta[]): Set<Instance> {
    const stale = new Set<Instance>();
    const tables = this.#env.tables();
    for (const change of changes) {
      const readers = this.#tableReaders.get(change.tableId);
      if (readers !== undefined) { for (const instance of readers) stale.add(instance); }
      if (this.#pointReaders.size === 0) continue;
      const schema = tables.find((table) => table.tableId === change.tableId);
      if (schema === undefined) continue;
      for (const index of schema.indexes) {
        const byKey = this.#pointReaders.get(index.indexId);
        if (byKey === undefined) continue;
        const project = keyProjector(schema, index.columns);
        for (const rows of [change.inserts, change.deletes]) {
          for (const row of rows) {
            const readers = byKey.get(project(row));
            if (readers !== undefined) { for (const instance of readers) stale.add(instance); }
          }
        }
      }
    }
    return stale;
  }

  /** Runs a view once with `tx` open: its rows (deduplicated) and its read set. */
  #run(
    view: ViewDef,
    sender: bigint | undefined,
    tx: MutTx,
  ): { rows: Map<string, Uint8Array>; reads: ReadSet } {
    const reads: ReadSet = { tables: new Set(), points: new Map() };
    const indexes = this.#indexes();
    const recorder: ViewReadRecorder = {
      table: (tableId) => void reads.tables.add(tableId),
      range: (indexId, bytes, prefixLen, prefixElems, rstartLen, rendLen) => {
        const index = indexes.get(indexId);
        if (index === undefined) return; // the scan itself fails with NO_SUCH_INDEX
        const point = rangePoint(bytes, prefixLen, prefixElems, rstartLen, rendLen);
        if (point !== undefined && prefixElems + 1 === index.columns) {
          recorder.point(indexId, point);
        } else reads.tables.add(index.tableId);
      },
      point: (indexId, key) => {
        let keys = reads.points.get(indexId);
        if (keys === undefined) reads.points.set(indexId, keys = new Set());
        keys.add(binaryString(key));
      },
    };
    this.runCount++;
    const data = this.#env.callHook(view, sender, recorder, tx);
    let rowList: Uint8Array[];
    try {
      rowList = this.#decodeResult(view, data, tx, reads);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new ViewFailureError(`Error materializing view \`${view.name}\`: ${message}`);
    }
    const rows = new Map<string, Uint8Array>();
    for (const row of rowList) rows.set(binaryString(row), row);
    if (view.primaryKey !== undefined) checkPrimaryKey(view, rows);
    return { rows, reads };
  }

  #decodeResult(view: ViewDef, data: Uint8Array, tx: MutTx, reads: ReadSet): Uint8Array[] {
    if (!(data instanceof Uint8Array) || data.length === 0) {
      throw new Error("Error parsing view result: the view returned no data");
    }
    const reader = new BinaryReader(data);
    const tag = reader.readU8();
    if (tag === 1) {
      const sql = reader.readString();
      return this.#runSql(view, sql, tx, reads);
    }
    if (tag !== 0) throw new Error(`Error parsing view result: unknown result tag ${tag}`);
    const count = reader.readU32();
    const rowType = { tag: "Product", value: view.rowType } as const;
    const rows: Uint8Array[] = new Array(count);
    // One copy of the module's buffer (it may reuse it), rows as views into the copy: a new
    // array per row costs ~0.5-1 µs in Deno, and a touched instance re-runs its whole view.
    const copy = data.slice();
    try {
      for (let i = 0; i < count; i++) {
        const start = reader.offset;
        skipValue(reader, rowType, view.typespace);
        rows[i] = copy.subarray(start, reader.offset);
      }
    } catch (error) {
      throw new Error(`Error deserializing rows returned by view: ${String(error)}`);
    }
    if (reader.remaining !== 0) {
      throw new Error("Error deserializing rows returned by view: trailing bytes");
    }
    return rows;
  }

  /** A query-builder view: its SQL, compiled with owner rights, run against `tx`. */
  #runSql(view: ViewDef, sql: string, tx: MutTx, reads: ReadSet): Uint8Array[] {
    if (sql.trim() === "") return [];
    const env = this.#env;
    const byId = new Map(env.tables().map((table) => [table.tableId, table]));
    const catalog: QueryCatalog = {
      tableIdFromName: (name) => {
        if (env.tableIdFromName(name) === undefined && this.#byName.has(name)) {
          throw new Error("view definition cannot read from other views");
        }
        return env.tableIdFromName(name);
      },
      schema: (tableId) => byId.get(tableId),
    };
    let plan;
    try {
      plan = compileSubscriptionQuery(sql, catalog, { sender: 0n, isOwner: true });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`Error executing raw SQL returned by view: ${message}`);
    }
    if (plan.topN !== undefined) {
      // ORDER BY … LIMIT is for subscriptions (query/topn.ts); SpacetimeDB refuses it here.
      throw new Error(`Error executing raw SQL returned by view: Unsupported: ${sql.trim()}`);
    }
    if (plan.usesSender) {
      throw new Error("parameterized SQL is not supported for view materialization yet");
    }
    const table = plan.returnTable;
    const returned = formatType({ tag: "Product", value: table.rowType }, table.typespace);
    const expected = formatType({ tag: "Product", value: view.rowType }, view.typespace);
    if (returned !== expected) {
      throw new Error(`query returns \`${returned}\` but view expects \`${expected}\``);
    }
    // Every table of the plan is read whole (a join fragment, once joins exist, lists them all).
    reads.tables.add(plan.returnTable.tableId);
    for (const fragment of plan.fragments) {
      const shape = fragment as { table?: TableSchema; instances?: { table: TableSchema }[] };
      if (shape.table !== undefined) reads.tables.add(shape.table.tableId);
      for (const instance of shape.instances ?? []) reads.tables.add(instance.table.tableId);
    }
    return executePlan(plan, {
      ...catalog,
      committedRows: (tableId) => tx.scan(tableId),
    });
  }

  /** index id -> its table and column count (built once). */
  #indexesCache: Map<number, { tableId: number; columns: number }> | undefined;
  #indexes(): Map<number, { tableId: number; columns: number }> {
    if (this.#indexesCache === undefined) {
      this.#indexesCache = new Map();
      for (const table of this.#env.tables()) {
        for (const index of table.indexes) {
          this.#indexesCache.set(index.indexId, {
            tableId: table.tableId,
            columns: index.columns.length,
          });
        }
      }
    }
    return this.#indexesCache;
  }

  #index(instance: Instance): void {
    for (const tableId of instance.reads.tables) {
      let readers = this.#tableReaders.get(tableId);
      if (readers === undefined) this.#tableReaders.set(tableId, readers = new Set());
      readers.add(instance);
    }
    for (const [indexId, keys] of instance.reads.points) {
      let byKey = this.#pointReaders.get(indexId);
      if (byKey === undefined) this.#pointReaders.set(indexId, byKey = new Map());
      for (const key of keys) {
        let readers = byKey.get(key);
        if (readers === undefined) byKey.set(key, readers = new Set());
        readers.add(instance);
      }
    }
  }

  #unindex(instance: Instance): void {
    for (const tableId of instance.reads.tables) {
      const readers = this.#tableReaders.get(tableId);
      readers?.delete(instance);
      if (readers?.size === 0) this.#tableReaders.delete(tableId);
    }
    for (const [indexId, keys] of instance.reads.points) {
      const byKey = this.#pointReaders.get(indexId);
      if (byKey === undefined) continue;
      for (const key of keys) {
        const readers = byKey.get(key);
        readers?.delete(instance);
        if (readers?.size === 0) byKey.delete(key);
      }
      if (byKey.size === 0) this.#pointReaders.delete(indexId);
    }
  }

  #drop(instance: Instance): void {
    if (instance.sender !== undefined) this.#senderInstanceCount--;
    this.#unindex(instance);
    this.#instances.delete(instance.key);
    this.#byTableId.delete(instance.schema.tableId);
  }
}

function sameReads(a: ReadSet, b: ReadSet): boolean {
  if (a.tables.size !== b.tables.size || a.points.size !== b.points.size) return false;
  for (const tableId of b.tables) if (!a.tables.has(tableId)) return false;
  for (const [indexId, keys] of b.points) {
    const old = a.points.get(indexId);
    if (old === undefined || old.size !== keys.size) return false;
    for (const key of keys) if (!old.has(key)) return false;
  }
  return true;
}

function instanceKey(view: ViewDef, sender: bigint): string {
  return view.isAnonymous ? `a${view.id}` : `s${view.id}:${sender.toString(16)}`;
}

/**
 * The table a view instance looks like to queries: the view's columns, and with a primary key
 * a unique index on it (SpacetimeDB's backing table has one on (arg_hash, pk), arg_hash being
 * fixed within an instance), which lets the view be the lookup side of a join. Queries never
 * read through it: the instance answers every lookup by scanning its rows.
 */
function viewSchema(view: ViewDef, tableId: number): TableSchema {
  const pk = view.primaryKey;
  return {
    tableId,
    name: view.name,
    sourceName: view.sourceName,
    rowType: view.rowType,
    columnAccessors: view.columns.map((column) => column.sourceName),
    typespace: view.typespace,
    primaryKey: pk === undefined ? [] : [pk],
    indexes: pk === undefined ? [] : [{
      indexId: tableId,
      name: `${view.name}_${view.columns[pk].name}_idx_btree`,
      sourceName: `${view.sourceName}_${view.columns[pk].sourceName}_idx_btree`,
      accessorName: undefined,
      algorithm: "btree",
      columns: [pk],
      unique: true,
    }],
    uniqueConstraints: pk === undefined ? [] : [[pk]],
    sequences: [],
    isPublic: view.isPublic,
    isEvent: false,
  };
}

/** Two distinct rows with the same primary key fail the view (SpacetimeDB's unique index). */
const primaryKeyProjectors = new WeakMap<ViewDef, (row: Uint8Array) => string>();

function checkPrimaryKey(view: ViewDef, rows: Map<string, Uint8Array>): void {
  let project = primaryKeyProjectors.get(view);
  if (project === undefined) {
    project = columnProjector(view.rowType, view.typespace, [view.primaryKey!]);
    primaryKeyProjectors.set(view, project);
  }
  const seen = new Set<string>();
  for (const row of rows.values()) {
    const key = project(row);
    if (seen.has(key)) {
      throw new ViewFailureError(
        `Error materializing view \`${view.name}\`: two rows have the same primary key ` +
          `(column \`${view.columns[view.primaryKey!].name}\`)`,
      );
    }
    seen.add(key);
  }
}

const projectors = new WeakMap<TableSchema, Map<string, (row: Uint8Array) => string>>();

function keyProjector(schema: TableSchema, columns: number[]): (row: Uint8Array) => string {
  let bySchema = projectors.get(schema);
  if (bySchema === undefined) projectors.set(schema, bySchema = new Map());
  const key = columns.join(",");
  let project = bySchema.get(key);
  if (project === undefined) {
    project = columnProjector(schema.rowType, schema.typespace, columns);
    bySchema.set(key, project);
  }
  return project;
}

/** The BSATN of `columns` of a row, concatenated in that order, as a binary string. */
function columnProjector(
  rowType: ProductType,
  typespace: Typespace,
  columns: number[],
): (row: Uint8Array) => string {
  const last = Math.max(...columns);
  // Columns behind fixed-size ones sit at fixed offsets (the rows were validated when they were
  // stored or returned): no reader, no DataView per row.
  const fixedStarts: number[] = [0];
  for (let column = 0; column <= last; column++) {
    const size = fixedSizeOf(rowType.elements[column].algebraicType, typespace);
    if (size === undefined) break;
    fixedStarts.push(fixedStarts[column] + size);
  }
  if (fixedStarts.length === last + 2) {
    return (row) => {
      let out = "";
      for (const column of columns) {
        for (let i = fixedStarts[column]; i < fixedStarts[column + 1]; i++) {
          out += String.fromCharCode(row[i]);
        }
      }
      return out;
    };
  }
  const reader = new BinaryReader(new Uint8Array(0));
  const starts: number[] = new Array(last + 2);
  return (row) => {
    reader.reset(row);
    for (let column = 0; column <= last; column++) {
      starts[column] = reader.offset;
      skipValue(reader, rowType.elements[column].algebraicType, typespace);
    }
    starts[last + 1] = reader.offset;
    let out = "";
    for (const column of columns) {
      out += binaryString(row.subarray(starts[column], starts[column + 1]));
    }
    return out;
  };
}

/** Range bound tags (module-abi.md §2.4). */
const BOUND_INCLUDED = 0;

/**
 * The key a range scan reads when it is one point: prefix columns, then an included start and
 * an included end with the same value. Undefined for a real range.
 */
function rangePoint(
  bytes: Uint8Array,
  prefixLen: number,
  _prefixElems: number,
  rstartLen: number,
  rendLen: number,
): Uint8Array | undefined {
  if (rstartLen !== rendLen || rstartLen < 1) return undefined;
  const start = bytes.subarray(prefixLen, prefixLen + rstartLen);
  const end = bytes.subarray(prefixLen + rstartLen, prefixLen + rstartLen + rendLen);
  if (start[0] !== BOUND_INCLUDED || end[0] !== BOUND_INCLUDED) return undefined;
  for (let i = 1; i < start.length; i++) if (start[i] !== end[i]) return undefined;
  const key = new Uint8Array(prefixLen + rstartLen - 1);
  key.set(bytes.subarray(0, prefixLen), 0);
  key.set(start.subarray(1), prefixLen);
  return key;
}

/** Bytes as a string of char codes 0-255 (a Map key). */
export function binaryString(bytes: Uint8Array): string {
  // `apply` on the typed array: a spread would go through the iterator protocol.
  if (bytes.length <= 4096) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(
      null,
      bytes.subarray(i, Math.min(bytes.length, i + 4096)) as unknown as number[],
    );
  }
  return out;
}
