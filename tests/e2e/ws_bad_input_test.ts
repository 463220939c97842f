/**
 * Bad WebSocket input against a real server: random and truncated frames, unknown
 * tags, text frames, oversized frames, bad SQL, unknown databases, invalid tokens.
 * Each gets an error message or a close with a reason; the server and other
 * clients carry on.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { seededRandom } from "../../lib/random.ts";
import { WS_MESSAGE_BYTES_MAX } from "../../lib/limits.ts";
import { decodeServerFrame, encodeClientFrame, type ServerMessage } from "../../protocol/mod.ts";
import { connectBank } from "../fixtures/bindings/bank/index.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const FUZZ_FRAMES = Number(Deno.env.get("LIGHTCONE_FUZZ_FRAMES") ?? 10_000);
const FUZZ_CONCURRENCY = 32;
/** How long a fuzzed connection that got neither an answer nor a close is left open. */
const FUZZ_SILENT_MS = 2000;
let silentFrames = 0;

interface RawClient {
  socket: WebSocket;
  messages: ServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<void>;
}

function rawClient(url: string, path: string, protocol = "v3.bsatn.spacetimedb"): RawClient {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}${path}`, [protocol]);
  socket.binaryType = "arraybuffer";
  const messages: ServerMessage[] = [];
  socket.onmessage = async (event) => {
    if (event.data instanceof ArrayBuffer) {
      messages.push(...await decodeServerFrame(new Uint8Array(event.data), "v3"));
    }
  };
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
  const opened = new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("websocket error"));
  });
  opened.catch(() => {});
  return { socket, messages, closed, opened };
}

/**
 * "open" once the server sent something besides InitialConnection, or after FUZZ_SILENT_MS
 * with neither an answer nor a close; the close if the connection closes first.
 */
async function answerOrSilence(
  client: RawClient,
): Promise<"open" | { code: number; reason: string }> {
  const deadline = performance.now() + FUZZ_SILENT_MS;
  while (!client.messages.some((message) => message.tag !== "InitialConnection")) {
    if (client.socket.readyState !== WebSocket.OPEN) return await client.closed;
    if (performance.now() > deadline) {
      silentFrames++;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return "open";
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test({
  name: "bad WebSocket input is refused cleanly and harms nobody",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const bystander = await (async () => {
      await publish(server.url, "bank", await fixtureBundle("bank"));
      await call(server.url, "bank", "seed", [0, 100, 1000]);
      return await connectBank(server.url, "bank");
    })();
    const bystanderWorks = async () => {
      await bystander.reducers.transfer({ from: 1, to: 2, amount: 1n });
    };
    try {
      await t.step("unknown database: 404 before upgrading", async () => {
        const response = await fetch(`${server.url}/v1/database/no-such-db/subscribe`, {
          headers: { upgrade: "websocket", "sec-websocket-protocol": "v3.bsatn.spacetimedb" },
        });
        assertEquals(response.status, 404);
        assert((await response.text()).includes("not found"));
      });

      await t.step("invalid token: 401 with the reason", async () => {
        const response = await fetch(`${server.url}/v1/database/bank/subscribe?token=garbage`, {
          headers: { upgrade: "websocket", "sec-websocket-protocol": "v3.bsatn.spacetimedb" },
        });
        assertEquals(response.status, 401);
        assert((await response.text()).length > 0);
      });

      await t.step("no known subprotocol: 400", async () => {
        const response = await fetch(`${server.url}/v1/database/bank/subscribe`, {
          headers: { upgrade: "websocket", "sec-websocket-protocol": "v1.json.spacetimedb" },
        });
        assertEquals(response.status, 400);
        assertEquals(
          await response.text(),
          "no valid protocol selected: offer v3.bsatn.spacetimedb or v2.bsatn.spacetimedb or " +
            "v1.bsatn.spacetimedb in Sec-WebSocket-Protocol (v1.json.spacetimedb: not supported " +
            "by this server)",
        );
      });

      await t.step("bad SQL: a SubscriptionError, the connection stays usable", async () => {
        const client = rawClient(server.url, "/v1/database/bank/subscribe");
        await client.opened;
        client.socket.send(encodeClientFrame([
          { tag: "Subscribe", requestId: 7, querySetId: 1, queryStrings: ["SELEKT nothing"] },
          {
            tag: "Subscribe",
            requestId: 8,
            querySetId: 2,
            queryStrings: ["SELECT * FROM missing_table"],
          },
          { tag: "OneOffQuery", requestId: 9, queryString: "SELECT * FROM accounts WHERE id = 3" },
        ]));
        await until(
          () => client.messages.filter((m) => m.tag !== "InitialConnection").length === 3,
          "replies",
        );
        const errors = client.messages.filter((m) => m.tag === "SubscriptionError");
        assertEquals(errors.length, 2);
        for (const error of errors) {
          assert(
            error.tag === "SubscriptionError" && error.error.includes("executing: `"),
            JSON.stringify(error),
          );
        }
        const oneOff = client.messages.find((m) => m.tag === "OneOffQueryResult");
        assert(oneOff?.tag === "OneOffQueryResult" && oneOff.result.tag === "Ok");
        client.socket.close();
        await client.closed;
      });

      await t.step("text frames and unknown tags close with 1011 and a reason", async () => {
        for (const frame of ["hello", new Uint8Array([9, 0, 0, 0, 0])]) {
          const client = rawClient(server.url, "/v1/database/bank/subscribe");
          await client.opened;
          client.socket.send(frame);
          const { code, reason } = await within(client.closed, "the close after a bad frame");
          assertEquals(code, 1011);
          assert(reason.length > 0);
        }
        await bystanderWorks();
      });

      await t.step("a frame over the size limit closes with 1009", async () => {
        const client = rawClient(server.url, "/v1/database/bank/subscribe");
        await client.opened;
        client.socket.send(new Uint8Array(WS_MESSAGE_BYTES_MAX + 1));
        const { code } = await client.closed;
        assertEquals(code, 1009);
        await bystanderWorks();
      });

      await t.step("a reused live query set id closes the connection", async () => {
        const client = rawClient(server.url, "/v1/database/bank/subscribe");
        await client.opened;
        client.socket.send(encodeClientFrame([
          {
            tag: "Subscribe",
            requestId: 1,
            querySetId: 5,
            queryStrings: ["SELECT * FROM accounts"],
          },
          {
            tag: "Subscribe",
            requestId: 2,
            querySetId: 5,
            queryStrings: ["SELECT * FROM accounts"],
          },
        ]));
        const { code, reason } = await client.closed;
        assertEquals(code, 1011);
        assert(reason.includes("already"), reason);
      });

      await t.step(`${FUZZ_FRAMES} random and truncated frames`, async () => {
        const seed = Number(Deno.env.get("LIGHTCONE_TEST_SEED") ?? Date.now() % 1_000_000);
        const random = seededRandom(seed);
        const valid = encodeClientFrame([
          {
            tag: "CallReducer",
            requestId: 1,
            flags: 0,
            reducer: "transfer",
            args: new Uint8Array(12),
          },
          {
            tag: "Subscribe",
            requestId: 2,
            querySetId: 3,
            queryStrings: ["SELECT * FROM accounts WHERE id = 1"],
          },
        ]);
        const frameAt = (i: number): Uint8Array => {
          const kind = i % 3;
          if (kind === 0) return valid.slice(0, Math.floor(random.next() * valid.length));
          if (kind === 1) {
            const mutated = valid.slice();
            for (let flips = 0; flips < 3; flips++) {
              mutated[Math.floor(random.next() * mutated.length)] = Math.floor(random.next() * 256);
            }
            return mutated;
          }
          return random.fill(new Uint8Array(1 + Math.floor(random.next() * 64)));
        };
        let next = 0;
        let closedWithReason = 0;
        let answered = 0;
        const worker = async () => {
          while (next < FUZZ_FRAMES) {
            const i = next++;
            const client = rawClient(server.url, "/v1/database/bank/subscribe");
            await client.opened;
            client.socket.send(frameAt(i));
            // Closed, or answered, or (no answer is due for some requests) still open after
            // FUZZ_SILENT_MS; a fixed 200 ms counted slow closes on a loaded machine as answers.
            const outcome = await answerOrSilence(client);
            if (outcome === "open") {
              answered++;
              client.socket.close();
              await client.closed;
            } else {
              assert(
                outcome.code === 1011 || outcome.code === 1000,
                `seed ${seed} frame ${i}: close ${outcome.code}`,
              );
              if (outcome.reason.length > 0) closedWithReason++;
            }
          }
        };
        await Promise.all(Array.from({ length: FUZZ_CONCURRENCY }, worker));
        console.log(
          `${FUZZ_FRAMES} frames: ${closedWithReason} closed with a reason, ${answered} answered ` +
            `or left open (${silentFrames} of them silent for ${FUZZ_SILENT_MS} ms)`,
        );
        assertEquals(closedWithReason + answered, FUZZ_FRAMES, `seed ${seed}`);
        assert(
          closedWithReason > FUZZ_FRAMES / 2,
          `seed ${seed}: most random frames are malformed`,
        );
        await bystanderWorks();
        const totals = await call(server.url, "bank", "totals", []);
        assertEquals((totals.json as number[])[1], 100 * 1000);
      });
    } finally {
      bystander.disconnect();
      await server.close();
    }
  },
});
