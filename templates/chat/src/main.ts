// A terminal chat client. Every line you type is a message; `/name NAME` sets your name;
// end of input (Ctrl-D) leaves once your messages have arrived. Run: deno task client
import type { Identity } from "spacetimedb";
import { DbConnection, type ErrorContext, tables } from "./module_bindings/index.ts";

const host = Deno.env.get("SPACETIMEDB_HOST") ?? "http://127.0.0.1:3000";
const database = Deno.env.get("SPACETIMEDB_DB_NAME");
if (!database) {
  console.error(
    "Set SPACETIMEDB_DB_NAME (lightcone init writes it to .env.local).",
  );
  Deno.exit(1);
}
const TOKEN_FILE = ".spacetimedb-token";

function savedToken(): string | undefined {
  try {
    return Deno.readTextFileSync(TOKEN_FILE).trim() || undefined;
  } catch {
    return undefined;
  }
}

function nameOf(conn: DbConnection, identity: Identity): string {
  const user = conn.db.user.identity.find(identity);
  return user?.name ?? identity.toHexString().slice(0, 8);
}

async function chat(conn: DbConnection): Promise<void> {
  const shown = new Set<bigint>();
  conn.db.message.onInsert((_ctx, message) => {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    console.log(`${nameOf(conn, message.sender)}: ${message.text}`);
  });
  conn.db.user.onUpdate((_ctx, before, after) => {
    if (before.name !== after.name) {
      console.log(`* ${before.name ?? "someone"} is now called ${after.name}`);
    }
    if (before.online !== after.online) {
      console.log(
        `* ${nameOf(conn, after.identity)} ${after.online ? "joined" : "left"}`,
      );
    }
  });
  // A reducer call resolves once its transaction committed (its rows have arrived by then)
  // and rejects with the reducer's error.
  for (const message of conn.db.message.iter()) shown.add(message.id);
  const pending: Promise<void>[] = [];
  const send = (call: Promise<void>) =>
    pending.push(
      call.catch((error) => console.error(`! ${error?.message ?? error}`)),
    );

  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffered = "";
  for await (const chunk of lines) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line === "/name" || line.startsWith("/name ")) {
        send(conn.reducers.setName({ name: line.slice(5).trim() }));
      } else if (line !== "") send(conn.reducers.sendMessage({ text: line }));
    }
  }
  await Promise.all(pending);
  conn.disconnect();
  Deno.exit(0);
}

DbConnection.builder()
  .withUri(host.replace(/^http/, "ws"))
  .withDatabaseName(database)
  .withToken(savedToken())
  .onConnect((conn, identity, token) => {
    Deno.writeTextFileSync(TOKEN_FILE, token);
    conn.subscriptionBuilder()
      .onApplied(() => {
        const recent = [...conn.db.message.iter()]
          .sort((
            a,
            b,
          ) => (a.sent.microsSinceUnixEpoch < b.sent.microsSinceUnixEpoch ? -1 : 1))
          .slice(-10);
        console.log(`Connected to ${database} as ${nameOf(conn, identity)}`);
        for (const m of recent) {
          console.log(`${nameOf(conn, m.sender)}: ${m.text}`);
        }
        void chat(conn);
      })
      .onError((ctx) => {
        console.error(
          `Subscription failed: ${ctx.event?.message ?? "unknown error"}`,
        );
        Deno.exit(1);
      })
      .subscribe([tables.user, tables.message]);
  })
  .onConnectError((_ctx: ErrorContext, error: Error) => {
    console.error(`Could not connect to ${host}: ${error}`);
    Deno.exit(1);
  })
  .build();
