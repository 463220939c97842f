import { deepStrictEqual, ok } from "node:assert/strict";
import { STALL_REPORT_MAX, StallRecorder } from "./stall_recorder.ts";
import { STALL_KINDS } from "./messages.ts";
import { checkStalls } from "./reply_check.ts";

/** A clock the test moves by hand. */
function manualClock() {
  const clock = { ms: 1_000, now: () => clock.ms };
  return clock;
}

Deno.test("StallRecorder keeps tasks of the threshold or longer, by kind, and take() empties it", () => {
  const clock = manualClock();
  const recorder = new StallRecorder(clock.now, 10);
  recorder.begin("batch");
  clock.ms += 9.5;
  deepStrictEqual(recorder.end(), false);
  deepStrictEqual(recorder.take(), undefined);

  recorder.begin("snapshot");
  clock.ms += 10;
  deepStrictEqual(recorder.end(), true);
  recorder.begin("schedule");
  clock.ms += 42;
  deepStrictEqual(recorder.end(), true);
  deepStrictEqual(
    [...recorder.take()!],
    [STALL_KINDS.indexOf("snapshot"), 10, STALL_KINDS.indexOf("schedule"), 42],
  );
  deepStrictEqual(recorder.take(), undefined);
});

Deno.test("StallRecorder times only the outermost of nested tasks, under its kind", () => {
  const clock = manualClock();
  const recorder = new StallRecorder(clock.now, 10);
  recorder.begin("batch");
  clock.ms += 5;
  recorder.begin("snapshot");
  clock.ms += 20;
  deepStrictEqual(recorder.end(), false, "the inner task is part of the outer one");
  clock.ms += 5;
  deepStrictEqual(recorder.end(), true);
  deepStrictEqual([...recorder.take()!], [STALL_KINDS.indexOf("batch"), 30]);
  // An end() without a begin() changes nothing.
  deepStrictEqual(recorder.end(), false);
  deepStrictEqual(recorder.take(), undefined);
});

Deno.test("StallRecorder.time() records a task that throws, and keeps at most STALL_REPORT_MAX", () => {
  const clock = manualClock();
  const recorder = new StallRecorder(clock.now, 10);
  let thrown = false;
  try {
    recorder.time("other", () => {
      clock.ms += 11;
      throw new Error("boom");
    });
  } catch {
    thrown = true;
  }
  ok(thrown);
  for (let i = 0; i < STALL_REPORT_MAX + 5; i++) {
    recorder.time("batch", () => {
      clock.ms += 12;
    });
  }
  const pairs = recorder.take()!;
  deepStrictEqual(pairs.length, 2 * STALL_REPORT_MAX);
  deepStrictEqual([pairs[0], pairs[1]], [STALL_KINDS.indexOf("other"), 11]);
  deepStrictEqual(recorder.dropped, 6);
  deepStrictEqual(checkStalls(pairs), undefined, "a full report passes the server's check");
});

Deno.test("checkStalls refuses malformed stall reports", () => {
  deepStrictEqual(checkStalls(new Float64Array([0, 12.5, 3, 100])), undefined);
  ok(checkStalls([0, 12]));
  ok(checkStalls(new Float64Array([0])));
  ok(checkStalls(new Float64Array([STALL_KINDS.length, 12])));
  ok(checkStalls(new Float64Array([0.5, 12])));
  ok(checkStalls(new Float64Array([-1, 12])));
  ok(checkStalls(new Float64Array([0, NaN])));
  ok(checkStalls(new Float64Array([0, -3])));
  ok(checkStalls(new Float64Array([0, Infinity])));
  ok(checkStalls(new Float64Array(2 * STALL_REPORT_MAX + 2)));
});
