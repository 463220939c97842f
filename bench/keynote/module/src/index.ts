// The keynote-2 transfer workload as a SpacetimeDB TypeScript module (official `spacetimedb/server`
// library), published to Lightcone by bench/keynote/lightcone_side.ts.
import { schema, SenderError, t, table } from "spacetimedb/server";

const accounts = table(
  { name: "accounts", public: true },
  { id: t.u32().primaryKey(), balance: t.i64() },
);

/** The append-heavy variant's ledger: one row per transfer, ids from an auto-increment sequence. */
const ledger = table(
  { name: "ledger" },
  { id: t.u64().primaryKey().autoInc(), from: t.u32(), to: t.u32(), amount: t.i64() },
);

const spacetimedb = schema({ accounts, ledger });
export default spacetimedb;

/** Inserts accounts first .. first+count-1 with `balance` each (called in chunks before a run). */
export const seed = spacetimedb.reducer(
  { first: t.u32(), count: t.u32(), balance: t.i64() },
  (ctx, { first, count, balance }) => {
    for (let id = first; id < first + count; id++) ctx.db.accounts.insert({ id, balance });
  },
);

/** Appends `count` ledger rows (the append-heavy variant starts from a large table). */
export const seed_ledger = spacetimedb.reducer({ count: t.u32() }, (ctx, { count }) => {
  for (let i = 0; i < count; i++) ctx.db.ledger.insert({ id: 0n, from: 0, to: 1, amount: 0n });
});

/** Moves `amount` from one account to another; refuses self-transfers, unknown ids, overdrafts. */
export const transfer = spacetimedb.reducer(
  { from: t.u32(), to: t.u32(), amount: t.i64() },
  (ctx, { from, to, amount }) => {
    if (from === to) throw new SenderError("Cannot transfer to the same account");
    if (amount <= 0n) throw new SenderError("Amount must be positive");
    const source = ctx.db.accounts.id.find(from);
    const target = ctx.db.accounts.id.find(to);
    if (!source || !target) throw new SenderError("Account not found");
    if (source.balance < amount) throw new SenderError("Insufficient funds");
    ctx.db.accounts.id.update({ id: from, balance: source.balance - amount });
    ctx.db.accounts.id.update({ id: to, balance: target.balance + amount });
  },
);

/** `transfer`, and one new `ledger` row per call (the append-heavy variant: the table grows). */
export const transfer_logged = spacetimedb.reducer(
  { from: t.u32(), to: t.u32(), amount: t.i64() },
  (ctx, { from, to, amount }) => {
    if (from === to) throw new SenderError("Cannot transfer to the same account");
    if (amount <= 0n) throw new SenderError("Amount must be positive");
    const source = ctx.db.accounts.id.find(from);
    const target = ctx.db.accounts.id.find(to);
    if (!source || !target) throw new SenderError("Account not found");
    if (source.balance < amount) throw new SenderError("Insufficient funds");
    ctx.db.accounts.id.update({ id: from, balance: source.balance - amount });
    ctx.db.accounts.id.update({ id: to, balance: target.balance + amount });
    ctx.db.ledger.insert({ id: 0n, from, to, amount });
  },
);
