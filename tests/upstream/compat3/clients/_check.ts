// Shared helpers of the compat3 drivers. run.ts copies this file and one driver into a
// copy of an upstream template's src/ (next to the bindings `lightcone generate` wrote),
// bundles them with esbuild and runs the bundle with Node. Configuration comes from the
// environment: LC_WS_URL (ws://host:port) and LC_DB (the database name).

export const WS_URL = env("LC_WS_URL");
export const DB_NAME = env("LC_DB");

function env(name: string): string {
  // deno-lint-ignore no-explicit-any
  return (globalThis as any).process?.env?.[name] ?? "";
}

let failures = 0;

/** Runs one named behaviour check and prints `ok NAME` or `FAIL NAME: reason`. */
export async function check(name: string, body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
    console.log(`ok ${name}`);
  } catch (error) {
    failures++;
    console.log(`FAIL ${name}: ${(error as Error)?.message ?? error}`);
  }
}

/** Throws with `message` unless `condition` holds. */
export function expect(condition: unknown, message: string): void {
  if (!condition) throw new Error(message);
}

/** Polls `condition` every 20 ms until it returns a truthy value, or throws after `timeoutMs`. */
export async function waitFor<T>(
  label: string,
  condition: () => T | undefined | null | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Awaits a reducer or procedure call that must fail, and returns its error text. */
export async function rejection(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as Error)?.message ?? String(error);
  }
  throw new Error("the call succeeded but should have failed");
}

// deno-lint-ignore no-explicit-any
type Builder = any;

/**
 * Connects with `builder` (a DbConnection.builder() with URI and database set) and resolves
 * with the connection, its identity and token once `onConnect` ran.
 */
export function connect<C>(
  builder: Builder,
): Promise<{ conn: C; identity: { toHexString(): string }; token: string }> {
  if (WS_URL === "" || DB_NAME === "") throw new Error("LC_WS_URL and LC_DB must be set");
  return new Promise((resolve, reject) => {
    builder
      .onConnect((conn: C, identity: { toHexString(): string }, token: string) =>
        resolve({ conn, identity, token })
      )
      .onConnectError((_ctx: unknown, error: Error) => reject(error))
      .build();
  });
}

/** Subscribes to `queries` (query builders or SQL) and resolves once the rows are applied. */
export function subscribe(conn: Builder, queries: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx: { event?: Error }) => reject(ctx.event ?? new Error("subscription failed")))
      .subscribe(queries);
  });
}

/** Prints the summary line and exits 0 when every check passed, else 1. */
export function finish(): never {
  console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
  // deno-lint-ignore no-explicit-any
  (globalThis as any).process.exit(failures === 0 ? 0 : 1);
  throw new Error("unreachable");
}
