import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { crc32c, crc32cUpdate } from "./crc32c.ts";
import { seededRandom } from "../../lib/random.ts";

function bitwiseCrc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

Deno.test("crc32c() matches the published check value and RFC 3720 vectors", () => {
  assertEquals(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array(0)), 0);
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assertEquals(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assertEquals(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assertEquals(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

Deno.test("crc32c() equals a bit-by-bit reference for every length and alignment", () => {
  const random = seededRandom(7);
  const buffer = random.fill(new Uint8Array(300));
  for (let start = 0; start < 9; start++) {
    for (let length = 0; length < 260; length += 1 + (length >> 4)) {
      const view = buffer.subarray(start, start + length);
      assertEquals(crc32c(view), bitwiseCrc32c(view), `start ${start} length ${length}`);
    }
  }
});

Deno.test("crc32cUpdate() over pieces equals crc32c() of the whole", () => {
  const bytes = seededRandom(3).fill(new Uint8Array(1000));
  for (const cut of [0, 1, 5, 8, 13, 500, 999, 1000]) {
    const pieces = crc32cUpdate(crc32cUpdate(0, bytes.subarray(0, cut)), bytes.subarray(cut));
    assertEquals(pieces, crc32c(bytes));
  }
});
