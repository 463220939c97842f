/**
 * The follower against hostile and broken stream contents, over a real nats-server (Debian's,
 * installed by tests/support/install_debian.sh; the test fails without it) with a recording
 * FollowTarget in place of the server's databases: damaged, truncated, reordered, duplicated or
 * ill-formed messages stop following that database with a clear reason (a duplicate is
 * skipped), are never applied, and never stop the other databases.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import {
  crc32c,
  decodeTxRecord,
  encodeTxRecord,
  forEachRecord,
  lengthPrefixed,
} from "../storage/mod.ts";
import { startNatsServer } from "../tests/support/nats.ts";
import { waitUntil } from "../tests/support/wait.ts";
import { Follower, type FollowTarget } from "./follower.ts";
import { ensureStream, type ModuleBody } from "./stream.ts";
import { importReplicationKey, messageTag } from "./auth.ts";
import { chunkHeaders, sha256Hex } from "./chunks.ts";

/** A transaction record whose reducer name is `name` (what the recording target keeps). */
function txRecord(name: string): Uint8Array {
  return encodeTxRecord({
    reducerName: name,
    callerIdentity: new Uint8Array(32),
    callerConnectionId: new Uint8Array(16),
    timestampMicros: 0n,
    args: new Uint8Array(0),
    tables: [],
    sequences: [],
  });
}

/** One framed commit (storage/commitlog/frame.ts layout) of transactions named `names`. */
function frame(firstTx: number, names: string[]): Uint8Array {
  return rawFrame(firstTx, names.map(txRecord));
}

/** One framed commit of `records` as they are. */
function rawFrame(firstTx: number, records: Uint8Array[]): Uint8Array {
  const payload = lengthPrefixed(records);
  const out = new Uint8Array(36 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x544d434c, true);
  view.setUint8(4, 1);
  view.setBigUint64(16, BigInt(firstTx), true);
  view.setUint32(24, records.length, true);
  view.setUint32(28, payload.length, true);
  out.set(payload, 32);
  view.setUint32(32 + payload.length, crc32c(out.subarray(0, 32 + payload.length)), true);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Databases as the follower sees them: what was created and every record applied. */
class RecordingTarget implements FollowTarget {
  readonly databases = new Map<string, { body: ModuleBody; records: string[] }>();
  localEnd(dbKey: string): number | undefined {
    return this.databases.get(dbKey)?.records.length;
  }
  createDatabase(dbKey: string, body: ModuleBody): Promise<void> {
    this.databases.set(dbKey, { body, records: [] });
    return Promise.resolve();
  }
  deleteDatabase(dbKey: string): Promise<void> {
    this.databases.delete(dbKey);
    return Promise.resolve();
  }
  updateModule(dbKey: string, bundle: string): Promise<void> {
    const database = this.databases.get(dbKey);
    if (database) database.body = { ...database.body, bundle };
    return Promise.resolve();
  }
  apply(dbKey: string, firstTx: number, count: number, records: Uint8Array): Promise<void> {
    const database = this.databases.get(dbKey)!;
    if (firstTx !== database.records.length) {
      return Promise.reject(new Error(`applied ${firstTx} after ${database.records.length}`));
    }
    forEachRecord(records, count, (_, record) => {
      database.records.push(decodeTxRecord(record).reducerName);
    });
    return Promise.resolve();
  }
}

Deno.test({
  name: "follower: damaged, truncated, reordered, duplicated and ill-formed messages",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir();
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.server });
    const target = new RecordingTarget();
    const follower = new Follower({ dataDir, server: nats.server, target });
    try {
      await ensureStream(nc);
      const js = jetstream(nc);
      const key = (n: number) => n.toString(16).padStart(64, "0");
      const owner = "ab".repeat(32);
      const send = async (
        db: number,
        kind: string,
        fields: Record<string, string>,
        body: Uint8Array,
      ) => {
        const h = headers();
        h.set("Lc-Kind", kind);
        h.set("Lc-Primary", "test");
        for (const [name, value] of Object.entries(fields)) h.set(name, value);
        await js.publish(`lightcone.${key(db)}.log`, body, { headers: h });
      };
      const module = (db: number, body: unknown = { owner, names: [`db${db}`], bundle: "x" }) =>
        send(db, "module", { "Lc-At-Tx": "0" }, new TextEncoder().encode(JSON.stringify(body)));
      const log = (db: number, first: number, end: number, data: Uint8Array) =>
        send(db, "log", { "Lc-First-Tx": String(first), "Lc-End-Tx": String(end) }, data);

      const GOOD = 1, CRC = 2, TRUNCATED = 3, REORDERED = 4, NO_END = 5, HEX = 6, NAMES = 7;
      const DAMAGED_DUPLICATE = 8, EMPTY = 9, TRAILING = 10, BAD_RECORD = 11;
      for (
        const db of [
          GOOD,
          CRC,
          TRUNCATED,
          REORDERED,
          NO_END,
          HEX,
          DAMAGED_DUPLICATE,
          EMPTY,
          BAD_RECORD,
        ]
      ) {
        await module(db);
      }
      await module(TRAILING);
      await module(NAMES, { owner, names: "bank", bundle: "x" });
      // GOOD: in order, a duplicate and an overlapping message are applied once.
      await log(GOOD, 0, 2, frame(0, ["g0", "g1"]));
      await log(GOOD, 0, 2, frame(0, ["g0", "g1"]));
      await log(GOOD, 1, 3, concat(frame(1, ["g1"]), frame(2, ["g2"])));
      // CRC: one payload byte changed after the checksum.
      const spoiled = frame(0, ["c0"]);
      spoiled[37] ^= 0x01;
      await log(CRC, 0, 1, spoiled);
      // TRUNCATED: the message lost its last bytes.
      const whole = concat(frame(0, ["t0"]), frame(1, ["t1"]));
      await log(TRUNCATED, 0, 2, whole.subarray(0, whole.length - 5));
      // REORDERED: [1, 2) before [0, 1).
      await log(REORDERED, 1, 2, frame(1, ["r1"]));
      await log(REORDERED, 0, 1, frame(0, ["r0"]));
      // NO_END: a log message without Lc-End-Tx (it read as 0: skipped as seen before).
      await log(NO_END, 0, 1, frame(0, ["n0"]));
      await send(NO_END, "log", { "Lc-First-Tx": "1" }, frame(1, ["n1"]));
      // HEX: "0x0" read as 0.
      await send(HEX, "log", { "Lc-First-Tx": "0x0", "Lc-End-Tx": "1" }, frame(0, ["h0"]));
      // DAMAGED_DUPLICATE: a message below the local end whose commit is damaged.
      await log(DAMAGED_DUPLICATE, 0, 1, frame(0, ["d0"]));
      const damaged = frame(0, ["d0"]);
      damaged[damaged.length - 1] ^= 0xff;
      await log(DAMAGED_DUPLICATE, 0, 1, damaged);
      // EMPTY: a log message announcing no transactions.
      await log(EMPTY, 0, 0, new Uint8Array(0));
      // TRAILING: a whole commit followed by bytes that are none.
      await log(TRAILING, 0, 1, concat(frame(0, ["z0"]), new Uint8Array([1, 2, 3])));
      // BAD_RECORD: a whole, checksummed commit whose second record is not a transaction record.
      await log(BAD_RECORD, 0, 1, frame(0, ["b0"]));
      await log(
        BAD_RECORD,
        1,
        3,
        rawFrame(1, [txRecord("b1"), new TextEncoder().encode("not a record")]),
      );
      // GOOD goes on after all of that: the last message of the stream.
      await log(GOOD, 3, 4, frame(3, ["g3"]));

      await follower.start();
      await waitUntil(
        () => target.localEnd(key(GOOD)) === 4,
        "the last message to be applied",
      );
      const stopped = new Map(
        follower.metrics().databases.map((d) => [parseInt(d.dbKey, 16), d.stopped]),
      );
      const records = (db: number) => target.databases.get(key(db))?.records;
      assertEquals(records(GOOD), ["g0", "g1", "g2", "g3"]);
      assertEquals(stopped.get(GOOD), undefined);
      assertMatch(stopped.get(CRC) ?? "", /damaged commit .* checksum mismatch/);
      assertEquals(records(CRC), []);
      assertMatch(stopped.get(TRUNCATED) ?? "", /damaged commit in the message of \[0, 2\)/);
      assertEquals(records(TRUNCATED), []);
      assertMatch(
        stopped.get(REORDERED) ?? "",
        /gap in the replicated log: the next message starts at transaction 1, the local log ends at 0/,
      );
      assertEquals(records(REORDERED), []);
      assertMatch(stopped.get(NO_END) ?? "", /without the Lc-End-Tx header/);
      assertEquals(records(NO_END), ["n0"]);
      assertMatch(stopped.get(HEX) ?? "", /Lc-First-Tx header "0x0" is not an offset/);
      assertEquals(records(HEX), []);
      assertMatch(stopped.get(NAMES) ?? "", /names are not a list of names/);
      assertEquals(target.databases.has(key(NAMES)), false);
      assertMatch(stopped.get(DAMAGED_DUPLICATE) ?? "", /checksum mismatch/);
      assertEquals(records(DAMAGED_DUPLICATE), ["d0"]);
      assertMatch(stopped.get(EMPTY) ?? "", /announcing the empty range \[0, 0\)/);
      assertMatch(
        stopped.get(TRAILING) ?? "",
        new RegExp(
          `damaged commit .* at byte ${frame(0, ["z0"]).length}: incomplete commit header`,
        ),
      );
      assertEquals(records(TRAILING), []);
      assertMatch(
        stopped.get(BAD_RECORD) ?? "",
        /a malformed transaction record at transaction 2: Unknown transaction record version 110/,
      );
      assertEquals(records(BAD_RECORD), ["b0"]);
    } finally {
      await follower.close();
      await nc.close();
      await nats.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower with a key: untagged and forged messages stop their database, and the stop " +
    "stays across restarts until its marker is deleted",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir();
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.server });
    const target = new RecordingTarget();
    const secret = new TextEncoder().encode("the replication secret of this test");
    const key = await importReplicationKey(secret);
    const otherKey = await importReplicationKey(
      new TextEncoder().encode("another secret, not ours"),
    );
    const start = async () => {
      const follower = new Follower({ dataDir, server: nats.server, target, key });
      await follower.start();
      return follower;
    };
    let follower: Follower | undefined;
    try {
      await ensureStream(nc);
      const js = jetstream(nc);
      const dbKey = (n: number) => n.toString(16).padStart(64, "0");
      const owner = "ab".repeat(32);
      // Per database, the stream sequence of the last message the primary (with the key) sent:
      // what its next one names as Lc-Prev-Seq.
      const prevSeq = new Map<number, number>();
      const send = async (
        db: number,
        kind: string,
        fields: Record<string, string>,
        body: Uint8Array,
        signWith: CryptoKey | null,
      ) => {
        const subject = `lightcone.${dbKey(db)}.log`;
        const h = headers();
        h.set("Lc-Kind", kind);
        h.set("Lc-Primary", "test");
        h.set("Lc-Prev-Seq", String(prevSeq.get(db) ?? 0));
        for (const [name, value] of Object.entries(fields)) h.set(name, value);
        if (signWith) h.set("Lc-Auth", await messageTag(signWith, subject, h, body));
        const ack = await js.publish(subject, body, { headers: h });
        if (signWith === key) prevSeq.set(db, ack.seq);
        return { headers: h, body, seq: ack.seq };
      };
      const module = (db: number, atTx = 0, bundle = "x") =>
        send(
          db,
          "module",
          { "Lc-At-Tx": String(atTx) },
          new TextEncoder().encode(JSON.stringify({ owner, names: [`db${db}`], bundle })),
          key,
        );
      const log = (
        db: number,
        first: number,
        names: string[],
        signWith: CryptoKey | null = key,
      ) =>
        send(
          db,
          "log",
          { "Lc-First-Tx": String(first), "Lc-End-Tx": String(first + names.length) },
          frame(first, names),
          signWith,
        );
      const GOOD = 1, UNTAGGED = 2, FORGED = 3, ALTERED = 4, WHOLE = 5;
      const created = new Map<number, Awaited<ReturnType<typeof send>>>();
      for (const db of [GOOD, UNTAGGED, FORGED, ALTERED, WHOLE]) created.set(db, await module(db));
      await log(GOOD, 0, ["g0"]);
      await log(UNTAGGED, 0, ["forged"], null); // No tag at all.
      await log(UNTAGGED, 0, ["u0"]); // The real one, after the forged message.
      await log(FORGED, 0, ["forged"], otherKey);
      // A tagged message whose header was changed after tagging.
      {
        const subject = `lightcone.${dbKey(ALTERED)}.log`;
        const body = frame(0, ["a0", "a1"]);
        const h = headers();
        h.set("Lc-Kind", "log");
        h.set("Lc-Primary", "test");
        h.set("Lc-First-Tx", "0");
        h.set("Lc-End-Tx", "1");
        h.set("Lc-Prev-Seq", String(prevSeq.get(ALTERED)));
        h.set("Lc-Auth", await messageTag(key, subject, h, body));
        h.set("Lc-End-Tx", "2");
        await js.publish(subject, body, { headers: h });
      }
      // Two chunks, each rightly tagged, whose whole-message tag is another key's.
      {
        const subject = `lightcone.${dbKey(WHOLE)}.log`;
        const body = frame(0, ["w0"]);
        const parts = [body.subarray(0, 20), body.subarray(20)];
        const sha256 = await sha256Hex(body);
        const base: [string, string][] = [
          ["Lc-Kind", "log"],
          ["Lc-Primary", "test"],
          ["Lc-First-Tx", "0"],
          ["Lc-End-Tx", "1"],
        ];
        const whole = headers();
        for (const [name, value] of base) whole.set(name, value);
        const wholeTag = await messageTag(otherKey, subject, whole, body, true);
        for (let index = 0; index < 2; index++) {
          const h = headers();
          for (const [name, value] of base) h.set(name, value);
          for (const [name, value] of chunkHeaders(index, 2, body.length, sha256)) {
            h.set(name, value);
          }
          h.set("Lc-Auth-Body", wholeTag);
          h.set("Lc-Prev-Seq", String(prevSeq.get(WHOLE)));
          h.set("Lc-Auth", await messageTag(key, subject, h, parts[index]));
          prevSeq.set(WHOLE, (await js.publish(subject, parts[index], { headers: h })).seq);
        }
      }
      await log(GOOD, 1, ["g1"]);

      follower = await start();
      await waitUntil(() => target.localEnd(dbKey(GOOD)) === 2, "GOOD's messages to be applied");
      const records = (db: number) => target.databases.get(dbKey(db))?.records;
      const stoppedOf = (f: Follower) =>
        new Map(f.metrics().databases.map((d) => [parseInt(d.dbKey, 16), d.stopped]));
      let stopped = stoppedOf(follower);
      assertEquals(records(GOOD), ["g0", "g1"]);
      assertEquals(stopped.get(GOOD), undefined);
      assertMatch(stopped.get(UNTAGGED) ?? "", /without the Lc-Auth header \(unauthenticated\)/);
      assertEquals(records(UNTAGGED), []);
      assertMatch(stopped.get(FORGED) ?? "", /Lc-Auth tag does not match/);
      assertEquals(records(FORGED), []);
      assertMatch(stopped.get(ALTERED) ?? "", /Lc-Auth tag does not match/);
      assertEquals(records(ALTERED), []);
      assertMatch(
        stopped.get(WHOLE) ?? "",
        /chunked message \d+-\d+ refused: a message whose Lc-Auth-Body tag does not match/,
      );
      assertEquals(records(WHOLE), []);
      const marker = (db: number) => `${dataDir}/replication-stopped/${dbKey(db)}.json`;
      assertMatch(JSON.parse(await Deno.readTextFile(marker(UNTAGGED))).reason, /Lc-Auth/);

      // A restart: the stops stay (with their reasons) and GOOD goes on.
      await follower.close();
      follower = await start();
      stopped = stoppedOf(follower);
      assertMatch(stopped.get(UNTAGGED) ?? "", /without the Lc-Auth header/);
      assertMatch(stopped.get(FORGED) ?? "", /does not match/);
      await log(GOOD, 2, ["g2"]);
      await log(UNTAGGED, 1, ["u1"]);
      await waitUntil(() => target.localEnd(dbKey(GOOD)) === 3, "g2 to be applied");
      assertEquals(records(UNTAGGED), []);
      assertMatch(stoppedOf(follower).get(UNTAGGED) ?? "", /without the Lc-Auth header/);

      // The operator deletes UNTAGGED's marker: after a restart it is read again from after the
      // message that stopped it, so the real messages apply; FORGED stays stopped.
      await follower.close();
      await Deno.remove(marker(UNTAGGED));
      follower = await start();
      await waitUntil(() => target.localEnd(dbKey(UNTAGGED)) === 2, "UNTAGGED to catch up");
      assertEquals(records(UNTAGGED), ["u0", "u1"]);
      stopped = stoppedOf(follower);
      assertEquals(stopped.get(UNTAGGED), undefined);
      assertMatch(stopped.get(FORGED) ?? "", /does not match/);
      assertEquals(records(FORGED), []);
      assertEquals(records(GOOD), ["g0", "g1", "g2"]);

      // Replays: a captured, rightly tagged message published again verbatim names a previous
      // message that is not the last one taken of its database, and is refused.
      const replay = (db: number, message: Awaited<ReturnType<typeof send>>) =>
        js.publish(`lightcone.${dbKey(db)}.log`, message.body, { headers: message.headers });
      // A module update rolled back: v2 then v3 at the same offset, then v2 again.
      const v2 = await module(UNTAGGED, 2, "v2");
      await module(UNTAGGED, 2, "v3");
      await waitUntil(
        () => target.databases.get(dbKey(UNTAGGED))?.body.bundle === "v3",
        "UNTAGGED to run v3",
      );
      await replay(UNTAGGED, v2);
      // A deleted database brought back by its creation message.
      await send(GOOD, "delete", {}, new Uint8Array(0), key);
      await waitUntil(() => !target.databases.has(dbKey(GOOD)), "GOOD to be deleted");
      await replay(GOOD, created.get(GOOD)!);
      for (const db of [UNTAGGED, GOOD]) {
        await waitUntil(
          () => /captured message published again/.test(stoppedOf(follower!).get(db) ?? ""),
          `the replayed message of database ${db} to be refused`,
        );
      }
      assertEquals(target.databases.get(dbKey(UNTAGGED))?.body.bundle, "v3");
      assertEquals(target.databases.has(dbKey(GOOD)), false);

      // Forged messages for databases this replica never had: refused without a marker or a
      // metric each (anyone who may publish could otherwise fill the disk).
      const NEVER = 99;
      for (let i = 0; i < 3; i++) await log(NEVER + i, 0, ["forged"], null);
      await send(NEVER + 3, "module", { "Lc-At-Tx": "0" }, new Uint8Array(0), otherKey);
      await log(FORGED + 100, 0, ["f"], otherKey);
      await module(WHOLE + 100); // A real database after them: they were all handled.
      await waitUntil(() => target.databases.has(dbKey(WHOLE + 100)), "the new database");
      for (const db of [NEVER, NEVER + 1, NEVER + 2, NEVER + 3, FORGED + 100]) {
        assertEquals(await Deno.stat(marker(db)).then(() => true, () => false), false, `${db}`);
        assertEquals(stoppedOf(follower).has(db), false, `${db}`);
      }
    } finally {
      await follower?.close();
      await nc.close();
      await nats.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower: a takeover continues a database under its new primary; the old primary's " +
    "later messages, and a takeover behind or past the local log, stop it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dataDir = await Deno.makeTempDir();
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.server });
    const target = new RecordingTarget();
    let follower: Follower | undefined;
    try {
      await ensureStream(nc);
      const js = jetstream(nc);
      const key = (n: number) => n.toString(16).padStart(64, "0");
      const owner = "ab".repeat(32);
      const send = async (
        db: number,
        primary: string,
        kind: string,
        fields: Record<string, string>,
        body: Uint8Array,
      ) => {
        const h = headers();
        h.set("Lc-Kind", kind);
        h.set("Lc-Primary", primary);
        for (const [name, value] of Object.entries(fields)) h.set(name, value);
        await js.publish(`lightcone.${key(db)}.log`, body, { headers: h });
      };
      const module = (db: number) =>
        send(
          db,
          "old",
          "module",
          { "Lc-At-Tx": "0" },
          new TextEncoder().encode(JSON.stringify({ owner, names: [`db${db}`], bundle: "x" })),
        );
      const log = (db: number, primary: string, first: number, names: string[]) =>
        send(db, primary, "log", {
          "Lc-First-Tx": String(first),
          "Lc-End-Tx": String(first + names.length),
        }, frame(first, names));
      const takeover = (db: number, atTx: number) =>
        send(
          db,
          "new",
          "takeover",
          { "Lc-At-Tx": String(atTx) },
          new TextEncoder().encode(JSON.stringify({ previousPrimary: "old", promotedAt: "t" })),
        );
      const stoppedOf = () =>
        new Map(follower!.metrics().databases.map((d) => [parseInt(d.dbKey, 16), d.stopped]));
      const records = (db: number) => target.databases.get(key(db))?.records;

      const CONTINUED = 1, BEHIND = 2, PAST = 3, RESTARTED = 4;
      for (const db of [CONTINUED, BEHIND, PAST, RESTARTED]) {
        await module(db);
        await log(db, "old", 0, [`${db}a`, `${db}b`]);
      }
      // CONTINUED: the new primary goes on from the log's end; then the old one publishes.
      await takeover(CONTINUED, 2);
      await log(CONTINUED, "new", 2, ["1c"]);
      await log(CONTINUED, "old", 3, ["1old"]);
      // BEHIND: the new primary was promoted at transaction 1, this replica has 2.
      await takeover(BEHIND, 1);
      await log(BEHIND, "new", 1, ["2x"]);
      // PAST: the takeover names an offset this replica never reached.
      await takeover(PAST, 3);
      // RESTARTED: taken before a restart; the old primary publishes after it.
      await takeover(RESTARTED, 2);
      await log(RESTARTED, "new", 2, ["4c"]);

      follower = new Follower({ dataDir, server: nats.server, target });
      await follower.start();
      await waitUntil(() => records(RESTARTED)?.length === 3, "the new primary's commit");
      await waitUntil(() => stoppedOf().get(CONTINUED) !== undefined, "the old primary refused");
      assertEquals(records(CONTINUED), ["1a", "1b", "1c"]);
      assertMatch(
        stoppedOf().get(CONTINUED)!,
        /a log message of primary "old" after primary "new" took this database over/,
      );
      assertEquals(records(BEHIND), ["2a", "2b"]);
      assertMatch(stoppedOf().get(BEHIND)!, /holds transactions \[1, 2\).*the histories differ/);
      assertEquals(records(PAST), ["3a", "3b"]);
      assertMatch(stoppedOf().get(PAST)!, /gap in the replicated log: .*transaction 3/);
      assertEquals(stoppedOf().get(RESTARTED), undefined);

      // The new primary is remembered across a restart.
      await follower.close();
      follower = new Follower({ dataDir, server: nats.server, target });
      await follower.start();
      await log(RESTARTED, "old", 3, ["4old"]);
      await waitUntil(() => stoppedOf().get(RESTARTED) !== undefined, "the old primary refused");
      assertMatch(stoppedOf().get(RESTARTED)!, /after primary "new" took this database over/);
      assertEquals(records(RESTARTED), ["4a", "4b", "4c"]);
    } finally {
      await follower?.close();
      await nc.close();
      await nats.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
