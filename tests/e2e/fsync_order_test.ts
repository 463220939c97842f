/**
 * Every acknowledged reply leaves the real server after the fdatasync of the transactions it
 * reflects. The server runs under `strace` (tests/support/install_debian.sh installs it),
 * which records each write to a commit log, each fdatasync of it and each byte sent to a
 * socket, with times. Clients over HTTP (`POST /call`) and WebSocket (v2 BSATN, confirmed
 * reads, subscribed to every mark) add marks with unique tags, call `newest` (always fails,
 * naming the largest tag it read: a rolled-back reply derived from other clients' commits),
 * run one-off queries, and connect (client_connected commits a transaction whose record holds
 * the connection id). For every reply the checker finds the log write holding the bytes the
 * reply depends on (its tag, the largest tag among its rows, or InitialConnection's connection
 * id) and requires that an fdatasync of that log, started after the write, ended before the
 * reply's first byte was sent.
 *
 * The same check run against a server started with LIGHTCONE_UNSAFE_LATE_FSYNC_MS (acks first,
 * fdatasync later) must find violations: the checker can fail. (Without the waits this file's
 * commit added, failed `newest` results and InitialConnection went out before their fdatasync.)
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  decodeServerPayload,
  encodeClientMessage,
  type RowList,
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

/** What one reply depends on: bytes of the transaction that must be durable before it. */
interface Expected {
  via: string;
  /** Bytes only that transaction's log record holds first; undefined: depends on nothing. */
  needle: Uint8Array | undefined;
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

/** The 16 little-endian bytes of a connection id, as a commit record holds its caller's. */
function connectionIdBytes(connectionId: bigint): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, connectionId & 0xffff_ffff_ffff_ffffn, true);
  view.setBigUint64(8, connectionId >> 64n, true);
  return bytes;
}

const tagNeedle = (tag: bigint) => tag === 0n ? undefined : tagBytes(tag);

/** The largest mark tag among rows of the `mark` table (each row is one u64). */
function largestTag(rowLists: readonly RowList[]): bigint {
  let largest = 0n;
  for (const rows of rowLists) {
    assert(Array.isArray(rows), "decoded rows are arrays");
    for (const row of rows as readonly Uint8Array[]) {
      const tag = new DataView(row.buffer, row.byteOffset, row.byteLength).getBigUint64(0, true);
      if (tag > largest) largest = tag;
    }
  }
  return largest;
}

/**
 * What a WebSocket message the server sent depends on, read from the message itself:
 * InitialConnection on its client_connected transaction (whose record holds the connection
 * id), a failed `newest` on the tag it names, rows on the largest tag among them.
 */
function wsDependency(message: ServerMessage, addTags: Map<number, bigint>): Expected | undefined {
  switch (message.tag) {
    case "InitialConnection":
      return { via: "InitialConnection", needle: connectionIdBytes(message.connectionId) };
    case "ReducerResult": {
      const result = message.result;
      if (result.tag === "Err") {
        const text = new TextDecoder().decode(result.value.subarray(4));
        return { via: "failed newest", needle: tagNeedle(BigInt(NEWEST.exec(text)![1])) };
      }
      const tag = addTags.get(message.requestId);
      assert(tag !== undefined, `a ReducerResult for unknown request ${message.requestId}`);
      return { via: "add", needle: tagBytes(tag) };
    }
    case "SubscribeApplied":
      return {
        via: "SubscribeApplied",
        needle: tagNeedle(largestTag(message.rows.tables.map((table) => table.rows))),
      };
    case "OneOffQueryResult":
      assert(message.result.tag === "Ok", "the one-off query failed");
      return {
        via: "OneOffQueryResult",
        needle: tagNeedle(largestTag(message.result.value.tables.map((table) => table.rows))),
      };
    case "TransactionUpdate": {
      const rows: RowList[] = [];
      for (const set of message.querySets) {
        for (const table of set.tables) {
          for (const update of table.rows) {
            if (update.tag === "PersistentTable") rows.push(update.inserts);
          }
        }
      }
      return { via: "TransactionUpdate", needle: tagNeedle(largestTag(rows)) };
    }
    default:
      return undefined;
  }
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
 * it depends on, plus every traced call. Asserts that every reply was found.
 */
async function runWorkload(
  server: TracedServer,
  options: { httpClients: number; wsClients: number; rounds: number },
): Promise<{ calls: Syscall[]; replies: SentReply[]; newestSawOthers: number }> {
  const owner = await publish(server.url, "acks", await fixtureBundle("acks"));
  let nextTag = TAG_BASE;
  /** Per HTTP client port: what each of its replies depends on, in order. */
  const httpExpected = new Map<number, Expected[]>();
  /** Tag of each WebSocket `add` call, by request id. */
  const addTags = new Map<number, bigint>();
  /** WebSocket messages the clients received, by kind (the trace must show as many). */
  const wsReceived = new Map<string, number>();
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
        expected.push({ via: "http add", needle: tagBytes(tag) });
        const newest = await http.post("/v1/database/acks/call/newest", owner.token, "[]");
        assertEquals(newest.status, 530, newest.text);
        expected.push({
          via: "http failed newest",
          needle: tagNeedle(noteNewest(name, newest.text)),
        });
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
      wsReceived.set(message.tag, (wsReceived.get(message.tag) ?? 0) + 1);
      if (message.tag === "InitialConnection") connected();
      if ("requestId" in message && message.requestId !== undefined) {
        waiting.get(message.requestId)?.(message);
      }
    };
    await ready;
    const send = (requestId: number, message: Parameters<typeof encodeClientMessage>[0]) =>
      new Promise<ServerMessage>((resolve) => {
        waiting.set(requestId, resolve);
        socket.send(encodeClientMessage(message));
      });
    const base = 1_000_000 * (index + 1);
    try {
      const applied = await send(base, {
        tag: "Subscribe",
        requestId: base,
        querySetId: 1,
        queryStrings: ["SELECT * FROM mark"],
      });
      assertEquals(applied.tag, "SubscribeApplied");
      for (let round = 0; round < options.rounds; round++) {
        const tag = nextTag++;
        ownTags.get(name)!.add(tag);
        const addId = base + 3 * round + 1;
        addTags.set(addId, tag);
        const added = await send(addId, {
          tag: "CallReducer",
          requestId: addId,
          flags: 0,
          reducer: "add",
          args: tagBytes(tag),
        });
        assert(added.tag === "ReducerResult" && added.result.tag !== "Err", "add failed");
        const newest = await send(addId + 1, {
          tag: "CallReducer",
          requestId: addId + 1,
          flags: 0,
          reducer: "newest",
          args: new Uint8Array(),
        });
        assert(
          newest.tag === "ReducerResult" && newest.result.tag === "Err",
          "newest did not fail",
        );
        noteNewest(name, new TextDecoder().decode(newest.result.value.subarray(4)));
        const queried = await send(addId + 2, {
          tag: "OneOffQuery",
          requestId: addId + 2,
          queryString: "SELECT * FROM mark",
        });
        assertEquals(queried.tag, "OneOffQueryResult");
      }
    } finally {
      socket.close();
    }
  };

  /** Connects, waits for InitialConnection, leaves: many short-lived connections. */
  const connectOnly = async () => {
    for (let round = 0; round < options.rounds / 2; round++) {
      const socket = new WebSocket(
        `${server.url.replace(/^http/, "ws")}/v1/database/acks/subscribe?compression=None`,
        ["v2.bsatn.spacetimedb"],
      );
      socket.binaryType = "arraybuffer";
      await new Promise<void>((resolve, reject) => {
        socket.onmessage = (event) => {
          const bytes = new Uint8Array(event.data as ArrayBuffer);
          const [message] = decodeServerPayload(bytes.subarray(1), "v2");
          wsReceived.set(message.tag, (wsReceived.get(message.tag) ?? 0) + 1);
          resolve();
        };
        socket.onclose = () => reject(new Error("closed before InitialConnection"));
      });
      socket.onclose = null;
      socket.close();
    }
  };

  await Promise.all([
    ...Array.from({ length: options.httpClients }, (_, i) => httpClient(i)),
    ...Array.from({ length: options.wsClients }, (_, i) => wsClient(i)),
    ...Array.from({ length: options.wsClients }, connectOnly),
  ]);
  const calls = await server.stop();

  // Every byte each server socket sent, in order.
  const sockets = new Map<string, SocketStream>();
  for (const call of calls) {
    // strace -yy names a socket by asking the kernel (sock_diag); should that fail it prints
    // `socket:[inode]`. Such a stream is still parsed (its WebSocket frames name their own
    // dependency); its HTTP replies cannot be matched to a client port and are skipped.
    const socket = call.target.startsWith("TCP:[") || /^socket:\[\d+\]$/.test(call.target);
    if (!socket || call.data.length === 0) continue;
    let stream = sockets.get(call.target);
    if (!stream) sockets.set(call.target, stream = new SocketStream());
    stream.add(call);
  }
  const replies: SentReply[] = [];
  const wsFound = new Map<string, number>();
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
          const expected = wsDependency(message, addTags);
          if (!expected) continue;
          wsFound.set(message.tag, (wsFound.get(message.tag) ?? 0) + 1);
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
  for (const [tag, count] of wsFound) {
    assertEquals(count, wsReceived.get(tag), `${tag} messages found in the trace`);
  }
  for (
    const tag of ["InitialConnection", "SubscribeApplied", "TransactionUpdate", "ReducerResult"]
  ) {
    assert((wsFound.get(tag) ?? 0) > 0 || options.wsClients === 0, `no ${tag} in the trace`);
  }
  return { calls, replies, newestSawOthers };
}

/** Replies sent before an fdatasync covering the transaction they depend on had finished. */
function findEarlyReplies(calls: Syscall[], replies: SentReply[]) {
  const logWrites = calls.filter((call) =>
    (call.name === "write" || call.name === "pwrite64" || call.name === "writev") &&
    LOG_FILE.test(call.target)
  );
  const syncs = calls.filter((call) => call.name === "fdatasync" && LOG_FILE.test(call.target));
  const hex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const durableAt = (needle: Uint8Array): number => {
    const write = logWrites.find((call) => indexOfBytes(call.data, needle) >= 0);
    assert(write, `no log write holds ${hex(needle)}`);
    assert(write.complete, "a log write was cut at strace's -s limit");
    const sync = syncs.find((call) =>
      call.target === write.target && call.startMicros >= write.endMicros
    );
    return sync ? sync.endMicros : Infinity;
  };
  const early: { via: string; needle: string; aheadMicros: number }[] = [];
  const marginsMicros: number[] = [];
  const checked = new Map<string, number>();
  for (const reply of replies) {
    const needle = reply.expected.needle;
    if (needle === undefined) continue;
    checked.set(reply.expected.via, (checked.get(reply.expected.via) ?? 0) + 1);
    const durable = durableAt(needle);
    const margin = reply.sentMicros - durable;
    marginsMicros.push(margin);
    if (margin <= 0) {
      early.push({
        via: reply.expected.via,
        needle: hex(needle),
        aheadMicros: durable === Infinity ? Infinity : -margin,
      });
    }
  }
  marginsMicros.sort((a, b) => a - b);
  return { early, marginsMicros, checked, logWrites: logWrites.length, syncs: syncs.length };
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
    const { early, marginsMicros, checked, logWrites, syncs } = findEarlyReplies(calls, replies);
    const median = marginsMicros[Math.floor(marginsMicros.length / 2)];
    console.log(
      `${marginsMicros.length} replies checked (${
        [...checked].map(([k, v]) => `${v} ${k}`).join(", ")
      }); ` +
        `${newestSawOthers} failed calls read another client's mark; ${logWrites} log writes, ` +
        `${syncs} fdatasyncs; reply after its fdatasync by min ${marginsMicros[0]} µs, ` +
        `median ${median} µs`,
    );
    assert(newestSawOthers > 0, "no failed call read another client's mark");
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
