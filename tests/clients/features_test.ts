/**
 * Client matrix, what session 5 added, seen through the official SDK (2.8.3 and the newest
 * 2.x, 2.10.1) from Node.js and from headless Chromium: a top-N subscription (rows entering
 * and leaving the window reach the client's cache, onInsert/onDelete/onUpdate fire), a
 * per-sender view two clients see differently, tables under row-level security (one rule
 * joins tables) whose other rows a client never sees, a procedure call (its result, its error, its transaction reaching
 * subscribers) and row_limit for a non-owner's subscription. The module is bundled with the
 * same version's module library. One server for the whole file, one database per client run.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "../../protocol/mod.ts";
import {
  fixtureBundleWithLibrary,
  publish,
  type Published,
  startTestServer,
} from "../support/server.ts";
import {
  announceSkip,
  bundle,
  chromiumPath,
  ensureClientsInstalled,
  eventually,
  LineClient,
  SDK_VERSIONS,
  servePages,
  startBrowser,
} from "./support.ts";

type Drive = <T = unknown>(op: string, args?: Record<string, unknown>) => Promise<T>;
type Outcome<T = null> = { ok: true; value: T } | { ok: false; error: string };
interface Row {
  id: number;
  owner: string;
  points?: number;
  text?: string;
}

await ensureClientsInstalled();
const chromium = chromiumPath();
if (!chromium) {
  announceSkip(
    "Chromium runs of tests/clients/features_test.ts",
    "Debian's chromium is not installed and tests/support/install_clients.sh could not install it",
  );
}

async function sql(url: string, db: Published, query: string): Promise<unknown[][]> {
  const response = await fetch(`${url}/v1/database/${db.name}/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${db.token}` },
    body: query,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`/sql ${query}: ${response.status} ${text}`);
  return (JSON.parse(text) as { rows: unknown[][] }[])[0].rows;
}

/** The ids of `table`'s rows in `name`'s client cache. */
async function ids(drive: Drive, name: string, table: string): Promise<number[]> {
  return (await drive<Row[]>("rows", { name, table })).map((row) => row.id);
}

/** How many events of `table` `name` has recorded. */
async function mark(drive: Drive, name: string, table: string): Promise<number> {
  return (await drive<string[]>("events", { name })).filter((e) => e.startsWith(`${table} `))
    .length;
}

/** The first `count` events of `table` after `from`, sorted (one transaction's are unordered). */
function eventsAfter(drive: Drive, name: string, table: string, from: number, count: number) {
  return eventually(async () => {
    const events = (await drive<string[]>("events", { name }))
      .filter((e) => e.startsWith(`${table} `));
    return events.length >= from + count ? events.slice(from).sort() : undefined;
  }, `${count} new ${table} events on ${name}`);
}

async function called(drive: Drive, name: string, reducer: string, args: unknown): Promise<void> {
  const result = await drive<Outcome>("call", { name, reducer, args });
  if (!result.ok) throw new Error(`${name}.${reducer} failed: ${result.error}`);
}

async function subscribed(drive: Drive, name: string, queries: string[]): Promise<void> {
  const result = await drive<Outcome>("subscribe", { name, queries });
  if (!result.ok) throw new Error(`${name}: subscription ${queries} failed: ${result.error}`);
}

const TOP_3 = "SELECT * FROM score ORDER BY points DESC LIMIT 3";

async function featureScenario(
  t: Deno.TestContext,
  drive: Drive,
  url: string,
  db: Published,
): Promise<void> {
  const alice = await drive<{ identity: string }>("connect", {
    name: "alice",
    url,
    database: db.name,
  });
  const bob = await drive<{ identity: string }>("connect", { name: "bob", url, database: db.name });
  assert(alice.identity !== bob.identity && alice.identity !== db.identity);
  for (const name of ["alice", "bob"]) await drive("watch", { name });

  await t.step("top-N: the window's rows reach the cache as they enter and leave", async () => {
    for (const [id, points] of [[1, 10], [2, 20], [3, 30]]) {
      await called(drive, "alice", "setScore", { id, player: "ann", points });
    }
    for (const [id, points] of [[4, 40], [5, 50]]) {
      await called(drive, "bob", "setScore", { id, player: "bo", points });
    }
    await subscribed(drive, "bob", [TOP_3]);
    assertEquals(await ids(drive, "bob", "score"), [3, 4, 5]);

    let from = await mark(drive, "bob", "score");
    await called(drive, "alice", "setScore", { id: 6, player: "ann", points: 45 });
    assertEquals(await eventsAfter(drive, "bob", "score", from, 2), [
      "score +6:45",
      "score -3:30",
    ]);
    assertEquals(await ids(drive, "bob", "score"), [4, 5, 6]);

    from = await mark(drive, "bob", "score");
    await called(drive, "alice", "removeScore", { id: 5 });
    assertEquals(await eventsAfter(drive, "bob", "score", from, 2), [
      "score +3:30",
      "score -5:50",
    ]);
    assertEquals(await ids(drive, "bob", "score"), [3, 4, 6]);

    from = await mark(drive, "bob", "score");
    await called(drive, "alice", "setScore", { id: 6, player: "ann", points: 46 });
    assertEquals(await eventsAfter(drive, "bob", "score", from, 1), ["score ~6:45->6:46"]);
  });

  await t.step(
    "a procedure answers its caller and its transaction reaches subscribers",
    async () => {
      const from = await mark(drive, "bob", "score");
      assertEquals(
        await drive("procedure", {
          name: "alice",
          procedure: "award",
          args: { id: 1, bonus: 100 },
        }),
        { ok: true, value: 110 },
      );
      assertEquals(await eventsAfter(drive, "bob", "score", from, 2), [
        "score +1:110",
        "score -3:30",
      ]);
      assertEquals(await ids(drive, "bob", "score"), [1, 4, 6]);
      const failed = await drive<Outcome>("procedure", {
        name: "alice",
        procedure: "award",
        args: { id: 99, bonus: 1 },
      });
      assert(!failed.ok && failed.error.includes("no score 99"), JSON.stringify(failed));
    },
  );

  await t.step("a per-sender view: each client sees its own rows", async () => {
    await subscribed(drive, "alice", ["SELECT * FROM my_scores"]);
    await subscribed(drive, "bob", ["SELECT * FROM my_scores"]);
    assertEquals(await ids(drive, "alice", "myScores"), [1, 2, 3, 6]);
    assertEquals(await ids(drive, "bob", "myScores"), [4]);
    const fromAlice = await mark(drive, "alice", "myScores");
    const fromBob = await mark(drive, "bob", "myScores");
    // Each write commits after the other client's previous one, so when a client sees its
    // own row, the other's earlier row would already have reached it.
    await called(drive, "bob", "setScore", { id: 7, player: "bo", points: 7 });
    await called(drive, "alice", "setScore", { id: 8, player: "ann", points: 8 });
    await called(drive, "bob", "setScore", { id: 9, player: "bo", points: 9 });
    assertEquals(await eventsAfter(drive, "alice", "myScores", fromAlice, 1), [
      "myScores +8:8",
    ]);
    assertEquals(await eventsAfter(drive, "bob", "myScores", fromBob, 2), [
      "myScores +7:7",
      "myScores +9:9",
    ]);
    assertEquals(await ids(drive, "alice", "myScores"), [1, 2, 3, 6, 8]);
    assertEquals(await ids(drive, "bob", "myScores"), [4, 7, 9]);
    const owners = new Set((await drive<Row[]>("rows", { name: "bob", table: "myScores" }))
      .map((row) => row.owner));
    assertEquals([...owners], [bob.identity]);
  });

  await t.step("row-level security: a client never sees another's cards", async () => {
    await subscribed(drive, "alice", ["SELECT * FROM card"]);
    await subscribed(drive, "bob", ["SELECT * FROM card"]);
    const fromAlice = await mark(drive, "alice", "card");
    const fromBob = await mark(drive, "bob", "card");
    await called(drive, "alice", "addCard", { id: 1, text: "alice-1" });
    await called(drive, "bob", "addCard", { id: 2, text: "bob-2" });
    await called(drive, "alice", "addCard", { id: 3, text: "alice-3" });
    assertEquals(await eventsAfter(drive, "bob", "card", fromBob, 1), ["card +2:bob-2"]);
    assertEquals(await eventsAfter(drive, "alice", "card", fromAlice, 2), [
      "card +1:alice-1",
      "card +3:alice-3",
    ]);
    assertEquals(await ids(drive, "bob", "card"), [2]);
    assertEquals(await ids(drive, "alice", "card"), [1, 3]);
    // The owner is not filtered: every card is there.
    assertEquals((await sql(url, db, "SELECT * FROM card")).length, 3);
  });

  await t.step("row-level security through a join: team members see the team's memos", async () => {
    await called(drive, "alice", "joinTeam", { id: 1, team: 1 });
    await called(drive, "bob", "joinTeam", { id: 2, team: 2 });
    await subscribed(drive, "alice", ["SELECT * FROM memo"]);
    await subscribed(drive, "bob", ["SELECT * FROM memo"]);
    const fromAlice = await mark(drive, "alice", "memo");
    const fromBob = await mark(drive, "bob", "memo");
    await called(drive, "bob", "postMemo", { id: 1, team: 1, text: "for team 1" });
    await called(drive, "alice", "postMemo", { id: 2, team: 2, text: "for team 2" });
    assertEquals(await eventsAfter(drive, "alice", "memo", fromAlice, 1), ["memo +1:for team 1"]);
    assertEquals(await eventsAfter(drive, "bob", "memo", fromBob, 1), ["memo +2:for team 2"]);
    // Joining team 1 brings its memo to Bob: a membership change moves rows in.
    await called(drive, "bob", "joinTeam", { id: 3, team: 1 });
    assertEquals(await eventsAfter(drive, "bob", "memo", fromBob, 2), [
      "memo +1:for team 1",
      "memo +2:for team 2",
    ]);
    assertEquals(await ids(drive, "bob", "memo"), [1, 2]);
    assertEquals(await ids(drive, "alice", "memo"), [1]);
  });

  await t.step("row_limit refuses a non-owner's subscription that would scan more", async () => {
    await sql(url, db, "SET row_limit = 2");
    const refused = await drive<Outcome>("subscribe", {
      name: "bob",
      queries: ["SELECT * FROM score"],
    });
    assert(
      !refused.ok && /Estimated cardinality \(\d+ rows\) exceeds limit \(2 rows\)/
        .test(refused.error),
      JSON.stringify(refused),
    );
    // The connection and its other subscriptions go on.
    const from = await mark(drive, "bob", "score");
    await called(drive, "alice", "setScore", { id: 10, player: "ann", points: 200 });
    assertEquals(await eventsAfter(drive, "bob", "score", from, 2), [
      "score +10:200",
      "score -4:40",
    ]);
  });

  for (const name of ["alice", "bob"]) await drive("disconnect", { name });
}

Deno.test("a module bundled with each SDK version's module library uses only syscalls Lightcone provides", async () => {
  const provided = new Set([...SYS_2_0_EXPORTS, ...SYS_2_1_EXPORTS]);
  for (const sdk of SDK_VERSIONS) {
    const source = await fixtureBundleWithLibrary("client_features", sdk);
    const versions = new Set(
      [...source.matchAll(/from\s*["']spacetime:sys@([^"']+)["']/g)].map((m) => m[1]),
    );
    assertEquals([...versions].sort(), ["2.0", "2.1"], sdk);
    // The library gathers its namespace imports into one object and calls through it.
    const namespaces = [...source.matchAll(/import \* as (\w+) from "spacetime:sys@/g)]
      .map((m) => m[1]);
    const gathered = new RegExp(`var (\\w+) = \\{\\s*\\.\\.\\.${namespaces[0]},`).exec(source);
    assert(gathered, `${sdk}: the library's syscall object was not found`);
    const used = new Set(
      [...source.matchAll(new RegExp(`\\b${gathered[1]}\\.(\\w+)`, "g"))].map((m) => m[1]),
    );
    assert(used.size >= 20, `${sdk}: only ${[...used]} found`);
    assertEquals([...used].filter((name) => !provided.has(name)), [], sdk);
  }
});

Deno.test({
  name: "session-5 features through the official SDK from Node and Chromium",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const started = Date.now();
    const server = await startTestServer();
    let browser: LineClient | undefined;
    const pages: Record<string, { path?: string; text?: string; type: string }> = {};
    const site = servePages(pages);
    try {
      const bundles = new Map<string, string>();
      for (const sdk of SDK_VERSIONS) {
        bundles.set(sdk, await fixtureBundleWithLibrary("client_features", sdk));
      }
      const slug = (sdk: string) => sdk.replaceAll(".", "-");
      for (const sdk of SDK_VERSIONS) {
        await t.step(`Node with spacetimedb@${sdk}`, async (t) => {
          const db = await publish(server.url, `features-node-${slug(sdk)}`, bundles.get(sdk)!);
          const script = await bundle("features_node_client.ts", { sdk, platform: "node" });
          const client = new LineClient(`Node sdk ${sdk}`, "node", [script]);
          try {
            const hello = await client.hello as { node: string };
            console.log(`Node ${hello.node}, spacetimedb@${sdk}`);
            await featureScenario(t, (op, args) => client.request(op, args), server.url, db);
          } finally {
            await client.close();
          }
        });
      }
      for (const sdk of SDK_VERSIONS) {
        await t.step({
          name: `Chromium with spacetimedb@${sdk}`,
          ignore: !chromium,
          fn: async (t) => {
            const db = await publish(
              server.url,
              `features-browser-${slug(sdk)}`,
              bundles.get(sdk)!,
            );
            const script = await bundle("features_browser_client.ts", { sdk, platform: "browser" });
            pages[`/${sdk}/`] = {
              type: "text/html",
              text:
                `<!doctype html><title>features ${sdk}</title><script type="module" src="client.js"></script>`,
            };
            pages[`/${sdk}/client.js`] = { path: script, type: "text/javascript" };
            browser ??= await startBrowser("Chromium", chromium!);
            await browser.request("goto", { url: `${site.url}/${sdk}/` });
            try {
              await featureScenario(
                t,
                (op, args) => browser!.request("driver", { op, args }),
                server.url,
                db,
              );
            } catch (error) {
              console.error(`page log:\n${(await browser.request<string[]>("log")).join("\n")}`);
              throw error;
            }
          },
        });
      }
    } finally {
      await browser?.close();
      await site.close();
      await server.close();
      console.log(`features_test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  },
});
