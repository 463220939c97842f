/**
 * `GET /v1/metrics`: every database's metrics in the Prometheus text format (server/metrics.ts).
 * Served to loopback clients only unless the operator passed `--metrics-public`: the names of
 * hosted databases and their load are not for everyone, and a scraper usually runs on the host
 * (or reaches it through a proxy the operator controls).
 */
import { Hono } from "hono";
import { peerHostname, resolveClient, type TrustedProxies } from "../../lib/client_address.ts";
import { PermissionError } from "../../lib/errors.ts";
import type { AppContext, AppEnv } from "../app.ts";
import {
  type DatabaseSample,
  METRICS_CONTENT_TYPE,
  renderMetrics,
  residentBytes,
} from "../metrics.ts";

export function metricsRoutes(context: AppContext): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", async (c) => {
    if (!metricsAllowed(context, c.env, c.req.header("x-forwarded-for"))) {
      throw new PermissionError(METRICS_REFUSED);
    }
    const clientStats = context.hub.clientStats();
    const samples = await Promise.all(
      context.registry.list().map(async (database): Promise<DatabaseSample> => {
        const ws = clientStats.get(database);
        const host = database.runningHost;
        const up = database.stoppedReason === undefined &&
          (host !== undefined || database.hibernation !== "awake");
        return {
          label: database.names[0] ?? database.key,
          metrics: database.metrics,
          up,
          hibernation: database.hibernation,
          durableTxOffset: database.durableTxOffset,
          clients: ws?.clients ?? 0,
          subscriptions: ws?.subscriptions ?? 0,
          outboundBytes: ws?.outboundBytes ?? 0,
          outboxMessages: ws?.outboxMessages ?? 0,
          queuedRequests: host?.queuedRequests ?? 0,
          batchesInFlight: host?.batchesInFlight ?? 0,
          residentBytes: host ? await residentBytes(host.pid) : undefined,
        };
      }),
    );
    const memory = Deno.memoryUsage();
    const server = { heapUsedBytes: memory.heapUsed, residentBytes: memory.rss };
    const text = renderMetrics(samples, server) + (context.replicationMetrics?.() ?? "");
    return c.body(text, 200, { "Content-Type": METRICS_CONTENT_TYPE });
  });
  return app;
}

export const METRICS_REFUSED =
  "Metrics are served to loopback clients only; start the server with --metrics-public to serve them to everyone";

/**
 * Whether the client of a request (`env`: Hono's `c.env`, Deno.serve's handler info;
 * `forwardedFor`: its X-Forwarded-For, read only when the peer is a trusted proxy) may read the
 * metrics (and the dashboard's replication status): a loopback client, or anyone with
 * `--metrics-public`.
 */
export function metricsAllowed(
  options: { metricsPublic?: boolean; trustedProxies?: TrustedProxies },
  env: unknown,
  forwardedFor?: string,
): boolean {
  if (options.metricsPublic === true) return true;
  // A client a trusted proxy's header does not name (an unreadable entry) is not known to be
  // local, even when the proxy is.
  const client = resolveClient(peerHostname(env), forwardedFor, options.trustedProxies);
  return client.identified && isLoopback(client.hostname);
}

function isLoopback(hostname: string | undefined): boolean {
  if (hostname === undefined) return false;
  if (hostname === "::1" || hostname === "localhost") return true;
  const v4 = hostname.startsWith("::ffff:") ? hostname.slice(7) : hostname;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
