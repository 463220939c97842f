/**
 * The official `spacetimedb` client SDK (2.8.3) fires row callbacks exactly once per changed row:
 * a client that already holds N rows and then sees one row inserted, updated or deleted by another
 * client gets exactly one `onInsert`/`onUpdate`/`onDelete` for that row, never one per cached row.
 * Checked for a table with a primary key and one without, over both v3 and v2 WebSocket protocols.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/feed/index.ts";
import { decodeServerFrame, EncodedRowList, type RowList } from "../../protocol/ws_v2.ts";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

const V3 = "v3.bsatn.spacetimedb";

/**
 * A WebSocket for the SDK that offers only `only`'s protocol (the SDK offers v3 then v2) and keeps
 * every binary frame the server sends into `frames`, to decode beside what the SDK makes of it.
 */
function recordingWebSocket(only: "v2" | "v3", frames: Uint8Array[]): typeof WebSocket {
  return class extends globalThis.WebSocket {
    constructor(url: string | URL, protocols?: string | string[] | WebSocketOptions) {
      if (typeof protocols === "string") protocols = [protocols];
      if (only === "v2" && Array.isArray(protocols)) protocols = protocols.filter((p) => p !== V3);
      super(url, protocols);
      this.addEventListener("message", (event) => {
        if (event.data instanceof ArrayBuffer) frames.push(new Uint8Array(event.data));
      });
    }
  };
}

function connect(url: string, only: "v2" | "v3", frames: Uint8Array[] = []): Promise<DbConnection> {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = recordingWebSocket(only, frames);
  return new Promise<DbConnection>((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("feed")
      .onConnect((conn) => {
        const negotiated = (conn as unknown as { ws?: { protocol?: string } }).ws?.protocol;
        if (negotiated !== `${only}.bsatn.spacetimedb`) {
          reject(new Error(`negotiated ${negotiated}, wanted ${only}`));
        } else resolve(conn);
      })
      .onConnectError((_ctx, error) => reject(error))
      .build();
  }).finally(() => globalThis.WebSocket = saved);
}

function rowCount(list: RowList): number {
  return list instanceof EncodedRowList ? list.rowCount : list.length;
}

/** What the server's frames carried: "SubscribeApplied item 3" / "TransactionUpdate item +1 -0". */
async function wireSummary(frames: Uint8Array[], version: "v2" | "v3"): Promise<string[]> {
  const out: string[] = [];
  for (const frame of frames) {
    for (const message of await decodeServerFrame(frame, version)) {
      if (message.tag === "SubscribeApplied") {
        for (const table of message.rows.tables) {
          out.push(`SubscribeApplied ${table.table} ${rowCount(table.rows)}`);
        }
      } else if (message.tag === "TransactionUpdate") {
        for (const set of message.querySets) {
          for (const table of set.tables) {
            for (const rows of table.rows) {
              out.push(
                rows.tag === "PersistentTable"
                  ? `TransactionUpdate ${table.tableName} +${rowCount(rows.inserts)} -${
                    rowCount(rows.deletes)
                  }`
                  : `TransactionUpdate ${table.tableName} events ${rowCount(rows.events)}`,
              );
            }
          }
        }
      }
    }
  }
  return out;
}

function subscribe(conn: DbConnection, queries: string[], onApplied: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.subscriptionBuilder()
      .onApplied(() => {
        onApplied();
        resolve();
      })
      .onError((ctx) =>
        reject((ctx as { event?: unknown }).event ?? new Error("subscription error"))
      )
      .subscribe(queries);
  });
}

/** Resolves once `predicate` holds, checking after every event-loop turn (bounded). */
async function eventually(
  predicate: () => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

for (const protocol of ["v3", "v2"] as const) {
  Deno.test({
    name: `the official SDK over ${protocol}: one changed row is one row callback`,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      const server = await startTestServer({ wsCompression: true });
      const open: DbConnection[] = [];
      try {
        await publish(server.url, "feed", await fixtureBundle("feed"));
        const writer = await connect(server.url, protocol);
        open.push(writer);
        const existing = 3;
        for (let i = 0; i < existing; i++) {
          await writer.reducers.addItem({ text: `old ${i}` });
          await writer.reducers.addEntry({ text: `old ${i}`, n: i });
        }

        const frames: Uint8Array[] = [];
        const reader = await connect(server.url, protocol, frames);
        open.push(reader);
        const events: string[] = [];
        const registerCallbacks = () => {
          reader.db.item.onInsert((ctx, row) =>
            events.push(`item insert ${row.text} (${ctx.event.tag})`)
          );
          reader.db.item.onUpdate((ctx, before, after) =>
            events.push(`item update ${before.text}->${after.text} (${ctx.event.tag})`)
          );
          reader.db.item.onDelete((ctx, row) =>
            events.push(`item delete ${row.text} (${ctx.event.tag})`)
          );
          reader.db.entry.onInsert((ctx, row) =>
            events.push(`entry insert ${row.text} (${ctx.event.tag})`)
          );
          reader.db.entry.onDelete((ctx, row) =>
            events.push(`entry delete ${row.text} (${ctx.event.tag})`)
          );
        };
        await subscribe(reader, ["SELECT * FROM item", "SELECT * FROM entry"], registerCallbacks);

        await t.step(
          "the subscription's initial rows: each once, on the wire and in the cache",
          async () => {
            assertEquals(reader.db.item.count(), BigInt(existing));
            assertEquals(reader.db.entry.count(), BigInt(existing));
            assertEquals((await wireSummary(frames, protocol)).sort(), [
              `SubscribeApplied entry ${existing}`,
              `SubscribeApplied item ${existing}`,
            ]);
            // The SDK emits onApplied first and only then runs the row callbacks of the initial
            // rows, so callbacks registered inside onApplied see every initial row once, tagged
            // SubscribeApplied (its own ordering, whatever the server; not a later transaction's).
            const initial = [0, 1, 2].map((i) => `old ${i} (SubscribeApplied)`);
            assertEquals(events.splice(0), [
              ...initial.map((row) => `item insert ${row}`),
              ...initial.map((row) => `entry insert ${row}`),
            ]);
          },
        );

        /**
         * Runs `change` on the writer; returns the reader's row callbacks it caused and what the
         * server's frames carried for it.
         */
        const effectOf = async (change: () => Promise<void>, settled: () => boolean) => {
          events.length = 0;
          frames.length = 0;
          await change();
          await eventually(settled, "the reader's cache to catch up");
          const wire = await wireSummary(frames, protocol);
          // A marker transaction the reader sees after the change: callbacks of the change that
          // arrived late would land before it.
          const before = reader.db.entry.count();
          await writer.reducers.addEntry({ text: "marker", n: 999 });
          await eventually(() => reader.db.entry.count() === before + 1n, "the marker");
          const seen = events.filter((event) => !event.includes("marker"));
          await writer.reducers.deleteEntry({ text: "marker", n: 999 });
          await eventually(() => reader.db.entry.count() === before, "the marker's delete");
          return { callbacks: seen, wire };
        };

        await t.step("a table with a primary key: insert, update, delete", async () => {
          assertEquals(
            await effectOf(
              () => writer.reducers.addItem({ text: "new" }),
              () => reader.db.item.count() === BigInt(existing + 1),
            ),
            {
              callbacks: ["item insert new (Transaction)"],
              wire: ["TransactionUpdate item +1 -0"],
            },
          );
          const added = [...reader.db.item.iter()].find((row) => row.text === "new")!;
          assertEquals(
            await effectOf(
              () => writer.reducers.editItem({ id: added.id, text: "newer" }),
              () => [...reader.db.item.iter()].some((row) => row.text === "newer"),
            ),
            {
              callbacks: ["item update new->newer (Transaction)"],
              wire: ["TransactionUpdate item +1 -1"],
            },
          );
          assertEquals(
            await effectOf(
              () => writer.reducers.deleteItem({ id: added.id }),
              () => reader.db.item.count() === BigInt(existing),
            ),
            {
              callbacks: ["item delete newer (Transaction)"],
              wire: ["TransactionUpdate item +0 -1"],
            },
          );
          assertEquals(
            [...reader.db.item.iter()].map((row) => row.text).sort(),
            ["old 0", "old 1", "old 2"],
          );
        });

        await t.step("a table without a primary key: insert, delete", async () => {
          assertEquals(
            await effectOf(
              () => writer.reducers.addEntry({ text: "new", n: 7 }),
              () => reader.db.entry.count() === BigInt(existing + 1),
            ),
            {
              callbacks: ["entry insert new (Transaction)"],
              wire: ["TransactionUpdate entry +1 -0"],
            },
          );
          assertEquals(
            await effectOf(
              () => writer.reducers.deleteEntry({ text: "new", n: 7 }),
              () => reader.db.entry.count() === BigInt(existing),
            ),
            {
              callbacks: ["entry delete new (Transaction)"],
              wire: ["TransactionUpdate entry +0 -1"],
            },
          );
        });

        await t.step(
          "callbacks registered after onApplied returned see only later rows",
          async () => {
            const late: string[] = [];
            reader.db.item.onInsert((_ctx, row) => late.push(`insert ${row.text}`));
            await writer.reducers.addItem({ text: "later" });
            await eventually(() => late.length > 0, "the later insert");
            const marker = reader.db.entry.count();
            await writer.reducers.addEntry({ text: "marker", n: 999 });
            await eventually(() => reader.db.entry.count() === marker + 1n, "the marker");
            assertEquals(late, ["insert later"]);
          },
        );
      } finally {
        for (const conn of open) {
          try {
            conn.disconnect();
          } catch { /* already closed */ }
        }
        await server.close();
      }
    },
  });
}
