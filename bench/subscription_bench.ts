/**
 * `deno run -A bench/subscription_bench.ts [--seconds 4] [--no-e2e] [--no-append]`: what live
 * queries cost (issue #11 "Measure").
 *
 * 1. In process: a keynote transfer (two point reads, two updates, commit) on 100,000 accounts,
 *    then `SubscriptionIndex.onCommit` with 0 / 1,000 / 10,000 distinct subscriptions
 *    `SELECT * FROM accounts WHERE id = k` (k = 0..N-1; transfers pick uniformly among all
 *    100,000, so ~2N/100,000 of them touch a subscribed account). µs per transaction.
 *    Then the same transfers with 0 / 1,000 / 10,000 distinct 2-table join subscriptions
 *    (`holder ⋈ accounts WHERE holder.ident = k`, routed by join edge).
 * 2. End to end (a server child process, the official SDK): keynote transfers per second from
 *    one client with 64 calls in flight while one subscriber connection holds 0 / 1,000 /
 *    10,000 of those subscriptions, once on absent ids (the server's cost of holding them) and
 *    once on ids the transfers touch (plus sending and applying the updates); then the time
 *    from sending a 2-table semijoin subscription (`pet.* FROM person JOIN pet`, 100,000 result
 *    rows) to `onApplied` at the client. The clients share this process, so the subscriber's
 *    work slows the load a little too.
 *
 * Back of the envelope: routing is one Map lookup per changed row and column routed on (the id
 * column), so onCommit should cost ~1 µs whatever N is, next to a ~2-5 µs transfer; without
 * routing 10,000 predicate calls would be ~100 µs. The 100,000-row join: 1,000 owner lookups
 * in the owner_id index plus 100,000 rows to encode (~30 B each, ~3 MB) and send; the encoding
 * and the SDK decoding 100,000 rows dominate, ~0.5-1.5 s.
 */
import { parseArgs } from "node:util";
import { setGlobalLogLevel } from "spacetimedb";
import { Datastore } from "../storage/mod.ts";
import type { TableSchema } from "../storage/mod.ts";
import { SubscriptionIndex } from "../query/mod.ts";
import { seededRandom } from "../lib/random.ts";
import { connectBank } from "../tests/fixtures/bindings/bank/index.ts";
import { DbConnection as JoinsConnection } from "../tests/fixtures/bindings/joins/index.ts";
import { call, fixtureBundle, publish, startServerProcess } from "../tests/support/server.ts";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: "4" },
    "no-e2e": { type: "boolean", default: false },
    "no-append": { type: "boolean", default: false },
  },
});
const SECONDS = Number(flags.seconds);
const ACCOUNTS = 100_000;
const COUNTS = [0, 1_000, 10_000];
const lines: string[] = [];
function out(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
  lines.push(line);
}

const accounts: TableSchema = {
  tableId: 1,
  name: "accounts",
  sourceName: "accounts",
  rowType: {
    elements: [
      { name: "id", algebraicType: { tag: "U32" } },
      { name: "balance", algebraicType: { tag: "I64" } },
    ],
  },
  typespace: [],
  primaryKey: [0],
  indexes: [{
    indexId: 1,
    name: "accounts_id_idx_btree",
    sourceName: "accounts_id_idx_btree",
    accessorName: "id",
    algorithm: "btree",
    columns: [0],
    unique: true,
  }],
  uniqueConstraints: [[0]],
  sequences: [],
  isPublic: true,
  isEvent: false,
};

function accountRow(id: number, balance: bigint): Uint8Array {
  const row = new Uint8Array(12);
  const view = new DataView(row.buffer);
  view.setUint32(0, id, true);
  view.setBigInt64(4, balance, true);
  return row;
}

function inProcess(
  subscriptions: number,
): { usPerTx: number; routedUs: number; onCommitUs: number; hits: number } {
  const datastore = new Datastore([accounts]);
  const seed = datastore.beginMutTx();
  for (let id = 0; id < ACCOUNTS; id++) seed.insert(1, accountRow(id, 1_000_000n));
  seed.commit();
  const index = new SubscriptionIndex({
    tableIdFromName: (name) => datastore.tableIdFromName(name),
    schema: (tableId) => tableId === 1 ? accounts : undefined,
    committedRows: (tableId) => datastore.committedRows(tableId),
    committedIndexPoint: (_tableId, columns, key) =>
      columns.length === 1 && columns[0] === 0 ? datastore.committedIndexPoint(1, key) : undefined,
  });
  const context = { sender: 1n, isOwner: false };
  for (let k = 0; k < subscriptions; k++) {
    index.register(`SELECT * FROM accounts WHERE id = ${k}`, context);
  }
  const random = seededRandom(42);
  const key = new Uint8Array(4);
  const keyView = new DataView(key.buffer);
  const transfer = () => {
    const from = Math.floor(random.next() * ACCOUNTS);
    let to = Math.floor(random.next() * ACCOUNTS);
    if (to === from) to = (to + 1) % ACCOUNTS;
    const tx = datastore.beginMutTx();
    keyView.setUint32(0, from, true);
    const a = tx.indexScanPoint(1, key)[0];
    keyView.setUint32(0, to, true);
    const b = tx.indexScanPoint(1, key)[0];
    const balance = (row: Uint8Array) =>
      new DataView(row.buffer, row.byteOffset).getBigInt64(4, true);
    tx.update(1, 1, accountRow(from, balance(a) - 1n));
    tx.update(1, 1, accountRow(to, balance(b) + 1n));
    return tx.commit();
  };
  // Warm up, then alternate rounds of transfers alone and transfers + onCommit, and time
  // onCommit alone over the recorded deltas; the machine is shared, so the fastest round of
  // each kind is reported.
  for (let i = 0; i < 5_000; i++) index.onCommit(transfer());
  const n = 10_000;
  let plainMs = Infinity;
  let routedMs = Infinity;
  let onCommitMs = Infinity;
  let hits = 0;
  const recorded: ReturnType<typeof transfer>[] = [];
  for (let round = 0; round < 6; round++) {
    let start = performance.now();
    for (let i = 0; i < n; i++) {
      const delta = transfer();
      if (round === 0) recorded.push(delta);
    }
    plainMs = Math.min(plainMs, performance.now() - start);
    start = performance.now();
    for (let i = 0; i < n; i++) hits += index.onCommit(transfer()).size;
    routedMs = Math.min(routedMs, performance.now() - start);
    // Single-table queries only read the delta, so replaying recorded deltas is faithful.
    start = performance.now();
    for (let i = 0; i < n; i++) index.onCommit(recorded[i]);
    onCommitMs = Math.min(onCommitMs, performance.now() - start);
  }
  return {
    usPerTx: (plainMs * 1000) / n,
    routedUs: (routedMs * 1000) / n,
    onCommitUs: (onCommitMs * 1000) / n,
    hits,
  };
}

const holders: TableSchema = {
  tableId: 2,
  name: "holder",
  sourceName: "holder",
  rowType: {
    elements: [
      { name: "account", algebraicType: { tag: "U32" } },
      { name: "ident", algebraicType: { tag: "U32" } },
    ],
  },
  typespace: [],
  primaryKey: [0],
  indexes: [{
    indexId: 2,
    name: "holder_account_idx_btree",
    sourceName: "holder_account_idx_btree",
    accessorName: "account",
    algorithm: "btree",
    columns: [0],
    unique: true,
  }, {
    indexId: 3,
    name: "holder_ident_idx_btree",
    sourceName: "holder_ident_idx_btree",
    accessorName: "ident",
    algorithm: "btree",
    columns: [1],
    unique: false,
  }],
  uniqueConstraints: [[0]],
  sequences: [],
  isPublic: true,
  isEvent: false,
};

/**
 * The same transfers with N distinct 2-table join subscriptions, one per account holder:
 * `SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id WHERE
 * holder.ident = k` (join-edge routing: a changed account finds its holder and reaches only
 * the query of that holder's ident). µs per transfer + onCommit, best of 6 × 5,000.
 */
function inProcessJoins(subscriptions: number): { routedUs: number; hits: number } {
  const datastore = new Datastore([accounts, holders]);
  const seed = datastore.beginMutTx();
  for (let id = 0; id < ACCOUNTS; id++) {
    seed.insert(1, accountRow(id, 1_000_000n));
    const holder = new Uint8Array(8);
    new DataView(holder.buffer).setUint32(0, id, true);
    new DataView(holder.buffer).setUint32(4, id, true);
    seed.insert(2, holder);
  }
  seed.commit();
  const schemas = [accounts, holders];
  const index = new SubscriptionIndex({
    tableIdFromName: (name) => datastore.tableIdFromName(name),
    schema: (tableId) => schemas.find((t) => t.tableId === tableId),
    committedRows: (tableId) => datastore.committedRows(tableId),
    committedIndexPoint: (tableId, columns, key) => {
      if (columns.length !== 1) return undefined;
      // accounts.id -> 1; holder.account -> 2, holder.ident -> 3
      const indexId = tableId === 1 ? (columns[0] === 0 ? 1 : undefined) : columns[0] === 0 ? 2 : 3;
      return indexId === undefined ? undefined : datastore.committedIndexPoint(indexId, key);
    },
  });
  const context = { sender: 1n, isOwner: false };
  for (let k = 0; k < subscriptions; k++) {
    index.register(
      `SELECT accounts.* FROM holder JOIN accounts ON holder.account = accounts.id WHERE holder.ident = ${k}`,
      context,
    );
  }
  const random = seededRandom(42);
  const key = new Uint8Array(4);
  const keyView = new DataView(key.buffer);
  const balance = (row: Uint8Array) =>
    new DataView(row.buffer, row.byteOffset).getBigInt64(4, true);
  const transfer = () => {
    const from = Math.floor(random.next() * ACCOUNTS);
    let to = Math.floor(random.next() * ACCOUNTS);
    if (to === from) to = (to + 1) % ACCOUNTS;
    const tx = datastore.beginMutTx();
    keyView.setUint32(0, from, true);
    const a = tx.indexScanPoint(1, key)[0];
    keyView.setUint32(0, to, true);
    const b = tx.indexScanPoint(1, key)[0];
    tx.update(1, 1, accountRow(from, balance(a) - 1n));
    tx.update(1, 1, accountRow(to, balance(b) + 1n));
    return tx.commit();
  };
  for (let i = 0; i < 2_000; i++) index.onCommit(transfer());
  const n = 5_000;
  let routedMs = Infinity;
  let hits = 0;
  for (let round = 0; round < 6; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) hits += index.onCommit(transfer()).size;
    routedMs = Math.min(routedMs, performance.now() - start);
  }
  return { routedUs: (routedMs * 1000) / n, hits };
}

async function endToEnd(): Promise<void> {
  setGlobalLogLevel("warn");
  const server = await startServerProcess();
  try {
    const bank = await publish(server.url, "bank", await fixtureBundle("bank"));
    for (let from = 0; from < ACCOUNTS; from += 25_000) {
      const response = await call(
        server.url,
        "bank",
        "seed",
        [from, 25_000, 1_000_000],
        bank.token,
      );
      if (response.status !== 200) throw new Error(`seed failed: ${response.text}`);
    }
    out("");
    out(
      "| subscriptions held by one client | transfers/s (1 client × 64 in flight) | µs per transfer | updates heard |",
    );
    out("| --- | ---: | ---: | ---: |");
    const runs: [number, number][] = [
      [0, 0],
      [1_000, ACCOUNTS],
      [10_000, ACCOUNTS],
      [1_000, 0],
      [10_000, 0],
      [0, 0],
    ];
    let firstRun = true;
    for (const [count, firstId] of runs) {
      const subscriber = await connectBank(server.url, "bank");
      let heard = 0;
      if (count > 0) {
        const queries = Array.from(
          { length: count },
          (_, k) => `SELECT * FROM accounts WHERE id = ${firstId + k}`,
        );
        await new Promise<void>((resolve, reject) => {
          subscriber.subscriptionBuilder().onApplied(() => resolve()).onError((ctx) =>
            reject(new Error(String((ctx as { event?: unknown }).event)))
          ).subscribe(queries);
        });
        subscriber.db.accounts.onUpdate(() => heard++);
      }
      const writer = await connectBank(server.url, "bank");
      const random = seededRandom(7);
      let completed = 0;
      let running = true;
      const worker = async () => {
        while (running) {
          const from = Math.floor(random.next() * ACCOUNTS);
          const to = (from + 1 + Math.floor(random.next() * (ACCOUNTS - 1))) % ACCOUNTS;
          await writer.reducers.transfer({ from, to, amount: 1n });
          if (running) completed++;
        }
      };
      const workers = Array.from({ length: 64 }, worker);
      await new Promise((resolve) => setTimeout(resolve, 1000)); // warm-up
      completed = 0;
      heard = 0;
      const start = performance.now();
      await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
      const elapsedS = (performance.now() - start) / 1000;
      const tps = completed / elapsedS;
      running = false;
      await Promise.all(workers);
      const share = ((200 * count) / ACCOUNTS).toFixed(0);
      const what = count === 0
        ? (firstRun ? "none" : "none (again, to show drift over the run)")
        : firstId === 0
        ? `${count} \`WHERE id = k\`, k < ${count} (touched by ~${share} % of transfers)`
        : `${count} \`WHERE id = k\`, k absent (never touched)`;
      out(`| ${what} | ${tps.toFixed(0)} | ${(1e6 / tps).toFixed(1)} | ${heard} |`);
      writer.disconnect();
      subscriber.disconnect();
      firstRun = false;
    }

    // The 2-table join producing 100,000 rows.
    const joins = await publish(server.url, "joins", await fixtureBundle("joins"));
    for (
      const [reducer, args] of [
        ["seed_people", [0, 1_000]],
        ["seed_pets", [0, 100_000, 1_000]],
      ] as const
    ) {
      const response = await call(server.url, "joins", reducer, [...args], joins.token);
      if (response.status !== 200) throw new Error(`${reducer} failed: ${response.text}`);
    }
    const conn = await new Promise<JoinsConnection>((resolve, reject) => {
      JoinsConnection.builder().withUri(server.url.replace(/^http/, "ws")).withDatabaseName("joins")
        .onConnect((c) => resolve(c)).onConnectError((_ctx, error) => reject(error)).build();
    });
    out("");
    out("| initial subscription | rows | ms to onApplied |");
    out("| --- | ---: | ---: |");
    const start = performance.now();
    await new Promise<void>((resolve, reject) => {
      conn.subscriptionBuilder().onApplied(() => resolve())
        .onError((ctx) => reject(new Error(String((ctx as { event?: unknown }).event))))
        .subscribe((tables) =>
          tables.person.rightSemijoin(tables.pet, (person, pet) => person.id.eq(pet.ownerId))
        );
    });
    const ms = performance.now() - start;
    out(
      `| \`person.rightSemijoin(pet)\` (1,000 people × 100 pets) | ${conn.db.pet.count()} | ${
        ms.toFixed(0)
      } |`,
    );
    conn.disconnect();
  } finally {
    await server.stop();
  }
}

out(
  `## Subscriptions: routing cost and joins (bench/subscription_bench.ts), ${
    new Date().toISOString()
  }`,
);
out("");
out(
  `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, load ${
    Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
  }`,
);
out("");
out(
  "| subscriptions (`WHERE id = k`) | transfer alone, µs | transfer + onCommit, µs | onCommit alone, µs | deltas produced (60,000 tx) |",
);
out("| ---: | ---: | ---: | ---: | ---: |");
for (const count of COUNTS) {
  const { usPerTx, routedUs, onCommitUs, hits } = inProcess(count);
  out(
    `| ${count} | ${usPerTx.toFixed(2)} | ${routedUs.toFixed(2)} | ${
      onCommitUs.toFixed(2)
    } | ${hits} |`,
  );
}
out("");
out(
  "| join subscriptions (`holder ⋈ accounts WHERE holder.ident = k`) | transfer + onCommit, µs (best of 6 × 5,000) | deltas produced (30,000 tx) |",
);
out("| ---: | ---: | ---: |");
for (const count of COUNTS) {
  const { routedUs, hits } = inProcessJoins(count);
  out(`| ${count} | ${routedUs.toFixed(2)} | ${hits} |`);
}
if (!flags["no-e2e"]) await endToEnd();
if (!flags["no-append"]) {
  const results = new URL("./RESULTS.md", import.meta.url);
  await Deno.writeTextFile(results, "\n" + lines.join("\n") + "\n", { append: true });
}
