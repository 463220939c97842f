// The small chat module of bench/density_bench.ts: the chat fixture's tables plus a `seed`
// reducer that writes a few hundred messages in one call (one HTTP request per database).
import { schema, SenderError, t, table } from "spacetimedb/server";

const user = table({ name: "user", public: true }, {
  identity: t.identity().primaryKey(),
  name: t.option(t.string()),
  online: t.bool(),
});

const message = table({ name: "message", public: true }, {
  id: t.u64().primaryKey().autoInc(),
  sender: t.identity(),
  sent: t.timestamp(),
  text: t.string(),
});

const spacetimedb = schema({ user, message });
export default spacetimedb;

export const sendMessage = spacetimedb.reducer({ text: t.string() }, (ctx, { text }) => {
  if (text.length === 0) throw new SenderError("Messages must not be empty");
  ctx.db.message.insert({ id: 0n, sender: ctx.sender, sent: ctx.timestamp, text });
});

/** Writes `count` messages "<prefix> <i>" in one transaction. */
export const seed = spacetimedb.reducer({ count: t.u32(), prefix: t.string() }, (ctx, args) => {
  for (let i = 0; i < args.count; i++) {
    ctx.db.message.insert({
      id: 0n,
      sender: ctx.sender,
      sent: ctx.timestamp,
      text: `${args.prefix} ${i}: a chat message of typical length`,
    });
  }
});

export const onConnect = spacetimedb.clientConnected((ctx) => {
  const me = ctx.db.user.identity.find(ctx.sender);
  if (me) ctx.db.user.identity.update({ ...me, online: true });
  else ctx.db.user.insert({ identity: ctx.sender, name: undefined, online: true });
});

export const onDisconnect = spacetimedb.clientDisconnected((ctx) => {
  const me = ctx.db.user.identity.find(ctx.sender);
  if (me) ctx.db.user.identity.update({ ...me, online: false });
});
