/**
 * How the CLI talks to the person at the terminal. Commands never touch Deno.stdout
 * directly, so tests can run them in-process and read what they printed.
 */

export interface CliIo {
  /** Writes text to standard output as is (add "\n" yourself). */
  out(text: string): void;
  /** Writes text to standard error as is. */
  err(text: string): void;
  /** True when stdout is a terminal: enables colours and prompts. */
  readonly colour: boolean;
  /** True when stdin is a terminal, so questions can be asked. */
  readonly interactive: boolean;
  /** Reads one line from stdin; null at end of input. */
  readLine(): Promise<string | null>;
  /** Environment lookup (HOME, XDG_CONFIG_HOME, NO_COLOR, LIGHTCONE_CLI_CONFIG). */
  env(name: string): string | undefined;
  /** Aborted when the user presses Ctrl-C (used by `logs --follow`). */
  readonly interrupt: AbortSignal;
}

/** The real terminal. */
export function terminalIo(): CliIo {
  const encoder = new TextEncoder();
  const interrupt = new AbortController();
  if (Deno.build.os !== "windows") {
    const onSigint = () => {
      Deno.removeSignalListener("SIGINT", onSigint);
      interrupt.abort();
    };
    Deno.addSignalListener("SIGINT", onSigint);
  }
  const colour = Deno.stdout.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
  return {
    out: (text) => writeAll(Deno.stdout, encoder.encode(text)),
    err: (text) => writeAll(Deno.stderr, encoder.encode(text)),
    colour,
    interactive: Deno.stdin.isTerminal(),
    readLine: () => readStdinLine(),
    env: (name) => Deno.env.get(name),
    interrupt: interrupt.signal,
  };
}

function writeAll(target: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += target.writeSync(bytes.subarray(offset));
}

async function readStdinLine(): Promise<string | null> {
  const decoder = new TextDecoder();
  const byte = new Uint8Array(1);
  let line = "";
  while (true) {
    const n = await Deno.stdin.read(byte);
    if (n === null) return line === "" ? null : line;
    const ch = decoder.decode(byte);
    if (ch === "\n") return line.replace(/\r$/, "");
    line += ch;
  }
}

/** An in-memory CliIo for tests: captures output, answers prompts from a list. */
export interface CapturedIo extends CliIo {
  readonly stdout: string;
  readonly stderr: string;
}

export function captureIo(
  options: {
    answers?: string[];
    env?: Record<string, string>;
    interactive?: boolean;
    interrupt?: AbortSignal;
  } = {},
): CapturedIo {
  let stdout = "";
  let stderr = "";
  const answers = [...(options.answers ?? [])];
  const env = options.env ?? {};
  return {
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    colour: false,
    interactive: options.interactive ?? false,
    readLine: () => Promise.resolve(answers.length > 0 ? answers.shift()! : null),
    env: (name) => env[name],
    interrupt: options.interrupt ?? new AbortController().signal,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}

/** Asks a yes/no question; only "y"/"yes" accept. End of input means no. */
export async function confirm(io: CliIo, question: string): Promise<boolean> {
  io.err(`${question} [y/N] `);
  const answer = await io.readLine();
  if (answer === null) io.err("\n");
  return answer !== null && /^(y|yes)$/i.test(answer.trim());
}
