/**
 * The front door under attack (issue 15): requests that announce a large body and never send it
 * cost a bounded amount of memory, are answered once the body timeout passes, and an innocent
 * database on the same server keeps answering meanwhile.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { HTTP_BODY_BYTES_MAX, MODULE_BYTES_MAX } from "../../lib/limits.ts";
import { call, fixtureBundle, publish, startServerProcess } from "../support/server.ts";

const CONNECTIONS = 1000;
/** One in ten announces a module on the publish route, the rest reducer arguments. */
const PUBLISH_EVERY = 10;
const BODY_TIMEOUT_MS = 3000;
/** How long after the body timeout every request must have been answered. */
const ANSWER_SLACK_MS = 60_000;
/** Old main pinned 16-33 MB per such request; the streaming reader ~0.1 MB. */
const GROWTH_BYTES_PER_CONNECTION_MAX = 512 * 1024;
/** Stop the attack early (and fail) rather than take the machine down. */
const GROWTH_BYTES_ABORT = 3 * 1024 * 1024 * 1024;

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Reads until the peer closes or a whole status line arrived; resolves with the status (0: none). */
async function statusOf(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(1024);
  let text = "";
  while (!text.includes("\r\n")) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

Deno.test({
  name:
    "1,000 requests announcing a large body they never send: bounded RSS, 408s, witness answers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startServerProcess({
      args: ["--http-body-timeout-ms", String(BODY_TIMEOUT_MS)],
    });
    const conns: Deno.Conn[] = [];
    let witnessRunning = true;
    try {
      const bundle = await fixtureBundle("runaway");
      await publish(server.url, "witness", bundle);
      await publish(server.url, "target", bundle);
      const port = Number(new URL(server.url).port);
      const pid = server.child.pid;
      // Warm up the call path so the baseline includes it.
      for (let i = 0; i < 5; i++) await call(server.url, "target", "bump", []);
      const baseline = rssBytes(pid);

      const witnessMs: number[] = [];
      const witnessFailures: string[] = [];
      const witness = (async () => {
        while (witnessRunning) {
          const started = performance.now();
          const reply = await call(server.url, "witness", "bump", []);
          witnessMs.push(performance.now() - started);
          if (reply.status !== 200) witnessFailures.push(`${reply.status} ${reply.text}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();

      let peak = baseline;
      const sample = () => {
        peak = Math.max(peak, rssBytes(pid));
        if (peak - baseline > GROWTH_BYTES_ABORT) {
          throw new Error(`RSS grew by ${mb(peak - baseline)}: attack stopped`);
        }
      };
      const started = performance.now();
      const answers: Promise<number>[] = [];
      for (let i = 0; i < CONNECTIONS; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        const head = i % PUBLISH_EVERY === 0
          ? `PUT /v1/database/attack-${i}?host_type=Js HTTP/1.1\r\nhost: x\r\n` +
            `content-length: ${MODULE_BYTES_MAX}\r\n\r\n`
          : `POST /v1/database/target/call/bump HTTP/1.1\r\nhost: x\r\n` +
            `content-type: application/json\r\ncontent-length: ${HTTP_BODY_BYTES_MAX}\r\n\r\n`;
        await conn.write(new TextEncoder().encode(head));
        answers.push(statusOf(conn));
        if (i % 100 === 99) sample();
      }
      const sentMs = performance.now() - started;
      // Every request must be answered soon after the body timeout; a server that never
      // answers (or grows without bound) fails here instead of hanging the suite.
      let sampler: ReturnType<typeof setInterval> | undefined;
      const gaveUp = new Promise<never>((_, reject) => {
        const deadline = performance.now() + BODY_TIMEOUT_MS + ANSWER_SLACK_MS;
        sampler = setInterval(() => {
          try {
            sample();
            if (performance.now() > deadline) throw new Error("requests still unanswered");
          } catch (error) {
            reject(error);
          }
        }, 100);
      });
      let statuses: number[];
      try {
        statuses = await Promise.race([Promise.all(answers), gaveUp]);
      } catch (error) {
        const answered = await Promise.all(
          answers.map((answer) => Promise.race([answer, Promise.resolve(-1)])),
        );
        throw new Error(
          `${(error as Error).message}: ${answered.filter((s) => s === -1).length} of ` +
            `${CONNECTIONS} unanswered after ${(performance.now() - started).toFixed(0)} ms, ` +
            `RSS baseline ${mb(baseline)}, peak ${mb(peak)}`,
        );
      } finally {
        clearInterval(sampler);
      }
      const answeredMs = performance.now() - started;
      sample();
      witnessRunning = false;
      await witness;

      const counts = new Map<number, number>();
      for (const status of statuses) counts.set(status, (counts.get(status) ?? 0) + 1);
      const sorted = witnessMs.sort((a, b) => a - b);
      console.log(
        `server RSS: baseline ${mb(baseline)}, peak ${mb(peak)} during ${CONNECTIONS} stalled ` +
          `bodies (growth ${mb(peak - baseline)}, ${
            ((peak - baseline) / CONNECTIONS / 1024).toFixed(0)
          } KB each)`,
      );
      console.log(
        `requests sent in ${sentMs.toFixed(0)} ms, all answered after ${
          answeredMs.toFixed(0)
        } ms (body timeout ${BODY_TIMEOUT_MS} ms): ${
          [...counts].map(([status, n]) => `${n}× ${status}`).join(", ")
        }`,
      );
      console.log(
        `witness: ${sorted.length} calls, p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p99 ${
          percentile(sorted, 0.99).toFixed(1)
        } ms, failures ${witnessFailures.length}`,
      );
      assert(
        peak - baseline < CONNECTIONS * GROWTH_BYTES_PER_CONNECTION_MAX,
        `RSS grew by ${mb(peak - baseline)} for ${CONNECTIONS} stalled bodies`,
      );
      assertEquals([...counts], [[408, CONNECTIONS]]);
      assert(answeredMs >= BODY_TIMEOUT_MS, "answered before the body timeout");
      assertEquals(witnessFailures, []);
      // It kept answering during the attack (at least 3 s): a count, not a speed (10 calls was
      // close on a loaded machine, where one call can take several hundred ms).
      assert(sorted.length >= 3, `only ${sorted.length} witness calls completed`);
      assertEquals((await call(server.url, "witness", "bump", [])).status, 200);
    } finally {
      witnessRunning = false;
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await server.stop();
      await Deno.remove(server.dataDir, { recursive: true }).catch(() => {});
    }
  },
});
