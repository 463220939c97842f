/**
 * Baseline: Node.js HTTP server + PostgreSQL through `pg`, SERIALIZABLE isolation, a pool of 64.
 *
 *   node server_pg.mjs --pg-port 25432 [--pg-host 127.0.0.1] [--port 0] [--pool 64]
 *                      [--accounts 100000] [--balance 1000000000] [--retry backoff|immediate]
 *
 * A transfer is BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT both rows ... ORDER BY id FOR UPDATE;
 * two UPDATEs; COMMIT (five round trips, the shape of keynote-2's own PostgreSQL server). It is
 * retried on serialization failure (40001) and deadlock (40P01):
 *   backoff   (default) up to 10 attempts, full-jitter backoff from 5 ms doubling, capped at 200 ms
 *             (keynote-2's policy, the stronger baseline under contention);
 *   immediate up to 6 attempts, no wait.
 * The pool connection is released between attempts. Gives up with 500 after the last attempt.
 * The table is re-created and seeded at start-up.
 */
import pg from "pg";
import { parseFlags, serve } from "./http_front.mjs";

const flags = parseFlags(process.argv.slice(2));
const accountCount = Number(flags.accounts ?? 100_000);
const initialBalance = Number(flags.balance ?? 1_000_000_000);
const retry = flags.retry ?? "backoff";
if (retry !== "backoff" && retry !== "immediate") throw new Error(`Unknown --retry '${retry}'`);
const attemptsMax = retry === "backoff" ? 10 : 6;
const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 200;
const RETRYABLE = new Set(["40001", "40P01"]);

// bigint columns come back as strings by default; balances stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (text) => Number(text));

const pool = new pg.Pool({
  host: flags["pg-host"] ?? "127.0.0.1",
  port: Number(flags["pg-port"] ?? 25432),
  user: flags["pg-user"] ?? "postgres",
  database: flags["pg-database"] ?? "postgres",
  max: Number(flags.pool ?? 64),
  idleTimeoutMillis: 0,
});

await pool.query("DROP TABLE IF EXISTS accounts");
await pool.query("CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL)");
await pool.query(
  "INSERT INTO accounts (id, balance) SELECT g, $1 FROM generate_series(0, $2 - 1) AS g",
  [initialBalance, accountCount],
);
await pool.query("VACUUM ANALYZE accounts");

const LOCK_BOTH = {
  name: "lock_both",
  text: "SELECT id, balance FROM accounts WHERE id = ANY($1::integer[]) ORDER BY id FOR UPDATE",
};
const ADD_BALANCE = {
  name: "add_balance",
  text: "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
};

let retries = 0;
let gaveUp = 0;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One attempt on one pooled connection. */
async function attempt(from, to, amount) {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
    const { rows } = await client.query({ ...LOCK_BOTH, values: [[from, to]] });
    const fromRow = rows.find((row) => row.id === from);
    if (rows.length !== 2 || !fromRow || fromRow.balance < amount) {
      await client.query("ROLLBACK");
      return "refused";
    }
    await client.query({ ...ADD_BALANCE, values: [-amount, from] });
    await client.query({ ...ADD_BALANCE, values: [amount, to] });
    await client.query("COMMIT");
    return "ok";
  } catch (error) {
    try {
      await client.query("ROLLBACK");
    } catch {
      broken = true;
    }
    throw error;
  } finally {
    client.release(broken);
  }
}

async function transfer(from, to, amount) {
  if (from === to || amount <= 0) return "refused";
  for (let attemptIndex = 1;; attemptIndex++) {
    try {
      return await attempt(from, to, amount);
    } catch (error) {
      if (!RETRYABLE.has(error?.code) || attemptIndex >= attemptsMax) {
        if (RETRYABLE.has(error?.code)) gaveUp++;
        throw error;
      }
      retries++;
      if (retry === "backoff") {
        const capMs = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attemptIndex - 1));
        await sleep(Math.random() * capMs);
      }
    }
  }
}

async function setting(name) {
  const { rows } = await pool.query("SELECT current_setting($1) AS value", [name]);
  return rows[0].value;
}

const settingNames = [
  "server_version",
  "default_transaction_isolation",
  "fsync",
  "synchronous_commit",
  "wal_sync_method",
  "shared_buffers",
  "max_connections",
];
const settings = {};
for (const name of settingNames) settings[name] = await setting(name);

const pgVersion = (await import("pg/package.json", { with: { type: "json" } })).default.version;
serve({
  port: Number(flags.port ?? 0),
  transfer,
  async balances() {
    const { rows } = await pool.query({
      text: "SELECT id, balance FROM accounts ORDER BY id",
      rowMode: "array",
    });
    return { ids: rows.map((row) => row[0]), balances: rows.map((row) => row[1]) };
  },
  info: {
    system: "node-postgres",
    retry,
    attemptsMax,
    poolSize: pool.options.max,
    node: process.version,
    pg: pgVersion,
    postgres: settings,
  },
  stats: () => ({ retries, gaveUp }),
  close: () => pool.end(),
});
