/**
 * Measurements for isolation tests: a witness database called at a steady pace while another
 * database misbehaves (its latency percentiles are printed, never asserted), and the test
 * process's peak RSS (the in-process server included).
 */
import { call } from "./server.ts";

export interface WitnessReport {
  calls: number;
  failures: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Calls `reducer` on `database` every `intervalMs` (one call at a time) until stopped. */
export function startWitness(
  url: string,
  database: string,
  reducer: string,
  intervalMs = 100,
): { stop(): Promise<WitnessReport> } {
  const latencies: number[] = [];
  let failures = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const response = await call(url, database, reducer, []).catch(() => undefined);
      latencies.push(performance.now() - started);
      if (response?.status !== 200) failures++;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const sorted = latencies.slice().sort((a, b) => a - b);
      const at = (q: number) =>
        Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
      return {
        calls: latencies.length,
        failures,
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        maxMs: Math.round(sorted.at(-1) ?? 0),
      };
    },
  };
}

/** Samples this process's RSS every `intervalMs` until stopped; returns the peak in MiB. */
export function sampleRss(intervalMs = 100): { stop(): number } {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, Deno.memoryUsage().rss);
      return Math.round(peak / 1024 / 1024);
    },
  };
}
