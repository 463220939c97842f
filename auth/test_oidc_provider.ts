/**
 * Test helper (not used by the server): a minimal OpenID provider on 127.0.0.1 with real HTTP
 * discovery and JWKS, RS256 and ES256 keys, and key rotation. End-to-end tests use it to log
 * a client in with a third-party token:
 *
 *   const provider = await startTestOidcProvider();
 *   // start the server with oidc: { issuers: [provider.issuer], audiences: [provider.audience] }
 *   const token = await provider.token({ sub: "alice" });       // RS256 by default
 *   // connect the SDK with .withToken(token); ctx.sender == Identity.fromClaims(provider.issuer, "alice")
 *   await provider.close();
 */
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

export type TestSigningAlgorithm = "RS256" | "ES256";

export interface TestTokenOptions {
  alg?: TestSigningAlgorithm;
  /** The key id put in the header; null leaves `kid` out. Defaults to the current key's id. */
  kid?: string | null;
  /** Sign with a key generated for this call and never published. */
  unpublishedKey?: boolean;
}

export interface TestOidcProvider {
  /** `http://127.0.0.1:<port>`, the `iss` of its tokens. */
  readonly issuer: string;
  /** The default `aud` of its tokens. */
  readonly audience: string;
  /** Requests served so far, by kind. */
  readonly requests: { discovery: number; jwks: number };
  /**
   * A signed token. Defaults: iss = issuer, sub "test-user", aud = audience, iat now,
   * exp now + 1 h. A claim given as undefined is left out.
   */
  token(claims?: Record<string, unknown>, options?: TestTokenOptions): Promise<string>;
  /** New RS256 and ES256 keys with new ids; the old ones stay published only if `keepOld`. */
  rotateKeys(options?: { keepOld?: boolean }): Promise<void>;
  /** Public JWKs currently published. */
  publishedKeys(): JWK[];
  close(): Promise<void>;
}

interface ProviderKey {
  alg: TestSigningAlgorithm;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function startTestOidcProvider(
  options: { audience?: string } = {},
): Promise<TestOidcProvider> {
  const audience = options.audience ?? "lightcone-test";
  let generation = 0;
  let current: ProviderKey[] = [];
  let published: ProviderKey[] = [];
  const requests = { discovery: 0, jwks: 0 };
  let closed = false;

  async function makeKeys(): Promise<ProviderKey[]> {
    generation++;
    const keys: ProviderKey[] = [];
    for (const alg of ["RS256", "ES256"] as const) {
      const kid = `${alg.toLowerCase()}-${generation}`;
      keys.push(await makeKey(alg, kid));
    }
    return keys;
  }

  current = await makeKeys();
  published = [...current];

  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request): Response => {
      const path = new URL(request.url).pathname;
      if (path === "/.well-known/openid-configuration") {
        requests.discovery++;
        return Response.json({
          issuer,
          jwks_uri: `${issuer}/jwks.json`,
          id_token_signing_alg_values_supported: ["RS256", "ES256"],
          response_types_supported: ["id_token"],
          subject_types_supported: ["public"],
        });
      }
      if (path === "/jwks.json") {
        requests.jwks++;
        return Response.json({ keys: published.map((key) => key.publicJwk) });
      }
      return new Response("Not found", { status: 404 });
    },
  );
  const issuer: string = `http://127.0.0.1:${server.addr.port}`;

  return {
    issuer,
    audience,
    requests,
    async token(claims = {}, tokenOptions = {}) {
      const alg = tokenOptions.alg ?? "RS256";
      const nowSeconds = Math.floor(Date.now() / 1000);
      const key = tokenOptions.unpublishedKey
        ? await makeKey(alg, `unpublished-${crypto.randomUUID()}`)
        : current.find((candidate) => candidate.alg === alg)!;
      const payload: Record<string, unknown> = {
        iss: issuer,
        sub: "test-user",
        aud: audience,
        iat: nowSeconds,
        exp: nowSeconds + 3600,
        ...claims,
      };
      for (const [name, value] of Object.entries(payload)) {
        if (value === undefined) delete payload[name];
      }
      const kid = tokenOptions.kid === undefined ? key.kid : tokenOptions.kid;
      const header = kid === null ? { alg, typ: "JWT" } : { alg, typ: "JWT", kid };
      return await new SignJWT(payload).setProtectedHeader(header).sign(key.privateKey);
    },
    async rotateKeys(rotateOptions = {}) {
      const next = await makeKeys();
      published = rotateOptions.keepOld ? [...next, ...published] : [...next];
      current = next;
    },
    publishedKeys() {
      return published.map((key) => ({ ...key.publicJwk }));
    },
    async close() {
      if (closed) return;
      closed = true;
      await server.shutdown();
    },
  };
}

async function makeKey(alg: TestSigningAlgorithm, kid: string): Promise<ProviderKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicJwk };
}
