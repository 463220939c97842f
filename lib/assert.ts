/** Invariant checks that stay on in production. A failure is a bug in Lightcone, never bad input. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = "Unreachable"): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}
