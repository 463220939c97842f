/**
 * The client side of the client matrix: a chat client written against the official
 * `spacetimedb` SDK and the hand-written bindings in tests/fixtures/bindings/chat,
 * driven by named operations with JSON arguments and results. The same file is
 * bundled (esbuild, see support.ts) for Node.js and for a browser page, each time with
 * `spacetimedb` aliased to one SDK version, so every runtime runs the same client.
 */
import { DbConnection } from "../fixtures/bindings/chat/index.ts";

/** The first byte of a server frame (its compression tag) and the compression asked for. */
export interface FrameRecord {
  compression: string;
  tag: number;
}

const frames: FrameRecord[] = [];

/** Every frame recorded so far by tapWebSocketFrames. */
export function recordedFrames(): FrameRecord[] {
  return [...frames];
}

interface WebSocketPrototypeOwner {
  prototype: object;
}

/**
 * Records the compression tag of every binary frame a WebSocket of `socketClass`
 * delivers through `onmessage` (which is how the SDK listens), before the SDK sees
 * it. Works for the browser's WebSocket and undici's (Node's global WebSocket).
 */
export function tapWebSocketFrames(socketClass: WebSocketPrototypeOwner): void {
  const descriptor = Object.getOwnPropertyDescriptor(socketClass.prototype, "onmessage");
  if (!descriptor?.set || !descriptor.get) {
    throw new Error("Cannot tap WebSocket frames: no onmessage accessor on the prototype");
  }
  const { get, set } = descriptor;
  Object.defineProperty(socketClass.prototype, "onmessage", {
    configurable: true,
    enumerable: descriptor.enumerable,
    get,
    set(this: { url: string }, handler: ((event: MessageEvent) => unknown) | null) {
      if (typeof handler !== "function") return set.call(this, handler);
      const compression = new URL(this.url).searchParams.get("compression") ?? "(none asked)";
      set.call(this, function (this: unknown, event: MessageEvent) {
        if (event.data instanceof ArrayBuffer) {
          frames.push({ compression, tag: new Uint8Array(event.data)[0] });
        }
        return handler.call(this, event);
      });
    },
  });
}

interface Entry {
  conn: DbConnection;
  identity: string;
  token: string;
  events: string[];
  disconnected: boolean;
  disconnectError?: string;
}

type Args = Record<string, unknown>;

function text(value: unknown): string {
  if (value instanceof Error) return value.message;
  // WebSocket error events (browser, ws) are not Errors but may carry a message.
  const message = (value as { message?: unknown } | null)?.message;
  if (typeof message === "string" && message !== "") return message;
  if (typeof value === "object" && value !== null) return `${value.constructor?.name} event`;
  return String(value);
}

/** One runtime's set of named chat connections. */
export class ChatDriver {
  #entries = new Map<string, Entry>();

  #entry(name: unknown): Entry {
    const entry = this.#entries.get(String(name));
    if (!entry) throw new Error(`No connection named "${String(name)}"`);
    return entry;
  }

  /** Runs one operation; results are plain JSON values. */
  run(op: string, args: Args = {}): Promise<unknown> {
    switch (op) {
      case "connect":
        return this.#connect(args);
      case "subscribe":
        return this.#subscribe(args);
      case "watch":
        return Promise.resolve(this.#watch(args));
      case "call":
        return this.#call(args);
      case "messages":
        return Promise.resolve(
          [...this.#entry(args.name).conn.db.message.iter()]
            .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
            .map((row) => ({
              id: String(row.id),
              text: row.text,
              sender: row.sender.toHexString(),
            })),
        );
      case "users":
        return Promise.resolve(
          [...this.#entry(args.name).conn.db.user.iter()].map((row) => ({
            identity: row.identity.toHexString(),
            name: row.name ?? null,
            online: row.online,
          })),
        );
      case "events":
        return Promise.resolve([...this.#entry(args.name).events]);
      case "status": {
        const entry = this.#entry(args.name);
        return Promise.resolve({
          active: entry.conn.isActive,
          disconnected: entry.disconnected,
          disconnectError: entry.disconnectError ?? null,
        });
      }
      case "disconnect":
        this.#entry(args.name).conn.disconnect();
        return Promise.resolve(null);
      case "frames":
        return Promise.resolve(recordedFrames());
      default:
        return Promise.reject(new Error(`Unknown driver operation "${op}"`));
    }
  }

  #connect(args: Args): Promise<{ identity: string; token: string }> {
    const name = String(args.name);
    const token = typeof args.token === "string" ? args.token : undefined;
    return new Promise((resolve, reject) => {
      let builder = DbConnection.builder()
        .withUri(String(args.url).replace(/^http/, "ws"))
        .withDatabaseName(String(args.database ?? "chat"))
        .withToken(token);
      if (args.compression === "gzip" || args.compression === "none") {
        builder = builder.withCompression(args.compression);
      }
      builder
        .onConnect((conn, identity, issued) => {
          const entry: Entry = {
            conn,
            identity: identity.toHexString(),
            token: issued,
            events: [],
            disconnected: false,
          };
          this.#entries.set(name, entry);
          resolve({ identity: entry.identity, token: issued });
        })
        .onConnectError((_ctx, error) => reject(new Error(`connect failed: ${text(error)}`)))
        .onDisconnect((_ctx, error) => {
          const entry = this.#entries.get(name);
          if (!entry) return;
          entry.disconnected = true;
          if (error) entry.disconnectError = text(error);
        })
        .build();
    });
  }

  #subscribe(args: Args): Promise<{ users: number; messages: number }> {
    const { conn } = this.#entry(args.name);
    const queries = (args.queries as string[] | undefined) ??
      ["SELECT * FROM user", "SELECT * FROM message"];
    return new Promise((resolve, reject) => {
      conn.subscriptionBuilder()
        .onApplied(() =>
          resolve({
            users: Number(conn.db.user.count()),
            messages: Number(conn.db.message.count()),
          })
        )
        .onError((ctx) => reject(new Error(`subscription failed: ${text(ctx.event)}`)))
        .subscribe(queries);
    });
  }

  /** Records message inserts/updates/deletes and user updates as readable strings. */
  #watch(args: Args): null {
    const { conn, events } = this.#entry(args.name);
    conn.db.message.onInsert((_ctx, row) => events.push(`insert ${row.text}`));
    conn.db.message.onUpdate((_ctx, before, after) =>
      events.push(`update ${before.text}->${after.text}`)
    );
    conn.db.message.onDelete((_ctx, row) => events.push(`delete ${row.text}`));
    conn.db.user.onUpdate((_ctx, _before, after) =>
      events.push(`user ${after.name ?? "-"} ${after.online ? "online" : "offline"}`)
    );
    return null;
  }

  async #call(args: Args): Promise<{ ok: true } | { ok: false; error: string }> {
    const { conn } = this.#entry(args.name);
    const input = (args.args ?? {}) as Record<string, unknown>;
    const calls: Record<string, () => Promise<void>> = {
      setName: () => conn.reducers.setName({ name: String(input.name) }),
      sendMessage: () => conn.reducers.sendMessage({ text: String(input.text) }),
      editMessage: () =>
        conn.reducers.editMessage({ id: BigInt(String(input.id)), text: String(input.text) }),
      sendThenFail: () => conn.reducers.sendThenFail({ text: String(input.text) }),
    };
    const invoke = calls[String(args.reducer)];
    if (!invoke) throw new TypeError(`Unknown reducer "${String(args.reducer)}"`);
    try {
      await invoke();
      return { ok: true };
    } catch (error) {
      return { ok: false, error: text(error) };
    }
  }
}
