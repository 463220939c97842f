/**
 * Summarises a V8 `--prof` log: self and inclusive ticks per function, in % of all ticks. For the
 * database process, which `--cpu-prof` cannot profile (it is stopped with SIGKILL before it
 * writes the profile): V8 writes this log as it runs.
 *
 *   LIGHTCONE_DB_V8_FLAGS="--prof,--logfile=/tmp/v8.log,--no-logfile-per-isolate" \
 *     deno task bench:subscriptions ...
 *   node bench/v8_log_top.mjs /tmp/v8.log [TOP_N]
 *
 * (`node --prof-process` refuses logs of a newer V8.) Only code-creation, code-move,
 * shared-library and tick lines are read; a tick's stack addresses give the inclusive counts.
 */
import { readFileSync } from "node:fs";
import process from "node:process";

const [file, topText] = process.argv.slice(2);
if (!file) {
  process.stderr.write("usage: v8_log_top.mjs FILE.log [TOP_N]\n");
  process.exit(2);
}
const top = Number(topText ?? 40);

/** Code ranges sorted by start: { start, end, name }. */
const ranges = [];
function find(address) {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid].start <= address) lo = mid + 1;
    else hi = mid - 1;
  }
  const range = ranges[hi];
  return range !== undefined && address < range.end ? range : undefined;
}
function insert(start, size, name) {
  const end = start + size;
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid].start < start) lo = mid + 1;
    else hi = mid;
  }
  let count = 0;
  while (lo + count < ranges.length && ranges[lo + count].start < end) count++;
  ranges.splice(lo, count, { start, end, name });
}

/** Splits a CSV line of the V8 log (names may be quoted and contain commas). */
function fields(line) {
  const out = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let j = i + 1;
      let text = "";
      while (j < line.length && line[j] !== '"') text += line[j++];
      out.push(text);
      i = j + 2;
    } else {
      let j = line.indexOf(",", i);
      if (j < 0) j = line.length;
      out.push(line.slice(i, j));
      i = j + 1;
    }
  }
  return out;
}

const libraries = [];
const self = new Map();
const inclusive = new Map();
let ticks = 0;
const nameOf = (address) => {
  const range = find(address);
  if (range) return range.name;
  const library = libraries.find((l) => address >= l.start && address < l.end);
  return library ? `[${library.name.split("/").pop()}]` : "[unknown]";
};
for (const line of readFileSync(file, "latin1").split("\n")) {
  if (line.startsWith("code-creation,")) {
    const f = fields(line);
    // code-creation,type,kind,timestamp,address,size,name[,sfi,state]; states are merged
    const name = f[1] === "Builtin" || f[1] === "BytecodeHandler" ? `(builtin) ${f[6]}` : f[6];
    insert(Number(f[4]), Number(f[5]), name);
  } else if (line.startsWith("code-move,")) {
    const f = fields(line);
    const range = find(Number(f[1]));
    if (range && range.start === Number(f[1])) {
      ranges.splice(ranges.indexOf(range), 1);
      insert(Number(f[2]), range.end - range.start, range.name);
    }
  } else if (line.startsWith("shared-library,")) {
    const f = fields(line);
    libraries.push({ name: f[1], start: Number(f[2]), end: Number(f[3]) });
  } else if (line.startsWith("tick,")) {
    const f = fields(line);
    // tick,pc,timestamp,is_external_callback,tos,vm_state,stack...
    ticks++;
    const own = nameOf(Number(f[1]));
    self.set(own, (self.get(own) ?? 0) + 1);
    const seen = new Set([own]);
    for (let i = 6; i < f.length; i++) {
      if (!f[i]) continue;
      const name = nameOf(Number(f[i]));
      if (name === "[unknown]") continue;
      seen.add(name);
    }
    for (const name of seen) inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
  }
}
const percent = (n) => ((100 * n) / Math.max(1, ticks)).toFixed(1).padStart(5);
process.stdout.write(`${ticks} ticks\n\nself %  function\n`);
for (const [name, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${percent(n)}  ${name.slice(0, 140)}\n`);
}
process.stdout.write(`\ninclusive %  function\n`);
for (const [name, n] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${percent(n)}  ${name.slice(0, 140)}\n`);
}
