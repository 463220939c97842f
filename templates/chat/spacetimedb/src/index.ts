// A chat room: who is online, what they are called, what they said.
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

const MAX_NAME = 32;
const MAX_TEXT = 1000;

export const setName = spacetimedb.reducer({ name: t.string() }, (ctx, { name }) => {
  const clean = name.trim();
  if (clean === "" || clean.length > MAX_NAME) {
    throw new SenderError(`A name has 1 to ${MAX_NAME} characters`);
  }
  const me = ctx.db.user.identity.find(ctx.sender);
  if (!me) throw new SenderError("Connect before choosing a name");
  ctx.db.user.identity.update({ ...me, name: clean });
});

export const sendMessage = spacetimedb.reducer({ text: t.string() }, (ctx, { text }) => {
  if (text.trim() === "" || text.length > MAX_TEXT) {
    throw new SenderError(`A message has 1 to ${MAX_TEXT} characters`);
  }
  ctx.db.message.insert({ id: 0n, sender: ctx.sender, sent: ctx.timestamp, text });
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
