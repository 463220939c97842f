/**
 * The list-append checker's fault matrix, short form (bench/elle.ts runs it long): SDK clients
 * append to and read lists on a real server child process under SIGKILL, SIGSTOP/SIGCONT pauses,
 * a full disk and fsync errors, and the checker finds no anomaly; with a durability mode broken
 * on purpose (writes acknowledged before they reach the file) and SIGKILL it must find some.
 * The seed is printed; LIGHTCONE_ELLE_SEED=N replays it (the interleavings still vary).
 */
import { fail, ok as assert } from "node:assert/strict";
import { describeResult } from "../elle/checker.ts";
import {
  type Fault,
  runCell,
  saveHistory,
  summarizeCell,
  tmpfsUnavailable,
} from "../elle/matrix.ts";

const SEED = Number(Deno.env.get("LIGHTCONE_ELLE_SEED") ?? Date.now() % 1_000_000);
const DURATION_MS = Number(Deno.env.get("LIGHTCONE_ELLE_DURATION_MS") ?? 2000);
const REPLAY = `replay: LIGHTCONE_ELLE_SEED=${SEED} deno test -A --unstable-worker-options ` +
  `tests/e2e/elle_test.ts`;
const diskUnavailable = await tmpfsUnavailable();
if (diskUnavailable) {
  console.error(`\n!!! elle disk-full cell SKIPPED: ${diskUnavailable} (needs root)\n`);
}

async function cell(fault: Fault, durationMs = DURATION_MS) {
  console.log(`elle ${fault}: seed ${SEED} (${REPLAY})`);
  const result = await runCell({ fault, seed: SEED, durationMs });
  console.log(summarizeCell(result));
  return result;
}

for (const fault of ["kill", "pause", "disk-full", "fsync-error"] as const) {
  Deno.test({
    name: `list-append under ${fault}: no anomaly (seed ${SEED})`,
    ignore: fault === "disk-full" && diskUnavailable !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const ran = await cell(fault);
      const { result, stats, faultsInjected } = ran;
      assert(result && stats, "the cell ran");
      if (!result.valid) {
        const saved = await saveHistory(ran);
        fail(
          `seed ${SEED} ${fault}:\n${describeResult(result)}\n${REPLAY}\nhistory: ${saved}`,
        );
      }
      assert(faultsInjected > 0, `seed ${SEED} ${fault}: no fault was injected`);
      assert(result.stats.appendsOk > 20, `seed ${SEED} ${fault}: too few acknowledged appends`);
      assert(stats.missingResults === 0, `seed ${SEED}: acknowledged calls without their result`);
    },
  });
}

Deno.test({
  name: `list-append catches a durability mode broken on purpose under SIGKILL (seed ${SEED})`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { result, faultsInjected } = await cell("broken-kill");
    assert(result && faultsInjected > 0, "the cell ran and killed the server");
    console.log(describeResult(result, 3));
    assert(!result.valid, `seed ${SEED}: acknowledged-then-lost writes went unnoticed`);
    assert((result.counts["lost-write"] ?? 0) > 0, `seed ${SEED}: no lost write reported`);
  },
});
