/** `logs DATABASE [-n N] [-f] [--format text|json]`: print (and follow) a database's log. */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseCount, parseVerbArgs } from "../args.ts";
import { authHints, type CliContext, connect, projectConfig } from "../context.ts";
import { applyProjectDatabase } from "../project_config.ts";
import { CliError, UsageError } from "../errors.ts";
import { formatLogLine } from "../log_format.ts";

export const LOGS_HELP = `Print the log of a database (module console output and system messages)

Usage: logs [OPTIONS] <DATABASE>

Arguments:
  <DATABASE>  Database name or identity

Options:
  -n, --num-lines <N>     Only the last N lines (with --follow the default is 10)
  -f, --follow            Keep printing new lines until Ctrl-C
      --format <FORMAT>   text (default) or json (the raw NDJSON records)
  -l, --level <LEVEL>     Only this level and more severe: trace, debug, info, warn, error, panic
      --level-exact       With --level: only exactly that level
  -s, --server <SERVER>   Server URL or saved nickname (default: local)
  -h, --help              Print help

Only the database's owner may read its log.

Examples:
  logs my-db -n 20
  logs my-db -f
  logs my-db --format json | jq .message`;

const FLAGS = {
  "num-lines": { type: "string", short: "n" },
  follow: { type: "boolean", short: "f" },
  format: { type: "string" },
  level: { type: "string", short: "l" },
  "level-exact": { type: "boolean" },
  server: { type: "string", short: "s" },
} as const;

const SEVERITY = ["trace", "debug", "info", "warn", "error", "panic"];

export async function runLogs(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("logs", args, FLAGS);
  const project = applyProjectDatabase(
    await projectConfig(ctx),
    parsed.positionals,
    "optional",
  );
  const positionals = project.positionals;
  const flags = {
    ...parsed.flags,
    server: parsed.flags.server ?? project.server,
  };
  expectPositionals("logs", positionals, { required: ["DATABASE"] });
  const [database] = positionals;
  const format = flags.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`invalid value '${format}' for '--format': expected text or json`, "logs");
  }
  const follow = flags.follow === true;
  let numLines = flags["num-lines"] !== undefined
    ? parseCount("logs", "--num-lines", flags["num-lines"])
    : undefined;
  if (follow && numLines === undefined) numLines = 10;
  const level = flags.level?.toLowerCase();
  if (level !== undefined && !SEVERITY.includes(level)) {
    throw new UsageError(
      `invalid value '${flags.level}' for '--level': expected one of ${SEVERITY.join(", ")}`,
      "logs",
    );
  }
  const keep = (line: string) => {
    if (level === undefined) return true;
    let lineLevel: string;
    try {
      lineLevel = String(JSON.parse(line).level ?? "info").toLowerCase();
    } catch {
      return true;
    }
    return flags["level-exact"]
      ? lineLevel === level
      : SEVERITY.indexOf(lineLevel) >= SEVERITY.indexOf(level);
  };

  const connection = await connect(ctx, { server: flags.server });
  try {
    for await (
      const line of connection.client.logs(database, {
        numLines,
        follow,
        signal: ctx.io.interrupt,
      })
    ) {
      if (!keep(line)) continue;
      ctx.io.out(
        format === "json" ? `${line}\n` : `${formatLogLine(line, { colour: ctx.io.colour })}\n`,
      );
    }
  } catch (error) {
    if (ctx.io.interrupt.aborted) return 0;
    if (error instanceof ApiError) {
      if (error.status === 404) {
        throw new CliError(`failed to find database \`${database}\`.`, [
          `No database named '${database}' on ${connection.serverUrl}.`,
        ]);
      }
      throw new CliError(
        `Reading the log of '${database}' failed: ${error.message} (HTTP ${error.status})`,
        authHints(error, connection),
      );
    }
    throw error;
  }
  return 0;
}
