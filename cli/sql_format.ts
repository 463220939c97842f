/**
 * Rendering of `/sql` results the way SpacetimeDB's CLI prints them: one psql-style table
 * per statement, values in its psql notation (strings quoted, identities as 0x hex,
 * timestamps in RFC 3339, products `(a = 1)`, sums `(some = 5)`), and durations as Rust
 * prints them with `{:.2?}` (`1.23ms`).
 */
import {
  type AlgebraicType,
  jsonToValue,
  type ProductType,
  productTypeFromJson,
  resolveType,
  specialProductKind,
  stringifyJson,
  type SumValue,
  type Value,
} from "../protocol/mod.ts";
import { CliError } from "./errors.ts";
import { formatTable } from "./table_format.ts";

/** One element of the `/sql` response array, as parsed (integers beyond 2^53 as bigint). */
export interface StatementResult {
  schema: ProductType;
  /** One untyped SATS-JSON array per row. */
  rows: unknown[];
  totalDurationMicros: number;
  stats: { rowsInserted: number; rowsDeleted: number; rowsUpdated: number };
}

/** Reads the `/sql` response body (already parsed JSON); a bad shape is a CliError. */
export function parseSqlResponse(json: unknown): StatementResult[] {
  if (!Array.isArray(json)) {
    throw new CliError("malformed sql response: expected a JSON array of statement results");
  }
  return json.map((item, i) => {
    const entry = item as Record<string, unknown> | null;
    if (typeof entry !== "object" || entry === null || !Array.isArray(entry.rows)) {
      throw new CliError(`malformed sql response: statement ${i} has no rows`);
    }
    let schema: ProductType;
    try {
      schema = productTypeFromJson(entry.schema, `[${i}].schema`);
    } catch (error) {
      throw new CliError(`malformed sql response: ${(error as Error).message}`);
    }
    const stats = (entry.stats ?? {}) as Record<string, unknown>;
    return {
      schema,
      rows: entry.rows,
      totalDurationMicros: Number(entry.total_duration_micros ?? 0),
      stats: {
        rowsInserted: Number(stats.rows_inserted ?? 0),
        rowsDeleted: Number(stats.rows_deleted ?? 0),
        rowsUpdated: Number(stats.rows_updated ?? 0),
      },
    };
  });
}

/** The psql-style table of one statement (header, rule, rows), ending with "\n". */
export function renderStatement(result: StatementResult): string {
  const headers = result.schema.elements.map((e, i) => e.name ?? `column ${i}`);
  const rows = result.rows.map((row) => {
    const cells = Array.isArray(row) ? row : [];
    return result.schema.elements.map((e, i) => renderJsonCell(e.algebraicType, cells[i]));
  });
  return formatTable(headers, rows);
}

/** `(2 rows) [inserted: 1, server: 1.23ms]`: the REPL's line after each table. */
export function statsLine(result: StatementResult): string {
  const count = result.rows.length;
  const parts: string[] = [];
  if (result.stats.rowsInserted) parts.push(`inserted: ${result.stats.rowsInserted}`);
  if (result.stats.rowsDeleted) parts.push(`deleted: ${result.stats.rowsDeleted}`);
  if (result.stats.rowsUpdated) parts.push(`updated: ${result.stats.rowsUpdated}`);
  parts.push(`server: ${formatDuration(result.totalDurationMicros / 1000)}`);
  return `(${count} ${count === 1 ? "row" : "rows"}) [${parts.join(", ")}]`;
}

/** A duration in milliseconds as Rust's `{:.2?}` prints it: `812.00µs`, `1.23ms`, `2.50s`. */
export function formatDuration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`;
  if (ms >= 1) return `${ms.toFixed(2)}ms`;
  if (ms >= 0.001) return `${(ms * 1000).toFixed(2)}µs`;
  return `${Math.round(ms * 1_000_000)}ns`;
}

function renderJsonCell(type: AlgebraicType, json: unknown): string {
  let value: Value;
  try {
    value = jsonToValue(type, json);
  } catch {
    // A column type this client cannot resolve (e.g. a Ref): show the JSON as sent.
    return stringifyJson(json as never);
  }
  return psqlValue(type, value);
}

/**
 * JSON text with DEL and the C1 controls (U+007F-U+009F, which JSON.stringify leaves as they are)
 * written as `\u` escapes: a string any client stored must not reach the terminal as a control
 * (some terminals read U+009B as CSI). The text still parses to the same value.
 */
export function escapeC1(json: string): string {
  return json.replace(
    /[\x7f-\x9f]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** One value in SpacetimeDB's psql notation. */
export function psqlValue(type: AlgebraicType, value: Value): string {
  const t = resolveType(type, []);
  switch (t.tag) {
    case "String":
      return escapeC1(JSON.stringify(value));
    case "Bool":
    case "I8":
    case "U8":
    case "I16":
    case "U16":
    case "I32":
    case "U32":
    case "I64":
    case "U64":
    case "I128":
    case "U128":
    case "I256":
    case "U256":
      return String(value);
    case "F32":
    case "F64":
      return floatText(value as number);
    case "Array":
      if (value instanceof Uint8Array) return `0x${hex(value)}`;
      return `[${(value as Value[]).map((v) => psqlValue(t.value, v)).join(", ")}]`;
    case "Product":
      return productText(t.value, value as Value[]);
    case "Sum": {
      const sum = value as SumValue;
      const variant = t.value.variants[sum.tag];
      const name = variant?.name ?? String(sum.tag);
      return `(${name} = ${psqlValue(variant.algebraicType, sum.value)})`;
    }
    default:
      return String(value);
  }
}

function productText(product: ProductType, fields: Value[]): string {
  const special = specialProductKind(product);
  if (special !== undefined) {
    const raw = fields[0] as bigint;
    switch (special) {
      case "Identity":
        return `0x${raw.toString(16).padStart(64, "0")}`;
      case "ConnectionId":
        return `0x${raw.toString(16).padStart(32, "0")}`;
      case "Timestamp":
        return timestampText(raw);
      case "TimeDuration":
        return durationText(raw);
      case "Uuid":
        return JSON.stringify(uuidText(raw));
    }
  }
  if (product.elements.length === 0) return "()";
  return `(${
    product.elements.map((e, i) => `${e.name ?? i} = ${psqlValue(e.algebraicType, fields[i])}`)
      .join(", ")
  })`;
}

function floatText(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "inf";
  if (n === -Infinity) return "-inf";
  return String(n);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** RFC 3339 with `+00:00`; fraction digits 0, 3 or 6 as needed (chrono's AutoSi). */
function timestampText(micros: bigint): string {
  const floorMs = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n);
  const subMicros = Number(micros - floorMs * 1000n);
  const date = new Date(Number(floorMs));
  if (Number.isNaN(date.getTime())) return String(micros);
  const base = date.toISOString().slice(0, 19);
  const fractionMicros = date.getUTCMilliseconds() * 1000 + subMicros;
  let fraction = "";
  if (fractionMicros !== 0) {
    fraction = fractionMicros % 1000 === 0
      ? "." + String(fractionMicros / 1000).padStart(3, "0")
      : "." + String(fractionMicros).padStart(6, "0");
  }
  return `${base}${fraction}+00:00`;
}

/** `+<seconds>.<micros>` (sign always shown). */
function durationText(micros: bigint): string {
  const sign = micros < 0n ? "-" : "+";
  const magnitude = micros < 0n ? -micros : micros;
  return `${sign}${magnitude / 1_000_000n}.${(magnitude % 1_000_000n).toString().padStart(6, "0")}`;
}

function uuidText(value: bigint): string {
  const h = value.toString(16).padStart(32, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Splits REPL input into complete statements at `;` outside quotes. Returns the complete
 * statements (without the `;`, trimmed, empty ones dropped) and the unfinished rest.
 */
export function splitStatements(text: string): { statements: string[]; rest: string } {
  const statements: string[] = [];
  let start = 0;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote !== undefined) {
      if (ch === quote) {
        if (text[i + 1] === quote) i++; // doubled quote inside a literal
        else quote = undefined;
      }
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === ";") {
      const statement = text.slice(start, i).trim();
      if (statement !== "") statements.push(statement);
      start = i + 1;
    }
  }
  return { statements, rest: text.slice(start) };
}
