/**
 * The PostgreSQL wire protocol listener (`--pg-port`, off unless given, as in SpacetimeDB
 * standalone): accepts TCP connections and runs one PgSession per connection.
 */
import { log } from "../../lib/log.ts";
import {
  PG_CONNECTIONS_MAX,
  PG_CONNECTIONS_PER_ADDRESS_MAX,
  PG_IDLE_TIMEOUT_S_DEFAULT,
  PG_STARTUP_TIMEOUT_MS,
} from "../../lib/limits.ts";
import { errorResponse } from "./codec.ts";
import { type PgBackend, PgSession } from "./session.ts";

export interface PgServer {
  port: number;
  close(): Promise<void>;
}

export function startPgServer(
  options: {
    hostname: string;
    port: number;
    backend: PgBackend;
    connectionsMax?: number;
    /** Connections one client address may hold (`--pg-connections-per-address`). */
    connectionsPerAddressMax?: number;
    /** Seconds an authenticated session may wait for its client's next message; 0 = never. */
    idleTimeoutS?: number;
  },
): PgServer {
  const connectionsMax = options.connectionsMax ?? PG_CONNECTIONS_MAX;
  const perAddressMax = options.connectionsPerAddressMax ?? PG_CONNECTIONS_PER_ADDRESS_MAX;
  const idleTimeoutS = options.idleTimeoutS ?? PG_IDLE_TIMEOUT_S_DEFAULT;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const connections = new Set<Deno.Conn>();
  /** Open connections per peer address (no proxy headers here: the TCP peer is the client). */
  const perAddress = new Map<string, number>();
  const sessions = new Set<Promise<void>>();
  const refuse = async (conn: Deno.Conn, code: string, message: string) => {
    // Answered before the startup packet, as PostgreSQL does when it is full.
    await conn.write(errorResponse("FATAL", code, message)).catch(() => {});
    closeQuietly(conn);
  };
  const serve = async (conn: Deno.Conn) => {
    if (connections.size >= connectionsMax) {
      return await refuse(conn, "53300", `sorry, too many clients already (${connectionsMax})`);
    }
    const address = (conn.remoteAddr as Deno.NetAddr).hostname ?? "";
    const held = perAddress.get(address) ?? 0;
    if (held >= perAddressMax) {
      return await refuse(
        conn,
        "53300",
        `sorry, too many connections from this address already (${perAddressMax}; ` +
          "--pg-connections-per-address)",
      );
    }
    perAddress.set(address, held + 1);
    connections.add(conn);
    const timer = setTimeout(() => closeQuietly(conn), PG_STARTUP_TIMEOUT_MS);
    const idle = idleTimeoutS > 0 ? idleGuard(conn, idleTimeoutS) : undefined;
    try {
      await new PgSession(options.backend, idle?.transport ?? conn, () => {
        clearTimeout(timer);
        idle?.arm();
      }).run();
    } catch (error) {
      if (!idle?.fired) log.warn("postgres wire session failed", { error: String(error) });
    } finally {
      clearTimeout(timer);
      idle?.disarm();
      connections.delete(conn);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
      closeQuietly(conn);
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const session = serve(conn);
        sessions.add(session);
        session.finally(() => sessions.delete(session));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) {
        log.error("postgres wire listener failed", { error: String(error) });
      }
    }
  })();
  const address = listener.addr as Deno.NetAddr;
  log.info("postgres wire protocol listening", { hostname: address.hostname, port: address.port });
  return {
    port: address.port,
    async close() {
      closeQuietly(listener);
      for (const conn of connections) closeQuietly(conn);
      await accepting;
      await Promise.allSettled([...sessions]);
    },
  };
}

/**
 * Ends an authenticated session whose client sends nothing for `idleTimeoutS` while the session
 * waits for it (not while a statement runs): anonymous tokens are free, so without this one
 * client could hold every connection for good. The client is told with SQLSTATE 57P05, as
 * PostgreSQL's `idle_session_timeout` does.
 */
function idleGuard(conn: Deno.Conn, idleTimeoutS: number) {
  let armed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = {
    fired: false,
    arm() {
      armed = true;
    },
    disarm() {
      armed = false;
      clearTimeout(timer);
    },
    transport: {
      read: async (buffer: Uint8Array): Promise<number | null> => {
        if (armed) {
          clearTimeout(timer);
          timer = setTimeout(() => {
            guard.fired = true;
            void conn.write(errorResponse(
              "FATAL",
              "57P05",
              `terminating connection due to idle-session timeout (${idleTimeoutS} s; ` +
                "--pg-idle-timeout-s)",
            )).catch(() => {}).finally(() => closeQuietly(conn));
          }, idleTimeoutS * 1000);
        }
        try {
          return await conn.read(buffer);
        } finally {
          clearTimeout(timer);
        }
      },
      write: (bytes: Uint8Array): Promise<number> => conn.write(bytes),
    },
  };
  return guard;
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch { /* already closed */ }
}
