/**
 * OpenID Connect: verifies tokens from configured third-party issuers with keys found through
 * discovery (`<iss>/.well-known/openid-configuration` -> `jwks_uri`). Key sets are cached, and
 * fetched again when a token names an unknown key id, so a provider's key rotation is picked up.
 * Signatures are checked by `jose`; claims are checked by the caller (token.ts).
 */
import {
  compactVerify,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors,
} from "jose";
import type { Clock } from "../lib/clock.ts";
import { systemClock } from "../lib/clock.ts";
import { log } from "../lib/log.ts";
import { AuthError, invalid } from "./token.ts";

/** Asymmetric algorithms accepted from OIDC providers. HMAC and "none" are never accepted. */
export const OIDC_SIGNATURE_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** Issuer entry that trusts every issuer, as SpacetimeDB does by default. */
export const ANY_ISSUER = "*";
/** How long a provider's discovery document and key set are reused (SpacetimeDB: 5 min). */
export const OIDC_CACHE_MAX_AGE_MS_DEFAULT = 5 * 60_000;
/** Least time between key-set fetches caused by an unknown key id. */
export const OIDC_REFETCH_COOLDOWN_MS_DEFAULT = 30_000;
/** Time allowed for one discovery or key-set request. */
export const OIDC_FETCH_TIMEOUT_MS_DEFAULT = 5_000;

export interface OidcOptions {
  /**
   * Issuers whose tokens are accepted, spelled exactly as in their `iss` claim. The entry "*"
   * accepts any issuer; that lets any token make this server fetch the URL in its `iss`.
   */
  issuers: readonly string[];
  /** When non-empty, an OIDC token's `aud` must contain one of these. */
  audiences?: readonly string[];
  cacheMaxAgeMs?: number;
  refetchCooldownMs?: number;
  fetchTimeoutMs?: number;
}

export interface OidcDependencies {
  fetch?: typeof fetch;
  clock?: Clock;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

interface IssuerKeys {
  keySet: KeySet;
  jwksUri: string;
  loadedAtMs: number;
}

export class OidcVerifier {
  readonly #issuers: ReadonlySet<string>;
  readonly #audiences: readonly string[];
  readonly #cacheMaxAgeMs: number;
  readonly #refetchCooldownMs: number;
  readonly #fetchTimeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #clock: Clock;
  readonly #cache = new Map<string, Promise<IssuerKeys>>();

  constructor(options: OidcOptions, dependencies: OidcDependencies = {}) {
    for (const issuer of options.issuers) {
      if (issuer !== ANY_ISSUER) issuerBaseUrl(issuer);
    }
    this.#issuers = new Set(options.issuers);
    this.#audiences = [...(options.audiences ?? [])];
    this.#cacheMaxAgeMs = options.cacheMaxAgeMs ?? OIDC_CACHE_MAX_AGE_MS_DEFAULT;
    this.#refetchCooldownMs = options.refetchCooldownMs ?? OIDC_REFETCH_COOLDOWN_MS_DEFAULT;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? OIDC_FETCH_TIMEOUT_MS_DEFAULT;
    this.#fetch = dependencies.fetch ?? fetch;
    this.#clock = dependencies.clock ?? systemClock;
  }

  /** Audiences an OIDC token must match; empty means any. */
  get audiences(): readonly string[] {
    return this.#audiences;
  }

  trusts(issuer: string): boolean {
    return this.#issuers.has(ANY_ISSUER) || this.#issuers.has(issuer);
  }

  /** Checks the token's signature against the issuer's published keys; throws AuthError. */
  async verifySignature(token: string, issuer: string): Promise<void> {
    if (!this.trusts(issuer)) {
      throw invalid("issuer", `issuer "${issuer}" is not trusted by this server`);
    }
    let algorithm: unknown;
    try {
      algorithm = decodeProtectedHeader(token).alg;
    } catch (error) {
      throw invalid("malformed_token", errorText(error));
    }
    if (typeof algorithm !== "string" || !OIDC_SIGNATURE_ALGORITHMS.includes(algorithm)) {
      throw invalid("algorithm", `algorithm "${String(algorithm)}" is not allowed`);
    }
    const keys = await this.#issuerKeys(issuer);
    const options = { algorithms: [...OIDC_SIGNATURE_ALGORITHMS] };
    try {
      await compactVerify(token, keys.keySet, options);
    } catch (error) {
      if (error instanceof errors.JWKSMultipleMatchingKeys) {
        // No `kid` and several usable keys: try each, as SpacetimeDB does.
        for await (const key of error) {
          try {
            await compactVerify(token, key, options);
            return;
          } catch {
            continue;
          }
        }
        throw invalid("signature", "signature verification failed");
      }
      throw joseErrorToAuthError(error, issuer, keys.jwksUri);
    }
  }

  /** Drops cached discovery documents and key sets. */
  clearCache(): void {
    this.#cache.clear();
  }

  #issuerKeys(issuer: string): Promise<IssuerKeys> {
    const cached = this.#cache.get(issuer);
    const nowMs = this.#clock.monotonicMs();
    if (cached !== undefined) {
      return cached.then((keys) => {
        if (nowMs - keys.loadedAtMs < this.#cacheMaxAgeMs) return keys;
        if (this.#cache.get(issuer) === cached) this.#cache.delete(issuer);
        return this.#issuerKeys(issuer);
      });
    }
    const loading = this.#discover(issuer, nowMs);
    this.#cache.set(issuer, loading);
    loading.catch(() => {
      if (this.#cache.get(issuer) === loading) this.#cache.delete(issuer);
    });
    return loading;
  }

  async #discover(issuer: string, nowMs: number): Promise<IssuerKeys> {
    const base = issuerBaseUrl(issuer);
    const discoveryUrl = `${base}/.well-known/openid-configuration`;
    log.info("Fetching OpenID configuration", { issuer, url: discoveryUrl });
    let document: Record<string, unknown>;
    try {
      const response = await this.#fetch(discoveryUrl, {
        headers: { accept: "application/json" },
        redirect: "manual",
        signal: AbortSignal.timeout(this.#fetchTimeoutMs),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status}`);
      }
      const parsed: unknown = await response.json();
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error("the document is not a JSON object");
      }
      document = parsed as Record<string, unknown>;
    } catch (error) {
      log.warn("OpenID configuration fetch failed", { issuer, error: errorText(error) });
      throw unavailable(issuer, `cannot fetch ${discoveryUrl}: ${errorText(error)}`);
    }
    const statedIssuer = document.issuer;
    if (typeof statedIssuer !== "string" || trimSlashes(statedIssuer) !== base) {
      throw unavailable(issuer, `the OpenID configuration names issuer "${String(statedIssuer)}"`);
    }
    const jwksUri = document.jwks_uri;
    let jwksUrl: URL;
    try {
      if (typeof jwksUri !== "string") throw new Error("missing");
      jwksUrl = new URL(jwksUri);
      if (jwksUrl.protocol !== "https:" && jwksUrl.protocol !== "http:") throw new Error("scheme");
    } catch {
      throw unavailable(issuer, `the OpenID configuration has no usable "jwks_uri"`);
    }
    const keySet = createRemoteJWKSet(jwksUrl, {
      cacheMaxAge: this.#cacheMaxAgeMs,
      cooldownDuration: this.#refetchCooldownMs,
      timeoutDuration: this.#fetchTimeoutMs,
      [customFetch]: this.#fetch,
    });
    return { keySet, jwksUri: jwksUrl.href, loadedAtMs: nowMs };
  }
}

/** The issuer as a URL without trailing slashes; throws RangeError if it is not http(s). */
function issuerBaseUrl(issuer: string): string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new RangeError(`Invalid OpenID issuer "${issuer}": not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new RangeError(`Invalid OpenID issuer "${issuer}": expected an http(s) URL`);
  }
  return trimSlashes(issuer);
}

function trimSlashes(text: string): string {
  return text.replace(/\/+$/, "");
}

function unavailable(issuer: string, detail: string): AuthError {
  return invalid("oidc_unavailable", `cannot get the keys of issuer "${issuer}": ${detail}`);
}

function joseErrorToAuthError(error: unknown, issuer: string, jwksUri: string): AuthError {
  if (error instanceof AuthError) return error;
  if (error instanceof errors.JWKSNoMatchingKey) {
    return invalid("key_not_found", `no key of issuer "${issuer}" matches the token`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return invalid("signature", "signature verification failed");
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return invalid("algorithm", "the token's algorithm is not allowed");
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JOSENotSupported) {
    return invalid("malformed_token", errorText(error));
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return unavailable(issuer, `${jwksUri}: ${errorText(error)}`);
  }
  if (error instanceof errors.JOSEError) {
    // jose's own fetch failures (non-200, bad JSON) land here.
    return unavailable(issuer, `${jwksUri}: ${errorText(error)}`);
  }
  return unavailable(issuer, `${jwksUri}: ${errorText(error)}`);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
