/**
 * Reads the output of `strace -f -tt -T -yy -xx -s N -e trace=...`: every traced syscall with
 * its thread, start and end time (µs since the first line), the fd's path or socket, and the
 * bytes it wrote. Used by tests/e2e/fsync_order_test.ts to check what the real server wrote
 * to sockets against the fdatasync calls on its commit logs.
 *
 *   const calls = parseStrace(await Deno.readTextFile(path));
 */
import { concatBytes } from "../../lib/bytes.ts";

export interface Syscall {
  thread: number;
  name: string;
  /** Microseconds since the first line of the trace. */
  startMicros: number;
  endMicros: number;
  fd: number;
  /** The fd's file path, or for a socket e.g. `TCP:[127.0.0.1:3000->127.0.0.1:41000]`. */
  target: string;
  /** Bytes written (write, pwrite64, sendto, writev); empty for other calls. */
  data: Uint8Array;
  /** False when the data was cut at strace's -s limit. */
  complete: boolean;
  result: string;
}

/** The strace options parseStrace() expects, before `-e trace=...` and `-o`. */
export const STRACE_FORMAT_ARGS = ["-f", "-tt", "-T", "-yy", "-xx", "--seccomp-bpf"];

// strace pads the pid column to five characters: "3540  23:52:12.295952 ..." has two spaces.
const HEAD = /^(\d+) +(\d\d):(\d\d):(\d\d)\.(\d{6}) (.*)$/;
const RESUMED = /^<\.\.\. (\w+) resumed>(.*)$/;
const CALL = /^(\w+)\((.*)$/;
const FD = /^(\d+)<((?:\\x[0-9a-f]{2})*|[A-Z0-9]+:\[[^\]]*\])>/;
const RESULT = /\) = (-?\w+)(?: [A-Z_]+ \([^)]*\))? <(\d+)\.(\d{6})>$/;
const STRING = /"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?/g;
const IOV_BASE = /iov_base="((?:\\x[0-9a-f]{2})*)"(\.\.\.)?/g;

export function parseStrace(text: string): Syscall[] {
  const calls: Syscall[] = [];
  const unfinished = new Map<number, { name: string; startMicros: number; args: string }>();
  let firstMicros: number | undefined;
  let dayOffset = 0;
  let lastMicros = 0;
  for (const line of text.split("\n")) {
    const head = HEAD.exec(line);
    if (!head) continue;
    const thread = Number(head[1]);
    let micros = ((Number(head[2]) * 60 + Number(head[3])) * 60 + Number(head[4])) * 1e6 +
      Number(head[5]) + dayOffset;
    if (micros < lastMicros - 12 * 3600e6) {
      // The trace ran past midnight.
      dayOffset += 24 * 3600e6;
      micros += 24 * 3600e6;
    }
    lastMicros = micros;
    firstMicros ??= micros;
    const at = micros - firstMicros;
    const rest = head[6];
    const resumed = RESUMED.exec(rest);
    if (resumed) {
      const started = unfinished.get(thread);
      unfinished.delete(thread);
      if (!started || started.name !== resumed[1]) continue;
      const whole = started.args + resumed[2];
      const call = toSyscall(thread, started.name, started.startMicros, whole, at);
      if (call) calls.push(call);
      continue;
    }
    const opened = CALL.exec(rest);
    if (!opened) continue;
    const [, name, args] = opened;
    if (args.endsWith(" <unfinished ...>")) {
      unfinished.set(thread, { name, startMicros: at, args: args.slice(0, -17) });
      continue;
    }
    const call = toSyscall(thread, name, at, args, undefined);
    if (call) calls.push(call);
  }
  return calls;
}

function toSyscall(
  thread: number,
  name: string,
  startMicros: number,
  args: string,
  resumedAtMicros: number | undefined,
): Syscall | undefined {
  const fd = FD.exec(args);
  const result = RESULT.exec(args);
  if (!fd || !result) return undefined;
  const durationMicros = Number(result[2]) * 1e6 + Number(result[3]);
  const target = fd[2].startsWith("\\x") ? new TextDecoder().decode(unhex(fd[2])) : fd[2];
  const afterFd = args.slice(fd[0].length);
  const pattern = name === "writev" || name === "pwritev" ? IOV_BASE : STRING;
  const pieces: Uint8Array[] = [];
  let complete = true;
  if (name !== "fdatasync" && name !== "fsync") {
    for (const match of afterFd.matchAll(pattern)) {
      pieces.push(unhex(match[1]));
      if (match[2]) complete = false;
      if (pattern === STRING) break;
    }
  }
  return {
    thread,
    name,
    startMicros,
    endMicros: Math.max(resumedAtMicros ?? 0, startMicros + durationMicros),
    fd: Number(fd[1]),
    target,
    data: concat(pieces),
    complete,
    result: result[1],
  };
}

function unhex(escaped: string): Uint8Array {
  const out = new Uint8Array(escaped.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(escaped.slice(i * 4 + 2, i * 4 + 4), 16);
  }
  return out;
}

/** One array holding `pieces` back to back (lib/bytes.ts). */
export const concat = concatBytes;

/** Index of `needle` in `haystack`, or -1. */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  outer: for (let i = haystack.indexOf(first, from); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
