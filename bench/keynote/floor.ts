/**
 * The floor under bench:tail: the keynote load shape (`clients` WebSocket connections, N messages
 * outstanding on each, the next sent when one is answered) against a server that does nothing
 * (bench/keynote/floor_server.ts: `echo`, `relay` through a child process, `durable` relay plus a
 * storage worker's group-committed fdatasync). What these read on a machine is what its
 * scheduler, loopback and disk give before any database work: a tail goal a do-nothing server
 * misses there cannot be met by a database on the same machine. The load is raw WebSocket
 * messages of the size of a transfer call (cheaper for the client than the SDK, so the floor is if
 * anything optimistic).
 *
 * `deno task bench:tail --variants update,append,echo,relay,durable` runs these beside Lightcone's
 * rows; alone: `deno run -A bench/keynote/floor.ts [--inflight 1,5] [--modes echo,relay,durable]
 * [--warmup-s 3] [--measure-s 8] [--clients 64]` (prints the table, appends nothing).
 */
import { parseArgs } from "node:util";
import { percentile } from "../ws_bench.ts";
import { startCpuSample } from "./proc_cpu.mjs";
import type { SystemResult } from "./types.ts";

export const FLOOR_MODES = ["echo", "relay", "durable"] as const;
export type FloorMode = typeof FLOOR_MODES[number];

export interface FloorRun {
  mode: FloorMode;
  clientCount: number;
  inflightPerClient: number;
  warmupMs: number;
  measureMs: number;
  /** A directory for the server's socket and log file (removed by the caller). */
  workDir: string;
}

/** Size of a keynote `transfer` CallReducer message (request id, name, two u32 and an i64). */
const MESSAGE_BYTES = 48;
const START_TIMEOUT_MS = 15_000;
const NO_ERRORS = { refused: 0, failed: 0, timeout: 0, transport: 0 };

async function startServer(mode: FloorMode, workDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./floor_server.ts", import.meta.url).pathname, mode, workDir],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), START_TIMEOUT_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the ${mode} floor server exited before listening`);
      text += value;
      const match = /listening (\d+)/.exec(text);
      if (match) return { child, port: Number(match[1]) };
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

async function openSockets(port: number, count: number): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
    socket.binaryType = "arraybuffer";
    sockets.push(socket);
  }
  await Promise.all(sockets.map((socket) =>
    new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("a floor connection failed"));
    })
  ));
  return sockets;
}

/** One measured run of the load against a fresh floor server. */
export async function runFloor(run: FloorRun): Promise<SystemResult> {
  const { child, port } = await startServer(run.mode, run.workDir);
  const latencies: number[] = [];
  let measuring = false;
  let stopped = false;
  let sent = 0;
  let acked = 0;
  let cpu: SystemResult["cpu"] = null;
  try {
    const sockets = await openSockets(port, run.clientCount);
    const message = new Uint8Array(MESSAGE_BYTES);
    for (const socket of sockets) {
      const sentAt: number[] = [];
      const send = () => {
        sentAt.push(performance.now());
        sent++;
        socket.send(message);
      };
      socket.onmessage = () => {
        const started = sentAt.shift()!;
        acked++;
        if (measuring) latencies.push(performance.now() - started);
        if (!stopped) send();
      };
      for (let i = 0; i < run.inflightPerClient; i++) send();
    }
    await new Promise((resolve) => setTimeout(resolve, run.warmupMs));
    const sample = startCpuSample({ client: Deno.pid, server: child.pid });
    measuring = true;
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, run.measureMs));
    measuring = false;
    const measuredMs = performance.now() - started;
    cpu = sample.stop();
    stopped = true;
    for (const socket of sockets) socket.close();
    const row = {
      systemKey: `floor-${run.mode}`,
      systemName: `floor: ${run.mode}`,
      alpha: 0,
      mode: run.inflightPerClient === 1 ? "closed" as const : "pipelined" as const,
      clientCount: run.clientCount,
      inflightPerClient: run.inflightPerClient,
    };
    if (latencies.length === 0) {
      return {
        ...row,
        status: "failed",
        reason: `the ${run.mode} floor server answered nothing in the window (${acked} of ${sent})`,
      };
    }
    const sorted = Float64Array.from(latencies).sort() as unknown as number[];
    const sum = latencies.reduce((total, value) => total + value, 0);
    return {
      ...row,
      status: "ok",
      cpu,
      load: {
        committed: latencies.length,
        errors: 0,
        errorKinds: { ...NO_ERRORS },
        totalErrorKinds: { ...NO_ERRORS },
        tps: latencies.length / (measuredMs / 1000),
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        p999Ms: percentile(sorted, 0.999),
        maxMs: sorted[sorted.length - 1] ?? NaN,
        meanMs: latencies.length ? sum / latencies.length : NaN,
        perSecondTps: [],
        measuredMs,
        totalSent: sent,
        totalAcked: acked,
        undrained: sent - acked,
      },
    };
  } finally {
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
    await child.status;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      inflight: { type: "string", default: "1,5" },
      modes: { type: "string", default: FLOOR_MODES.join(",") },
      "warmup-s": { type: "string", default: "3" },
      "measure-s": { type: "string", default: "8" },
      clients: { type: "string", default: "64" },
    },
    strict: true,
  });
  const modes = values.modes.split(",").map((text) => {
    if (!(FLOOR_MODES as readonly string[]).includes(text)) {
      throw new RangeError(`--modes takes ${FLOOR_MODES.join(", ")}, got '${text}'`);
    }
    return text as FloorMode;
  });
  console.log(
    "| server | clients × in flight | per s | p50 ms | p99 ms | p999 ms | max ms | p99 ÷ p50 |",
  );
  console.log("| --- | --- | --: | --: | --: | --: | --: | --: |");
  for (const inflight of values.inflight.split(",").map(Number)) {
    for (const mode of modes) {
      const workDir = await Deno.makeTempDir({ prefix: "keynote-floor-" });
      try {
        const result = await runFloor({
          mode,
          clientCount: Number(values.clients),
          inflightPerClient: inflight,
          warmupMs: Number(values["warmup-s"]) * 1000,
          measureMs: Number(values["measure-s"]) * 1000,
          workDir,
        });
        const load = result.load;
        if (result.status !== "ok" || !load) throw new Error(result.reason ?? "the run failed");
        console.log(
          `| ${mode} | ${result.clientCount} × ${inflight} | ${Math.round(load.tps)} | ${
            load.p50Ms.toFixed(2)
          } | ${load.p99Ms.toFixed(2)} | ${load.p999Ms.toFixed(2)} | ${load.maxMs.toFixed(2)} | ${
            (load.p99Ms / load.p50Ms).toFixed(1)
          } |`,
        );
      } finally {
        await Deno.remove(workDir, { recursive: true }).catch(() => {});
      }
    }
  }
}
