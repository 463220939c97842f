// Entry started by worker/isolation_test.ts through spawnIsolatedWorker(): a process with no
// permissions, driven over its control channel.
import { armWatchdog, serveIsolated, startWatchdog } from "../isolation.ts";

async function attempt(run: () => unknown): Promise<string> {
  try {
    await run();
    return "allowed";
  } catch (error) {
    return (error as Error).name;
  }
}

async function probe(port: number): Promise<Record<string, string>> {
  const blob = (source: string) =>
    URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  return {
    read: await attempt(() => Deno.readTextFileSync("/etc/hostname")),
    readOwnCode: await attempt(() => Deno.readTextFileSync(new URL(import.meta.url))),
    write: await attempt(() => Deno.writeTextFileSync("/tmp/lightcone-isolation-probe", "x")),
    env: await attempt(() => Deno.env.get("HOME")),
    run: await attempt(() => new Deno.Command("true").output()),
    net: await attempt(() => Deno.connect({ hostname: "127.0.0.1", port })),
    // The request socket's path was granted at start (worker/isolation.ts connectToServer).
    requestSocket: await attempt(() => {
      const path = Deno.args.find((arg) => arg.startsWith("--request-socket="))?.slice(17);
      if (path === undefined) throw new Error("no request socket: the probe proves nothing");
      // Path-scoped grants read as "prompt" unless queried with their path.
      const query = Deno.permissions.querySync;
      if (query({ name: "net", host: `unix:${path}` }).state === "granted") return;
      if (query({ name: "write", path }).state === "granted") return;
      if (query({ name: "read", path }).state === "granted") return;
      throw new Deno.errors.NotCapable("socket permissions dropped");
    }),
    staticTextImport: await attempt(() =>
      import(blob('import t from "file:///etc/hostname" with { type: "text" }; export default t;'))
    ),
  };
}

await startWatchdog();
serveIsolated(async (data, port) => {
  const request = data as { op: string; value?: unknown; budgetMs?: number };
  if (request.op === "echo") port.postMessage(request.value);
  if (request.op === "probe") port.postMessage(await probe(request.value as number));
  if (request.op === "heap") {
    const hoard: number[][] = [];
    for (;;) hoard.push(new Array(100_000).fill(1.5));
  }
  if (request.op === "buffers") {
    // 64 MiB ArrayBuffers, touched so they are really resident, kept until allocation fails.
    // A 16 MiB reserve, given back (transfer(0) frees it at once) before answering, leaves room
    // to encode and write the answer at the cap: without it the answer's own allocations could
    // fail when the runtime had grown a little since the cap was set, and the process died
    // silently (seen once under load in the full suite).
    let reserve = new ArrayBuffer(16 << 20);
    new Uint8Array(reserve).fill(1);
    const hoard: Uint8Array[] = [];
    let error = "none";
    try {
      for (let i = 0; i < 64; i++) hoard.push(new Uint8Array(64 << 20).fill(1));
    } catch (caught) {
      error = `${(caught as Error).name}: ${(caught as Error).message}`;
    }
    reserve = reserve.transfer(0);
    port.postMessage({ kept: hoard.length, error });
  }
  if (request.op === "stuck-sort") {
    armWatchdog(request.budgetMs ?? 100);
    const values = new Float64Array(4_000_000);
    for (let i = 0; i < values.length; i++) values[i] = (i * 7919) % 1000003;
    for (let round = 0; round < 100; round++) {
      Array.prototype.sort.call(Array.from(values), (a: number, b: number) => a - b);
    }
    port.postMessage({ finished: true });
  }
});
