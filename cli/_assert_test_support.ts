/** Test helpers on top of node:assert (JSR is not reachable from every machine). */
import { AssertionError } from "node:assert";

/** Runs `fn`, expects it to throw an instance of `type`, returns the error. */
export function thrown<E extends Error>(fn: () => unknown, type: new (...args: never[]) => E): E {
  try {
    fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new AssertionError({ message: `expected ${type.name}, got ${String(error)}` });
  }
  throw new AssertionError({ message: `expected ${type.name} to be thrown` });
}

/** Async variant of thrown(). */
export async function rejected<E extends Error>(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new AssertionError({ message: `expected ${type.name}, got ${String(error)}` });
  }
  throw new AssertionError({ message: `expected ${type.name} to be thrown` });
}

/** Fails unless `text` contains `part`, showing both. */
export function assertIncludes(text: string, part: string): void {
  if (!text.includes(part)) {
    throw new AssertionError({ message: `expected to find ${JSON.stringify(part)} in:\n${text}` });
  }
}
