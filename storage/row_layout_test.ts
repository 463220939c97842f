import { deepStrictEqual, ok } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import type { AlgebraicType, ProductType } from "../protocol/algebraic_type.ts";
import { concat, encode, randomValue, throwsCode } from "./_testing.ts";
import { copyBytes } from "./row_arena.ts";
import { compileType, RowLayout } from "./row_layout.ts";

const optionU16: AlgebraicType = {
  tag: "Sum",
  value: {
    variants: [{ name: "some", algebraicType: { tag: "U16" } }, {
      name: "none",
      algebraicType: { tag: "Product", value: { elements: [] } },
    }],
  },
};
const ROW: ProductType = {
  elements: [
    { name: "id", algebraicType: { tag: "U32" } },
    { name: "flag", algebraicType: { tag: "Bool" } },
    { name: "name", algebraicType: { tag: "String" } },
    { name: "maybe", algebraicType: optionU16 },
    { name: "tags", algebraicType: { tag: "Array", value: { tag: "String" } } },
    { name: "score", algebraicType: { tag: "F64" } },
  ],
};

Deno.test("fixed-size columns get constant offsets until the first variable-size column", () => {
  const layout = new RowLayout(ROW, []);
  deepStrictEqual(layout.fixedOffsets, [0, 4, 5, -1, -1, -1]);
  deepStrictEqual(layout.rowSize, -1);
  const fixed = new RowLayout({
    elements: [
      { name: "a", algebraicType: { tag: "U8" } },
      {
        name: "at",
        algebraicType: {
          tag: "Sum",
          value: {
            variants: [
              { name: "Interval", algebraicType: { tag: "I64" } },
              { name: "Time", algebraicType: { tag: "I64" } },
            ],
          },
        },
      },
      { name: "b", algebraicType: { tag: "U256" } },
    ],
  }, []);
  deepStrictEqual(fixed.fixedOffsets, [0, 1, 10]);
  deepStrictEqual(fixed.rowSize, 42);
});

Deno.test("columnStart finds every column of random rows and validate accepts them", () => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const layout = new RowLayout(ROW, []);
  const types = ROW.elements.map((e) => compileType(e.algebraicType, []));
  for (let n = 0; n < 200; n++) {
    const values = types.map((t) => randomValue(t, random));
    const parts = types.map((t, i) => encode(t, values[i]));
    const row = concat(...parts);
    layout.validate(row);
    let offset = 0;
    for (let col = 0; col < parts.length; col++) {
      deepStrictEqual(layout.columnStart(row, col), offset, `seed ${seed} column ${col}`);
      offset += parts[col].length;
    }
    deepStrictEqual(layout.rowEnd(concat(row, row), row.length, row.length * 2), row.length * 2);
  }
});

Deno.test("validate rejects bad bools, sum tags, UTF-8, truncation and trailing bytes", () => {
  const layout = new RowLayout(ROW, []);
  const good = concat(
    new Uint8Array([1, 0, 0, 0, 1]),
    new Uint8Array([1, 0, 0, 0, 0x61]),
    new Uint8Array([1]),
    new Uint8Array([0, 0, 0, 0]),
    new Uint8Array(8),
  );
  layout.validate(good);
  const broken = (at: number, value: number) => {
    const copy = good.slice();
    copy[at] = value;
    return copy;
  };
  throwsCode(() => layout.validate(broken(4, 2)), "DecodeError"); // bool byte 2
  throwsCode(() => layout.validate(broken(10, 2)), "DecodeError"); // sum tag 2
  throwsCode(() => layout.validate(broken(9, 0xc3)), "DecodeError"); // truncated UTF-8
  throwsCode(() => layout.validate(broken(5, 200)), "DecodeError"); // string longer than row
  throwsCode(() => layout.validate(good.subarray(0, good.length - 1)), "DecodeError");
  throwsCode(() => layout.validate(concat(good, new Uint8Array(1))), "DecodeError");
  const arrayOfUnits = new RowLayout({
    elements: [{
      name: "units",
      algebraicType: { tag: "Array", value: { tag: "Product", value: { elements: [] } } },
    }],
  }, []);
  arrayOfUnits.validate(new Uint8Array([3, 0, 0, 0]));
  throwsCode(() => arrayOfUnits.validate(new Uint8Array([0xff, 0xff, 0xff, 0xff])), "DecodeError");
});

Deno.test("recursive types through Refs compile and validate", () => {
  // List = Sum { nil: (), cons: Product { head: U8, tail: Ref(0) } }
  const typespace: AlgebraicType[] = [{
    tag: "Sum",
    value: {
      variants: [
        { name: "nil", algebraicType: { tag: "Product", value: { elements: [] } } },
        {
          name: "cons",
          algebraicType: {
            tag: "Product",
            value: {
              elements: [
                { name: "head", algebraicType: { tag: "U8" } },
                { name: "tail", algebraicType: { tag: "Ref", value: 0 } },
              ],
            },
          },
        },
      ],
    },
  }];
  const layout = new RowLayout({
    elements: [{ name: "list", algebraicType: { tag: "Ref", value: 0 } }],
  }, typespace);
  deepStrictEqual(layout.rowSize, -1);
  layout.validate(new Uint8Array([1, 7, 1, 8, 0]));
  throwsCode(() => layout.validate(new Uint8Array([1, 7, 1, 8])), "DecodeError");
});

Deno.test("copyBytes returns independent copies, also of large rows", () => {
  const small = new Uint8Array([1, 2, 3]);
  const copy = copyBytes(small);
  small[0] = 9;
  deepStrictEqual([...copy], [1, 2, 3]);
  const large = new Uint8Array(1000).fill(5);
  const bigCopy = copyBytes(large, 10, 900);
  large.fill(0);
  deepStrictEqual(bigCopy.length, 890);
  ok(bigCopy.every((b) => b === 5));
  // Many small copies do not overlap.
  const copies = Array.from(
    { length: 5000 },
    (_, i) => copyBytes(new Uint8Array([i & 0xff, i >> 8])),
  );
  ok(copies.every((c, i) => c[0] === (i & 0xff) && c[1] === i >> 8));
});
