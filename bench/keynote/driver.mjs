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
  /** Transfers that timed out and have not settled yet (the drain waits for them). */
  let abandonedPending = 0;

  const startMs = now();
  const measureStartMs = startMs + warmupMs;
  const measureEndMs = measureStartMs + measureMs;
  options.onPhase?.("warmup");
  const phaseTimer = setTimeout(() => options.onPhase?.("measure"), warmupMs);

  /**
   * @param {number} from @param {number} to @param {number} sentMs @param {number} doneMs
   * @param {import("./driver.d.ts").Outcome | "timeout" | "transport"} outcome
   */
  function record(from, to, sentMs, doneMs, outcome) {
    const inWindow = doneMs >= measureStartMs && doneMs < measureEndMs;
    if (outcome === "ok") {
      ackedDelta[from] -= amount;
      ackedDelta[to] += amount;
      totalAcked++;
      if (inWindow) {
        committed++;
        histogram.record(doneMs - sentMs);
        options.trace?.(doneMs - measureStartMs, doneMs - sentMs);
        perSecond[Math.min(secondCount - 1, Math.floor((doneMs - measureStartMs) / 1000))]++;
      }
    } else {
      unknownCount[from]++;
      unknownCount[to]++;
      errorKinds[outcome]++;
      if (inWindow) errorKindsInWindow[outcome]++;
    }
  }

  /** @type {() => void} */
  let allSlotsDone = () => {};
  const slotsDone = new Promise((resolve) => allSlotsDone = () => resolve(undefined));
  let activeSlots = 0;
  /** @type {Set<Slot>} */
  const slots = new Set();

  /**
   * One in-flight slot: send, wait for the outcome, send the next pair. A small state machine on
   * the send's own promise, with its two callbacks made once per slot, so a transfer costs the
   * driver no promise, closure or timer of its own (at 100k transfers/s the earlier async loop with
   * a promise per call was ~10 % of the client thread). A transfer that outlives `timeoutMs` is
   * counted as a timeout by the sweeper, which abandons its slot (a late outcome is ignored) and
   * continues the sequence on a fresh slot.
   */
  class Slot {
    /** @param {number} client @param {number} cursor */
    constructor(client, cursor) {
      this.client = client;
      this.cursor = cursor;
      this.from = 0;
      this.to = 0;
      this.sentMs = 0;
      this.deadlineMs = Infinity;
      this.abandoned = false;
      /** @param {import("./driver.d.ts").Outcome} value */
      this.onValue = (value) => this.settle(value);
      /** @param {unknown} error */
      this.onError = (error) => {
        firstError ??= error instanceof Error ? error.message : String(error);
        this.settle("transport");
      };
      slots.add(this);
    }

    /** @param {number} clockMs */
    send(clockMs) {
      if (clockMs >= measureEndMs) {
        slots.delete(this);
        if (--activeSlots === 0) allSlotsDone();
        return;
      }
      const cursor = this.cursor;
      this.from = pairs.from[cursor];
      this.to = pairs.to[cursor];
      this.cursor = cursor + 1 === pairCount ? 0 : cursor + 1;
      this.sentMs = clockMs;
      this.deadlineMs = clockMs + timeoutMs;
      totalSent++;
      let promise;
      try {
        promise = options.send(this.client, this.from, this.to, amount);
      } catch (error) {
        this.onError(error);
        return;
      }
      promise.then(this.onValue, this.onError);
    }

    /** @param {import("./driver.d.ts").Outcome | "transport"} outcome */
    settle(outcome) {
      if (this.abandoned) {
        abandonedPending--;
        return;
      }
      const doneMs = now();
      record(this.from, this.to, this.sentMs, doneMs, outcome);
      // A failed transfer answers at once; do not spin on a broken server.
      if (outcome === "transport" || outcome === "failed") {
        setTimeout(() => this.send(now()), 1);
      } else {
        this.send(doneMs);
      }
    }
  }

  const sweepEveryMs = Math.max(10, Math.min(250, timeoutMs / 4));
  const sweeper = setInterval(() => {
    const nowMs = now();
    for (const slot of slots) {
      if (slot.deadlineMs > nowMs) continue;
      slot.abandoned = true;
      slots.delete(slot);
      abandonedPending++;
      record(slot.from, slot.to, slot.sentMs, nowMs, "timeout");
      new Slot(slot.client, slot.cursor).send(nowMs);
    }
  }, sweepEveryMs);

  const firstSlots = [];
  for (let client = 0; client < clientCount; client++) {
    for (let index = 0; index < inflightPerClient; index++) {
      const cursor = Math.floor(
        ((client * inflightPerClient + index) * pairCount) / (clientCount * inflightPerClient),
      );
      firstSlots.push(new Slot(client, cursor));
    }
  }
  activeSlots = firstSlots.length;
  const firstClockMs = now();
  for (const slot of firstSlots) slot.send(firstClockMs);
  await slotsDone;
  clearInterval(sweeper);
  clearTimeout(phaseTimer);
  options.onPhase?.("drain");
  const drainDeadlineMs = now() + drainMs;
  while (abandonedPending > 0 && now() < drainDeadlineMs) await sleep(20);
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
    undrained: abandonedPending,
    ackedDelta,
    unknownCount,
  };
}
