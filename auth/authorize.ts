/**
 * Who may do what to a database (standalone rules): anyone may create one and becomes its
 * owner; only the owner may change, delete, reset, rename, lock it or read its logs; SQL and
 * subscriptions run with an owner flag that decides private-table access and DML.
 */
import { PermissionError } from "../lib/errors.ts";
import type { Identity } from "./identity.ts";

/** Owner-only actions, worded as SpacetimeDB words them in its 403 message. */
export type OwnerAction =
  | "update database"
  | "reset database"
  | "delete database"
  | "rename database"
  | "view module logs"
  | "lock database"
  | "unlock database"
  | "run DML"
  | "take a snapshot"
  | "view the outbound HTTP allow-list";

export interface OwnerCheck {
  caller: Identity;
  owner: Identity;
  /** The database identity, as shown in the message. */
  database: Identity;
  action: OwnerAction;
}

/**
 * Throws PermissionError(403) "<caller> is not authorized to perform action on database <db>:
 * <action>" unless the caller owns the database.
 */
export function requireOwner(check: OwnerCheck): void {
  if (check.caller.equals(check.owner)) return;
  throw new PermissionError(
    `${check.caller.toHex()} is not authorized to perform action on database ${check.database.toHex()}: ${check.action}`,
    403,
  );
}

/** What SQL and subscriptions need to know about the caller. */
export interface SqlAuthContext {
  caller: Identity;
  owner: Identity;
  /** Owners read private tables and may run DML; others read public tables through RLS. */
  isOwner: boolean;
}

export function sqlAuthContext(caller: Identity, owner: Identity): SqlAuthContext {
  return { caller, owner, isOwner: caller.equals(owner) };
}
