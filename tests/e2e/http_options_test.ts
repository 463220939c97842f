/**
 * OPTIONS under `/v1/database/:name/route`: a module's OPTIONS (or `any`) handler answers a
 * plain OPTIONS request; a path without one, a CORS preflight (`Access-Control-Request-Method`,
 * which SpacetimeDB's CORS layer answers before any route) and OPTIONS elsewhere get the
 * server's CORS answer, as before.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

Deno.test({
  name: "a module's OPTIONS handler answers under /route; preflights and other paths get CORS",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      await publish(server.url, "opts", await fixtureBundle("http_options"));
      const base = `${server.url}/v1/database/opts/route`;
      const options = async (url: string, headers: Record<string, string> = {}) => {
        const response = await fetch(url, { method: "OPTIONS", headers });
        return {
          status: response.status,
          body: await response.text(),
          handler: response.headers.get("x-handler"),
          cors: response.headers.get("access-control-allow-origin"),
        };
      };
      const cors = { status: 204, body: "", handler: null, cors: "*" };
      assertEquals(await options(`${base}/custom`), {
        status: 200,
        body: "module OPTIONS",
        handler: "options",
        cors: "*",
      });
      assertEquals(await options(`${base}/wild`), {
        status: 200,
        body: "any OPTIONS",
        handler: "any",
        cors: "*",
      });
      assertEquals(await options(`${base}/plain`), cors);
      assertEquals(await options(`${base}/nowhere`), cors);
      assertEquals(
        await options(`${base}/custom`, {
          origin: "http://example.test",
          "access-control-request-method": "GET",
        }),
        cors,
      );
      assertEquals(await options(`${server.url}/v1/database/opts/sql`), cors);
      assertEquals(await options(`${server.url}/v1/database/missing/route/custom`), cors);
      // The other methods still route as before.
      const got = await fetch(`${base}/custom`);
      assertEquals([got.status, await got.text()], [200, "got"]);
      // A handler may not widen a service worker's scope past its own route: with
      // `Service-Worker-Allowed: /` its script could take over the whole origin, /dashboard
      // included, and read the operator's bearer token from every request the page makes.
      const worker = await fetch(`${base}/sw`);
      assertEquals(
        [worker.status, worker.headers.get("service-worker-allowed"), await worker.text()],
        [
          500,
          null,
          'The HTTP handler set the header "service-worker-allowed", which this server refuses ' +
          "(a service worker's scope may not reach beyond the handler's own path)",
        ],
      );
    } finally {
      await server.close();
    }
  },
});
