/**
 * Test-only: the `conformance` fixture tables of query-subscriptions.md §9.2 as TableSchemas
 * and BSATN rows, and an in-memory CommittedState over them.
 */
import type { AlgebraicType, ProductType, Value } from "../protocol/algebraic_type.ts";
import { encodeValueToBytes } from "../protocol/bsatn.ts";
import type { TableSchema } from "../storage/schema.ts";
import type { CommittedState } from "./execute.ts";

export const IDENTITY: AlgebraicType = {
  tag: "Product",
  value: { elements: [{ name: "__identity__", algebraicType: { tag: "U256" } }] },
};
export const CONNECTION_ID: AlgebraicType = {
  tag: "Product",
  value: { elements: [{ name: "__connection_id__", algebraicType: { tag: "U128" } }] },
};
export const TIMESTAMP: AlgebraicType = {
  tag: "Product",
  value: {
    elements: [{ name: "__timestamp_micros_since_unix_epoch__", algebraicType: { tag: "I64" } }],
  },
};
export const UUID: AlgebraicType = {
  tag: "Product",
  value: { elements: [{ name: "__uuid__", algebraicType: { tag: "U128" } }] },
};
export const BYTES: AlgebraicType = { tag: "Array", value: { tag: "U8" } };

export function makeSchema(
  tableId: number,
  name: string,
  columns: [string, AlgebraicType][],
  options: {
    isPublic?: boolean;
    isEvent?: boolean;
    sourceName?: string;
    /** Indexed column lists (btree); the first is the primary key when `primaryKey` is set. */
    indexes?: number[][];
    primaryKey?: boolean;
  } = {},
): TableSchema {
  const rowType: ProductType = {
    elements: columns.map(([n, algebraicType]) => ({ name: n, algebraicType })),
  };
  return {
    tableId,
    name,
    sourceName: options.sourceName ?? name,
    rowType,
    typespace: [],
    primaryKey: options.primaryKey && options.indexes ? options.indexes[0] : [],
    indexes: (options.indexes ?? []).map((cols, i) => ({
      indexId: tableId * 100 + i,
      name: `${name}_${cols.join("_")}_idx_btree`,
      sourceName: `${name}_${cols.join("_")}_idx_btree`,
      accessorName: undefined,
      algorithm: "btree" as const,
      columns: cols,
      unique: options.primaryKey === true && i === 0,
    })),
    uniqueConstraints: [],
    sequences: [],
    isPublic: options.isPublic ?? true,
    isEvent: options.isEvent ?? false,
  };
}

export function encodeRow(schema: TableSchema, values: Value[]): Uint8Array {
  return encodeValueToBytes({ tag: "Product", value: schema.rowType }, values, schema.typespace);
}

/** Committed rows per table; rows are a set keyed by their bytes, like the datastore's. */
export class MemoryState implements CommittedState {
  readonly #schemas = new Map<number, TableSchema>();
  readonly #rows = new Map<number, Map<string, Uint8Array>>();
  indexLookups = 0;

  constructor(schemas: TableSchema[]) {
    for (const s of schemas) {
      this.#schemas.set(s.tableId, s);
      this.#rows.set(s.tableId, new Map());
    }
  }

  tableIdFromName(name: string): number | undefined {
    for (const s of this.#schemas.values()) if (s.name === name) return s.tableId;
    for (const s of this.#schemas.values()) if (s.sourceName === name) return s.tableId;
    return undefined;
  }
  schema(tableId: number): TableSchema | undefined {
    return this.#schemas.get(tableId);
  }
  tables(): Iterable<TableSchema> {
    return this.#schemas.values();
  }
  committedRows(tableId: number): Iterable<Uint8Array> {
    return this.#rows.get(tableId)!.values();
  }
  has(tableId: number, row: Uint8Array): boolean {
    return this.#rows.get(tableId)!.has(rowKey(row));
  }
  insert(tableId: number, row: Uint8Array): void {
    this.#rows.get(tableId)!.set(rowKey(row), row);
  }
  delete(tableId: number, row: Uint8Array): void {
    this.#rows.get(tableId)!.delete(rowKey(row));
  }
  rowCount(tableId: number): number {
    return this.#rows.get(tableId)!.size;
  }
}

/** A string equal for equal row bytes (one char per byte). */
export function rowKey(row: Uint8Array): string {
  return bytesToKey(row);
}

export const ID_O = 0xc200aaaa_00000000_00000000_00000000_00000000_00000000_00000000_00000001n;
export const ID_A = 0xc200000a_11111111_22222222_33333333_44444444_55555555_66666666_77777777n;
export const ID_B = 0xc200000b_11111111_22222222_33333333_44444444_55555555_66666666_77777777n;
export const ID_C = 0xc200000c_11111111_22222222_33333333_44444444_55555555_66666666_77777777n;

export const PERSON = makeSchema(1, "person", [
  ["id", { tag: "U64" }],
  ["name", { tag: "String" }],
  ["age", { tag: "U8" }],
  ["active", { tag: "Bool" }],
  ["ident", IDENTITY],
  ["born", TIMESTAMP],
  ["score", { tag: "F64" }],
], { indexes: [[0], [4], [2]], primaryKey: true });
export const PET = makeSchema(2, "pet", [
  ["id", { tag: "U64" }],
  ["owner_id", { tag: "U64" }],
  ["species", { tag: "String" }],
], { indexes: [[0], [1]], primaryKey: true });
export const TAG = makeSchema(3, "tag", [["person_id", { tag: "U64" }], ["label", {
  tag: "String",
}]]);
export const NUM = makeSchema(4, "num", [
  ["id", { tag: "U32" }],
  ["i", { tag: "I64" }],
  ["u", { tag: "U64" }],
  ["w", { tag: "U256" }],
], { indexes: [[0]], primaryKey: true });
export const VAULT = makeSchema(
  5,
  "vault",
  [["id", { tag: "U64" }], ["secret", { tag: "String" }]],
  { isPublic: false, indexes: [[0]], primaryKey: true },
);
export const HIT = makeSchema(6, "hit", [["target", { tag: "U64" }], ["dmg", { tag: "U32" }]], {
  isEvent: true,
  indexes: [[0]],
});

function micros(iso: string): bigint {
  return BigInt(Date.parse(iso)) * 1000n;
}

/** Labelled fixture rows: label -> [schema, bytes]. */
export const FIXTURE_ROWS: Record<string, [TableSchema, Uint8Array]> = {
  P1: [
    PERSON,
    encodeRow(PERSON, [1n, "Alice", 30, true, [ID_A], [micros("2025-01-01T00:00:00Z")], 1.5]),
  ],
  P2: [
    PERSON,
    encodeRow(PERSON, [2n, "Bob", 25, false, [ID_B], [micros("2025-06-01T12:00:00Z")], 2.5]),
  ],
  P3: [
    PERSON,
    encodeRow(PERSON, [3n, "Carol", 30, true, [ID_C], [micros("2024-12-31T23:59:59Z")], -0.5]),
  ],
  pet10: [PET, encodeRow(PET, [10n, 1n, "cat"])],
  pet11: [PET, encodeRow(PET, [11n, 1n, "dog"])],
  pet12: [PET, encodeRow(PET, [12n, 2n, "cat"])],
  pet13: [PET, encodeRow(PET, [13n, 99n, "fish"])],
  tag1: [TAG, encodeRow(TAG, [1n, "vip"])],
  tag3: [TAG, encodeRow(TAG, [3n, "new"])],
  num1: [NUM, encodeRow(NUM, [1, -9007199254740993n, 18446744073709551615n, 10n ** 40n])],
  num2: [NUM, encodeRow(NUM, [2, -9007199254740992n, 0n, 0n])],
  vault1: [VAULT, encodeRow(VAULT, [1n, "s1"])],
};

export function conformanceState(): MemoryState {
  const state = new MemoryState([PERSON, PET, TAG, NUM, VAULT, HIT]);
  for (const [schema, row] of Object.values(FIXTURE_ROWS)) state.insert(schema.tableId, row);
  return state;
}

/** The label of a fixture row, for readable assertions. */
export function labelOf(row: Uint8Array): string {
  const key = rowKey(row);
  for (const [label, [, bytes]] of Object.entries(FIXTURE_ROWS)) {
    if (rowKey(bytes) === key) return label;
  }
  return `row:${key}`;
}

export function identityHex(identity: bigint): string {
  return identity.toString(16).padStart(64, "0");
}

/** One char per byte; `apply` on a typed array avoids the iterator protocol of a spread. */
function bytesToKey(bytes: Uint8Array): string {
  if (bytes.length <= 4096) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let key = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    key += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return key;
}
