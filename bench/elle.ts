/**
 * The list-append fault matrix, long form: `deno task bench:elle [--duration S] [--seed N]
 * [--clients N] [--faults kill,pause,...]`. Each cell runs the workload for the duration under
 * its fault and checks the history (tests/elle/checker.ts); the e2e test runs the same cells for
 * a few seconds each. Exit status 1 when a fault-free cell shows an anomaly, or when the broken
 * durability mode shows none; the history of such a cell is saved, and
 * `deno task bench:elle --check FILE` checks a saved history again.
 *
 * Back of the envelope: each call is one reducer transaction with one fdatasync (~1-5 ms on
 * this disk, batched across clients), so 4 clients reach a few hundred calls per second; a
 * 300 s cell checks ~10^5 operations, which the checker handles in seconds (linear passes and
 * a frontier for real-time edges).
 */
import { describeResult } from "../tests/elle/checker.ts";
import { checkListAppend } from "../tests/elle/checker.ts";
import {
  type Fault,
  FAULTS,
  loadHistory,
  runCell,
  saveHistory,
  summarizeCell,
} from "../tests/elle/matrix.ts";

function parseArgs(args: string[]) {
  let durationS = 60;
  let seed = Date.now() % 1_000_000;
  let clients = 4;
  let faults: Fault[] = [...FAULTS];
  for (let i = 0; i < args.length; i++) {
    const value = () => {
      const next = args[++i];
      if (next === undefined) throw new Error(`${args[i - 1]} needs a value`);
      return next;
    };
    const arg = args[i];
    if (arg === "--duration") durationS = Number(value());
    else if (arg === "--seed") seed = Number(value());
    else if (arg === "--clients") clients = Number(value());
    else if (arg === "--faults") {
      faults = value().split(",") as Fault[];
      const unknown = faults.filter((fault) => !FAULTS.includes(fault));
      if (unknown.length) throw new Error(`Unknown fault "${unknown[0]}"; known: ${FAULTS}`);
    } else throw new Error(`Unknown option "${arg}"`);
  }
  if (!(durationS > 0) || !Number.isInteger(seed) || !(clients >= 1)) {
    throw new Error("--duration, --seed and --clients need positive numbers");
  }
  return { durationS, seed, clients, faults };
}

if (Deno.args[0] === "--check") {
  const path = Deno.args[1];
  if (!path) throw new Error("--check needs the path of a saved history");
  const result = checkListAppend(await loadHistory(path));
  console.log(describeResult(result, 20));
  Deno.exit(result.valid ? 0 : 1);
}

const options = parseArgs(Deno.args);
console.log(
  `elle bench: seed ${options.seed}, ${options.durationS} s per cell, ${options.clients} clients; ` +
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ` +
    `${new Date().toISOString()}`,
);
let failed = false;
for (const fault of options.faults) {
  const cell = await runCell({
    fault,
    seed: options.seed,
    durationMs: options.durationS * 1000,
    clients: options.clients,
    log: (line) => console.log(line),
  });
  console.log(summarizeCell(cell));
  if (cell.result && !cell.result.valid) console.log(describeResult(cell.result, 5));
  const expectAnomalies = fault === "broken-kill";
  const unexpected = (cell.result !== undefined && cell.result.valid === expectAnomalies) ||
    (cell.stats !== undefined && cell.stats.missingResults > 0);
  if (unexpected) {
    failed = true;
    console.log(`history saved to ${await saveHistory(cell)}`);
  }
}
console.log(failed ? "elle bench: UNEXPECTED RESULT" : "elle bench: as expected");
Deno.exit(failed ? 1 : 0);
