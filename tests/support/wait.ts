/**
 * Waiting in tests for a condition or an event instead of for a length of time, so that a test
 * neither fails on a slow or loaded machine nor passes by luck on a fast one. The limits here are
 * only there to turn a hang into a failure with a message: they are minutes, far beyond anything
 * the awaited condition needs when the code works.
 */

/** How long a condition that should hold "soon" may take before the test fails instead of hanging. */
export const WAIT_LIMIT_MS = 60_000;

/** Polls `condition` every `pollMs` until it holds; throws naming `what` after `limitMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  options: { limitMs?: number; pollMs?: number } = {},
): Promise<void> {
  const limitMs = options.limitMs ?? WAIT_LIMIT_MS;
  const started = performance.now();
  while (!(await condition())) {
    if (performance.now() - started > limitMs) {
      throw new Error(`Waited ${limitMs} ms for ${what}: it did not happen`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 10));
  }
}

/** Resolves with `promise`'s value, or throws naming `what` if it has not settled after `limitMs`. */
export async function within<T>(
  promise: Promise<T>,
  what: string,
  limitMs = WAIT_LIMIT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Waited ${limitMs} ms for ${what}: it did not happen`)),
      limitMs,
    );
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise's settled state, readable synchronously (for "still pending" assertions). */
export function track<T>(promise: Promise<T>): { readonly settled: boolean; promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(() => state.settled = true, () => state.settled = true);
  return state;
}

/**
 * A loopback HTTP server whose `/hold/...` requests are answered only once `release()` is called
 * (requests after that are answered at once; `hold()` closes the gate again), and whose other
 * requests are answered at once. Tests use it to keep a procedure waiting on HTTP for exactly as
 * long as they need, instead of for a fixed time that a slow machine may outlast.
 */
export function heldUpstream(): {
  port: number;
  /** Requests received so far (held ones included). */
  readonly hits: number;
  /** Requests waiting at the gate now. */
  readonly waiting: number;
  release(): void;
  hold(): void;
  close(): Promise<void>;
} {
  let hits = 0;
  let waiting = 0;
  let open = false;
  let gate = Promise.withResolvers<void>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (request) => {
      hits++;
      if (new URL(request.url).pathname.startsWith("/hold") && !open) {
        waiting++;
        try {
          await gate.promise;
        } finally {
          waiting--;
        }
      }
      return new Response("slow");
    },
  );
  return {
    port: server.addr.port,
    get hits() {
      return hits;
    },
    get waiting() {
      return waiting;
    },
    release() {
      open = true;
      gate.resolve();
    },
    hold() {
      open = false;
      gate = Promise.withResolvers<void>();
    },
    close: async () => {
      open = true;
      gate.resolve();
      await server.shutdown();
    },
  };
}
