// A small SpacetimeDB module used by worker/instrument_test.ts: bundled with the real library,
// instrumented, and run to compare describe bytes and reducer behaviour with the original.
import { schema, t, table } from "spacetimedb/server";

const person = table({ public: true }, {
  id: t.u64().primaryKey().autoInc(),
  name: t.string(),
  age: t.u32(),
  tags: t.array(t.string()),
});

const spacetimedb = schema({ person });
export default spacetimedb;

export const add = spacetimedb.reducer({ name: t.string(), age: t.u32() }, (ctx, { name, age }) => {
  ctx.db.person.insert({ id: 0n, name, age, tags: [] });
});

export const spin = spacetimedb.reducer({}, (_ctx) => {
  let n = 0;
  for (;;) {
    n++;
  }
});

export const sumTo = spacetimedb.reducer({ n: t.u32() }, (_ctx, { n }) => {
  let total = 0;
  for (let i = 0; i < n; i++) total += i;
  if (total < 0) throw new Error("unreachable");
});
