// A terminal client: connects with the generated bindings (src/module_bindings, written by
// `lightcone generate` or `lightcone dev`), subscribes to `person`, optionally adds one, and
// prints everyone. Run: deno task client [NAME]
import { DbConnection, tables } from "./module_bindings/index.ts";

const host = Deno.env.get("SPACETIMEDB_HOST") ?? "http://127.0.0.1:3000";
const database = Deno.env.get("SPACETIMEDB_DB_NAME");
if (!database) {
  console.error("Set SPACETIMEDB_DB_NAME (lightcone init writes it to .env.local).");
  Deno.exit(1);
}
const newName = Deno.args[0];
const TOKEN_FILE = ".spacetimedb-token";

function savedToken(): string | undefined {
  try {
    return Deno.readTextFileSync(TOKEN_FILE).trim() || undefined;
  } catch {
    return undefined;
  }
}

function finish(conn: DbConnection): void {
  const names = [...conn.db.person.iter()].map((p) => p.name).sort();
  console.log(`People (${names.length}): ${names.join(", ")}`);
  conn.disconnect();
  Deno.exit(0);
}

DbConnection.builder()
  .withUri(host.replace(/^http/, "ws"))
  .withDatabaseName(database)
  .withToken(savedToken())
  .onConnect((conn, identity, token) => {
    Deno.writeTextFileSync(TOKEN_FILE, token);
    console.log(`Connected to ${database} as ${identity.toHexString().slice(0, 16)}…`);
    conn.db.person.onInsert((_ctx, person) => {
      console.log(`Inserted: ${person.name}`);
      if (person.name === newName) finish(conn);
    });
    conn.subscriptionBuilder()
      .onApplied(() => {
        if (newName === undefined) finish(conn);
        else conn.reducers.add({ name: newName });
      })
      .onError((ctx) => {
        console.error(`Subscription failed: ${ctx.event?.message ?? "unknown error"}`);
        Deno.exit(1);
      })
      .subscribe(tables.person);
  })
  .onConnectError((_ctx, error) => {
    console.error(`Could not connect to ${host}: ${error}`);
    Deno.exit(1);
  })
  .build();
