/**
 * The one place that turns typed errors into HTTP responses. Internal errors are
 * logged with their stack and answered with a generic text: nothing leaks.
 */
import type { Context } from "hono";
import { AuthError } from "../auth/mod.ts";
import {
  BadRequestError,
  LimitExceededError,
  NotFoundError,
  OverloadedError,
  PermissionError,
  QuotaExceededError,
  RequestTimeoutError,
} from "../lib/errors.ts";
import { redactHostPaths } from "../lib/host_paths.ts";
import { log } from "../lib/log.ts";
import { DatabaseUnavailableError } from "../worker/mod.ts";

export function statusOf(error: unknown): number {
  if (error instanceof AuthError) return error.status;
  if (error instanceof PermissionError) return error.status;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof LimitExceededError) return 413;
  if (error instanceof BadRequestError) return 400;
  if (error instanceof DatabaseUnavailableError) return 503;
  if (error instanceof RequestTimeoutError) return 408;
  if (error instanceof OverloadedError) return 503;
  if (error instanceof QuotaExceededError) return 403;
  return 500;
}

export function errorResponse(error: unknown, c: Context): Response {
  const status = statusOf(error);
  if (status === 500) {
    log.error("request failed", {
      method: c.req.method,
      path: c.req.path,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    return c.text("Internal server error", 500);
  }
  const message = redactHostPaths(error instanceof Error ? error.message : String(error));
  // deno-lint-ignore no-explicit-any
  return c.text(message, status as any);
}
