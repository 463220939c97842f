import { ok as assert } from "node:assert/strict";
import type { AlgebraicType } from "../protocol/algebraic_type.ts";
import { seededRandom } from "../lib/random.ts";
import { concat, encode, tableSchema } from "./_testing.ts";
import { Datastore } from "./datastore.ts";
import { compileType } from "./row_layout.ts";

const u32 = (v: number) => encode(compileType({ tag: "U32" } as AlgebraicType, []), v);
const str = (v: string) => encode(compileType({ tag: "String" } as AlgebraicType, []), v);

Deno.test("MutTx.deltaBytesMax() bounds the rows a commit record will hold, before commit", () => {
  const seed = Date.now();
  console.log(`seed ${seed}`);
  const random = seededRandom(seed);
  const datastore = new Datastore([
    tableSchema({
      tableId: 0,
      name: "note",
      rowType: {
        elements: [
          { name: "id", algebraicType: { tag: "U32" } as AlgebraicType },
          { name: "text", algebraicType: { tag: "String" } as AlgebraicType },
        ],
      },
      primaryKey: [0],
      uniqueConstraints: [[0]],
      indexes: [{
        indexId: 0,
        name: "note_id_idx_btree",
        sourceName: "note_id",
        accessorName: "id",
        columns: [0],
        unique: true,
        algorithm: "btree",
      }],
    }),
  ]);
  for (let round = 0; round < 200; round++) {
    const tx = datastore.beginMutTx();
    const operations = Math.floor(random.next() * 20);
    for (let i = 0; i < operations; i++) {
      const id = Math.floor(random.next() * 30);
      const row = concat(u32(id), str("x".repeat(Math.floor(random.next() * 300))));
      try {
        if (random.next() < 0.3) tx.deleteByIndexPoint(0, u32(id));
        else if (random.next() < 0.5) tx.update(0, 0, row);
        else tx.insert(0, row);
      } catch { /* duplicate key or missing row: no change */ }
    }
    const bound = tx.deltaBytesMax();
    const delta = tx.commit();
    let actual = 0;
    for (const table of delta.tables) {
      actual += 12;
      for (const row of [...table.inserts, ...table.deletes]) actual += 4 + row.length;
    }
    assert(actual <= bound, `round ${round}: ${actual} bytes of rows, bound ${bound}`);
  }
});
