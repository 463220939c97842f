/**
 * A throwaway nats-server with JetStream for tests (Debian's package, installed by
 * tests/support/install_debian.sh; a test that needs it fails without it, never skips).
 */
import { waitUntil } from "./wait.ts";

export interface NatsServer {
  port: number;
  /** `127.0.0.1:<port>`, the form --follow / --replicate and the client take. */
  server: string;
  storeDir: string;
  stop(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts nats-server with JetStream on a free loopback port and a fresh store directory. */
export async function startNatsServer(): Promise<NatsServer> {
  const port = freePort();
  const storeDir = await Deno.makeTempDir({ prefix: "lightcone-nats-" });
  let process: Deno.ChildProcess;
  try {
    process = new Deno.Command("nats-server", {
      args: ["-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", String(port)],
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
  await waitUntil(async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return false;
    }
  }, "nats-server to accept connections");
  return {
    port,
    server: `127.0.0.1:${port}`,
    storeDir,
    async stop() {
      process.kill("SIGTERM");
      await process.status;
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    },
  };
}
