import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { base64url, SignJWT } from "jose";
import { ManualClock } from "../lib/clock.ts";
import { PermissionError } from "../lib/errors.ts";
import { type AuthResult, AuthService, credentialOf } from "./auth_service.ts";
import { requireOwner, sqlAuthContext } from "./authorize.ts";
import { Identity, identityFromClaims } from "./identity.ts";
import { keyPaths, keysFromPrivatePem } from "./keys.ts";
import { AuthError, signToken } from "./token.ts";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function withDataDir(body: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "lightcone-auth-" });
  try {
    await body(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

function segments(token: string): { header: unknown; payload: Record<string, unknown> } {
  const [header, payload] = token.split(".");
  return {
    header: JSON.parse(new TextDecoder().decode(base64url.decode(header))),
    payload: JSON.parse(new TextDecoder().decode(base64url.decode(payload))),
  };
}

function encodeSegment(value: unknown): string {
  return base64url.encode(new TextEncoder().encode(JSON.stringify(value)));
}

/** Changes one character in the middle of the signature. */
function tamperSignature(token: string): string {
  const [header, payload, signature] = token.split(".");
  const i = Math.floor(signature.length / 2);
  const swapped = signature[i] === "A" ? "B" : "A";
  return `${header}.${payload}.${signature.slice(0, i)}${swapped}${signature.slice(i + 1)}`;
}

async function rejection(
  auth: AuthService,
  token: string,
): Promise<AuthError> {
  try {
    await auth.authenticate(token);
  } catch (error) {
    assert(error instanceof AuthError, `expected AuthError, got ${error}`);
    return error;
  }
  throw new Error("token was accepted");
}

Deno.test("mintIdentity() issues an ES256 token with SpacetimeDB's header and claim order", async () => {
  await withDataDir(async (dataDir) => {
    const clock = new ManualClock(1_800_000_000_000_000n);
    const auth = await AuthService.open({ dataDir, clock });
    const minted = await auth.mintIdentity();
    const { header, payload } = segments(minted.token);
    assertEquals(minted.token.split(".")[0], encodeSegment({ typ: "JWT", alg: "ES256" }));
    assertEquals(header, { typ: "JWT", alg: "ES256" });
    assertEquals(Object.keys(payload), ["hex_identity", "sub", "iss", "aud", "iat", "exp"]);
    assertEquals(payload.iss, "localhost");
    assertEquals(payload.aud, ["spacetimedb"]);
    assertEquals(payload.iat, 1_800_000_000);
    assertEquals(payload.exp, null);
    assert(UUID_V4.test(String(payload.sub)), `sub ${payload.sub}`);
    const derived = identityFromClaims("localhost", String(payload.sub));
    assertEquals(payload.hex_identity, derived.toHex());
    assert(minted.identity.equals(derived));
    assertEquals(minted.payloadJson, JSON.stringify(payload));

    const checked = await auth.authenticate(minted.token);
    assert(checked.identity.equals(minted.identity));
    assertEquals(checked.token, minted.token);
    assertEquals(checked.payloadJson, minted.payloadJson);
  });
});

Deno.test("mintIdentity() gives every anonymous client a fresh identity", async () => {
  await withDataDir(async (dataDir) => {
    const auth = await AuthService.open({ dataDir });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add((await auth.mintIdentity()).identity.toHex());
    assertEquals(seen.size, 20);
  });
});

Deno.test("tokens stay valid after a restart on the same data dir", async () => {
  await withDataDir(async (dataDir) => {
    const first = await AuthService.open({ dataDir });
    const minted = await first.mintIdentity();
    const websocketToken = await first.websocketToken(minted.claims);

    const restarted = await AuthService.open({ dataDir });
    assertEquals(restarted.publicKeyPem(), first.publicKeyPem());
    assert((await restarted.authenticate(minted.token)).identity.equals(minted.identity));
    assert((await restarted.authenticate(websocketToken)).identity.equals(minted.identity));

    const paths = keyPaths(dataDir);
    const privatePem = await Deno.readTextFile(paths.privateKeyPath);
    assert(privatePem.startsWith("-----BEGIN PRIVATE KEY-----"));
    assertEquals(await Deno.readTextFile(paths.publicKeyPath), first.publicKeyPem());
    assertEquals((await Deno.stat(paths.privateKeyPath)).mode! & 0o777, 0o600);
    assertEquals([...Deno.readDirSync(paths.directory)].length, 2, "no temporary files left");
  });
});

Deno.test("a missing public key file is recreated from the private key", async () => {
  await withDataDir(async (dataDir) => {
    const first = await AuthService.open({ dataDir });
    await Deno.remove(keyPaths(dataDir).publicKeyPath);
    const again = await AuthService.open({ dataDir });
    assertEquals(again.publicKeyPem(), first.publicKeyPem());
    assertEquals(await Deno.readTextFile(keyPaths(dataDir).publicKeyPath), first.publicKeyPem());
  });
});

Deno.test("servers opening one new data dir at the same time share one key", async () => {
  await withDataDir(async (dataDir) => {
    const services = await Promise.all(
      Array.from({ length: 4 }, () => AuthService.open({ dataDir })),
    );
    const pems = new Set(services.map((service) => service.publicKeyPem()));
    assertEquals(pems.size, 1);
    const minted = await services[1].mintIdentity();
    assert((await services[3].authenticate(minted.token)).identity.equals(minted.identity));
  });
});

Deno.test("a token signed by another server's key is rejected", async () => {
  await withDataDir(async (dataDir) => {
    await withDataDir(async (otherDir) => {
      const ours = await AuthService.open({ dataDir });
      const other = await AuthService.open({ dataDir: otherDir });
      const foreign = await other.mintIdentity();
      const error = await rejection(ours, foreign.token);
      assertEquals(error.status, 401);
      assertEquals(error.code, "signature");
      assertEquals(error.message, "Invalid token: signature verification failed");
    });
  });
});

Deno.test("websocketToken() re-signs the claims with a 60 second expiry", async () => {
  await withDataDir(async (dataDir) => {
    const clock = new ManualClock(1_800_000_000_000_000n);
    const auth = await AuthService.open({ dataDir, clock });
    const minted = await auth.mintIdentity();
    clock.advanceMs(5_000);
    const token = await auth.websocketToken(minted.claims);
    const { payload } = segments(token);
    assertEquals(payload.sub, minted.claims.sub);
    assertEquals(payload.iss, "localhost");
    assertEquals(payload.aud, ["spacetimedb"]);
    assertEquals(payload.iat, 1_800_000_005);
    assertEquals(payload.exp, 1_800_000_065);
    assert((await auth.authenticate(token)).identity.equals(minted.identity));

    // exp is checked with 60 s of leeway.
    clock.advanceMs(110_000);
    assert((await auth.authenticate(token)).identity.equals(minted.identity));
    clock.advanceMs(11_000);
    const error = await rejection(auth, token);
    assertEquals(error.code, "expired");
    assert(error.message.startsWith("Invalid token: token expired at "), error.message);
    // The long-lived token is unaffected.
    assert((await auth.authenticate(minted.token)).identity.equals(minted.identity));
  });
});

Deno.test("websocketToken() keeps a foreign issuer and extra claims", async () => {
  await withDataDir(async (dataDir) => {
    const auth = await AuthService.open({ dataDir });
    const claims = {
      iss: "https://issuer.example",
      sub: "user-7",
      aud: "my-app",
      iat: 1,
      exp: 2,
      email: "user7@example.com",
      roles: ["admin"],
    };
    const token = await auth.websocketToken(claims);
    const { payload } = segments(token);
    assertEquals(Object.keys(payload), [
      "hex_identity",
      "sub",
      "iss",
      "aud",
      "iat",
      "exp",
      "email",
      "roles",
    ]);
    assertEquals(payload.aud, ["my-app"]);
    // Our signature is trusted whatever the issuer, and no OIDC issuer is configured here.
    const result = await auth.authenticate(token);
    assert(result.identity.equals(identityFromClaims("https://issuer.example", "user-7")));
    assertEquals(result.claims.email, "user7@example.com");
    assertEquals(JSON.parse(result.payloadJson).roles, ["admin"]);
  });
});

Deno.test("authenticate() rejects forged, unsigned and garbage tokens with a clear error", async () => {
  await withDataDir(async (dataDir) => {
    const auth = await AuthService.open({ dataDir });
    const minted = await auth.mintIdentity();
    const [header, , signature] = minted.token.split(".");
    const nowSeconds = Math.floor(Date.now() / 1000);
    const claims = { sub: "mallory", iss: "localhost", aud: ["spacetimedb"], iat: nowSeconds };

    const cases: { name: string; token: string; code: string; message: RegExp }[] = [
      {
        name: "tampered signature",
        token: tamperSignature(minted.token),
        code: "signature",
        message: /signature verification failed/,
      },
      {
        name: "payload swapped under a valid signature",
        token: `${header}.${encodeSegment(claims)}.${signature}`,
        code: "signature",
        message: /signature verification failed/,
      },
      {
        name: "alg none",
        token: `${encodeSegment({ alg: "none", typ: "JWT" })}.${encodeSegment(claims)}.`,
        code: "algorithm",
        message: /algorithm "none" is not allowed/,
      },
      {
        name: "HS256 signed with the public key as the secret",
        token: await new SignJWT(claims)
          .setProtectedHeader({ alg: "HS256", typ: "JWT" })
          .sign(new TextEncoder().encode(auth.publicKeyPem())),
        code: "algorithm",
        message: /algorithm "HS256" is not accepted/,
      },
      { name: "empty", token: "", code: "malformed_token", message: /not a compact JWT/ },
      { name: "garbage", token: "garbage", code: "malformed_token", message: /not a compact JWT/ },
      {
        name: "three non-JSON parts",
        token: "abc.def.ghi",
        code: "malformed_token",
        message: /not base64url-encoded UTF-8|not JSON/,
      },
      {
        name: "a JSON array payload",
        token: `${header}.${encodeSegment([1, 2])}.${signature}`,
        code: "malformed_token",
        message: /payload is not a JSON object/,
      },
      {
        name: "characters outside base64url",
        token: "a+b.c/d.e=f",
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
  });
});

Deno.test("authenticate() checks the claims of tokens signed by our own key", async () => {
  await withDataDir(async (dataDir) => {
    const clock = new ManualClock(1_800_000_000_000_000n);
    const auth = await AuthService.open({ dataDir, clock });
    // Sign arbitrary claims with the server's own key, read from its key file.
    const keys = await keysFromPrivatePem(
      await Deno.readTextFile(keyPaths(dataDir).privateKeyPath),
    );
    const now = 1_800_000_000;
    const base = { sub: "carol", iss: "localhost", aud: ["spacetimedb"], iat: now };
    const cases: { name: string; claims: Record<string, unknown>; code: string }[] = [
      { name: "no iat", claims: { ...base, iat: undefined }, code: "claims" },
      { name: "string iat", claims: { ...base, iat: "yesterday" }, code: "claims" },
      { name: "iat in the future", claims: { ...base, iat: now + 3600 }, code: "issued_in_future" },
      { name: "nbf in the future", claims: { ...base, nbf: now + 3600 }, code: "not_yet_valid" },
      { name: "expired", claims: { ...base, exp: now - 61 }, code: "expired" },
      { name: "empty sub", claims: { ...base, sub: "" }, code: "claims" },
      { name: "sub over 128 bytes", claims: { ...base, sub: "é".repeat(65) }, code: "claims" },
      { name: "numeric iss", claims: { ...base, iss: 5 }, code: "claims" },
      { name: "numeric aud", claims: { ...base, aud: 5 }, code: "claims" },
      {
        name: "hex_identity of someone else",
        claims: { ...base, hex_identity: identityFromClaims("localhost", "dave").toHex() },
        code: "identity_mismatch",
      },
    ];
    for (const testCase of cases) {
      const claims = JSON.parse(JSON.stringify(testCase.claims));
      const token = await signToken(keys.privateKey, claims);
      const error = await rejection(auth, token);
      assertEquals(error.code, testCase.code, `${testCase.name}: ${error.message}`);
      assertEquals(error.status, 401);
    }
    // The same claims without the defect are accepted, so the cases above test one thing each.
    const good = await signToken(keys.privateKey, { ...base, exp: now - 59, sub: "x".repeat(128) });
    assert(
      (await auth.authenticate(good)).identity.equals(
        identityFromClaims("localhost", "x".repeat(128)),
      ),
    );
  });
});

Deno.test("credentialOf() prefers the bearer header, then ?token=, and rejects other schemes", () => {
  const query = new URLSearchParams({ token: "from-query" });
  assertEquals(
    credentialOf(new Headers({ authorization: "Bearer from-header" }), query),
    "from-header",
  );
  assertEquals(credentialOf(new Headers({ authorization: "bearer  lower" }), query), "lower");
  assertEquals(credentialOf(new Headers(), query), "from-query");
  assertEquals(credentialOf(new Headers(), new URLSearchParams()), null);
  for (const value of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "token"]) {
    try {
      credentialOf(new Headers({ authorization: value }), query);
      throw new Error(`accepted ${value}`);
    } catch (error) {
      assert(error instanceof AuthError);
      assertEquals(error.status, 400);
      assertEquals(error.message, "Authorization is invalid: malformed token");
    }
  }
});

Deno.test("authenticateOrMint() mints only when the request has no credential", async () => {
  await withDataDir(async (dataDir) => {
    const auth = await AuthService.open({ dataDir });
    const anonymous = await auth.authenticateOrMint(new Headers(), new URLSearchParams());
    assert(anonymous.minted);
    const again: AuthResult & { minted: boolean } = await auth.authenticateOrMint(
      new Headers(),
      new URLSearchParams({ token: anonymous.token }),
    );
    assert(!again.minted);
    assert(again.identity.equals(anonymous.identity));
    await rejects(
      auth.authenticateOrMint(new Headers(), new URLSearchParams({ token: "nope" })),
      (error: unknown) => error instanceof AuthError && error.status === 401,
    );
  });
});

Deno.test("requireOwner() refuses another identity with SpacetimeDB's 403 message", () => {
  const owner = identityFromClaims("localhost", "owner");
  const other = identityFromClaims("localhost", "other");
  const database = identityFromClaims("localhost", "database");
  requireOwner({ caller: owner, owner, database, action: "delete database" });
  try {
    requireOwner({ caller: other, owner, database, action: "delete database" });
    throw new Error("not refused");
  } catch (error) {
    assert(error instanceof PermissionError);
    assertEquals(error.status, 403);
    assertEquals(
      error.message,
      `${other.toHex()} is not authorized to perform action on database ${database.toHex()}: delete database`,
    );
  }
  assert(sqlAuthContext(owner, owner).isOwner);
  assert(!sqlAuthContext(other, owner).isOwner);
  assert(Identity.fromHex(owner.toHex()).equals(sqlAuthContext(owner, owner).caller));
});
