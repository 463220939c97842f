/**
 * The PostgreSQL wire protocol listener (`--pg-port`, off unless given, as in SpacetimeDB
 * standalone): accepts TCP connections and runs one PgSession per connection.
 */
import { log } from "../../lib/log.ts";
import { PG_CONNECTIONS_MAX, PG_STARTUP_TIMEOUT_MS } from "../../lib/limits.ts";
import { errorResponse } from "./codec.ts";
import { type PgBackend, PgSession } from "./session.ts";

export interface PgServer {
  port: number;
  close(): Promise<void>;
}

export function startPgServer(
  options: { hostname: string; port: number; backend: PgBackend; connectionsMax?: number },
): PgServer {
  const connectionsMax = options.connectionsMax ?? PG_CONNECTIONS_MAX;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const connections = new Set<Deno.Conn>();
  const sessions = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn) => {
    if (connections.size >= connectionsMax) {
      // Answered before the startup packet, as PostgreSQL does when it is full.
      await conn.write(
        errorResponse("FATAL", "53300", `sorry, too many clients already (${connectionsMax})`),
      ).catch(() => {});
      closeQuietly(conn);
      return;
    }
    connections.add(conn);
    const timer = setTimeout(() => closeQuietly(conn), PG_STARTUP_TIMEOUT_MS);
    try {
      await new PgSession(options.backend, conn, () => clearTimeout(timer)).run();
    } catch (error) {
      log.warn("postgres wire session failed", { error: String(error) });
    } finally {
      clearTimeout(timer);
      connections.delete(conn);
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

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch { /* already closed */ }
}
