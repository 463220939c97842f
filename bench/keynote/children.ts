/**
 * Child processes started by the benchmark (servers, load clients), so an interrupted run can
 * stop them by pid instead of leaving them behind.
 */
const live = new Set<Deno.ChildProcess>();

/** Registers `child` until it exits. */
export function trackChild(child: Deno.ChildProcess): Deno.ChildProcess {
  live.add(child);
  child.status.finally(() => live.delete(child));
  return child;
}

/** Sends SIGTERM to every child still running and waits up to `waitMs` for them to exit. */
export async function stopTrackedChildren(waitMs = 5_000): Promise<void> {
  const children = [...live];
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Exited meanwhile.
    }
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.allSettled(children.map((child) => child.status)),
    new Promise((resolve) => timer = setTimeout(resolve, waitMs)),
  ]);
  clearTimeout(timer);
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }
}
