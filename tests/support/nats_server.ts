/**
 * A real nats-server with JetStream for replication tests (Debian's package; CI installs it
 * through tests/support/install_debian.sh, and a test using this fails without it).
 */
import { waitUntil } from "./wait.ts";

export interface Nats {
  port: number;
  storeDir: string;
  process: Deno.ChildProcess;
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts nats-server on `port` with its JetStream store in `storeDir`; `extra`: more flags. */
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
