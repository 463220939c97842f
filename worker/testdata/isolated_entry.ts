// Entry started by worker/isolation_test.ts through spawnIsolatedWorker().
import { dropLoadPermissions, serveIsolated } from "../isolation.ts";
import { isBudgetExceededError } from "../budget.ts";
import { installRunawayProtection, type RunawayProtection } from "../sandbox_globals.ts";

let protection: RunawayProtection | undefined;
const setTimeoutFn = setTimeout;

async function attempt(run: () => unknown): Promise<string> {
  try {
    await run();
    return "allowed";
  } catch (error) {
    return (error as Error).name;
  }
}

async function probe(): Promise<Record<string, string>> {
  const blob = (source: string) =>
    URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  return {
    read: await attempt(() => Deno.readTextFileSync("/etc/hostname")),
    readOwnCode: await attempt(() => Deno.readTextFileSync(new URL(import.meta.url))),
    write: await attempt(() => Deno.writeTextFileSync("/tmp/lightcone-isolation-probe", "x")),
    env: await attempt(() => Deno.env.get("HOME")),
    run: await attempt(() => new Deno.Command("true").output()),
    net: await attempt(() => Deno.connect({ hostname: "127.0.0.1", port: 9 })),
    staticTextImport: await attempt(() =>
      import(blob('import t from "file:///etc/hostname" with { type: "text" }; export default t;'))
    ),
  };
}

serveIsolated(async (data, port) => {
  const request = data as { op: string; value?: unknown };
  if (request.op === "echo") port.postMessage(request.value);
  if (request.op === "probe") port.postMessage(await probe());
  if (request.op === "sandbox") {
    protection ??= installRunawayProtection({
      clock: { monotonicMs: () => performance.now() },
      ambientBudgetMs: 100,
      scheduleReset: (callback) => setTimeoutFn(callback, 0),
    });
    protection.budget.start(50);
    let outcome = "returned";
    try {
      Function("for(;;){}")();
    } catch (error) {
      outcome = isBudgetExceededError(error) ? "BudgetExceededError" : String(error);
    } finally {
      protection.budget.stop();
    }
    port.postMessage({ outcome, deno: typeof globalThis.Deno });
  }
  if (request.op === "oom") {
    const hoard: number[][] = [];
    for (;;) hoard.push(new Array(100_000).fill(1.5));
  }
});
dropLoadPermissions();
