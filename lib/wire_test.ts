import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { decodeWire, encodeWire } from "./wire.ts";
import { seededRandom } from "./random.ts";

function roundTrip(value: unknown): unknown {
  const bytes = encodeWire(value, 0);
  assert(bytes !== undefined, "encodable");
  return decodeWire(bytes);
}

Deno.test("wire round-trips every shape our messages use", () => {
  const values: unknown[] = [
    undefined,
    null,
    true,
    false,
    0,
    -0,
    1,
    -1,
    2 ** 31,
    -(2 ** 31) - 1,
    1.5,
    NaN,
    Infinity,
    "",
    "héllo ✓ 𝄞",
    "x".repeat(100_000),
    0n,
    -1n,
    (1n << 255n) + 12345n,
    -(1n << 200n),
    [1, [2, [3]], "a"],
    { kind: "call", id: 7, args: new Uint8Array([1, 2, 3]), nested: { a: [1n, null] } },
    new Float64Array([1.5, -2, 3e300]),
    new Int32Array([1, -2]),
    new BigUint64Array([1n, 2n ** 64n - 1n]),
    new Map<unknown, unknown>([["a", 1], [2n, { b: 2 }]]),
    new Set([1, "two", 3n]),
    Object.create(null, { x: { value: 1, enumerable: true } }),
  ];
  for (const value of values) {
    const back = roundTrip(value);
    if (typeof value === "number" && Number.isNaN(value)) assert(Number.isNaN(back));
    else if (Object.is(value, -0)) assert(Object.is(back, -0));
    else if (value !== null && typeof value === "object" && getPrototypeOf(value) === null) {
      assertEquals({ ...(back as object) }, { ...value });
    } else assertEquals(back, value);
  }
  // A view into a larger buffer keeps only its own bytes; a decoded array owns its buffer.
  const big = new Uint8Array(100).fill(9);
  const view = roundTrip(big.subarray(10, 13)) as Uint8Array;
  assertEquals(view, new Uint8Array([9, 9, 9]));
  assertEquals(view.buffer.byteLength, 3);
});

function getPrototypeOf(value: object): object | null {
  return Object.getPrototypeOf(value);
}

Deno.test("wire declines what it does not know, so the caller can fall back", () => {
  assertEquals(encodeWire(new Date(), 0), undefined);
  assertEquals(encodeWire({ f: () => 1 }, 0), undefined);
  assertEquals(encodeWire(new (class Point {})(), 0), undefined);
  assertEquals(encodeWire(new DataView(new ArrayBuffer(2)), 0), undefined);
});

Deno.test("wire refuses malformed bytes with an error, never a hang or a prototype change", () => {
  const good = encodeWire({ a: [1, 2, 3], b: "text", c: new Uint8Array(8) }, 0)!;
  for (let cut = 0; cut < good.length; cut++) {
    throws(() => decodeWire(good.subarray(0, cut)));
  }
  throws(() => decodeWire(new Uint8Array([99])), /unknown tag/);
  throws(() => decodeWire(new Uint8Array([8, 0xff, 0xff, 0xff, 0x7f])), /count past the end/);
  let deep = new Uint8Array([3]);
  for (let i = 0; i < 100; i++) deep = new Uint8Array([8, 1, 0, 0, 0, ...deep]);
  throws(() => decodeWire(deep), /too deep/);
  const proto = decodeWire(encodeWire(JSON.parse('{"__proto__": {"polluted": 1}}'), 0)!) as Record<
    string,
    unknown
  >;
  assertEquals(Object.getPrototypeOf(proto), Object.prototype);
  assertEquals(({} as Record<string, unknown>).polluted, undefined);
  // Random garbage: errors only.
  const random = seededRandom(7);
  for (let i = 0; i < 2000; i++) {
    const bytes = random.fill(new Uint8Array(1 + Math.floor(random.next() * 40)));
    try {
      decodeWire(bytes);
    } catch (error) {
      assert(error instanceof RangeError || error instanceof TypeError, String(error));
    }
  }
});
