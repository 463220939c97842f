// @ts-self-types="./driver.d.ts"
/**
 * The keynote load driver, shared by every system so they are measured the same way: the Node
 * HTTP client for the baselines (http_load.mjs) and the Deno SDK client for Lightcone
 * (lightcone_side.ts). Plain JavaScript because Node 20 cannot run TypeScript; types are in
 * driver.d.ts.
 *
 * Model (as keynote-2): `clientCount` clients, each keeping up to `inflightPerClient` transfers
 * outstanding (1 = closed loop). Each in-flight slot is a loop: send, await the outcome, send the
 * next pair. A warm-up runs first; only transfers that complete inside the measured window count
 * toward TPS and latency. When the window ends no new transfer is sent and every outstanding one is
 * awaited (drained), so the balance check afterwards sees a settled database.
 *
 * Every acknowledged transfer (warm-up included) is added to `ackedDelta`; every transfer whose
 * outcome is not an acknowledgement increments `unknownCount` for both accounts, because a
 * timed-out or failed request may or may not have been applied.
 */

/** Log-bucketed latency histogram: about 0.5 % relative error, microseconds to minutes. */
const BUCKET_RATIO = 1.01;
const LOG_RATIO = Math.log(BUCKET_RATIO);
const BUCKET_COUNT = Math.ceil(Math.log(600e6) / LOG_RATIO) + 2; // up to 600 s in µs

export class LatencyHistogram {
  #counts = new Float64Array(BUCKET_COUNT);
  #count = 0;
  #maxMs = 0;
  #sumMs = 0;

  /** @param {number} ms */
  record(ms) {
    const micros = Math.max(1, ms * 1000);
    const index = Math.min(BUCKET_COUNT - 1, Math.ceil(Math.log(micros) / LOG_RATIO));
    this.#counts[index]++;
    this.#count++;
    this.#sumMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
  }

  get count() {
    return this.#count;
  }

  get maxMs() {
    return this.#maxMs;
  }

  get meanMs() {
    return this.#count === 0 ? 0 : this.#sumMs / this.#count;
  }

  /**
   * The latency at quantile `q` (0 < q <= 1), in ms; 0 when empty.
   * @param {number} q
   */
  quantileMs(q) {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        // Bucket i holds (ratio^(i-1), ratio^i] µs; report its geometric middle, capped by max.
        const micros = Math.pow(BUCKET_RATIO, i - 0.5);
        return Math.min(this.#maxMs, micros / 1000);
      }
    }
    return this.#maxMs;
  }
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const TIMED_OUT = Symbol("timed out");

/**
 * @param {import("./driver.d.ts").LoadOptions} options
 * @returns {Promise<import("./driver.d.ts").LoadResult>}
 */
export async function runLoad(options) {
  const { pairs, clientCount, inflightPerClient, warmupMs, measureMs, accountCount } = options;
  const amount = options.amount ?? 1;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const drainMs = options.drainMs ?? timeoutMs + 5_000;
  const now = options.now ?? (() => performance.now());
  const pairCount = pairs.from.length;
  if (pairCount === 0) throw new RangeError("Load needs at least one pair");
  if (!(clientCount >= 1 && inflightPerClient >= 1)) {
    throw new RangeError(
      `Load needs clients and in-flight >= 1, got '${clientCount}', '${inflightPerClient}'`,
    );
  }

  const histogram = new LatencyHistogram();
  const secondCount = Math.max(1, Math.ceil(measureMs / 1000));
  const perSecond = new Float64Array(secondCount);
  const ackedDelta = new Int32Array(accountCount);
  const unknownCount = new Int32Array(accountCount);
  const errorKinds = { refused: 0, failed: 0, timeout: 0, transport: 0 };
  const errorKindsInWindow = { refused: 0, failed: 0, timeout: 0, transport: 0 };
  /** @type {string | undefined} */
  let firstError;
  let committed = 0;
  let totalAcked = 0;
  let totalSent = 0;
  /** @type {Set<Promise<unknown>>} */
  const abandoned = new Set();

  const startMs = now();
  const measureStartMs = startMs + warmupMs;
  const measureEndMs = measureStartMs + measureMs;
  options.onPhase?.("warmup");
  const phaseTimer = setTimeout(() => options.onPhase?.("measure"), warmupMs);

  /**
   * Per-call timeouts without a timer per call (a timer per call cost the client ~10 % of its CPU
   * at 60k calls/s): every in-flight call is registered with its deadline, and one sweeper timer
   * resolves the ones that outlive `timeoutMs` as timed out. A call that answers after its timeout
   * is kept in `abandoned` until it settles, so the drain waits for it.
   */
  /** @type {Set<{ deadlineMs: number, settle: (value: unknown) => void, promise: Promise<unknown> }>} */
  const inFlight = new Set();
  const sweepEveryMs = Math.max(10, Math.min(250, timeoutMs / 4));
  const sweeper = setInterval(() => {
    const nowMs = now();
    for (const call of inFlight) {
      if (call.deadlineMs > nowMs) continue;
      inFlight.delete(call);
      const settled = call.promise.catch(() => {}).finally(() => abandoned.delete(settled));
      abandoned.add(settled);
      call.settle(TIMED_OUT);
    }
  }, sweepEveryMs);

  /**
   * @param {Promise<import("./driver.d.ts").Outcome>} promise
   * @param {number} sentMs
   * @returns {Promise<import("./driver.d.ts").Outcome | typeof TIMED_OUT>}
   */
  function withTimeout(promise, sentMs) {
    return new Promise((resolve, reject) => {
      const call = { deadlineMs: sentMs + timeoutMs, settle: resolve, promise };
      inFlight.add(call);
      promise.then(
        (value) => {
          if (inFlight.delete(call)) resolve(value);
        },
        (error) => {
          if (inFlight.delete(call)) reject(error);
        },
      );
    });
  }

  /** @param {number} client @param {number} slot */
  async function slotLoop(client, slot) {
    let cursor = Math.floor(
      ((client * inflightPerClient + slot) * pairCount) /
        (clientCount * inflightPerClient),
    );
    // One clock read per transfer: the time a transfer completed is when the next one is sent.
    let clockMs = now();
    while (clockMs < measureEndMs) {
      const from = pairs.from[cursor];
      const to = pairs.to[cursor];
      cursor = cursor + 1 === pairCount ? 0 : cursor + 1;
      const sentMs = clockMs;
      totalSent++;
      /** @type {import("./driver.d.ts").Outcome | "timeout" | "transport"} */
      let outcome;
      try {
        const value = await withTimeout(options.send(client, from, to, amount), sentMs);
        outcome = value === TIMED_OUT ? "timeout" : value;
      } catch (error) {
        outcome = "transport";
        firstError ??= error instanceof Error ? error.message : String(error);
      }
      const doneMs = now();
      clockMs = doneMs;
      const inWindow = doneMs >= measureStartMs && doneMs < measureEndMs;
      if (outcome === "ok") {
        ackedDelta[from] -= amount;
        ackedDelta[to] += amount;
        totalAcked++;
        if (inWindow) {
          committed++;
          histogram.record(doneMs - sentMs);
          perSecond[Math.min(secondCount - 1, Math.floor((doneMs - measureStartMs) / 1000))]++;
        }
      } else {
        unknownCount[from]++;
        unknownCount[to]++;
        errorKinds[outcome]++;
        if (inWindow) errorKindsInWindow[outcome]++;
        // A refused or failed transfer answers at once; do not spin on a broken server.
        if (outcome === "transport" || outcome === "failed") {
          await sleep(1);
          clockMs = now();
        }
      }
    }
  }

  const loops = [];
  for (let client = 0; client < clientCount; client++) {
    for (let slot = 0; slot < inflightPerClient; slot++) loops.push(slotLoop(client, slot));
  }
  await Promise.all(loops);
  clearInterval(sweeper);
  clearTimeout(phaseTimer);
  options.onPhase?.("drain");
  const drainDeadlineMs = now() + drainMs;
  while (abandoned.size > 0 && now() < drainDeadlineMs) await sleep(20);
  const measuredMs = Math.max(1, Math.min(now(), measureEndMs) - measureStartMs);
  const errorsInWindow = errorKindsInWindow.refused + errorKindsInWindow.failed +
    errorKindsInWindow.timeout + errorKindsInWindow.transport;
  return {
    committed,
    errors: errorsInWindow,
    errorKinds: errorKindsInWindow,
    totalErrorKinds: errorKinds,
    firstError,
    tps: committed / (measuredMs / 1000),
    p50Ms: histogram.quantileMs(0.5),
    p99Ms: histogram.quantileMs(0.99),
    p999Ms: histogram.quantileMs(0.999),
    maxMs: histogram.maxMs,
    meanMs: histogram.meanMs,
    perSecondTps: Array.from(perSecond),
    measuredMs,
    totalSent,
    totalAcked,
    undrained: abandoned.size,
    ackedDelta,
    unknownCount,
  };
}
