/**
 * A database whose process crashes more than 3 times within a minute used to be left stopped
 * for good: any anonymous client that could make it crash (here a reducer that runs out of
 * memory; in the wild a handler or reducer that does on some input) took it down until its owner
 * published again. Now its restart waits for a pause (CRASH_PAUSE_MS), then it serves again; a
 * second database under the same server answers throughout.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { CRASH_PAUSE_MS } from "../../lib/limits.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { WAIT_LIMIT_MS, waitUntil } from "../support/wait.ts";

Deno.test({
  name: "a database that keeps crashing restarts after a pause instead of staying stopped",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer({ databaseMemoryMb: 128 });
    try {
      await publish(server.url, "crashy", await fixtureBundle("runaway"));
      await publish(server.url, "steady", await fixtureBundle("runaway"));
      const bump = (database: string) => call(server.url, database, "bump", []);
      assertEquals((await bump("crashy")).status, 200);
      // Anonymous calls crash it until the server pauses its restarts (4 crashes within a
      // minute; more if the machine is so slow that the first ones fall out of the minute).
      let paused = "";
      for (let crashes = 1; crashes <= 12 && paused === ""; crashes++) {
        const crashed = await call(server.url, "crashy", "hoard", []);
        assertMatch(crashed.text, /ran out of memory/);
        await waitUntil(async () => {
          const answer = await bump("crashy");
          if (/restarts at/.test(answer.text)) paused = answer.text;
          return answer.status === 200 || paused !== "";
        }, `the restart after crash ${crashes}`);
        assertEquals((await bump("steady")).status, 200);
      }
      assertMatch(paused, /crashed \d+ times within a minute: it restarts at \d{4}-/);
      console.log(`paused: ${paused}`);
      // After the pause it serves again, without a publish.
      await waitUntil(
        async () => (await bump("crashy")).status === 200,
        "the restart after the pause",
        { limitMs: CRASH_PAUSE_MS + WAIT_LIMIT_MS },
      );
      assertEquals((await bump("steady")).status, 200);
    } finally {
      await server.close();
    }
  },
});
