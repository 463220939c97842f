/**
 * `GET /dashboard/api/replication`: this server's replication role and, per database, how far
 * replication has come, as JSON for the dashboard page (the same numbers /v1/metrics exposes
 * as gauges, server/server.ts). Served to whoever may read /v1/metrics (loopback clients, or
 * everyone with `--metrics-public`): database names and their load are not for everyone.
 *
 * - `none`: neither `--replicate` nor `--follow`.
 * - `primary` (`--replicate`): per database the transactions durable here (`durableTx`), those
 *   JetStream acknowledged (`replicatedTx`), the lag between them in transactions and bytes, and
 *   why replication stopped, if it did.
 * - `replica` (`--follow`): the stream messages not applied yet (`pendingMessages`, the
 *   replica's lag: it does not know the primary's log end per database), and per database the
 *   transactions applied here and why following stopped, if it did.
 */

import type { FollowerMetrics, ReplicationMetrics } from "../../replication/mod.ts";

export type ReplicationStatus =
  | { role: "none" }
  | {
    role: "primary";
    /** The NATS server it publishes to (nats://host:port or tls://host:port, no credentials). */
    nats: string;
    databases: {
      database: string;
      identity: string;
      durableTx: number;
      replicatedTx: number;
      lagTx: number;
      lagBytes: number;
      stopped: string | null;
    }[];
  }
  | {
    role: "replica";
    /** The NATS server it follows (nats://host:port or tls://host:port, no credentials). */
    nats: string;
    pendingMessages: number;
    databases: { database: string; identity: string; appliedTx: number; stopped: string | null }[];
  };

/** The name a database is shown by (its first name, else its identity). */
export type DatabaseLabel = (dbKey: string) => string;

export function primaryStatus(
  nats: string,
  rows: readonly ReplicationMetrics[],
  labelOf: DatabaseLabel,
): ReplicationStatus {
  return {
    role: "primary",
    nats,
    databases: rows.map((row) => ({
      database: labelOf(row.dbKey),
      identity: row.dbKey,
      durableTx: row.durableTx,
      replicatedTx: row.replicatedTx,
      lagTx: Math.max(0, row.durableTx - row.replicatedTx),
      lagBytes: row.lagBytes,
      stopped: row.stopped ?? null,
    })).sort(byDatabase),
  };
}

export function replicaStatus(
  nats: string,
  metrics: { pendingMessages: number; databases: readonly FollowerMetrics[] },
  labelOf: DatabaseLabel,
): ReplicationStatus {
  return {
    role: "replica",
    nats,
    pendingMessages: metrics.pendingMessages,
    databases: metrics.databases.map((row) => ({
      database: labelOf(row.dbKey),
      identity: row.dbKey,
      appliedTx: row.appliedTx,
      stopped: row.stopped ?? null,
    })).sort(byDatabase),
  };
}

function byDatabase(a: { database: string }, b: { database: string }): number {
  return a.database < b.database ? -1 : a.database > b.database ? 1 : 0;
}
