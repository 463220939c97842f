/**
 * The dashboard's routes and headers, over real HTTP: the page and its assets at /dashboard
 * with a strict CSP and no CORS, unknown paths and methods refused, `--no-dashboard` (the
 * option and the command-line flag) refusing every dashboard path, and the script's own rules
 * (no HTML from strings, the token never in a URL or in localStorage).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startServer } from "../mod.ts";
import { startServerProcess, startTestServer } from "../../tests/support/server.ts";
import { DASHBOARD_CSP, DASHBOARD_HEADERS } from "./mod.ts";

function assertDashboardHeaders(response: Response, what: string): void {
  for (const [key, value] of Object.entries(DASHBOARD_HEADERS)) {
    assertEquals(response.headers.get(key), value, `${what}: header ${key}`);
  }
  assertEquals(response.headers.get("access-control-allow-origin"), null, `${what}: no CORS`);
}

Deno.test("the dashboard CSP allows this origin's script, style and API and nothing inline", () => {
  const directives = new Map(
    DASHBOARD_CSP.split(";").map((part) => {
      const [name, ...values] = part.trim().split(/\s+/);
      return [name, values] as const;
    }),
  );
  assertEquals(directives.get("default-src"), ["'none'"]);
  assertEquals(directives.get("script-src"), ["'self'"]);
  assertEquals(directives.get("style-src"), ["'self'"]);
  assertEquals(directives.get("connect-src"), ["'self'"]);
  assertEquals(directives.get("frame-ancestors"), ["'none'"]);
  assertEquals(directives.get("base-uri"), ["'none'"]);
  assertEquals(directives.get("form-action"), ["'none'"]);
  assert(!DASHBOARD_CSP.includes("unsafe"), DASHBOARD_CSP);
});

Deno.test({
  name: "GET /dashboard serves the page, script and style sheet with the dashboard's headers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const page = await fetch(`${server.url}/dashboard`);
      const html = await page.text();
      assertEquals(page.status, 200);
      assertEquals(page.headers.get("content-type"), "text/html; charset=utf-8");
      assertDashboardHeaders(page, "GET /dashboard");
      assert(html.includes('<script type="module" src="/dashboard/app.js"></script>'), html);
      assert(html.includes('<link rel="stylesheet" href="/dashboard/app.css">'), html);
      // Nothing the CSP would block: no inline script, no inline style, no event attributes.
      assertEquals(html.match(/<script(?![^>]*\ssrc=)[^>]*>/g), null);
      assertEquals(html.match(/\sstyle=|<style|\son[a-z]+=/g), null);

      const slash = await fetch(`${server.url}/dashboard/`);
      assertEquals(slash.status, 200);
      assertEquals(await slash.text(), html);
      assertDashboardHeaders(slash, "GET /dashboard/");

      const script = await fetch(`${server.url}/dashboard/app.js`);
      const scriptText = await script.text();
      assertEquals(script.status, 200);
      assertEquals(script.headers.get("content-type"), "text/javascript; charset=utf-8");
      assertDashboardHeaders(script, "GET /dashboard/app.js");
      assertEquals(
        scriptText,
        await Deno.readTextFile(new URL("./static/app.js", import.meta.url)),
      );

      const helpers = await fetch(`${server.url}/dashboard/format.js`);
      assertEquals(helpers.status, 200);
      assertEquals(helpers.headers.get("content-type"), "text/javascript; charset=utf-8");
      assertDashboardHeaders(helpers, "GET /dashboard/format.js");
      assertEquals(
        await helpers.text(),
        await Deno.readTextFile(new URL("./static/format.js", import.meta.url)),
      );

      const style = await fetch(`${server.url}/dashboard/app.css`);
      assertEquals(style.status, 200);
      assertEquals(style.headers.get("content-type"), "text/css; charset=utf-8");
      assertDashboardHeaders(style, "GET /dashboard/app.css");
      await style.body?.cancel();

      const missing = await fetch(`${server.url}/dashboard/private.pem`);
      assertEquals(missing.status, 404);
      assertEquals(await missing.text(), "No dashboard file at /dashboard/private.pem");
      assertDashboardHeaders(missing, "GET of a missing file");

      const traversal = await fetch(`${server.url}/dashboard/..%2Fmod.ts`);
      assertEquals(traversal.status, 404);
      await traversal.body?.cancel();

      const post = await fetch(`${server.url}/dashboard`, { method: "POST", body: "x" });
      assertEquals(post.status, 405);
      assertEquals(await post.text(), "The dashboard serves GET only, not POST");
      assertDashboardHeaders(post, "POST /dashboard");

      // The API keeps its CORS headers.
      const health = await fetch(`${server.url}/v1/health`);
      assertEquals(health.headers.get("access-control-allow-origin"), "*");
      await health.body?.cancel();
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "a server started with dashboard: false refuses every dashboard path with the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-dashboard-off-" });
    const server = await startServer({
      hostname: "127.0.0.1",
      port: 0,
      dataDir,
      dashboard: false,
      connectionTimeouts: false,
    });
    try {
      for (const path of ["/dashboard", "/dashboard/", "/dashboard/app.js", "/dashboard/x"]) {
        const response = await fetch(`${server.url}${path}`);
        assertEquals(response.status, 404, path);
        assertEquals(
          await response.text(),
          "The dashboard is turned off on this server (it was started with --no-dashboard)",
        );
        assertDashboardHeaders(response, path);
      }
      const health = await fetch(`${server.url}/v1/health`);
      assertEquals(health.status, 200);
      await health.body?.cancel();
    } finally {
      await server.shutdown();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "`lightcone start --no-dashboard` turns the dashboard off; without it it is served",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const off = await startServerProcess({ args: ["--no-dashboard"] });
    try {
      const response = await fetch(`${off.url}/dashboard`);
      assertEquals(response.status, 404);
      assert((await response.text()).includes("--no-dashboard"));
    } finally {
      await off.stop();
      await Deno.remove(off.dataDir, { recursive: true }).catch(() => {});
    }
    const on = await startServerProcess();
    try {
      const response = await fetch(`${on.url}/dashboard`);
      assertEquals(response.status, 200);
      assert((await response.text()).includes("/dashboard/app.js"));
    } finally {
      await on.stop();
      await Deno.remove(on.dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("the dashboard script builds no HTML from strings and keeps the token out of URLs and storage", async () => {
  const script = await Deno.readTextFile(new URL("./static/app.js", import.meta.url)) +
    await Deno.readTextFile(new URL("./static/format.js", import.meta.url));
  for (const banned of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"]) {
    assert(!script.includes(banned), `app.js uses ${banned}`);
  }
  // Bearer header only: no `token=` query parameter, no storage that outlives the tab.
  assert(!/[?&]token=/.test(script), "app.js puts a token in a URL");
  assert(!script.includes("localStorage"), "app.js uses localStorage");
  // Not even sessionStorage: a page a module's HTTP handler serves on this origin in the same tab
  // could read it. The token lives in the page's memory only.
  assert(!/sessionStorage\.setItem\([^,]*token/i.test(script), "app.js stores the token");
  assert(!script.includes("TOKEN_KEY"), "app.js keeps a storage key for the token");
  assert(script.includes("authorization = `Bearer ${token}`"), "app.js sends a bearer header");
});
