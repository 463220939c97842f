/**
 * A reference client for the keynote benchmark that is NOT the official SDK: a few dozen lines
 * on Lightcone's own protocol codec (protocol/ws_v2.ts), speaking v3 BSATN with confirmed reads
 * like the SDK, but without the SDK's per-call work (event contexts, callbacks maps, logging
 * closures, row caches). It exists to show how much of a colocated run the client costs: the
 * same server, driven by a cheaper client, shows the server's own capacity on this machine.
 * Results of this client are reported as "lightcone-raw" and never used for the keynote ratios.
 *
 * Like the SDK, calls made in the same turn go out in one v3 frame (flushed in a microtask), cut
 * at FRAME_BYTES_MAX so Deno's client never writes a frame over 1 KiB (it leaves Nagle on and
 * would wait for a delayed ACK, see server/ws/hub.ts).
 */
import {
  type ClientMessage,
  decodeServerPayload,
  encodeClientFrame,
  type ServerMessage,
} from "../../protocol/mod.ts";
import type { Outcome } from "./driver.mjs";
import type { LightconeClients } from "./lightcone_side.ts";

const FRAME_BYTES_MAX = 1000;
const CONNECT_TIMEOUT_MS = 60_000;
/** Bytes of a CallReducer message besides its name and args: tag, request id, flags, lengths. */
const CALL_OVERHEAD_BYTES = 1 + 4 + 1 + 4 + 4;

interface Pending {
  resolve(outcome: Outcome): void;
}

class RawConnection {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, Pending>();
  #nextRequestId = 1;
  #queue: ClientMessage[] = [];
  #queueBytes = 0;
  #flushScheduled = false;
  #closedReason: string | undefined;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
  }

  static open(url: string, databaseName: string): Promise<RawConnection> {
    const wsUrl = `${url.replace(/^http/, "ws")}/v1/database/${
      encodeURIComponent(databaseName)
    }/subscribe?compression=None&confirmed=true`;
    const connection = new RawConnection(new WebSocket(wsUrl, ["v3.bsatn.spacetimedb"]));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`No raw connection within ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      connection.#socket.onmessage = (event) => {
        const messages = connection.#decode(event.data);
        if (messages[0]?.tag !== "InitialConnection") {
          clearTimeout(timer);
          reject(new Error(`Expected InitialConnection, got '${messages[0]?.tag}'`));
          return;
        }
        clearTimeout(timer);
        connection.#socket.onmessage = (next) => connection.#onFrame(next.data);
        resolve(connection);
      };
      connection.#socket.onerror = () => {
        clearTimeout(timer);
        reject(new Error("Raw connection failed"));
      };
      connection.#socket.onclose = (event) => {
        clearTimeout(timer);
        connection.#closedReason = `closed ${event.code} ${event.reason}`;
        reject(new Error(`Raw connection ${connection.#closedReason}`));
        connection.#failAll();
      };
    });
  }

  call(reducer: string, args: Uint8Array): Promise<Outcome> {
    if (this.#closedReason !== undefined) {
      return Promise.reject(new Error(`Raw connection ${this.#closedReason}`));
    }
    const requestId = this.#nextRequestId++;
    const size = CALL_OVERHEAD_BYTES + reducer.length + args.length;
    if (this.#queueBytes + size > FRAME_BYTES_MAX) this.#flush();
    this.#queue.push({ tag: "CallReducer", requestId, flags: 0, reducer, args });
    this.#queueBytes += size;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return new Promise((resolve) => this.#pending.set(requestId, { resolve }));
  }

  close(): void {
    this.#socket.close();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#queue.length === 0) return;
    const frame = encodeClientFrame(this.#queue);
    this.#queue = [];
    this.#queueBytes = 0;
    this.#socket.send(frame);
  }

  #decode(data: ArrayBuffer): ServerMessage[] {
    const frame = new Uint8Array(data);
    if (frame[0] !== 0) throw new Error(`Unexpected compression tag ${frame[0]}`);
    return decodeServerPayload(frame.subarray(1), "v3");
  }

  #onFrame(data: ArrayBuffer): void {
    for (const message of this.#decode(data)) {
      if (message.tag !== "ReducerResult") continue;
      const pending = this.#pending.get(message.requestId);
      if (!pending) continue;
      this.#pending.delete(message.requestId);
      const tag = message.result.tag;
      pending.resolve(
        tag === "Ok" || tag === "OkEmpty" ? "ok" : tag === "Err" ? "refused" : "failed",
      );
    }
  }

  #failAll(): void {
    for (const pending of this.#pending.values()) pending.resolve("failed");
    this.#pending.clear();
  }
}

/** BSATN args of `transfer(from: u32, to: u32, amount: i64)`. */
export function transferArgs(from: number, to: number, amount: number): Uint8Array {
  const args = new Uint8Array(16);
  const view = new DataView(args.buffer);
  view.setUint32(0, from, true);
  view.setUint32(4, to, true);
  view.setBigInt64(8, BigInt(amount), true);
  return args;
}

/** Opens `clientCount` raw connections to `databaseName` (all before the clock starts). */
export async function connectRawClients(
  url: string,
  databaseName: string,
  clientCount: number,
): Promise<LightconeClients> {
  const connections: RawConnection[] = [];
  try {
    for (let i = 0; i < clientCount; i++) {
      connections.push(await RawConnection.open(url, databaseName));
    }
  } catch (error) {
    for (const connection of connections) connection.close();
    throw error;
  }
  return {
    transfer(client, from, to, amount) {
      return connections[client].call("transfer", transferArgs(from, to, amount));
    },
    close() {
      for (const connection of connections) connection.close();
      return Promise.resolve();
    },
  };
}
