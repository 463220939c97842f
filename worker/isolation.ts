/**
 * Each database runs in its own OS process: a `deno run` of the entry module with no
 * permissions at all, talking to the server over a Unix socket and its stdout pipe.
 *
 *   server process --spawn (setpriv --pdeathsig KILL, no permissions, V8 heap cap)--> entry
 *   server  --socket frames--> entry      (channel 0: requests, channel 1: storage replies)
 *   server  <--stdout frames-- entry      (channel 0: replies,  channel 1: commit batches)
 *   server  <--stderr lines--- entry      (V8 fatal errors, the watchdog's overrun line)
 *
 * Requests go over a Unix socket rather than stdin because Deno reads stdin on a thread of its
 * blocking pool, which then wakes the main thread: two wake-ups per batch instead of one, and on
 * a busy machine each may wait for a core (measured on Deno 2.9.6, bench/RESULTS.md "One wake-up
 * per request"). The socket lives in a directory of its own only the server's user can enter,
 * is accepted once, and the directory is removed then; the entry may open that one path only
 * (`--allow-read/--allow-write/--allow-net` for it) and gives those permissions up as soon as it
 * is connected (`connectToServer`). Where a socket cannot be made, requests go over stdin.
 *
 * Why a process and not a worker thread (measured on Deno 2.9.6, ARCHITECTURE.md "Isolation"):
 * - `Worker.terminate()` does not stop a thread stuck in a builtin (an 8M-element sort, a
 *   backtracking regexp) and `Deno.exit()` in a worker ends only that worker; a process can be
 *   killed, and its CPU is back at once.
 * - A thread's V8 heap cap does not cover ArrayBuffer backing stores; a process's address space
 *   can be capped as a whole (RLIMIT_DATA: a failed ArrayBuffer allocation throws RangeError,
 *   a heap that cannot grow ends only that process).
 * - node:worker_threads workers expose `require` and can start uncapped nested workers; process
 *   globals are reduced to an allow-list by worker/sandbox_globals.ts anyway.
 *
 * Frames are `u32 length | u8 channel | u8 codec | payload`: payloads in worker/wire.ts's own
 * encoding (a typed array is one copy), or node:v8's structured-clone format for a value wire.ts
 * does not take. Everything the entry sends is untrusted: frame sizes are capped before
 * anything is allocated, and a malformed frame ends that process.
 */
import { concatBytes } from "../lib/bytes.ts";
import { serialize } from "node:v8";
import { log } from "../lib/log.ts";
import { PROCEDURE_THREADS_MAX } from "../lib/limits.ts";
import { canLimitData, dataSegmentBytes, setDataLimit, toolPath } from "../lib/process_limits.ts";
import { CODEC_V8, CODEC_WIRE, decodeFramePayload, encodeWire } from "../lib/wire.ts";

/** The part of MessagePort that both ends of a channel use. */
export interface PortLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

/** Channels multiplexed over one process's pipes. */
export const CONTROL_CHANNEL = 0;
export const STORAGE_CHANNEL = 1;

/** The entry's argument that tells it where its request socket is (it may not read env). */
const SOCKET_ARG = "--request-socket=";
/** Bytes read from a database process's stdout at a time (one buffer, reused). */
const STDOUT_READ_BYTES = 64 * 1024;
/** Bridged frames from this size on are transferred to the port rather than copied. */
const BRIDGE_TRANSFER_BYTES_MIN = 16 * 1024;
/** Frame header: payload length (u32, little-endian) and channel (u8). */
const HEADER_BYTES = 5;
/** Prefix of the stderr line the entry's watchdog writes when a call overran its deadline. */
const WATCHDOG_MARKER = "\u0000lightcone-watchdog ";
/** Bytes of an entry's stderr kept for the crash message. */
const STDERR_TAIL_BYTES = 8192;
/** How long after its deadline a call stuck in a builtin is stopped by killing its process. */
export const WATCHDOG_GRACE_MS = 1000;
/** How often the entry's watchdog looks at the deadline. */
const WATCHDOG_PERIOD_MS = 100;

export interface IsolatedWorkerOptions {
  /**
   * The database's memory budget in MiB: its V8 heap cap, and (where prlimit is available) the
   * growth of its address space past what the entry used once loaded, ArrayBuffers included.
   */
  memoryMb: number;
  /** Called when the entry fails: out of memory, a watchdog overrun, a malformed frame. */
  onError?: (error: { code: IsolationErrorCode; message: string }) => void;
  /**
   * Start with read access to the server's own code, which the entry must give up
   * (dropReadPermission) before it loads tenant code: the procedure thread's code is read then.
   */
  readOwnCodeAtStart?: boolean;
}

export type IsolationErrorCode = "OUT_OF_MEMORY" | "OVERRUN" | "MALFORMED" | "CRASHED";

export interface IsolatedWorker {
  /** Channel 0: requests to and replies from the entry. */
  readonly port: PortLike;
  /** Forwards channel `channel` to and from `port` (e.g. the storage worker's port). */
  bridge(channel: number, port: MessagePort): void;
  /** Resolves with the entry's exit code once its process is gone. */
  readonly exited: Promise<number>;
  /** Kills the process (SIGKILL): a thread stuck in a builtin stops too. */
  terminate(): void;
  readonly pid: number;
  /**
   * Allows for `threads` procedure threads beyond the first in the address-space cap (each
   * `EXTRA_PROCEDURE_THREAD_MB`); resolves once the cap is applied.
   */
  setExtraThreads(threads: number): Promise<void>;
  /** How many times the address-space cap was set (`prlimit` runs) so far. */
  readonly memoryLimitUpdates: number;
}

/** What this server can enforce on database processes; logged once at start-up. */
export interface IsolationCapabilities {
  /** RLIMIT_DATA set with util-linux `prlimit` once the entry has loaded. */
  memoryLimit: boolean;
  /** The entry is killed when the server dies (util-linux `setpriv --pdeathsig`). */
  killWithServer: boolean;
}

let capabilities: IsolationCapabilities | undefined;

/** Which limits can be enforced here (looked up once). */
export function isolationCapabilities(): IsolationCapabilities {
  if (capabilities) return capabilities;
  capabilities = {
    memoryLimit: canLimitData(),
    killWithServer: Deno.build.os === "linux" && toolPath("setpriv") !== undefined,
  };
  return capabilities;
}

/** Logs which isolation limits hold on this machine (call once at start-up). */
export function logIsolationCapabilities(memoryMb: number): void {
  const caps = isolationCapabilities();
  log.info("database isolation", {
    processPerDatabase: true,
    permissions: "none",
    memoryBudgetMb: memoryMb,
    memoryLimit: caps.memoryLimit
      ? "heap + address space (RLIMIT_DATA via prlimit)"
      : "V8 heap only (prlimit not found: ArrayBuffers are not capped)",
    killWithServer: caps.killWithServer
      ? "yes (setpriv --pdeathsig)"
      : "no (setpriv not found: an entry stuck in a builtin outlives a killed server)",
    builtinOverrun: `process killed ${WATCHDOG_GRACE_MS} ms after the call's deadline`,
  });
}

const REPO_ROOT = new URL("..", import.meta.url).pathname;

/**
 * Address space allowed on top of the budget for the procedure thread's own copy of the module
 * (its heap and compiled code; worker/procedures.ts), so that the budget still means what the
 * database's data and calls may use.
 */
const PROCEDURE_THREAD_MEMORY_MB = 48;
/**
 * Address space a procedure thread started after the first adds (worker/procedures.ts' pool):
 * V8 maps a 512 MiB read-write-execute code range per isolate, which RLIMIT_DATA counts (a
 * started thread measured +535 MiB VmData, ~13 MiB RSS), plus its copy of the module. The cap
 * grows by this while such a thread runs and shrinks when it stops (`setExtraThreads`).
 */
const EXTRA_PROCEDURE_THREAD_MB = 560 + PROCEDURE_THREAD_MEMORY_MB;

/**
 * A process started ahead of need (`setWarmSpare`): `deno` itself, our entry module and the
 * memory cap are already done when a database needs a process, which leaves only its own
 * bundle to load. Keyed by entry and memory budget, the two things a spare fixes.
 */
let warmSpare: { key: string; worker: ProcessWorker } | undefined;
let warmSpareWanted = false;
let warmSpareTimer: ReturnType<typeof setTimeout> | undefined;
/** A replacement spare waits this long, so it does not compete with the start that took one. */
const WARM_SPARE_DELAY_MS = 250;

/**
 * Keeps one spare database process ready (on) or stops it (off, and at shutdown). A spare
 * costs one idle `deno` (~40-60 MiB RSS) and saves each start ~60-250 ms (process start, our
 * own module graph, the memory cap), which matters most when hibernated databases wake.
 */
export function setWarmSpare(on: boolean): void {
  warmSpareWanted = on;
  if (!on) {
    if (warmSpareTimer !== undefined) clearTimeout(warmSpareTimer);
    warmSpareTimer = undefined;
    warmSpare?.worker.terminate();
    warmSpare = undefined;
  }
}

function spareKey(entryUrl: string | URL, memoryMb: number, readOwnCode: boolean): string {
  return `${new URL(entryUrl).href}|${Math.floor(memoryMb)}|${readOwnCode}`;
}

function replenishWarmSpare(
  entryUrl: string | URL,
  memoryMb: number,
  readOwnCodeAtStart: boolean,
): void {
  if (!warmSpareWanted || warmSpareTimer !== undefined) return;
  warmSpareTimer = setTimeout(() => {
    warmSpareTimer = undefined;
    if (!warmSpareWanted || warmSpare) return;
    const worker = startProcess(entryUrl, { memoryMb, readOwnCodeAtStart });
    const spare = { key: spareKey(entryUrl, memoryMb, readOwnCodeAtStart), worker };
    warmSpare = spare;
    worker.exited.then(() => {
      if (warmSpare === spare) warmSpare = undefined;
    });
  }, WARM_SPARE_DELAY_MS);
  Deno.unrefTimer(warmSpareTimer);
}

/** Starts `entryUrl` in its own process with no permissions (a warm spare when there is one). */
export function spawnIsolatedWorker(
  entryUrl: string | URL,
  options: IsolatedWorkerOptions,
): IsolatedWorker {
  if (!(options.memoryMb >= 16)) {
    throw new RangeError(`Database memory of "${options.memoryMb}" MiB is below 16 MiB`);
  }
  const spare = warmSpare;
  let worker: ProcessWorker | undefined;
  const readOwnCode = options.readOwnCodeAtStart ?? false;
  if (
    spare && spare.key === spareKey(entryUrl, options.memoryMb, readOwnCode) &&
    spare.worker.adopt(options)
  ) {
    worker = spare.worker;
  }
  if (spare) warmSpare = undefined;
  if (spare && !worker) spare.worker.terminate();
  worker ??= startProcess(entryUrl, options);
  replenishWarmSpare(entryUrl, options.memoryMb, readOwnCode);
  return worker;
}

function startProcess(entryUrl: string | URL, options: IsolatedWorkerOptions): ProcessWorker {
  const caps = isolationCapabilities();
  const socket = listenForEntry();
  const readable = [
    // Read access to our own code only, for the procedure thread (worker/procedures.ts); the
    // process drops it (dropReadPermission) before any tenant code loads.
    ...(options.readOwnCodeAtStart ? [REPO_ROOT] : []),
    // The request socket, given up once connected (connectToServer).
    ...(socket ? [socket.path] : []),
  ];
  const denoArgs = [
    "run",
    "--quiet",
    "--no-prompt",
    ...(options.readOwnCodeAtStart ? ["--unstable-worker-options"] : []),
    ...(readable.length > 0 ? [`--allow-read=${readable.join(",")}`] : []),
    ...(socket ? [`--allow-write=${socket.path}`, `--allow-net=unix:${socket.path}`] : []),
    `--config=${REPO_ROOT}deno.json`,
    `--v8-flags=--max-old-space-size=${Math.floor(options.memoryMb)},` +
    "--enable-experimental-regexp-engine-on-excessive-backtracks" +
    (Deno.env.get("LIGHTCONE_DB_V8_FLAGS") ? `,${Deno.env.get("LIGHTCONE_DB_V8_FLAGS")}` : ""),
    // Profiling only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" (bench/RESULTS.md).
    ...(Deno.env.get("LIGHTCONE_DB_DENO_FLAGS")?.split(" ").filter(Boolean) ?? []),
    new URL(entryUrl).pathname,
    ...(socket ? [SOCKET_ARG + socket.path] : []),
  ];
  const command = caps.killWithServer
    ? new Deno.Command(toolPath("setpriv")!, {
      args: ["--pdeathsig", "SIGKILL", "--", Deno.execPath(), ...denoArgs],
      ...spawnOptions(socket !== undefined),
    })
    : new Deno.Command(Deno.execPath(), { args: denoArgs, ...spawnOptions(socket !== undefined) });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (error) {
    socket?.close();
    throw error;
  }
  return new ProcessWorker(child, options, caps, socket);
}

/** False once a Unix socket could not be made here: requests go over stdin from then on. */
let socketsAvailable = true;
/** A Unix socket path is at most 107 bytes on Linux. */
const SOCKET_PATH_BYTES_MAX = 100;

interface EntrySocket {
  readonly path: string;
  /** The entry's connection (the listener closes and its directory goes once it came). */
  readonly connection: Promise<Deno.Conn>;
  close(): void;
}

/**
 * A listener for one entry's request connection, or undefined where sockets are unavailable.
 * Each socket gets a directory of its own (mode 0700), removed as soon as the entry connected
 * (or died first): nothing is left behind however the server ends.
 */
function listenForEntry(): EntrySocket | undefined {
  if (!socketsAvailable) return undefined;
  let dir: string | undefined;
  const removeDir = () => {
    if (dir === undefined) return;
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // removed
    }
  };
  try {
    dir = Deno.makeTempDirSync({ prefix: "lightcone-ipc-" });
    Deno.chmodSync(dir, 0o700);
    const path = `${dir}/requests.sock`;
    if (path.length > SOCKET_PATH_BYTES_MAX) throw new RangeError(`socket path too long: ${path}`);
    const listener = Deno.listen({ transport: "unix", path });
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch {
        // closed
      }
      removeDir();
    };
    const connection = listener.accept().finally(close);
    connection.catch(() => {});
    return { path, connection, close };
  } catch (error) {
    removeDir();
    socketsAvailable = false;
    log.warn("database requests go over stdin: no Unix socket could be made", {
      error: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}

function spawnOptions(socket: boolean): Deno.CommandOptions {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return {
    stdin: socket ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env,
    cwd: REPO_ROOT,
  };
}

/** Reassembles frames from a byte stream; rejects lengths above `maxBytes` before allocating. */
export class FrameReader {
  #header = new Uint8Array(HEADER_BYTES);
  #headerFill = 0;
  #payload: Uint8Array | undefined;
  #payloadFill = 0;
  #channel = 0;

  constructor(
    readonly maxBytes: number,
    readonly onFrame: (channel: number, payload: Uint8Array) => void,
  ) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#payload === undefined) {
        const take = Math.min(HEADER_BYTES - this.#headerFill, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerFill);
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < HEADER_BYTES) return;
        const header = this.#header;
        const length = (header[0] | header[1] << 8 | header[2] << 16) + header[3] * 0x1000000;
        if (length > this.maxBytes) {
          throw new RangeError(`frame of ${length} bytes exceeds the ${this.maxBytes}-byte cap`);
        }
        this.#channel = header[4];
        this.#headerFill = 0;
        this.#payload = new Uint8Array(length);
        this.#payloadFill = 0;
      }
      const payload = this.#payload;
      const take = Math.min(payload.length - this.#payloadFill, chunk.length - at);
      payload.set(chunk.subarray(at, at + take), this.#payloadFill);
      this.#payloadFill += take;
      at += take;
      if (this.#payloadFill === payload.length) {
        this.#payload = undefined;
        this.onFrame(this.#channel, payload);
      }
    }
  }
}

/** One frame: header, codec byte, `message` in worker/wire.ts's encoding (node:v8 if needed). */
export function encodeFrame(channel: number, message: unknown): Uint8Array {
  let frame = encodeWire(message, HEADER_BYTES + 1);
  if (frame !== undefined) {
    frame[HEADER_BYTES] = CODEC_WIRE;
  } else {
    const payload = serialize(message);
    frame = new Uint8Array(HEADER_BYTES + 1 + payload.length);
    frame[HEADER_BYTES] = CODEC_V8;
    frame.set(payload, HEADER_BYTES + 1);
  }
  const length = frame.length - HEADER_BYTES;
  frame[0] = length & 0xff;
  frame[1] = (length >>> 8) & 0xff;
  frame[2] = (length >>> 16) & 0xff;
  frame[3] = (length >>> 24) & 0xff;
  frame[4] = channel;
  return frame;
}

/** The message of a frame's payload (codec byte first); throws on malformed bytes. */
export const decodePayload = decodeFramePayload;

class ProcessWorker implements IsolatedWorker {
  readonly port: PortLike;
  readonly exited: Promise<number>;
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  #options: IsolatedWorkerOptions;
  readonly #channels = new Map<number, (message: unknown) => void>();
  readonly #rawChannels = new Map<number, (payload: Uint8Array) => void>();
  #writeQueue: Uint8Array[] = [];
  #writing = false;
  /** Writes bytes to the entry: its request socket, or its stdin where there is none. */
  readonly #sink: Promise<(bytes: Uint8Array) => Promise<void>>;
  #dead = false;
  #stderrTail = "";
  #failure: { code: IsolationErrorCode; message: string } | undefined;
  /** Frames written before the entry said hello wait here until its memory is capped. */
  #held: Uint8Array[] | undefined = [];
  readonly #caps: IsolationCapabilities;
  /** VmData bytes when the entry's code was loaded: the base of the address-space cap. */
  #baseDataBytes: number | undefined;
  #extraThreads = 0;
  #connection: Deno.Conn | undefined;
  /** The memory-cap updates, applied one after another (`#applyMemoryLimit`). */
  #limitChain: Promise<void> = Promise.resolve();
  /** The cap update waiting for the running one, which later requests share. */
  #limitQueued: Promise<void> | undefined;
  #memoryLimitUpdates = 0;

  constructor(
    child: Deno.ChildProcess,
    options: IsolatedWorkerOptions,
    caps: IsolationCapabilities,
    socket?: EntrySocket,
  ) {
    this.#child = child;
    this.#options = options;
    this.#caps = caps;
    this.pid = child.pid;
    if (socket) {
      this.#sink = socket.connection.then((conn) => {
        this.#connection = conn;
        if (this.#dead) conn.close();
        return async (bytes: Uint8Array) => {
          let at = 0;
          while (at < bytes.length) at += await conn.write(bytes.subarray(at));
        };
      });
    } else {
      const writer = child.stdin.getWriter();
      this.#sink = Promise.resolve((bytes: Uint8Array) => writer.write(bytes));
    }
    this.#sink.catch(() => {});
    const write = (frame: Uint8Array) => this.#write(frame);
    this.port = {
      onmessage: null,
      postMessage(message: unknown) {
        write(encodeFrame(CONTROL_CHANNEL, message));
      },
      close() {},
    };
    this.#channels.set(CONTROL_CHANNEL, (message) => this.port.onmessage?.({ data: message }));
    const frameCap = Math.max(64 << 20, options.memoryMb * 2 * (1 << 20));
    const reader = new FrameReader(frameCap, (channel, payload) => this.#onFrame(channel, payload));
    const stdoutDone = this.#pumpStdout(reader);
    const stderrDone = this.#pumpStderr();
    this.exited = child.status.then(async (status) => {
      // An entry that died before connecting leaves the accept pending: closing ends it.
      socket?.close();
      await Promise.allSettled([stdoutDone, stderrDone]);
      this.#dead = true;
      try {
        this.#connection?.close();
      } catch {
        // closed
      }
      if (!this.#failure && status.code !== 0) {
        this.#fail(this.#classifyExit(status));
      }
      return status.code;
    });
  }

  /**
   * Hands a warm spare to a database: its errors go to `options.onError` from now on. False
   * when it cannot serve (it failed or exited, or nothing was posted to it yet is required).
   */
  adopt(options: IsolatedWorkerOptions): boolean {
    if (this.#dead || this.#failure) return false;
    this.#options = options;
    return true;
  }

  bridge(channel: number, port: MessagePort): void {
    // Frames from the process go on undecoded; the other side decodes them with
    // decodeFramePayload and checks them. A large payload (it owns its buffer) is transferred;
    // a small one is copied, which costs the sender less than detaching a buffer (a commit frame
    // at small N is a few KiB: ~2.5-3 µs copied vs ~3.3-6 µs transferred, measured on Deno 2.9.6).
    this.#rawChannels.set(
      channel,
      (payload) =>
        payload.length >= BRIDGE_TRANSFER_BYTES_MIN
          ? port.postMessage(payload, [payload.buffer as ArrayBuffer])
          : port.postMessage(payload),
    );
    port.onmessage = (event: MessageEvent) => this.#write(encodeFrame(channel, event.data));
  }

  async setExtraThreads(threads: number): Promise<void> {
    if (!Number.isInteger(threads) || threads < 0 || threads >= PROCEDURE_THREADS_MAX) {
      throw new RangeError(`${threads} extra procedure threads`);
    }
    this.#extraThreads = threads;
    if (this.#baseDataBytes !== undefined) await this.#applyMemoryLimit();
  }

  terminate(): void {
    if (this.#dead) return;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }

  #classifyExit(status: Deno.CommandStatus): { code: IsolationErrorCode; message: string } {
    const tail = this.#stderrTail;
    if (/out of memory|allocation failed|Fatal JavaScript/i.test(tail)) {
      // V8's own words say which allocation failed (heap, code range, an ArrayBuffer): kept in
      // the server log, since the client only hears "ran out of memory".
      log.warn("database process ran out of memory", {
        pid: this.pid,
        stderr: tail.slice(-2000),
      });
      return {
        code: "OUT_OF_MEMORY",
        message: `the module ran out of memory (budget ${this.#options.memoryMb} MiB)`,
      };
    }
    const lines = tail.trim().split("\n").filter((line) => line.trim() !== "");
    const lastLine = lines.find((line) => /error/i.test(line)) ?? lines.at(-1);
    if (lines.length > 0) {
      log.warn("database process stderr", { pid: this.pid, stderr: tail.slice(-2000) });
    }
    return {
      code: "CRASHED",
      message: `database process exited with ${
        status.signal ? `signal ${status.signal}` : `code ${status.code}`
      }${lastLine ? `: ${lastLine.slice(0, 300)}` : ""}`,
    };
  }

  /** A frame that cannot be read: that process is stopped, nothing else is affected. */
  #malformed(error: unknown): void {
    this.#fail({
      code: "MALFORMED",
      message: `database process sent a malformed frame: ${
        error instanceof Error ? error.message : error
      }`,
    });
    this.terminate();
  }

  #fail(failure: { code: IsolationErrorCode; message: string }): void {
    if (this.#failure) return;
    this.#failure = failure;
    this.#options.onError?.(failure);
  }

  #onFrame(channel: number, payload: Uint8Array): void {
    if (this.#failure) return;
    const raw = this.#held === undefined ? this.#rawChannels.get(channel) : undefined;
    if (raw) return raw(payload);
    const deliver = this.#channels.get(channel);
    let message: unknown;
    try {
      if (!deliver) throw new TypeError(`frame on unknown channel ${channel}`);
      message = decodePayload(payload);
    } catch (error) {
      this.#malformed(error);
      return;
    }
    if (this.#held !== undefined) {
      // The entry's first frame says its own code is loaded; nothing else is accepted before.
      if (channel !== CONTROL_CHANNEL || (message as { type?: unknown })?.type !== "hello") {
        this.#fail({ code: "MALFORMED", message: "database process did not say hello first" });
        this.terminate();
        return;
      }
      void this.#applyMemoryLimit().finally(() => {
        const held = this.#held ?? [];
        this.#held = undefined;
        for (const frame of held) this.#write(frame);
      });
      return;
    }
    deliver(message);
  }

  /**
   * Caps the address space once the entry's own code is loaded (its first frame): the budget
   * is on top of what the runtime itself maps (thread stacks, V8's reservations: ~0.5 GiB of
   * VmData for an idle deno), so it measures what the database adds.
   */
  #applyMemoryLimit(): Promise<void> {
    // One `prlimit` at a time, each computing the cap when it runs: two in flight (the pool
    // asking for threads 1, 2 and 3 at once) could land out of order and leave the cap of fewer
    // threads than run, and the last thread's code-range reservation then failed. Requests made
    // while one waits to run share it (it reads the newest thread count when it starts): the
    // process is untrusted, and a flood of `procedure-threads` messages queued one `prlimit`
    // process per message on the server.
    if (this.#limitQueued !== undefined) return this.#limitQueued;
    const run = this.#limitChain.then(() => {
      this.#limitQueued = undefined;
      return this.#applyMemoryLimitNow();
    });
    this.#limitQueued = run;
    this.#limitChain = run.catch(() => {});
    return run;
  }

  get memoryLimitUpdates(): number {
    return this.#memoryLimitUpdates;
  }

  async #applyMemoryLimitNow(): Promise<void> {
    if (!this.#caps.memoryLimit) return;
    try {
      if (this.#baseDataBytes === undefined) {
        this.#baseDataBytes = await dataSegmentBytes(this.pid);
        if (this.#baseDataBytes === undefined) return;
      }
      // A database process also holds a second copy of the module in its procedure thread, and
      // one more per thread its pool started.
      const bytes = (threads: number) =>
        this.#baseDataBytes! +
        (this.#options.memoryMb + (this.#options.readOwnCodeAtStart
            ? PROCEDURE_THREAD_MEMORY_MB + threads * EXTRA_PROCEDURE_THREAD_MB
            : 0)) * 1024 * 1024;
      // The soft limit is the one enforced. The hard limit allows for every thread the pool may
      // ever start, since raising a hard limit needs a privilege the server may lack; the
      // process cannot raise its soft limit itself (no permissions, no FFI).
      this.#memoryLimitUpdates++;
      await setDataLimit(this.pid, bytes(this.#extraThreads), bytes(PROCEDURE_THREADS_MAX - 1));
    } catch (error) {
      log.warn("could not cap a database process's memory", {
        pid: this.pid,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  #write(frame: Uint8Array): void {
    if (this.#dead) return;
    if (this.#held !== undefined) {
      this.#held.push(frame);
      return;
    }
    this.#writeQueue.push(frame);
    if (!this.#writing) void this.#pumpWrites();
  }

  async #pumpWrites(): Promise<void> {
    this.#writing = true;
    try {
      const sink = await this.#sink;
      while (this.#writeQueue.length > 0 && !this.#dead) {
        const frames = this.#writeQueue;
        this.#writeQueue = [];
        await sink(concatBytes(frames));
      }
    } catch {
      // The process is gone; `exited` reports it.
      this.#writeQueue = [];
    } finally {
      this.#writing = false;
    }
  }

  async #pumpStdout(reader: FrameReader): Promise<void> {
    // Reads into one reused buffer (a BYOB reader): the default reader allocates a fresh 64 KiB
    // buffer per read, which at one read per batch was most of the main thread's garbage.
    // FrameReader copies each frame out before the next read.
    const stdout = this.#child.stdout.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(STDOUT_READ_BYTES);
    try {
      for (;;) {
        const { value, done } = await stdout.read(new Uint8Array(buffer));
        if (done || value === undefined) break;
        buffer = value.buffer as ArrayBuffer;
        if (this.#failure) continue;
        try {
          reader.push(value);
        } catch (error) {
          this.#malformed(error);
        }
      }
    } catch {
      // closed
    }
  }

  async #pumpStderr(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.#child.stderr) {
        const text = decoder.decode(chunk, { stream: true });
        this.#stderrTail = (this.#stderrTail + text).slice(-STDERR_TAIL_BYTES);
        const at = this.#stderrTail.indexOf(WATCHDOG_MARKER);
        if (at >= 0 && !this.#failure) {
          const end = this.#stderrTail.indexOf("\n", at);
          const detail = this.#stderrTail.slice(
            at + WATCHDOG_MARKER.length,
            end < 0 ? undefined : end,
          );
          this.#fail({ code: "OVERRUN", message: detail.slice(0, 300) });
          this.terminate();
        }
      }
    } catch {
      // closed
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Entry side (inside the database process)

/** Host references, captured when this module is evaluated (before the sandbox trims globals). */
const entryDeno = globalThis.Deno;

/**
 * For the entry module: gives up the read access to the server's code directory the process
 * starts with, once the procedure thread's code is loaded and before tenant code is; from then
 * on the process has no permissions at all.
 */
export function dropReadPermission(): void {
  entryDeno.permissions.revokeSync({ name: "read" });
  if (entryDeno.permissions.querySync({ name: "read" }).state === "granted") {
    throw new Error("the database process could not drop its read permission");
  }
}
const entryWorker = globalThis.Worker;
const entryBlob = globalThis.Blob;
const entryCreateObjectURL = URL.createObjectURL;
const entryTimeOrigin = performance.timeOrigin;
const entryNow = performance.now.bind(performance);
const entrySharedArrayBuffer = globalThis.SharedArrayBuffer;

let entryChannels: Map<number, PortLike> | undefined;
/** The request socket (`connectToServer`); stdin is read where there is none. */
let entryConnection: Deno.Conn | undefined;
let watchdogDeadline: Float64Array | undefined;
/**
 * The watchdog's Float64 slots, a [deadline (epoch ms, 0 when disarmed), budget ms] pair per
 * thread that runs tenant calls: the entry's (reducers) and the procedure thread's
 * (procedures and HTTP handlers; worker/procedure_thread.ts).
 */
let watchdogShared: SharedArrayBuffer | undefined;
const WATCHDOG_PAIRS = [
  "the call",
  ...Array.from({ length: PROCEDURE_THREADS_MAX }, () => "the procedure or HTTP handler call"),
];

function watchdogBuffer(): SharedArrayBuffer {
  return watchdogShared ??= new entrySharedArrayBuffer(WATCHDOG_PAIRS.length * 16);
}

/**
 * For the entry module: procedure thread `index`'s [deadline, budget] pair of the watchdog
 * (0 to PROCEDURE_THREADS_MAX - 1), for that thread to arm around its calls' running time (the
 * watchdog is started by `startWatchdog`).
 */
export function procedureWatchdogSlots(index = 0): Float64Array {
  if (!Number.isInteger(index) || index < 0 || index >= PROCEDURE_THREADS_MAX) {
    throw new RangeError(`no watchdog pair for procedure thread ${index}`);
  }
  return new Float64Array(watchdogBuffer(), 16 * (1 + index), 2);
}

function writeAll(bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += entryDeno.stdout.writeSync(bytes.subarray(at));
}

/** Frames held by `holdOutput` until `releaseOutput` writes them at once. */
let heldFrames: Uint8Array[] | undefined;

/**
 * For the entry module: frames sent from now until `releaseOutput()` are written with one
 * write (a batch's commit records and its reply): each write is a system call here and a
 * wake-up plus a stream read on the server's main thread.
 */
export function holdOutput(): void {
  heldFrames ??= [];
}

/** Writes the frames held since `holdOutput()`, in the order they were sent. */
export function releaseOutput(): void {
  const frames = heldFrames;
  heldFrames = undefined;
  if (frames === undefined || frames.length === 0) return;
  writeAll(frames.length === 1 ? frames[0] : concatBytes(frames));
}

/** An entry-side channel; messages are sent as frames on stdout. */
function entryPort(channel: number): PortLike {
  const port: PortLike = {
    onmessage: null,
    postMessage(message: unknown) {
      const frame = encodeFrame(channel, message);
      if (heldFrames !== undefined) heldFrames.push(frame);
      else writeAll(frame);
    },
    close() {},
  };
  return port;
}

/**
 * For the entry module, first thing: connects to the request socket the server made for this
 * process (when it made one), then gives up the permissions that named it, so that from here on
 * the process holds at most the read access to the server's code it started with.
 */
export async function connectToServer(): Promise<void> {
  if (entryConnection) return;
  const path = entryDeno.args.find((arg) => arg.startsWith(SOCKET_ARG))?.slice(SOCKET_ARG.length);
  if (path === undefined) return;
  try {
    entryConnection = await entryDeno.connect({ transport: "unix", path });
  } finally {
    entryDeno.permissions.revokeSync({ name: "net" });
    entryDeno.permissions.revokeSync({ name: "write" });
    entryDeno.permissions.revokeSync({ name: "read", path });
  }
  // A path-scoped grant reads as "prompt" when queried without its path: ask with it.
  const query = entryDeno.permissions.querySync;
  if (
    query({ name: "net", host: `unix:${path}` }).state === "granted" ||
    query({ name: "write", path }).state === "granted" ||
    query({ name: "read", path }).state === "granted"
  ) {
    throw new Error("the database process could not drop its permissions on its request socket");
  }
}

/**
 * For the entry module: starts reading frames (from the request socket, `connectToServer`, or
 * else stdin) and returns the control channel. `handle` runs for each control message; the
 * process exits when the server closes the socket or stdin.
 */
export function serveIsolated(handle: (data: unknown, port: PortLike) => void): PortLike {
  if (entryChannels) throw new Error("serveIsolated() was already called");
  const control = entryPort(CONTROL_CHANNEL);
  entryChannels = new Map([[CONTROL_CHANNEL, control], [
    STORAGE_CHANNEL,
    entryPort(STORAGE_CHANNEL),
  ]]);
  control.onmessage = (event) => handle(event.data, control);
  control.postMessage({ type: "hello" });
  const channels = entryChannels;
  const reader = new FrameReader(0xffffffff, (channel, payload) => {
    const port = channels.get(channel);
    port?.onmessage?.({ data: decodePayload(payload) });
  });
  const exit = entryDeno.exit;
  (async () => {
    // An entry that did not connect first (tests' entries) connects here.
    await connectToServer();
    const buffer = new Uint8Array(1 << 16);
    const source: { read(into: Uint8Array): Promise<number | null> } = entryConnection ??
      entryDeno.stdin;
    for (;;) {
      const n = await source.read(buffer);
      if (n === null) break;
      reader.push(buffer.subarray(0, n));
    }
    exit(0);
  })();
  return control;
}

/** For the entry module: the channel to the storage worker (bridged by the server). */
export function storagePort(): PortLike {
  const port = entryChannels?.get(STORAGE_CHANNEL);
  if (!port) throw new Error("storagePort() needs serveIsolated() first");
  return port;
}

/**
 * For the entry module: starts the watchdog thread. It reads the deadlines the entry and the
 * procedure thread arm for each call and, once a call is `WATCHDOG_GRACE_MS` past one (stuck in a builtin, where the
 * instrumented checks cannot run), asks the server on stderr to kill this process.
 *
 * Resolves once the thread runs: a worker's isolate is made on its own thread some time after
 * `new Worker`, and it reserves V8's code range (~512 MiB of address space) then. The server caps
 * the process's address space at its first frame (`hello`), counting what is mapped by then as
 * the runtime's; an isolate made after that found no room on a loaded machine ("Failed to reserve
 * virtual memory for CodeRange") and the process died as out of memory. So `hello` waits for this.
 */
export function startWatchdog(): Promise<void> {
  if (watchdogDeadline) return Promise.resolve();
  const shared = watchdogBuffer();
  watchdogDeadline = new Float64Array(shared, 0, 2);
  const source = `
    const marker = ${JSON.stringify(WATCHDOG_MARKER)};
    const callers = ${JSON.stringify(WATCHDOG_PAIRS)};
    let fired = false;
    let where = "inside a builtin that cannot be interrupted";
    self.onmessage = (event) => {
      if (typeof event.data === "string") return void (where = event.data);
      const slots = new Float64Array(event.data);
      const encoder = new TextEncoder();
      self.postMessage("running");
      setInterval(() => {
        for (let pair = 0; pair < callers.length && !fired; pair++) {
          const deadline = slots[2 * pair];
          if (deadline === 0) continue;
          const now = performance.timeOrigin + performance.now();
          if (now > deadline + ${WATCHDOG_GRACE_MS}) {
            fired = true;
            const budget = slots[2 * pair + 1];
            const over = Math.round(now - deadline + budget);
            Deno.stderr.writeSync(encoder.encode(
              marker + callers[pair] + " ran " + over + " ms, past its time budget of " + budget +
                " ms, " + where + "; the database process was stopped\\n",
            ));
          }
        }
      }, ${WATCHDOG_PERIOD_MS});
    };
  `;
  const url = entryCreateObjectURL(new entryBlob([source], { type: "text/javascript" }));
  // The process has no permissions, so neither has this worker.
  const worker = new entryWorker(url, { type: "module" });
  const running = new Promise<void>((resolve) => {
    worker.onmessage = () => {
      worker.onmessage = null;
      resolve();
    };
  });
  worker.postMessage(shared);
  watchdogWorker = worker;
  return running;
}

let watchdogWorker: Worker | undefined;

/** For the entry module: the module is WebAssembly, which has no deadline checks at all. */
export function watchdogGuardsWasm(): void {
  watchdogWorker?.postMessage("in WebAssembly code, which cannot be interrupted");
}

/** Arms the watchdog for a call that may run `budgetMs` from `nowMs` (performance.now()). */
export function armWatchdog(budgetMs: number, nowMs = entryNow()): void {
  const slots = watchdogDeadline;
  if (!slots) return;
  slots[1] = budgetMs;
  slots[0] = entryTimeOrigin + nowMs + budgetMs;
}

/** Disarms the watchdog once the call returned. */
export function disarmWatchdog(): void {
  const slots = watchdogDeadline;
  if (slots) slots[0] = 0;
}
