/**
 * The address-space cap of a child process (Linux, util-linux `prlimit`): RLIMIT_DATA, which a
 * failed allocation (an ArrayBuffer, V8's own) runs into, set from outside because the child has
 * no permissions to set it itself. Used for database processes (worker/isolation.ts) and the
 * CLI's wasm describe process (cli/module_describe.ts).
 */

/** A system tool in the usual directories (never PATH: the server's environment may set it). */
export function toolPath(name: string): string | undefined {
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** Whether data limits can be set on this machine (Linux with `prlimit`). */
export function canLimitData(): boolean {
  return Deno.build.os === "linux" && toolPath("prlimit") !== undefined;
}

/** A live process's data segment (VmData, bytes), or undefined when /proc does not say. */
export async function dataSegmentBytes(pid: number): Promise<number | undefined> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmData:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/**
 * Sets RLIMIT_DATA of `pid` (bytes; the soft limit is the one enforced, the hard one the most
 * the soft may be raised to later). Throws an Error with prlimit's complaint when it fails.
 */
export async function setDataLimit(pid: number, soft: number, hard: number): Promise<void> {
  const prlimit = toolPath("prlimit");
  if (prlimit === undefined) throw new Error("prlimit is not installed");
  const result = await new Deno.Command(prlimit, {
    args: [`--pid=${pid}`, `--data=${soft}:${hard}`],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) throw new Error(new TextDecoder().decode(result.stderr).trim());
}
