import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { ApiError } from "./api_client.ts";
import { authHints, type Connection } from "./context.ts";

const connection = {
  serverUrl: "http://127.0.0.1:3000",
  identity: "c200" + "a".repeat(60),
} as Connection;

Deno.test("authHints() explains a 403 as ownership, but not a 403 for the database quota", () => {
  const denied = new ApiError(403, "not authorized to view module logs", "http://x/v1", "GET");
  assertEquals(authHints(denied, connection), [
    `You are identity ${connection.identity}; only the database's owner may do this.`,
  ]);
  const quota = new ApiError(
    403,
    "Database quota reached: identity c200… owns 10 databases, the limit set by --max-databases-per-identity is 10; delete one of them or ask the operator to raise it",
    "http://x/v1/database/db",
    "POST",
  );
  assertEquals(authHints(quota, connection), []);
});
