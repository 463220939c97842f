import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  DatabaseMetrics,
  type DatabaseSample,
  escapeLabelValue,
  Histogram,
  renderMetrics,
} from "./metrics.ts";

function sample(label: string, metrics = new DatabaseMetrics()): DatabaseSample {
  return {
    label,
    metrics,
    up: true,
    hibernation: "awake",
    durableTxOffset: 0,
    clients: 0,
    subscriptions: 0,
    outboundBytes: 0,
    outboxMessages: 0,
    queuedRequests: 0,
    batchesInFlight: 0,
    residentBytes: undefined,
  };
}

Deno.test("label values escape backslash, quote and newline", () => {
  assertEquals(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  assertEquals(escapeLabelValue("plain-name_1"), "plain-name_1");
  const text = renderMetrics([sample('we"ird\\db\nname')]);
  assert(
    text.includes('lightcone_database_up{database="we\\"ird\\\\db\\nname"} 1\n'),
    text,
  );
  // Every line is one sample or comment: the newline in the name did not split a line.
  for (const line of text.split("\n")) {
    assert(line === "" || line.startsWith("#") || line.startsWith("lightcone_"), line);
  }
});

Deno.test("a histogram puts a value equal to a bound in that bound's bucket (le)", () => {
  const histogram = new Histogram([1, 10, 100]);
  for (const value of [0, 1, 1.5, 10, 100, 101, 1e9]) histogram.observe(value);
  assertEquals([...histogram.buckets], [2, 2, 1, 2]);
  assertEquals(histogram.count, 7);
  assertEquals(histogram.sum, 0 + 1 + 1.5 + 10 + 100 + 101 + 1e9);
  assert(throwsRange(() => new Histogram([1, 1])));
});

Deno.test("rendered histograms are cumulative, in seconds, and end with +Inf = count", () => {
  const metrics = new DatabaseMetrics();
  metrics.recordItems([
    { kind: "call", id: 1, status: "committed", txOffset: 1, durationMicros: 40 },
    { kind: "update", txOffset: 1, callId: 1, deltas: [] },
    { kind: "call", id: 2, status: "failed_user", txOffset: 1, durationMicros: 7_000_000 },
    { kind: "procedure", id: 3, ok: false, txOffset: 1, durationMicros: 3 },
  ]);
  metrics.recordFsync(0.2, 2, 300);
  const text = renderMetrics([sample("db", metrics)]);
  const line = (prefix: string) => text.split("\n").find((l) => l.startsWith(prefix));
  assertEquals(
    line('lightcone_reducer_duration_seconds_bucket{database="db",le="0.00005"}'),
    'lightcone_reducer_duration_seconds_bucket{database="db",le="0.00005"} 1',
  );
  assertEquals(
    line('lightcone_reducer_duration_seconds_bucket{database="db",le="5"}'),
    'lightcone_reducer_duration_seconds_bucket{database="db",le="5"} 1',
  );
  assertEquals(
    line('lightcone_reducer_duration_seconds_bucket{database="db",le="+Inf"}'),
    'lightcone_reducer_duration_seconds_bucket{database="db",le="+Inf"} 2',
  );
  assertEquals(
    line('lightcone_reducer_duration_seconds_sum{database="db"}'),
    'lightcone_reducer_duration_seconds_sum{database="db"} 7.00004',
  );
  assertEquals(
    line('lightcone_transactions_committed_total{database="db"}'),
    'lightcone_transactions_committed_total{database="db"} 1',
  );
  assertEquals(
    line('lightcone_procedure_calls_total{database="db",status="failed"}'),
    'lightcone_procedure_calls_total{database="db",status="failed"} 1',
  );
  assertEquals(
    line('lightcone_commitlog_fsync_seconds_bucket{database="db",le="0.00025"}'),
    'lightcone_commitlog_fsync_seconds_bucket{database="db",le="0.00025"} 1',
  );
  assertEquals(
    line('lightcone_commitlog_fsync_transactions_bucket{database="db",le="1"}'),
    'lightcone_commitlog_fsync_transactions_bucket{database="db",le="1"} 0',
  );
  assertEquals(
    line('lightcone_commitlog_fsync_transactions_bucket{database="db",le="2"}'),
    'lightcone_commitlog_fsync_transactions_bucket{database="db",le="2"} 1',
  );
  assertEquals(
    line('lightcone_commitlog_written_bytes_total{database="db"}'),
    'lightcone_commitlog_written_bytes_total{database="db"} 300',
  );
  // Resident memory unknown: no sample rather than a made-up 0.
  assert(!text.includes("lightcone_database_resident_memory_bytes{"), text);
});

function throwsRange(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (error) {
    return error instanceof RangeError;
  }
}

Deno.test("reported stalls land in their kind's histogram, rendered in seconds per kind", () => {
  const metrics = new DatabaseMetrics();
  // (kind index, ms): batch 12 ms, snapshot 60 ms, batch 250 ms.
  metrics.recordStalls(new Float64Array([0, 12, 1, 60, 0, 250]));
  const text = renderMetrics([sample("db", metrics)]);
  const line = (kind: string, le: string) =>
    `lightcone_database_stall_seconds_bucket{database="db",kind="${kind}",le="${le}"}`;
  assert(text.includes("# TYPE lightcone_database_stall_seconds histogram\n"), text);
  assert(text.includes(`${line("batch", "0.01")} 0\n`), text);
  assert(text.includes(`${line("batch", "0.02")} 1\n`), text);
  assert(text.includes(`${line("batch", "0.2")} 1\n`), text);
  assert(text.includes(`${line("batch", "0.5")} 2\n`), text);
  assert(text.includes(`${line("snapshot", "0.05")} 0\n`), text);
  assert(text.includes(`${line("snapshot", "0.1")} 1\n`), text);
  assert(text.includes(`${line("schedule", "+Inf")} 0\n`), text);
  assert(text.includes('lightcone_database_stall_seconds_count{database="db",kind="batch"} 2\n'));
  assert(text.includes('lightcone_database_stall_seconds_sum{database="db",kind="batch"} 0.262\n'));
});
