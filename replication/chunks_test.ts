/** Chunked replication messages (replication/chunks.ts): split, gather, and what is refused. */
import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import {
  ChunkAssembler,
  chunkHeaders,
  type ChunkInfo,
  chunkInfo,
  sha256Hex,
  splitBody,
} from "./chunks.ts";

function body(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

async function chunked(whole: Uint8Array, chunkBytes: number) {
  const sha256 = await sha256Hex(whole);
  const parts = splitBody(whole, chunkBytes);
  return parts.map((data, index) => {
    const headers = new Map(chunkHeaders(index, parts.length, whole.length, sha256));
    const info = chunkInfo({ get: (name) => headers.get(name) ?? "" })!;
    return { info, data };
  });
}

Deno.test("chunks: a body split and gathered again is the same body", async () => {
  const whole = body(10_000);
  const chunks = await chunked(whole, 3_000);
  assertEquals(chunks.map((c) => [c.info.index, c.info.count, c.data.length]), [
    [0, 4, 3000],
    [1, 4, 3000],
    [2, 4, 3000],
    [3, 4, 1000],
  ]);
  const assembler = new ChunkAssembler();
  for (const [i, chunk] of chunks.entries()) {
    const out = await assembler.add(100 + i, chunk.info, chunk.data);
    if (i < chunks.length - 1) {
      assertEquals(out, undefined);
      assertEquals(assembler.startSeq, 100);
    } else assertEquals(out, whole);
  }
  assertEquals(assembler.inProgress, false);
  assertEquals(splitBody(body(6), 3).length, 2);
});

Deno.test("chunks: a chunk 0 starts over (the primary began the message again)", async () => {
  const whole = body(5_000);
  const chunks = await chunked(whole, 2_000);
  const assembler = new ChunkAssembler();
  assertEquals(await assembler.add(1, chunks[0].info, chunks[0].data), undefined);
  assertEquals(await assembler.add(2, chunks[1].info, chunks[1].data), undefined);
  assertEquals(await assembler.add(3, chunks[0].info, chunks[0].data), undefined);
  assertEquals(assembler.startSeq, 3);
  assertEquals(await assembler.add(4, chunks[1].info, chunks[1].data), undefined);
  assertEquals(await assembler.add(5, chunks[2].info, chunks[2].data), whole);
});

Deno.test("chunks: out of order, foreign, damaged or oversized chunks are refused", async () => {
  const whole = body(5_000);
  const chunks = await chunked(whole, 2_000);
  await rejects(new ChunkAssembler().add(1, chunks[1].info, chunks[1].data), /before it/);

  const skipping = new ChunkAssembler();
  await skipping.add(1, chunks[0].info, chunks[0].data);
  await rejects(skipping.add(2, chunks[2].info, chunks[2].data), /where 1 was due/);

  const other = await chunked(body(5_001), 2_000);
  const mixed = new ChunkAssembler();
  await mixed.add(1, chunks[0].info, chunks[0].data);
  await rejects(mixed.add(2, other[1].info, other[1].data), /another message/);

  const damaged = new ChunkAssembler();
  await damaged.add(1, chunks[0].info, chunks[0].data);
  await damaged.add(2, chunks[1].info, chunks[1].data);
  const flipped = chunks[2].data.slice();
  flipped[10] ^= 1;
  await rejects(damaged.add(3, chunks[2].info, flipped), /SHA-256 does not match/);

  const long = new ChunkAssembler();
  await long.add(1, chunks[0].info, chunks[0].data);
  await long.add(2, chunks[1].info, chunks[1].data);
  await rejects(long.add(3, chunks[2].info, body(1_001)), /longer than the announced/);

  const short = new ChunkAssembler();
  await short.add(1, chunks[0].info, chunks[0].data);
  await short.add(2, chunks[1].info, chunks[1].data);
  await rejects(short.add(3, chunks[2].info, body(999)), /where 5000 were announced/);

  const headersOf = (entries: Record<string, string>) => ({
    get: (name: string) => entries[name] ?? "",
  });
  const sha = "ab".repeat(32);
  assertEquals(chunkInfo(headersOf({})), undefined);
  throws(() => chunkInfo(headersOf({ "Lc-Chunk": "x" })), /not index\/count/);
  throws(
    () =>
      chunkInfo(headersOf({ "Lc-Chunk": "2/2", "Lc-Chunk-Bytes": "1", "Lc-Chunk-Sha256": sha })),
    /chunk 2 of 2/,
  );
  throws(
    () =>
      chunkInfo(
        headersOf({ "Lc-Chunk": "0/2", "Lc-Chunk-Bytes": String(2 ** 40), "Lc-Chunk-Sha256": sha }),
      ),
    /over the limit/,
  );
  throws(
    () =>
      chunkInfo(headersOf({ "Lc-Chunk": "0/2", "Lc-Chunk-Bytes": "10", "Lc-Chunk-Sha256": "z" })),
    /not a SHA-256/,
  );
  const info: ChunkInfo = chunkInfo(
    headersOf({ "Lc-Chunk": "1/3", "Lc-Chunk-Bytes": "10", "Lc-Chunk-Sha256": sha }),
  )!;
  assertEquals(info, { index: 1, count: 3, totalBytes: 10, sha256: sha });
});
