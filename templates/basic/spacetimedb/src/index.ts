// The module: what runs inside the database. `lightcone publish` builds this file (and what it
// imports) into dist/bundle.js and uploads it; `lightcone dev` does that on every save.
import { schema, t, table } from "spacetimedb/server";

// A public table: every client may subscribe to it.
const person = table({ name: "person", public: true }, {
  name: t.string(),
});

const spacetimedb = schema({ person });
export default spacetimedb;

// Runs once, when the database is created.
export const init = spacetimedb.init((_ctx) => {
  console.info("database created");
});

export const onConnect = spacetimedb.clientConnected((ctx) => {
  console.info(`client connected: ${ctx.sender.toHexString().slice(0, 12)}`);
});

export const onDisconnect = spacetimedb.clientDisconnected((ctx) => {
  console.info(`client disconnected: ${ctx.sender.toHexString().slice(0, 12)}`);
});

// Reducers change the database in a transaction. Called as `add` over the wire
// (`lightcone call <db> add Alice`) and as `conn.reducers.add({ name })` from a client.
export const add = spacetimedb.reducer({ name: t.string() }, (ctx, { name }) => {
  if (name.trim() === "") throw new Error("a person needs a name");
  ctx.db.person.insert({ name });
});

// Exported as sayHello, called as say_hello: wire names are snake_case.
export const sayHello = spacetimedb.reducer((ctx) => {
  for (const person of ctx.db.person.iter()) console.info(`Hello, ${person.name}!`);
  console.info("Hello, World!");
});
