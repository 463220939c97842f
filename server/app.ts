/**
 * The HTTP application: CORS, the anonymous-auth middleware of SpacetimeDB's
 * client API, and the /v1 routes. Built once per server by server/server.ts.
 */
import { Hono } from "hono";
import type { AuthResult, AuthService } from "../auth/mod.ts";
import type { TrustedProxies } from "../lib/client_address.ts";
import { DASHBOARD_PATH, dashboardRoutes, type ReplicationStatus } from "./dashboard/mod.ts";
import { errorResponse } from "./error_response.ts";
import type { DatabaseRegistry } from "./database_registry.ts";
import { databaseRoutes } from "./routes/database.ts";
import { identityRoutes } from "./routes/identity.ts";
import { moduleHandlesOptions } from "./routes/http_handlers.ts";
import { metricsAllowed, metricsRoutes } from "./routes/metrics.ts";
import type { RequestBodyReader } from "./request_body.ts";
import type { ResponseBudget } from "./response_budget.ts";
import type { WsHub } from "./ws/hub.ts";

export interface AppEnv {
  Variables: { auth: AuthResult; minted: boolean };
}

export interface AppContext {
  auth: AuthService;
  registry: DatabaseRegistry;
  hub: WsHub;
  /** Reads every request body (caps, timeout, server-wide bounds). */
  bodies: RequestBodyReader;
  /** Bounds large responses held for clients not reading them (default: lib/limits.ts). */
  responses?: ResponseBudget;
  version: string;
  /** Serve /v1/metrics to any client, not only loopback ones (`--metrics-public`). */
  metricsPublic?: boolean;
  /** Proxies whose X-Forwarded-For names the client (`--trusted-proxy`, lib/client_address.ts). */
  trustedProxies?: TrustedProxies;
  /** Serve the operator dashboard at /dashboard (default true; `--no-dashboard` turns it off). */
  dashboard?: boolean;
  /** Replication families for /v1/metrics (`--replicate` / `--follow`), exposition text. */
  replicationMetrics?: () => string;
  /** The replication role and progress for the dashboard (server/dashboard/), as JSON. */
  replicationStatus?: () => ReplicationStatus;
}

const CORS_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "*",
  "Access-Control-Allow-Headers": "authorization, accept, content-type",
};

export function createApp(context: AppContext): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use("*", async (c, next) => {
    // OPTIONS is a CORS preflight, except under /route when the module handles OPTIONS there.
    if (c.req.method === "OPTIONS" && !moduleHandlesOptions(context.registry, c.req.raw)) {
      return new Response(null, { status: 204, headers: CORS_HEADERS });
    }
    await next();
    // WebSocket upgrade responses are immutable.
    if (c.res.status === 101) return;
    // Metrics are for loopback scrapers, not for pages a browser on this host happens to load.
    if (c.req.path === "/v1/metrics") return;
    // The dashboard is a same-origin page with headers of its own (server/dashboard/).
    if (c.req.path === DASHBOARD_PATH || c.req.path.startsWith(`${DASHBOARD_PATH}/`)) return;
    for (const [key, value] of Object.entries(CORS_HEADERS)) c.res.headers.set(key, value);
  });

  app.onError((error, c) => errorResponse(error, c));
  app.notFound((c) => c.text(`No route for ${c.req.method} ${c.req.path}`, 404));

  app.get("/v1/ping", async (c) => {
    // A bad credential is still an error here, as in SpacetimeDB.
    await context.auth.authenticateRequest(c.req.raw.headers, new URL(c.req.url).searchParams);
    return c.body(null, 200);
  });

  app.get("/v1/health", (c) =>
    c.json({
      package_name: "lightcone",
      version: context.version,
      nodes: [],
      schedulable: true,
    }));

  app.route(
    "/v1/identity",
    identityRoutes(context.auth, {
      databasesOwnedBy: (identity) =>
        context.registry.ownedBy(identity).map((database) => database.identity.toHex()),
    }),
  );

  app.route("/v1/database", databaseRoutes(context));
  app.route("/v1/metrics", metricsRoutes(context));
  app.route(
    DASHBOARD_PATH,
    dashboardRoutes({
      enabled: context.dashboard !== false,
      replicationStatus: context.replicationStatus,
      mayReadMetrics: (env, forwardedFor) => metricsAllowed(context, env, forwardedFor),
    }),
  );
  return app;
}
