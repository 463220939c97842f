/**
 * The server's authentication: mints anonymous identities, validates tokens (our own first,
 * then OpenID Connect), and re-signs short-lived websocket tokens.
 */
import { toHex } from "../lib/bytes.ts";
import { compactVerify, errors } from "jose";
import type { Clock } from "../lib/clock.ts";
import { systemClock } from "../lib/clock.ts";
import type { Random } from "../lib/random.ts";
import { systemRandom } from "../lib/random.ts";
import type { Identity } from "./identity.ts";
import { loadOrCreateSigningKeys, SIGNING_ALGORITHM, type SigningKeys } from "./keys.ts";
import { type OidcOptions, OidcVerifier } from "./oidc.ts";
import {
  audienceList,
  AuthError,
  checkClaims,
  decodeToken,
  extraClaims,
  invalid,
  issuedClaims,
  type JwtClaims,
  LOCAL_AUDIENCE,
  LOCAL_ISSUER,
  signToken,
  WEBSOCKET_TOKEN_LIFETIME_SECONDS,
} from "./token.ts";

/** A validated credential: who the caller is and the token that proved it. */
export interface AuthResult {
  identity: Identity;
  /** The exact token text that authenticated the request. */
  token: string;
  claims: JwtClaims;
  /** The token's payload JSON text, as the module reads it through `ctx.senderAuth.jwt`. */
  payloadJson: string;
}

/**
 * Tokens whose signature by our key is remembered, so a client reusing its token skips the
 * ECDSA check (about 1 ms in Deno's WebCrypto). Claims are still checked on every use.
 */
export const VERIFIED_TOKENS_MAX = 4096;

export interface AuthServiceOptions {
  dataDir: string;
  oidc?: OidcOptions;
  clock?: Clock;
  random?: Random;
  /** Used for OIDC discovery and key-set requests. */
  fetch?: typeof fetch;
}

export class AuthService {
  readonly #keys: SigningKeys;
  readonly #oidc: OidcVerifier;
  readonly #clock: Clock;
  readonly #random: Random;
  /** Tokens known to carry our signature, oldest use first. */
  readonly #verifiedTokens = new Set<string>();

  private constructor(keys: SigningKeys, options: AuthServiceOptions) {
    this.#keys = keys;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#oidc = new OidcVerifier(options.oidc ?? { issuers: [] }, {
      fetch: options.fetch,
      clock: this.#clock,
    });
  }

  /** Loads (or creates on first start) the signing keys in `<dataDir>/keys/`. */
  static async open(options: AuthServiceOptions): Promise<AuthService> {
    const keys = await loadOrCreateSigningKeys(options.dataDir);
    return new AuthService(keys, options);
  }

  /** SPKI PEM of the signing key, as served at GET /v1/identity/public-key. */
  publicKeyPem(): string {
    return this.#keys.publicKeyPem;
  }

  /** A fresh anonymous identity: issuer "localhost", a random UUIDv4 subject, no expiry. */
  async mintIdentity(): Promise<AuthResult> {
    const claims = issuedClaims({
      issuer: LOCAL_ISSUER,
      subject: uuidV4(this.#random),
      audience: [LOCAL_AUDIENCE],
      issuedAtSeconds: this.#nowSeconds(),
      expiresAtSeconds: null,
    });
    return await this.#signed(claims);
  }

  /** Signs a long-lived token for a given subject under our issuer (e.g. a database identity). */
  async mintForSubject(subject: string): Promise<AuthResult> {
    const claims = issuedClaims({
      issuer: LOCAL_ISSUER,
      subject,
      audience: [LOCAL_AUDIENCE],
      issuedAtSeconds: this.#nowSeconds(),
      expiresAtSeconds: null,
    });
    return await this.#signed(claims);
  }

  /**
   * Re-signs validated claims with our key and a 60 s expiry, keeping `iss`, `sub`, `aud` and
   * extra claims (POST /v1/identity/websocket-token).
   */
  async websocketToken(claims: JwtClaims): Promise<string> {
    const issuer = claims.iss;
    const subject = claims.sub;
    if (typeof issuer !== "string" || typeof subject !== "string") {
      throw new TypeError('websocketToken() needs validated claims with string "iss" and "sub"');
    }
    const nowSeconds = this.#nowSeconds();
    const reissued = issuedClaims({
      issuer,
      subject,
      audience: audienceList(claims.aud) ?? [],
      issuedAtSeconds: nowSeconds,
      expiresAtSeconds: nowSeconds + WEBSOCKET_TOKEN_LIFETIME_SECONDS,
      extra: extraClaims(claims),
    });
    const token = await signToken(this.#keys.privateKey, reissued);
    this.#rememberVerified(token);
    return token;
  }

  /**
   * Validates a token; throws AuthError (401) with the reason. A token signed by our key is
   * accepted whatever its issuer (re-signed OIDC tokens); one claiming our issuer must be
   * signed by our key; any other goes through OIDC if its issuer is configured.
   */
  async authenticate(token: string): Promise<AuthResult> {
    const decoded = decodeToken(token);
    const algorithm = decoded.header.alg;
    if (typeof algorithm !== "string") throw invalid("malformed_token", 'missing "alg" header');
    if (algorithm.toLowerCase() === "none") {
      throw invalid("algorithm", 'algorithm "none" is not allowed');
    }

    const localError = await this.#verifyLocalSignature(token, algorithm);
    if (localError === null) {
      const identity = checkClaims(decoded.claims, { nowSeconds: this.#nowSeconds() });
      return { identity, token, claims: decoded.claims, payloadJson: decoded.payloadJson };
    }

    const issuer = decoded.claims.iss;
    if (typeof issuer !== "string" || issuer.length === 0) {
      throw invalid("claims", 'missing "iss" claim');
    }
    if (issuer === LOCAL_ISSUER) throw localError;
    if (!this.#oidc.trusts(issuer)) {
      throw invalid("issuer", `issuer "${issuer}" is not trusted by this server`);
    }
    await this.#oidc.verifySignature(token, issuer);
    const identity = checkClaims(decoded.claims, {
      nowSeconds: this.#nowSeconds(),
      audiences: this.#oidc.audiences,
    });
    return { identity, token, claims: decoded.claims, payloadJson: decoded.payloadJson };
  }

  /**
   * Reads the credential of an HTTP or WebSocket request: `Authorization: Bearer` first, then
   * the `token` query parameter. Returns null when there is none; throws AuthError (400 for a
   * malformed header, 401 for a rejected token).
   */
  async authenticateRequest(
    headers: Headers,
    query: URLSearchParams,
  ): Promise<AuthResult | null> {
    const token = credentialOf(headers, query);
    return token === null ? null : await this.authenticate(token);
  }

  /** Like authenticateRequest, but mints a fresh identity when there is no credential. */
  async authenticateOrMint(
    headers: Headers,
    query: URLSearchParams,
  ): Promise<AuthResult & { minted: boolean }> {
    const result = await this.authenticateRequest(headers, query);
    if (result !== null) return { ...result, minted: false };
    return { ...(await this.mintIdentity()), minted: true };
  }

  async #verifyLocalSignature(token: string, algorithm: string): Promise<AuthError | null> {
    if (algorithm !== SIGNING_ALGORITHM) {
      return invalid(
        "algorithm",
        `algorithm "${algorithm}" is not accepted for tokens signed by this server`,
      );
    }
    if (this.#verifiedTokens.has(token)) {
      this.#verifiedTokens.delete(token);
      this.#verifiedTokens.add(token);
      return null;
    }
    try {
      await compactVerify(token, this.#keys.publicKey, { algorithms: [SIGNING_ALGORITHM] });
      this.#rememberVerified(token);
      return null;
    } catch (error) {
      if (error instanceof errors.JWSSignatureVerificationFailed) {
        return invalid("signature", "signature verification failed");
      }
      return invalid(
        "malformed_token",
        error instanceof Error ? error.message : String(error),
      );
    }
  }

  #rememberVerified(token: string): void {
    this.#verifiedTokens.add(token);
    if (this.#verifiedTokens.size > VERIFIED_TOKENS_MAX) {
      const oldest = this.#verifiedTokens.values().next().value;
      if (oldest !== undefined) this.#verifiedTokens.delete(oldest);
    }
  }

  async #signed(claims: JwtClaims): Promise<AuthResult> {
    const token = await signToken(this.#keys.privateKey, claims);
    this.#rememberVerified(token);
    const decoded = decodeToken(token);
    const identity = checkClaims(decoded.claims, { nowSeconds: this.#nowSeconds() });
    return { identity, token, claims: decoded.claims, payloadJson: decoded.payloadJson };
  }

  #nowSeconds(): number {
    return Number(this.#clock.nowMicros() / 1_000_000n);
  }
}

/** The token of a request, or null. Throws AuthError(400) for a non-Bearer Authorization. */
export function credentialOf(headers: Headers, query: URLSearchParams): string | null {
  const authorization = headers.get("authorization");
  if (authorization !== null) {
    const match = /^bearer +(\S+) *$/i.exec(authorization);
    if (match === null) throw AuthError.malformedHeader();
    return match[1];
  }
  return query.get("token");
}

/** A random (version 4) UUID in its standard text form. */
function uuidV4(random: Random): string {
  const bytes = random.fill(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = toHex(bytes);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
