/**
 * `subscribe DATABASE QUERY... [-n N] [-t SECONDS] [--print-initial-update]`: subscribes over
 * the WebSocket protocol (v2 BSATN, our own codec) and prints every transaction update as one
 * JSON line `{"table":{"deletes":[...],"inserts":[...]}}`, as SpacetimeDB's CLI does.
 */
import { ApiError } from "../api_client.ts";
import { expectPositionals, parseCount, parseVerbArgs } from "../args.ts";
import { authHints, type CliContext, connect, type Connection, projectConfig } from "../context.ts";
import { applyProjectDatabase } from "../project_config.ts";
import { CliError, UsageError } from "../errors.ts";
import { UNSTABLE_WARNING } from "./sql.ts";
import { escapeC1 } from "../sql_format.ts";
import {
  compileProductDecoder,
  decodeServerFrame,
  encodeClientMessage,
  findTable,
  type JsonOutput,
  type ModuleDef,
  type QueryRows,
  rawModuleDefFromJson,
  resolveModuleDef,
  type RowList,
  type ServerMessage,
  stringifyJson,
  type TableUpdate,
  typedValueToJson,
  type Value,
} from "../../protocol/mod.ts";

export const SUBSCRIBE_HELP = `Subscribe to SQL queries and print every update as a JSON line

Usage: subscribe [OPTIONS] <DATABASE> <QUERY>...

Arguments:
  <DATABASE>  Database name or identity
  <QUERY>...  One or more subscription queries: "SELECT * FROM person"

Options:
  -n, --num-updates <N>     Exit after N transaction updates
  -t, --timeout <SECONDS>   Exit after SECONDS (with -n: whichever comes first)
      --print-initial-update
                            Print the rows the queries match now, before the updates
      --format <FORMAT>     json (the only format this CLI prints)
  -s, --server <SERVER>     Server URL or saved nickname (default: local)
      --anonymous           Subscribe without your saved identity
  -h, --help                Print help

Each update is one line: {"<table>":{"deletes":[<row>...],"inserts":[<row>...]}} with rows
in SATS-JSON (objects keyed by column name). Exits 0 after N updates, at the timeout, on
Ctrl-C, or when the server closes the connection ("disconnected by server" on stderr);
exits 1 if a query is refused.

Examples:
  subscribe my-db "SELECT * FROM message" -n 1
  subscribe my-db "SELECT * FROM user" "SELECT * FROM message" -t 30 --print-initial-update`;

const FLAGS = {
  "num-updates": { type: "string", short: "n" },
  timeout: { type: "string", short: "t" },
  "print-initial-update": { type: "boolean" },
  format: { type: "string" },
  server: { type: "string", short: "s" },
  anonymous: { type: "boolean" },
} as const;

const PROTOCOL = "v2.bsatn.spacetimedb";

export async function runSubscribe(args: string[], ctx: CliContext): Promise<number> {
  const parsed = parseVerbArgs("subscribe", args, FLAGS);
  const project = applyProjectDatabase(
    await projectConfig(ctx),
    parsed.positionals,
    "leading",
  );
  const positionals = project.positionals;
  const flags = {
    ...parsed.flags,
    server: parsed.flags.server ?? project.server,
    anonymous: parsed.flags.anonymous ?? project.anonymous,
  };
  expectPositionals("subscribe", positionals, { required: ["DATABASE", "QUERY"], rest: true });
  const [database, ...queries] = positionals;
  const numUpdates = flags["num-updates"] === undefined
    ? undefined
    : parseCount("subscribe", "--num-updates <N>", flags["num-updates"]);
  const timeoutSeconds = flags.timeout === undefined
    ? undefined
    : parseCount("subscribe", "--timeout <SECONDS>", flags.timeout);
  if (flags.format !== undefined && flags.format !== "json") {
    throw new UsageError(
      `invalid value '${flags.format}' for '--format': this CLI prints subscription updates as json only`,
      "subscribe",
    );
  }
  ctx.io.err(`${UNSTABLE_WARNING}\n\n`);
  const connection = await connect(ctx, { server: flags.server, anonymous: flags.anonymous });
  const module = await fetchModule(connection, database);
  const printer = new UpdatePrinter(module);

  const url = connection.client.websocketUrl(
    `/v1/database/${encodeURIComponent(database)}/subscribe?compression=None`,
  );
  const session = new Session(url, connection.client.authHeaders());
  const stop = new AbortController();
  const timer: ReturnType<typeof setTimeout> | undefined = timeoutSeconds === undefined
    ? undefined
    : setTimeout(() => stop.abort("timeout"), timeoutSeconds * 1000);
  const onInterrupt = () => stop.abort("interrupt");
  ctx.io.interrupt.addEventListener("abort", onInterrupt, { once: true });
  try {
    await session.opened(stop.signal);
    session.send(encodeClientMessage({
      tag: "Subscribe",
      requestId: 1,
      querySetId: 1,
      queryStrings: queries,
    }));
    let applied = false;
    let received = 0;
    while (numUpdates === undefined || received < numUpdates) {
      const message = await session.next(stop.signal);
      if (message === "stopped") return 0;
      if (message === "closed") {
        ctx.io.err("disconnected by server\n");
        return 0;
      }
      switch (message.tag) {
        case "SubscribeApplied":
          if (applied) {
            throw new CliError("protocol error: received a second initial subscription update");
          }
          applied = true;
          if (flags["print-initial-update"]) {
            ctx.io.out(escapeC1(printer.initial(message.rows)) + "\n");
          }
          break;
        case "SubscriptionError":
          throw new CliError(message.error);
        case "TransactionUpdate": {
          if (!applied) {
            throw new CliError(
              "protocol error: received transaction update before initial subscription update",
            );
          }
          const tables = message.querySets.flatMap((set) => set.tables);
          ctx.io.out(escapeC1(printer.update(tables)) + "\n");
          received++;
          break;
        }
        default:
          break; // InitialConnection and answers to requests this command never makes
      }
    }
    return 0;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    ctx.io.interrupt.removeEventListener("abort", onInterrupt);
    await session.close();
  }
}

async function fetchModule(connection: Connection, database: string): Promise<ModuleDef> {
  let json: unknown;
  try {
    json = await connection.client.schema(database);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 404) throw new CliError(`failed to find database \`${database}\`.`);
    throw new CliError(
      `Fetching the schema failed: ${error.message} (HTTP ${error.status})`,
      authHints(error, connection),
    );
  }
  try {
    return resolveModuleDef(rawModuleDefFromJson(json));
  } catch (error) {
    throw new CliError(
      `The server sent a schema this CLI cannot read: ${(error as Error).message}`,
    );
  }
}

/** Turns BSATN row lists into `{"table":{"deletes":[...],"inserts":[...]}}` JSON text. */
class UpdatePrinter {
  #decoders = new Map<string, (row: Uint8Array) => JsonOutput>();
  constructor(private module: ModuleDef) {}

  initial(rows: QueryRows): string {
    const out = new Map<string, { deletes: JsonOutput[]; inserts: JsonOutput[] }>();
    for (const table of rows.tables) {
      const entry = entryFor(out, table.table);
      for (const row of rowsOf(table.rows)) entry.inserts.push(this.#row(table.table, row));
    }
    return stringifyJson(Object.fromEntries(out));
  }

  update(tables: TableUpdate[]): string {
    const out = new Map<string, { deletes: JsonOutput[]; inserts: JsonOutput[] }>();
    for (const table of tables) {
      const entry = entryFor(out, table.tableName);
      for (const part of table.rows) {
        if (part.tag === "PersistentTable") {
          for (const row of rowsOf(part.deletes)) {
            entry.deletes.push(this.#row(table.tableName, row));
          }
          for (const row of rowsOf(part.inserts)) {
            entry.inserts.push(this.#row(table.tableName, row));
          }
        } else {
          for (const row of rowsOf(part.events)) {
            entry.inserts.push(this.#row(table.tableName, row));
          }
        }
      }
    }
    return stringifyJson(Object.fromEntries(out));
  }

  #row(tableName: string, bytes: Uint8Array): JsonOutput {
    let decode = this.#decoders.get(tableName);
    if (!decode) {
      const table = findTable(this.module, tableName);
      if (table) {
        const decodeProduct = compileProductDecoder(table.rowType, table.typespace);
        const rowType = { tag: "Product" as const, value: table.rowType };
        decode = (row) => typedValueToJson(rowType, decodeProduct(row) as Value[], table.typespace);
      } else {
        // Not a table of the schema (e.g. a view): show the row's BSATN as hex.
        decode = (row) => `0x${Array.from(row, (b) => b.toString(16).padStart(2, "0")).join("")}`;
      }
      this.#decoders.set(tableName, decode);
    }
    return decode(bytes);
  }
}

function entryFor(
  out: Map<string, { deletes: JsonOutput[]; inserts: JsonOutput[] }>,
  table: string,
): { deletes: JsonOutput[]; inserts: JsonOutput[] } {
  let entry = out.get(table);
  if (!entry) out.set(table, entry = { deletes: [], inserts: [] });
  return entry;
}

function rowsOf(list: RowList): readonly Uint8Array[] {
  if (Array.isArray(list)) return list;
  throw new Error("an encoded row list was not decoded");
}

/** A WebSocket as a queue of decoded server messages. */
class Session {
  #socket: WebSocket;
  #queue: (ServerMessage | "closed")[] = [];
  #wake: (() => void) | undefined;
  #open: Promise<void>;
  #failure: Error | undefined;
  #decoding: Promise<void> = Promise.resolve();

  constructor(url: string, headers: Record<string, string>) {
    // Deno's WebSocket takes request headers (the token) in its options object.
    const options = { protocols: [PROTOCOL], headers } as unknown as string[];
    this.#socket = new WebSocket(url, options);
    this.#socket.binaryType = "arraybuffer";
    this.#open = new Promise((resolve, reject) => {
      this.#socket.addEventListener("open", () => resolve(), { once: true });
      this.#socket.addEventListener("error", (event) => {
        const message = (event as ErrorEvent).message ?? "connection failed";
        reject(new CliError(`Cannot subscribe at ${url}: ${message}`));
      }, { once: true });
    });
    this.#open.catch(() => {});
    this.#socket.addEventListener("message", (event) => {
      const data = event.data;
      if (!(data instanceof ArrayBuffer)) {
        this.#fail(new CliError("protocol error: the server sent a text frame"));
        return;
      }
      // Decoding may be asynchronous (decompression): keep the order of frames.
      this.#decoding = this.#decoding.then(async () => {
        try {
          const messages = await decodeServerFrame(new Uint8Array(data), "v2");
          this.#queue.push(...messages);
        } catch (error) {
          this.#fail(new CliError(`protocol error: ${(error as Error).message}`));
        }
        this.#wake?.();
      });
    });
    this.#socket.addEventListener("close", () => {
      this.#decoding = this.#decoding.then(() => {
        this.#queue.push("closed");
        this.#wake?.();
      });
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#wake?.();
  }

  async opened(signal: AbortSignal): Promise<void> {
    await raceAbort(this.#open, signal);
  }

  send(bytes: Uint8Array): void {
    this.#socket.send(bytes);
  }

  /** The next message, "closed" when the server closed, "stopped" when `signal` aborted. */
  async next(signal: AbortSignal): Promise<ServerMessage | "closed" | "stopped"> {
    while (true) {
      if (this.#failure) throw this.#failure;
      if (signal.aborted) return "stopped";
      const message = this.#queue.shift();
      if (message !== undefined) return message;
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#wake = undefined;
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  async close(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) =>
      this.#socket.addEventListener("close", () => resolve(), { once: true })
    );
    try {
      this.#socket.close(1000);
    } catch { /* already closing */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const giveUp = new Promise<void>((resolve) => timer = setTimeout(resolve, 1000));
    await Promise.race([closed, giveUp]);
    clearTimeout(timer);
  }
}

async function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let onAbort: () => void = () => {};
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
