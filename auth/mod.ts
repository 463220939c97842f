/** auth/: SpacetimeDB identities, server-issued tokens, OpenID Connect and owner checks. */
export { hasDerivedChecksum, Identity, identityFromClaims } from "./identity.ts";
export {
  keyPaths,
  keysFromPrivatePem,
  loadOrCreateSigningKeys,
  SIGNING_ALGORITHM,
  type SigningKeys,
} from "./keys.ts";
export {
  audienceList,
  AuthError,
  type AuthErrorCode,
  CLAIM_BYTES_MAX,
  CLOCK_LEEWAY_SECONDS,
  decodeToken,
  type JwtClaims,
  LOCAL_AUDIENCE,
  LOCAL_ISSUER,
  WEBSOCKET_TOKEN_LIFETIME_SECONDS,
} from "./token.ts";
export { ANY_ISSUER, OIDC_SIGNATURE_ALGORITHMS, type OidcOptions, OidcVerifier } from "./oidc.ts";
export {
  type AuthResult,
  AuthService,
  type AuthServiceOptions,
  credentialOf,
} from "./auth_service.ts";
export {
  type OwnerAction,
  type OwnerCheck,
  requireOwner,
  type SqlAuthContext,
  sqlAuthContext,
} from "./authorize.ts";
