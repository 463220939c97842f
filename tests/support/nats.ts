/**
 * A real nats-server with JetStream for tests (Debian's package, installed by
 * tests/support/install_debian.sh; a test that needs it fails without it, never skips).
 */
import { waitUntil } from "./wait.ts";

/** A running nats-server (`startNats`). */
export interface Nats {
  port: number;
  storeDir: string;
  process: Deno.ChildProcess;
}

/** A throwaway nats-server that removes its store when stopped (`startNatsServer`). */
export interface NatsServer {
  port: number;
  /** `127.0.0.1:<port>`, the form --follow / --replicate and the client take. */
  server: string;
  storeDir: string;
  stop(): Promise<void>;
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Starts nats-server with JetStream on loopback `port`, its store in `storeDir` (reuse both to
 * restart it in place); `extra`: more flags (`-c config`, `--user`/`--pass`).
 */
export async function startNats(
  port: number,
  storeDir: string,
  extra: string[] = [],
): Promise<Nats> {
  let process: Deno.ChildProcess;
  try {
    process = new Deno.Command("nats-server", {
      args: ["-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", String(port), ...extra],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        "nats-server is not installed: run tests/support/install_debian.sh (Debian package nats-server)",
      );
    }
    throw error;
  }
  // Ready once it accepts connections.
  await waitUntil(async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return false;
    }
  }, "nats-server to accept connections");
  return { port, storeDir, process };
}

export async function stopNats(nats: Nats): Promise<void> {
  nats.process.kill("SIGTERM");
  await nats.process.status;
}

/** Starts nats-server with JetStream on a free loopback port and a fresh store directory. */
export async function startNatsServer(): Promise<NatsServer> {
  const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
  const nats = await startNats(freePort(), storeDir);
  return {
    port: nats.port,
    server: `127.0.0.1:${nats.port}`,
    storeDir,
    async stop() {
      await stopNats(nats);
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    },
  };
}
