/**
 * Differential test of subscriptions under row-level security rules that join tables: `message`
 * is visible through the caller's memberships (a join rule, with `member` restricted by its own
 * rule: recursive expansion) or when `body = 0` (a second rule: a row both admit counts twice).
 * Random transactions on both tables; each subscription's client cache (row -> count) is kept
 * from the index's deltas only, as the SDK does, and after every transaction must equal the
 * query re-run from scratch (and, for `SELECT * FROM message`, a hand-written oracle of the
 * rules). A seed is printed; `SEED=n` replays it, `RLS_DIFF_TXS=n` changes the length.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { executePlan } from "./execute.ts";
import { planSelect } from "./plan.ts";
import { compileWithRls, resolveRlsRules } from "./rls.ts";
import { SqlError } from "./sql_error.ts";
import { SubscriptionIndex } from "./subscriptions.ts";
import type { TxDelta } from "./delta.ts";
import {
  encodeRow,
  ID_A,
  ID_B,
  IDENTITY,
  makeSchema,
  MemoryState,
  rowKey,
} from "./_test_fixture.ts";

const U8 = { tag: "U8" } as const;
const U32 = { tag: "U32" } as const;
const MEMBER = makeSchema(1, "member", [["id", U32], ["room", U8], ["who", IDENTITY]], {
  indexes: [[0], [1]],
  primaryKey: true,
});
const MESSAGE = makeSchema(2, "message", [["id", U32], ["room", U8], ["body", U8]], {
  indexes: [[0], [1]],
  primaryKey: true,
});
const RULES = [
  "SELECT message.* FROM message JOIN member ON message.room = member.room WHERE member.who = :sender",
  "SELECT * FROM message WHERE body = 0",
  "SELECT * FROM member WHERE room < 3",
];
const QUERIES = [
  "SELECT * FROM message",
  "SELECT * FROM message WHERE body > 1",
  "SELECT * FROM message WHERE room = 1",
  "SELECT member.* FROM member JOIN message ON member.room = message.room",
  "SELECT message.* FROM message JOIN member ON message.room = member.room WHERE member.id = 1",
  "SELECT * FROM member",
];

interface Member {
  id: number;
  room: number;
  who: bigint;
}
interface Message {
  id: number;
  room: number;
  body: number;
}

const memberBytes = (m: Member) => encodeRow(MEMBER, [m.id, m.room, [m.who]]);
const messageBytes = (m: Message) => encodeRow(MESSAGE, [m.id, m.room, m.body]);

function bag(rows: Uint8Array[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of rows) out.set(rowKey(row), (out.get(rowKey(row)) ?? 0) + 1);
  return out;
}
const sorted = (m: Map<string, number>) => [...m].sort((a, b) => a[0] < b[0] ? -1 : 1);

Deno.test("RLS join-rule subscriptions: caches kept from deltas equal a from-scratch run", () => {
  const seed = Number(Deno.env.get("SEED") ?? Date.now() % 1_000_000);
  const txCount = Number(Deno.env.get("RLS_DIFF_TXS") ?? 2000);
  // deno-lint-ignore no-console
  console.log(`rls join differential seed ${seed} (rerun with SEED=${seed})`);
  const random = seededRandom(seed);
  const int = (n: number) => Math.floor(random.next() * n);
  const memory = new MemoryState([MEMBER, MESSAGE]);
  const rules = resolveRlsRules(RULES, memory);
  const index = new SubscriptionIndex(memory);
  const members = new Map<number, Member>();
  const messages = new Map<number, Message>();
  let refused = 0;
  let deltaRows = 0;

  interface Sub {
    sql: string;
    sender: bigint;
    queryIds: number[];
    cache: Map<string, number>;
  }
  const subs: Sub[] = [];
  for (const sender of [ID_A, ID_B]) {
    for (const sql of QUERIES) {
      const context = { sender, isOwner: false };
      let plans;
      try {
        plans = compileWithRls(sql, memory, context, rules);
      } catch (error) {
        ok(error instanceof SqlError && /require indexes/.test(error.message), String(error));
        refused++;
        plans = compileWithRls(
          sql,
          memory,
          context,
          rules,
          (c) => planSelect(c, { subscription: false }),
        );
      }
      ok(plans.length >= (sql === "SELECT * FROM member" ? 1 : 2), `${sql}: one plan per rule`);
      const registered = plans.map((plan) => index.registerPlan(plan));
      subs.push({
        sql,
        sender,
        queryIds: registered.map((r) => r.queryId),
        cache: bag(registered.flatMap((r) => r.initialRows)),
      });
    }
  }

  /** `SELECT * FROM message` for `sender`, straight from the rules. */
  const oracle = (sender: bigint): Map<string, number> => {
    const rows: Uint8Array[] = [];
    for (const m of messages.values()) {
      let n = m.body === 0 ? 1 : 0;
      for (const r of members.values()) {
        if (r.room === m.room && r.who === sender && r.room < 3) n++;
      }
      for (let i = 0; i < n; i++) rows.push(messageBytes(m));
    }
    return bag(rows);
  };

  for (let tx = 0; tx < txCount; tx++) {
    const delta: TxDelta = { tables: [] };
    const change = <T extends { id: number }>(
      rows: Map<number, T>,
      make: (id: number) => T,
      bytes: (row: T) => Uint8Array,
      tableId: number,
    ) => {
      const inserts: Uint8Array[] = [];
      const deletes: Uint8Array[] = [];
      const touched = new Set<number>();
      for (let k = int(3); k > 0; k--) {
        const id = int(10);
        if (touched.has(id)) continue;
        touched.add(id);
        const old = rows.get(id);
        if (old !== undefined) {
          deletes.push(bytes(old));
          rows.delete(id);
          if (random.next() < 0.5) {
            const fresh = make(id);
            if (rowKey(bytes(fresh)) === rowKey(bytes(old))) {
              deletes.pop();
              rows.set(id, old);
              continue;
            }
            rows.set(id, fresh);
            inserts.push(bytes(fresh));
          }
        } else {
          const fresh = make(id);
          rows.set(id, fresh);
          inserts.push(bytes(fresh));
        }
      }
      if (inserts.length + deletes.length > 0) delta.tables.push({ tableId, inserts, deletes });
    };
    change(
      members,
      (id) => ({ id, room: int(4), who: random.next() < 0.5 ? ID_A : ID_B }),
      memberBytes,
      MEMBER.tableId,
    );
    change(
      messages,
      (id) => ({ id, room: int(4), body: int(3) }),
      messageBytes,
      MESSAGE.tableId,
    );
    for (const t of delta.tables) {
      for (const r of t.deletes) memory.delete(t.tableId, r);
      for (const r of t.inserts) memory.insert(t.tableId, r);
    }
    const [out] = index.onCommits([delta]);
    for (const sub of subs) {
      const where = `seed ${seed} tx ${tx}: ${sub.sql} as ${sub.sender === ID_A ? "A" : "B"}`;
      for (const queryId of sub.queryIds) {
        const d = out.get(queryId) ?? { inserts: [], deletes: [] };
        deltaRows += d.inserts.length + d.deletes.length;
        for (const row of d.deletes) {
          const n = (sub.cache.get(rowKey(row)) ?? 0) - 1;
          ok(n >= 0, `delete of a row the cache does not hold; ${where}`);
          if (n === 0) sub.cache.delete(rowKey(row));
          else sub.cache.set(rowKey(row), n);
        }
        for (const row of d.inserts) {
          sub.cache.set(rowKey(row), (sub.cache.get(rowKey(row)) ?? 0) + 1);
        }
      }
      const fresh = bag(sub.queryIds.flatMap((id) => executePlan(index.plan(id)!, memory)));
      deepStrictEqual(sorted(sub.cache), sorted(fresh), `cache != from-scratch run; ${where}`);
      if (sub.sql === "SELECT * FROM message") {
        deepStrictEqual(sorted(sub.cache), sorted(oracle(sub.sender)), `cache != oracle; ${where}`);
      }
    }
  }
  // deno-lint-ignore no-console
  console.log(
    `${txCount} transactions, ${deltaRows} delta rows, ${refused} refused by the join rule`,
  );
  ok(deltaRows > txCount / 2, `only ${deltaRows} delta rows: the workload is too quiet`);
});
