import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { decodeTxBatch, TxBatchEncoder, type TxRecord } from "./commit_record.ts";
import { DurabilityActor } from "./durability.ts";
import { DurabilityPort, forEachBatchRecord } from "./durability_port.ts";
import { denoFs, joinPath } from "./fs_layer.ts";
import { databaseDir, logDir } from "./recovery.ts";

function txRecord(offset: number): TxRecord {
  return {
    reducerName: "transfer",
    callerIdentity: new Uint8Array(32).fill(offset % 251),
    callerConnectionId: new Uint8Array(16).fill(7),
    timestampMicros: 1_700_000_000_000_000n + BigInt(offset),
    args: new TextEncoder().encode(`args-${offset}`),
    tables: [{
      tableId: 4096,
      inserts: [new Uint8Array([offset & 0xff, offset >> 8])],
      deletes: [],
    }],
    sequences: [],
  };
}

function waitForDurable(storage: DurabilityPort, offset: bigint): Promise<void> {
  if (storage.durableOffset >= offset) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const stopDurable = storage.onDurable((durable) => {
      if (durable >= offset) {
        stopDurable();
        resolve();
      }
    });
    storage.onFailure((message) => reject(new Error(message)));
  });
}

/** Sends `count` transactions starting at `first` in batches of 1..25. */
function sendTransactions(storage: DurabilityPort, first: number, count: number): number {
  const encoder = new TxBatchEncoder(256);
  let next = first;
  while (next < first + count) {
    const size = Math.min(1 + (next % 25), first + count - next);
    for (let i = 0; i < size; i++) encoder.add(txRecord(next + i));
    const { bytes, recordCount } = encoder.finish();
    storage.append(BigInt(next), recordCount, bytes);
    next += size;
  }
  return next;
}

/** sendTransactions in rounds of 100, each durable before the next is sent. */
async function sendInRounds(
  storage: DurabilityPort,
  first: number,
  count: number,
): Promise<number> {
  let next = first;
  while (next < first + count) {
    next = sendTransactions(storage, next, Math.min(100, first + count - next));
    await waitForDurable(storage, BigInt(next));
  }
  return next;
}

Deno.test("the storage worker makes batches durable, snapshots on request, and replays them after a restart", async () => {
  const dataDir = await Deno.makeTempDir();
  // ~2,200 records of ~80 bytes in rounds of at most 100 (each round made durable before the
  // next, so the actor can never fold them into fewer than 22 commits of <= ~9 KiB): 32 KiB
  // segments then hold at most 4 rounds each, so there are at least 6 of them. (Sent in one go,
  // a fast machine group-committed all 1,500 as one frame and the count fell to 2.)
  let actor = await DurabilityActor.start({
    dataDir,
    segmentBytes: 32 * 1024,
    preallocateBytes: 16 * 1024,
  });
  const reported: Array<[string, bigint]> = [];
  actor.onDurable((dbKey, offset) => reported.push([dbKey, offset]));
  const opened = await actor.openDatabase("db1");
  deepStrictEqual(opened.durableOffset, 0n);

  // The "database worker": here on the main thread, talking over the same port.
  let applied: number[] = [];
  const storage = new DurabilityPort(opened.port, {
    takeSnapshot: () => ({
      txOffset: BigInt(applied.length),
      bytes: new TextEncoder().encode(JSON.stringify(applied)),
    }),
  });
  const replayed = await storage.replay({
    snapshot: () => {
      throw new Error("no snapshot expected");
    },
    batch: () => {
      throw new Error("no records expected");
    },
  });
  deepStrictEqual(replayed.durableOffset, 0n);

  const mainSawAll = new Promise<void>((resolve) =>
    actor.onDurable((dbKey, offset) => dbKey === "db1" && offset === 1500n && resolve())
  );
  let next = await sendInRounds(storage, 0, 1500);
  applied = Array.from({ length: next }, (_, i) => i);
  await waitForDurable(storage, BigInt(next));
  await mainSawAll;
  deepStrictEqual(actor.durableOffset("db1"), BigInt(next));
  ok(reported.length > 0 && reported.at(-1)![1] === BigInt(next));
  for (let i = 1; i < reported.length; i++) ok(reported[i][1] > reported[i - 1][1]);

  deepStrictEqual(await actor.requestSnapshot("db1"), 1500n);
  next = await sendInRounds(storage, next, 700);
  applied = Array.from({ length: next }, (_, i) => i);
  await waitForDurable(storage, BigInt(next));
  await actor.stop();
  const segments = denoFs.readDir(logDir(databaseDir(dataDir, "db1"))).length;
  ok(segments >= 6, `several segments (${segments})`);

  actor = await DurabilityActor.start({
    dataDir,
    segmentBytes: 32 * 1024,
    preallocateBytes: 16 * 1024,
  });
  const reopened = await actor.openDatabase("db1");
  deepStrictEqual(reopened.durableOffset, 2200n);
  let state: number[] = [];
  const again = new DurabilityPort(reopened.port);
  const result = await again.replay({
    snapshot: (bytes, txOffset) => {
      state = JSON.parse(new TextDecoder().decode(bytes));
      deepStrictEqual(BigInt(state.length), txOffset);
    },
    batch: (firstTxOffset, recordCount, bytes) => {
      const records = decodeTxBatch(bytes);
      deepStrictEqual(records.length, recordCount);
      forEachBatchRecord(firstTxOffset, recordCount, bytes, (_record, txOffset) => {
        const record = records[Number(txOffset - firstTxOffset)];
        deepStrictEqual(record, txRecord(Number(txOffset)));
        deepStrictEqual(BigInt(state.length), txOffset);
        state.push(Number(txOffset));
      });
    },
  });
  deepStrictEqual(result.snapshotTxOffset, 1500n);
  deepStrictEqual(result.durableOffset, 2200n);
  deepStrictEqual(state, Array.from({ length: 2200 }, (_, i) => i));

  // Appending continues after the replay.
  sendTransactions(again, 2200, 10);
  await waitForDurable(again, 2210n);

  await actor.deleteDatabase("db1");
  deepStrictEqual(denoFs.exists(databaseDir(dataDir, "db1")), false);
  const fresh = await actor.openDatabase("db1");
  deepStrictEqual(fresh.durableOffset, 0n);
  fresh.port.close();
  again.close();
  storage.close();
  await actor.stop();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("opening a database whose log is corrupt mid-way fails with a message naming file and offset", async () => {
  const dataDir = await Deno.makeTempDir();
  let actor = await DurabilityActor.start({
    dataDir,
    segmentBytes: 64 * 1024,
    preallocateBytes: 16 * 1024,
  });
  const { port } = await actor.openDatabase("broken");
  const storage = new DurabilityPort(port);
  await storage.replay({ snapshot: () => {}, batch: () => {} });
  const next = sendTransactions(storage, 0, 100);
  await waitForDurable(storage, BigInt(next));
  storage.close();
  await actor.stop();

  const segment = joinPath(logDir(databaseDir(dataDir, "broken")), "00000000000000000000.log");
  const bytes = await Deno.readFile(segment);
  bytes[50] ^= 0x10;
  await Deno.writeFile(segment, bytes);

  actor = await DurabilityActor.start({ dataDir });
  await rejects(() => actor.openDatabase("broken"), (error: Error) => {
    deepStrictEqual(error.name, "CorruptLogError");
    ok(error.message.includes(segment) && error.message.includes("at byte 0"), error.message);
    return true;
  });
  await actor.stop();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("batches sent from a database worker reach the log without passing through main", async () => {
  const dataDir = await Deno.makeTempDir();
  const actor = await DurabilityActor.start({ dataDir });
  const { port } = await actor.openDatabase("fromworker");
  const source = `
    import { DurabilityPort } from ${
    JSON.stringify(new URL("./durability_port.ts", import.meta.url).href)
  };
    import { TxBatchEncoder } from ${
    JSON.stringify(new URL("./commit_record.ts", import.meta.url).href)
  };
    self.onmessage = async (event) => {
      const storage = new DurabilityPort(event.data.port);
      await storage.replay({ snapshot() {}, batch() {} });
      const encoder = new TxBatchEncoder();
      for (let i = 0; i < 50; i++) {
        encoder.add({ reducerName: "r" + i, callerIdentity: new Uint8Array(32), callerConnectionId: new Uint8Array(16),
          timestampMicros: BigInt(i), args: new Uint8Array(0), tables: [], sequences: [] });
        const { bytes, recordCount } = encoder.finish();
        storage.append(BigInt(i), recordCount, bytes);
      }
      storage.onDurable((offset) => { if (offset === 50n) self.postMessage("durable"); });
    };`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const durableSeen = new Promise<void>((resolve) => {
    actor.onDurable((dbKey, offset) => {
      if (dbKey === "fromworker" && offset === 50n) resolve();
    });
  });
  const workerSaw = new Promise((resolve) => (worker.onmessage = (event) => resolve(event.data)));
  worker.postMessage({ port }, [port]);
  await durableSeen;
  deepStrictEqual(await workerSaw, "durable");
  worker.terminate();
  URL.revokeObjectURL(url);
  await actor.stop();
  await Deno.remove(dataDir, { recursive: true });
});
