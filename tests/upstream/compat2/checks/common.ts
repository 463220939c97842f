/**
 * Shared helpers for the compat2 checks. Each check runs in its own `deno` process whose import
 * resolution points the generated bindings' bare `spacetimedb` import at the SDK version under
 * test (run.ts sets that up), so nothing here imports `spacetimedb` itself: everything comes from
 * the bindings module passed on the command line.
 */
import { waitUntil, within } from "../../../support/wait.ts";

export { waitUntil, within };

/** The arguments run.ts passes: bindings index path, server URL, database name. */
export interface CheckArgs {
  bindings: string;
  url: string;
  db: string;
  extra: string[];
}

export function checkArgs(): CheckArgs {
  const [bindings, url, db, ...extra] = Deno.args;
  if (bindings === undefined || url === undefined || db === undefined) {
    throw new Error("usage: CHECK.ts BINDINGS_INDEX_TS SERVER_URL DATABASE [EXTRA...]");
  }
  return { bindings, url, db, extra };
}

// The bindings are loaded at run time; their types are not known to this file.
// deno-lint-ignore no-explicit-any
export type Any = any;

export async function loadBindings(path: string): Promise<Any> {
  return await import(new URL(`file://${path}`).href);
}

/** Connects with the official SDK; resolves once `onConnect` ran. */
export function connect(
  bindings: Any,
  url: string,
  db: string,
  options: { token?: string; onDisconnect?: (ctx: Any, error?: Error) => void } = {},
): Promise<{ conn: Any; identity: Any; token: string }> {
  return within(
    new Promise((resolve, reject) => {
      let builder = bindings.DbConnection.builder()
        .withUri(url.replace(/^http/, "ws"))
        .withDatabaseName(db)
        .onConnect((conn: Any, identity: Any, token: string) => resolve({ conn, identity, token }))
        .onConnectError((_ctx: Any, error: Error) => reject(error));
      if (options.token !== undefined) builder = builder.withToken(options.token);
      if (options.onDisconnect !== undefined) builder = builder.onDisconnect(options.onDisconnect);
      builder.build();
    }),
    `connecting to ${db}`,
  );
}

/** Subscribes (SQL strings or query-builder queries); resolves once applied. */
export function subscribe(conn: Any, queries: unknown[]): Promise<void> {
  return within(
    new Promise((resolve, reject) => {
      conn.subscriptionBuilder()
        .onApplied(() => resolve())
        .onError((ctx: Any) => reject(ctx?.event ?? new Error("subscription error")))
        .subscribe(queries);
    }),
    `subscription ${JSON.stringify(queries.map(String))}`,
  );
}

/** Calls a reducer through the bindings and waits for its result (throws on failure). */
export async function callReducer(conn: Any, name: string, args: unknown): Promise<void> {
  const fn = conn.reducers[name];
  if (typeof fn !== "function") throw new Error(`bindings have no reducer ${name}`);
  await within(Promise.resolve(fn.call(conn.reducers, args)), `reducer ${name}`);
}

/** A list of named checks; prints one line each and exits 1 if any failed. */
export async function runChecks(
  group: string,
  checks: [string, () => Promise<void>][],
): Promise<void> {
  let failed = 0;
  for (const [name, body] of checks) {
    try {
      await body();
      console.log(`ok   ${group}: ${name}`);
    } catch (error) {
      failed++;
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      console.log(`FAIL ${group}: ${name}: ${message.split("\n").slice(0, 4).join(" | ")}`);
    }
  }
  Deno.exit(failed === 0 ? 0 : 1);
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

export function assertEq(actual: unknown, expected: unknown, what: string): void {
  const a = stringify(actual);
  const e = stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

export function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
}
