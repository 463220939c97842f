/**
 * Identity and authentication end to end (issue #5): a local OpenID provider on loopback logs
 * clients in through the official SDK and plain HTTP, the module sees the derived identity and
 * the token's claims, bad tokens get 401 with the reason on real routes, owner-only actions are
 * refused to everyone else, and tokens outlive a server restart.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { base64url, importPKCS8, SignJWT } from "jose";
import { identityFromClaims, keyPaths } from "../../auth/mod.ts";
import { startTestOidcProvider, type TestOidcProvider } from "../../auth/test_oidc_provider.ts";
import { DbConnection } from "../fixtures/bindings/whoami/index.ts";
import {
  call,
  fixtureBundle,
  publish,
  startServerProcess,
  startTestServer,
  type TestServer,
} from "../support/server.ts";

const DATABASE = "whoami";

/** What the module recorded about a caller (a `seen` row or the `who_am_i` result). */
interface Seen {
  via: string;
  senderHex: string;
  hasJwt: boolean;
  issuer: string;
  subject: string;
  audience: string[];
  jwtIdentityHex: string | undefined;
  email: string | undefined;
  rawPayload: string;
}

interface SdkSeen {
  via: string;
  sender: { toHexString(): string };
  hasJwt: boolean;
  issuer: string;
  subject: string;
  audience: string[];
  jwtIdentity: { toHexString(): string } | undefined;
  email: string | undefined;
  rawPayload: string;
}

function fromSdk(row: SdkSeen): Seen {
  return {
    via: row.via,
    senderHex: row.sender.toHexString(),
    hasJwt: row.hasJwt,
    issuer: row.issuer,
    subject: row.subject,
    audience: [...row.audience],
    jwtIdentityHex: row.jwtIdentity?.toHexString(),
    email: row.email,
    rawPayload: row.rawPayload,
  };
}

/** Decodes the untyped SATS-JSON of a `seen` row or `WhoAmI` (products are arrays). */
function fromHttpJson(value: unknown, options: { withId: boolean }): Seen {
  assert(Array.isArray(value), `expected a product array, got ${JSON.stringify(value)}`);
  const fields = options.withId ? value.slice(1) : value;
  const [via, sender, hasJwt, issuer, subject, audience, jwtIdentity, email, rawPayload] = fields;
  return {
    via,
    senderHex: identityHexOf(sender),
    hasJwt,
    issuer,
    subject,
    audience,
    jwtIdentityHex: optionOf(jwtIdentity, identityHexOf),
    email: optionOf(email, (text) => text as string),
    rawPayload,
  };
}

function identityHexOf(value: unknown): string {
  // An Identity is a product of one u256, written as ["0x…"] (minimal hex).
  assert(Array.isArray(value) && typeof value[0] === "string", JSON.stringify(value));
  return BigInt(value[0]).toString(16).padStart(64, "0");
}

function optionOf<T>(value: unknown, some: (payload: unknown) => T): T | undefined {
  // Sums are [tag, payload]; Option is some = 0, none = 1.
  assert(Array.isArray(value) && value.length === 2, JSON.stringify(value));
  return value[0] === 0 ? some(value[1]) : undefined;
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1])));
}

function derivedHex(issuer: string, subject: string): string {
  return identityFromClaims(issuer, subject).toHex();
}

interface Connected {
  conn: DbConnection;
  identityHex: string;
  token: string;
}

/** Bound on waiting for a connection, so a server that never answers fails the test. */
const CONNECT_WAIT_MS_MAX = 30_000;

function connect(url: string, token?: string): Promise<Connected> {
  return new Promise<Connected>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no answer to the connection within ${CONNECT_WAIT_MS_MAX} ms`)),
      CONNECT_WAIT_MS_MAX,
    );
    const settle = () => clearTimeout(timer);
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName(DATABASE)
      .withToken(token)
      .onConnect((conn, identity, token) => {
        settle();
        resolve({ conn, identityHex: identity.toHexString(), token });
      })
      .onConnectError((_ctx, error) => {
        settle();
        reject(error);
      })
      .build();
  });
}

/** Every row the module wrote for `senderHex`, oldest first (HTTP, as the owner sees it). */
async function seenFrom(url: string, senderHex: string): Promise<Seen[]> {
  const response = await call(url, DATABASE, "seen_from", [{ __identity__: `0x${senderHex}` }]);
  assertEquals(response.status, 200, response.text);
  assert(Array.isArray(response.json), response.text);
  return response.json.map((row) => fromHttpJson(row, { withId: true }));
}

function bearer(token: string): HeadersInit {
  return { authorization: `Bearer ${token}` };
}

async function fetchText(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/**
 * Sends a real WebSocket upgrade request for the subscribe route over a raw TCP connection and
 * returns the status and body (a browser-style WebSocket cannot see a refused upgrade's body).
 */
async function upgrade(url: string, token: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  try {
    const key = base64url.encode(crypto.getRandomValues(new Uint8Array(16)))
      .replaceAll("-", "+").replaceAll("_", "/") + "==";
    const request = [
      `GET /v1/database/${DATABASE}/subscribe?token=${encodeURIComponent(token)} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Protocol: v2.bsatn.spacetimedb",
      "",
      "",
    ].join("\r\n");
    const bytes = new TextEncoder().encode(request);
    for (let written = 0; written < bytes.length;) {
      written += await connection.write(bytes.subarray(written));
    }
    let received = new Uint8Array();
    const buffer = new Uint8Array(16 * 1024);
    const text = () => new TextDecoder().decode(received);
    while (true) {
      const headerEnd = text().indexOf("\r\n\r\n");
      if (headerEnd >= 0) {
        const head = text().slice(0, headerEnd);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
        if (status === 101) return { status, body: "" };
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
        const body = received.subarray(new TextEncoder().encode(head).length + 4);
        if (body.length >= length) {
          return { status, body: new TextDecoder().decode(body.subarray(0, length)) };
        }
      }
      const count = await connection.read(buffer);
      if (count === null) throw new Error(`connection closed early: ${text()}`);
      const next = new Uint8Array(received.length + count);
      next.set(received);
      next.set(buffer.subarray(0, count), received.length);
      received = next;
    }
  } finally {
    connection.close();
  }
}

interface Fixture {
  provider: TestOidcProvider;
  server: TestServer;
  ownerToken: string;
  databaseHex: string;
}

/** A provider, a server that trusts it, and the whoami module published anonymously. */
async function withFixture(body: (fixture: Fixture) => Promise<void>): Promise<void> {
  const provider = await startTestOidcProvider();
  const server = await startTestServer({
    // No cooldown: the provider rotates keys seconds after the first key-set fetch.
    oidc: { issuers: [provider.issuer], audiences: [provider.audience], refetchCooldownMs: 0 },
  });
  try {
    const published = await publish(server.url, DATABASE, await fixtureBundle(DATABASE));
    await body({
      provider,
      server,
      ownerToken: published.token,
      databaseHex: published.identity,
    });
  } finally {
    await server.close();
    await provider.close();
  }
}

function disconnectAll(connections: DbConnection[]): void {
  for (const conn of connections) {
    try {
      conn.disconnect();
    } catch { /* already closed */ }
  }
}

Deno.test({
  name: "an OpenID user's RS256 and ES256 tokens reach the module as the derived identity, " +
    "also after the provider rotates its keys",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await withFixture(async ({ provider, server }) => {
      const open: DbConnection[] = [];
      try {
        const checkSdkLogin = async (alg: "RS256" | "ES256", subject: string) => {
          const claims = { sub: subject, email: `${subject}@example.com` };
          const oidcToken = await provider.token(claims, { alg });
          const expectedHex = derivedHex(provider.issuer, subject);
          const client = await connect(server.url, oidcToken);
          open.push(client.conn);
          assertEquals(client.identityHex, expectedHex);
          assertEquals(client.token, oidcToken, "the SDK keeps the token it was given");

          await client.conn.reducers.record({ note: `sdk ${alg}` });
          const whoAmI = fromSdk(await client.conn.procedures.whoAmI({}) as SdkSeen);
          const rows = await seenFrom(server.url, expectedHex);
          const expectedAudience = [provider.audience];
          for (const seen of [...rows, whoAmI]) {
            assertEquals(seen.senderHex, expectedHex, seen.via);
            assertEquals(seen.hasJwt, true, seen.via);
            assertEquals(seen.issuer, provider.issuer, seen.via);
            assertEquals(seen.subject, subject, seen.via);
            assertEquals(seen.audience, expectedAudience, seen.via);
            assertEquals(seen.jwtIdentityHex, expectedHex, seen.via);
            assertEquals(seen.email, `${subject}@example.com`, seen.via);
            // Over WebSocket the module sees the 60 s token the server re-signed.
            const payload = JSON.parse(seen.rawPayload);
            assertEquals(payload.iss, provider.issuer);
            assertEquals(payload.hex_identity, expectedHex);
            assertEquals(payload.exp - payload.iat, 60);
          }
          assertEquals(rows.map((row) => row.via), ["connect", `sdk ${alg}`]);
          assertEquals(whoAmI.via, "procedure");

          // Plain HTTP with the provider's token: the module sees that token's payload as is.
          const response = await fetchText(`${server.url}/v1/database/${DATABASE}/call/record`, {
            method: "POST",
            headers: { ...bearer(oidcToken), "content-type": "application/json" },
            body: JSON.stringify([`http ${alg}`]),
          });
          assertEquals(response.status, 200, response.text);
          assertEquals(response.headers.get("spacetime-identity"), expectedHex);
          const http = (await seenFrom(server.url, expectedHex)).filter((row) =>
            row.via === `http ${alg}`
          );
          assertEquals(http.length, 1);
          assertEquals(JSON.parse(http[0].rawPayload), payloadOf(oidcToken));
          return oidcToken;
        };

        let beforeRotation = "";
        await t.step("RS256 and ES256 logins through the SDK and over HTTP", async () => {
          beforeRotation = await checkSdkLogin("RS256", "alice");
          await checkSdkLogin("ES256", "bob");
        });

        await t.step(
          "after a key rotation new tokens verify and old-key tokens do not",
          async () => {
            const fetchesBefore = provider.requests.jwks;
            await provider.rotateKeys();
            await checkSdkLogin("ES256", "carol");
            await checkSdkLogin("RS256", "dave");
            assert(
              provider.requests.jwks > fetchesBefore,
              "the new key ids made the server refetch",
            );

            const stale = await call(server.url, DATABASE, "record", ["stale"], beforeRotation);
            assertEquals(stale.status, 401, stale.text);
            assert(/no key of issuer .* matches the token/.test(stale.text), stale.text);
          },
        );
      } finally {
        disconnectAll(open);
      }
    });
  },
});

Deno.test({
  name:
    "rejected tokens get 401 with the reason on /call, websocket-token and the subscribe upgrade",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await withFixture(async ({ provider, server }) => {
      const nowSeconds = Math.floor(Date.now() / 1000);
      const issued = await (await fetch(`${server.url}/v1/identity`, { method: "POST" })).json();
      const serverPublicPem = await (await fetch(`${server.url}/v1/identity/public-key`)).text();
      const serverPrivateKey = await importPKCS8(
        await Deno.readTextFile(keyPaths(server.dataDir).privateKeyPath),
        "ES256",
      );
      const good = await provider.token({ sub: "control" });
      const toTamper = await provider.token({ sub: "rejected-tampered" });
      const [goodHeader, , goodSignature] = good.split(".");
      const providerRsaKey = provider.publishedKeys().find((key) => key.kty === "RSA")!;
      const segment = (value: unknown) =>
        base64url.encode(new TextEncoder().encode(JSON.stringify(value)));
      const flip = (text: string) => {
        const i = Math.floor(text.length / 2);
        return `${text.slice(0, i)}${text[i] === "A" ? "B" : "A"}${text.slice(i + 1)}`;
      };

      const cases: { name: string; subject: string; token: string; reason: RegExp }[] = [
        {
          name: "expired",
          subject: "rejected-expired",
          token: await provider.token({
            sub: "rejected-expired",
            iat: nowSeconds - 7200,
            exp: nowSeconds - 3600,
          }),
          reason: /^Invalid token: token expired at \d{4}-/,
        },
        {
          name: "not yet valid",
          subject: "rejected-nbf",
          token: await provider.token({ sub: "rejected-nbf", nbf: nowSeconds + 3600 }),
          reason: /^Invalid token: token not valid before \d{4}-/,
        },
        {
          name: "wrong audience",
          subject: "rejected-aud",
          token: await provider.token({ sub: "rejected-aud", aud: "someone-else" }),
          reason: /^Invalid token: audience "someone-else" is not accepted by this server$/,
        },
        {
          name: "unknown issuer",
          subject: "rejected-iss",
          token: await provider.token({ sub: "rejected-iss", iss: "https://unknown.example" }),
          reason: /^Invalid token: issuer "https:\/\/unknown\.example" is not trusted/,
        },
        {
          name: "tampered signature",
          subject: "rejected-tampered",
          token: `${toTamper.split(".").slice(0, 2).join(".")}.${flip(toTamper.split(".")[2])}`,
          reason: /^Invalid token: signature verification failed$/,
        },
        {
          name: "payload changed under the provider's signature",
          subject: "rejected-swapped",
          token: `${goodHeader}.${
            segment({ ...payloadOf(good), sub: "rejected-swapped" })
          }.${goodSignature}`,
          reason: /^Invalid token: signature verification failed$/,
        },
        {
          name: "alg none",
          subject: "rejected-none",
          token: `${segment({ alg: "none", typ: "JWT" })}.${
            segment({ ...payloadOf(good), sub: "rejected-none" })
          }.`,
          reason: /^Invalid token: algorithm "none" is not allowed$/,
        },
        {
          name: "HS256 signed with the provider's public key",
          subject: "rejected-hs-oidc",
          token: await new SignJWT({ ...payloadOf(good), sub: "rejected-hs-oidc" })
            .setProtectedHeader({ alg: "HS256", kid: providerRsaKey.kid })
            .sign(new TextEncoder().encode(JSON.stringify(providerRsaKey))),
          reason: /^Invalid token: algorithm "HS256" is not allowed$/,
        },
        {
          name: "HS256 signed with the server's public key",
          subject: "rejected-hs-local",
          token: await new SignJWT({
            sub: "rejected-hs-local",
            iss: "localhost",
            aud: ["spacetimedb"],
            iat: nowSeconds,
          })
            .setProtectedHeader({ alg: "HS256", typ: "JWT" })
            .sign(new TextEncoder().encode(serverPublicPem)),
          reason: /^Invalid token: algorithm "HS256" is not accepted for tokens signed by this/,
        },
        {
          name: "a server-issued token with its subject changed",
          subject: "rejected-local-swap",
          token: `${issued.token.split(".")[0]}.${
            segment({ ...payloadOf(issued.token), sub: "rejected-local-swap" })
          }.${issued.token.split(".")[2]}`,
          reason: /^Invalid token: signature verification failed$/,
        },
        {
          name: "a server-signed token that expired",
          subject: "rejected-local-expired",
          token: await new SignJWT({
            sub: "rejected-local-expired",
            iss: "localhost",
            aud: ["spacetimedb"],
            iat: nowSeconds - 7200,
            exp: nowSeconds - 3600,
          }).setProtectedHeader({ alg: "ES256", typ: "JWT" }).sign(serverPrivateKey),
          reason: /^Invalid token: token expired at \d{4}-/,
        },
        {
          name: "garbage",
          subject: "",
          token: "garbage",
          reason: /^Invalid token: not a compact JWT/,
        },
      ];

      await t.step("control: a good token passes on every route", async () => {
        const callResponse = await call(server.url, DATABASE, "record", ["control"], good);
        assertEquals(callResponse.status, 200, callResponse.text);
        const wsToken = await fetchText(`${server.url}/v1/identity/websocket-token`, {
          method: "POST",
          headers: bearer(good),
        });
        assertEquals(wsToken.status, 200, wsToken.text);
        assertEquals((await upgrade(server.url, JSON.parse(wsToken.text).token)).status, 101);
        assertEquals((await upgrade(server.url, good)).status, 101);
      });

      for (const testCase of cases) {
        await t.step(testCase.name, async () => {
          const callResponse = await call(server.url, DATABASE, "record", ["bad"], testCase.token);
          assertEquals(callResponse.status, 401, `/call: ${callResponse.text}`);
          assert(testCase.reason.test(callResponse.text), `/call: ${callResponse.text}`);

          const wsToken = await fetchText(`${server.url}/v1/identity/websocket-token`, {
            method: "POST",
            headers: bearer(testCase.token),
          });
          assertEquals(wsToken.status, 401, `websocket-token: ${wsToken.text}`);
          assert(testCase.reason.test(wsToken.text), `websocket-token: ${wsToken.text}`);

          const refused = await upgrade(server.url, testCase.token);
          assertEquals(refused.status, 401, `subscribe: ${refused.body}`);
          assert(testCase.reason.test(refused.body), `subscribe: ${refused.body}`);

          if (testCase.subject !== "") {
            for (const issuer of [provider.issuer, "localhost"]) {
              assertEquals(await seenFrom(server.url, derivedHex(issuer, testCase.subject)), []);
            }
          }
        });
      }

      await t.step("a non-Bearer Authorization header is a 400", async () => {
        const response = await fetchText(`${server.url}/v1/database/${DATABASE}/call/record`, {
          method: "POST",
          headers: { authorization: `Basic ${btoa("a:b")}`, "content-type": "application/json" },
          body: JSON.stringify(["basic"]),
        });
        assertEquals(response.status, 400);
        assertEquals(response.text, "Authorization is invalid: malformed token");
      });

      await t.step("the SDK reports a rejected token as a connect error", async () => {
        let failure: unknown;
        try {
          const client = await connect(server.url, cases[0].token);
          client.conn.disconnect();
        } catch (error) {
          failure = error;
        }
        assert(failure instanceof Error, `expected a connect error, got ${failure}`);
        assert(/Failed to verify token/.test(failure.message), failure.message);
      });
    });
  },
});

Deno.test({
  name:
    "owner-only actions are refused to another identity; anonymous clients get fresh identities",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await withFixture(async ({ provider, server, ownerToken, databaseHex }) => {
      const bundle = await fixtureBundle(DATABASE);
      const base = `${server.url}/v1/database/${DATABASE}`;
      const ownerHex = payloadOf(ownerToken).hex_identity as string;
      const kept = await call(server.url, DATABASE, "record", ["kept"], ownerToken);
      assertEquals(kept.status, 200, kept.text);

      const issued = await (await fetch(`${server.url}/v1/identity`, { method: "POST" })).json();
      const others = [
        { name: "another server-issued identity", token: issued.token as string },
        { name: "an OpenID user", token: await provider.token({ sub: "mallory" }) },
      ];
      for (const other of others) {
        await t.step(
          `${other.name} cannot update, reset, delete, read logs or pre-publish`,
          async () => {
            const attempts: { action: string; request: Promise<Response> }[] = [
              {
                action: "update database",
                request: fetch(`${base}?host_type=Js`, {
                  method: "PUT",
                  headers: bearer(other.token),
                  body: bundle,
                }),
              },
              {
                action: "reset database",
                request: fetch(`${base}?host_type=Js&clear=true`, {
                  method: "PUT",
                  headers: bearer(other.token),
                  body: bundle,
                }),
              },
              {
                action: "delete database",
                request: fetch(base, { method: "DELETE", headers: bearer(other.token) }),
              },
              {
                action: "view module logs",
                request: fetch(`${base}/logs?num_lines=10`, { headers: bearer(other.token) }),
              },
              {
                action: "update database",
                request: fetch(`${base}/pre_publish?host_type=Js`, {
                  method: "POST",
                  headers: bearer(other.token),
                  body: bundle,
                }),
              },
            ];
            for (const attempt of attempts) {
              const response = await attempt.request;
              const text = await response.text();
              assertEquals(response.status, 403, `${attempt.action}: ${text}`);
              const callerHex = response.headers.get("spacetime-identity");
              assert(callerHex !== null && callerHex !== ownerHex);
              assertEquals(
                text,
                `${callerHex} is not authorized to perform action on database ${databaseHex}: ${attempt.action}`,
              );
            }
            // Nothing changed: same owner, and the data survived the refused reset and delete.
            const info = await (await fetch(base)).json();
            assertEquals(info.owner_identity.__identity__, `0x${ownerHex}`);
            assertEquals((await seenFrom(server.url, ownerHex)).map((row) => row.via), [
              "connect",
              "kept",
            ]);
          },
        );
      }

      await t.step("the owner may do all of it", async () => {
        const logs = await fetchText(`${base}/logs?num_lines=10`, { headers: bearer(ownerToken) });
        assertEquals(logs.status, 200, logs.text);
        const prePublish = await fetchText(`${base}/pre_publish?host_type=Js`, {
          method: "POST",
          headers: bearer(ownerToken),
          body: bundle,
        });
        assertEquals(prePublish.status, 200, prePublish.text);
        const update = await fetchText(`${base}?host_type=Js`, {
          method: "PUT",
          headers: bearer(ownerToken),
          body: bundle,
        });
        assertEquals(update.status, 200, update.text);
        assertEquals(JSON.parse(update.text).Success.op, "updated");
        const reset = await fetchText(`${base}?host_type=Js&clear=true`, {
          method: "PUT",
          headers: bearer(ownerToken),
          body: bundle,
        });
        assertEquals(reset.status, 200, reset.text);
        assertEquals(await seenFrom(server.url, ownerHex), [], "clear=true dropped the rows");
        const deleted = await fetchText(base, { method: "DELETE", headers: bearer(ownerToken) });
        assertEquals(deleted.status, 200, deleted.text);
        assertEquals((await fetchText(base)).status, 404);
      });
    });
  },
});

Deno.test({
  name: "anonymous clients get fresh identities that the module sees as localhost tokens",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withFixture(async ({ server }) => {
      const open: DbConnection[] = [];
      try {
        const first = await connect(server.url);
        const second = await connect(server.url);
        open.push(first.conn, second.conn);
        const httpHexes: string[] = [];
        for (let i = 0; i < 2; i++) {
          const response = await fetchText(`${server.url}/v1/database/${DATABASE}/call/record`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify([`anonymous http ${i}`]),
          });
          assertEquals(response.status, 200, response.text);
          const hex = response.headers.get("spacetime-identity")!;
          const token = response.headers.get("spacetime-identity-token")!;
          assertEquals(payloadOf(token).hex_identity, hex);
          const verify = await fetch(`${server.url}/v1/identity/${hex}/verify`, {
            headers: bearer(token),
          });
          assertEquals(verify.status, 204);
          httpHexes.push(hex);
        }
        const all = [first.identityHex, second.identityHex, ...httpHexes];
        assertEquals(new Set(all).size, all.length, "every anonymous client is someone new");

        for (const client of [first, second]) {
          const payload = payloadOf(client.token);
          assertEquals(payload.iss, "localhost");
          assertEquals(payload.exp, null, "minted tokens never expire");
          const [seen] = await seenFrom(server.url, client.identityHex);
          assertEquals(seen.via, "connect");
          assertEquals(seen.issuer, "localhost");
          assertEquals(seen.audience, ["spacetimedb"]);
          assert(
            /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(
              seen.subject,
            ),
          );
          assertEquals(derivedHex("localhost", seen.subject), client.identityHex);
        }
      } finally {
        disconnectAll(open);
      }
    });
  },
});

Deno.test({
  name: "tokens survive a server restart on the same data dir",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "lightcone-auth-restart-" });
    try {
      // Before the restart: an owner, a POST /v1/identity token and an SDK-minted token.
      const before = await startTestServer({ dataDir });
      let ownerToken: string;
      let issued: { identity: string; token: string };
      let sdkClient: Connected;
      let publicKeyBefore: string;
      try {
        ownerToken = (await publish(before.url, DATABASE, await fixtureBundle(DATABASE))).token;
        issued = await (await fetch(`${before.url}/v1/identity`, { method: "POST" })).json();
        publicKeyBefore = await (await fetch(`${before.url}/v1/identity/public-key`)).text();
        sdkClient = await connect(before.url);
        sdkClient.conn.disconnect();
      } finally {
        await before.close({ keepData: true });
      }

      const after = await startTestServer({ dataDir });
      const open: DbConnection[] = [];
      try {
        assertEquals(
          await (await fetch(`${after.url}/v1/identity/public-key`)).text(),
          publicKeyBefore,
        );

        const again = await connect(after.url, sdkClient.token);
        open.push(again.conn);
        assertEquals(again.identityHex, sdkClient.identityHex, "the SDK keeps its identity");
        await again.conn.reducers.record({ note: "after restart" });

        const verify = await fetch(`${after.url}/v1/identity/${issued.identity}/verify`, {
          headers: bearer(issued.token),
        });
        assertEquals(verify.status, 204);
        const response = await call(
          after.url,
          DATABASE,
          "record",
          ["issued after restart"],
          issued.token,
        );
        assertEquals(response.status, 200, response.text);

        const sdkRows = (await seenFrom(after.url, again.identityHex)).map((row) => row.via);
        assert(sdkRows.includes("after restart"), JSON.stringify(sdkRows));
        const issuedRows = (await seenFrom(after.url, issued.identity)).map((row) => row.via);
        assert(issuedRows.includes("issued after restart"), JSON.stringify(issuedRows));

        // The owner is still the owner.
        const logs = await fetch(`${after.url}/v1/database/${DATABASE}/logs`, {
          headers: bearer(ownerToken),
        });
        await logs.body?.cancel();
        assertEquals(logs.status, 200);
        const notOwner = await fetch(`${after.url}/v1/database/${DATABASE}/logs`, {
          headers: bearer(issued.token),
        });
        await notOwner.body?.cancel();
        assertEquals(notOwner.status, 403);
      } finally {
        disconnectAll(open);
        await after.close({ keepData: true });
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "main.ts start --oidc-issuer and --oidc-audience configure OpenID Connect",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const provider = await startTestOidcProvider();
    const process = await startServerProcess({
      args: ["--oidc-issuer", provider.issuer, "--oidc-audience", provider.audience],
    });
    try {
      const exchange = async (token: string) =>
        await fetchText(`${process.url}/v1/identity/websocket-token`, {
          method: "POST",
          headers: bearer(token),
        });
      const accepted = await exchange(await provider.token({ sub: "cli-user" }));
      assertEquals(accepted.status, 200, accepted.text);
      const reissued = payloadOf(JSON.parse(accepted.text).token);
      assertEquals(reissued.hex_identity, derivedHex(provider.issuer, "cli-user"));

      const wrongAudience = await exchange(await provider.token({ aud: "other-app" }));
      assertEquals(wrongAudience.status, 401);
      assert(/audience "other-app" is not accepted/.test(wrongAudience.text), wrongAudience.text);
    } finally {
      await process.stop();
      await Deno.remove(process.dataDir, { recursive: true }).catch(() => {});
      await provider.close();
    }
  },
});
