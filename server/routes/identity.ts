/**
 * /v1/identity routes: create an identity, trade a token for a 60 s websocket token, serve the
 * public key, verify a token against an identity, and list the databases an identity owns.
 * Mount with `app.route("/v1/identity", identityRoutes(auth, lookup))`.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { AuthError, type AuthResult, type AuthService, Identity } from "../../auth/mod.ts";

/** Permissive CORS as SpacetimeDB sends on every /v1 route; browsers preflight websocket-token. */
export const V1_CORS_OPTIONS = {
  origin: "*",
  allowMethods: ["*"],
  allowHeaders: ["authorization", "accept", "content-type"],
};

export interface IdentityLookup {
  /** Identities (or their hex) of the databases whose owner is `identity`. */
  databasesOwnedBy(
    identity: Identity,
  ): readonly (Identity | string)[] | Promise<readonly (Identity | string)[]>;
}

export function identityRoutes(auth: AuthService, lookup: IdentityLookup): Hono {
  const app = new Hono();
  app.use("*", cors(V1_CORS_OPTIONS));

  app.post("/", async (c) => {
    const minted = await auth.mintIdentity();
    return c.json({ identity: minted.identity.toHex(), token: minted.token });
  });

  app.post("/websocket-token", async (c) => {
    const result = await requiredAuth(auth, c);
    if (result instanceof Response) return result;
    const token = await auth.websocketToken(result.claims);
    return c.json({ token });
  });

  app.get("/public-key", (c) => {
    return c.body(auth.publicKeyPem(), 200, {
      "content-type": "application/pem-certificate-chain",
    });
  });

  app.get("/:identity/verify", async (c) => {
    const identity = Identity.tryFromHex(c.req.param("identity"));
    if (identity === null) return invalidIdentity(c);
    const result = await requiredAuth(auth, c);
    if (result instanceof Response) return result;
    return c.body(null, result.identity.equals(identity) ? 204 : 400);
  });

  app.get("/:identity/databases", async (c) => {
    const identity = Identity.tryFromHex(c.req.param("identity"));
    if (identity === null) return invalidIdentity(c);
    const owned = await lookup.databasesOwnedBy(identity);
    return c.json({ identities: owned.map(hexOf) });
  });

  return app;
}

async function requiredAuth(auth: AuthService, c: Context): Promise<AuthResult | Response> {
  try {
    const url = new URL(c.req.url);
    const result = await auth.authenticateRequest(c.req.raw.headers, url.searchParams);
    if (result === null) throw AuthError.required();
    return result;
  } catch (error) {
    if (error instanceof AuthError) return c.text(error.message, error.status);
    throw error;
  }
}

function hexOf(database: Identity | string): string {
  return typeof database === "string" ? Identity.fromHex(database).toHex() : database.toHex();
}

function invalidIdentity(c: Context): Response {
  return c.text(`Invalid identity "${c.req.param("identity")}": expected 64 hex characters`, 400);
}

export interface AnonymousAuthVariables {
  /** The caller: from its token, or freshly minted when it sent none. */
  auth: AuthResult;
}

/**
 * The anonymous-auth middleware of /v1/database routes: bearer header first, then `?token=`;
 * a rejected token answers 401 (400 for a malformed header); no credential mints a fresh
 * identity. Sets `c.var.auth` and the `spacetime-identity` / `spacetime-identity-token` headers.
 */
export function anonymousAuth(auth: AuthService) {
  return createMiddleware<{ Variables: AnonymousAuthVariables }>(async (c, next) => {
    let result: AuthResult;
    try {
      result = await auth.authenticateOrMint(c.req.raw.headers, new URL(c.req.url).searchParams);
    } catch (error) {
      if (error instanceof AuthError) return c.text(error.message, error.status);
      throw error;
    }
    c.set("auth", result);
    await next();
    // A WebSocket upgrade response has immutable headers; the identity travels in the
    // InitialConnection message there.
    try {
      c.res.headers.set("spacetime-identity", result.identity.toHex());
      c.res.headers.set("spacetime-identity-token", result.token);
    } catch {
      // Immutable headers (e.g. 101 Switching Protocols): nothing to add.
    }
  });
}
