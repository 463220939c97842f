import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import type { HistoryEvent } from "./checker.ts";
import { loadHistory, saveHistory } from "./matrix.ts";

Deno.test("a saved history loads back unchanged, and a damaged file is refused", async () => {
  const history: HistoryEvent[] = [
    { type: "invoke", process: 1, time: 0.5, txn: [{ f: "read", key: 1, value: null }] },
    { type: "ok", process: 1, time: 1.25, txn: [{ f: "read", key: 1, value: [3, 4] }] },
    { type: "invoke", process: 2, time: 2, txn: [{ f: "append", key: 1, value: 5 }], stale: true },
    { type: "info", process: 2, time: 3, txn: [], error: "disconnected" },
  ];
  const path = await saveHistory({
    fault: "kill",
    seed: 1,
    history,
    faultsInjected: 0,
    elapsedMs: 0,
  });
  try {
    assertEquals(await loadHistory(path), history);
    await Deno.writeTextFile(path, "{not json\n", { append: true });
    await rejects(loadHistory(path), /Line 5 of .* is not JSON/);
  } finally {
    await Deno.remove(path);
  }
});
