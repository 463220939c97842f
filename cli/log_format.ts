/** Renders the server's NDJSON log records (`logs` verb) as readable lines. */

export interface LogRecord {
  ts?: number;
  level?: string;
  target?: string;
  filename?: string;
  line_number?: number;
  function?: string;
  message?: string;
  trace?: { module_name?: string; func_name?: string }[];
}

const SYSTEM_SENTINEL = "__spacetimedb__";

const LEVEL_COLOURS: Record<string, string> = {
  ERROR: "\x1b[31m",
  PANIC: "\x1b[1;31m",
  WARN: "\x1b[33m",
  INFO: "\x1b[32m",
  DEBUG: "\x1b[34m",
  TRACE: "\x1b[35m",
};
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

/**
 * `text` with every control character but newline and tab shown as an escape (`\x1b` becomes
 * the four characters `\x1b`): a log line's message and names are the module's, and through it
 * any client's (a chat message it logs), so they must not reach the terminal as escape sequences
 * (clearing the screen, retitling the window, writing the clipboard with OSC 52, hiding text with
 * carriage returns). C0 controls, DEL and the C1 controls (U+0080-U+009F; some terminals read
 * U+009B as CSI) are escaped.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Microseconds since the Unix epoch -> `2025-01-07T15:32:57.447286Z`. */
export function formatTimestampMicros(micros: number): string {
  const wholeMs = Math.floor(micros / 1000);
  const iso = new Date(wholeMs).toISOString(); // 2025-01-07T15:32:57.447Z
  const fraction = String(((micros % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, "0");
  return `${iso.slice(0, 19)}.${fraction}Z`;
}

/**
 * `<time> <LEVEL>: [<function> ][<file>:<line>]: <message>`; function and file are left
 * out when absent or the system sentinel. Returns the raw line when it is not a record.
 */
export function formatLogLine(line: string, options: { colour: boolean }): string {
  let record: LogRecord;
  try {
    record = JSON.parse(line);
  } catch {
    return printable(line);
  }
  if (typeof record !== "object" || record === null) return printable(line);
  const level = printable(String(record.level ?? "Info").toUpperCase());
  const time = typeof record.ts === "number" ? formatTimestampMicros(record.ts) : "";
  const levelText = level.padStart(5);
  const colouredLevel = options.colour
    ? `${LEVEL_COLOURS[level] ?? ""}${levelText}${RESET}`
    : levelText;
  const colouredTime = options.colour ? `${DIM}${time}${RESET}` : time;
  let origin = "";
  if (record.function && record.function !== SYSTEM_SENTINEL) origin += `${record.function} `;
  if (record.filename && record.filename !== SYSTEM_SENTINEL) {
    origin += record.line_number !== undefined
      ? `${record.filename}:${record.line_number}`
      : record.filename;
  }
  origin = printable(origin.trim());
  const head = `${colouredTime} ${colouredLevel}:`;
  const message = printable(String(record.message ?? ""));
  let text = origin === "" ? `${head} ${message}` : `${head} ${origin}: ${message}`;
  for (const frame of record.trace ?? []) {
    text += `\n    in ${printable(`${frame.module_name ?? "?"} :: ${frame.func_name ?? "?"}`)}`;
  }
  return text;
}
