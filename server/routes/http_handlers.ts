/**
 * `ANY /v1/database/:name/route[/*path]`: a module's own HTTP handlers (module-abi.md §5.6).
 *
 * The path after `/route` is matched exactly, with the method (`Any` matches every method),
 * against the module's HttpRoutes in declaration order; the first match runs its handler in the
 * database's procedure thread (worker/procedure_thread.ts) with the body read completely first.
 * No route: 404 with SpacetimeDB's text. No authentication: the handler decides. OPTIONS reaches
 * the module when it has a handler for it (`moduleHandlesOptions`); otherwise the CORS answer.
 */
import type { Context } from "hono";
import { peerHostname, type TrustedProxies } from "../../lib/client_address.ts";
import { HTTP_BODY_BYTES_MAX, HTTP_HANDLER_RESPONSE_BYTES_MAX } from "../../lib/limits.ts";
import type { AppContext, AppEnv } from "../app.ts";
import type { Database, DatabaseRegistry } from "../database_registry.ts";
import { ResponseBudget, type ResponseReservation } from "../response_budget.ts";

export const NO_ROUTE_TEXT = "Database has not registered a handler for this route";

/** Response headers a handler may not set: the server frames the response itself. */
const FRAMING_HEADERS = new Set(["content-length", "transfer-encoding", "connection"]);
/**
 * Response headers a handler may not set at all (the request fails): handlers are unauthenticated
 * tenant code on the server's own origin, which also serves the operator dashboard (its bearer
 * token in session storage, sent on every API call). `Service-Worker-Allowed` would let a
 * handler's script register a service worker for the whole origin and read those requests.
 */
const REFUSED_HEADERS = new Set(["service-worker-allowed"]);

export function httpHandlerRoute(context: AppContext) {
  const { registry, bodies } = context;
  const responses = context.responses ?? new ResponseBudget();
  /** Responses whose body holds its reservation until sent. */
  const metered = new WeakSet<Response>();
  return async (c: Context<AppEnv>): Promise<Response> => {
    const database = registry.require(c.req.param("name") ?? "");
    const url = new URL(c.req.url);
    const path = routePath(url.pathname);
    // The body is collected completely before the call, within the usual bounds.
    const body = await bodies.read(c.req.raw, HTTP_BODY_BYTES_MAX, "request body");
    const release = await database.admit();
    try {
      const handlerId = findHandler(database, c.req.method, path);
      if (handlerId === undefined) return c.text(NO_ROUTE_TEXT, 404);
      const headers: [string, Uint8Array][] = [];
      const encoder = new TextEncoder();
      c.req.raw.headers.forEach((value, name) => headers.push([name, encoder.encode(value)]));
      // Room for the largest answer before the call: its size is known only once it returns,
      // and the database process must not be asked for more answers than clients take.
      const reservation = await responses.reserve(
        database,
        HTTP_HANDLER_RESPONSE_BYTES_MAX,
        "an HTTP handler of this database",
      );
      let response: Response | undefined;
      try {
        response = await answer(c, { database, handlerId, url, body, headers, reservation });
        return response;
      } finally {
        // Only a body still to be sent keeps its bytes (meteredBody gives them back).
        if (response === undefined || !metered.has(response)) reservation.release();
      }
    } finally {
      release();
    }
  };

  async function answer(c: Context<AppEnv>, call: {
    database: Database;
    handlerId: number;
    url: URL;
    body: Uint8Array;
    headers: [string, Uint8Array][];
    reservation: ResponseReservation;
  }): Promise<Response> {
    const { database, handlerId, url, body, headers, reservation } = call;
    {
      const result = await database.host.callHttpHandler({
        handlerId,
        method: c.req.method,
        uri: externalUri(url, c.req.raw.headers, peerHostname(c.env), context.trustedProxies),
        headers,
        body,
        timestampMicros: BigInt(Date.now()) * 1000n,
      });
      if (!result.ok) return c.text(result.message ?? "The HTTP handler failed", 500);
      // The database process checks this too, but what it sends is untrusted.
      const bytes = (result.headers ?? []).reduce(
        (total, [name, value]) => total + name.length + value.length,
        result.body?.length ?? 0,
      );
      if (bytes > HTTP_HANDLER_RESPONSE_BYTES_MAX) {
        return c.text(
          `The HTTP handler's response (body and headers) is over the limit of ` +
            `${HTTP_HANDLER_RESPONSE_BYTES_MAX} bytes`,
          500,
        );
      }
      const responseHeaders = new Headers();
      const decoder = new TextDecoder();
      for (const [name, value] of result.headers ?? []) {
        if (FRAMING_HEADERS.has(name.toLowerCase())) continue;
        if (REFUSED_HEADERS.has(name.toLowerCase())) {
          return c.text(
            `The HTTP handler set the header "${name.toLowerCase()}", which this server refuses ` +
              "(a service worker's scope may not reach beyond the handler's own path)",
            500,
          );
        }
        try {
          responseHeaders.append(name, decoder.decode(value));
        } catch {
          return c.text(`The HTTP handler set an invalid header "${name}"`, 500);
        }
      }
      const status = result.status ?? 200;
      const noBody = status === 204 || status === 304 || c.req.method === "HEAD" ||
        (result.body?.length ?? 0) === 0;
      if (noBody) return new Response(null, { status, headers: responseHeaders });
      // Held, at its real size, until the client has read it all (or goes away, or stalls).
      reservation.shrink(result.body!.length);
      const response = new Response(responses.meteredBody(result.body!, reservation), {
        status,
        headers: responseHeaders,
      });
      metered.add(response);
      return response;
    }
  }
}

/**
 * Whether an OPTIONS request goes to the module rather than to the CORS answer: it is under
 * `/v1/database/:name/route`, the module has a handler for its path and OPTIONS (or `Any`), and
 * it is not a CORS preflight (`Access-Control-Request-Method` set), which SpacetimeDB's CORS
 * layer answers itself before any route.
 */
export function moduleHandlesOptions(registry: DatabaseRegistry, request: Request): boolean {
  if (request.headers.has("access-control-request-method")) return false;
  const pathname = new URL(request.url).pathname;
  const match = /^\/v1\/database\/([^/]+)\/route(\/|$)/.exec(pathname);
  if (match === null) return false;
  const database = registry.resolve(match[1]);
  if (database === undefined || !database.hasModule) return false;
  return findHandler(database, "OPTIONS", routePath(pathname)) !== undefined;
}

/**
 * The path the routes match: "" for `/route`, "/" for `/route/`, "/a/b" for `/route/a/b`. The
 * `/route` segment is the one after the database name (a database may be named "route").
 */
function routePath(pathname: string): string {
  const match = /^\/v1\/database\/[^/]+\/route(\/.*)?$/.exec(pathname);
  return match?.[1] ?? "";
}

function findHandler(database: Database, method: string, path: string): number | undefined {
  const def = database.module.def;
  const upper = method.toUpperCase();
  for (const route of def.httpRoutes) {
    if (route.path !== path) continue;
    if (route.method.tag === "Method") {
      const wanted = route.method.value;
      const name = wanted.tag === "Extension" ? String(wanted.value) : wanted.tag;
      if (name.toUpperCase() !== upper) continue;
    }
    if (route.handlerId >= 0) return route.handlerId;
  }
  return undefined;
}

/**
 * The full external URI: as a trusted proxy in front passed it on (X-Forwarded-Proto/-Host, read
 * only when the peer is one of `--trusted-proxy`'s, as X-Forwarded-For is), else as received.
 */
export function externalUri(
  url: URL,
  headers: Headers,
  peer: string | undefined,
  trusted: TrustedProxies | undefined,
): string {
  const forwarded = (name: string) =>
    trusted?.contains(peer) ? headers.get(name)?.split(",")[0].trim() : undefined;
  const proto = forwarded("x-forwarded-proto");
  const host = forwarded("x-forwarded-host") ?? headers.get("host") ?? undefined;
  const scheme = proto === "https" || proto === "http" ? proto : url.protocol.slice(0, -1);
  return `${scheme}://${host ?? url.host}${url.pathname}${url.search}`;
}
