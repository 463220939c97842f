/**
 * The child process `lightcone generate` runs a WebAssembly module in (wasm/describe.ts):
 * started with no permissions and a capped V8 heap; argument 1 is the memory budget in MiB.
 * Writes `HELLO\n` once its own code is loaded (the parent then caps its address space, as a
 * database process's, and sends the module), reads the binary from stdin, writes `READY\n`
 * (the parent's load timeout starts then), then `OK <hex of the describe bytes>` or
 * `ERROR <reason>`. Module log lines go to stderr.
 */

import { concatBytes, toHex } from "../lib/bytes.ts";
import { MODULE_BYTES_MAX } from "../lib/limits.ts";
import { describeWasmModule } from "./describe.ts";

const encoder = new TextEncoder();
const write = (text: string) => {
  const bytes = encoder.encode(text);
  let at = 0;
  while (at < bytes.length) at += Deno.stdout.writeSync(bytes.subarray(at));
};

async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of Deno.stdin.readable) {
    total += chunk.length;
    if (total > MODULE_BYTES_MAX) {
      throw new RangeError(`the module is larger than ${MODULE_BYTES_MAX} bytes`);
    }
    chunks.push(chunk);
  }
  return concatBytes(chunks);
}

const LEVELS = ["error", "warn", "info", "debug", "trace", "panic"];
/** Bytes of module log forwarded to stderr; the rest is dropped with one notice. */
const LOG_BYTES_MAX = 64 * 1024;
let logged = 0;

try {
  const memoryBudgetMb = Number(Deno.args[0]);
  if (!(memoryBudgetMb > 0)) throw new RangeError(`bad memory budget ${Deno.args[0]}`);
  write("HELLO\n");
  const bytes = await readStdin();
  write("READY\n");
  const describe = describeWasmModule(bytes, {
    memoryBudgetMb,
    onLog: (level, message) => {
      if (logged > LOG_BYTES_MAX) return;
      const line = encoder.encode(`[module ${LEVELS[level] ?? level}] ${message}\n`);
      logged += line.length;
      Deno.stderr.writeSync(
        logged > LOG_BYTES_MAX ? encoder.encode("[module log cut: too long]\n") : line,
      );
    },
  });
  write(`OK ${toHex(describe)}`);
} catch (error) {
  write(`ERROR ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(3);
}
