import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Hono } from "hono";
import { base64url, compactVerify, importSPKI } from "jose";
import { type AuthResult, AuthService, Identity, identityFromClaims } from "../../auth/mod.ts";
import { anonymousAuth, type AnonymousAuthVariables, identityRoutes } from "./identity.ts";

interface Fixture {
  app: Hono;
  auth: AuthService;
  lookups: string[];
}

const OWNED_DATABASE = identityFromClaims("localhost", "database-1");

async function withApp(body: (fixture: Fixture) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-identity-routes-" });
  try {
    const auth = await AuthService.open({ dataDir });
    const lookups: string[] = [];
    const app = new Hono();
    app.route(
      "/v1/identity",
      identityRoutes(auth, {
        databasesOwnedBy(identity) {
          lookups.push(identity.toHex());
          return identity.toHex().startsWith("c200")
            ? [OWNED_DATABASE, "0x" + "ab".repeat(32)]
            : [];
        },
      }),
    );
    await body({ app, auth, lookups });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

function bearer(token: string): HeadersInit {
  return { authorization: `Bearer ${token}` };
}

Deno.test("POST /v1/identity creates a new identity and a token for it", async () => {
  await withApp(async ({ app, auth }) => {
    const response = await app.request("/v1/identity", { method: "POST" });
    assertEquals(response.status, 200);
    assert(response.headers.get("content-type")!.startsWith("application/json"));
    assertEquals(response.headers.get("spacetime-identity"), null);
    const body = await response.json();
    assertEquals(Object.keys(body), ["identity", "token"]);
    assert(/^c200[0-9a-f]{60}$/.test(body.identity), body.identity);
    const checked = await auth.authenticate(body.token);
    assertEquals(checked.identity.toHex(), body.identity);

    const second = await (await app.request("/v1/identity", { method: "POST" })).json();
    assert(second.identity !== body.identity);
  });
});

Deno.test("POST /v1/identity/websocket-token re-signs the caller's token for 60 s", async () => {
  await withApp(async ({ app, auth }) => {
    const minted = await auth.mintIdentity();
    const response = await app.request("/v1/identity/websocket-token", {
      method: "POST",
      headers: bearer(minted.token),
    });
    assertEquals(response.status, 200);
    const { token } = await response.json();
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1])));
    assertEquals(payload.exp - payload.iat, 60);
    assertEquals(payload.sub, minted.claims.sub);
    assert((await auth.authenticate(token)).identity.equals(minted.identity));
  });
});

Deno.test("POST /v1/identity/websocket-token answers 401 or 400 without a usable token", async () => {
  await withApp(async ({ app }) => {
    const missing = await app.request("/v1/identity/websocket-token", { method: "POST" });
    assertEquals(missing.status, 401);
    assertEquals(await missing.text(), "Authorization required");

    const invalid = await app.request("/v1/identity/websocket-token", {
      method: "POST",
      headers: bearer("not-a-token"),
    });
    assertEquals(invalid.status, 401);
    assert((await invalid.text()).startsWith("Invalid token: "));

    const malformed = await app.request("/v1/identity/websocket-token", {
      method: "POST",
      headers: { authorization: "Basic dXNlcjpwYXNz" },
    });
    assertEquals(malformed.status, 400);
    assertEquals(await malformed.text(), "Authorization is invalid: malformed token");
  });
});

Deno.test("GET /v1/identity/public-key serves the SPKI PEM that verifies our tokens", async () => {
  await withApp(async ({ app, auth }) => {
    const response = await app.request("/v1/identity/public-key");
    assertEquals(response.status, 200);
    assertEquals(response.headers.get("content-type"), "application/pem-certificate-chain");
    const pem = await response.text();
    assert(pem.startsWith("-----BEGIN PUBLIC KEY-----\n"), pem);
    assertEquals(pem, auth.publicKeyPem());
    const key = await importSPKI(pem, "ES256");
    const minted = await auth.mintIdentity();
    const { protectedHeader } = await compactVerify(minted.token, key);
    assertEquals(protectedHeader, { typ: "JWT", alg: "ES256" });
  });
});

Deno.test("GET /v1/identity/:identity/verify compares the token's identity with the path", async () => {
  await withApp(async ({ app, auth }) => {
    const minted = await auth.mintIdentity();
    const own = minted.identity.toHex();
    const other = identityFromClaims("localhost", "someone-else").toHex();
    const verify = (identity: string, init?: RequestInit) =>
      app.request(`/v1/identity/${identity}/verify`, init);

    assertEquals((await verify(own, { headers: bearer(minted.token) })).status, 204);
    assertEquals(
      (await verify(`0x${own.toUpperCase()}`, { headers: bearer(minted.token) })).status,
      204,
    );
    const viaQuery = await app.request(`/v1/identity/${own}/verify?token=${minted.token}`);
    assertEquals(viaQuery.status, 204);
    assertEquals((await verify(other, { headers: bearer(minted.token) })).status, 400);
    assertEquals((await verify(own)).status, 401);
    assertEquals((await verify(own, { headers: bearer(minted.token + "x") })).status, 401);
    const badPath = await verify("not-hex", { headers: bearer(minted.token) });
    assertEquals(badPath.status, 400);
    assert((await badPath.text()).includes('Invalid identity "not-hex"'));
  });
});

Deno.test("GET /v1/identity/:identity/databases lists what the lookup says that identity owns", async () => {
  await withApp(async ({ app, lookups }) => {
    const owner = identityFromClaims("localhost", "owner");
    const response = await app.request(`/v1/identity/0x${owner.toHex()}/databases`);
    assertEquals(response.status, 200);
    assertEquals(await response.json(), {
      identities: [OWNED_DATABASE.toHex(), "ab".repeat(32)],
    });
    assertEquals(lookups, [owner.toHex()]);

    const none = await app.request(`/v1/identity/${"00".repeat(32)}/databases`);
    assertEquals(await none.json(), { identities: [] });
    assertEquals((await app.request("/v1/identity/xyz/databases")).status, 400);
  });
});

Deno.test("identity routes answer a browser's CORS preflight over real HTTP", async () => {
  await withApp(async ({ app, auth }) => {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    try {
      const base = `http://127.0.0.1:${server.addr.port}`;
      const preflight = await fetch(`${base}/v1/identity/websocket-token`, {
        method: "OPTIONS",
        headers: {
          origin: "http://localhost:5173",
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization",
        },
      });
      await preflight.body?.cancel();
      assert(preflight.status === 204 || preflight.status === 200, `${preflight.status}`);
      assertEquals(preflight.headers.get("access-control-allow-origin"), "*");
      assertEquals(preflight.headers.get("access-control-allow-methods"), "*");
      assertEquals(
        preflight.headers.get("access-control-allow-headers"),
        "authorization,accept,content-type",
      );

      const minted = await auth.mintIdentity();
      const actual = await fetch(`${base}/v1/identity/websocket-token`, {
        method: "POST",
        headers: { origin: "http://localhost:5173", ...bearer(minted.token) },
      });
      assertEquals(actual.status, 200);
      assertEquals(actual.headers.get("access-control-allow-origin"), "*");
      const { token } = await actual.json();
      assert((await auth.authenticate(token)).identity.equals(minted.identity));
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("anonymousAuth() mints for anonymous callers and rejects bad tokens", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-identity-routes-" });
  try {
    const auth = await AuthService.open({ dataDir });
    const app = new Hono<{ Variables: AnonymousAuthVariables }>();
    app.use("/v1/database/*", anonymousAuth(auth));
    const seen: AuthResult[] = [];
    app.get("/v1/database/:name", (c) => {
      seen.push(c.var.auth);
      return c.text(c.var.auth.identity.toHex());
    });

    const anonymous = await app.request("/v1/database/quickstart");
    assertEquals(anonymous.status, 200);
    const identityHeader = anonymous.headers.get("spacetime-identity")!;
    const tokenHeader = anonymous.headers.get("spacetime-identity-token")!;
    assertEquals(await anonymous.text(), identityHeader);
    assert(
      (await auth.authenticate(tokenHeader)).identity.equals(Identity.fromHex(identityHeader)),
    );

    const known = await app.request("/v1/database/quickstart", { headers: bearer(tokenHeader) });
    assertEquals(known.headers.get("spacetime-identity"), identityHeader);
    assertEquals(seen.length, 2);
    assert(seen[1].identity.equals(seen[0].identity));

    const rejected = await app.request("/v1/database/quickstart?token=garbage");
    assertEquals(rejected.status, 401);
    assert((await rejected.text()).startsWith("Invalid token: "));
    const malformed = await app.request("/v1/database/quickstart", {
      headers: { authorization: "Token abc" },
    });
    assertEquals(malformed.status, 400);
    assertEquals(seen.length, 2);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
