/**
 * Join subscriptions through the official `spacetimedb` client SDK (2.8.3): the query builder's
 * `rightSemijoin`/`leftSemijoin` SQL is accepted, the initial rows are the semijoin's, and live
 * updates keep the SDK's cache equal to the query (pets of people aged 30; people with pets,
 * reference-counted once per pet).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DbConnection } from "../fixtures/bindings/joins/index.ts";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";

function connect(url: string): Promise<DbConnection> {
  return new Promise((resolve, reject) => {
    DbConnection.builder()
      .withUri(url.replace(/^http/, "ws"))
      .withDatabaseName("joins")
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

Deno.test({
  name: "the official SDK: query-builder semijoin subscriptions get their rows and live updates",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const open: DbConnection[] = [];
    try {
      await publish(server.url, "joins", await fixtureBundle("joins"));
      const writer = await connect(server.url);
      const reader = await connect(server.url);
      open.push(writer, reader);
      await writer.reducers.addPerson({ id: 1n, name: "Alice", age: 30 });
      await writer.reducers.addPerson({ id: 2n, name: "Bob", age: 25 });
      await writer.reducers.addPerson({ id: 3n, name: "Carol", age: 30 });
      await writer.reducers.addPet({ id: 10n, ownerId: 1n, species: "cat" });
      await writer.reducers.addPet({ id: 11n, ownerId: 1n, species: "dog" });
      await writer.reducers.addPet({ id: 12n, ownerId: 2n, species: "cat" });

      const sql: string[] = [];
      const errors: string[] = [];
      await new Promise<void>((resolve, reject) => {
        reader.subscriptionBuilder()
          .onApplied(() => resolve())
          .onError((ctx) => {
            errors.push(String((ctx as { event?: unknown }).event));
            reject(new Error(`subscription failed: ${errors[0]}`));
          })
          .subscribe((tables) => {
            const pets = tables.person.where((p) => p.age.eq(30))
              .rightSemijoin(tables.pet, (person, pet) => person.id.eq(pet.ownerId));
            const owners = tables.person
              .leftSemijoin(tables.pet, (person, pet) => person.id.eq(pet.ownerId));
            sql.push(
              (pets as unknown as { toSql(): string }).toSql(),
              (owners as unknown as { toSql(): string }).toSql(),
            );
            return [pets, owners];
          });
      });
      const petIds = () => [...reader.db.pet.iter()].map((p) => p.id).sort();
      const people = () => [...reader.db.person.iter()].map((p) => p.name).sort();

      await t.step("the builder emitted semijoin SQL", () => {
        assert(sql[0].includes(" JOIN "), sql[0]);
        assert(sql[1].startsWith('SELECT "person".* FROM "pet" JOIN "person"'), sql[1]);
      });

      await t.step("initial rows are the semijoins' rows", () => {
        assertEquals(petIds(), [10n, 11n]);
        assertEquals(people(), ["Alice", "Bob"]);
      });

      await t.step("live updates follow partner changes", async () => {
        const inserted: bigint[] = [];
        const deleted: bigint[] = [];
        reader.db.pet.onInsert((_ctx, row) => inserted.push(row.id));
        reader.db.pet.onDelete((_ctx, row) => deleted.push(row.id));
        // Bob turns 30: his cat joins the pets of 30-year-olds.
        await writer.reducers.setAge({ id: 2n, age: 30 });
        await eventually(() => petIds().length === 3, "Bob's cat to arrive");
        assertEquals(petIds(), [10n, 11n, 12n]);
        // Alice's dog moves to Carol (still 30): nothing changes for the pets query.
        await writer.reducers.movePet({ id: 11n, ownerId: 3n });
        // Carol now owns a pet: she appears in the owners query.
        await eventually(() => people().includes("Carol"), "Carol to own a pet");
        assertEquals(petIds(), [10n, 11n, 12n]);
        // Alice loses her last pet: she leaves the owners query (her second copy went with the dog).
        await writer.reducers.deletePet({ id: 10n });
        await eventually(() => !people().includes("Alice"), "Alice to leave the owners");
        assertEquals(people(), ["Bob", "Carol"]);
        assertEquals(petIds(), [11n, 12n]);
        // A pet of a 25-year-old is never seen.
        await writer.reducers.addPerson({ id: 4n, name: "Dan", age: 25 });
        await writer.reducers.addPet({ id: 13n, ownerId: 4n, species: "fish" });
        await eventually(() => people().includes("Dan"), "Dan to own a pet");
        assertEquals(petIds(), [11n, 12n]);
        assertEquals(inserted, [12n]);
        assertEquals(deleted, [10n]);
      });
      await t.step(
        "a call committing two transactions: each update uses its own state",
        async () => {
          // Transaction 1 gives 25-year-old Dan a pet (not visible); transaction 2 makes him 30
          // (his pets 13 and 14 become visible, once each). Evaluated against the final state,
          // transaction 1 would already add pet 14 and the cache would count it twice.
          await writer.procedures.adoptThenAge({ petId: 14n, ownerId: 4n, age: 30 });
          await eventually(() => petIds().length === 4, "Dan's pets to arrive");
          assertEquals(petIds(), [11n, 12n, 13n, 14n]);
          await writer.reducers.deletePet({ id: 14n });
          await eventually(() => petIds().length === 3, "pet 14 to leave");
          assertEquals(petIds(), [11n, 12n, 13n]);
        },
      );

      await t.step("SELECT * FROM * still subscribes to every table", async () => {
        const all = await connect(server.url);
        open.push(all);
        await new Promise<void>((resolve, reject) => {
          all.subscriptionBuilder().onApplied(() => resolve())
            .onError((ctx) => reject(new Error(String((ctx as { event?: unknown }).event))))
            .subscribe("SELECT * FROM *");
        });
        assertEquals(all.db.person.count(), 4n);
        assertEquals(all.db.pet.count(), 3n);
      });
      assertEquals(errors, []);
    } finally {
      for (const conn of open) conn.disconnect();
      await server.close();
    }
  },
});
