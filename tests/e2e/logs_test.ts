/**
 * GET /v1/database/:name/logs: the newest lines, `follow=true` streaming new lines
 * as NDJSON, and owner-only access.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

Deno.test({
  name: "logs: tail, follow as NDJSON, owner only",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const { token } = await publish(server.url, "kitchen", await fixtureBundle("kitchen"));
      const auth = { authorization: `Bearer ${token}` };
      for (const word of ["one", "two", "three"]) {
        assertEquals((await call(server.url, "kitchen", "log_something", [word])).status, 200);
      }
      const tail = await fetch(`${server.url}/v1/database/kitchen/logs?num_lines=2`, {
        headers: auth,
      });
      assertEquals(tail.status, 200);
      assertEquals(tail.headers.get("content-type"), "application/x-ndjson");
      const lines = (await tail.text()).trim().split("\n").map((line) => JSON.parse(line));
      assertEquals(lines.map((line) => line.message), ["hello three", "careful"]);
      assert(
        lines.every((line) => typeof line.ts === "number" && line.function === "log_something"),
      );

      const stranger = await fetch(`${server.url}/v1/database/kitchen/logs`);
      assertEquals(stranger.status, 403);
      await stranger.body?.cancel();

      const abort = new AbortController();
      const follow = await fetch(`${server.url}/v1/database/kitchen/logs?num_lines=0&follow=true`, {
        headers: auth,
        signal: abort.signal,
      });
      assertEquals(follow.status, 200);
      const reader = follow.body!.pipeThrough(new TextDecoderStream()).getReader();
      assertEquals((await call(server.url, "kitchen", "log_something", ["live"])).status, 200);
      let received = "";
      while (!received.includes("hello live")) {
        const { value, done } = await reader.read();
        if (done) break;
        received += value;
      }
      const live = received.trim().split("\n").map((line) => JSON.parse(line));
      assertEquals(live[0].message, "hello live");
      assertEquals(live[0].level, "Info");
      abort.abort();
      await reader.cancel().catch(() => {});
    } finally {
      await server.close();
    }
  },
});
