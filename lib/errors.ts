/** Typed operating errors. server/error_response.ts turns them into HTTP statuses. */

export class LimitExceededError extends RangeError {
  override name = "LimitExceededError";
  constructor(readonly limit: string, readonly value: number, readonly max: number) {
    super(`${limit} is ${value}, over the limit of ${max}`);
  }
}

/** Something named by the caller does not exist (database, reducer, table...). */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** The caller is not allowed to do this (not the owner, bad token...). */
export class PermissionError extends Error {
  override name = "PermissionError";
  constructor(message: string, readonly status: 401 | 403 = 403) {
    super(message);
  }
}

/** The request is malformed: bad arguments, bad module, bad SQL. */
export class BadRequestError extends Error {
  override name = "BadRequestError";
}

/** The client did not send its request (body) in time. */
export class RequestTimeoutError extends Error {
  override name = "RequestTimeoutError";
}

/** The server is at a global bound that frees up by itself: retry later (503). */
export class OverloadedError extends Error {
  override name = "OverloadedError";
}

/** How every QuotaExceededError's text starts (the CLI tells it from a 403 about ownership). */
export const QUOTA_REACHED_PREFIX = "Database quota reached: ";

/** Creating this would go over an operator quota (403); names the limit and its flag. */
export class QuotaExceededError extends Error {
  override name = "QuotaExceededError";
  /** `detail`: what is at its limit, the flag that sets it, what to do. */
  constructor(detail: string) {
    super(QUOTA_REACHED_PREFIX + detail);
  }
}
