/**
 * SpacetimeDB identities: 256-bit values derived from a token's issuer and subject.
 *
 * An identity is kept as its 32 big-endian bytes ("hex order"): the hex text is those bytes
 * in order and always starts with `c200` for derived identities. BSATN (the wire) stores the
 * u256 little-endian, which is the same bytes reversed.
 */
import { fromHex, toHex } from "../lib/bytes.ts";
import { blake3 } from "@noble/hashes/blake3.js";

const IDENTITY_BYTES = 32;
/** Bytes of the issuer/subject hash kept in a derived identity. */
const ID_HASH_BYTES = 26;
/** Bytes of the checksum between the `c200` prefix and the hash. */
const CHECKSUM_BYTES = 4;
const DERIVED_PREFIX = [0xc2, 0x00] as const;
const HEX_PATTERN = /^(?:0x)?([0-9a-fA-F]{64})$/;

export class Identity {
  readonly #bytes: Uint8Array;

  /** Takes the 32 big-endian bytes (hex order). The bytes are copied. */
  constructor(bigEndianBytes: Uint8Array) {
    if (bigEndianBytes.length !== IDENTITY_BYTES) {
      throw new RangeError(
        `Identity needs ${IDENTITY_BYTES} bytes, got ${bigEndianBytes.length}`,
      );
    }
    this.#bytes = new Uint8Array(bigEndianBytes);
  }

  /** Parses 64 hex characters, with an optional `0x`, in any case. */
  static fromHex(text: string): Identity {
    const identity = Identity.tryFromHex(text);
    if (identity === null) {
      throw new RangeError(`Invalid identity "${text}": expected 64 hex characters`);
    }
    return identity;
  }

  /** Like fromHex but returns null for text that is not an identity. */
  static tryFromHex(text: string): Identity | null {
    const match = HEX_PATTERN.exec(text);
    if (match === null) return null;
    return new Identity(fromHex(match[1]));
  }

  /** From the 32 little-endian bytes BSATN uses. */
  static fromWireBytes(littleEndianBytes: Uint8Array): Identity {
    if (littleEndianBytes.length !== IDENTITY_BYTES) {
      throw new RangeError(
        `Identity needs ${IDENTITY_BYTES} bytes, got ${littleEndianBytes.length}`,
      );
    }
    return new Identity(littleEndianBytes.slice().reverse());
  }

  /** From the u256 value. */
  static fromBigInt(value: bigint): Identity {
    if (value < 0n || value >= 1n << 256n) {
      throw new RangeError(`Identity value ${value} is outside the u256 range`);
    }
    const bytes = new Uint8Array(IDENTITY_BYTES);
    let rest = value;
    for (let i = IDENTITY_BYTES - 1; i >= 0; i--) {
      bytes[i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
    return new Identity(bytes);
  }

  /** The identity SpacetimeDB derives for a token's `iss` and `sub`. */
  static fromClaims(issuer: string, subject: string): Identity {
    return identityFromClaims(issuer, subject);
  }

  /** A copy of the 32 big-endian bytes (hex order). */
  get bytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /** 64 lowercase hex characters, big-endian, no `0x`. */
  toHex(): string {
    return toHex(this.#bytes);
  }

  /** The 32 little-endian bytes BSATN stores. */
  toWireBytes(): Uint8Array {
    return this.#bytes.slice().reverse();
  }

  /** The u256 value. */
  toBigInt(): bigint {
    let value = 0n;
    for (const byte of this.#bytes) value = (value << 8n) | BigInt(byte);
    return value;
  }

  equals(other: Identity): boolean {
    const otherBytes = other.#bytes;
    for (let i = 0; i < IDENTITY_BYTES; i++) {
      if (this.#bytes[i] !== otherBytes[i]) return false;
    }
    return true;
  }

  toString(): string {
    return this.toHex();
  }

  /** JSON form used by the HTTP API: plain hex. */
  toJSON(): string {
    return this.toHex();
  }
}

/**
 * Derives an identity from a JWT issuer and subject, as SpacetimeDB does:
 * `c200 ‖ BLAKE3(c200 ‖ h[0..26])[0..4] ‖ h[0..26]` read big-endian, where
 * `h = BLAKE3(utf8(issuer + "|" + subject))`.
 */
export function identityFromClaims(issuer: string, subject: string): Identity {
  const hash = blake3(new TextEncoder().encode(`${issuer}|${subject}`));
  const idHash = hash.subarray(0, ID_HASH_BYTES);
  const checksumInput = new Uint8Array(DERIVED_PREFIX.length + ID_HASH_BYTES);
  checksumInput.set(DERIVED_PREFIX, 0);
  checksumInput.set(idHash, DERIVED_PREFIX.length);
  const checksum = blake3(checksumInput).subarray(0, CHECKSUM_BYTES);
  const bytes = new Uint8Array(IDENTITY_BYTES);
  bytes.set(DERIVED_PREFIX, 0);
  bytes.set(checksum, DERIVED_PREFIX.length);
  bytes.set(idHash, DERIVED_PREFIX.length + CHECKSUM_BYTES);
  return new Identity(bytes);
}

/** True when the identity has the `c200` prefix and a correct checksum. */
export function hasDerivedChecksum(identity: Identity): boolean {
  const bytes = identity.bytes;
  if (bytes[0] !== DERIVED_PREFIX[0] || bytes[1] !== DERIVED_PREFIX[1]) return false;
  const idHash = bytes.subarray(DERIVED_PREFIX.length + CHECKSUM_BYTES);
  const checksumInput = new Uint8Array(DERIVED_PREFIX.length + ID_HASH_BYTES);
  checksumInput.set(DERIVED_PREFIX, 0);
  checksumInput.set(idHash, DERIVED_PREFIX.length);
  const expected = blake3(checksumInput).subarray(0, CHECKSUM_BYTES);
  const actual = bytes.subarray(DERIVED_PREFIX.length, DERIVED_PREFIX.length + CHECKSUM_BYTES);
  return expected.every((byte, i) => byte === actual[i]);
}
