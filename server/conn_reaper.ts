/**
 * Header and idle timeouts for the HTTP listener, which Deno.serve (2.9.6) does not have.
 *
 * Deno.serve gives a handler no connection to close and has no header-read or keep-alive timeout,
 * so a client that opens a connection and sends half a header block (or nothing, or stays idle
 * after a response) holds a socket forever. Putting our own byte relay in front of Deno.serve
 * would fix that but cost ~15-25% more CPU per keynote transaction (measured: every WebSocket
 * byte copied twice in JavaScript). Instead the reaper works beside the hot path:
 *
 * - the kernel lists the listener's established connections (`/proc/net/tcp`, `/proc/net/tcp6`);
 * - the request handler reports, per peer address, when a request starts and ends and when a
 *   connection became a WebSocket (WebSockets have their own ping-based idle timeout);
 * - a connection that has had no request in flight for longer than the header timeout (never
 *   sent a whole request) or the idle timeout (since its last response) is destroyed in the
 *   kernel with `ss -K` (SOCK_DESTROY: needs iproute2's `ss`, CAP_NET_ADMIN and a kernel with
 *   INET_DIAG_DESTROY). Deno sees a reset and frees the connection.
 *
 * Whether that works is probed once at start-up on a loopback connection of our own; when it
 * does not, the server logs that these timeouts are not enforced and runs without them.
 */
import { log } from "../lib/log.ts";

export interface ConnReaperOptions {
  /** The listener's port (connections whose local port is this one are watched). */
  port: number;
  /** A connection must deliver a whole request header within this many ms of opening. */
  headerTimeoutMs: number;
  /** A connection with no request in flight is closed this many ms after its last response. */
  idleTimeoutMs: number;
  /** How often the kernel's table is read; default a quarter of the smaller timeout (250-2000). */
  sweepMs?: number;
}

/** What the reaper reads and does outside itself; replaced in tests. */
export interface ConnReaperSystem {
  /** The texts of /proc/net/tcp and /proc/net/tcp6 (missing files left out). */
  readTcpTables(): Promise<string[]>;
  /** Destroys the server side of these connections of local `port`. */
  destroy(port: number, keys: PeerKey[]): Promise<boolean>;
  /** Undefined when connections can be destroyed here, else why not. */
  probe(): Promise<string | undefined>;
}

const LINUX: ConnReaperSystem = {
  async readTcpTables() {
    const texts: string[] = [];
    for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      try {
        texts.push(await Deno.readTextFile(file));
      } catch { /* no IPv6, or not Linux */ }
    }
    return texts;
  },
  destroy: (port, keys) => destroyConnections(port, keys),
  probe: () => probeSocketDestroy(),
};

/** What the handler knows of one peer (ip:port). */
export interface PeerState {
  /** When the reaper (or the handler) first saw the connection. */
  firstSeenMs: number;
  /** Requests started and not yet answered in full. */
  inFlight: number;
  /** When the last request's response completed; undefined before the first one. */
  lastDoneMs: number | undefined;
  /** Became a WebSocket: its idle time is Deno's business (ping/pong), not ours. */
  upgraded: boolean;
}

/** A peer address, canonical so the kernel's hex and Deno's text give the same key. */
export type PeerKey = string;

const TCP_ESTABLISHED = "01";

/** `a.b.c.d:port` for IPv4 (and IPv4-mapped IPv6), full lowercase groups for other IPv6. */
export function peerKey(hostname: string, port: number): PeerKey | undefined {
  const bytes = parseIpText(hostname);
  if (!bytes) return undefined;
  return `${formatIpBytes(bytes)}:${port}`;
}

/** IPv4 dotted or IPv6 text (with `::` and an embedded IPv4 tail) → 4 or 16 bytes. */
export function parseIpText(text: string): Uint8Array | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(bare);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    return parts.every((p) => p <= 255) ? Uint8Array.from(parts) : undefined;
  }
  if (!bare.includes(":")) return undefined;
  const zoneless = bare.split("%")[0];
  const halves = zoneless.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const tail = parseIpText(piece);
        if (!tail || tail.length !== 4) return undefined;
        out.push((tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) out.push(parseInt(piece, 16));
      else return undefined;
    }
    return out;
  };
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

function formatIpBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  if (mapped) return Array.from(bytes.subarray(12)).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(":");
}

/**
 * The kernel's hex address (`0100007F` for IPv4, 32 hex digits for IPv6: 32-bit words, each in
 * host byte order, little-endian on every machine we run on) → bytes in network order.
 */
function procHexToBytes(hex: string): Uint8Array | undefined {
  if (hex.length !== 8 && hex.length !== 32) return undefined;
  const bytes = new Uint8Array(hex.length / 2);
  for (let word = 0; word < hex.length / 8; word++) {
    for (let i = 0; i < 4; i++) {
      const offset = word * 8 + (3 - i) * 2;
      const value = parseInt(hex.slice(offset, offset + 2), 16);
      if (Number.isNaN(value)) return undefined;
      bytes[word * 4 + i] = value;
    }
  }
  return bytes;
}

/** Peer keys of the established connections to local `port` in a `/proc/net/tcp{,6}` text. */
export function establishedPeers(procText: string, port: number): PeerKey[] {
  const peers: PeerKey[] = [];
  const lines = procText.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const fields = lines[i].trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== TCP_ESTABLISHED) continue;
    const [localHex, localPortHex] = fields[1].split(":");
    if (localHex === undefined || parseInt(localPortHex, 16) !== port) continue;
    const [remoteHex, remotePortHex] = fields[2].split(":");
    const remote = procHexToBytes(remoteHex);
    if (!remote) continue;
    peers.push(`${formatIpBytes(remote)}:${parseInt(remotePortHex, 16)}`);
  }
  return peers;
}

/** The peers whose connection has gone past its timeout at `nowMs`. Pure; exported for tests. */
export function overdue(
  peers: Iterable<[PeerKey, PeerState]>,
  nowMs: number,
  options: Pick<ConnReaperOptions, "headerTimeoutMs" | "idleTimeoutMs">,
): PeerKey[] {
  const out: PeerKey[] = [];
  for (const [key, state] of peers) {
    if (state.upgraded || state.inFlight > 0) continue;
    const since = state.lastDoneMs ?? state.firstSeenMs;
    const limit = state.lastDoneMs === undefined ? options.headerTimeoutMs : options.idleTimeoutMs;
    if (nowMs - since > limit) out.push(key);
  }
  return out;
}

/** `ss` filter text for one peer key (IPv6 in brackets). */
function ssDestination(key: PeerKey): string {
  const cut = key.lastIndexOf(":");
  const host = key.slice(0, cut);
  return host.includes(":") ? `[${host}]:${key.slice(cut + 1)}` : key;
}

/** Destroys the server side of the listed connections of local `port`; resolves when `ss` ran. */
async function destroyConnections(port: number, keys: PeerKey[]): Promise<boolean> {
  const BATCH = 64;
  let ok = true;
  for (let i = 0; i < keys.length; i += BATCH) {
    const filter: string[] = ["("];
    keys.slice(i, i + BATCH).forEach((key, j) => {
      if (j > 0) filter.push("or");
      filter.push("dst", ssDestination(key));
    });
    filter.push(")");
    try {
      const result = await new Deno.Command("ss", {
        args: ["-K", "-t", "-n", "-H", "state", "established", "sport", "=", `:${port}`, ...filter],
        stdout: "null",
        stderr: "null",
      }).output();
      ok &&= result.success;
    } catch {
      ok = false;
    }
  }
  return ok;
}

let probeResult: Promise<string | undefined> | undefined;

/**
 * Can this process destroy a socket? Tries on a loopback connection of its own. Resolves with
 * undefined when it can, or the reason it cannot. Done once per process.
 */
export function probeSocketDestroy(): Promise<string | undefined> {
  probeResult ??= (async () => {
    let listener: Deno.Listener | undefined;
    let client: Deno.Conn | undefined;
    let accepted: Deno.Conn | undefined;
    try {
      listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      const acceptance = listener.accept();
      client = await Deno.connect({ hostname: "127.0.0.1", port });
      accepted = await acceptance;
      const local = client.localAddr as Deno.NetAddr;
      const key = peerKey(local.hostname, local.port)!;
      if (!(await destroyConnections(port, [key]))) {
        return "`ss -K` failed (needs iproute2's ss and CAP_NET_ADMIN)";
      }
      const reset = await Promise.race([
        client.read(new Uint8Array(1)).then(() => true, () => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
      ]);
      return reset ? undefined : "`ss -K` ran but did not close the socket (no CAP_NET_ADMIN " +
        "or a kernel without INET_DIAG_DESTROY)";
    } catch (error) {
      return error instanceof Deno.errors.NotFound
        ? "`ss` (iproute2) is not installed"
        : `probe failed: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      for (const closable of [client, accepted, listener]) {
        try {
          closable?.close();
        } catch { /* already closed by the reset */ }
      }
    }
  })();
  return probeResult;
}

export class ConnReaper {
  readonly #options: Required<ConnReaperOptions>;
  readonly #peers = new Map<PeerKey, PeerState>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #sweeping = false;
  /** Connections destroyed so far (metrics, tests). */
  destroyed = 0;

  readonly #system: ConnReaperSystem;

  constructor(options: ConnReaperOptions, system: ConnReaperSystem = LINUX) {
    this.#system = system;
    const sweepMs = options.sweepMs ??
      Math.min(2000, Math.max(250, Math.min(options.headerTimeoutMs, options.idleTimeoutMs) / 4));
    this.#options = { ...options, sweepMs };
  }

  /** Starts sweeping; resolves false (and sweeps nothing) when sockets cannot be destroyed here. */
  async start(): Promise<{ enforced: boolean; reason?: string }> {
    const reason = await this.#system.probe();
    if (reason !== undefined) return { enforced: false, reason };
    const timer = setInterval(() => void this.sweep(), this.#options.sweepMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
    return { enforced: true };
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #state(key: PeerKey): PeerState {
    let state = this.#peers.get(key);
    if (!state) {
      state = { firstSeenMs: Date.now(), inFlight: 0, lastDoneMs: undefined, upgraded: false };
      this.#peers.set(key, state);
    }
    return state;
  }

  /**
   * A request from `addr` started; call the returned function when its response is complete
   * (`upgraded` when it became a WebSocket).
   */
  requestStarted(addr: Deno.Addr | undefined): (upgraded: boolean) => void {
    if (this.#timer === undefined || !addr || addr.transport !== "tcp") return () => {};
    const key = peerKey(addr.hostname, addr.port);
    if (key === undefined) return () => {};
    const state = this.#state(key);
    state.inFlight++;
    let done = false;
    return (upgraded) => {
      if (done) return;
      done = true;
      state.inFlight--;
      state.lastDoneMs = Date.now();
      if (upgraded) state.upgraded = true;
    };
  }

  /** One pass: read the kernel's table, destroy what is overdue (tests call it directly). */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      // The kernel's table is read asynchronously: a connection that opened (or a WebSocket
      // that upgraded) while it was being read is missing from it but must keep its state.
      const sweepStartedMs = Date.now();
      const live = new Set<PeerKey>();
      for (const text of await this.#system.readTcpTables()) {
        for (const key of establishedPeers(text, this.#options.port)) live.add(key);
      }
      for (const [key, state] of this.#peers) {
        const lastMs = state.lastDoneMs ?? state.firstSeenMs;
        if (!live.has(key) && state.inFlight === 0 && lastMs < sweepStartedMs) {
          this.#peers.delete(key);
        }
      }
      for (const key of live) this.#state(key);
      const victims = overdue(this.#peers, Date.now(), this.#options);
      if (victims.length === 0) return;
      await this.#system.destroy(this.#options.port, victims);
      this.destroyed += victims.length;
      for (const key of victims) this.#peers.delete(key);
      log.debug("closed connections past their header or idle timeout", {
        count: victims.length,
      });
    } catch (error) {
      log.warn("connection sweep failed", {
        error: error instanceof Error ? error.message : String(error),
      });
    } finally {
      this.#sweeping = false;
    }
  }
}
