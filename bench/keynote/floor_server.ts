/**
 * A server that does nothing, for bench/keynote/floor.ts: what the machine's scheduler, loopback
 * network and disk give the tail of the keynote load shape before any database work.
 *
 *   deno run -A bench/keynote/floor_server.ts MODE DATA_DIR
 *
 * Every WebSocket message is answered with its own bytes, by MODE:
 *   echo     at once, on the main thread (one thread: the least a WebSocket server can do)
 *   relay    after a round trip through a child process over a Unix socket (floor_relay.ts),
 *            with every message of one event-loop turn written as one batch (Lightcone's hop
 *            to a database process, without the database)
 *   durable  relay, then each batch the child returns is written to a log file by a storage
 *            worker (floor_storage.ts) and answered after its group commit's fdatasync (the
 *            thread shape of a Lightcone call: front, database process, storage worker)
 *
 * Prints `listening PORT` on stdout once it accepts connections.
 */
import { concatBytes } from "../../lib/bytes.ts";
import { floorFrame, FloorFrameReader } from "./floor_frames.ts";

const MODES = ["echo", "relay", "durable"] as const;
type Mode = typeof MODES[number];

const mode = Deno.args[0] as Mode;
const dataDir = Deno.args[1];
if (!MODES.includes(mode) || !dataDir) {
  console.error(`usage: floor_server.ts ${MODES.join("|")} DATA_DIR`);
  Deno.exit(2);
}

type Reply = () => void;

/** Queues a message for the next batch through the child process; `reply` runs once it returns. */
interface Relay {
  send(payload: Uint8Array, reply: Reply): void;
}

async function startRelay(onBatch: (replies: Reply[], bytes: number) => void): Promise<Relay> {
  const path = `${dataDir}/relay.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${path}`,
      `--allow-write=${path}`,
      `--allow-net=unix:${path}`,
      new URL("./floor_relay.ts", import.meta.url).pathname,
      path,
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  globalThis.addEventListener("unload", () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  });
  const conn = await listener.accept();
  listener.close();
  let queued: Uint8Array[] = [];
  let queuedReplies: Reply[] = [];
  let flushQueued = false;
  let writing = false;
  const batchReplies: Reply[][] = [];
  const pump = async () => {
    writing = true;
    while (queued.length > 0) {
      const bytes = concatBytes(queued);
      queued = [];
      for (let written = 0; written < bytes.length;) {
        written += await conn.write(bytes.subarray(written));
      }
    }
    writing = false;
  };
  // Messages of one event-loop turn travel as one batch frame (as DatabaseHost's microtask flush).
  const flush = () => {
    flushQueued = false;
    const replies = queuedReplies;
    queuedReplies = [];
    batchReplies.push(replies);
    queued.push(floorFrame(new Uint8Array(64 * replies.length)));
    if (!writing) void pump();
  };
  const reader = new FloorFrameReader((payload) => {
    const replies = batchReplies.shift();
    if (replies === undefined) throw new Error("the relay answered a batch never sent");
    onBatch(replies, payload.length);
  });
  (async () => {
    const buffer = new Uint8Array(1 << 16);
    for (;;) {
      const count = await conn.read(buffer);
      if (count === null) break;
      reader.push(buffer.subarray(0, count));
    }
  })();
  return {
    send(_payload, reply) {
      queuedReplies.push(reply);
      if (!flushQueued) {
        flushQueued = true;
        queueMicrotask(flush);
      }
    },
  };
}

let relay: Relay | undefined;
if (mode === "relay") {
  relay = await startRelay((replies) => {
    for (const reply of replies) reply();
  });
} else if (mode === "durable") {
  const storage = new Worker(new URL("./floor_storage.ts", import.meta.url).href, {
    type: "module",
  });
  const pending = new Map<number, Reply[]>();
  let nextBatch = 0;
  storage.onmessage = (event: MessageEvent<number[]>) => {
    for (const id of event.data) {
      const replies = pending.get(id)!;
      pending.delete(id);
      for (const reply of replies) reply();
    }
  };
  await new Promise<void>((resolve) => {
    storage.addEventListener("message", () => resolve(), { once: true });
    storage.postMessage({ path: `${dataDir}/floor.log` });
  });
  relay = await startRelay((replies, bytes) => {
    const id = nextBatch++;
    pending.set(id, replies);
    storage.postMessage({ id, bytes: new Uint8Array(bytes) });
  });
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen({ port }) {
    console.log(`listening ${port}`);
  },
}, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => {
    const bytes = new Uint8Array(event.data as ArrayBuffer);
    if (relay === undefined) socket.send(bytes);
    else relay.send(bytes, () => socket.send(bytes));
  };
  return response;
});
await server.finished;
