import { deepStrictEqual, ok } from "node:assert/strict";
import { LimitExceededError } from "../lib/errors.ts";
import { seededRandom } from "../lib/random.ts";
import type { Random } from "../lib/random.ts";
import {
  type ClientMessage,
  clientMessageSize,
  COMMITTED_REDUCER_RESULT_BYTES,
  compressServerFrame,
  decodeClientFrame,
  decodeServerFrame,
  decodeServerPayload,
  encodeClientFrame,
  encodeClientMessage,
  encodeRowList,
  encodeServerFrame,
  encodeServerMessage,
  type QueryRows,
  type QuerySetUpdate,
  type RowList,
  ServerFrameWriter,
  type ServerMessage,
  serverMessageSize,
  type TransactionUpdate,
  WsDecodeError,
} from "./ws_v2.ts";

function assert(condition: unknown, message?: string): asserts condition {
  ok(condition, message);
}
function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  deepStrictEqual(actual, expected, message);
}
function checkError(error: unknown, type: typeof WsDecodeError, includes: string): void {
  assert(error instanceof type, `expected ${type.name}, got ${String(error)}`);
  assert(error.message.includes(includes), `"${error.message}" does not include "${includes}"`);
}
function assertThrows(fn: () => unknown, type: typeof WsDecodeError, includes: string): void {
  try {
    fn();
  } catch (error) {
    checkError(error, type, includes);
    return;
  }
  throw new Error("expected a throw");
}
async function assertRejects(
  fn: () => Promise<unknown>,
  type: typeof WsDecodeError,
  includes: string,
): Promise<void> {
  try {
    await fn();
  } catch (error) {
    checkError(error, type, includes);
    return;
  }
  throw new Error("expected a rejection");
}

// ---------------------------------------------------------------------------------------------
// The SDK's own codecs. The published package does not export ClientMessage/ServerMessage,
// so the test loads the bundled dist module from a temp copy with two tiny import stubs and
// one added export line. Nothing from the SDK is kept in our sources.

interface SdkWriter {
  getBuffer(): Uint8Array;
}
interface SdkReader {
  offset: number;
}
interface SdkType {
  serialize(writer: SdkWriter, value: unknown): void;
  deserialize(reader: SdkReader): unknown;
}
interface SdkCodecs {
  ClientMessage: SdkType;
  ServerMessage: SdkType;
  newWriter(): SdkWriter;
  newReader(bytes: Uint8Array): SdkReader;
}

async function loadSdkCodecs(): Promise<SdkCodecs> {
  const url = new URL(
    "../node_modules/.deno/spacetimedb@2.8.3/node_modules/spacetimedb/dist/sdk/index.mjs",
    import.meta.url,
  );
  let text = await Deno.readTextFile(url);
  const before = text;
  text = text
    .replace(
      /^import \{ fromByteArray \} from 'base64-js';$/m,
      "const fromByteArray = (b) => btoa(String.fromCharCode(...b));",
    )
    .replace(
      /^import \{ stringify as stringify\$1 \} from 'safe-stable-stringify';$/m,
      "const stringify$1 = (v) => String(v);",
    );
  assert(text !== before && !/^import /m.test(text), "SDK bundle imports changed");
  text += "\nexport { ServerMessage as __SM, ClientMessage as __CM, " +
    "BinaryReader as __BR, BinaryWriter as __BW };\n";
  const path = await Deno.makeTempFile({ suffix: ".mjs" });
  await Deno.writeTextFile(path, text);
  const mod = await import(new URL(`file://${path}`).href);
  await Deno.remove(path);
  return {
    ClientMessage: mod.__CM,
    ServerMessage: mod.__SM,
    newWriter: () => new mod.__BW(64),
    newReader: (bytes) => new mod.__BR(bytes),
  };
}

const sdk = await loadSdkCodecs();

function sdkEncode(type: SdkType, value: unknown): Uint8Array {
  const w = sdk.newWriter();
  type.serialize(w, value);
  return w.getBuffer().slice();
}

function sdkDecode(type: SdkType, bytes: Uint8Array): unknown {
  const r = sdk.newReader(bytes);
  const value = type.deserialize(r);
  assertEquals(r.offset, bytes.length, "the SDK must consume the whole message");
  return value;
}

// ---------------------------------------------------------------------------------------------
// Conversions between our shapes and the SDK's (object shapes of its generated types).

type Sdk = Record<string, unknown>;

function rowsOf(list: RowList): Uint8Array[] {
  assert(Array.isArray(list), "test messages use plain row arrays");
  return list.map((r) => r.slice());
}

function fixedSize(rows: Uint8Array[]): number {
  if (rows.length === 0 || rows[0].length === 0 || rows[0].length > 0xffff) return -1;
  return rows.every((r) => r.length === rows[0].length) ? rows[0].length : -1;
}

function concat(rows: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

function rowListToSdk(list: RowList): Sdk {
  const rows = rowsOf(list);
  const size = fixedSize(rows);
  let offset = 0n;
  const offsets = rows.map((r) => {
    const at = offset;
    offset += BigInt(r.length);
    return at;
  });
  return {
    sizeHint: size > 0 ? { tag: "FixedSize", value: size } : { tag: "RowOffsets", value: offsets },
    rowsData: concat(rows),
  };
}

function rowListFromSdk(list: Sdk): Uint8Array[] {
  const hint = list.sizeHint as { tag: string; value: number | bigint[] };
  const data = list.rowsData as Uint8Array;
  if (hint.tag === "FixedSize") {
    const size = hint.value as number;
    const out: Uint8Array[] = [];
    for (let at = 0; at < data.length; at += size) out.push(data.slice(at, at + size));
    return out;
  }
  const offsets = (hint.value as bigint[]).map(Number);
  return offsets.map((start, i) =>
    data.slice(start, i + 1 < offsets.length ? offsets[i + 1] : data.length)
  );
}

function queryRowsToSdk(q: QueryRows): Sdk {
  return { tables: q.tables.map((t) => ({ table: t.table, rows: rowListToSdk(t.rows) })) };
}
function queryRowsFromSdk(q: Sdk): QueryRows {
  return {
    tables: (q.tables as Sdk[]).map((t) => ({
      table: t.table as string,
      rows: rowListFromSdk(t.rows as Sdk),
    })),
  };
}

function txToSdk(u: TransactionUpdate): Sdk {
  return {
    querySets: u.querySets.map((s) => ({
      querySetId: { id: s.querySetId },
      tables: s.tables.map((t) => ({
        tableName: t.tableName,
        rows: t.rows.map((r) =>
          r.tag === "PersistentTable"
            ? {
              tag: "PersistentTable",
              value: { inserts: rowListToSdk(r.inserts), deletes: rowListToSdk(r.deletes) },
            }
            : { tag: "EventTable", value: { events: rowListToSdk(r.events) } }
        ),
      })),
    })),
  };
}
function txFromSdk(u: Sdk): TransactionUpdate {
  return {
    querySets: (u.querySets as Sdk[]).map((s): QuerySetUpdate => ({
      querySetId: (s.querySetId as Sdk).id as number,
      tables: (s.tables as Sdk[]).map((t) => ({
        tableName: t.tableName as string,
        rows: (t.rows as { tag: string; value: Sdk }[]).map((r) =>
          r.tag === "PersistentTable"
            ? {
              tag: "PersistentTable" as const,
              inserts: rowListFromSdk(r.value.inserts as Sdk),
              deletes: rowListFromSdk(r.value.deletes as Sdk),
            }
            : { tag: "EventTable" as const, events: rowListFromSdk(r.value.events as Sdk) }
        ),
      })),
    })),
  };
}

function serverToSdk(m: ServerMessage): Sdk {
  switch (m.tag) {
    case "InitialConnection":
      return {
        tag: m.tag,
        value: {
          identity: { __identity__: m.identity },
          connectionId: { __connection_id__: m.connectionId },
          token: m.token,
        },
      };
    case "SubscribeApplied":
      return {
        tag: m.tag,
        value: {
          requestId: m.requestId,
          querySetId: { id: m.querySetId },
          rows: queryRowsToSdk(m.rows),
        },
      };
    case "UnsubscribeApplied":
      return {
        tag: m.tag,
        value: {
          requestId: m.requestId,
          querySetId: { id: m.querySetId },
          rows: m.rows === undefined ? undefined : queryRowsToSdk(m.rows),
        },
      };
    case "SubscriptionError":
      return {
        tag: m.tag,
        value: { requestId: m.requestId, querySetId: { id: m.querySetId }, error: m.error },
      };
    case "TransactionUpdate":
      return { tag: m.tag, value: txToSdk(m) };
    case "OneOffQueryResult":
      return {
        tag: m.tag,
        value: {
          requestId: m.requestId,
          result: m.result.tag === "Ok" ? { ok: queryRowsToSdk(m.result.value) } : {
            err: m.result.value,
          },
        },
      };
    case "ReducerResult": {
      const r = m.result;
      const result = r.tag === "Ok"
        ? {
          tag: "Ok",
          value: { retValue: r.retValue, transactionUpdate: txToSdk(r.transactionUpdate) },
        }
        : r.tag === "OkEmpty"
        ? { tag: "OkEmpty", value: {} }
        : { tag: r.tag, value: r.value };
      return {
        tag: m.tag,
        value: {
          requestId: m.requestId,
          timestamp: { __timestamp_micros_since_unix_epoch__: m.timestampMicros },
          result,
        },
      };
    }
    case "ProcedureResult":
      return {
        tag: m.tag,
        value: {
          status: m.status,
          timestamp: { __timestamp_micros_since_unix_epoch__: m.timestampMicros },
          totalHostExecutionDuration: {
            __time_duration_micros__: m.totalHostExecutionDurationMicros,
          },
          requestId: m.requestId,
        },
      };
  }
}

function serverFromSdk(s: Sdk): ServerMessage {
  const v = s.value as Sdk;
  switch (s.tag) {
    case "InitialConnection":
      return {
        tag: "InitialConnection",
        identity: (v.identity as Sdk).__identity__ as bigint,
        connectionId: (v.connectionId as Sdk).__connection_id__ as bigint,
        token: v.token as string,
      };
    case "SubscribeApplied":
      return {
        tag: "SubscribeApplied",
        requestId: v.requestId as number,
        querySetId: (v.querySetId as Sdk).id as number,
        rows: queryRowsFromSdk(v.rows as Sdk),
      };
    case "UnsubscribeApplied":
      return {
        tag: "UnsubscribeApplied",
        requestId: v.requestId as number,
        querySetId: (v.querySetId as Sdk).id as number,
        rows: v.rows === undefined ? undefined : queryRowsFromSdk(v.rows as Sdk),
      };
    case "SubscriptionError":
      return {
        tag: "SubscriptionError",
        requestId: v.requestId as number | undefined,
        querySetId: (v.querySetId as Sdk).id as number,
        error: v.error as string,
      };
    case "TransactionUpdate":
      return { tag: "TransactionUpdate", ...txFromSdk(v) };
    case "OneOffQueryResult": {
      const result = v.result as Sdk;
      return {
        tag: "OneOffQueryResult",
        requestId: v.requestId as number,
        result: "ok" in result
          ? { tag: "Ok", value: queryRowsFromSdk(result.ok as Sdk) }
          : { tag: "Err", value: result.err as string },
      };
    }
    case "ReducerResult": {
      const r = v.result as { tag: string; value: unknown };
      const timestampMicros = (v.timestamp as Sdk).__timestamp_micros_since_unix_epoch__ as bigint;
      const result = r.tag === "Ok"
        ? {
          tag: "Ok" as const,
          retValue: (r.value as Sdk).retValue as Uint8Array,
          transactionUpdate: txFromSdk((r.value as Sdk).transactionUpdate as Sdk),
        }
        : r.tag === "OkEmpty"
        ? { tag: "OkEmpty" as const }
        : r.tag === "Err"
        ? { tag: "Err" as const, value: r.value as Uint8Array }
        : { tag: "InternalError" as const, value: r.value as string };
      return { tag: "ReducerResult", requestId: v.requestId as number, timestampMicros, result };
    }
    case "ProcedureResult":
      return {
        tag: "ProcedureResult",
        status: v.status as { tag: "Returned"; value: Uint8Array },
        timestampMicros: (v.timestamp as Sdk).__timestamp_micros_since_unix_epoch__ as bigint,
        totalHostExecutionDurationMicros: (v.totalHostExecutionDuration as Sdk)
          .__time_duration_micros__ as bigint,
        requestId: v.requestId as number,
      };
  }
  throw new Error(`unknown SDK tag ${String(s.tag)}`);
}

function clientToSdk(m: ClientMessage): Sdk {
  switch (m.tag) {
    case "Subscribe":
      return {
        tag: m.tag,
        value: {
          requestId: m.requestId,
          querySetId: { id: m.querySetId },
          queryStrings: m.queryStrings,
        },
      };
    case "Unsubscribe":
      return {
        tag: m.tag,
        value: {
          requestId: m.requestId,
          querySetId: { id: m.querySetId },
          flags: { tag: m.flags, value: {} },
        },
      };
    case "OneOffQuery":
      return { tag: m.tag, value: { requestId: m.requestId, queryString: m.queryString } };
    case "CallReducer":
      return {
        tag: m.tag,
        value: { requestId: m.requestId, flags: m.flags, reducer: m.reducer, args: m.args },
      };
    case "CallProcedure":
      return {
        tag: m.tag,
        value: { requestId: m.requestId, flags: m.flags, procedure: m.procedure, args: m.args },
      };
  }
}

function clientFromSdk(s: Sdk): ClientMessage {
  const v = s.value as Sdk;
  const requestId = v.requestId as number;
  switch (s.tag) {
    case "Subscribe":
      return {
        tag: "Subscribe",
        requestId,
        querySetId: (v.querySetId as Sdk).id as number,
        queryStrings: v.queryStrings as string[],
      };
    case "Unsubscribe":
      return {
        tag: "Unsubscribe",
        requestId,
        querySetId: (v.querySetId as Sdk).id as number,
        flags: (v.flags as Sdk).tag as "Default" | "SendDroppedRows",
      };
    case "OneOffQuery":
      return { tag: "OneOffQuery", requestId, queryString: v.queryString as string };
    case "CallReducer":
      return {
        tag: "CallReducer",
        requestId,
        flags: 0,
        reducer: v.reducer as string,
        args: v.args as Uint8Array,
      };
    case "CallProcedure":
      return {
        tag: "CallProcedure",
        requestId,
        flags: 0,
        procedure: v.procedure as string,
        args: v.args as Uint8Array,
      };
  }
  throw new Error(`unknown SDK tag ${String(s.tag)}`);
}

/** Our decoded messages hold views into the frame; compare them as plain copies. */
function normalize<T>(value: T): T {
  return structuredClone(value);
}

// ---------------------------------------------------------------------------------------------
// Random messages

function int(random: Random, maxExclusive: number): number {
  return Math.floor(random.next() * maxExclusive);
}
function u32(random: Random): number {
  return random.next() < 0.2 ? [0, 1, 0xffffffff][int(random, 3)] : int(random, 2 ** 32);
}
function bigUint(random: Random, bits: number): bigint {
  let v = 0n;
  for (let i = 0; i < bits; i += 32) v = (v << 32n) | BigInt(u32(random));
  return v & ((1n << BigInt(bits)) - 1n);
}
function i64(random: Random): bigint {
  return BigInt.asIntN(64, bigUint(random, 64));
}
const CHARS = ["a", "Z", "_", " ", "é", "ß", "€", "日", "😀", "'", "\0", "\u{10ffff}"];
function text(random: Random, maxLength = 12): string {
  let s = "";
  const n = int(random, maxLength);
  for (let i = 0; i < n; i++) s += CHARS[int(random, CHARS.length)];
  return s;
}
function bytes(random: Random, maxLength = 12): Uint8Array {
  return random.fill(new Uint8Array(int(random, maxLength)));
}
function rowList(random: Random): Uint8Array[] {
  const n = int(random, 5);
  const fixed = random.next() < 0.5 ? int(random, 10) : -1;
  const rows: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    rows.push(fixed >= 0 ? random.fill(new Uint8Array(fixed)) : bytes(random, 20));
  }
  return rows;
}
function queryRows(random: Random): QueryRows {
  const n = int(random, 4);
  const tables = [];
  for (let i = 0; i < n; i++) tables.push({ table: text(random), rows: rowList(random) });
  return { tables };
}
function txUpdate(random: Random): TransactionUpdate {
  const querySets: QuerySetUpdate[] = [];
  for (let i = int(random, 3); i > 0; i--) {
    const tables = [];
    for (let j = int(random, 3); j > 0; j--) {
      const rows = [];
      for (let k = int(random, 3); k > 0; k--) {
        rows.push(
          random.next() < 0.7
            ? {
              tag: "PersistentTable" as const,
              inserts: rowList(random),
              deletes: rowList(random),
            }
            : { tag: "EventTable" as const, events: rowList(random) },
        );
      }
      tables.push({ tableName: text(random), rows });
    }
    querySets.push({ querySetId: u32(random), tables });
  }
  return { querySets };
}

function randomServerMessage(random: Random, tag: number): ServerMessage {
  switch (tag) {
    case 0:
      return {
        tag: "InitialConnection",
        identity: bigUint(random, 256),
        connectionId: bigUint(random, 128),
        token: text(random, 40),
      };
    case 1:
      return {
        tag: "SubscribeApplied",
        requestId: u32(random),
        querySetId: u32(random),
        rows: queryRows(random),
      };
    case 2:
      return {
        tag: "UnsubscribeApplied",
        requestId: u32(random),
        querySetId: u32(random),
        rows: random.next() < 0.5 ? undefined : queryRows(random),
      };
    case 3:
      return {
        tag: "SubscriptionError",
        requestId: random.next() < 0.5 ? undefined : u32(random),
        querySetId: u32(random),
        error: text(random, 30),
      };
    case 4:
      return { tag: "TransactionUpdate", ...txUpdate(random) };
    case 5:
      return {
        tag: "OneOffQueryResult",
        requestId: u32(random),
        result: random.next() < 0.5
          ? { tag: "Ok", value: queryRows(random) }
          : { tag: "Err", value: text(random) },
      };
    case 6: {
      const which = int(random, 4);
      return {
        tag: "ReducerResult",
        requestId: u32(random),
        timestampMicros: i64(random),
        result: which === 0
          ? { tag: "Ok", retValue: bytes(random), transactionUpdate: txUpdate(random) }
          : which === 1
          ? { tag: "OkEmpty" }
          : which === 2
          ? { tag: "Err", value: bytes(random) }
          : { tag: "InternalError", value: text(random) },
      };
    }
    default:
      return {
        tag: "ProcedureResult",
        status: random.next() < 0.5
          ? { tag: "Returned", value: bytes(random) }
          : { tag: "InternalError", value: text(random) },
        timestampMicros: i64(random),
        totalHostExecutionDurationMicros: i64(random),
        requestId: u32(random),
      };
  }
}

function randomClientMessage(random: Random, tag: number): ClientMessage {
  switch (tag) {
    case 0:
      return {
        tag: "Subscribe",
        requestId: u32(random),
        querySetId: u32(random),
        queryStrings: Array.from({ length: int(random, 4) }, () => text(random, 30)),
      };
    case 1:
      return {
        tag: "Unsubscribe",
        requestId: u32(random),
        querySetId: u32(random),
        flags: random.next() < 0.5 ? "Default" : "SendDroppedRows",
      };
    case 2:
      return { tag: "OneOffQuery", requestId: u32(random), queryString: text(random, 30) };
    case 3:
      return {
        tag: "CallReducer",
        requestId: u32(random),
        flags: 0,
        reducer: text(random),
        args: bytes(random),
      };
    default:
      return {
        tag: "CallProcedure",
        requestId: u32(random),
        flags: 0,
        procedure: text(random),
        args: bytes(random),
      };
  }
}

function hex(text: string): Uint8Array {
  const clean = text.replace(/[^0-9a-f]/gi, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}
function ascii(text: string): string {
  return Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

// ---------------------------------------------------------------------------------------------
// Tests

const SEED = Number(Deno.env.get("SEED") ?? 20260801);

Deno.test("every server message kind encoded by us decodes identically with the SDK codec", () => {
  const random = seededRandom(SEED);
  for (let i = 0; i < 8 * 150; i++) {
    const message = randomServerMessage(random, i % 8);
    const ours = encodeServerMessage(message);
    const decodedBySdk = serverFromSdk(sdkDecode(sdk.ServerMessage, ours) as Sdk);
    assertEquals(normalize(decodedBySdk), normalize(message), `seed ${SEED}, case ${i}`);
  }
});

Deno.test("every server message kind encoded by the SDK is byte-identical to ours and decodes", () => {
  const random = seededRandom(SEED + 1);
  for (let i = 0; i < 8 * 150; i++) {
    const message = randomServerMessage(random, i % 8);
    // The SDK's Result serializer writes `err` with the `ok` type; it never sends server
    // messages, so OneOffQueryResult Err is only checked in the other direction.
    if (message.tag === "OneOffQueryResult" && message.result.tag === "Err") continue;
    const theirs = sdkEncode(sdk.ServerMessage, serverToSdk(message));
    assertEquals(theirs, encodeServerMessage(message), `seed ${SEED + 1}, case ${i}`);
    const [decoded] = decodeServerPayload(theirs, "v2");
    assertEquals(normalize(decoded), normalize(message));
  }
});

Deno.test("every client message kind round-trips through the SDK codec in both directions", () => {
  const random = seededRandom(SEED + 2);
  for (let i = 0; i < 5 * 200; i++) {
    const message = randomClientMessage(random, i % 5);
    const theirs = sdkEncode(sdk.ClientMessage, clientToSdk(message));
    const ours = encodeClientMessage(message);
    assertEquals(ours, theirs, `seed ${SEED + 2}, case ${i}`);
    assertEquals(normalize(decodeClientFrame(theirs, "v2")), [normalize(message)]);
    assertEquals(
      normalize(clientFromSdk(sdkDecode(sdk.ClientMessage, ours) as Sdk)),
      normalize(message),
    );
  }
});

Deno.test("the client byte examples of the spec decode as documented", () => {
  const subscribe = hex(`00 00000000 00000000 01000000 14000000 ${ascii("SELECT * FROM person")}`);
  assertEquals(decodeClientFrame(subscribe, "v2"), [
    { tag: "Subscribe", requestId: 0, querySetId: 0, queryStrings: ["SELECT * FROM person"] },
  ]);
  const call = hex(`03 01000000 00 03000000 ${ascii("add")} 07000000 03000000 ${ascii("Bob")}`);
  const [decodedCall] = decodeClientFrame(call, "v2");
  assertEquals(normalize(decodedCall), {
    tag: "CallReducer",
    requestId: 1,
    flags: 0,
    reducer: "add",
    args: hex(`03000000 ${ascii("Bob")}`),
  });
  const unsubscribe = hex("01 02000000 00000000 01");
  assertEquals(decodeClientFrame(unsubscribe, "v2"), [
    { tag: "Unsubscribe", requestId: 2, querySetId: 0, flags: "SendDroppedRows" },
  ]);
  assertEquals(encodeClientMessage(decodeClientFrame(unsubscribe, "v2")[0]), unsubscribe);
});

Deno.test("the server byte examples of the spec are produced exactly", () => {
  const identityLe = "5d262a478b8f95220f3068040c203e32ac0eedc698d84435e9a25303603500c2";
  const identity = BigInt("0x" + identityLe.match(/../g)!.reverse().join(""));
  assert(
    identity.toString(16).startsWith("c20035600353") && identity.toString(16).endsWith("a265d"),
  );
  const initial = encodeServerFrame([{
    tag: "InitialConnection",
    identity,
    connectionId: 0x000102030405060708090a0b0c0d0e0fn,
    token: "tok",
  }]);
  assertEquals(
    initial,
    hex(
      "00 00 5d262a478b8f95220f3068040c203e32ac0eedc698d84435e9a25303603500c2 " +
        `0f0e0d0c0b0a09080706050403020100 03000000 ${ascii("tok")}`,
    ),
  );
  const row = hex(`05000000 ${ascii("Alice")}`);
  const update = encodeServerFrame([{
    tag: "TransactionUpdate",
    querySets: [{
      querySetId: 0,
      tables: [{
        tableName: "person",
        rows: [{ tag: "PersistentTable", inserts: [row], deletes: [] }],
      }],
    }],
  }]);
  assertEquals(
    update,
    hex(
      `00 04 01000000 00000000 01000000 06000000 ${ascii("person")} 01000000 00 ` +
        `00 0900 09000000 05000000 ${ascii("Alice")} 01 00000000 00000000`,
    ),
  );
  const ok = encodeServerFrame([{
    tag: "ReducerResult",
    requestId: 1,
    timestampMicros: 1700000000000000n,
    result: { tag: "Ok", retValue: new Uint8Array(), transactionUpdate: { querySets: [] } },
  }]);
  assertEquals(ok, hex("00 06 01000000 00401e18240a0600 00 00000000 00000000"));
  const err = encodeServerFrame([{
    tag: "ReducerResult",
    requestId: 1,
    timestampMicros: 1700000000000000n,
    result: { tag: "Err", value: hex(`04000000 ${ascii("nope")}`) },
  }]);
  assertEquals(err, hex(`00 06 01000000 00401e18240a0600 02 08000000 04000000 ${ascii("nope")}`));
});

Deno.test("row lists use FixedSize only for equal non-zero lengths up to 65535", () => {
  const hintOf = (rows: Uint8Array[]) => {
    const bytes = encodeRowList(rows).bytes;
    return bytes[0] === 0 ? `fixed:${bytes[1] | (bytes[2] << 8)}` : "offsets";
  };
  assertEquals(hintOf([]), "offsets");
  assertEquals(hintOf([new Uint8Array(3), new Uint8Array(3)]), "fixed:3");
  assertEquals(hintOf([new Uint8Array(3), new Uint8Array(4)]), "offsets");
  assertEquals(hintOf([new Uint8Array(0), new Uint8Array(0)]), "offsets");
  assertEquals(hintOf([new Uint8Array(65535)]), "fixed:65535");
  assertEquals(hintOf([new Uint8Array(65536)]), "offsets");
});

Deno.test("a pre-encoded row list embeds the same bytes as the plain row array", () => {
  const rows = [hex("01020304"), hex("0506"), hex("")];
  const plain: ServerMessage = {
    tag: "SubscribeApplied",
    requestId: 7,
    querySetId: 3,
    rows: { tables: [{ table: "t", rows }] },
  };
  const shared: ServerMessage = {
    ...plain,
    rows: { tables: [{ table: "t", rows: encodeRowList(rows) }] },
  };
  assertEquals(encodeServerMessage(shared), encodeServerMessage(plain));
  const [decoded] = decodeServerPayload(encodeServerMessage(shared), "v2");
  assertEquals(normalize(decoded), normalize(plain));
});

Deno.test("v3 frames carry several messages back to back in both directions", async () => {
  const random = seededRandom(SEED + 3);
  const client = Array.from({ length: 5 }, (_, i) => randomClientMessage(random, i));
  assertEquals(normalize(decodeClientFrame(encodeClientFrame(client), "v3")), normalize(client));
  assertThrows(() => decodeClientFrame(encodeClientFrame(client), "v2"), WsDecodeError, "trailing");
  const server = Array.from({ length: 8 }, (_, i) => randomServerMessage(random, i));
  const frame = encodeServerFrame(server);
  assertEquals(frame[0], 0);
  assertEquals(normalize(await decodeServerFrame(frame, "v3")), normalize(server));
});

Deno.test("client frames reject empty input, bad tags, non-zero flags and truncation", () => {
  assertThrows(() => decodeClientFrame(new Uint8Array(), "v3"), WsDecodeError, "Empty");
  assertThrows(
    () => decodeClientFrame(hex("05"), "v2"),
    WsDecodeError,
    "Unknown ClientMessage tag 5",
  );
  assertThrows(
    () => decodeClientFrame(hex("01 02000000 00000000 02"), "v2"),
    WsDecodeError,
    "UnsubscribeFlags",
  );
  const call = encodeClientMessage({
    tag: "CallReducer",
    requestId: 1,
    flags: 0,
    reducer: "r",
    args: hex("00"),
  });
  const flagged = call.slice();
  flagged[5] = 1;
  assertThrows(() => decodeClientFrame(flagged, "v2"), WsDecodeError, "flags must be 0");
  for (let cut = 1; cut < call.length; cut++) {
    assertThrows(() => decodeClientFrame(call.subarray(0, cut), "v3"), WsDecodeError, "Truncated");
  }
  const twice = new Uint8Array([...call, ...call.subarray(0, 3)]);
  assertThrows(() => decodeClientFrame(twice, "v3"), WsDecodeError, "Truncated");
  const badUtf8 = hex("02 00000000 01000000 ff");
  assertThrows(() => decodeClientFrame(badUtf8, "v2"), WsDecodeError, "UTF-8");
});

Deno.test("gzip and brotli frames decompress to the same messages", async () => {
  const random = seededRandom(SEED + 4);
  const messages = Array.from({ length: 8 }, (_, i) => randomServerMessage(random, i));
  const frame = encodeServerFrame(messages);
  for (const [compression, tag] of [["Gzip", 2], ["Brotli", 1]] as const) {
    const compressed = await compressServerFrame(frame, compression);
    assertEquals(compressed[0], tag);
    assertEquals(normalize(await decodeServerFrame(compressed, "v3")), normalize(messages));
  }
  assertEquals(await compressServerFrame(frame, "None"), frame);
  await assertRejects(
    () => decodeServerFrame(hex("02 0102"), "v2"),
    WsDecodeError,
    "Decompression",
  );
  await assertRejects(
    () => decodeServerFrame(hex("03 00"), "v2"),
    WsDecodeError,
    "compression tag",
  );
});

Deno.test("the decoders never throw anything but WsDecodeError on 20,000 random and mutated frames", () => {
  const random = seededRandom(SEED + 5);
  const valid = [
    ...Array.from(
      { length: 50 },
      (_, i) => encodeClientMessage(randomClientMessage(random, i % 5)),
    ),
  ];
  const validServer = Array.from(
    { length: 50 },
    (_, i) => encodeServerMessage(randomServerMessage(random, i % 8)),
  );
  let decodedCount = 0;
  let rejectedCount = 0;
  const attempt = (fn: () => unknown, label: string) => {
    try {
      fn();
      decodedCount++;
    } catch (error) {
      if (!(error instanceof WsDecodeError)) {
        throw new Error(`seed ${SEED + 5}: ${label} threw ${String(error)}`);
      }
      rejectedCount++;
    }
  };
  for (let i = 0; i < 10_000; i++) {
    const source = i % 2 === 0
      ? valid[int(random, valid.length)]
      : validServer[int(random, validServer.length)];
    let frame: Uint8Array;
    const mode = int(random, 4);
    if (mode === 0) frame = bytes(random, 64);
    else if (mode === 1) frame = source.subarray(0, int(random, source.length + 1));
    else {
      frame = source.slice();
      for (let k = 1 + int(random, 4); k > 0 && frame.length > 0; k--) {
        frame[int(random, frame.length)] = mode === 2
          ? int(random, 256)
          : [0, 1, 255][int(random, 3)];
      }
    }
    attempt(() => decodeClientFrame(frame, i % 3 === 0 ? "v2" : "v3"), "client");
    attempt(() => decodeServerPayload(frame, i % 3 === 0 ? "v2" : "v3"), "server");
  }
  assert(
    decodedCount > 100 && rejectedCount > 100,
    `${decodedCount} decoded, ${rejectedCount} rejected`,
  );
});

Deno.test("ServerFrameWriter writes committed reducer results byte-identical to encodeServerFrame", () => {
  const other: ServerMessage = {
    tag: "SubscriptionError",
    requestId: 9,
    querySetId: 4,
    error: "no such table",
  };
  const committed = (requestId: number, timestampMicros: bigint): ServerMessage => ({
    tag: "ReducerResult",
    requestId,
    timestampMicros,
    result: { tag: "Ok", retValue: new Uint8Array(0), transactionUpdate: { querySets: [] } },
  });
  const expected = encodeServerFrame([
    committed(1, 1_700_000_000_000_000n),
    other,
    committed(0xffff_fffe, -5n),
  ]);
  assertEquals(serverMessageSize(committed(7, 0n)), COMMITTED_REDUCER_RESULT_BYTES);
  const writer = new ServerFrameWriter(
    2 * COMMITTED_REDUCER_RESULT_BYTES + serverMessageSize(other),
  );
  writer.committedReducerResult(1, 1_700_000_000_000_000n);
  writer.message(other);
  writer.committedReducerResult(0xffff_fffe, -5n);
  assertEquals(writer.finish(), expected);
});

Deno.test("ServerFrameWriter refuses to finish a frame whose announced size was wrong", () => {
  const writer = new ServerFrameWriter(COMMITTED_REDUCER_RESULT_BYTES + 1);
  writer.committedReducerResult(1, 2n);
  let thrown: unknown;
  try {
    writer.finish();
  } catch (error) {
    thrown = error;
  }
  assert(thrown instanceof RangeError, `expected a RangeError, got ${String(thrown)}`);
});

Deno.test("decodeClientFrame reports each message's encoded size", () => {
  const messages: ClientMessage[] = [
    { tag: "CallReducer", requestId: 1, flags: 0, reducer: "transfer", args: new Uint8Array(16) },
    { tag: "Subscribe", requestId: 2, querySetId: 3, queryStrings: ["SELECT * FROM t", "é"] },
    { tag: "CallProcedure", requestId: 4, flags: 0, procedure: "naïve", args: new Uint8Array(3) },
    { tag: "OneOffQuery", requestId: 5, queryString: "SELECT 1" },
    { tag: "Unsubscribe", requestId: 6, querySetId: 3, flags: "SendDroppedRows" },
  ];
  const sizes: number[] = [];
  const decoded = decodeClientFrame(encodeClientFrame(messages), "v3", sizes);
  assertEquals(decoded.length, messages.length);
  assertEquals(sizes, messages.map(clientMessageSize));
  assertEquals(sizes.reduce((a, b) => a + b, 0), encodeClientFrame(messages).length);
});

Deno.test("decoded call arguments are views of the frame, not copies", () => {
  const frame = encodeClientFrame([
    { tag: "CallReducer", requestId: 1, flags: 0, reducer: "r", args: new Uint8Array([7, 8, 9]) },
  ]);
  const [message] = decodeClientFrame(frame, "v3");
  assert(message.tag === "CallReducer");
  assertEquals([...message.args], [7, 8, 9]);
  assert(message.args.buffer === frame.buffer, "args shares the frame's buffer");
  frame[frame.length - 1] = 42;
  assertEquals(message.args[2], 42);
});

Deno.test("decodeClientFrame stops at messagesMax before decoding the next message", () => {
  const one: ClientMessage = { tag: "OneOffQuery", requestId: 1, queryString: "SELECT * FROM t" };
  const frame = encodeClientFrame([one, one, one]);
  assertEquals(decodeClientFrame(frame, "v3", undefined, 3).length, 3);
  let thrown: unknown;
  try {
    decodeClientFrame(frame, "v3", undefined, 2);
  } catch (error) {
    thrown = error;
  }
  ok(thrown instanceof LimitExceededError, String(thrown));
  ok(thrown.message.includes("messages in one frame is 3, over the limit of 2"), thrown.message);
});
