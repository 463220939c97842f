/**
 * Every acknowledged reply leaves the real server after the fdatasync of the transactions it
 * reflects. The server runs under `strace` (tests/support/install_debian.sh installs it),
 * which records each write to a commit log, each fdatasync of it and each byte sent to a
 * socket, with times. Clients over HTTP (`POST /call`) and WebSocket (v2 BSATN, confirmed
 * reads) add marks with unique tags and call `newest`, which always fails with the largest tag
 * it read: a rolled-back reply derived from other clients' commits. For every reply the
 * checker finds the log write holding the tag the reply depends on and requires that an
 * fdatasync of that log, started after the write, ended before the reply's first byte was sent.
 *
 * The same check run against a server started with LIGHTCONE_UNSAFE_LATE_FSYNC_MS (acks first,
 * fdatasync later) must find violations: the checker can fail.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  decodeServerPayload,
  encodeClientMessage,
  type ServerMessage,
} from "../../protocol/mod.ts";
import { fixtureBundle, publish, stringifyWithBigInts } from "../support/server.ts";
import {
  concat,
  indexOfBytes,
  parseStrace,
  STRACE_FORMAT_ARGS,
  type Syscall,
} from "../support/strace.ts";

const TRACED = "trace=write,writev,pwrite64,pwritev,sendto,sendmsg,fdatasync,fsync";
/** Tags are 0x5A17_xxxx_xxxx_xxxx: eight bytes that do not occur by chance in the log. */
const TAG_BASE = 0x5a17_0000_0000_0000n;
const LOG_FILE = /\/log\/\d{20}\.log$/;

function hasStrace(): boolean {
  try {
    return new Deno.Command("strace", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

interface TracedServer {
  url: string;
  port: number;
  /** Stops the server and returns the parsed trace. */
  stop(): Promise<Syscall[]>;
}

async function startTracedServer(env: Record<string, string> = {}): Promise<TracedServer> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-strace-" });
  const tracePath = `${dir}/trace.txt`;
  const root = new URL("../../", import.meta.url).pathname;
  const child = new Deno.Command("strace", {
    args: [
      ...STRACE_FORMAT_ARGS,
      "-s",
      "262144",
      "-e",
      TRACED,
      "-o",
      tracePath,
      Deno.execPath(),
      "run",
      "--unstable-worker-options",
      "-A",
      `${root}main.ts`,
      "start",
      "--listen-addr",
      "127.0.0.1:0",
      "--data-dir",
      `${dir}/data`,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1", ...env },
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
  (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
  })();
  return {
    url,
    port: Number(new URL(url).port),
    async stop() {
      // strace's child is the server: SIGTERM it, and strace ends with it.
      const children = await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`);
      for (const pid of children.trim().split(/\s+/).filter(Boolean)) {
        Deno.kill(Number(pid), "SIGTERM");
      }
      await child.status;
      const calls = parseStrace(await Deno.readTextFile(tracePath));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return calls;
    },
  };
}

/** What one reply depends on: the tag whose transaction must be durable before it. */
interface Expected {
  via: string;
  /** 0n: depends on nothing the workload wrote. */
  tag: bigint;
}

/** A reply as seen in the trace: when its first byte went out, and what it depends on. */
interface SentReply {
  sentMicros: number;
  expected: Expected;
}

function tagBytes(tag: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, tag, true);
  return bytes;
}

const NEWEST = /newest (\d+)/;

/** One HTTP/1.1 connection of our own, so the server-side socket is known by its port. */
class RawHttpClient {
  #buffer: Uint8Array = new Uint8Array(0);
  private constructor(readonly conn: Deno.TcpConn, readonly localPort: number) {}

  static async connect(port: number): Promise<RawHttpClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    return new RawHttpClient(conn, (conn.localAddr as Deno.NetAddr).port);
  }

  async post(path: string, token: string, body: string): Promise<{ status: number; text: string }> {
    const bodyBytes = new TextEncoder().encode(body);
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${token}\r\nContent-Length: ${bodyBytes.length}\r\n\r\n`;
    const request = concat([new TextEncoder().encode(head), bodyBytes]);
    for (let at = 0; at < request.length;) at += await this.conn.write(request.subarray(at));
    for (;;) {
      const parsed = parseHttpResponse(this.#buffer);
      if (parsed) {
        this.#buffer = this.#buffer.slice(parsed.length);
        return { status: parsed.status, text: parsed.body };
      }
      const chunk = new Uint8Array(65536);
      const read = await this.conn.read(chunk);
      if (read === null) throw new Error("the server closed the connection");
      this.#buffer = concat([this.#buffer, chunk.subarray(0, read)]);
    }
  }

  close(): void {
    this.conn.close();
  }
}

/** One complete HTTP/1.1 response at the start of `bytes` (content-length bodies only). */
function parseHttpResponse(
  bytes: Uint8Array,
): { status: number; body: string; length: number } | undefined {
  const end = indexOfBytes(bytes, new TextEncoder().encode("\r\n\r\n"));
  if (end < 0) return undefined;
  const head = new TextDecoder().decode(bytes.subarray(0, end));
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  // A 101 (WebSocket upgrade) has no body; every other response here has a content-length.
  const lengthText = status === 101 ? "0" : /\r\ncontent-length: (\d+)/i.exec(head)?.[1];
  assert(lengthText !== undefined, `a response without content-length: ${head}`);
  const length = end + 4 + Number(lengthText);
  if (bytes.length < length) return undefined;
  return { status, body: new TextDecoder().decode(bytes.subarray(end + 4, length)), length };
}

/** The bytes a server socket sent, as one stream, with the send time of every byte range. */
class SocketStream {
  readonly chunks: { at: number; micros: number }[] = [];
  bytes: Uint8Array = new Uint8Array(0);
  #pieces: Uint8Array[] = [];
  #length = 0;

  add(call: Syscall): void {
    assert(call.complete, `a socket write was cut at strace's -s limit (${call.data.length} B)`);
    this.chunks.push({ at: this.#length, micros: call.startMicros });
    this.#pieces.push(call.data);
    this.#length += call.data.length;
  }

  finish(): void {
    this.bytes = concat(this.#pieces);
  }

  /** When the byte at `offset` was sent (the start of the write that carried it). */
  sentAt(offset: number): number {
    let micros = this.chunks[0].micros;
    for (const chunk of this.chunks) {
      if (chunk.at > offset) break;
      micros = chunk.micros;
    }
    return micros;
  }
}

/** Server -> client WebSocket frames (unmasked) in `bytes`, from `start`. */
function* webSocketFrames(bytes: Uint8Array, start: number) {
  let at = start;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at] & 0x0f;
    let length = bytes[at + 1] & 0x7f;
    let header = 2;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    if (length === 126) {
      length = view.getUint16(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(view.getBigUint64(at + 2));
      header = 10;
    }
    if (at + header + length > bytes.length) return;
    yield { offset: at, opcode, payload: bytes.subarray(at + header, at + header + length) };
    at += header + length;
  }
}

/**
 * Runs the workload against `server` and returns every reply found in the trace with what
 * it depends on, plus the log writes and syncs. Asserts that every reply was found.
 */
async function runWorkload(
  server: TracedServer,
  options: { httpClients: number; wsClients: number; rounds: number },
): Promise<{ calls: Syscall[]; replies: SentReply[]; newestSawOthers: number }> {
  const owner = await publish(server.url, "acks", await fixtureBundle("acks"));
  let nextTag = TAG_BASE;
  /** Per HTTP client port: what each of its replies depends on, in order. */
  const httpExpected = new Map<number, Expected[]>();
  /** Per WebSocket request id: what its reply depends on. */
  const wsExpected = new Map<number, Expected>();
  let newestSawOthers = 0;
  const ownTags = new Map<string, Set<bigint>>();
  const noteNewest = (client: string, text: string): bigint => {
    const tag = BigInt(NEWEST.exec(text)?.[1] ?? "-1");
    assert(tag >= 0n, `newest failed with "${text}"`);
    if (tag !== 0n && !ownTags.get(client)?.has(tag)) newestSawOthers++;
    return tag;
  };

  const httpClient = async (index: number) => {
    const http = await RawHttpClient.connect(server.port);
    const expected: Expected[] = [];
    const name = `http${index}`;
    ownTags.set(name, new Set());
    httpExpected.set(http.localPort, expected);
    try {
      for (let round = 0; round < options.rounds; round++) {
        const tag = nextTag++;
        ownTags.get(name)!.add(tag);
        const added = await http.post(
          "/v1/database/acks/call/add",
          owner.token,
          stringifyWithBigInts([tag]),
        );
        assertEquals(added.status, 200, added.text);
        expected.push({ via: `${name} add`, tag });
        const newest = await http.post("/v1/database/acks/call/newest", owner.token, "[]");
        assertEquals(newest.status, 530, newest.text);
        expected.push({ via: `${name} newest`, tag: noteNewest(name, newest.text) });
      }
    } finally {
      http.close();
    }
  };

  const wsClient = async (index: number) => {
    const name = `ws${index}`;
    ownTags.set(name, new Set());
    const socket = new WebSocket(
      `${server.url.replace(/^http/, "ws")}/v1/database/acks/subscribe?compression=None`,
      ["v2.bsatn.spacetimedb"],
    );
    socket.binaryType = "arraybuffer";
    const waiting = new Map<number, (message: ServerMessage) => void>();
    let connected!: () => void;
    const ready = new Promise<void>((resolve) => (connected = resolve));
    socket.onmessage = (event) => {
      const bytes = new Uint8Array(event.data as ArrayBuffer);
      assertEquals(bytes[0], 0, "compression=None frames start with 0");
      const [message] = decodeServerPayload(bytes.subarray(1), "v2");
      if (message.tag === "InitialConnection") connected();
      if (message.tag === "ReducerResult") waiting.get(message.requestId)?.(message);
    };
    await ready;
    const callReducer = (requestId: number, reducer: string, args: Uint8Array) =>
      new Promise<ServerMessage>((resolve) => {
        waiting.set(requestId, resolve);
        socket.send(
          encodeClientMessage({ tag: "CallReducer", requestId, flags: 0, reducer, args }),
        );
      });
    try {
      for (let round = 0; round < options.rounds; round++) {
        const tag = nextTag++;
        ownTags.get(name)!.add(tag);
        const addId = 1_000_000 * (index + 1) + 2 * round;
        const added = await callReducer(addId, "add", tagBytes(tag));
        assert(added.tag === "ReducerResult" && added.result.tag !== "Err", "add failed");
        wsExpected.set(addId, { via: `${name} add`, tag });
        const newestId = addId + 1;
        const newest = await callReducer(newestId, "newest", new Uint8Array());
        assert(
          newest.tag === "ReducerResult" && newest.result.tag === "Err",
          "newest did not fail",
        );
        const text = new TextDecoder().decode(newest.result.value.subarray(4));
        wsExpected.set(newestId, { via: `${name} newest`, tag: noteNewest(name, text) });
      }
    } finally {
      socket.close();
    }
  };

  await Promise.all([
    ...Array.from({ length: options.httpClients }, (_, i) => httpClient(i)),
    ...Array.from({ length: options.wsClients }, (_, i) => wsClient(i)),
  ]);
  const calls = await server.stop();

  // Every byte each server socket sent, in order.
  const sockets = new Map<string, SocketStream>();
  for (const call of calls) {
    if (!call.target.startsWith("TCP:[") || call.data.length === 0) continue;
    let stream = sockets.get(call.target);
    if (!stream) sockets.set(call.target, stream = new SocketStream());
    stream.add(call);
  }
  const replies: SentReply[] = [];
  let wsFound = 0;
  for (const [target, stream] of sockets) {
    stream.finish();
    const clientPort = Number(/->[^\]]*:(\d+)\]$/.exec(target)?.[1]);
    const httpReplies = httpExpected.get(clientPort);
    let at = 0;
    let index = 0;
    while (at < stream.bytes.length) {
      const response = parseHttpResponse(stream.bytes.subarray(at));
      if (!response) break;
      if (response.status === 101) {
        // A WebSocket: the rest are frames.
        at += response.length;
        for (const frame of webSocketFrames(stream.bytes, at)) {
          if (frame.opcode !== 2) continue;
          const [message] = decodeServerPayload(frame.payload.subarray(1), "v2");
          if (message.tag !== "ReducerResult") continue;
          const expected = wsExpected.get(message.requestId);
          if (!expected) continue;
          wsFound++;
          replies.push({ sentMicros: stream.sentAt(frame.offset), expected });
        }
        break;
      }
      if (httpReplies) {
        const expected = httpReplies[index++];
        assert(expected, `more responses than requests on port ${clientPort}`);
        replies.push({ sentMicros: stream.sentAt(at), expected });
      }
      at += response.length;
    }
    if (httpReplies) assertEquals(index, httpReplies.length, `responses to port ${clientPort}`);
  }
  assertEquals(wsFound, wsExpected.size, "every WebSocket reply was found in the trace");
  return { calls, replies, newestSawOthers };
}

/** Replies sent before an fdatasync covering the transaction they depend on had finished. */
function findEarlyReplies(calls: Syscall[], replies: SentReply[]) {
  const logWrites = calls.filter((call) =>
    (call.name === "write" || call.name === "pwrite64" || call.name === "writev") &&
    LOG_FILE.test(call.target)
  );
  const syncs = calls.filter((call) => call.name === "fdatasync" && LOG_FILE.test(call.target));
  const durableAt = (tag: bigint): number => {
    const needle = tagBytes(tag);
    const write = logWrites.find((call) => indexOfBytes(call.data, needle) >= 0);
    assert(write, `no log write holds tag ${tag.toString(16)}`);
    const sync = syncs.find((call) =>
      call.target === write.target && call.startMicros >= write.endMicros
    );
    return sync ? sync.endMicros : Infinity;
  };
  const early: { via: string; tag: string; aheadMicros: number }[] = [];
  const marginsMicros: number[] = [];
  for (const reply of replies) {
    if (reply.expected.tag === 0n) continue;
    const durable = durableAt(reply.expected.tag);
    const margin = reply.sentMicros - durable;
    marginsMicros.push(margin);
    if (margin <= 0) {
      early.push({
        via: reply.expected.via,
        tag: reply.expected.tag.toString(16),
        aheadMicros: durable === Infinity ? Infinity : -margin,
      });
    }
  }
  marginsMicros.sort((a, b) => a - b);
  return { early, marginsMicros, logWrites: logWrites.length, syncs: syncs.length };
}

const onLinux = Deno.build.os === "linux";

Deno.test({
  name: "every reply leaves the real server after the fdatasync of what it reflects (strace)",
  ignore: !onLinux,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert(hasStrace(), "strace is missing: run tests/support/install_debian.sh");
    const server = await startTracedServer();
    const { calls, replies, newestSawOthers } = await runWorkload(server, {
      httpClients: 3,
      wsClients: 2,
      rounds: 20,
    });
    const { early, marginsMicros, logWrites, syncs } = findEarlyReplies(calls, replies);
    const median = marginsMicros[Math.floor(marginsMicros.length / 2)];
    console.log(
      `${replies.length} replies checked (${newestSawOthers} failed calls read another ` +
        `client's mark), ${logWrites} log writes, ${syncs} fdatasyncs; reply after its ` +
        `fdatasync by min ${marginsMicros[0]} µs, median ${median} µs`,
    );
    assertEquals(replies.length, 5 * 2 * 20);
    assertEquals(early, []);
  },
});

Deno.test({
  name: "the fdatasync order check catches a server that acknowledges before fdatasync",
  ignore: !onLinux,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert(hasStrace(), "strace is missing: run tests/support/install_debian.sh");
    const server = await startTracedServer({ LIGHTCONE_UNSAFE_LATE_FSYNC_MS: "300" });
    const { calls, replies } = await runWorkload(server, {
      httpClients: 1,
      wsClients: 1,
      rounds: 5,
    });
    const { early } = findEarlyReplies(calls, replies);
    console.log(`${early.length} of ${replies.length} replies went out before their fdatasync`);
    assert(early.length > 0, "the deliberately early acks were not caught");
  },
});
