import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { hashBytes, KeyCodec } from "./key_encoding.ts";
import { RowLayout } from "./row_layout.ts";
import { ArenaRowStore, FREE, HIDDEN, LIVE, PagedRowStore, type RowStore } from "./row_store.ts";

// {id: u32, balance: i64}: 12-byte rows.
const layout = new RowLayout({
  elements: [
    { name: "id", algebraicType: { tag: "U32" } },
    { name: "balance", algebraicType: { tag: "I64" } },
  ],
}, []);
const idCodec = new KeyCodec(layout, [0]);

function row(id: number, balance: number): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, id, true);
  view.setBigInt64(4, BigInt(balance), true);
  return bytes;
}

const stores: [string, () => RowStore][] = [
  ["PagedRowStore", () => new PagedRowStore()],
  ["ArenaRowStore", () => new ArenaRowStore(12)],
];

for (const [name, make] of stores) {
  Deno.test(`${name} stores, hides, releases and reuses row ids`, () => {
    const store = make();
    const a = store.allocate();
    store.put(a, row(1, 10));
    const b = store.allocate();
    store.put(b, row(2, 20));
    strictEqual(store.length, 2);
    strictEqual(store.state(a), LIVE);
    store.hide(a);
    strictEqual(store.state(a), HIDDEN);
    strictEqual(store.isLive(a), false);
    store.put(a, row(1, 11)); // restored, e.g. by a rollback
    strictEqual(store.isLive(a), true);
    store.release(b);
    strictEqual(store.state(b), FREE);
    strictEqual(store.freeCount, 1);
    strictEqual(store.allocate(), b);
    strictEqual(store.freeCount, 0);
    strictEqual(store.state(99), FREE);
  });

  Deno.test(`${name} answers bytes, equality, hash, key and copies of a row`, () => {
    const store = make();
    const id = store.allocate();
    store.put(id, row(7, -5));
    deepStrictEqual(store.bytes(id), row(7, -5));
    strictEqual(store.equals(id, row(7, -5)), true);
    strictEqual(store.equals(id, row(7, -4)), false);
    strictEqual(store.equals(id, new Uint8Array(3)), false);
    strictEqual(store.hash(id), hashBytes(row(7, -5)));
    strictEqual(store.key(id, idCodec), 7);
    strictEqual(store.size(id), 12);
    const out = new Uint8Array(20);
    strictEqual(store.copyInto(id, out, 4), 12);
    deepStrictEqual(out.subarray(4, 16), row(7, -5));
  });

  Deno.test(`${name} hands out bytes that later writes to the row do not change`, () => {
    const store = make();
    const id = store.allocate();
    store.put(id, row(3, 30));
    const before = store.bytes(id);
    store.put(id, row(3, 31));
    deepStrictEqual(before, row(3, 30));
    deepStrictEqual(store.bytes(id), row(3, 31));
  });

  Deno.test(`${name} keeps every row while growing past its initial capacity`, () => {
    const store = make();
    for (let i = 0; i < 5000; i++) store.put(store.allocate(), row(i, i * 3));
    for (let i = 0; i < 5000; i++) {
      strictEqual(store.key(i, idCodec), i);
      deepStrictEqual(store.bytes(i), row(i, i * 3));
    }
  });
}

Deno.test("ArenaRowStore handles rows of zero bytes", () => {
  const store = new ArenaRowStore(0);
  const ids = [store.allocate(), store.allocate()];
  for (const id of ids) store.put(id, new Uint8Array(0));
  strictEqual(store.isLive(ids[1]), true);
  deepStrictEqual(store.bytes(ids[1]), new Uint8Array(0));
  strictEqual(store.copyInto(ids[1], new Uint8Array(0), 0), 0);
});

Deno.test("ArenaRowStore grows page by page and a capture keeps its rows while the store changes", () => {
  const store = new ArenaRowStore(12);
  const count = 10_000; // three pages of 4,096 slots
  for (let i = 0; i < count; i++) store.put(store.allocate(), row(i, i));
  strictEqual(store.pageCount, 3);
  const capture = store.capture();
  // Change every page after the capture: update, delete, add rows (a new page), reuse an id.
  for (let i = 0; i < count; i += 3) store.put(i, row(i, -i));
  store.release(5);
  store.release(9_000);
  for (let i = 0; i < 5_000; i++) store.put(store.allocate(), row(count + i, 0));
  strictEqual(store.pageCount, 4);
  strictEqual(capture.length, count);
  const out = new Uint8Array(12);
  for (let i = 0; i < count; i++) {
    strictEqual(capture.size(i), 12);
    strictEqual(capture.copyInto(i, out, 0), 12);
    deepStrictEqual(out, row(i, i), `captured row ${i}`);
  }
  strictEqual(capture.size(count), -1, "rows added after the capture are not in it");
  // The store itself has the new values.
  deepStrictEqual(store.bytes(3), row(3, -3));
  strictEqual(store.isLive(5), true, "id 5 was reused by an insert");
  capture.release();
  store.put(0, row(0, 42));
  deepStrictEqual(store.bytes(0), row(0, 42));
});

Deno.test("two overlapping captures each keep their own point in time", () => {
  const store = new ArenaRowStore(12);
  for (let i = 0; i < 100; i++) store.put(store.allocate(), row(i, 1));
  const first = store.capture();
  store.put(7, row(7, 2));
  const second = store.capture();
  store.put(7, row(7, 3));
  first.release();
  store.put(8, row(8, 3)); // still shared with `second`
  const out = new Uint8Array(12);
  second.copyInto(7, out, 0);
  deepStrictEqual(out, row(7, 2));
  second.copyInto(8, out, 0);
  deepStrictEqual(out, row(8, 1));
  second.release();
  deepStrictEqual(store.bytes(7), row(7, 3));
});

Deno.test("PagedRowStore capture keeps its rows while the store changes across pages", () => {
  const store = new PagedRowStore();
  for (let i = 0; i < 9_000; i++) store.put(store.allocate(), row(i, i));
  const capture = store.capture();
  for (let i = 0; i < 9_000; i += 2) store.put(i, row(i, -1));
  store.release(1);
  store.put(store.allocate(), row(77, 77)); // reuses id 1
  for (let i = 0; i < 5_000; i++) store.put(store.allocate(), row(0, 0));
  const out = new Uint8Array(12);
  for (let i = 0; i < 9_000; i++) {
    strictEqual(capture.copyInto(i, out, 0), 12);
    deepStrictEqual(out, row(i, i), `captured row ${i}`);
  }
  strictEqual(capture.size(9_000), -1);
  deepStrictEqual(store.bytes(1), row(77, 77));
  capture.release();
  store.put(2, row(2, 2));
  deepStrictEqual(store.bytes(2), row(2, 2));
});

/** Deterministic PRNG (mulberry32) so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function varRow(random: () => number, id: number): Uint8Array {
  // Mostly small rows, a few longer than a 256 KiB chunk.
  const length = random() < 0.002
    ? 300_000 + Math.floor(random() * 1000)
    : Math.floor(random() * 200);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (id * 31 + i * 7 + length) & 0xff;
  return bytes;
}

Deno.test("PagedRowStore keeps rows of any size through rewrites, deletes and compaction, and captures see their point in time", () => {
  for (const seed of [1, 2, 3]) {
    const random = prng(seed);
    const store = new PagedRowStore();
    const model = new Map<number, Uint8Array>();
    const ids: number[] = [];
    let capture:
      | { store: ReturnType<PagedRowStore["capture"]>; rows: Map<number, Uint8Array> }
      | undefined;
    let maxChunks = 0;
    for (let step = 0; step < 60_000; step++) {
      const roll = random();
      if (roll < 0.45 || model.size === 0) {
        const id = store.allocate();
        const bytes = varRow(random, id);
        store.put(id, bytes);
        model.set(id, bytes);
        ids.push(id);
      } else {
        const pick = Math.floor(random() * ids.length);
        const id = ids[pick];
        if (roll < 0.8) {
          const bytes = varRow(random, id + step);
          store.put(id, bytes);
          model.set(id, bytes);
        } else if (roll < 0.82) {
          store.hide(id);
          strictEqual(store.state(id), HIDDEN);
          store.put(id, model.get(id)!); // restored, as a rollback does
        } else {
          store.release(id);
          model.delete(id);
          ids[pick] = ids[ids.length - 1];
          ids.pop();
        }
      }
      if (step % 7_000 === 0) {
        capture?.store.release();
        capture = { store: store.capture(), rows: new Map(model) };
      }
      maxChunks = Math.max(maxChunks, store.chunkCount);
    }
    for (const [id, bytes] of model) {
      strictEqual(store.isLive(id), true, `seed ${seed}: row ${id} live`);
      strictEqual(store.size(id), bytes.length);
      deepStrictEqual(store.bytes(id), bytes, `seed ${seed}: row ${id}`);
      strictEqual(store.equals(id, bytes), true);
      strictEqual(store.hash(id), hashBytes(bytes));
    }
    let live = 0;
    for (let id = 0; id < store.length; id++) if (store.isLive(id)) live++;
    strictEqual(live, model.size);
    const { store: captured, rows } = capture!;
    for (const [id, bytes] of rows) {
      const out = new Uint8Array(bytes.length);
      strictEqual(captured.copyInto(id, out, 0), bytes.length);
      deepStrictEqual(out, bytes, `seed ${seed}: captured row ${id}`);
    }
    for (let id = 0; id < captured.length; id++) {
      if (!rows.has(id)) strictEqual(captured.size(id), -1);
    }
    captured.release();
    // Compaction bounds memory: live bytes are ~100 B x the rows (a few large ones aside), so
    // the chunk count stays near twice the live data instead of growing with every rewrite.
    let liveBytes = 0;
    for (const bytes of model.values()) liveBytes += bytes.length + 8;
    ok(
      store.chunkCount <= 2 * Math.ceil(liveBytes / (256 * 1024)) + 8,
      `seed ${seed}: ${store.chunkCount} chunks for ${liveBytes} live bytes (max seen ${maxChunks})`,
    );
  }
});
