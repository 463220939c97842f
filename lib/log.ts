/**
 * The one place that writes server log output. Lines are readable text by default
 * and JSON with LIGHTCONE_LOG_FORMAT=json. Fields carry their unit in the name.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

let minimumLevel: LogLevel = "info";
let jsonFormat = false;

export function configureLog(options: { level?: LogLevel; json?: boolean }): void {
  if (options.level) minimumLevel = options.level;
  if (options.json !== undefined) jsonFormat = options.json;
}

export type LogFields = Record<string, unknown>;

function write(level: LogLevel, message: string, fields?: LogFields): void {
  if (LEVEL_RANK[level] < LEVEL_RANK[minimumLevel]) return;
  const time = new Date().toISOString();
  let line: string;
  if (jsonFormat) {
    line = JSON.stringify(
      { time, level, message, ...fields },
      (_k, v) => typeof v === "bigint" ? v.toString() : v,
    );
  } else {
    const extra = fields
      ? Object.entries(fields).map(([k, v]) => `${k}=${formatField(v)}`).join(" ")
      : "";
    line = `${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? " " + extra : ""}`;
  }
  // deno-lint-ignore no-console
  (level === "error" || level === "warn" ? console.error : console.log)(line);
}

function formatField(value: unknown): string {
  if (typeof value === "string") return /\s/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.stack ?? value.message);
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value);
}

export const log = {
  debug: (message: string, fields?: LogFields) => write("debug", message, fields),
  info: (message: string, fields?: LogFields) => write("info", message, fields),
  warn: (message: string, fields?: LogFields) => write("warn", message, fields),
  error: (message: string, fields?: LogFields) => write("error", message, fields),
};
