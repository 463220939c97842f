import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { OriginWindow } from "./host.ts";

Deno.test("OriginWindow returns what was set for each live id and nothing once deleted", () => {
  const window = new OriginWindow();
  for (let id = 1; id <= 10; id++) window.set(id, { id });
  deepStrictEqual(window.get(4), { id: 4 });
  window.delete(4);
  deepStrictEqual(window.get(4), undefined);
  deepStrictEqual(window.get(5), { id: 5 });
  deepStrictEqual(window.get(0), undefined);
  deepStrictEqual(window.get(11), undefined);
  // 1..3 still live: the window cannot move past them yet.
  deepStrictEqual(window.span, 10);
  for (const id of [1, 2, 3]) window.delete(id);
  deepStrictEqual(window.span, 6);
});

Deno.test("OriginWindow keeps its origins across growth and wrap-around (checked against a Map)", () => {
  const window = new OriginWindow();
  const model = new Map<number, string>();
  let state = 12345;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  let nextId = 1;
  let oldestLive = 1;
  for (let step = 0; step < 50_000; step++) {
    if (random() < 0.52) {
      const id = nextId++;
      // Some requests carry no origin (HTTP calls): their ids leave gaps.
      if (random() < 0.9) {
        window.set(id, `origin ${id}`);
        model.set(id, `origin ${id}`);
      }
    } else if (model.size > 0) {
      // Answers come mostly in order, sometimes a little out of order.
      while (!model.has(oldestLive) && oldestLive < nextId) oldestLive++;
      const id = random() < 0.8 ? oldestLive : oldestLive + Math.floor(random() * 50);
      window.delete(id);
      model.delete(id);
    }
    if (step % 997 === 0) {
      for (let id = Math.max(1, nextId - 3000); id < nextId; id++) {
        deepStrictEqual(window.get(id), model.get(id), `id ${id} at step ${step}`);
      }
    }
  }
  ok(window.span <= nextId, "span stays within the ids handed out");
});

Deno.test("OriginWindow refuses ids that go backwards and forgets everything on clear", () => {
  const window = new OriginWindow();
  window.set(5, "a");
  window.set(9, "b");
  throws(() => window.set(7, "c"), RangeError);
  window.clear();
  deepStrictEqual(window.get(5), undefined);
  deepStrictEqual(window.span, 0);
  window.set(3, "d");
  deepStrictEqual(window.get(3), "d");
});

Deno.test("OriginWindow works for ids past 2^32 (long-lived databases)", () => {
  const window = new OriginWindow();
  const start = 2 ** 32 - 700;
  for (let id = start; id < start + 1500; id++) window.set(id, id);
  for (let id = start; id < start + 1500; id += 7) deepStrictEqual(window.get(id), id);
  for (let id = start; id < start + 1400; id++) window.delete(id);
  deepStrictEqual(window.span, 100);
  deepStrictEqual(window.get(start + 1450), start + 1450);
});

Deno.test("OriginWindow.oldestId names the oldest unanswered id, Infinity when none", () => {
  const window = new OriginWindow();
  deepStrictEqual(window.oldestId, Infinity);
  window.set(10, "a");
  window.set(12, "b");
  deepStrictEqual(window.oldestId, 10);
  window.delete(12);
  deepStrictEqual(window.oldestId, 10);
  window.delete(10);
  deepStrictEqual(window.oldestId, Infinity);
});
