// @ts-self-types="./proc_cpu.d.ts"
/**
 * CPU accounting from /proc (Linux), so a result says where the time went: per watched process
 * tree (a pid and all its descendants) in % of one core, and the whole machine's busy, iowait and
 * steal in % of all cores. On other systems every figure is null.
 */
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

const CLOCK_TICKS_PER_S = 100; // USER_HZ on every Linux we run on

/** @param {string} path */
function readText(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Fields of /proc/<pid>/stat after the command name. @param {string} text */
function statFields(text) {
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/** @returns {Map<number, { parent: number, ticks: number }>} */
function processTable() {
  const table = new Map();
  let names = [];
  try {
    names = readdirSync("/proc");
  } catch {
    return table;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const text = readText(`/proc/${name}/stat`);
    if (!text) continue;
    const fields = statFields(text);
    // fields[1] = ppid, fields[11] = utime, fields[12] = stime (stat fields 4, 14, 15)
    table.set(Number(name), {
      parent: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
    });
  }
  return table;
}

/**
 * Ticks of `root` and every descendant alive now (children that exited are not counted), leaving
 * out the subtrees of the other watched roots: the Lightcone server is a child of the benchmark
 * process that runs its clients, and each is reported on its own.
 * @param {Map<number, { parent: number, ticks: number }>} table
 * @param {number} root
 * @param {Set<number>} otherRoots
 */
function treeTicks(table, root, otherRoots = new Set()) {
  if (!table.has(root)) return undefined;
  let ticks = 0;
  for (const [pid, entry] of table) {
    let current = pid;
    for (let depth = 0; depth < 64 && current > 0; depth++) {
      if (current === root) {
        ticks += entry.ticks;
        break;
      }
      if (otherRoots.has(current)) break;
      current = table.get(current)?.parent ?? 0;
    }
  }
  return ticks;
}

/**
 * Ticks per thread of one process, summed by thread name ("main" for the process's own thread,
 * "gc" for V8's helper threads), so a report can say which thread spent the time.
 * @param {number} pid
 * @returns {Map<string, number>}
 */
function threadTicks(pid) {
  const out = ownThreadTicks(pid, "");
  // Descendant processes (a Lightcone server's per-database processes), named "db <thread>".
  const table = processTable();
  for (const [child] of table) {
    let current = table.get(child)?.parent ?? 0;
    for (let depth = 0; depth < 64 && current > 0; depth++) {
      if (current === pid) {
        for (const [name, ticks] of ownThreadTicks(child, "db ")) {
          out.set(name, (out.get(name) ?? 0) + ticks);
        }
        break;
      }
      current = table.get(current)?.parent ?? 0;
    }
  }
  return out;
}

/**
 * @param {number} pid
 * @param {string} prefix
 * @returns {Map<string, number>}
 */
function ownThreadTicks(pid, prefix) {
  const out = new Map();
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const text = readText(`/proc/${pid}/task/${tid}/stat`);
    if (!text) continue;
    const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
    const name = prefix + (Number(tid) === pid ? "main" : comm.startsWith("V8 ") ? "gc" : comm);
    const fields = statFields(text);
    out.set(name, (out.get(name) ?? 0) + Number(fields[11]) + Number(fields[12]));
  }
  return out;
}

function machineTicks() {
  const text = readText("/proc/stat");
  if (!text) return undefined;
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1)
    .map(Number);
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { total, idle, iowait, steal };
}

/**
 * Starts a measurement over the named process trees.
 * @param {Record<string, number>} roots name -> pid
 */
export function startCpuSample(roots) {
  const startedMs = performance.now();
  const table = processTable();
  const rootPids = new Set(Object.values(roots));
  /** @param {number} pid */
  const others = (pid) => new Set([...rootPids].filter((other) => other !== pid));
  const before = Object.fromEntries(
    Object.entries(roots).map(([name, pid]) => [name, treeTicks(table, pid, others(pid))]),
  );
  const threadsBefore = Object.fromEntries(
    Object.entries(roots).map(([name, pid]) => [name, threadTicks(pid)]),
  );
  const machineBefore = machineTicks();
  return {
    /** @returns {import("./proc_cpu.d.ts").CpuReport} */
    stop() {
      const seconds = (performance.now() - startedMs) / 1000;
      const tableAfter = processTable();
      /** @type {Record<string, number | null>} */
      const processPercent = {};
      for (const [name, pid] of Object.entries(roots)) {
        const after = treeTicks(tableAfter, pid, others(pid));
        const start = before[name];
        processPercent[name] = after === undefined || start === undefined || seconds <= 0
          ? null
          : round1(((after - start) / CLOCK_TICKS_PER_S / seconds) * 100);
      }
      /** @type {Record<string, Record<string, number>>} */
      const threadPercent = {};
      for (const [name, pid] of Object.entries(roots)) {
        if (seconds <= 0) break;
        const start = threadsBefore[name];
        const perThread = {};
        for (const [thread, ticks] of threadTicks(pid)) {
          const percent = round1(
            ((ticks - (start.get(thread) ?? 0)) / CLOCK_TICKS_PER_S / seconds) * 100,
          );
          if (percent > 0) perThread[thread] = percent;
        }
        threadPercent[name] = perThread;
      }
      const machineAfter = machineTicks();
      let machine = null;
      if (machineBefore && machineAfter && machineAfter.total > machineBefore.total) {
        const total = machineAfter.total - machineBefore.total;
        const share = (key) => round1(((machineAfter[key] - machineBefore[key]) / total) * 100);
        const idle = share("idle");
        const iowait = share("iowait");
        const steal = share("steal");
        machine = {
          busyPercent: round1(100 - idle - iowait - steal),
          iowaitPercent: iowait,
          stealPercent: steal,
        };
      }
      return {
        seconds: round1(seconds),
        cores: availableParallelism(),
        processPercent,
        threadPercent,
        machine,
      };
    },
  };
}

/** @param {number} value */
function round1(value) {
  return Math.round(value * 10) / 10;
}
