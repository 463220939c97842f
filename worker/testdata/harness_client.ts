// Test-side client for worker/testdata/sandbox_harness.ts: one sandboxed Worker, requests by id.
import type { CallOutcome, HarnessRequest, HarnessResponse } from "./sandbox_harness.ts";

export type { CallOutcome };

type Pending = (response: HarnessResponse) => void;

/** How long a test waits for the worker before failing instead of hanging (not a speed check). */
const HANG_GUARD_MS = 60_000;

// Distributes Omit over the request union.
type RequestBody<T> = T extends unknown ? Omit<T, "id"> : never;

export class SandboxHarness {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #ready: Promise<void>;

  /** `sandboxed: false` runs the harness without installing the sandbox (reference runs). */
  constructor(options: { sandboxed?: boolean } = {}) {
    const url = new URL("./sandbox_harness.ts", import.meta.url);
    if (options.sandboxed === false) url.searchParams.set("plain", "1");
    this.#worker = new Worker(url.href, {
      type: "module",
      deno: { permissions: "none" },
    });
    let resolveReady!: () => void;
    this.#ready = new Promise((resolve) => resolveReady = resolve);
    this.#worker.onmessage = (event: MessageEvent<HarnessResponse | { id: 0; op: "ready" }>) => {
      if (event.data.op === "ready") return resolveReady();
      const pending = this.#pending.get(event.data.id);
      this.#pending.delete(event.data.id);
      pending?.(event.data as HarnessResponse);
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      for (const pending of this.#pending.values()) {
        pending({ id: 0, op: "error", message: `worker error: ${event.message}` });
      }
      this.#pending.clear();
    };
  }

  async request(body: RequestBody<HarnessRequest>): Promise<HarnessResponse> {
    await this.#ready;
    const id = this.#nextId++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const response = new Promise<HarnessResponse>((resolve, reject) => {
      this.#pending.set(id, resolve);
      timer = setTimeout(
        () => reject(new Error(`Sandbox worker did not answer request ${id} (hang guard)`)),
        HANG_GUARD_MS,
      );
    });
    this.#worker.postMessage({ ...body, id });
    try {
      const result = await response;
      if (result.op === "error") throw new Error(result.message);
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs `export function run()` of the given module source under a budget. */
  async run(
    source: string,
    options: { budgetMs: number; instrument?: boolean },
  ): Promise<CallOutcome> {
    const response = await this.request({
      op: "run",
      source,
      budgetMs: options.budgetMs,
      instrument: options.instrument ?? true,
    });
    if (response.op !== "run") throw new Error(`unexpected response ${response.op}`);
    return response.outcome;
  }

  /** Runs `export function probe()` of the given (instrumented) module source. */
  async probe(source: string): Promise<{ value: unknown; error?: string }> {
    const response = await this.request({ op: "probe", source });
    if (response.op !== "probe") throw new Error(`unexpected response ${response.op}`);
    return { value: response.value, error: response.error };
  }

  close(): void {
    this.#worker.terminate();
  }
}
