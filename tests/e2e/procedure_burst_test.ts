/**
 * A burst of procedure calls on a fresh database makes its pool start several threads at once
 * (worker/procedures.ts `#grow`), each asking the server to raise the process's memory cap
 * (worker/isolation.ts `setExtraThreads`). The raises once ran as concurrent `prlimit` calls that
 * could land out of order, leaving the cap of fewer threads than were starting: the last
 * thread's isolate then failed to reserve its code range and the whole process died as "out of
 * memory" (first seen as update_wait_test failures in CI, where a module update releases its
 * queued procedure calls at once). The race is not certain to show in one burst, so the test runs
 * many (on the code before the fix it failed within a dozen rounds in two runs of three).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const ROUNDS = 12;
const CALLS = 40;

Deno.test({
  name: "a burst of procedure calls starting several threads at once never runs out of memory",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const bundle = await fixtureBundle("gate");
      for (let round = 0; round < ROUNDS; round++) {
        const name = `burst-${round}`;
        const owner = await publish(server.url, name, bundle);
        const pid = server.server.registry.resolve(name)!.host.pid;
        const responses = await Promise.all(
          Array.from({ length: CALLS }, () => call(server.url, name, "entries", [])),
        );
        const failed = responses.filter((response) => response.status !== 200);
        assertEquals(failed.map((response) => response.text), [], `round ${round}`);
        assertEquals(server.server.registry.resolve(name)!.host.pid, pid, "the same process");
        // Keep the awake processes few (each holds threads and a cap of its own).
        const deleted = await fetch(`${server.url}/v1/database/${name}`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${owner.token}` },
        });
        await deleted.body?.cancel();
        assertEquals(deleted.status, 200);
      }
    } finally {
      await server.close();
    }
  },
});
