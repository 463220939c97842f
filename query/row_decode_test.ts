/**
 * The fixed-offset fast paths for small integers (RowView.value, lookupKey) give the same
 * values and key bytes as the general reader and encoder, signed and unsigned, at every
 * position, and step aside after a variable-width column.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { BinaryWriter, type ProductType } from "../protocol/mod.ts";
import { RowLayout } from "./_row_decode.ts";
import { encodeComparable, lookupKey } from "./_encode.ts";
import { scalarOf } from "./_scalar.ts";

const rowType: ProductType = {
  elements: [
    { name: "a", algebraicType: { tag: "I8" } },
    { name: "b", algebraicType: { tag: "U16" } },
    { name: "c", algebraicType: { tag: "I32" } },
    { name: "d", algebraicType: { tag: "U32" } },
    { name: "e", algebraicType: { tag: "I64" } },
    { name: "f", algebraicType: { tag: "I16" } },
    { name: "g", algebraicType: { tag: "String" } },
    { name: "h", algebraicType: { tag: "U32" } },
    { name: "i", algebraicType: { tag: "U8" } },
  ],
};

function row(values: [number, number, number, number, bigint, number, string, number, number]) {
  const w = new BinaryWriter();
  w.writeI8(values[0]);
  w.writeU16(values[1]);
  w.writeI32(values[2]);
  w.writeU32(values[3]);
  w.writeI64(values[4]);
  w.writeI16(values[5]);
  w.writeString(values[6]);
  w.writeU32(values[7]);
  w.writeU8(values[8]);
  return w.finish();
}

Deno.test("small integer columns read at fixed offsets equal the reader's values", () => {
  const layout = new RowLayout(rowType, []);
  const cases: Parameters<typeof row>[0][] = [
    [0, 0, 0, 0, 0n, 0, "", 0, 0],
    [-128, 65535, -2147483648, 4294967295, -1n, -32768, "xyz", 4294967295, 255],
    [127, 1, 2147483647, 2147483648, 1n << 40n, 32767, "a", 7, 1],
    [-1, 258, -1, 16909060, -5n, -2, "long string here", 123456789, 128],
  ];
  assertEquals(Array.from(layout.smallIntOffsets), [0, 1, 3, 7, -1, 19, -1, -1, -1]);
  for (const values of cases) {
    const view = layout.view(row(values));
    assertEquals(
      [0, 1, 2, 3, 4, 5, 7, 8].map((c) => view.value(c)),
      [values[0], values[1], values[2], values[3], values[4], values[5], values[7], values[8]],
    );
  }
});

Deno.test("lookupKey writes the bytes encodeComparable returns", () => {
  for (const element of rowType.elements) {
    const scalar = scalarOf(element.algebraicType, [])!;
    if (scalar.kind !== "int" || !["I8", "U8", "I16", "U16", "I32", "U32"].includes(scalar.tag)) {
      assertEquals(lookupKey(0, scalar ?? { kind: "string" }), undefined);
      continue;
    }
    const bits = Number(scalar.tag.slice(1));
    const signed = scalar.tag.startsWith("I");
    const min = signed ? -(2 ** (bits - 1)) : 0;
    const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
    for (const value of [min, max, 0, 1, -1, 200, 70000].filter((v) => v >= min && v <= max)) {
      const w = new BinaryWriter();
      if (scalar.tag === "I8") w.writeI8(value);
      else if (scalar.tag === "U8") w.writeU8(value);
      else if (scalar.tag === "I16") w.writeI16(value);
      else if (scalar.tag === "U16") w.writeU16(value);
      else if (scalar.tag === "I32") w.writeI32(value);
      else w.writeU32(value);
      assertEquals(Array.from(lookupKey(value, scalar)!), Array.from(w.finish()));
      assertEquals(encodeComparable(value, scalar), w.finish());
    }
  }
});
