/**
 * User-facing failures. runCli prints `Error: <message>` plus the hints and exits 1,
 * never a stack trace. Anything else that escapes is a bug and is shown with its stack.
 */

export class CliError extends Error {
  override name = "CliError";
  readonly hints: string[];
  constructor(message: string, hints: string[] = []) {
    super(message);
    this.hints = hints;
  }
}

/** Bad command line: unknown flag, missing argument. Printed with a pointer to --help. */
export class UsageError extends CliError {
  override name = "UsageError";
  constructor(message: string, readonly verb?: string) {
    super(message, [`For more information, try '${verb ? verb + " " : ""}--help'.`]);
  }
}
