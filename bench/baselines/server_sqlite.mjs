/**
 * Baseline: Node.js HTTP server + better-sqlite3 (version 12).
 *
 *   node server_sqlite.mjs --db /tmp/x/bench.sqlite [--port 0] [--accounts 100000]
 *                          [--balance 1000000000] [--mode default|wal|wal-full]
 *
 * `default` keeps the library's durable defaults (on better-sqlite3 12 / SQLite 3.53: DELETE
 * journal, synchronous=FULL), so every commit is on disk before the 200 goes out: the same promise
 * as confirmed reads. `wal-full` (WAL + synchronous=FULL) is durable too and SQLite's fastest
 * durable mode: each commit appends its pages to the WAL and syncs the WAL once (no journal file
 * created, synced and unlinked per commit). `wal` (WAL + synchronous=NORMAL) syncs only at
 * checkpoints, so a power loss can drop acknowledged commits: a non-durable-per-commit reference.
 * One connection, prepared statements, one `db.transaction` per transfer. The table is re-created
 * and seeded at start-up.
 */
import Database from "better-sqlite3";
import { parseFlags, serve } from "./http_front.mjs";

const flags = parseFlags(process.argv.slice(2));
const dbPath = flags.db;
if (!dbPath) throw new Error("Missing --db path");
const accountCount = Number(flags.accounts ?? 100_000);
const initialBalance = Number(flags.balance ?? 1_000_000_000);
const mode = flags.mode ?? "default";
if (mode !== "default" && mode !== "wal" && mode !== "wal-full") {
  throw new Error(`Unknown --mode '${mode}'`);
}

const db = new Database(dbPath);
if (mode === "wal" || mode === "wal-full") {
  db.pragma("journal_mode = WAL");
  db.pragma(mode === "wal" ? "synchronous = NORMAL" : "synchronous = FULL");
}

db.exec("DROP TABLE IF EXISTS accounts");
db.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
const insert = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, ?)");
db.transaction(() => {
  for (let id = 0; id < accountCount; id++) insert.run(id, initialBalance);
})();

const selectBalance = db.prepare("SELECT balance FROM accounts WHERE id = ?").pluck();
const addBalance = db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
const transferTx = db.transaction((from, to, amount) => {
  if (from === to || amount <= 0) return "refused";
  const fromBalance = selectBalance.get(from);
  const toBalance = selectBalance.get(to);
  if (fromBalance === undefined || toBalance === undefined) return "refused";
  if (fromBalance < amount) return "refused";
  addBalance.run(-amount, from);
  addBalance.run(amount, to);
  return "ok";
});

const allRows = db.prepare("SELECT id, balance FROM accounts ORDER BY id").raw();

serve({
  port: Number(flags.port ?? 0),
  transfer: (from, to, amount) => transferTx(from, to, amount),
  balances() {
    const ids = [];
    const balances = [];
    for (const [id, balance] of allRows.iterate()) {
      ids.push(id);
      balances.push(balance);
    }
    return { ids, balances };
  },
  info: {
    system: "node-sqlite",
    mode,
    node: process.version,
    betterSqlite3: (await import("better-sqlite3/package.json", { with: { type: "json" } }))
      .default.version,
    sqlite: db.prepare("SELECT sqlite_version()").pluck().get(),
    journalMode: db.pragma("journal_mode", { simple: true }),
    synchronous: db.pragma("synchronous", { simple: true }),
    cacheSize: db.pragma("cache_size", { simple: true }),
  },
  close: () => db.close(),
});
