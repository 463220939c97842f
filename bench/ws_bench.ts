/**
 * `deno task bench:ws [--seconds N]`: the client-protocol benchmark (issue #4, "Measure").
 * Reducer calls per second over WebSocket with the official `spacetimedb` SDK, and update
 * delivery latency from a reducer call to each subscriber's `onUpdate`.
 *
 * Back of the envelope: see ESTIMATE below (printed at the top of every report).
 *
 * It starts `main.ts start` as a child process (so the server does not share the client's JS
 * thread), publishes tests/fixtures/modules/bank, seeds the accounts, then runs:
 *   1. transfer calls: 1 client × 1 in flight (closed loop), 1 × 40 (pipelined), 64 × 40 in this
 *      process, and 64 × 40 split across 2 child processes (to see whether the client is the
 *      bottleneck); each after a warm-up, over a fixed window; TPS, p50/p99 call latency, errors;
 *      the pipelined runs once per SDK socket (`Transport`: the SDK's default, v2, v3-1k);
 *   2. update delivery: one writer calls `transfer` on account X while 1 (then 100) subscriber
 *      connections hold `SELECT * FROM accounts WHERE id = X`; latency = from the call being sent
 *      to each subscriber's `onUpdate` firing (same process clock), p50/p99.
 * Prints a markdown section and appends it to bench/RESULTS.md with the machine, Deno version,
 * date, git commit, load average and the CPU share of server and clients.
 *
 * Flags: --seconds 10 (measure window per run) --warmup-seconds 3 --accounts 100000
 *        --delivery-samples 300 --delivery-subscribers 1,100,1000 --no-append --cpu-prof DIR (server writes a V8 CPU profile there)
 *        --repeat 1 (each load run N times, round robin; the median run is reported)
 *        --only TEXT (only runs whose label, e.g. "keynote shape v3-1k" or "delivery", has TEXT)
 * Internal: --child-load URL --clients N --inflight K (a load process for the split run).
 */
import { parseArgs } from "node:util";
import { setGlobalLogLevel } from "spacetimedb";
import {
  type BankConnectionBuilder,
  connectBank,
  DbConnection,
} from "../tests/fixtures/bindings/bank/index.ts";
import {
  call,
  fixtureBundle,
  publish,
  type ServerProcess,
  startServerProcess,
} from "../tests/support/server.ts";

const DATABASE_NAME = "bank";
/** Accounts per `seed` reducer call (one transaction each). */
const SEED_CHUNK = 10_000;
const INITIAL_BALANCE = 1_000_000_000;
/** After the window closes, how long in-flight calls may take to drain. */
const DRAIN_TIMEOUT_MS = 15_000;
/** How long one delivery sample may wait for every subscriber. */
const DELIVERY_TIMEOUT_MS = 5_000;
/** Connections opened at once while setting up many clients. */
const CONNECT_BATCH = 16;
const CLOCK_TICKS_PER_S = 100; // USER_HZ on every Linux we run on

interface BenchOptions {
  warmupMs: number;
  measureMs: number;
  accountCount: number;
  deliverySamples: number;
  /** Subscriber counts for the delivery measurement. */
  deliverySubscribers: number[];
  append: boolean;
  cpuProfDir: string | null;
  /** Only runs whose label contains this text ("delivery" for the delivery runs). */
  only: string | null;
  /** Each load run is repeated this often (round robin); the table shows the median run. */
  repeat: number;
}

interface LoadResult {
  completed: number;
  errors: number;
  firstError: string | null;
  /** Latency of every call that was sent and resolved inside the window. */
  latenciesMs: number[];
  windowMs: number;
}

interface CpuShares {
  /** % of one core, per process. */
  processPercent: Record<string, number | null>;
  /** % of one core per server thread name ("main" is the JS main thread). */
  threadPercent: Record<string, number>;
  /** Whole machine busy, % of all cores. */
  machineBusyPercent: number | null;
}

/** One transfer-load run: who calls, how many calls each keeps in flight, over which socket. */
interface LoadSpec {
  name: string;
  clientCount: number;
  inflightPerClient: number;
  clientProcesses: number;
  transport: Transport;
}

interface LoadRow extends LoadSpec {
  load: LoadResult;
  cpu: CpuShares;
  /** calls/s of every repetition of this spec (this row is the median one). */
  repeatTps?: number[];
}

interface ServerHandle {
  url: string;
  pid: number;
}

interface DeliveryResult {
  subscriberCount: number;
  samples: number;
  timeouts: number;
  strayUpdates: number;
  /** Every (sample, subscriber) latency. */
  latenciesMs: number[];
  firstMs: number[];
  lastMs: number[];
  writerCallMs: number[];
  cpu: CpuShares;
}

// ---------------------------------------------------------------- small utilities

export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index];
}

function sortedCopy(values: readonly number[]): number[] {
  return Float64Array.from(values).sort() as unknown as number[];
}

function formatMs(value: number): string {
  if (!Number.isFinite(value)) return "—";
  if (value >= 100) return Math.round(value).toLocaleString("en-US");
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function formatInteger(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

function xorshift32(seed: number): () => number {
  let state = (seed >>> 0) || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------- CPU accounting (/proc, Linux)

/** A process to watch (all its threads, not its children). */
type Watched = { pid: number };

/** utime + stime in clock ticks, from a /proc stat file. */
function statTicks(path: string): number | null {
  try {
    const text = Deno.readTextFileSync(path);
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

function cpuTicks(watched: Watched): number | null {
  return statTicks(`/proc/${watched.pid}/stat`);
}

/**
 * Ticks per live thread of `pid`, keyed by thread id, with the thread's name. The server's main
 * thread ("deno") does all WebSocket work (deno-feasibility.md §3); module workers are "worker-N".
 */
function threadTicks(pid: number): Map<string, { name: string; ticks: number }> {
  const threads = new Map<string, { name: string; ticks: number }>();
  try {
    for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
      const ticks = statTicks(`/proc/${pid}/task/${entry.name}/stat`);
      if (ticks === null) continue;
      let name = "?";
      try {
        name = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/comm`).trim();
      } catch {
        // The thread exited meanwhile.
      }
      threads.set(entry.name, { name: entry.name === String(pid) ? "main" : name, ticks });
    }
  } catch {
    // Not Linux, or the process is gone.
  }
  return threads;
}

function machineTicks(): { total: number; idle: number } | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n").find((l) => l.startsWith("cpu "));
    if (!line) return null;
    const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = values.reduce((sum, value) => sum + value, 0);
    // idle + iowait count as not busy.
    return { total, idle: values[3] + values[4] };
  } catch {
    return null;
  }
}

/**
 * Starts measuring the named processes (and the threads of `threadsOf`, by thread name);
 * `stop()` returns their CPU share since the start.
 */
function startCpuSample(watch: Record<string, Watched>, threadsOf?: number): { stop(): CpuShares } {
  const startedMs = performance.now();
  const before = Object.fromEntries(Object.entries(watch).map(([n, w]) => [n, cpuTicks(w)]));
  const threadsBefore = threadsOf === undefined ? new Map() : threadTicks(threadsOf);
  const machineBefore = machineTicks();
  return {
    stop() {
      const seconds = (performance.now() - startedMs) / 1000;
      const processPercent: Record<string, number | null> = {};
      for (const [name, watched] of Object.entries(watch)) {
        const after = cpuTicks(watched);
        const start = before[name];
        processPercent[name] = after === null || start === null
          ? null
          : ((after - start) / CLOCK_TICKS_PER_S / seconds) * 100;
      }
      const machineAfter = machineTicks();
      let machineBusyPercent: number | null = null;
      if (machineBefore && machineAfter && machineAfter.total > machineBefore.total) {
        const total = machineAfter.total - machineBefore.total;
        machineBusyPercent = 100 - ((machineAfter.idle - machineBefore.idle) / total) * 100;
      }
      const threadPercent: Record<string, number> = {};
      if (threadsOf !== undefined) {
        for (const [tid, after] of threadTicks(threadsOf)) {
          const start = threadsBefore.get(tid)?.ticks ?? 0;
          const percent = ((after.ticks - start) / CLOCK_TICKS_PER_S / seconds) * 100;
          // Thread pools share a name ("tokio-runtime-w"); add them up.
          threadPercent[after.name] = (threadPercent[after.name] ?? 0) + percent;
        }
      }
      return { processPercent, threadPercent, machineBusyPercent };
    },
  };
}

/** The server plus the named client processes. */
function watchList(server: ServerHandle, clients: Record<string, number>): Record<string, Watched> {
  const watch: Record<string, Watched> = { server: { pid: server.pid } };
  for (const [name, pid] of Object.entries(clients)) watch[name] = { pid };
  return watch;
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

// ---------------------------------------------------------------- connections

/**
 * How the SDK's WebSocket is opened. `default`: the SDK's own (v3 framing over Deno's WebSocket).
 * `v2`: the SDK's code over a socket that offers only the v2 subprotocol, so every message is its
 * own frame. `v3-1k`: v3, but an outgoing frame over 1 KiB is cut at reducer-call boundaries into
 * frames of at most 1 KiB. Why: Deno's WebSocket client turns Nagle on (TCP_NODELAY 0) and writes a
 * frame's header and its payload in two send() calls when the payload is over 1 KiB, so the payload
 * waits for the server's delayed ACK (~40 ms) — see the report.
 */
type Transport = "default" | "v2" | "v3-1k";
const TRANSPORTS: readonly Transport[] = ["default", "v2", "v3-1k"];

type WebSocketFactory = Parameters<BankConnectionBuilder["withWSFn"]>[0];
type WebSocketAdapter = Awaited<ReturnType<WebSocketFactory>>;
type WebSocketArgs = Parameters<WebSocketFactory>[0];

const V2_PROTOCOL = "v2.bsatn.spacetimedb";
const V3_PROTOCOL = "v3.bsatn.spacetimedb";
/** Deno's client writes payloads up to this size together with the frame header. */
const CLIENT_FRAME_BYTES_MAX = 1024;
/** ClientMessage::CallReducer {requestId u32, flags u8, reducer string, args bytes}. */
const CALL_REDUCER_TAG = 3;

/**
 * Offsets where each message of a v3 payload ends, if every message is a CallReducer;
 * null otherwise.
 */
function callReducerEnds(payload: Uint8Array): number[] | null {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const ends: number[] = [];
  let at = 0;
  while (at < payload.length) {
    if (payload[at] !== CALL_REDUCER_TAG || at + 10 > payload.length) return null;
    at += 1 + 4 + 1;
    at += 4 + view.getUint32(at, true);
    if (at + 4 > payload.length) return null;
    at += 4 + view.getUint32(at, true);
    if (at > payload.length) return null;
    ends.push(at);
  }
  return ends;
}

/**
 * Cuts a v3 client payload into payloads of at most `frameBytesMax` at message boundaries (a
 * single larger message stays whole). Only payloads made of CallReducer messages are cut; any
 * other payload is returned as it is.
 */
export function splitCallFrames(payload: Uint8Array, frameBytesMax: number): Uint8Array[] {
  if (payload.length <= frameBytesMax) return [payload];
  const ends = callReducerEnds(payload);
  if (ends === null) return [payload];
  const frames: Uint8Array[] = [];
  let start = 0;
  let previous = 0;
  for (const end of ends) {
    if (end - start > frameBytesMax && previous > start) {
      frames.push(payload.subarray(start, previous));
      start = previous;
    }
    previous = end;
  }
  frames.push(payload.subarray(start));
  return frames;
}

/** A WebSocketAdapter over Deno's WebSocket (no compression, anonymous connections only). */
class BenchSocket implements WebSocketAdapter {
  readonly #socket: WebSocket;
  readonly #splitFrames: boolean;

  constructor(socket: WebSocket, splitFrames: boolean) {
    this.#socket = socket;
    this.#splitFrames = splitFrames;
  }
  get protocol(): string {
    return this.#socket.protocol;
  }
  get readyState(): number {
    return this.#socket.readyState;
  }
  send(message: Uint8Array<ArrayBuffer>): void {
    if (!this.#splitFrames) {
      this.#socket.send(message);
      return;
    }
    for (const frame of splitCallFrames(message, CLIENT_FRAME_BYTES_MAX)) this.#socket.send(frame);
  }
  close(): void {
    this.#socket.close();
  }
  set onclose(handler: (event: CloseEvent) => void) {
    this.#socket.onclose = handler;
  }
  set onopen(handler: () => void) {
    this.#socket.onopen = () => handler();
  }
  set onmessage(handler: (message: { data: Uint8Array }) => void) {
    this.#socket.onmessage = (event: MessageEvent<ArrayBuffer>) => {
      const frame = new Uint8Array(event.data);
      // Every server frame starts with its compression tag; we ask for none (0).
      if (frame[0] !== 0) {
        this.#socket.close();
        throw new Error(`Unexpected compression tag ${frame[0]} on a bench socket`);
      }
      handler({ data: frame.subarray(1) });
    };
  }
  set onerror(handler: (event: ErrorEvent) => void) {
    this.#socket.onerror = (event) => handler(event as ErrorEvent);
  }
}

function benchSocketFactory(transport: Exclude<Transport, "default">): WebSocketFactory {
  return (args: WebSocketArgs) => {
    if (args.authToken !== undefined) throw new TypeError("Bench sockets are anonymous only");
    const url = new URL(`v1/database/${args.nameOrAddress}/subscribe`, args.url);
    url.searchParams.set("compression", "None");
    if (args.confirmedReads !== undefined) {
      url.searchParams.set("confirmed", String(args.confirmedReads));
    }
    const protocols = transport === "v2" ? [V2_PROTOCOL] : [V3_PROTOCOL];
    const socket = new WebSocket(url.toString(), protocols);
    socket.binaryType = "arraybuffer";
    return Promise.resolve(new BenchSocket(socket, transport === "v3-1k"));
  };
}

function connectClient(url: string, transport: Transport): Promise<DbConnection> {
  if (transport === "default") return connectBank(url, DATABASE_NAME);
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName(DATABASE_NAME)
      .withWSFn(benchSocketFactory(transport))
      .onConnect((conn) => resolve(conn))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

async function connectMany(
  url: string,
  count: number,
  transport: Transport = "default",
): Promise<DbConnection[]> {
  const connections: DbConnection[] = [];
  for (let first = 0; first < count; first += CONNECT_BATCH) {
    const batch = Math.min(CONNECT_BATCH, count - first);
    connections.push(
      ...await Promise.all(Array.from({ length: batch }, () => connectClient(url, transport))),
    );
  }
  return connections;
}

function disconnectAll(connections: readonly DbConnection[]): void {
  for (const conn of connections) {
    try {
      conn.disconnect();
    } catch {
      // Already closed.
    }
  }
}

// ---------------------------------------------------------------- transfer load

/**
 * Keeps `inflight` transfer calls outstanding on every connection for `warmupMs + measureMs`.
 * A call counts when it was sent and resolved inside the measure window. `onWindow` is called
 * when the window opens and when it closes (for CPU sampling).
 */
async function driveTransfers(
  connections: readonly DbConnection[],
  options: {
    inflight: number;
    warmupMs: number;
    measureMs: number;
    accountCount: number;
    seed: number;
    onWindowOpen?: () => void;
    onWindowClose?: () => void;
  },
): Promise<LoadResult> {
  const startMs = performance.now();
  const windowStartMs = startMs + options.warmupMs;
  const windowEndMs = windowStartMs + options.measureMs;
  const latenciesMs: number[] = [];
  let completed = 0;
  let errors = 0;
  let firstError: string | null = null;
  // The window's CPU sample opens and closes on timers; the lanes may finish just before the
  // close timer fires, so closing is also done (once) after they drain.
  let windowState: "before" | "open" | "closed" = "before";
  const openWindow = () => {
    windowState = "open";
    options.onWindowOpen?.();
  };
  const closeWindow = () => {
    if (windowState !== "open") return;
    windowState = "closed";
    options.onWindowClose?.();
  };
  const openTimer = setTimeout(openWindow, options.warmupMs);
  const closeTimer = setTimeout(closeWindow, options.warmupMs + options.measureMs);

  async function lane(conn: DbConnection, laneSeed: number): Promise<void> {
    const next = xorshift32(laneSeed);
    while (performance.now() < windowEndMs) {
      const from = next() % options.accountCount;
      const to = (from + 1 + (next() % (options.accountCount - 1))) % options.accountCount;
      const sentMs = performance.now();
      let ok = true;
      try {
        await conn.reducers.transfer({ from, to, amount: 1n });
      } catch (error) {
        ok = false;
        firstError ??= errorText(error);
      }
      const doneMs = performance.now();
      if (sentMs >= windowStartMs && doneMs <= windowEndMs) {
        if (ok) {
          completed++;
          latenciesMs.push(doneMs - sentMs);
        } else errors++;
      }
    }
  }

  const lanes = connections.flatMap((conn, c) =>
    Array.from(
      { length: options.inflight },
      (_, i) => lane(conn, options.seed * 100_003 + c * 1009 + i + 1),
    )
  );
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  const drained = await Promise.race([
    Promise.all(lanes).then(() => true),
    new Promise<boolean>((resolve) =>
      drainTimer = setTimeout(
        resolve,
        options.warmupMs + options.measureMs + DRAIN_TIMEOUT_MS,
        false,
      )
    ),
  ]);
  clearTimeout(drainTimer);
  clearTimeout(openTimer);
  clearTimeout(closeTimer);
  closeWindow();
  if (!drained) firstError ??= "some calls never resolved";
  return { completed, errors, firstError, latenciesMs, windowMs: options.measureMs };
}

async function runInProcessLoad(
  server: ServerHandle,
  spec: LoadSpec,
  options: BenchOptions,
): Promise<LoadRow> {
  const { clientCount, inflightPerClient: inflight } = spec;
  const connections = await connectMany(server.url, clientCount, spec.transport);
  try {
    let sample: { stop(): CpuShares } | undefined;
    let cpu: CpuShares = { processPercent: {}, threadPercent: {}, machineBusyPercent: null };
    const load = await driveTransfers(connections, {
      inflight,
      warmupMs: options.warmupMs,
      measureMs: options.measureMs,
      accountCount: options.accountCount,
      seed: clientCount * 41 + inflight,
      onWindowOpen: () =>
        sample = startCpuSample(watchList(server, { client: Deno.pid }), server.pid),
      onWindowClose: () => {
        if (sample) cpu = sample.stop();
      },
    });
    return { ...spec, load, cpu };
  } finally {
    disconnectAll(connections);
  }
}

/** Reads `stream` line by line; the returned function resolves with the next line. */
function lineReader(stream: ReadableStream<Uint8Array>, what: string): () => Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return async () => {
    while (!buffered.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${what} exited early: ${buffered}`);
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const line = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return line;
  };
}

/** The same load split across `processCount` child processes of this script. */
async function runSplitLoad(
  server: ServerHandle,
  spec: LoadSpec,
  options: BenchOptions,
): Promise<LoadRow> {
  const { clientCount, inflightPerClient: inflight, clientProcesses: processCount } = spec;
  const here = new URL(import.meta.url).pathname;
  const children = Array.from({ length: processCount }, (_, p) => {
    const clients = Math.floor(clientCount / processCount) +
      (p < clientCount % processCount ? 1 : 0);
    return new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-worker-options",
        here,
        "--child-load",
        server.url,
        "--transport",
        spec.transport,
        "--clients",
        String(clients),
        "--inflight",
        String(inflight),
        "--warmup-seconds",
        String(options.warmupMs / 1000),
        "--seconds",
        String(options.measureMs / 1000),
        "--accounts",
        String(options.accountCount),
        "--seed",
        String(p + 7),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
  });
  try {
    const lines = children.map((child, p) => lineReader(child.stdout, `load process ${p}`));
    const readLine = (p: number) => lines[p]();
    for (let p = 0; p < processCount; p++) {
      const line = await readLine(p);
      if (line !== "ready") throw new Error(`load process ${p} said "${line}"`);
    }
    const pids: Record<string, number> = { bench: Deno.pid };
    children.forEach((child, p) => pids[`client${p + 1}`] = child.pid);
    const writers = children.map((child) => child.stdin.getWriter());
    await Promise.all(writers.map((w) => w.write(new TextEncoder().encode("go\n"))));
    let cpu: CpuShares = { processPercent: {}, threadPercent: {}, machineBusyPercent: null };
    await sleepMs(options.warmupMs);
    const sample = startCpuSample(watchList(server, pids), server.pid);
    await sleepMs(options.measureMs);
    cpu = sample.stop();
    const results = await Promise.all(
      children.map((_, p) => readLine(p).then((line) => JSON.parse(line) as LoadResult)),
    );
    await Promise.all(writers.map((w) => w.close().catch(() => {})));
    await Promise.all(children.map((child) => child.status));
    const load: LoadResult = {
      completed: results.reduce((n, r) => n + r.completed, 0),
      errors: results.reduce((n, r) => n + r.errors, 0),
      firstError: results.find((r) => r.firstError !== null)?.firstError ?? null,
      latenciesMs: results.flatMap((r) => r.latenciesMs),
      windowMs: options.measureMs,
    };
    return { ...spec, load, cpu };
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited already.
      }
    }
  }
}

/** Child mode: connect, say "ready", wait for "go", drive the load, print the result as JSON. */
async function childLoadMain(
  child: { url: string; clients: number; inflight: number; seed: number; transport: Transport },
  options: BenchOptions,
): Promise<void> {
  const { inflight, seed } = child;
  setGlobalLogLevel("error");
  const encoder = new TextEncoder();
  const connections = await connectMany(child.url, child.clients, child.transport);
  await Deno.stdout.write(encoder.encode("ready\n"));
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let input = "";
  while (!input.includes("go\n")) {
    const { value, done } = await reader.read();
    if (done) return;
    input += value;
  }
  const load = await driveTransfers(connections, {
    inflight,
    warmupMs: options.warmupMs,
    measureMs: options.measureMs,
    accountCount: options.accountCount,
    seed,
  });
  const rounded = {
    ...load,
    latenciesMs: load.latenciesMs.map((v) => Math.round(v * 1000) / 1000),
  };
  await Deno.stdout.write(encoder.encode(JSON.stringify(rounded) + "\n"));
  disconnectAll(connections);
  reader.releaseLock();
  Deno.exit(0);
}

// ---------------------------------------------------------------- update delivery

function subscribe(conn: DbConnection, query: string): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => resolve())
      .onError((ctx) => reject((ctx as { event?: unknown }).event ?? new Error("subscribe failed")))
      .subscribe([query]);
  });
}

async function measureDelivery(
  server: ServerHandle,
  subscriberCount: number,
  options: BenchOptions,
): Promise<DeliveryResult> {
  // Accounts the transfer load may also have touched; nothing else writes them now.
  const targetId = 7;
  const counterpartId = 8;
  const writer = await connectBank(server.url, DATABASE_NAME);
  const subscribers = await connectMany(server.url, subscriberCount);
  const latenciesMs: number[] = [];
  const firstMs: number[] = [];
  const lastMs: number[] = [];
  const writerCallMs: number[] = [];
  let timeouts = 0;
  let strayUpdates = 0;
  /** The sample in progress: when it was sent and which subscribers have heard. */
  let current: { sentMs: number; heard: Float64Array; count: number; done: () => void } | null =
    null;
  try {
    subscribers.forEach((conn, index) => {
      conn.db.accounts.onUpdate((_ctx, _before, after) => {
        const nowMs = performance.now();
        if (after.id !== targetId || current === null) {
          strayUpdates++;
          return;
        }
        if (current.heard[index] !== 0) return;
        current.heard[index] = nowMs - current.sentMs;
        if (++current.count === subscriberCount) current.done();
      });
    });
    await Promise.all(
      subscribers.map((conn) => subscribe(conn, `SELECT * FROM accounts WHERE id = ${targetId}`)),
    );
    const warmupSamples = Math.min(20, options.deliverySamples);
    let sample: { stop(): CpuShares } | undefined;
    for (let s = 0; s < warmupSamples + options.deliverySamples; s++) {
      if (s === warmupSamples) {
        sample = startCpuSample(watchList(server, { client: Deno.pid }), server.pid);
      }
      let done = () => {};
      const allHeard = new Promise<boolean>((resolve) => done = () => resolve(true));
      const heard = new Float64Array(subscriberCount);
      const sentMs = performance.now();
      current = { sentMs, heard, count: 0, done };
      const callDone = writer.reducers.transfer({ from: targetId, to: counterpartId, amount: 1n })
        .then(() => performance.now() - sentMs);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const [callMs, complete] = await Promise.all([
        callDone,
        Promise.race([
          allHeard,
          new Promise<boolean>((resolve) =>
            timer = setTimeout(resolve, DELIVERY_TIMEOUT_MS, false)
          ),
        ]),
      ]);
      clearTimeout(timer);
      current = null;
      if (s < warmupSamples) continue;
      writerCallMs.push(callMs);
      if (!complete) {
        timeouts++;
        continue;
      }
      let first = Infinity;
      let last = 0;
      for (const value of heard) {
        latenciesMs.push(value);
        first = Math.min(first, value);
        last = Math.max(last, value);
      }
      firstMs.push(first);
      lastMs.push(last);
    }
    const cpu = sample?.stop() ??
      { processPercent: {}, threadPercent: {}, machineBusyPercent: null };
    return {
      subscriberCount,
      samples: options.deliverySamples,
      timeouts,
      strayUpdates,
      latenciesMs,
      firstMs,
      lastMs,
      writerCallMs,
      cpu,
    };
  } finally {
    disconnectAll([writer, ...subscribers]);
  }
}

// ---------------------------------------------------------------- report

interface Environment {
  date: string;
  commit: string;
  deno: string;
  cpuCount: number;
  cpuModel: string;
  memoryGib: number;
  loadBefore: string;
  loadAfter: string;
  accountCount: number;
  command: string;
}

async function gitCommit(): Promise<string> {
  try {
    const root = new URL("../", import.meta.url).pathname;
    const output = await new Deno.Command("git", {
      args: ["-C", root, "rev-parse", "--short", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const commit = new TextDecoder().decode(output.stdout).trim();
    const dirty = await new Deno.Command("git", {
      args: ["-C", root, "status", "--porcelain", "--untracked-files=no"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(dirty.stdout).trim() ? `${commit} (+ uncommitted)` : commit;
  } catch {
    return "unknown";
  }
}

function machineDescription(): { cpuModel: string; memoryGib: number } {
  let cpuModel = "unknown";
  let memoryGib = 0;
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1]
      ?.trim() ?? cpuModel;
    const kib = Number(/^MemTotal:\s*(\d+)/m.exec(Deno.readTextFileSync("/proc/meminfo"))?.[1]);
    memoryGib = Math.round((kib / 1024 / 1024) * 10) / 10;
  } catch {
    // Not Linux.
  }
  return { cpuModel, memoryGib };
}

function cpuCell(cpu: CpuShares): string {
  const parts = Object.entries(cpu.processPercent)
    .filter(([, percent]) => percent !== null)
    .map(([name, percent]) => `${name} ${Math.round(percent as number)}`);
  const threads = Object.entries(cpu.threadPercent)
    .filter(([, percent]) => percent >= 5)
    .sort((a, b) => b[1] - a[1])
    .map(([name, percent]) => `${name} ${Math.round(percent)}`);
  if (threads.length) parts.push(`(server threads: ${threads.join(", ")})`);
  if (cpu.machineBusyPercent !== null) {
    parts.push(`machine ${Math.round(cpu.machineBusyPercent)}`);
  }
  return parts.join(", ") || "—";
}

function rowTps(row: LoadRow): number {
  return row.load.completed / (row.load.windowMs / 1000);
}

/** The repetition with the median calls/s, carrying every repetition's calls/s. */
function medianRow(rows: readonly LoadRow[]): LoadRow {
  const sorted = [...rows].sort((a, b) => rowTps(a) - rowTps(b));
  return { ...sorted[(sorted.length - 1) >> 1], repeatTps: rows.map(rowTps) };
}

function tpsCell(row: LoadRow): string {
  const all = row.repeatTps ?? [];
  if (all.length < 2) return formatInteger(rowTps(row));
  return `${formatInteger(rowTps(row))} (${formatInteger(Math.min(...all))}–${
    formatInteger(Math.max(...all))
  })`;
}

function loadTable(rows: readonly LoadRow[]): string {
  const lines = [
    "| run | clients × in flight | client processes | SDK socket | calls/s (median; min–max of repetitions) | p50 ms | p99 ms | errors | CPU % (of one core; machine % of all) |",
    "|---|---|---:|---|---:|---:|---:|---:|---|",
  ];
  for (const row of rows) {
    const sorted = sortedCopy(row.load.latenciesMs);
    const errors = row.load.errors === 0 && row.load.firstError === null
      ? "0"
      : `${row.load.errors} (${row.load.firstError ?? ""})`;
    lines.push(
      `| ${row.name} | ${row.clientCount} × ${row.inflightPerClient} | ${row.clientProcesses} | ${row.transport} | ${
        tpsCell(row)
      } | ${formatMs(percentile(sorted, 0.5))} | ${
        formatMs(percentile(sorted, 0.99))
      } | ${errors} | ${cpuCell(row.cpu)} |`,
    );
  }
  return lines.join("\n");
}

function deliveryTable(rows: readonly DeliveryResult[]): string {
  const lines = [
    "| subscribers | samples | all deliveries p50 / p99 ms | first subscriber p50 ms | last subscriber p50 / p99 ms | writer's call p50 ms | timeouts | stray updates | CPU % |",
    "|---:|---:|---|---:|---|---:|---:|---:|---|",
  ];
  for (const row of rows) {
    const all = sortedCopy(row.latenciesMs);
    const first = sortedCopy(row.firstMs);
    const last = sortedCopy(row.lastMs);
    const writer = sortedCopy(row.writerCallMs);
    lines.push(
      `| ${row.subscriberCount} | ${row.samples} | ${formatMs(percentile(all, 0.5))} / ${
        formatMs(percentile(all, 0.99))
      } | ${formatMs(percentile(first, 0.5))} | ${formatMs(percentile(last, 0.5))} / ${
        formatMs(percentile(last, 0.99))
      } | ${formatMs(percentile(writer, 0.5))} | ${row.timeouts} | ${row.strayUpdates} | ${
        cpuCell(row.cpu)
      } |`,
    );
  }
  return lines.join("\n");
}

const ESTIMATE = `Estimate first. deno-feasibility.md §3: ~60k WebSocket frames/s on this 2-vCPU
machine, ~15 µs of server main-thread CPU per frame. With one call per frame each way (1 in flight,
or the v2 subprotocol) the server's main thread caps near 1 / 30 µs ≈ 33k calls/s. The SDK's
default v3 framing packs the calls queued in one JS turn into one frame and the server packs the
replies, so with 40 in flight per connection the frame cost is amortised and the limit moves to
the module worker (~5-10 µs per transfer through the module library, bench/module_transfer_bench.ts)
and to the SDK client, which shares the same 2 cores: with ~10 µs per call on each of client, main
thread and worker, ~30 µs of CPU per call on 2 cores gives ~60k calls/s at best, less on a shared
machine. One client with 1 call in flight pays a loopback round trip plus a group-committed fsync:
~0.3-1 ms, ~1-3k calls/s. Delivery to one subscriber ≈ one call latency; to 100 subscribers the
server writes 100 frames (~1.5 ms) and this process decodes them one by one, so the last
subscriber hears a few ms after the first.`;

const SOCKETS_NOTE = `SDK socket: \`default\` is the SDK exactly as shipped (v3 framing over Deno's
WebSocket). Deno 2.9.6's WebSocket client sets TCP_NODELAY to 0 and writes a frame's header and
payload with two send() calls when the payload is over 1 KiB (seen with strace), so such a frame
waits for the server's delayed ACK, ~40 ms: the SDK's v3 frame of 40 queued calls (40 × 38 B ≈ 1.5 KiB) hits
this every time. \`v2\` and \`v3-1k\` are the same SDK code over a socket we open (\`withWSFn\`):
\`v2\` offers only the v2 subprotocol (one message per frame); \`v3-1k\` keeps v3 but cuts outgoing
frames at reducer-call boundaries to at most 1 KiB. Browsers and other clients set TCP_NODELAY, so
\`v3-1k\` is closest to what the server can do for them.`;

function reportMarkdown(
  env: Environment,
  loads: readonly LoadRow[],
  deliveries: readonly DeliveryResult[],
): string {
  return [
    `## WebSocket client protocol (bench/ws_bench.ts), ${env.date}`,
    "",
    ESTIMATE,
    "",
    `Machine: ${env.cpuCount} vCPU ${env.cpuModel}, ${env.memoryGib} GiB RAM; Deno ${env.deno}; ` +
    `commit ${env.commit}. Load average before ${env.loadBefore}, after ${env.loadAfter} ` +
    "(the machine was shared with other work; numbers are noisy).",
    "",
    `Workload: bank module, ${formatInteger(env.accountCount)} accounts, uniform random ` +
    "transfers of 1 between two distinct accounts, official SDK (spacetimedb 2.8.3) with default " +
    "settings (server default: confirmed reads, so a call resolves after its commit is durable). " +
    `Command: \`${env.command}\`.`,
    "",
    SOCKETS_NOTE,
    "",
    "Transfer calls (a call counts when sent and resolved inside the window; CPU: server = the " +
    "`main.ts start` process, split by thread (main = JS main thread with all WebSocket work, " +
    "worker-N = module and storage workers, V8 DefaultWorker = GC and compiler helpers); " +
    "client/bench = this process; clientN = load child processes):",
    "",
    loadTable(loads),
    "",
    ...(deliveries.length === 0 ? [] : [
      "Update delivery: a writer calls `transfer(X → Y)`; every subscriber holds " +
      "`SELECT * FROM accounts WHERE id = X`; latency = from sending the call to that subscriber's " +
      "`onUpdate` (one process clock), one call at a time, SDK default socket:",
      "",
      deliveryTable(deliveries),
      "",
    ]),
  ].join("\n");
}

// ---------------------------------------------------------------- main

function parseTransport(text: string): Transport {
  const transport = TRANSPORTS.find((t) => t === text);
  if (transport === undefined) {
    throw new RangeError(`--transport must be one of ${TRANSPORTS.join(", ")}, got "${text}"`);
  }
  return transport;
}

function parseOptions(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "10" },
      "warmup-seconds": { type: "string", default: "3" },
      accounts: { type: "string", default: "100000" },
      "delivery-samples": { type: "string", default: "300" },
      "delivery-subscribers": { type: "string", default: "1,100,1000" },
      "no-append": { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      only: { type: "string" },
      repeat: { type: "string", default: "1" },
      "child-load": { type: "string" },
      clients: { type: "string", default: "1" },
      inflight: { type: "string", default: "1" },
      seed: { type: "string", default: "1" },
      transport: { type: "string", default: "default" },
    },
  });
  const positive = (name: string, text: string): number => {
    const value = Number(text);
    if (!(value > 0)) throw new RangeError(`--${name} must be a positive number, got "${text}"`);
    return value;
  };
  const options: BenchOptions = {
    warmupMs: positive("warmup-seconds", values["warmup-seconds"]) * 1000,
    measureMs: positive("seconds", values.seconds) * 1000,
    accountCount: positive("accounts", values.accounts),
    deliverySamples: positive("delivery-samples", values["delivery-samples"]),
    deliverySubscribers: values["delivery-subscribers"].split(",").map((count) =>
      positive("delivery-subscribers", count)
    ),
    append: !values["no-append"],
    cpuProfDir: values["cpu-prof"] ?? null,
    only: values.only ?? null,
    repeat: positive("repeat", values.repeat),
  };
  return {
    options,
    child: values["child-load"] === undefined ? null : {
      url: values["child-load"],
      clients: positive("clients", values.clients),
      inflight: positive("inflight", values.inflight),
      seed: positive("seed", values.seed),
      transport: parseTransport(values.transport),
    },
  };
}

async function startServerForBench(options: BenchOptions): Promise<ServerProcess> {
  if (options.cpuProfDir === null) return await startServerProcess();
  // `deno run --cpu-prof` profiles the process's main thread; the profile is written on exit.
  await Deno.mkdir(options.cpuProfDir, { recursive: true });
  return await startServerProcess({
    denoArgs: ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`],
  });
}

function spec(
  name: string,
  clientCount: number,
  inflightPerClient: number,
  clientProcesses: number,
  transport: Transport,
): LoadSpec {
  return { name, clientCount, inflightPerClient, clientProcesses, transport };
}

async function main(): Promise<void> {
  const { options, child } = parseOptions(Deno.args);
  if (child !== null) {
    await childLoadMain(child, options);
    return;
  }
  setGlobalLogLevel("error");
  const loadBefore = loadAverage();
  const machine = machineDescription();
  const server = await startServerForBench(options);
  const progress = (text: string) => console.error(`ws_bench: ${text}`);
  const loads: LoadRow[] = [];
  const deliveries: DeliveryResult[] = [];
  try {
    progress(`server at ${server.url} (pid ${server.child.pid}); publishing and seeding`);
    await publish(server.url, DATABASE_NAME, await fixtureBundle("bank"));
    for (let first = 0; first < options.accountCount; first += SEED_CHUNK) {
      const count = Math.min(SEED_CHUNK, options.accountCount - first);
      const response = await call(server.url, DATABASE_NAME, "seed", [
        first,
        count,
        INITIAL_BALANCE,
      ]);
      if (response.status !== 200) {
        throw new Error(`Seeding accounts failed (${response.status}): ${response.text}`);
      }
    }
    const handle: ServerHandle = { url: server.url, pid: server.child.pid };
    const specs: LoadSpec[] = [
      spec("closed loop", 1, 1, 1, "default"),
      ...TRANSPORTS.map((t) => spec("pipelined", 1, 40, 1, t)),
      ...TRANSPORTS.map((t) => spec("keynote shape", 64, 40, 1, t)),
      ...TRANSPORTS.map((t) => spec("keynote shape, clients split", 64, 40, 2, t)),
    ];
    const selected = (label: string) => options.only === null || label.includes(options.only);
    const chosen = specs.filter((s) => selected(`${s.name} ${s.transport}`));
    const repetitions = chosen.map((): LoadRow[] => []);
    // Round robin, so a burst of load from elsewhere on the machine hits one repetition of
    // several runs rather than every repetition of one run.
    for (let r = 0; r < options.repeat; r++) {
      for (const [index, loadSpec] of chosen.entries()) {
        progress(
          `${loadSpec.name}: ${loadSpec.clientCount} × ${loadSpec.inflightPerClient}, ` +
            `${loadSpec.clientProcesses} process(es), transport ${loadSpec.transport}, ` +
            `repetition ${r + 1}/${options.repeat}`,
        );
        const row = loadSpec.clientProcesses === 1
          ? await runInProcessLoad(handle, loadSpec, options)
          : await runSplitLoad(handle, loadSpec, options);
        repetitions[index].push(row);
        progress(loadTable([row]).split("\n")[2]);
      }
    }
    for (const rows of repetitions) loads.push(medianRow(rows));
    for (const subscriberCount of selected("delivery") ? options.deliverySubscribers : []) {
      progress(`delivery to ${subscriberCount} subscriber(s)`);
      const row = await measureDelivery(handle, subscriberCount, options);
      deliveries.push(row);
      progress(deliveryTable([row]).split("\n")[2]);
    }
  } finally {
    await server.stop();
    await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
  }
  const env: Environment = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    commit: await gitCommit(),
    deno: Deno.version.deno,
    cpuCount: navigator.hardwareConcurrency,
    ...machine,
    loadBefore,
    loadAfter: loadAverage(),
    accountCount: options.accountCount,
    command: `deno task bench:ws ${Deno.args.join(" ")}`.trim(),
  };
  const markdown = reportMarkdown(env, loads, deliveries);
  console.log(markdown);
  if (options.append) {
    const path = new URL("./RESULTS.md", import.meta.url).pathname;
    let exists = true;
    try {
      await Deno.stat(path);
    } catch {
      exists = false;
    }
    const header =
      "# Benchmark results\n\nNewest runs at the bottom; each section says how it was run.\n";
    // Append (not rewrite) so a concurrent run of another benchmark is not lost.
    await Deno.writeTextFile(path, `${exists ? "" : header}\n${markdown}`, { append: true });
    console.error(`ws_bench: appended to ${path}`);
  }
}

if (import.meta.main) await main();
