/**
 * The view and row-level security conformance cases (tests/conformance/views_rls.json) against
 * the real server: each case through `/sql`, a WebSocket OneOffQuery and a WebSocket Subscribe,
 * as the caller the case names; the three paths must agree with the recorded rows or error.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  compileProductDecoder,
  decodeRawModuleDef,
  decodeServerPayload,
  encodeClientMessage,
  resolveModuleDef,
  type ServerMessage,
} from "../../protocol/mod.ts";
import { describeFixtureModule } from "../support/describe_module.ts";
import {
  call,
  fixtureBundle,
  parseWithBigInts,
  publish,
  startTestServer,
} from "../support/server.ts";

interface Case {
  sql: string;
  as?: "A" | "B" | "C" | "O";
  rows?: unknown[];
  error?: string;
  via?: ("sql" | "oneoff" | "subscribe")[];
  needs?: "joins";
}

type Outcome = { rows: (number | string)[] } | { error: string };

const file = new URL("../conformance/views_rls.json", import.meta.url);
const { cases } = JSON.parse(await Deno.readTextFile(file)) as { cases: Case[] };

/** A v2 WebSocket client that answers one request at a time. */
async function wsClient(url: string, token: string) {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/views-rls/subscribe?compression=None&token=${token}`,
    ["v2.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  const waiting = new Map<number, (message: ServerMessage) => void>();
  let onUpdate: (message: Extract<ServerMessage, { tag: "TransactionUpdate" }>) => void = () => {};
  let connected!: () => void;
  const ready = new Promise<void>((resolve) => (connected = resolve));
  socket.onmessage = (event) => {
    const bytes = new Uint8Array(event.data as ArrayBuffer);
    for (const message of decodeServerPayload(bytes.subarray(1), "v2")) {
      if (message.tag === "InitialConnection") connected();
      if (message.tag === "TransactionUpdate") onUpdate(message);
      if ("requestId" in message && message.requestId !== undefined) {
        waiting.get(message.requestId)?.(message);
      }
    }
  };
  await ready;
  let nextId = 1;
  return {
    request(build: (requestId: number) => Parameters<typeof encodeClientMessage>[0]) {
      const requestId = nextId++;
      return new Promise<ServerMessage>((resolve) => {
        waiting.set(requestId, resolve);
        socket.send(encodeClientMessage(build(requestId)));
      });
    },
    onUpdate(listener: typeof onUpdate) {
      onUpdate = listener;
    },
    close: () => socket.close(),
  };
}

Deno.test({
  name:
    "the view and RLS conformance cases hold over /sql, OneOffQuery and Subscribe; RLS on an event table",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert(cases.length >= 30);
    const def = resolveModuleDef(decodeRawModuleDef(await describeFixtureModule("views_rls")));
    const firstColumn = new Map<string, (row: Uint8Array) => number>();
    for (const shape of [...def.tables, ...def.views]) {
      const decode = compileProductDecoder(shape.rowType, shape.typespace);
      firstColumn.set(shape.name, (row) => Number(decode(row)[0] as number | bigint));
    }
    const server = await startTestServer();
    const clients: { close(): void }[] = [];
    try {
      const owner = await publish(server.url, "views-rls", await fixtureBundle("views_rls"));
      const tokens: Record<string, string> = { O: owner.token };
      for (const who of ["A", "B", "C"]) {
        const response = await fetch(`${server.url}/v1/identity`, { method: "POST" });
        tokens[who] = (await response.json()).token;
      }
      const setup: [string, string, unknown[]][] = [
        ["A", "add_person", [1, "Alice", 30]],
        ["B", "add_person", [2, "Bob", 12]],
        ["C", "add_person", [3, "Cy", 45]],
        ["A", "add_pet", [10, 1, "cat"]],
        ["A", "add_pet", [11, 1, "dog"]],
        ["A", "add_secret", [1, "a1"]],
        ["A", "add_secret", [3, "a3"]],
        ["B", "add_secret", [2, "b2"]],
        ["A", "add_note", [1, false, "a-private"]],
        ["A", "add_note", [2, true, "a-shared"]],
        ["B", "add_note", [3, false, "b-private"]],
        ["A", "join_room", [1, 1]],
        ["B", "join_room", [2, 2]],
        ["A", "post", [1, 1, "hello 1"]],
        ["B", "post", [2, 2, "hello 2"]],
        ["A", "post", [3, 2, "hello 3"]],
      ];
      for (const [who, reducer, args] of setup) {
        const answer = await call(server.url, "views-rls", reducer, args, tokens[who]);
        assertEquals(answer.status, 200, answer.text);
      }
      const ws: Record<string, Awaited<ReturnType<typeof wsClient>>> = {};
      for (const who of ["A", "B", "C", "O"]) {
        ws[who] = await wsClient(server.url, tokens[who]);
        clients.push(ws[who]);
      }

      const decodeRows = (tables: { table: string; rows: unknown }[]): number[] => {
        const out: number[] = [];
        for (const { table, rows } of tables) {
          const column = firstColumn.get(table);
          assert(column, `rows for unknown table ${table}`);
          for (const row of rows as Uint8Array[]) out.push(column(row));
        }
        return out.sort((a, b) => a - b);
      };
      const viaSql = async (c: Case, who: string): Promise<Outcome> => {
        const response = await fetch(`${server.url}/v1/database/views-rls/sql`, {
          method: "POST",
          body: c.sql,
          headers: { authorization: `Bearer ${tokens[who]}` },
        });
        const text = await response.text();
        if (response.status !== 200) return { error: text };
        const [statement] = parseWithBigInts(text) as { rows: unknown[][] }[];
        const first = statement.rows.map((row) => row[0]);
        if (first.some((value) => typeof value === "string")) {
          return { rows: (first as string[]).sort() };
        }
        return { rows: first.map(Number).sort((a, b) => a - b) };
      };
      const viaOneOff = async (c: Case, who: string): Promise<Outcome> => {
        const answer = await ws[who].request((requestId) => ({
          tag: "OneOffQuery",
          requestId,
          queryString: c.sql,
        }));
        assert(answer.tag === "OneOffQueryResult", answer.tag);
        if (answer.result.tag === "Err") return { error: answer.result.value };
        return { rows: decodeRows(answer.result.value.tables) };
      };
      let querySetId = 1;
      const viaSubscribe = async (c: Case, who: string): Promise<Outcome> => {
        const id = querySetId++;
        const answer = await ws[who].request((requestId) => ({
          tag: "Subscribe",
          requestId,
          querySetId: id,
          queryStrings: [c.sql],
        }));
        if (answer.tag === "SubscriptionError") return { error: answer.error };
        assert(answer.tag === "SubscribeApplied", answer.tag);
        await ws[who].request((requestId) => ({
          tag: "Unsubscribe",
          requestId,
          querySetId: id,
          flags: "Default",
        }));
        return { rows: decodeRows(answer.rows.tables) };
      };

      // Join cases run once the server plans joins (another branch builds them).
      const joinProbe = await viaOneOff({
        sql: "SELECT pet.* FROM pet JOIN person ON pet.owner_id = person.id",
      }, "O");
      const joins = !("error" in joinProbe && joinProbe.error.includes("not implemented"));
      const failures: string[] = [];
      let skipped = 0;
      for (const c of cases) {
        if (c.needs === "joins" && !joins) {
          skipped++;
          continue;
        }
        const who = c.as ?? "A";
        const paths = {
          sql: viaSql,
          oneoff: viaOneOff,
          subscribe: viaSubscribe,
        } as const;
        for (const via of c.via ?? ["sql", "oneoff", "subscribe"] as const) {
          const outcome = await paths[via](c, who);
          const label = `${JSON.stringify(c.sql)} as ${who} via ${via}`;
          if (c.rows !== undefined) {
            if (JSON.stringify(outcome) !== JSON.stringify({ rows: c.rows })) {
              failures.push(
                `${label}: expected rows ${JSON.stringify(c.rows)}, got ${JSON.stringify(outcome)}`,
              );
            }
          } else if (!("error" in outcome) || !outcome.error.includes(c.error!)) {
            failures.push(
              `${label}: expected an error with "${c.error}", got ${JSON.stringify(outcome)}`,
            );
          }
        }
      }
      assertEquals(failures, []);
      if (skipped > 0) console.log(`${skipped} join cases skipped: joins are not planned yet`);

      // RLS on an event table: only the ping's target receives it.
      const pings: Record<string, string[]> = { A: [], B: [] };
      for (const who of ["A", "B"]) {
        const applied = await ws[who].request((requestId) => ({
          tag: "Subscribe",
          requestId,
          querySetId: 1000,
          queryStrings: ["SELECT * FROM ping"],
        }));
        assertEquals(applied.tag, "SubscribeApplied");
        ws[who].onUpdate((message) => {
          for (const set of message.querySets) {
            for (const table of set.tables) {
              for (const rows of table.rows) {
                if (rows.tag === "EventTable") {
                  pings[who].push(`${table.tableName} x${(rows.events as Uint8Array[]).length}`);
                }
              }
            }
          }
        });
      }
      const ping = await call(server.url, "views-rls", "ping_person", [2, "hi"], tokens.O);
      assertEquals(ping.status, 200, ping.text);
      // A later round trip through A and B: anything for them was sent before its answer.
      for (const who of ["A", "B"]) {
        await ws[who].request((requestId) => ({
          tag: "OneOffQuery",
          requestId,
          queryString: "SELECT * FROM pet",
        }));
      }
      assertEquals(pings, { A: [], B: ["ping x1"] });

      // Two rules on `note`: a new shared note of A's reaches A through both fragments (two row
      // lists, so the client's refcount holds two copies) and B through one.
      const noteRows: Record<string, number[]> = { A: [], B: [] };
      for (const who of ["A", "B"]) {
        const applied = await ws[who].request((requestId) => ({
          tag: "Subscribe",
          requestId,
          querySetId: 1001,
          queryStrings: ["SELECT * FROM note"],
        }));
        assertEquals(applied.tag, "SubscribeApplied");
        ws[who].onUpdate((message) => {
          for (const set of message.querySets) {
            for (const table of set.tables) {
              if (table.tableName !== "note") continue;
              for (const rows of table.rows) {
                if (rows.tag !== "PersistentTable") continue;
                const column = firstColumn.get("note")!;
                for (const row of rows.inserts as Uint8Array[]) noteRows[who].push(column(row));
              }
            }
          }
        });
      }
      const added = await call(server.url, "views-rls", "add_note", [4, true, "new"], tokens.B);
      assertEquals(added.status, 200, added.text);
      const own = await call(server.url, "views-rls", "add_note", [5, true, "mine"], tokens.A);
      assertEquals(own.status, 200, own.text);
      for (const who of ["A", "B"]) {
        await ws[who].request((requestId) => ({
          tag: "OneOffQuery",
          requestId,
          queryString: "SELECT * FROM pet",
        }));
      }
      assertEquals(noteRows, { A: [4, 5, 5], B: [4, 4, 5] });
    } finally {
      for (const client of clients) client.close();
      await server.close();
    }
  },
});
