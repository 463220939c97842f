import { deepStrictEqual, ok } from "node:assert/strict";
import { DurabilityPort, type SnapshotCursor } from "./durability_port.ts";

Deno.test("a streamed snapshot runs its capture and every piece inside runSnapshotStep", async () => {
  const pieces = [new Uint8Array([1, 2]), new Uint8Array([3]), new Uint8Array([4, 5, 6])];
  let inStep = false;
  let steps = 0;
  let captured = false;
  const sent: { bytes: Uint8Array; more: boolean; inStep: boolean }[] = [];
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const channel = {
    onmessage: null,
    close() {},
    postMessage(message: unknown) {
      const snapshot = message as { kind: string; bytes: Uint8Array; more?: boolean };
      if (snapshot.kind !== "snapshot") return;
      sent.push({ bytes: snapshot.bytes, more: snapshot.more === true, inStep });
      if (snapshot.more !== true) finished();
    },
  };
  const port = new DurabilityPort(channel, {
    captureSnapshot: () => {
      ok(inStep, "the capture runs inside a step");
      captured = true;
      let next = 0;
      const cursor: SnapshotCursor = {
        next: () => next < pieces.length ? pieces[next++] : null,
        release() {},
      };
      return { txOffset: 7n, cursor };
    },
    runSnapshotStep: (step) => {
      steps++;
      inStep = true;
      try {
        step();
      } finally {
        inStep = false;
      }
    },
  });
  port.snapshotNow();
  ok(captured, "the capture and first piece run at once");
  await done;
  deepStrictEqual(sent.map((piece) => [...piece.bytes]), [[1, 2], [3], [4, 5, 6], []]);
  deepStrictEqual(sent.map((piece) => piece.more), [true, true, true, false]);
  ok(sent.every((piece) => piece.inStep), "every piece is sent from inside a step");
  deepStrictEqual(steps, 4, "one step per piece, the last one sends the end");
  ok(!port.snapshotInProgress);
});
