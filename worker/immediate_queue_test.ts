import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { ImmediateQueue } from "./immediate_queue.ts";

Deno.test("ImmediateQueue refuses runs past its entry and byte limits, and gives room back", () => {
  const queue = new ImmediateQueue(3, 1000);
  const run = (bytes: number) => ({ reducer: "bump", args: new Uint8Array(bytes) });
  queue.push(run(10));
  queue.push(run(10));
  queue.push(run(10));
  throws(
    () => queue.push(run(10)),
    /3 reducer runs are already pending for this database \(limit 3\)/,
  );
  assertEquals(queue.shift()?.args.length, 10);
  throws(() => queue.push(run(900)), /would hold \d+ bytes \(limit 1000\)/);
  queue.push(run(100));
  assertEquals(queue.drain().map((entry) => entry.args.length), [10, 10, 100]);
  assertEquals(queue.length, 0);
  queue.push(run(800));
  throws(() => queue.checkArgs(1001), /1001 bytes of arguments is over the limit of 1000 bytes/);
});
