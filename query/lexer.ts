/**
 * SQL tokenizer for the subscription and /sql dialects (query-subscriptions.md §1.2).
 * Tokens keep their raw text: numbers stay text until the type checker knows the column
 * type, strings and quoted identifiers are unescaped (`''`, `""`).
 */
import { SqlError } from "./sql_error.ts";

export type Token =
  /** Unquoted words are identifiers or keywords; the parser decides, case-insensitively. */
  | { kind: "word"; text: string; quoted: boolean; start: number; end: number }
  /** `prefix` is "" for '...', or "E"/"N" for E'..'/N'..' (tokenized, refused later). */
  | { kind: "string"; value: string; prefix: string; start: number; end: number }
  | { kind: "number"; text: string; start: number; end: number }
  /** `0x..` or `X'..'`; `digits` has no prefix and is not validated. */
  | { kind: "hex"; digits: string; start: number; end: number }
  /** `:name` or `$1`; `text` includes the sigil. */
  | { kind: "param"; text: string; start: number; end: number }
  | { kind: "symbol"; text: string; start: number; end: number }
  | { kind: "eof"; start: number; end: number };

const SYMBOLS = [
  "<>",
  "!=",
  "<=",
  ">=",
  "||",
  "::",
  "=",
  "<",
  ">",
  "(",
  ")",
  ",",
  ".",
  "*",
  ";",
  "+",
  "-",
  "/",
  "%",
  "[",
  "]",
  "^",
  "&",
  "|",
  "~",
  "@",
  "#",
];

function isWordStart(c: string): boolean {
  return /[A-Za-z_\u0080-\uffff]/.test(c);
}
function isWordPart(c: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
}
function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function syntaxError(detail: string): SqlError {
  return new SqlError(`sql parser error: ${detail}`, "syntax");
}

/** Reads a quoted run starting after the opening quote; doubled quotes stand for one. */
function readQuoted(sql: string, from: number, quote: string): { value: string; end: number } {
  let value = "";
  let i = from;
  for (;;) {
    const next = sql.indexOf(quote, i);
    if (next < 0) {
      throw syntaxError(
        quote === "'" ? "Unterminated string literal" : "Unterminated quoted identifier",
      );
    }
    value += sql.slice(i, next);
    if (sql[next + 1] === quote) {
      value += quote;
      i = next + 2;
    } else {
      return { value, end: next + 1 };
    }
  }
}

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const start = i;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "-" && sql[i + 1] === "-") {
      const newline = sql.indexOf("\n", i);
      i = newline < 0 ? sql.length : newline + 1;
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      if (close < 0) throw syntaxError("Unterminated block comment");
      i = close + 2;
      continue;
    }
    if (c === "'") {
      const { value, end } = readQuoted(sql, i + 1, "'");
      tokens.push({ kind: "string", value, prefix: "", start, end });
      i = end;
      continue;
    }
    if (c === '"') {
      const { value, end } = readQuoted(sql, i + 1, '"');
      tokens.push({ kind: "word", text: value, quoted: true, start, end });
      i = end;
      continue;
    }
    if ((c === "x" || c === "X") && sql[i + 1] === "'") {
      const close = sql.indexOf("'", i + 2);
      if (close < 0) throw syntaxError("Unterminated encoded string literal");
      tokens.push({ kind: "hex", digits: sql.slice(i + 2, close), start, end: close + 1 });
      i = close + 1;
      continue;
    }
    if ((c === "b" || c === "B") && sql[i + 1] === "'") {
      throw syntaxError(`Unsupported bit string literal at offset ${i}`);
    }
    if ((c === "e" || c === "E" || c === "n" || c === "N") && sql[i + 1] === "'") {
      const { value, end } = readQuoted(sql, i + 2, "'");
      tokens.push({ kind: "string", value, prefix: c.toUpperCase(), start, end });
      i = end;
      continue;
    }
    if (c === "0" && (sql[i + 1] === "x" || sql[i + 1] === "X")) {
      let j = i + 2;
      while (j < sql.length && /[0-9A-Fa-f]/.test(sql[j])) j++;
      tokens.push({ kind: "hex", digits: sql.slice(i + 2, j), start, end: j });
      i = j;
      continue;
    }
    if (isDigit(c) || (c === "." && isDigit(sql[i + 1]))) {
      let j = i;
      while (isDigit(sql[j])) j++;
      if (sql[j] === ".") {
        j++;
        while (isDigit(sql[j])) j++;
      }
      if (sql[j] === "e" || sql[j] === "E") {
        let k = j + 1;
        if (sql[k] === "+" || sql[k] === "-") k++;
        if (isDigit(sql[k])) {
          while (isDigit(sql[k])) k++;
          j = k;
        }
      }
      tokens.push({ kind: "number", text: sql.slice(i, j), start, end: j });
      i = j;
      continue;
    }
    if (isWordStart(c)) {
      let j = i + 1;
      while (j < sql.length && isWordPart(sql[j])) j++;
      tokens.push({ kind: "word", text: sql.slice(i, j), quoted: false, start, end: j });
      i = j;
      continue;
    }
    if ((c === ":" && isWordStart(sql[i + 1] ?? "")) || (c === "$" && isDigit(sql[i + 1]))) {
      let j = i + 1;
      while (j < sql.length && isWordPart(sql[j])) j++;
      tokens.push({ kind: "param", text: sql.slice(i, j), start, end: j });
      i = j;
      continue;
    }
    if (c === "$" && sql[i + 1] === "$") {
      const close = sql.indexOf("$$", i + 2);
      if (close < 0) throw syntaxError("Unterminated dollar-quoted string");
      tokens.push({
        kind: "string",
        value: sql.slice(i + 2, close),
        prefix: "$$",
        start,
        end: close + 2,
      });
      i = close + 2;
      continue;
    }
    const symbol = SYMBOLS.find((s) => sql.startsWith(s, i));
    if (symbol === undefined) throw syntaxError(`Unexpected character '${c}' at offset ${i}`);
    tokens.push({ kind: "symbol", text: symbol, start, end: i + symbol.length });
    i += symbol.length;
  }
  tokens.push({ kind: "eof", start: sql.length, end: sql.length });
  return tokens;
}
