// The keynote-2 transfer workload as a SpacetimeDB TypeScript module (official `spacetimedb/server`
// library), published to Lightcone by bench/keynote/lightcone_side.ts.
import { schema, SenderError, t, table } from "spacetimedb/server";

const accountRow = t.row("Account", { id: t.u32().primaryKey(), balance: t.i64() });
const accounts = table({ name: "accounts", public: true }, accountRow);

/** The append-heavy variant's ledger: one row per transfer, ids from an auto-increment sequence. */
const ledger = table(
  { name: "ledger" },
  { id: t.u64().primaryKey().autoInc(), from: t.u32(), to: t.u32(), amount: t.i64() },
);

/**
 * Who holds each account (bench/subscription_scale.ts, issue #11 "Measure"): `ident` for the
 * 2-table join subscriptions (`holder JOIN accounts ... WHERE holder.ident = k`), `owner` for the
 * per-sender view `my_accounts`. Empty in the plain keynote run.
 */
const holder = table({ name: "holder", public: true }, {
  account: t.u32().primaryKey(),
  ident: t.u32().index("btree"),
  owner: t.identity().index("btree"),
});

const spacetimedb = schema({ accounts, ledger, holder });
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

/** Holder rows for accounts first .. first+count-1: ident = account id, owner = the caller. */
export const seed_holders = spacetimedb.reducer(
  { first: t.u32(), count: t.u32() },
  (ctx, { first, count }) => {
    for (let account = first; account < first + count; account++) {
      ctx.db.holder.insert({ account, ident: account, owner: ctx.sender });
    }
  },
);

/** The caller becomes the owner of accounts first .. first+count-1 (their holder rows). */
export const claim = spacetimedb.reducer(
  { first: t.u32(), count: t.u32() },
  (ctx, { first, count }) => {
    for (let account = first; account < first + count; account++) {
      const row = ctx.db.holder.account.find(account);
      if (!row) throw new SenderError(`No holder row for account ${account}`);
      ctx.db.holder.account.update({ ...row, owner: ctx.sender });
    }
  },
);

/**
 * The caller's accounts (a per-sender view): one index point read of `holder.owner` and one of
 * `accounts.id` per account held, so a transfer re-runs only the instances of the accounts'
 * owners.
 */
export const my_accounts = spacetimedb.view(
  { name: "my_accounts", public: true },
  t.array(accountRow),
  (ctx) => {
    const out = [];
    for (const held of ctx.db.holder.owner.filter(ctx.sender)) {
      const account = ctx.db.accounts.id.find(held.account);
      if (account) out.push(account);
    }
    return out;
  },
);
