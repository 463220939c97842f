/**
 * The operator dashboard at `/dashboard`: static files (server/dashboard/static/: one HTML page,
 * one script, one style sheet; no build step) served with a strict Content-Security-Policy.
 * The page talks to the public HTTP API only, with the token the operator signs in with, so it
 * can do nothing that token could not do with curl. One JSON route of its own,
 * `/dashboard/api/replication` (replication_status.ts), shows the replication role and lag to
 * whoever may read /v1/metrics. `--no-dashboard` turns every route off.
 */
import { Hono } from "hono";
import type { ReplicationStatus } from "./replication_status.ts";

export { primaryStatus, replicaStatus, type ReplicationStatus } from "./replication_status.ts";

/** Where the dashboard is served. */
export const DASHBOARD_PATH = "/dashboard";

/**
 * The page loads its script, style sheet and data from this origin only; no inline script or
 * style, no frames, no forms posting elsewhere, no plugins. `connect-src 'self'` is what lets
 * the script call the /v1 API (and nothing else).
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers on every dashboard response (pages, assets and refusals alike). */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": DASHBOARD_CSP,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-cache",
};

const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/format.js": { file: "format.js", type: "text/javascript; charset=utf-8" },
};

/** Read once, on first use (the files are part of the server, not data). */
const cache = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

function readAsset(file: string): Promise<Uint8Array<ArrayBuffer>> {
  let bytes = cache.get(file);
  if (bytes === undefined) {
    bytes = Deno.readFile(new URL(`./static/${file}`, import.meta.url));
    cache.set(file, bytes);
    bytes.catch(() => cache.delete(file));
  }
  return bytes;
}

/**
 * The dashboard's routes, to mount at DASHBOARD_PATH. When `enabled` is false every path under
 * it answers 404 with the reason (the flag that turned it off).
 */
export function dashboardRoutes(options: {
  enabled: boolean;
  /** This server's replication (undefined: neither `--replicate` nor `--follow`). */
  replicationStatus?: () => ReplicationStatus;
  /**
   * Whether the client of a request (Hono's `c.env`, its X-Forwarded-For) may read /v1/metrics.
   */
  mayReadMetrics?: (env: unknown, forwardedFor: string | undefined) => boolean;
}): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    await next();
    for (const [key, value] of Object.entries(DASHBOARD_HEADERS)) c.res.headers.set(key, value);
  });
  if (!options.enabled) {
    app.all("*", (c) =>
      c.text(
        "The dashboard is turned off on this server (it was started with --no-dashboard)",
        404,
      ));
    return app;
  }
  app.get("/api/replication", (c) => {
    if (!(options.mayReadMetrics?.(c.env, c.req.header("x-forwarded-for")) ?? false)) {
      return c.json({
        error: "The replication status is served to those who may read /v1/metrics: loopback " +
          "clients only, unless the server runs with --metrics-public",
      }, 403);
    }
    const status: ReplicationStatus = options.replicationStatus?.() ?? { role: "none" };
    return c.json(status);
  });
  app.get("*", async (c) => {
    const rest = c.req.path.slice(DASHBOARD_PATH.length);
    const asset = ASSETS[rest === "" ? "/" : rest];
    if (asset === undefined) return c.text(`No dashboard file at ${c.req.path}`, 404);
    return c.body(await readAsset(asset.file), 200, { "Content-Type": asset.type });
  });
  app.all("*", (c) => c.text(`The dashboard serves GET only, not ${c.req.method}`, 405));
  return app;
}
