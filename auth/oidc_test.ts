import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { base64url, SignJWT } from "jose";
import { AuthService } from "./auth_service.ts";
import { identityFromClaims } from "./identity.ts";
import type { OidcOptions } from "./oidc.ts";
import { startTestOidcProvider, type TestOidcProvider } from "./test_oidc_provider.ts";
import { AuthError } from "./token.ts";

interface Fixture {
  provider: TestOidcProvider;
  auth: AuthService;
  dataDir: string;
}

async function withProvider(
  body: (fixture: Fixture) => Promise<void>,
  oidc: (provider: TestOidcProvider) => Partial<OidcOptions> = () => ({}),
): Promise<void> {
  const provider = await startTestOidcProvider();
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-oidc-" });
  try {
    const auth = await AuthService.open({
      dataDir,
      oidc: {
        issuers: [provider.issuer],
        audiences: [provider.audience],
        refetchCooldownMs: 0,
        ...oidc(provider),
      },
    });
    await body({ provider, auth, dataDir });
  } finally {
    await provider.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function rejection(auth: AuthService, token: string): Promise<AuthError> {
  try {
    await auth.authenticate(token);
  } catch (error) {
    assert(error instanceof AuthError, `expected AuthError, got ${error}`);
    return error;
  }
  throw new Error("token was accepted");
}

function encodeSegment(value: unknown): string {
  return base64url.encode(new TextEncoder().encode(JSON.stringify(value)));
}

function tamperSignature(token: string): string {
  const [header, payload, signature] = token.split(".");
  const i = Math.floor(signature.length / 2);
  const swapped = signature[i] === "A" ? "B" : "A";
  return `${header}.${payload}.${signature.slice(0, i)}${swapped}${signature.slice(i + 1)}`;
}

Deno.test("RS256 and ES256 tokens from a configured provider verify to the derived identity", async () => {
  await withProvider(async ({ provider, auth }) => {
    for (const alg of ["RS256", "ES256"] as const) {
      const token = await provider.token({ sub: `alice-${alg}`, email: "a@example.com" }, { alg });
      const result = await auth.authenticate(token);
      assert(result.identity.equals(identityFromClaims(provider.issuer, `alice-${alg}`)));
      assertEquals(result.token, token);
      assertEquals(result.claims.email, "a@example.com");
      assertEquals(JSON.parse(result.payloadJson).sub, `alice-${alg}`);
    }
    // Discovery and the key set were fetched once and then served from the cache.
    await auth.authenticate(await provider.token({ sub: "again" }));
    assertEquals(provider.requests, { discovery: 1, jwks: 1 });
  });
});

Deno.test("new tokens still verify after the provider rotates its keys", async () => {
  await withProvider(async ({ provider, auth }) => {
    const before = await provider.token({ sub: "bob" });
    assert((await auth.authenticate(before)).identity.equals(
      identityFromClaims(provider.issuer, "bob"),
    ));

    await provider.rotateKeys();
    for (const alg of ["RS256", "ES256"] as const) {
      const after = await provider.token({ sub: "bob" }, { alg });
      assert((await auth.authenticate(after)).identity.equals(
        identityFromClaims(provider.issuer, "bob"),
      ));
    }
    assert(provider.requests.jwks >= 2, "the unknown key id made the key set be fetched again");

    // The old key is no longer published, so a token signed with it is now refused.
    const error = await rejection(auth, before);
    assertEquals(error.code, "key_not_found");
    assert(error.message.includes(provider.issuer), error.message);
  });
});

Deno.test("a token without kid is tried against every key that fits its algorithm", async () => {
  await withProvider(async ({ provider, auth }) => {
    await provider.rotateKeys({ keepOld: true });
    const token = await provider.token({ sub: "no-kid" }, { kid: null });
    assert((await auth.authenticate(token)).identity.equals(
      identityFromClaims(provider.issuer, "no-kid"),
    ));
    const unknown = await provider.token({ sub: "no-kid" }, { kid: null, unpublishedKey: true });
    assertEquals((await rejection(auth, unknown)).code, "signature");
  });
});

Deno.test("OIDC tokens are rejected with a clear reason when they are not valid", async () => {
  await withProvider(async ({ provider, auth }) => {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const good = await provider.token({ sub: "eve" });
    const [goodHeader, goodPayload] = good.split(".");
    const publicRsaKey = provider.publishedKeys().find((key) => key.kty === "RSA")!;
    const cases: { name: string; token: string; code: string; message: RegExp }[] = [
      {
        name: "expired",
        token: await provider.token({ iat: nowSeconds - 7200, exp: nowSeconds - 3600 }),
        code: "expired",
        message: /token expired at /,
      },
      {
        name: "not yet valid",
        token: await provider.token({ nbf: nowSeconds + 3600 }),
        code: "not_yet_valid",
        message: /token not valid before /,
      },
      {
        name: "wrong audience",
        token: await provider.token({ aud: ["someone-else"] }),
        code: "audience",
        message: /audience "someone-else" is not accepted/,
      },
      {
        name: "no audience",
        token: await provider.token({ aud: undefined }),
        code: "audience",
        message: /audience none is not accepted/,
      },
      {
        name: "unknown issuer",
        token: await provider.token({ iss: "https://unknown.example" }),
        code: "issuer",
        message: /issuer "https:\/\/unknown.example" is not trusted/,
      },
      {
        name: "tampered signature",
        token: tamperSignature(good),
        code: "signature",
        message: /signature verification failed/,
      },
      {
        name: "signed by a key the provider never published",
        token: await provider.token({}, { unpublishedKey: true }),
        code: "key_not_found",
        message: /no key of issuer/,
      },
      {
        name: "payload changed under a valid signature",
        token: `${goodHeader}.${
          encodeSegment({ ...JSON.parse(atobUrl(goodPayload)), sub: "root" })
        }.${good.split(".")[2]}`,
        code: "signature",
        message: /signature verification failed/,
      },
      {
        name: "alg none",
        token: `${encodeSegment({ alg: "none" })}.${goodPayload}.`,
        code: "algorithm",
        message: /algorithm "none" is not allowed/,
      },
      {
        name: "HS256 signed with the provider's public key",
        token: await new SignJWT(JSON.parse(atobUrl(goodPayload)))
          .setProtectedHeader({ alg: "HS256", kid: publicRsaKey.kid })
          .sign(new TextEncoder().encode(JSON.stringify(publicRsaKey))),
        code: "algorithm",
        message: /algorithm "HS256" is not allowed/,
      },
      {
        name: "garbage",
        token: "eyJhbGciOiJSUzI1NiJ9.garbage",
        code: "malformed_token",
        message: /not a compact JWT/,
      },
    ];
    for (const testCase of cases) {
      const error = await rejection(auth, testCase.token);
      assertEquals(error.status, 401, testCase.name);
      assertEquals(error.code, testCase.code, `${testCase.name}: ${error.message}`);
      assert(error.message.startsWith("Invalid token: "), error.message);
      assert(testCase.message.test(error.message), `${testCase.name}: ${error.message}`);
    }
    // The same provider's well-formed token still passes after all that.
    assert((await auth.authenticate(good)).identity.equals(
      identityFromClaims(provider.issuer, "eve"),
    ));
  });
});

Deno.test("an unconfigured issuer is refused without contacting it", async () => {
  const stranger = await startTestOidcProvider();
  try {
    await withProvider(async ({ auth }) => {
      const token = await stranger.token({ sub: "mallory" });
      const error = await rejection(auth, token);
      assertEquals(error.code, "issuer");
      assertEquals(stranger.requests, { discovery: 0, jwks: 0 });
    });
  } finally {
    await stranger.close();
  }
});

Deno.test("without configured audiences any audience is accepted", async () => {
  await withProvider(async ({ provider, auth }) => {
    const token = await provider.token({ sub: "frank", aud: "anything" });
    assert((await auth.authenticate(token)).identity.equals(
      identityFromClaims(provider.issuer, "frank"),
    ));
  }, () => ({ audiences: [] }));
});

Deno.test("a configured issuer that cannot be reached gives a 401 naming the issuer", async () => {
  const provider = await startTestOidcProvider();
  const token = await provider.token({ sub: "gina" });
  const issuer = provider.issuer;
  await provider.close();
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-oidc-" });
  try {
    const auth = await AuthService.open({ dataDir, oidc: { issuers: [issuer] } });
    const error = await rejection(auth, token);
    assertEquals(error.status, 401);
    assertEquals(error.code, "oidc_unavailable");
    assert(error.message.includes(issuer), error.message);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a websocket token made from an OIDC token verifies with our key alone", async () => {
  await withProvider(async ({ provider, auth, dataDir }) => {
    const token = await provider.token({ sub: "hana", org: "acme" }, { alg: "ES256" });
    const result = await auth.authenticate(token);
    const websocketToken = await auth.websocketToken(result.claims);
    await provider.close();

    // A restarted server with no OIDC configured accepts it: our signature is enough.
    const restarted = await AuthService.open({ dataDir });
    const again = await restarted.authenticate(websocketToken);
    assert(again.identity.equals(identityFromClaims(provider.issuer, "hana")));
    assertEquals(again.claims.iss, provider.issuer);
    assertEquals(again.claims.org, "acme");
    assertEquals(again.claims.aud, [provider.audience]);
    assertEquals(again.claims.exp, (again.claims.iat as number) + 60);
  });
});

function atobUrl(segment: string): string {
  return new TextDecoder().decode(base64url.decode(segment));
}
