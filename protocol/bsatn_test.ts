import { deepStrictEqual, ok as assert, throws } from "node:assert/strict";
import type { AlgebraicType, ProductType, Typespace, Value } from "./algebraic_type.ts";
import {
  BinaryReader,
  BinaryWriter,
  BsatnDecodeError,
  compileProductDecoder,
  decodeValue,
  decodeValueFromBytes,
  encodeValue,
  encodeValueToBytes,
  fixedSizeOf,
  skipValue,
} from "./bsatn.ts";

const T = {
  bool: { tag: "Bool" } as AlgebraicType,
  u8: { tag: "U8" } as AlgebraicType,
  i8: { tag: "I8" } as AlgebraicType,
  u16: { tag: "U16" } as AlgebraicType,
  i16: { tag: "I16" } as AlgebraicType,
  u32: { tag: "U32" } as AlgebraicType,
  i32: { tag: "I32" } as AlgebraicType,
  u64: { tag: "U64" } as AlgebraicType,
  i64: { tag: "I64" } as AlgebraicType,
  u128: { tag: "U128" } as AlgebraicType,
  i128: { tag: "I128" } as AlgebraicType,
  u256: { tag: "U256" } as AlgebraicType,
  i256: { tag: "I256" } as AlgebraicType,
  f32: { tag: "F32" } as AlgebraicType,
  f64: { tag: "F64" } as AlgebraicType,
  string: { tag: "String" } as AlgebraicType,
};
function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  deepStrictEqual(actual, expected, message);
}
function assertThrows(
  fn: () => unknown,
  errorClass: new (...args: never[]) => Error,
  includes?: string,
) {
  throws(
    fn,
    (e: unknown) => e instanceof errorClass && (!includes || e.message.includes(includes)),
  );
}
function array(t: AlgebraicType): AlgebraicType {
  return { tag: "Array", value: t };
}
function option(t: AlgebraicType): AlgebraicType {
  return {
    tag: "Sum",
    value: {
      variants: [
        { name: "some", algebraicType: t },
        { name: "none", algebraicType: { tag: "Product", value: { elements: [] } } },
      ],
    },
  };
}
function product(...ts: AlgebraicType[]): AlgebraicType {
  return {
    tag: "Product",
    value: { elements: ts.map((t, i) => ({ name: `f${i}`, algebraicType: t })) },
  };
}

function roundTrip(type: AlgebraicType, value: Value, typespace: Typespace = []): Uint8Array {
  const bytes = encodeValueToBytes(type, value, typespace);
  assertEquals(decodeValueFromBytes(bytes, type, typespace), value);
  const reader = new BinaryReader(bytes);
  skipValue(reader, type, typespace);
  assertEquals(reader.offset, bytes.length, "skipValue consumes exactly the value");
  const fixed = fixedSizeOf(type, typespace);
  if (fixed !== undefined) assertEquals(bytes.length, fixed);
  return bytes;
}

Deno.test("integers round-trip at their extremes", () => {
  const cases: [AlgebraicType, Value[]][] = [
    [T.u8, [0, 1, 255]],
    [T.i8, [-128, 0, 127]],
    [T.u16, [0, 65535]],
    [T.i16, [-32768, 32767]],
    [T.u32, [0, 4294967295]],
    [T.i32, [-2147483648, 2147483647]],
    [T.u64, [0n, (1n << 64n) - 1n]],
    [T.i64, [-(1n << 63n), (1n << 63n) - 1n, -1n]],
    [T.u128, [0n, (1n << 128n) - 1n, 1n << 64n]],
    [T.i128, [-(1n << 127n), (1n << 127n) - 1n, -1n]],
    [T.u256, [0n, (1n << 256n) - 1n, (1n << 200n) + 12345n]],
    [T.i256, [-(1n << 255n), (1n << 255n) - 1n, -1n, -(1n << 130n)]],
  ];
  for (const [type, values] of cases) {
    for (const value of values) roundTrip(type, value);
  }
});

Deno.test("wide integers are little-endian two's complement", () => {
  assertEquals(
    Array.from(encodeValueToBytes(T.i128, -2n)),
    [0xfe, ...new Array(15).fill(0xff)],
  );
  assertEquals(Array.from(encodeValueToBytes(T.u256, 1n << 248n)), [
    ...new Array(31).fill(0),
    1,
  ]);
  assertEquals(Array.from(encodeValueToBytes(T.u32, 0x01020304)), [4, 3, 2, 1]);
});

Deno.test("floats round-trip NaN, -0 and infinities", () => {
  for (const type of [T.f32, T.f64]) {
    for (const value of [0, -0, Infinity, -Infinity, 1.5, -2.25]) {
      const bytes = encodeValueToBytes(type, value);
      assert(Object.is(decodeValueFromBytes(bytes, type), value));
    }
    const nan = decodeValueFromBytes(encodeValueToBytes(type, NaN), type);
    assert(Number.isNaN(nan));
  }
  roundTrip(T.f64, Number.MAX_VALUE);
  roundTrip(T.f64, Number.MIN_VALUE);
  roundTrip(T.f32, 3.4028234663852886e38);
});

Deno.test("strings round-trip empty, ASCII and multi-byte text", () => {
  for (const s of ["", "a", "héllo wörld", "日本語", "🚀 emoji", "x".repeat(100_000)]) {
    const bytes = roundTrip(T.string, s);
    assertEquals(new DataView(bytes.buffer).getUint32(0, true), new TextEncoder().encode(s).length);
  }
});

Deno.test("nested options, sums, arrays and byte arrays round-trip", () => {
  roundTrip(option(option(T.u8)), { tag: 0, value: { tag: 0, value: 7 } });
  roundTrip(option(option(T.u8)), { tag: 0, value: { tag: 1, value: [] } });
  roundTrip(option(T.string), { tag: 1, value: [] });
  roundTrip(array(array(T.i32)), [[1, -2], [], [3]]);
  roundTrip(array(T.u8), new Uint8Array([0, 255, 3]));
  roundTrip(array(array(T.u8)), [new Uint8Array([1]), new Uint8Array(0)]);
  roundTrip(product(T.bool, option(array(T.string)), product()), [true, {
    tag: 0,
    value: ["a", "b"],
  }, []]);
});

Deno.test("Refs resolve through the typespace, including recursive types", () => {
  // List = Sum { nil: (), cons: (U8, Ref 0) }
  const typespace: Typespace = [{
    tag: "Sum",
    value: {
      variants: [
        { name: "nil", algebraicType: { tag: "Product", value: { elements: [] } } },
        { name: "cons", algebraicType: product(T.u8, { tag: "Ref", value: 0 }) },
      ],
    },
  }];
  const list: Value = { tag: 1, value: [1, { tag: 1, value: [2, { tag: 0, value: [] }] }] };
  const bytes = roundTrip({ tag: "Ref", value: 0 }, list, typespace);
  assertEquals(Array.from(bytes), [1, 1, 1, 2, 0]);
  assertEquals(fixedSizeOf({ tag: "Ref", value: 0 }, typespace), undefined);
});

Deno.test("fixedSizeOf reports sizes of fixed types and undefined for variable ones", () => {
  assertEquals(fixedSizeOf(product(T.u8, T.i256, T.f64)), 41);
  assertEquals(fixedSizeOf(option(T.u32)), undefined); // some(4) vs none(0)
  assertEquals(fixedSizeOf(option(product())), 1);
  assertEquals(fixedSizeOf(T.string), undefined);
  assertEquals(fixedSizeOf(array(T.u8)), undefined);
  assertEquals(fixedSizeOf(T.bool), 1);
});

Deno.test("decoding truncated input throws BsatnDecodeError", () => {
  const types: [AlgebraicType, Value][] = [
    [T.u32, 5],
    [T.u256, 5n],
    [T.string, "hello"],
    [array(T.u16), [1, 2]],
    [option(T.u64), { tag: 0, value: 1n }],
    [array(T.u8), new Uint8Array([1, 2, 3])],
  ];
  for (const [type, value] of types) {
    const bytes = encodeValueToBytes(type, value);
    for (let cut = 0; cut < bytes.length; cut++) {
      assertThrows(
        () => decodeValueFromBytes(bytes.subarray(0, cut), type),
        BsatnDecodeError,
      );
      assertThrows(
        () => skipValue(new BinaryReader(bytes.subarray(0, cut)), type),
        BsatnDecodeError,
      );
    }
  }
});

Deno.test("decoding rejects bad bools, bad sum tags, invalid UTF-8 and trailing bytes", () => {
  assertThrows(() => decodeValueFromBytes(new Uint8Array([2]), T.bool), BsatnDecodeError, "bool");
  assertThrows(
    () => decodeValueFromBytes(new Uint8Array([2]), option(T.u8)),
    BsatnDecodeError,
    "sum tag 2",
  );
  assertThrows(
    () => decodeValueFromBytes(new Uint8Array([2, 0, 0, 0, 0xc3, 0x28]), T.string),
    BsatnDecodeError,
    "UTF-8",
  );
  assertThrows(
    () => decodeValueFromBytes(new Uint8Array([1, 0]), T.u8),
    BsatnDecodeError,
    "Trailing",
  );
});

Deno.test("encoding rejects values of the wrong shape or out of range", () => {
  assertThrows(() => encodeValueToBytes(T.u8, 256), TypeError);
  assertThrows(() => encodeValueToBytes(T.i8, -129), TypeError);
  assertThrows(() => encodeValueToBytes(T.u32, 1.5), TypeError);
  assertThrows(() => encodeValueToBytes(T.u64, -1n), TypeError);
  assertThrows(() => encodeValueToBytes(T.u64, 1n << 64n), TypeError);
  assertThrows(() => encodeValueToBytes(T.string, 3), TypeError);
  assertThrows(() => encodeValueToBytes(option(T.u8), { tag: 2, value: [] }), TypeError);
  assertThrows(() => encodeValueToBytes(product(T.u8, T.u8), [1]), TypeError);
  // Numbers are accepted for 64-bit and wider integers when safe.
  assertEquals(decodeValueFromBytes(encodeValueToBytes(T.u64, 42), T.u64), 42n);
});

Deno.test("compileProductDecoder decodes rows and rejects trailing bytes", () => {
  const row: ProductType = {
    elements: [
      { name: "id", algebraicType: T.u32 },
      { name: "name", algebraicType: T.string },
      { name: "tags", algebraicType: array(T.string) },
      { name: "score", algebraicType: option(T.f64) },
    ],
  };
  const type: AlgebraicType = { tag: "Product", value: row };
  const decode = compileProductDecoder(row);
  const value: Value = [7, "ann", ["x", "y"], { tag: 0, value: 2.5 }];
  const bytes = encodeValueToBytes(type, value);
  assertEquals(decode(bytes), value);
  assertEquals(decode(bytes), value, "the reused reader starts over");
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assertThrows(() => decode(longer), BsatnDecodeError, "Trailing");
});

Deno.test("BinaryWriter grows, resets and writes raw primitives", () => {
  const w = new BinaryWriter(8);
  for (let i = 0; i < 1000; i++) w.writeU32(i);
  assertEquals(w.offset, 4000);
  const bytes = w.finish();
  const r = new BinaryReader(bytes);
  for (let i = 0; i < 1000; i++) assertEquals(r.readU32(), i);
  r.expectEnd();
  w.reset();
  w.writeBytes(new Uint8Array([9, 8]));
  w.writeRawBytes(new Uint8Array([7]));
  assertEquals(Array.from(w.finish()), [2, 0, 0, 0, 9, 8, 7]);
  const wr = new BinaryWriter();
  encodeValue(wr, T.i16, -2);
  assertEquals(decodeValue(new BinaryReader(wr.finish()), T.i16), -2);
});

/** Ref i = (a: Ref i+1, b: Ref i+1) down to a u8: 2^depth bytes, but only depth+1 types. */
function typeBomb(depth: number): { typespace: Typespace; reads: () => number } {
  const types: AlgebraicType[] = [];
  for (let i = 0; i < depth; i++) {
    types.push(product({ tag: "Ref", value: i + 1 }, { tag: "Ref", value: i + 1 }));
  }
  types.push(T.u8);
  let reads = 0;
  const typespace = new Proxy(types, {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  return { typespace, reads: () => reads };
}

Deno.test("fixedSizeOf reads a type bomb's typespace linearly often, not 2^depth times", () => {
  const depth = 20;
  const bomb = typeBomb(depth);
  assertEquals(fixedSizeOf({ tag: "Ref", value: 0 }, bomb.typespace), 2 ** depth);
  // Each level has two Ref objects to the next type; the next type itself is sized once.
  const bound = 2 * (depth + 1);
  assert(bomb.reads() <= bound, `typespace read ${bomb.reads()} times for ${depth + 1} types`);
  // Skipping an array of the bomb asks fixedSizeOf too; the answer is cached per typespace.
  const arrayOfBomb = bomb.reads();
  const bytes = new Uint8Array(4 + 2 ** depth);
  bytes[0] = 1; // one element (u32 little-endian), then 2^depth zero bytes
  const reader = new BinaryReader(bytes);
  skipValue(reader, array({ tag: "Ref", value: 0 }), bomb.typespace);
  assertEquals(reader.offset, 4 + 2 ** depth);
  assert(bomb.reads() - arrayOfBomb <= bound, `skipValue read ${bomb.reads()} times`);
});
