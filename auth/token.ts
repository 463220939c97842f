/**
 * JWT shapes and checks shared by our own tokens and OpenID Connect tokens: decoding without
 * trusting, claim validation, and signing with the server key. Signatures are made and checked
 * by `jose`; this file only handles the JSON around them.
 */
import { base64url, CompactSign } from "jose";
import { Identity, identityFromClaims } from "./identity.ts";
import { SIGNING_ALGORITHM } from "./keys.ts";

/** The issuer of tokens this server mints. */
export const LOCAL_ISSUER = "localhost";
/** The audience of tokens this server mints. */
export const LOCAL_AUDIENCE = "spacetimedb";
/** Tolerated clock difference for `exp`, `nbf` and `iat`, as SpacetimeDB's validator allows. */
export const CLOCK_LEEWAY_SECONDS = 60;
/** Lifetime of the short-lived token from POST /v1/identity/websocket-token. */
export const WEBSOCKET_TOKEN_LIFETIME_SECONDS = 60;
/** SpacetimeDB's limit on the byte length of `iss` and `sub`. */
export const CLAIM_BYTES_MAX = 128;
/** Longest token text we try to parse; real tokens are well under 8 KiB. */
export const TOKEN_BYTES_MAX = 64 * 1024;

export type AuthErrorCode =
  | "required"
  | "malformed_header"
  | "malformed_token"
  | "algorithm"
  | "signature"
  | "expired"
  | "not_yet_valid"
  | "issued_in_future"
  | "audience"
  | "issuer"
  | "claims"
  | "identity_mismatch"
  | "key_not_found"
  | "oidc_unavailable";

/** A credential was missing or rejected. `status` is the HTTP status to answer with. */
export class AuthError extends Error {
  override name = "AuthError";
  constructor(readonly code: AuthErrorCode, message: string, readonly status: 400 | 401 = 401) {
    super(message);
  }

  static required(): AuthError {
    return new AuthError("required", "Authorization required");
  }

  static malformedHeader(): AuthError {
    return new AuthError("malformed_header", "Authorization is invalid: malformed token", 400);
  }
}

export type JwtClaims = Record<string, unknown>;

export interface DecodedToken {
  header: Record<string, unknown>;
  claims: JwtClaims;
  /** The payload exactly as it appears in the token, decoded to text. */
  payloadJson: string;
}

const SEGMENT_PATTERN = /^[A-Za-z0-9_-]*$/;

/** Splits and parses a compact JWT without checking its signature. */
export function decodeToken(token: string): DecodedToken {
  if (token.length > TOKEN_BYTES_MAX) {
    throw invalid("malformed_token", `token is ${token.length} bytes, over ${TOKEN_BYTES_MAX}`);
  }
  const parts = token.split(".");
  if (parts.length !== 3 || !parts.every((part) => SEGMENT_PATTERN.test(part))) {
    throw invalid("malformed_token", "not a compact JWT (expected three base64url parts)");
  }
  const header = parseJsonObject(parts[0], "header");
  const payloadJson = decodeSegment(parts[1], "payload");
  const claims = parseJsonObject(parts[1], "payload", payloadJson);
  return { header, claims, payloadJson };
}

function decodeSegment(segment: string, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(base64url.decode(segment));
  } catch {
    throw invalid("malformed_token", `the ${what} is not base64url-encoded UTF-8`);
  }
}

function parseJsonObject(segment: string, what: string, text?: string): Record<string, unknown> {
  const json = text ?? decodeSegment(segment, what);
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalid("malformed_token", `the ${what} is not JSON`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid("malformed_token", `the ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

export interface ClaimCheckOptions {
  nowSeconds: number;
  leewaySeconds?: number;
  /** When given, the token's `aud` must contain one of these. */
  audiences?: readonly string[];
}

/**
 * Checks the claims of a token whose signature is already verified and returns the identity
 * derived from `iss` and `sub`.
 */
export function checkClaims(claims: JwtClaims, options: ClaimCheckOptions): Identity {
  const leewaySeconds = options.leewaySeconds ?? CLOCK_LEEWAY_SECONDS;
  const issuer = requireShortString(claims, "iss");
  const subject = requireShortString(claims, "sub");

  const issuedAt = claims.iat;
  if (issuedAt === undefined || issuedAt === null) {
    throw invalid("claims", 'missing "iat" claim');
  }
  if (!isNumericDate(issuedAt)) throw invalid("claims", '"iat" claim must be a number');
  if (issuedAt > options.nowSeconds + leewaySeconds) {
    throw invalid("issued_in_future", `token issued in the future, at ${isoTime(issuedAt)}`);
  }

  const notBefore = claims.nbf;
  if (notBefore !== undefined && notBefore !== null) {
    if (!isNumericDate(notBefore)) throw invalid("claims", '"nbf" claim must be a number');
    if (notBefore > options.nowSeconds + leewaySeconds) {
      throw invalid("not_yet_valid", `token not valid before ${isoTime(notBefore)}`);
    }
  }

  const expiresAt = claims.exp;
  if (expiresAt !== undefined && expiresAt !== null) {
    if (!isNumericDate(expiresAt)) throw invalid("claims", '"exp" claim must be a number');
    if (expiresAt + leewaySeconds <= options.nowSeconds) {
      throw invalid("expired", `token expired at ${isoTime(expiresAt)}`);
    }
  }

  if (options.audiences !== undefined && options.audiences.length > 0) {
    const audience = audienceList(claims.aud);
    if (audience === null) throw invalid("claims", '"aud" claim must be a string or an array');
    if (!audience.some((entry) => options.audiences!.includes(entry))) {
      const shown = audience.length === 0 ? "none" : audience.map((a) => `"${a}"`).join(", ");
      throw invalid("audience", `audience ${shown} is not accepted by this server`);
    }
  } else if (audienceList(claims.aud) === null) {
    throw invalid("claims", '"aud" claim must be a string or an array');
  }

  const identity = identityFromClaims(issuer, subject);
  const stated = claims.hex_identity;
  if (stated !== undefined && stated !== null) {
    const statedIdentity = typeof stated === "string" ? Identity.tryFromHex(stated) : null;
    if (statedIdentity === null) {
      throw invalid("claims", '"hex_identity" claim is not a 64-character hex identity');
    }
    if (!statedIdentity.equals(identity)) {
      throw invalid(
        "identity_mismatch",
        `token identity ${statedIdentity.toHex()} does not match computed identity ${identity.toHex()}`,
      );
    }
  }
  return identity;
}

/** `aud` as a list: a string becomes one entry, absent becomes empty, anything else null. */
export function audienceList(audience: unknown): string[] | null {
  if (audience === undefined || audience === null) return [];
  if (typeof audience === "string") return [audience];
  if (Array.isArray(audience) && audience.every((entry) => typeof entry === "string")) {
    return audience as string[];
  }
  return null;
}

export interface IssuedClaimsInput {
  issuer: string;
  subject: string;
  audience: readonly string[];
  issuedAtSeconds: number;
  /** null for a token that never expires. */
  expiresAtSeconds: number | null;
  /** Claims copied after the standard ones (e.g. from a re-signed OIDC token). */
  extra?: JwtClaims;
}

const STANDARD_CLAIMS = new Set(["hex_identity", "sub", "iss", "aud", "iat", "exp"]);

/** Claims in SpacetimeDB's order: hex_identity, sub, iss, aud, iat, exp, then the extras. */
export function issuedClaims(input: IssuedClaimsInput): JwtClaims {
  const claims: JwtClaims = {
    hex_identity: identityFromClaims(input.issuer, input.subject).toHex(),
    sub: input.subject,
    iss: input.issuer,
    aud: [...input.audience],
    iat: input.issuedAtSeconds,
    exp: input.expiresAtSeconds,
  };
  for (const [name, value] of Object.entries(input.extra ?? {})) {
    if (!STANDARD_CLAIMS.has(name)) claims[name] = value;
  }
  return claims;
}

/** The claims of `claims` that are not among the ones this server sets itself. */
export function extraClaims(claims: JwtClaims): JwtClaims {
  const extra: JwtClaims = {};
  for (const [name, value] of Object.entries(claims)) {
    if (!STANDARD_CLAIMS.has(name)) extra[name] = value;
  }
  return extra;
}

/** Signs `claims` as an ES256 JWT with header `{"typ":"JWT","alg":"ES256"}` and no `kid`. */
export async function signToken(privateKey: CryptoKey, claims: JwtClaims): Promise<string> {
  const payload = new TextEncoder().encode(JSON.stringify(claims));
  return await new CompactSign(payload)
    .setProtectedHeader({ typ: "JWT", alg: SIGNING_ALGORITHM })
    .sign(privateKey);
}

function requireShortString(claims: JwtClaims, name: "iss" | "sub"): string {
  const value = claims[name];
  if (value === undefined || value === null) throw invalid("claims", `missing "${name}" claim`);
  if (typeof value !== "string") throw invalid("claims", `"${name}" claim must be a string`);
  if (value.length === 0) throw invalid("claims", `"${name}" claim is empty`);
  const byteLength = new TextEncoder().encode(value).length;
  if (byteLength > CLAIM_BYTES_MAX) {
    throw invalid(
      "claims",
      `"${name}" claim is ${byteLength} bytes, over the limit of ${CLAIM_BYTES_MAX}`,
    );
  }
  return value;
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

/** An AuthError whose message starts with "Invalid token: ", as SpacetimeDB words them. */
export function invalid(code: AuthErrorCode, detail: string): AuthError {
  return new AuthError(code, `Invalid token: ${detail}`);
}
