import { BadRequestError } from "../lib/errors.ts";

/**
 * Which stage refused the query: the lexer/parser (`syntax`, `unsupported`), name resolution
 * (`name`), the type checker (`type`), the planner (`plan`) or a size bound (`limit`).
 */
export type SqlErrorCode = "syntax" | "unsupported" | "name" | "type" | "plan" | "limit";

/** A SQL text was refused. `message` is SpacetimeDB's text where one exists (query-subscriptions.md §1.10). */
export class SqlError extends BadRequestError {
  override name = "SqlError";
  constructor(message: string, readonly code: SqlErrorCode) {
    super(message);
  }
}

/** The text a subscription error carries: the message, then the SQL in backticks. */
export function subscriptionErrorText(error: Error, sql: string): string {
  return `${error.message}, executing: \`${sql}\``;
}
