/**
 * Top-N subscriptions (`ORDER BY … LIMIT n`, our extension) through the official `spacetimedb`
 * client SDK (2.8.3), subscribed with raw SQL (the query builder has no ORDER BY): a row leaving
 * the window brings the next one into the SDK's cache, a row beating the window pushes the last
 * one out; over an indexed column too (the SDK negotiates v3). A WebSocket v2 OneOffQuery
 * answers the sorted rows.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  decodeServerPayload,
  encodeClientMessage,
  type ServerMessage,
} from "../../protocol/mod.ts";
import { DbConnection } from "../fixtures/bindings/joins/index.ts";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

function connect(url: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("topn")
      .onConnect((conn) => resolve(conn))
      .onConnectError((_ctx, error) => reject(error))
      .build();
  });
}

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

/** One OneOffQuery over a raw v2 WebSocket; the rows' first column (a u64 id), in order. */
async function oneOff(url: string, sql: string): Promise<bigint[] | string> {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/topn/subscribe?compression=None`,
    ["v2.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  try {
    const answer = await new Promise<ServerMessage>((resolve, reject) => {
      socket.onerror = () => reject(new Error("WebSocket failed"));
      socket.onmessage = (event) => {
        const bytes = new Uint8Array(event.data as ArrayBuffer);
        for (const message of decodeServerPayload(bytes.subarray(1), "v2")) {
          if (message.tag === "InitialConnection") {
            socket.send(
              encodeClientMessage({ tag: "OneOffQuery", requestId: 1, queryString: sql }),
            );
          } else if (message.tag === "OneOffQueryResult") resolve(message);
        }
      };
    });
    assert(answer.tag === "OneOffQueryResult");
    if (answer.result.tag === "Err") return answer.result.value;
    const ids: bigint[] = [];
    for (const { rows } of answer.result.value.tables) {
      for (const row of rows as Uint8Array[]) {
        ids.push(new DataView(row.buffer, row.byteOffset, row.byteLength).getBigUint64(0, true));
      }
    }
    return ids;
  } finally {
    socket.close();
  }
}

Deno.test({
  name: "the official SDK: a row leaving a top-N window brings the next one into the cache",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const open: DbConnection[] = [];
    try {
      await publish(server.url, "topn", await fixtureBundle("joins"));
      const writer = await connect(server.url);
      const reader = await connect(server.url);
      open.push(writer, reader);
      await writer.reducers.addPerson({ id: 1n, name: "Alice", age: 30 });
      await writer.reducers.addPerson({ id: 2n, name: "Bob", age: 25 });
      await writer.reducers.addPerson({ id: 3n, name: "Carol", age: 40 });
      await writer.reducers.addPerson({ id: 4n, name: "Dan", age: 20 });
      await writer.reducers.addPet({ id: 10n, ownerId: 1n, species: "cat" });
      await writer.reducers.addPet({ id: 11n, ownerId: 2n, species: "dog" });
      await writer.reducers.addPet({ id: 12n, ownerId: 3n, species: "fish" });

      const errors: string[] = [];
      await new Promise<void>((resolve, reject) => {
        reader.subscriptionBuilder()
          .onApplied(() => resolve())
          .onError((ctx) => {
            errors.push(String((ctx as { event?: unknown }).event));
            reject(new Error(`subscription failed: ${errors[0]}`));
          })
          .subscribe([
            // No index on age: the window refills by scanning.
            "SELECT * FROM person ORDER BY age DESC LIMIT 2",
            // owner_id has a B-tree index: the window seeks it.
            "SELECT * FROM pet ORDER BY owner_id DESC LIMIT 1",
          ]);
      });
      const people = () => [...reader.db.person.iter()].map((p) => p.name).sort();
      const pets = () => [...reader.db.pet.iter()].map((p) => p.id);
      const events: string[] = [];
      reader.db.person.onInsert((_ctx, row) => events.push(`+${row.name}`));
      reader.db.person.onDelete((_ctx, row) => events.push(`-${row.name}`));

      await t.step("initial rows are the window", () => {
        assertEquals(people(), ["Alice", "Carol"]);
        assertEquals(pets(), [12n]);
      });

      await t.step("a row leaving the window brings the next one in", async () => {
        await writer.reducers.setAge({ id: 3n, age: 10 });
        await eventually(() => people().includes("Bob"), "Bob to enter the window");
        assertEquals(people(), ["Alice", "Bob"]);
        assertEquals(events.sort(), ["+Bob", "-Carol"]);
      });

      await t.step("a row beating the window pushes the last one out", async () => {
        events.length = 0;
        await writer.reducers.setAge({ id: 4n, age: 50 });
        await eventually(() => people().includes("Dan"), "Dan to enter the window");
        assertEquals(people(), ["Alice", "Dan"]);
        assertEquals(events.sort(), ["+Dan", "-Bob"]);
      });

      await t.step("a deleted window row is replaced through the index", async () => {
        await writer.reducers.deletePet({ id: 12n });
        await eventually(() => pets()[0] === 11n, "pet 11 to enter the window");
        assertEquals(pets(), [11n]);
        await writer.reducers.addPet({ id: 13n, ownerId: 9n, species: "owl" });
        await eventually(() => pets()[0] === 13n, "pet 13 to take the window");
        assertEquals(pets(), [13n]);
      });

      await t.step(
        "a OneOffQuery answers the sorted rows; bad top-N queries are refused",
        async () => {
          assertEquals(
            await oneOff(server.url, "SELECT * FROM person ORDER BY age, id DESC LIMIT 3"),
            [3n, 2n, 1n],
          );
          const refused = await oneOff(server.url, "SELECT * FROM person LIMIT 3");
          assert(typeof refused === "string" && refused.startsWith("Unsupported: "), `${refused}`);
          assert(refused.includes("ORDER BY and LIMIT only together"), refused);
        },
      );
      assertEquals(errors, []);
    } finally {
      for (const conn of open) conn.disconnect();
      await server.close();
    }
  },
});
