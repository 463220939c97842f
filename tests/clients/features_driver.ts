/**
 * The client side of the feature scenario (features_test.ts): a client of the official
 * `spacetimedb` SDK and the generated bindings in tests/fixtures/bindings/client_features,
 * driven by named operations with JSON arguments and results like driver.ts's chat client.
 * Bundled for Node.js and for a browser page with `spacetimedb` aliased to one SDK version.
 */
import { DbConnection } from "../fixtures/bindings/client_features/index.ts";

type Args = Record<string, unknown>;
type Outcome<T = null> = { ok: true; value: T } | { ok: false; error: string };

/** The tables and views a client may read and watch, by their accessor in the bindings. */
const TABLES = ["score", "myScores", "card", "memo"] as const;
type TableName = typeof TABLES[number];

interface Entry {
  conn: DbConnection;
  events: string[];
}

function text(value: unknown): string {
  if (value instanceof Error) return value.message;
  const message = (value as { message?: unknown } | null)?.message;
  if (typeof message === "string" && message !== "") return message;
  return String(value);
}

/** A row as JSON: identities as hex, bigints as decimal strings. */
function plain(row: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row)) {
    if (typeof value === "bigint") out[key] = String(value);
    else if (typeof (value as { toHexString?: unknown })?.toHexString === "function") {
      out[key] = (value as { toHexString(): string }).toHexString();
    } else out[key] = value;
  }
  return out;
}

/** How a row appears in an event line: `id:points` for scores, `id:text` for cards and memos. */
function label(_table: TableName, row: Record<string, unknown>): string {
  return "text" in row ? `${row.id}:${row.text}` : `${row.id}:${row.points}`;
}

function tableName(value: unknown): TableName {
  const name = String(value) as TableName;
  if (!TABLES.includes(name)) throw new TypeError(`Unknown table "${name}"`);
  return name;
}

interface TableHandle {
  iter(): Iterable<object>;
  onInsert(cb: (ctx: unknown, row: object) => void): void;
  onDelete(cb: (ctx: unknown, row: object) => void): void;
  onUpdate?(cb: (ctx: unknown, before: object, after: object) => void): void;
}

/** One runtime's set of named connections to a client_features database. */
export class FeaturesDriver {
  #entries = new Map<string, Entry>();

  #entry(name: unknown): Entry {
    const entry = this.#entries.get(String(name));
    if (!entry) throw new Error(`No connection named "${String(name)}"`);
    return entry;
  }

  #table(name: unknown, table: TableName): TableHandle {
    return (this.#entry(name).conn.db as unknown as Record<TableName, TableHandle>)[table];
  }

  /** Runs one operation; results are plain JSON values. */
  run(op: string, args: Args = {}): Promise<unknown> {
    switch (op) {
      case "connect":
        return this.#connect(args);
      case "subscribe":
        return this.#subscribe(args);
      case "watch":
        return Promise.resolve(this.#watch(args));
      case "rows":
        return Promise.resolve(
          [...this.#table(args.name, tableName(args.table)).iter()].map(plain)
            .sort((a, b) => Number(a.id) - Number(b.id)),
        );
      case "events":
        return Promise.resolve([...this.#entry(args.name).events]);
      case "call":
        return this.#call(args);
      case "procedure":
        return this.#procedure(args);
      case "disconnect":
        this.#entry(args.name).conn.disconnect();
        return Promise.resolve(null);
      default:
        return Promise.reject(new Error(`Unknown driver operation "${op}"`));
    }
  }

  #connect(args: Args): Promise<{ identity: string; token: string }> {
    const name = String(args.name);
    return new Promise((resolve, reject) => {
      DbConnection.builder()
        .withUri(String(args.url).replace(/^http/, "ws"))
        .withDatabaseName(String(args.database))
        .withToken(typeof args.token === "string" ? args.token : undefined)
        .onConnect((conn, identity, token) => {
          this.#entries.set(name, { conn, events: [] });
          resolve({ identity: identity.toHexString(), token });
        })
        .onConnectError((_ctx, error) => reject(new Error(`connect failed: ${text(error)}`)))
        .build();
    });
  }

  /** Subscribes to `queries`; a refused subscription is a result, not a failure. */
  #subscribe(args: Args): Promise<Outcome> {
    const { conn } = this.#entry(args.name);
    return new Promise((resolve) => {
      conn.subscriptionBuilder()
        .onApplied(() => resolve({ ok: true, value: null }))
        .onError((ctx) => resolve({ ok: false, error: text((ctx as { event?: unknown }).event) }))
        .subscribe(args.queries as string[]);
    });
  }

  /** Records inserts, deletes and updates of every table as `<table> +|-|~ <row>` lines. */
  #watch(args: Args): null {
    const { events } = this.#entry(args.name);
    for (const table of TABLES) {
      const handle = this.#table(args.name, table);
      handle.onInsert((_ctx, row) => events.push(`${table} +${label(table, plain(row))}`));
      handle.onDelete((_ctx, row) => events.push(`${table} -${label(table, plain(row))}`));
      handle.onUpdate?.((_ctx, before, after) =>
        events.push(`${table} ~${label(table, plain(before))}->${label(table, plain(after))}`)
      );
    }
    return null;
  }

  async #call(args: Args): Promise<Outcome> {
    const reducers = this.#entry(args.name).conn.reducers as unknown as Record<
      string,
      ((input: unknown) => Promise<void>) | undefined
    >;
    const invoke = reducers[String(args.reducer)];
    if (!invoke) throw new TypeError(`Unknown reducer "${String(args.reducer)}"`);
    try {
      await invoke(args.args ?? {});
      return { ok: true, value: null };
    } catch (error) {
      return { ok: false, error: text(error) };
    }
  }

  async #procedure(args: Args): Promise<Outcome<unknown>> {
    const { conn } = this.#entry(args.name);
    const input = (args.args ?? {}) as { id: number; bonus: number };
    if (args.procedure !== "award") {
      throw new TypeError(`Unknown procedure "${String(args.procedure)}"`);
    }
    try {
      return { ok: true, value: await conn.procedures.award(input) };
    } catch (error) {
      return { ok: false, error: text(error) };
    }
  }
}
