/**
 * Test-side helpers of the client matrix: installing the npm clients (under a lock,
 * through tests/support/install_clients.sh), bundling the client entries with esbuild
 * for one SDK version, and talking to a client process (Node.js, or the Playwright host
 * of a browser) over JSON lines.
 */
/** The official SDK versions every client runs with: the project's pin and the newest 2.x. */
export const SDK_VERSIONS = ["2.8.3", "2.10.1"] as const;
export type SdkVersion = typeof SDK_VERSIONS[number];

const ROOT = new URL("../../", import.meta.url).pathname;
/** tests/clients/npm: package.json + package-lock.json of everything the clients use. */
export const NPM_DIR = `${ROOT}tests/clients/npm/`;
const BUILD_DIR = `${NPM_DIR}build/`;
/** Node 22 from npm (the `node` package). */
export const NODE22_PATH = `${NPM_DIR}node_modules/node/bin/node`;

let installed: Promise<void> | undefined;

/**
 * Runs tests/support/install_clients.sh once per process, holding an exclusive lock so
 * test files running in parallel do not install over each other.
 */
export function ensureClientsInstalled(): Promise<void> {
  installed ??= (async () => {
    const lock = await Deno.open(`${NPM_DIR}.install.lock`, {
      create: true,
      write: true,
    });
    try {
      await lock.lock(true);
      const output = await new Deno.Command("bash", {
        args: [`${ROOT}tests/support/install_clients.sh`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      if (!output.success) throw new Error(`install_clients.sh failed:\n${text}`);
      if (text.trim() !== "") console.error(text.trim());
    } finally {
      await lock.unlock().catch(() => {});
      lock.close();
    }
  })();
  return installed;
}

/** Debian's chromium, or undefined (the browser tests then skip loudly). */
export function chromiumPath(): string | undefined {
  for (const candidate of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch { /* not there */ }
  }
  return undefined;
}

/** Says loudly, on stderr, that a test is skipped and why. */
export function announceSkip(what: string, why: string): void {
  const bar = "!".repeat(78);
  console.error(`\n${bar}\n!! SKIPPED: ${what}\n!! ${why}\n${bar}\n`);
}

/**
 * Bundles `entry` (a path under tests/clients/) with esbuild, `spacetimedb` aliased to
 * the npm alias of `sdk`. For Node the packages stay external (Node loads the SDK from
 * tests/clients/npm/node_modules, which is why the output lives in npm/build/); for the
 * browser everything is in the bundle, resolved with the browser export conditions.
 */
export async function bundle(
  entry: string,
  options: { sdk: SdkVersion; platform: "node" | "browser" },
): Promise<string> {
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const stem = entry.replace(/\.[jt]sx?$/, "");
  const outfile = `${BUILD_DIR}${stem}-${options.sdk}.${
    options.platform === "node" ? "mjs" : "js"
  }`;
  const args = [
    `${ROOT}tests/clients/${entry}`,
    "--bundle",
    "--format=esm",
    `--platform=${options.platform}`,
    "--target=es2022",
    `--alias:spacetimedb=spacetimedb-${options.sdk}`,
    `--outfile=${outfile}`,
    "--log-level=warning",
    "--jsx=automatic",
  ];
  if (options.platform === "node") args.push("--packages=external");
  else args.push('--define:process.env.NODE_ENV="production"');
  const output = await new Deno.Command(`${NPM_DIR}node_modules/.bin/esbuild`, {
    args,
    // The entries live outside npm/, so bare imports also look in its node_modules.
    env: { NODE_PATH: `${NPM_DIR}node_modules` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`esbuild failed for ${entry}:\n${new TextDecoder().decode(output.stderr)}`);
  }
  return outfile;
}

/** A child process that answers one JSON line per request (node_client.ts, browser_host.mjs). */
export class LineClient {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #nextId = 1;
  #exited = false;
  /** The first line the process writes (its runtime version). */
  readonly hello: Promise<unknown>;
  readonly label: string;

  constructor(
    label: string,
    command: string,
    args: string[],
    env: Record<string, string> = {},
  ) {
    this.label = label;
    this.#child = new Deno.Command(command, {
      args,
      cwd: NPM_DIR,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    let helloResolve!: (value: unknown) => void;
    let helloReject!: (error: Error) => void;
    this.hello = new Promise((resolve, reject) => {
      helloResolve = resolve;
      helloReject = reject;
    });
    this.#pending.set(0, { resolve: helloResolve, reject: helloReject });
    this.#read();
  }

  async #read(): Promise<void> {
    try {
      for await (const line of readLines(this.#child.stdout)) {
        let reply: { id: number; ok: boolean; result?: unknown; error?: string };
        try {
          reply = JSON.parse(line);
        } catch {
          console.error(`[${this.label}] ${line}`);
          continue;
        }
        const waiter = this.#pending.get(reply.id);
        if (!waiter) continue;
        this.#pending.delete(reply.id);
        if (reply.ok) waiter.resolve(reply.result);
        else waiter.reject(new Error(`[${this.label}] ${reply.error}`));
      }
    } finally {
      this.#exited = true;
      for (const waiter of this.#pending.values()) {
        waiter.reject(new Error(`[${this.label}] the client process exited`));
      }
      this.#pending.clear();
    }
  }

  /** Sends one request and waits (at most `timeoutMs`) for its reply. */
  async request<T = unknown>(
    op: string,
    args: Record<string, unknown> = {},
    timeoutMs = 60_000,
  ): Promise<T> {
    if (this.#exited) throw new Error(`[${this.label}] the client process exited`);
    const id = this.#nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ id, op, args }) + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`[${this.label}] "${op}" got no reply in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([reply, timeout]) as T;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes stdin (the process then exits) and waits; kills it if it lingers. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.#child.status;
    clearTimeout(timer);
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered !== "") yield buffered;
}

/** `promise`, or a rejection naming `what` after `timeoutMs` (so a failed step cannot hang). */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `check` returns a value other than undefined (polled, bounded). */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A fresh identity and its token, minted by the server (POST /v1/identity). */
export async function newIdentity(url: string): Promise<{ identity: string; token: string }> {
  const response = await fetch(`${url}/v1/identity`, { method: "POST" });
  if (response.status !== 200) throw new Error(`POST /v1/identity: ${response.status}`);
  return await response.json();
}

/** A static page server on a loopback port of its own (so the page is cross-origin to Lightcone). */
export function servePages(
  files: Record<string, { path?: string; text?: string; type: string }>,
): { url: string; close(): Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const file = files[new URL(request.url).pathname];
    if (!file) return new Response("not found", { status: 404 });
    const body = file.text ?? await Deno.readFile(file.path!);
    return new Response(body, { headers: { "content-type": file.type } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}

/** Starts the Playwright host (Node + playwright-core) with Debian's chromium. */
export async function startBrowser(label: string, executablePath: string): Promise<LineClient> {
  const host = new LineClient(label, "node", [`${NPM_DIR}browser_host.mjs`, executablePath]);
  const hello = await host.hello as { browser: string };
  console.log(`${label}: Chromium ${hello.browser}`);
  return host;
}
