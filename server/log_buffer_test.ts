import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { LOG_MESSAGE_CHARS_MAX } from "../lib/limits.ts";
import { FollowQueue, LogBuffer } from "./log_buffer.ts";

async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

Deno.test("LogBuffer rotates its file at the size limit and keeps two files at most", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "module.log");
  try {
    const logs = await LogBuffer.open(path, { fileBytesMax: 10_000, bytesPerS: 1e9 });
    for (let i = 0; i < 500; i++) {
      logs.append([{ level: "Info", ts: i, message: `line ${i} ${"z".repeat(100)}` }]);
    }
    await logs.close();
    const [current, rotated] = [await sizeOf(path), await sizeOf(`${path}.1`)];
    console.log(`module.log ${current} B, module.log.1 ${rotated} B, limit 10000 B each`);
    assert(current <= 10_000 && rotated <= 10_000 && rotated > 9_000, `${current} ${rotated}`);
    const last = (await Deno.readTextFile(path)).trim().split("\n").at(-1)!;
    assertEquals(JSON.parse(last).ts, 499);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LogBuffer drops lines over the rate with one marker and cuts long messages", async () => {
  let nowMs = 0;
  // 1,000 bytes/s: a burst of 8,000 bytes.
  const logs = await LogBuffer.open(undefined, { bytesPerS: 1000, monotonicMs: () => nowMs });
  logs.append([{ level: "Info", ts: 0, message: "x".repeat(1_000_000) }]);
  assertEquals(logs.tail(undefined).length, 0, "a line over the whole burst is dropped");
  for (let i = 0; i < 1000; i++) logs.append([{ level: "Info", ts: i, message: "y".repeat(60) }]);
  const kept = logs.tail(undefined).length;
  assert(kept > 50 && kept < 120, `${kept}`);
  nowMs = 10_000;
  logs.append([{ level: "Info", ts: 1, message: "after" }]);
  const tail = logs.tail(2).map((line) => JSON.parse(line));
  assertEquals(
    tail[0].message,
    `${1001 - kept} log lines dropped: the database logged more ` +
      "than its budget of 1000 bytes/s",
  );
  assertEquals(tail[1].message, "after");
  // A message longer than the limit (a worker that did not cut it) is cut here.
  const wide = await LogBuffer.open(undefined, { bytesPerS: 1e9 });
  wide.append([{ level: "Info", ts: 0, message: "w".repeat(200_000) }]);
  assert(JSON.parse(wide.tail(1)[0]).message.length <= LOG_MESSAGE_CHARS_MAX);
  // Lines not shaped like log lines are skipped.
  wide.append([{ level: 5, ts: 0, message: "bad" } as unknown as never]);
  assertEquals(wide.tail(undefined).length, 1);
});

Deno.test("LogBuffer keeps a bounded number of characters in memory and follows live", async () => {
  const logs = await LogBuffer.open(undefined, { bytesPerS: 1e9, memoryCharsMax: 50_000 });
  const seen: string[] = [];
  logs.follow((line) => seen.push(line));
  for (let i = 0; i < 100; i++) logs.append([{ level: "Info", ts: i, message: "m".repeat(5000) }]);
  const tail = logs.tail(undefined);
  const chars = tail.reduce((sum, line) => sum + line.length, 0);
  assert(chars <= 50_000 && tail.length >= 9, `${tail.length} lines, ${chars} chars`);
  assertEquals(JSON.parse(tail.at(-1)!).ts, 99);
  assertEquals(seen.length, 100);
});

Deno.test("LogBuffer opens an oversized old file reading only its tail", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "module.log");
  try {
    const line = JSON.stringify({ level: "Info", ts: 1, message: "o".repeat(1000) }) + "\n";
    await Deno.writeTextFile(path, line.repeat(5000)); // ~5 MB, limit 100 kB
    const logs = await LogBuffer.open(path, { fileBytesMax: 100_000, memoryCharsMax: 20_000 });
    const tail = logs.tail(undefined);
    assert(tail.length > 0 && tail.length <= 20, `${tail.length}`);
    assert(tail.every((text) => JSON.parse(text).ts === 1));
    await logs.close();
    assert(await sizeOf(path) <= 20_000, `${await sizeOf(path)}`);
    assertEquals(await sizeOf(`${path}.1`), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FollowQueue bounds a slow reader's queue and says how many lines it dropped", () => {
  const queue = new FollowQueue(100);
  for (let i = 0; i < 10; i++) queue.push(`line ${i} ${"q".repeat(20)}`);
  const first = queue.take();
  assertEquals(first.length, 3);
  assert(queue.empty);
  queue.push("next");
  const second = queue.take();
  assertEquals(
    JSON.parse(second[0]).message,
    "7 log lines dropped: this stream was read too slowly",
  );
  assertEquals(second[1], "next");
});
