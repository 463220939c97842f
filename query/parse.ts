/**
 * Recursive-descent parser for SpacetimeDB's SQL (query-subscriptions.md §1.3, §1.4).
 * It produces an AST close to SpacetimeDB's; constructs that SpacetimeDB recognises but refuses
 * (ORDER BY, DISTINCT, NOT, IS NULL, arithmetic...) fail here with its catalogue messages.
 * `parseSubscriptionQuery` applies the subscription grammar; the /sql statements (DML, SET,
 * SHOW) will get their own entry point on top of the same machinery.
 */
import { SQL_BYTES_MAX, SQL_EXPR_DEPTH_MAX, TOPN_LIMIT_MAX } from "../lib/limits.ts";
import { type Token, tokenize } from "./lexer.ts";
import { SqlError } from "./sql_error.ts";

export type CmpOp = "=" | "<>" | "<" | "<=" | ">" | ">=";
export type LiteralKind = "num" | "str" | "hex" | "bool";

interface Span {
  start: number;
  end: number;
}
export interface FieldExpr extends Span {
  kind: "field";
  /** The table name or alias before the last dot, if any (itself possibly dotted). */
  table: string | undefined;
  column: string;
}
export interface LiteralExpr extends Span {
  kind: "lit";
  lit: LiteralKind;
  /** Raw text: number text with its sign, unescaped string, hex digits without prefix, true/false. */
  text: string;
}
export interface ParamExpr extends Span {
  kind: "param";
  /** Always "sender": other parameters are refused by the parser. */
  name: "sender";
}
export type Operand = FieldExpr | LiteralExpr | ParamExpr;
export interface CmpExpr extends Span {
  kind: "cmp";
  op: CmpOp;
  left: Operand;
  right: Operand;
}
export interface LogicExpr extends Span {
  kind: "and" | "or";
  left: Expr;
  right: Expr;
}
export type Expr = Operand | CmpExpr | LogicExpr;

export interface TableRef {
  name: string;
  /** The alias, or the table name as written when there is none. */
  alias: string;
}
export interface JoinClause {
  table: TableRef;
  /** `ON a.x = b.y`; absent for CROSS JOIN and JOIN without ON. */
  on: { left: FieldExpr; right: FieldExpr } | undefined;
}
export type Projection =
  | { kind: "star" }
  | { kind: "tableStar"; table: string }
  | { kind: "columns"; items: { field: FieldExpr; alias: string | undefined }[] }
  | { kind: "count"; alias: string };

/** One `ORDER BY` item: a column and its direction. */
export interface OrderItem {
  field: FieldExpr;
  descending: boolean;
}

export interface SelectStatement {
  kind: "select";
  projection: Projection;
  from: TableRef;
  joins: JoinClause[];
  where: Expr | undefined;
  /**
   * `ORDER BY` items, if any: only the subscription grammar keeps them (top-N subscriptions,
   * `ORDER BY … LIMIT n`, topn.ts); the /sql grammar refuses ORDER BY as SpacetimeDB does.
   */
  orderBy: OrderItem[] | undefined;
  /** Raw LIMIT number text (/sql, and top-N subscriptions together with ORDER BY). */
  limit: string | undefined;
  /** The statement's text, for error messages. */
  text: string;
}

/** `INSERT INTO t (a, b) VALUES (..), (..)`: values are literals only (§1.4). */
export interface InsertStatement {
  kind: "insert";
  table: string;
  /** The column names as written (counted, not used for mapping, as in SpacetimeDB). */
  columns: string[];
  rows: LiteralExpr[][];
  text: string;
}
export interface UpdateStatement {
  kind: "update";
  table: string;
  assignments: { column: string; value: LiteralExpr }[];
  where: Expr | undefined;
  text: string;
}
export interface DeleteStatement {
  kind: "delete";
  table: string;
  where: Expr | undefined;
  text: string;
}
/** `SET name = literal` / `SET name TO literal`. */
export interface SetStatement {
  kind: "set";
  name: string;
  value: LiteralExpr;
  text: string;
}
export interface ShowStatement {
  kind: "show";
  name: string;
  text: string;
}
/** A statement of the /sql grammar. */
export type SqlStatement =
  | SelectStatement
  | InsertStatement
  | UpdateStatement
  | DeleteStatement
  | SetStatement
  | ShowStatement;

const DML_WORDS = ["INSERT", "UPDATE", "DELETE", "SET", "SHOW"];

const NON_SELECT_STATEMENTS = new Set([
  "INSERT",
  "UPDATE",
  "DELETE",
  "CREATE",
  "DROP",
  "ALTER",
  "TRUNCATE",
  "SET",
  "SHOW",
  "BEGIN",
  "START",
  "COMMIT",
  "ROLLBACK",
  "GRANT",
  "REVOKE",
  "EXPLAIN",
  "ANALYZE",
  "COPY",
  "CALL",
  "MERGE",
  "DECLARE",
  "PREPARE",
  "EXECUTE",
  "DEALLOCATE",
  "USE",
  "VALUES",
]);
/** Words that end a table reference instead of being its alias. */
const CLAUSE_WORDS = new Set([
  "WHERE",
  "JOIN",
  "INNER",
  "CROSS",
  "LEFT",
  "RIGHT",
  "FULL",
  "NATURAL",
  "OUTER",
  "ON",
  "USING",
  "LIMIT",
  "ORDER",
  "GROUP",
  "HAVING",
  "UNION",
  "EXCEPT",
  "INTERSECT",
  "OFFSET",
  "FETCH",
  "FOR",
  "WINDOW",
  "QUALIFY",
]);
const CMP_OPS = new Set(["=", "<>", "!=", "<", "<=", ">", ">="]);
const BINARY_OPS = new Set(["+", "-", "*", "/", "%", "||", "^", "&", "|", "#"]);

function unsupported(message: string): SqlError {
  return new SqlError(message, "unsupported");
}

class Parser {
  readonly #sql: string;
  readonly #tokens: Token[];
  /** Appended to refusals of ORDER BY/LIMIT/OFFSET (the subscription grammar names top-N). */
  readonly #orderHint: string;
  #at = 0;

  constructor(sql: string, orderHint = "") {
    this.#sql = sql;
    this.#tokens = tokenize(sql);
    this.#orderHint = orderHint;
  }

  #tok(): Token {
    return this.#tokens[this.#at];
  }

  #peek(ahead = 1): Token {
    return this.#tokens[Math.min(this.#at + ahead, this.#tokens.length - 1)];
  }

  #isWord(word: string, token: Token = this.#tok()): boolean {
    return token.kind === "word" && !token.quoted && token.text.toUpperCase() === word;
  }

  #isSymbol(symbol: string, token: Token = this.#tok()): boolean {
    return token.kind === "symbol" && token.text === symbol;
  }

  #eatWord(word: string): boolean {
    if (!this.#isWord(word)) return false;
    this.#at++;
    return true;
  }

  #eatSymbol(symbol: string): boolean {
    if (!this.#isSymbol(symbol)) return false;
    this.#at++;
    return true;
  }

  #describe(token: Token): string {
    return token.kind === "eof" ? "EOF" : this.#sql.slice(token.start, token.end);
  }

  #syntax(expected: string): SqlError {
    return new SqlError(
      `sql parser error: Expected ${expected}, found: ${this.#describe(this.#tok())}`,
      "syntax",
    );
  }

  #expectSymbol(symbol: string): void {
    if (!this.#eatSymbol(symbol)) throw this.#syntax(symbol);
  }

  /** The rest of the statement text from `start`, without a trailing `;`. */
  #textFrom(start: number): string {
    return this.#sql.slice(start).replace(/[\s;]+$/, "").trim();
  }

  /** One statement, then optional `;`s, then the end. */
  parseStatement(): SelectStatement {
    return this.#parseOne(false) as SelectStatement;
  }

  /** One statement of the /sql grammar (§1.4): SELECT, INSERT, UPDATE, DELETE, SET or SHOW. */
  parseSqlStatement(): SqlStatement {
    return this.#parseOne(true);
  }

  #parseOne(sqlGrammar: boolean): SqlStatement {
    if (this.#tok().kind === "eof") throw new SqlError("Empty SQL query", "syntax");
    const start = this.#tok().start;
    let statement: SqlStatement;
    if (this.#isWord("SELECT")) statement = this.#parseSelect(start);
    else if (this.#isWord("WITH")) throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    else if (sqlGrammar && DML_WORDS.some((word) => this.#isWord(word))) {
      statement = this.#parseDml(start);
    } else if ([...NON_SELECT_STATEMENTS].some((word) => this.#isWord(word))) {
      if (sqlGrammar) throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
      throw unsupported("Unsupported: Non-SELECT queries");
    } else if (this.#isSymbol("(")) {
      throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    } else throw this.#syntax("an SQL statement");
    let sawSemicolon = false;
    while (this.#eatSymbol(";")) sawSemicolon = true;
    if (this.#tok().kind !== "eof") {
      if (sawSemicolon) throw unsupported("Multiple SQL statements are not supported");
      throw this.#syntax("end of statement");
    }
    return statement;
  }

  // --- /sql statements besides SELECT (§1.4) ------------------------------------------------

  #parseDml(start: number): SqlStatement {
    const word = (this.#tok() as { text: string }).text.toUpperCase();
    this.#at++;
    switch (word) {
      case "INSERT":
        return this.#parseInsert(start);
      case "UPDATE":
        return this.#parseUpdate(start);
      case "DELETE":
        return this.#parseDelete(start);
      case "SET":
        return this.#parseSet(start);
      default:
        return this.#parseShow(start);
    }
  }

  /** The statement text from `start` to the current token. */
  #textUpTo(start: number): string {
    return this.#sql.slice(start, this.#tok().start).replace(/[\s;]+$/, "").trim();
  }

  /** An identifier that is one name (no dots). */
  #parseIdent(what: string): string {
    const token = this.#tok();
    if (token.kind !== "word") throw this.#syntax(what);
    this.#at++;
    if (this.#isSymbol(".")) {
      const end = this.#skipExpression();
      throw unsupported(
        `Unsupported column/variable assignment expression: ${this.#sql.slice(token.start, end)}`,
      );
    }
    return token.text;
  }

  /** A table name (possibly dotted) with no alias after it. */
  #parseDmlTable(start: number, what: "INSERT" | "UPDATE" | "DELETE"): string {
    const name = this.#parseName("a table name");
    const token = this.#tok();
    const followsName = token.kind === "word" &&
      (token.quoted || !["SET", "WHERE", "VALUES", "USING", "RETURNING"].includes(
        token.text.toUpperCase(),
      ));
    if (this.#isSymbol(",") && what === "DELETE") {
      throw unsupported("Multi-table DELETE is not supported");
    }
    if (followsName || this.#isWord("AS")) {
      // Aliases are refused: the name as written is the only qualifier.
      if (what === "DELETE") {
        const end = this.#skipExpression();
        throw unsupported(
          `Unsupported table expression in DELETE: ${this.#sql.slice(name.start, end)}`,
        );
      }
      throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    }
    return name.parts.join(".");
  }

  /** One literal: number (with its sign), string, hex or bool; `what` names the refusal. */
  #parseLiteral(what: string): LiteralExpr {
    const token = this.#tok();
    if (token.kind === "param") {
      throw unsupported(`Unsupported literal expression: ${token.text}`);
    }
    if (this.#isWord("NULL")) throw unsupported("Unsupported literal expression: NULL");
    let primary: Expr | undefined;
    const from = token.start;
    try {
      primary = this.#parsePrimary(0).expr;
    } catch (error) {
      if (!(error instanceof SqlError) || error.code !== "syntax") throw error;
    }
    if (primary === undefined || primary.kind !== "lit" || !this.#atValueEnd()) {
      const end = this.#skipExpression();
      throw unsupported(`${what}: ${this.#sql.slice(from, Math.max(end, from))}`);
    }
    return primary;
  }

  #atValueEnd(): boolean {
    const token = this.#tok();
    return token.kind === "eof" || this.#isSymbol(",") || this.#isSymbol(")") ||
      this.#isSymbol(";") || (token.kind === "word" && !token.quoted);
  }

  #parseInsert(start: number): InsertStatement {
    if (!this.#eatWord("INTO")) throw this.#syntax("INTO");
    const table = this.#parseDmlTable(start, "INSERT");
    const columns: string[] = [];
    if (this.#eatSymbol("(")) {
      if (!this.#isSymbol(")")) {
        for (;;) {
          columns.push(this.#parseIdent("a column name"));
          if (!this.#eatSymbol(",")) break;
        }
      }
      this.#expectSymbol(")");
    }
    if (!this.#eatWord("VALUES")) {
      if (this.#isWord("SELECT") || this.#isSymbol("(") || this.#isWord("DEFAULT")) {
        throw unsupported(`Unsupported INSERT expression: ${this.#textFrom(start)}`);
      }
      throw this.#syntax("VALUES");
    }
    const rows: LiteralExpr[][] = [];
    for (;;) {
      this.#expectSymbol("(");
      const row: LiteralExpr[] = [];
      if (!this.#isSymbol(")")) {
        for (;;) {
          row.push(this.#parseLiteral("Unsupported INSERT value"));
          if (!this.#eatSymbol(",")) break;
        }
      }
      this.#expectSymbol(")");
      rows.push(row);
      if (!this.#eatSymbol(",")) break;
    }
    if (this.#isWord("ON") || this.#isWord("RETURNING")) {
      throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    }
    return { kind: "insert", table, columns, rows, text: this.#textUpTo(start) };
  }

  #parseUpdate(start: number): UpdateStatement {
    const table = this.#parseDmlTable(start, "UPDATE");
    if (!this.#eatWord("SET")) throw this.#syntax("SET");
    const assignments: UpdateStatement["assignments"] = [];
    for (;;) {
      const column = this.#parseIdent("a column name");
      this.#expectSymbol("=");
      assignments.push({ column, value: this.#parseLiteral("Unsupported literal expression") });
      if (!this.#eatSymbol(",")) break;
    }
    if (this.#isWord("FROM")) throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    let where: Expr | undefined;
    if (this.#eatWord("WHERE")) where = this.#parseExpr(0).expr;
    if (this.#isWord("RETURNING")) throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    return { kind: "update", table, assignments, where, text: this.#textUpTo(start) };
  }

  #parseDelete(start: number): DeleteStatement {
    if (!this.#eatWord("FROM")) throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    const table = this.#parseDmlTable(start, "DELETE");
    if (this.#isWord("USING")) {
      const end = this.#skipExpression();
      throw unsupported(`Unsupported table expression in DELETE: ${this.#sql.slice(start, end)}`);
    }
    let where: Expr | undefined;
    if (this.#eatWord("WHERE")) where = this.#parseExpr(0).expr;
    if (this.#isWord("RETURNING")) throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    return { kind: "delete", table, where, text: this.#textUpTo(start) };
  }

  #parseSet(start: number): SetStatement {
    if (this.#isWord("LOCAL") || this.#isWord("SESSION") || this.#isWord("TRANSACTION")) {
      throw unsupported(`Unsupported: ${this.#textFrom(start)}`);
    }
    const name = this.#parseIdent("a variable name");
    if (!this.#eatSymbol("=") && !this.#eatWord("TO")) throw this.#syntax("= or TO");
    const value = this.#parseLiteral("Unsupported literal expression");
    return { kind: "set", name, value, text: this.#textUpTo(start) };
  }

  #parseShow(start: number): ShowStatement {
    const name = this.#parseIdent("a variable name");
    return { kind: "show", name, text: this.#textUpTo(start) };
  }

  #parseSelect(start: number): SelectStatement {
    this.#at++; // SELECT
    if (this.#isWord("DISTINCT") || this.#isWord("ALL") || this.#isWord("TOP")) {
      throw unsupported(`Unsupported SELECT: ${this.#textFrom(start)}`);
    }
    const projection = this.#parseProjection();
    if (!this.#eatWord("FROM")) {
      if (this.#tok().kind === "eof" || this.#isSymbol(";")) {
        throw unsupported("A FROM clause is required");
      }
      if (this.#isWord("INTO")) throw unsupported(`Unsupported SELECT: ${this.#textFrom(start)}`);
      throw this.#syntax("FROM");
    }
    const from = this.#parseTableRef();
    const joins: JoinClause[] = [];
    for (;;) {
      if (this.#isSymbol(",")) throw unsupported("Implicit joins are not supported");
      const join = this.#parseJoin();
      if (join === undefined) break;
      joins.push(join);
    }
    let where: Expr | undefined;
    if (this.#eatWord("WHERE")) where = this.#parseExpr(0).expr;
    if (this.#isWord("GROUP") || this.#isWord("HAVING") || this.#isWord("WINDOW")) {
      throw unsupported(`Unsupported SELECT: ${this.#textFrom(start)}`);
    }
    if (this.#isWord("UNION") || this.#isWord("EXCEPT") || this.#isWord("INTERSECT")) {
      throw unsupported(`Unsupported set operation: ${this.#textFrom(start)}`);
    }
    let orderBy: OrderItem[] | undefined;
    if (this.#isWord("ORDER") && this.#isWord("BY", this.#peek())) {
      this.#at += 2;
      orderBy = this.#parseOrderItems(start);
    }
    let limit: string | undefined;
    if (this.#isWord("LIMIT")) {
      const next = this.#peek();
      if (next.kind !== "number" || !/^[0-9.eE+-]+$/.test(next.text)) {
        throw unsupported(`Unsupported: ${this.#textFrom(start)}${this.#orderHint}`);
      }
      this.#at += 2;
      limit = next.text;
    }
    if (
      this.#isWord("ORDER") || this.#isWord("OFFSET") || this.#isWord("FETCH") ||
      this.#isWord("FOR") || this.#isWord("LIMIT")
    ) {
      throw unsupported(`Unsupported: ${this.#textFrom(start)}${this.#orderHint}`);
    }
    const text = this.#sql.slice(start, this.#tok().start).trim();
    return { kind: "select", projection, from, joins, where, orderBy, limit, text };
  }

  /** `col [ASC|DESC] {, col [ASC|DESC]}`; anything else (expressions, NULLS ...) is refused. */
  #parseOrderItems(start: number): OrderItem[] {
    const items: OrderItem[] = [];
    for (;;) {
      const token = this.#tok();
      if (token.kind !== "word" || (!token.quoted && CLAUSE_WORDS.has(token.text.toUpperCase()))) {
        throw unsupported(`Unsupported: ${this.#textFrom(start)}${this.#orderHint}`);
      }
      const field = this.#parseField();
      let descending = false;
      if (this.#eatWord("DESC")) descending = true;
      else this.#eatWord("ASC");
      const next = this.#tok();
      const endsItem = next.kind === "eof" || this.#isSymbol(",") || this.#isSymbol(";") ||
        this.#isWord("LIMIT") || this.#isWord("OFFSET") || this.#isWord("FETCH") ||
        this.#isWord("FOR");
      if (!endsItem) {
        throw unsupported(`Unsupported: ${this.#textFrom(start)}${this.#orderHint}`);
      }
      items.push({ field, descending });
      if (!this.#eatSymbol(",")) return items;
    }
  }

  /** A possibly dotted name; returns its parts. */
  #parseName(what: string): { parts: string[]; start: number; end: number } {
    const first = this.#tok();
    if (first.kind !== "word") throw this.#syntax(what);
    this.#at++;
    const parts = [first.text];
    let end = first.end;
    while (this.#isSymbol(".") && this.#peek().kind === "word") {
      this.#at++;
      const part = this.#tok();
      parts.push((part as { text: string }).text);
      end = part.end;
      this.#at++;
    }
    return { parts, start: first.start, end };
  }

  #parseProjection(): Projection {
    if (this.#eatSymbol("*")) return { kind: "star" };
    if (this.#isWord("FROM")) throw this.#syntax("an expression");
    const token = this.#tok();
    if (this.#isWord("COUNT") && this.#isSymbol("(", this.#peek())) {
      const start = token.start;
      this.#at += 2;
      if (!this.#eatSymbol("*") || !this.#eatSymbol(")")) {
        throw unsupported(
          `Unsupported aggregate function: ${this.#sql.slice(start, this.#tok().end)}`,
        );
      }
      const alias = this.#parseAlias();
      if (alias === undefined) throw unsupported("Aggregate expressions must have column aliases");
      if (this.#isSymbol(",")) throw unsupported("Mixed wildcard projections are not supported");
      return { kind: "count", alias };
    }
    const items: { field: FieldExpr; alias: string | undefined }[] = [];
    for (;;) {
      const start = this.#tok().start;
      if (this.#tok().kind !== "word") {
        const end = this.#skipExpression();
        throw unsupported(`Unsupported projection: ${this.#sql.slice(start, end)}`);
      }
      if (this.#isSymbol("(", this.#peek())) {
        const name = (this.#tok() as { text: string }).text;
        const end = this.#skipExpression();
        if (["SUM", "MIN", "MAX", "AVG", "COUNT"].includes(name.toUpperCase())) {
          throw unsupported(`Unsupported aggregate function: ${this.#sql.slice(start, end)}`);
        }
        throw unsupported(`Unsupported projection expression: ${this.#sql.slice(start, end)}`);
      }
      const name = this.#parseName("a projection");
      if (this.#isSymbol(".") && this.#isSymbol("*", this.#peek())) {
        this.#at += 2;
        if (items.length > 0 || this.#isSymbol(",")) {
          throw unsupported("Mixed wildcard projections are not supported");
        }
        return { kind: "tableStar", table: name.parts.join(".") };
      }
      const after = this.#tok();
      if (after.kind === "symbol" && (CMP_OPS.has(after.text) || BINARY_OPS.has(after.text))) {
        const end = this.#skipExpression();
        throw unsupported(`Unsupported projection expression: ${this.#sql.slice(start, end)}`);
      }
      const field = fieldFromParts(name.parts, name.start, name.end);
      items.push({ field, alias: this.#parseAlias() });
      if (!this.#eatSymbol(",")) break;
      if (this.#isSymbol("*")) throw unsupported("Mixed wildcard projections are not supported");
    }
    return { kind: "columns", items };
  }

  #parseAlias(): string | undefined {
    if (this.#eatWord("AS")) {
      const token = this.#tok();
      if (token.kind !== "word") throw this.#syntax("an alias after AS");
      this.#at++;
      return token.text;
    }
    const token = this.#tok();
    if (
      token.kind === "word" && (token.quoted || !CLAUSE_WORDS.has(token.text.toUpperCase())) &&
      !this.#isWord("FROM")
    ) {
      this.#at++;
      return token.text;
    }
    return undefined;
  }

  #parseTableRef(): TableRef {
    const token = this.#tok();
    if (this.#isSymbol("(")) {
      const end = this.#skipExpression();
      throw unsupported(`Unsupported FROM expression: ${this.#sql.slice(token.start, end)}`);
    }
    if (token.kind !== "word") throw this.#syntax("a table name");
    const name = this.#parseName("a table name");
    if (this.#isSymbol("(")) {
      const end = this.#skipExpression();
      throw unsupported(`Unsupported FROM expression: ${this.#sql.slice(name.start, end)}`);
    }
    const tableName = name.parts.join(".");
    const alias = this.#parseAlias();
    if (this.#isSymbol("(")) {
      // Column-alias lists: `t AS x (a, b)`.
      const end = this.#skipExpression();
      throw unsupported(`Unsupported FROM expression: ${this.#sql.slice(name.start, end)}`);
    }
    return { name: tableName, alias: alias ?? tableName };
  }

  #parseJoin(): JoinClause | undefined {
    if (
      this.#isWord("LEFT") || this.#isWord("RIGHT") || this.#isWord("FULL") ||
      this.#isWord("NATURAL")
    ) {
      throw unsupported("Non-inner joins are not supported");
    }
    if (this.#eatWord("CROSS")) {
      if (!this.#eatWord("JOIN")) throw this.#syntax("JOIN after CROSS");
      return { table: this.#parseTableRef(), on: undefined };
    }
    const inner = this.#eatWord("INNER");
    if (!this.#eatWord("JOIN")) {
      if (inner) throw this.#syntax("JOIN after INNER");
      return undefined;
    }
    const table = this.#parseTableRef();
    if (this.#isWord("USING")) throw unsupported("Non-inner joins are not supported");
    if (!this.#eatWord("ON")) return { table, on: undefined };
    const left = this.#tok().kind === "word" ? this.#parseField() : undefined;
    const op = this.#tok();
    if (left === undefined || !this.#isSymbol("=", op)) {
      throw unsupported("Non-inner joins are not supported");
    }
    this.#at++;
    const right = this.#tok().kind === "word" ? this.#parseField() : undefined;
    if (
      right === undefined || this.#isWord("AND") || this.#isWord("OR") ||
      (this.#tok().kind === "symbol" && !this.#isSymbol(";"))
    ) {
      throw unsupported("Non-inner joins are not supported");
    }
    return { table, on: { left, right } };
  }

  #parseField(): FieldExpr {
    const name = this.#parseName("a column");
    return fieldFromParts(name.parts, name.start, name.end);
  }

  /** Skips one balanced expression-ish run of tokens; returns where it ends. */
  #skipExpression(): number {
    let depth = 0;
    let end = this.#tok().start;
    for (;;) {
      const token = this.#tok();
      if (token.kind === "eof" || (depth === 0 && this.#isSymbol(";"))) return end;
      if (
        depth === 0 &&
        (this.#isSymbol(",") || this.#isSymbol(")") || this.#isWord("AND") || this.#isWord("OR") ||
          this.#isWord("FROM") || (token.kind === "word" && !token.quoted &&
            CLAUSE_WORDS.has(token.text.toUpperCase())))
      ) return end;
      if (this.#isSymbol("(")) depth++;
      if (this.#isSymbol(")")) depth--;
      end = token.end;
      this.#at++;
    }
  }

  #checkDepth(depth: number): void {
    if (depth > SQL_EXPR_DEPTH_MAX) {
      throw new SqlError("Recursion limit exceeded, `sql-parser::parse_expr`", "limit");
    }
  }

  /** expr := and { OR and }. Returns the tree and its height. */
  #parseExpr(nesting: number): { expr: Expr; height: number } {
    this.#checkDepth(nesting);
    let { expr, height } = this.#parseAnd(nesting);
    while (this.#eatWord("OR")) {
      const right = this.#parseAnd(nesting);
      height = Math.max(height, right.height) + 1;
      this.#checkDepth(height + nesting);
      expr = { kind: "or", left: expr, right: right.expr, start: expr.start, end: right.expr.end };
    }
    return { expr, height };
  }

  #parseAnd(nesting: number): { expr: Expr; height: number } {
    let { expr, height } = this.#parseNot(nesting);
    while (this.#eatWord("AND")) {
      const right = this.#parseNot(nesting);
      height = Math.max(height, right.height) + 1;
      this.#checkDepth(height + nesting);
      expr = { kind: "and", left: expr, right: right.expr, start: expr.start, end: right.expr.end };
    }
    return { expr, height };
  }

  #parseNot(nesting: number): { expr: Expr; height: number } {
    if (this.#isWord("NOT")) {
      const start = this.#tok().start;
      this.#at++;
      this.#checkDepth(nesting + 1);
      const inner = this.#parseNot(nesting + 1);
      throw unsupported(`Unsupported expression: ${this.#sql.slice(start, inner.expr.end)}`);
    }
    return this.#parseComparison(nesting);
  }

  #parseComparison(nesting: number): { expr: Expr; height: number } {
    const left = this.#parsePrimary(nesting);
    this.#rejectPostfix(left.expr);
    const token = this.#tok();
    if (token.kind === "symbol" && CMP_OPS.has(token.text)) {
      this.#at++;
      const right = this.#parsePrimary(nesting);
      this.#rejectPostfix(right.expr);
      if (left.expr.kind !== "field" && left.expr.kind !== "lit" && left.expr.kind !== "param") {
        throw unsupported(
          `Unsupported expression: ${this.#sql.slice(left.expr.start, right.expr.end)}`,
        );
      }
      if (right.expr.kind !== "field" && right.expr.kind !== "lit" && right.expr.kind !== "param") {
        throw unsupported(
          `Unsupported expression: ${this.#sql.slice(left.expr.start, right.expr.end)}`,
        );
      }
      const op = (token.text === "!=" ? "<>" : token.text) as CmpOp;
      const expr: CmpExpr = {
        kind: "cmp",
        op,
        left: left.expr,
        right: right.expr,
        start: left.expr.start,
        end: right.expr.end,
      };
      const next = this.#tok();
      if (next.kind === "symbol" && CMP_OPS.has(next.text)) {
        const end = this.#skipExpression();
        throw unsupported(`Unsupported expression: ${this.#sql.slice(expr.start, end)}`);
      }
      return { expr, height: 1 };
    }
    return left;
  }

  /** IS, IN, BETWEEN, LIKE, casts and arithmetic after an operand are refused. */
  #rejectPostfix(operand: Expr): void {
    const token = this.#tok();
    if (token.kind === "symbol" && BINARY_OPS.has(token.text)) {
      throw unsupported(`Unsupported binary operator: ${token.text}`);
    }
    if (
      this.#isSymbol("::") || this.#isSymbol("[") || this.#isWord("IS") || this.#isWord("IN") ||
      this.#isWord("BETWEEN") || this.#isWord("LIKE") || this.#isWord("ILIKE") ||
      this.#isWord("SIMILAR") || this.#isWord("COLLATE") ||
      (this.#isWord("NOT") &&
        ["IN", "LIKE", "ILIKE", "BETWEEN", "SIMILAR"].some((w) => this.#isWord(w, this.#peek())))
    ) {
      const end = this.#skipExpression();
      throw unsupported(`Unsupported expression: ${this.#sql.slice(operand.start, end)}`);
    }
  }

  #parsePrimary(nesting: number): { expr: Expr; height: number } {
    const token = this.#tok();
    switch (token.kind) {
      case "symbol": {
        if (token.text === "(") {
          this.#at++;
          if (this.#isWord("SELECT")) {
            const end = this.#skipExpression();
            throw unsupported(`Unsupported expression: (${this.#sql.slice(token.end, end)}`);
          }
          const inner = this.#parseExpr(nesting + 1);
          this.#expectSymbol(")");
          return inner;
        }
        if ((token.text === "-" || token.text === "+") && this.#peek().kind === "number") {
          const number = this.#peek() as { text: string; end: number };
          this.#at += 2;
          const text = token.text === "-" ? `-${number.text}` : `+${number.text}`;
          return {
            expr: { kind: "lit", lit: "num", text, start: token.start, end: number.end },
            height: 0,
          };
        }
        if (token.text === "-" || token.text === "+" || token.text === "~") {
          this.#at++;
          const inner = this.#parsePrimary(nesting + 1);
          throw unsupported(
            `Unsupported expression: ${this.#sql.slice(token.start, inner.expr.end)}`,
          );
        }
        throw this.#syntax("an expression");
      }
      case "number":
        this.#at++;
        return {
          expr: { kind: "lit", lit: "num", text: token.text, start: token.start, end: token.end },
          height: 0,
        };
      case "hex":
        this.#at++;
        return {
          expr: { kind: "lit", lit: "hex", text: token.digits, start: token.start, end: token.end },
          height: 0,
        };
      case "string":
        this.#at++;
        if (token.prefix !== "") {
          throw unsupported(
            `Unsupported literal expression: ${this.#sql.slice(token.start, token.end)}`,
          );
        }
        return {
          expr: { kind: "lit", lit: "str", text: token.value, start: token.start, end: token.end },
          height: 0,
        };
      case "param":
        this.#at++;
        if (token.text !== ":sender") {
          throw unsupported(`Unsupported literal expression: ${token.text}`);
        }
        return {
          expr: { kind: "param", name: "sender", start: token.start, end: token.end },
          height: 0,
        };
      case "word": {
        if (!token.quoted) {
          const upper = token.text.toUpperCase();
          if (upper === "TRUE" || upper === "FALSE") {
            this.#at++;
            return {
              expr: {
                kind: "lit",
                lit: "bool",
                text: upper.toLowerCase(),
                start: token.start,
                end: token.end,
              },
              height: 0,
            };
          }
          if (upper === "NULL") throw unsupported("Unsupported literal expression: NULL");
          if (upper === "CASE" || upper === "EXISTS" || upper === "CAST" || upper === "INTERVAL") {
            const end = this.#skipExpression();
            throw unsupported(`Unsupported expression: ${this.#sql.slice(token.start, end)}`);
          }
        }
        if (this.#isSymbol("(", this.#peek())) {
          this.#at++;
          const end = this.#skipParenthesised();
          throw unsupported(`Unsupported expression: ${this.#sql.slice(token.start, end)}`);
        }
        return { expr: this.#parseField(), height: 0 };
      }
      case "eof":
        throw this.#syntax("an expression");
    }
  }

  /** At `(`: skips to the matching `)` and returns its end. */
  #skipParenthesised(): number {
    let depth = 0;
    for (;;) {
      const token = this.#tok();
      if (token.kind === "eof") throw this.#syntax(")");
      this.#at++;
      if (token.kind === "symbol" && token.text === "(") depth++;
      if (token.kind === "symbol" && token.text === ")" && --depth === 0) return token.end;
    }
  }
}

function fieldFromParts(parts: string[], start: number, end: number): FieldExpr {
  const column = parts[parts.length - 1];
  const table = parts.length > 1 ? parts.slice(0, -1).join(".") : undefined;
  return { kind: "field", table, column, start, end };
}

function checkLength(sql: string): void {
  const byteLength = new TextEncoder().encode(sql).length;
  if (byteLength > SQL_BYTES_MAX) {
    throw new SqlError(
      `SQL query exceeds maximum allowed length: "${sql.slice(0, 120)}..."`,
      "limit",
    );
  }
}

/** Parses any SELECT (the /sql grammar's SELECT): projections, COUNT, LIMIT and joins included. */
export function parseSelect(sql: string): SelectStatement {
  checkLength(sql);
  return refuseOrderBy(new Parser(sql).parseStatement());
}

/** The /sql grammar refuses ORDER BY with SpacetimeDB's text (only subscriptions have top-N). */
function refuseOrderBy<T extends SqlStatement>(statement: T): T {
  if (statement.kind === "select" && statement.orderBy !== undefined) {
    throw unsupported(`Unsupported: ${statement.text}`);
  }
  return statement;
}

/**
 * Parses one statement of the /sql grammar (§1.4): any SELECT (projections, COUNT, LIMIT,
 * joins; with a join every column must be qualified), INSERT, UPDATE, DELETE, SET, SHOW.
 */
export function parseSqlStatement(sql: string): SqlStatement {
  checkLength(sql);
  const statement = refuseOrderBy(new Parser(sql).parseSqlStatement());
  if (statement.kind === "select" && statement.joins.length > 0) checkQualified(statement);
  return statement;
}

/**
 * What the subscription grammar accepts with ORDER BY, appended to its refusals of ORDER BY,
 * LIMIT and OFFSET (after SpacetimeDB's own `Unsupported: <query>`, which stays the prefix).
 */
export const TOPN_SUPPORTED_TEXT =
  `; subscriptions and one-off queries accept ORDER BY and LIMIT only together, on one table: ` +
  `SELECT * FROM table [WHERE ...] ORDER BY column [ASC|DESC][, column [ASC|DESC] ...] LIMIT n ` +
  `(1 <= n <= ${TOPN_LIMIT_MAX}), without OFFSET`;

/**
 * Parses a subscription or one-off query (§1.3): `SELECT * | t.* | columns FROM t [JOIN ...]
 * [WHERE ...]`, or a top-N query `SELECT * | t.* FROM t [WHERE ...] ORDER BY ... LIMIT n` (our
 * extension, topn.ts). Projections and COUNT are left to the checker, which refuses them with
 * the subscription message; any other use of ORDER BY, LIMIT or OFFSET is refused here with
 * SpacetimeDB's `Unsupported: <query>` followed by what is supported.
 */
export function parseSubscriptionQuery(sql: string): SelectStatement {
  checkLength(sql);
  if (sql.trim() === "") throw new SqlError("Empty string", "syntax");
  const statement = new Parser(sql, TOPN_SUPPORTED_TEXT).parseStatement();
  const ordered = statement.orderBy !== undefined;
  const limited = statement.limit !== undefined;
  if (ordered || limited) {
    if (!ordered || !limited || statement.joins.length > 0) {
      throw unsupported(`Unsupported: ${statement.text}${TOPN_SUPPORTED_TEXT}`);
    }
    const limit = statement.limit!;
    const n = /^[0-9]+$/.test(limit) ? Number(limit) : NaN;
    if (!(n >= 1 && n <= TOPN_LIMIT_MAX)) {
      throw new SqlError(
        `LIMIT must be an integer from 1 to ${TOPN_LIMIT_MAX} in an ORDER BY ... LIMIT ` +
          `subscription, got \`${limit}\``,
        "limit",
      );
    }
  }
  if (statement.joins.length > 0) {
    checkQualified(statement);
  }
  return statement;
}

/** With a join, every column must be qualified (checked before name lookup, as SpacetimeDB does). */
export function checkQualified(statement: SelectStatement): void {
  const unqualified = (field: FieldExpr) => {
    if (field.table === undefined) throw unsupported("Names must be qualified when using joins");
  };
  const visit = (expr: Expr | undefined): void => {
    if (expr === undefined) return;
    if (expr.kind === "field") unqualified(expr);
    else if (expr.kind === "cmp") {
      visit(expr.left);
      visit(expr.right);
    } else if (expr.kind === "and" || expr.kind === "or") {
      visit(expr.left);
      visit(expr.right);
    }
  };
  if (statement.projection.kind === "columns") {
    for (const item of statement.projection.items) unqualified(item.field);
  }
  for (const join of statement.joins) {
    if (join.on) {
      unqualified(join.on.left);
      unqualified(join.on.right);
    }
  }
  visit(statement.where);
}

/** `SELECT * FROM *` (case-insensitive, any whitespace): subscribe to every readable table. */
export function isSelectStarFromStar(sql: string): boolean {
  return /^\s*SELECT\s+\*\s+FROM\s+\*\s*$/i.test(sql.trim());
}
