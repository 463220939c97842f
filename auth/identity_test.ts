import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { blake3 } from "@noble/hashes/blake3.js";
import { Identity as SdkIdentity } from "spacetimedb";
import { hasDerivedChecksum, Identity, identityFromClaims } from "./identity.ts";

/*
 * Identity vectors computed outside this code base, with the official BLAKE3 command-line tool
 * (b3sum 1.2.0, the Rust reference implementation) and xxd:
 *
 *   derive() { h=$(printf '%s' "$1|$2" | b3sum --no-names); id26=${h:0:52}
 *              c=$(printf "c200$id26" | xxd -r -p | b3sum --no-names); echo "c200${c:0:8}$id26"; }
 *
 * The first three are also the vectors of spec/client-protocol.md §4.5, which were computed with
 * a third, independent BLAKE3 implementation.
 */
const DERIVATION_VECTORS: { issuer: string; subject: string; hex: string }[] = [
  {
    issuer: "localhost",
    subject: "alice",
    hex: "c20035600353a2e93544d898c6ed0eac323e200c0468300f22958f8b472a265d",
  },
  {
    issuer: "localhost",
    subject: "bob",
    hex: "c200e63a6bd07da2304dd6f5b4691d3338562ceaa43cad4624d0d181a7a6c0d4",
  },
  {
    issuer: "localhost",
    subject: "test-subject",
    hex: "c200b3ce65d91b79ecfb7d881cd65bf8da2f647d590af1474ad19faa7aa87e38",
  },
  {
    issuer: "localhost",
    subject: "6f1b3a9e-2c4d-4e8f-9a0b-1c2d3e4f5a6b",
    hex: "c20093386e7d093048ea99d1ad7b8fa8c64c8a35e9cd7aca954538004e1b0697",
  },
  {
    issuer: "https://auth.example.com",
    subject: "user|123",
    hex: "c2000a14e4089ec2040a9f869065732fbe49685d2333be366b9a527c82cfe10e",
  },
  {
    issuer: "http://127.0.0.1:1234",
    subject: "élan-✓",
    hex: "c200af537457601cd79aeeb361e7fea59b35e2e26fcc3ea49ae64e98d4938c6e",
  },
  {
    issuer: "https://accounts.example.org/",
    subject: "x".repeat(128),
    hex: "c2005c21b60c4bb9d0bcd5b7712a0b4a82328978aa056339f43b920ead15ff63",
  },
];

/**
 * Official BLAKE3 test vectors (input = bytes i % 251, default 32-byte output), reproduced with
 * b3sum 1.2.0. They pin the hash library the derivation uses, across chunk boundaries.
 */
const BLAKE3_VECTORS: { length: number; hex: string }[] = [
  { length: 0, hex: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
  { length: 1, hex: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213" },
  { length: 1023, hex: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11" },
  { length: 1024, hex: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7" },
  { length: 1025, hex: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444" },
  { length: 2048, hex: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a" },
  { length: 2049, hex: "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030" },
  { length: 8193, hex: "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b" },
];

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

Deno.test("identityFromClaims() matches vectors computed with the reference BLAKE3 tool", () => {
  for (const vector of DERIVATION_VECTORS) {
    const identity = identityFromClaims(vector.issuer, vector.subject);
    assertEquals(identity.toHex(), vector.hex, `${vector.issuer} | ${vector.subject}`);
    assert(identity.toHex().startsWith("c200"));
    assert(hasDerivedChecksum(identity));
  }
});

Deno.test("the BLAKE3 library reproduces the official BLAKE3 test vectors", () => {
  for (const vector of BLAKE3_VECTORS) {
    const input = Uint8Array.from({ length: vector.length }, (_, i) => i % 251);
    assertEquals(toHex(blake3(input)), vector.hex, `length ${vector.length}`);
  }
  assertEquals(
    toHex(blake3(new TextEncoder().encode("abc"))),
    "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
  );
});

Deno.test("Identity byte orders agree with the spacetimedb SDK's Identity", () => {
  for (const vector of DERIVATION_VECTORS) {
    const ours = Identity.fromHex(vector.hex);
    const sdk = new SdkIdentity(vector.hex);
    assertEquals(sdk.toHexString(), ours.toHex());
    assertEquals(sdk.__identity__, ours.toBigInt());
    // The SDK's toUint8Array() is the BSATN (little-endian) encoding.
    assertEquals(sdk.toUint8Array(), ours.toWireBytes());
    assertEquals(new SdkIdentity(ours.toBigInt()).toHexString(), vector.hex);
  }
});

Deno.test("Identity round-trips through hex, wire bytes and bigint", () => {
  const identity = identityFromClaims("localhost", "alice");
  assert(Identity.fromWireBytes(identity.toWireBytes()).equals(identity));
  assert(Identity.fromBigInt(identity.toBigInt()).equals(identity));
  assert(Identity.fromHex(`0x${identity.toHex().toUpperCase()}`).equals(identity));
  assertEquals(identity.toWireBytes()[31], 0xc2);
  assertEquals(identity.bytes[0], 0xc2);
  assertEquals(JSON.stringify({ identity }), `{"identity":"${identity.toHex()}"}`);
  assert(!identity.equals(identityFromClaims("localhost", "bob")));
});

Deno.test("Identity.bytes is a copy that callers cannot use to change the identity", () => {
  const identity = identityFromClaims("localhost", "alice");
  const bytes = identity.bytes;
  bytes[0] = 0;
  assertEquals(identity.bytes[0], 0xc2);
});

Deno.test("Identity.fromHex() rejects text that is not 64 hex characters", () => {
  for (const text of ["", "c200", "zz".repeat(32), "0x" + "a".repeat(63), "a".repeat(65)]) {
    throws(() => Identity.fromHex(text), /^RangeError: Invalid identity/);
    assertEquals(Identity.tryFromHex(text), null);
  }
  throws(() => Identity.fromBigInt(-1n), RangeError);
  throws(() => Identity.fromBigInt(1n << 256n), RangeError);
  throws(() => new Identity(new Uint8Array(31)), RangeError);
});

Deno.test("hasDerivedChecksum() rejects a tampered identity", () => {
  const bytes = identityFromClaims("localhost", "alice").bytes;
  bytes[10] ^= 1;
  assert(!hasDerivedChecksum(new Identity(bytes)));
  assert(!hasDerivedChecksum(Identity.fromBigInt(1n)));
});
