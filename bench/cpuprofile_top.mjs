/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`, or the server's via
 * `KEYNOTE_SERVER_DENO_FLAGS="--cpu-prof --cpu-prof-dir=DIR" deno task bench:keynote ...`):
 * self time per function and per file, in % of all samples ("(idle)" included, so a worker's busy
 * share is 100 minus its idle).
 *
 * Usage: node bench/cpuprofile_top.mjs FILE.cpuprofile [TOP_N]   (or `deno run -A` it)
 */
import { readFileSync } from "node:fs";
import process from "node:process";

const [file, topText] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: cpuprofile_top.mjs FILE.cpuprofile [TOP_N]\n");
  process.exit(2);
}
const top = Number(topText ?? 40);
const profile = JSON.parse(readFileSync(file, "utf8"));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
/** @type {Map<number, number>} µs per node id */
const selfMicros = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const byFunction = new Map();
const byFile = new Map();
let total = 0;
for (const [id, micros] of selfMicros) {
  const frame = nodes.get(id).callFrame;
  const shortUrl = frame.url.split("/").slice(-2).join("/");
  const name = `${frame.functionName || "(anonymous)"} ${shortUrl}:${frame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  const fileKey = shortUrl || frame.functionName;
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + micros);
  total += micros;
}
const lines = [`total ${(total / 1000).toFixed(0)} ms of samples`];
const percent = (micros) => ((100 * micros) / total).toFixed(1).padStart(5);
for (const [name, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  lines.push(`${percent(micros)} ${name}`);
}
lines.push("--- by file");
for (const [name, micros] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  lines.push(`${percent(micros)} ${name}`);
}
process.stdout.write(lines.join("\n") + "\n");
