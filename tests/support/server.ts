/**
 * Test harness: a real Lightcone server on a free loopback port with a temporary
 * data directory, and small HTTP helpers that talk to it as any client would.
 */
import type { OidcOptions } from "../../auth/mod.ts";
import type { DatabaseLimits } from "../../lib/limits.ts";
import { type JsonOutput, parseJson, stringifyJson } from "../../protocol/mod.ts";
import {
  parseHttpAllow,
  type ResponseBudgetOptions,
  type RunningServer,
  startServer,
} from "../../server/mod.ts";
import { bundleModule, fixtureModulePath } from "./describe_module.ts";

export interface TestServer {
  server: RunningServer;
  url: string;
  dataDir: string;
  /** Stops the server and, unless `keepData`, removes its data directory. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export async function startTestServer(
  options: {
    dataDir?: string;
    /** Port to listen on (default 0: any free port); reuse one to restart "in place". */
    port?: number;
    reducerBudgetMs?: number;
    databaseMemoryMb?: number;
    wsCompression?: boolean;
    oidc?: OidcOptions;
    limits?: Partial<DatabaseLimits>;
    /** `--http-allow` values (server/outbound_http.ts). */
    httpAllow?: string[];
    /** Resolves host names for outbound HTTP instead of DNS. */
    httpResolve?: (hostname: string) => Promise<string[]>;
    /** `--hibernate-after-s` (default: the server's). */
    hibernateAfterS?: number;
    /** `--warm-spare`. */
    warmSpare?: boolean;
    /** `--snapshot-interval-tx`. */
    snapshotIntervalTx?: number;
    /** Commit-log segment size (small: a log of many segments). */
    logSegmentBytes?: number;
    /** `--replication-key-file`. */
    replicationKeyFile?: string;
    /** `--nats-ca`. */
    natsCaFile?: string;
    /** `--replicate` / `--follow` (host:port of a NATS server). */
    replicate?: string;
    follow?: string;
    /** `--promote` / `--promote-discard-unapplied` (with `replicate`). */
    promote?: boolean;
    promoteDiscardUnapplied?: boolean;
    /** `--trusted-proxy` values. */
    trustedProxies?: string[];
    /** Bounds on large responses held for clients not reading them. */
    responseBudget?: ResponseBudgetOptions;
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "lightcone-test-" });
  const server = await startServer({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    dataDir,
    reducerBudgetMs: options.reducerBudgetMs,
    databaseMemoryMb: options.databaseMemoryMb,
    wsCompression: options.wsCompression,
    oidc: options.oidc,
    limits: options.limits,
    httpAllow: options.httpAllow ? parseHttpAllow(options.httpAllow) : undefined,
    httpResolve: options.httpResolve,
    hibernateAfterS: options.hibernateAfterS,
    warmSpare: options.warmSpare,
    snapshotIntervalTx: options.snapshotIntervalTx,
    logSegmentBytes: options.logSegmentBytes,
    replicationKeyFile: options.replicationKeyFile,
    natsCaFile: options.natsCaFile,
    replicate: options.replicate,
    follow: options.follow,
    promote: options.promote,
    promoteDiscardUnapplied: options.promoteDiscardUnapplied,
    trustedProxies: options.trustedProxies,
    responseBudget: options.responseBudget,
  });
  return {
    server,
    url: server.url,
    dataDir,
    async close(closeOptions = {}) {
      await server.shutdown();
      if (!closeOptions.keepData) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Bundles tests/fixtures/modules/<name>/index.ts (cached by content). */
export function fixtureBundle(name: string): Promise<string> {
  return bundleModule(fixtureModulePath(name));
}

/**
 * Bundles tests/fixtures/modules/<name>/index.ts with version `spacetimedb` of the module
 * library instead of deno.json's (cached by content and version).
 */
export function fixtureBundleWithLibrary(name: string, spacetimedb: string): Promise<string> {
  return bundleModule(fixtureModulePath(name), { spacetimedb });
}

export interface Published {
  name: string;
  identity: string;
  /** Token of the owner (the identity that published). */
  token: string;
}

/** Publishes `bundle` under `name` as a fresh anonymous identity (which becomes the owner). */
export async function publish(
  url: string,
  name: string,
  bundle: string,
  options: { token?: string; clear?: boolean } = {},
): Promise<Published> {
  const query = `host_type=Js${options.clear ? "&clear=true" : ""}`;
  const response = await fetch(`${url}/v1/database/${name}?${query}`, {
    method: "PUT",
    body: bundle,
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`publish failed: ${response.status} ${text}`);
  const body = JSON.parse(text);
  return {
    name,
    identity: body.Success.database_identity,
    token: options.token ?? response.headers.get("spacetime-identity-token")!,
  };
}

export interface CallResponse {
  status: number;
  text: string;
  /** Parsed JSON body (procedures), when the body is JSON. */
  json?: unknown;
}

/** POST /call with JSON arguments. Big integers may be passed as bigint. */
export async function call(
  url: string,
  database: string,
  name: string,
  args: unknown[],
  token?: string,
): Promise<CallResponse> {
  const response = await fetch(`${url}/v1/database/${database}/call/${name}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: stringifyWithBigInts(args),
  });
  const text = await response.text();
  let json: unknown;
  if (response.headers.get("content-type")?.startsWith("application/json")) {
    json = parseWithBigInts(text);
  }
  return { status: response.status, text, json };
}

/** JSON text with bigint values written as exact JSON numbers (protocol's own writer). */
export function stringifyWithBigInts(value: unknown): string {
  return stringifyJson(value as JsonOutput);
}

/** JSON.parse that keeps integers beyond 2^53 exact, as bigint (protocol's own reader). */
export const parseWithBigInts: (text: string) => unknown = parseJson;

export interface ServerProcess {
  url: string;
  dataDir: string;
  child: Deno.ChildProcess;
  /** What the server printed on stdout up to its listening line (start-up log). */
  startupOutput: string;
  /** Sends SIGTERM (or `signal`) and waits for exit. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/**
 * Starts `main.ts start` as a child process on a free port (as `deno task start`
 * does) and waits until it prints its listening line.
 */
export async function startServerProcess(
  options: {
    dataDir?: string;
    args?: string[];
    denoArgs?: string[];
    /** Extra environment variables for the server (added to this process's own). */
    env?: Record<string, string>;
  } = {},
): Promise<ServerProcess> {
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "lightcone-proc-" });
  const root = new URL("../../", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-worker-options",
      "-A",
      ...(options.denoArgs ?? []),
      `${root}main.ts`,
      "start",
      "--listen-addr",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
      ...(options.args ?? []),
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let url: string | undefined;
  while (url === undefined) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited before listening; output: ${buffered}`);
    buffered += value;
    url = /lightcone: listening on (\S+)/.exec(buffered)?.[1];
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
  })();
  return {
    url,
    dataDir,
    child,
    startupOutput: buffered,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      await child.status;
    },
  };
}
