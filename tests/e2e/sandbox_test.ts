/**
 * Module code cannot read or write files, read the environment, spawn processes,
 * open sockets, fetch, or import code: a hostile module tries each from inside
 * a published database, and each attempt is denied.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

Deno.test({
  name: "a hostile module cannot reach outside its sandbox",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "escape", await fixtureBundle("escape"));

      await t.step("synchronous attempts are all denied", async () => {
        const response = await call(server.url, "escape", "probe_sync", []);
        assertEquals(response.status, 200, response.text);
        const lines = response.json as string[];
        assertEquals(lines.length, 11);
        for (const line of lines) assertMatch(line, /: denied: /, line);
        assert(
          lines.some((line) =>
            /math random: denied: TypeError: Math.random is not available/.test(line)
          ),
        );
      });

      await t.step("asynchronous attempts (fetch, sockets, imports) are all denied", async () => {
        // A listener of our own: the probes aim at it, and it must never see a connection.
        const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        let connections = 0;
        const accepting = (async () => {
          for await (const conn of listener) {
            connections++;
            conn.close();
          }
        })();
        const port = (listener.addr as Deno.NetAddr).port;
        assertEquals((await call(server.url, "escape", "probe_async", [port])).status, 200);
        let lines: string[] = [];
        const deadline = Date.now() + 60_000;
        while (lines.length < 9 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          lines = (await call(server.url, "escape", "async_outcomes", [])).json as string[];
        }
        assertEquals(lines.length, 9, lines.join("\n"));
        for (const line of lines) assertMatch(line, /: denied: /, line);
        await new Promise((resolve) => setTimeout(resolve, 200));
        listener.close();
        await accepting.catch(() => {});
        assertEquals(connections, 0, "a probe reached the test's listener");
      });

      await t.step("static imports of files, JSON or text are refused at publish", async () => {
        for (
          const source of [
            `import "spacetime:sys@2.0";\nimport text from "file:///etc/hostname" with { type: "text" };\nexport default text;`,
            `import "spacetime:sys@2.0";\nimport data from "./deno.json" with { type: "json" };\nexport default data;`,
            `import "spacetime:sys@2.0";\nexport * from "https://example.com/x.js";`,
          ]
        ) {
          const response = await fetch(`${server.url}/v1/database/escape-static?host_type=Js`, {
            method: "PUT",
            body: source,
          });
          const text = await response.text();
          assertEquals(response.status, 400, text);
          assertMatch(text, /Could not find module/);
        }
      });

      await t.step("the database still works", async () => {
        assertEquals((await call(server.url, "escape", "add_note", ["still here"])).status, 200);
      });
    } finally {
      await server.close();
    }
  },
});
