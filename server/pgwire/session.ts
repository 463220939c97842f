/**
 * One PostgreSQL wire connection: startup (SSL and GSS encryption refused with 'N'),
 * cleartext-password authentication where the password is a SpacetimeDB token, then the
 * simple query protocol and the parts of the extended protocol clients use without
 * parameters (Parse/Bind/Describe/Execute/Close/Sync/Flush). Every statement runs through
 * the same path as `/sql` (server/sql_statement.ts). There are no transaction blocks: each
 * statement stands alone and ReadyForQuery is always idle.
 */
import type { Identity } from "../../auth/mod.ts";
import {
  PG_MESSAGE_BYTES_MAX,
  PG_OUTPUT_PENDING_BYTES_MAX,
  PG_PASSWORD_BYTES_MAX,
  PG_PORTALS_MAX,
  PG_SESSION_SQL_BYTES_MAX,
  PG_STARTUP_BYTES_MAX,
  PG_STATEMENTS_MAX,
  SQL_BYTES_MAX,
} from "../../lib/limits.ts";
import type { Database } from "../database_registry.ts";
import type { SqlStatementResult } from "../sql_statement.ts";
import {
  AUTH_CLEARTEXT_PASSWORD,
  AUTH_OK,
  authenticationRequest,
  backendKeyData,
  bindComplete,
  BodyReader,
  CANCEL_REQUEST_CODE,
  closeComplete,
  commandComplete,
  dataRow,
  emptyQueryResponse,
  errorResponse,
  type FieldDescription,
  type FrontendMessage,
  GSSENC_REQUEST_CODE,
  MessageReader,
  negotiateProtocolVersion,
  noData,
  parameterDescription,
  parameterStatus,
  parseComplete,
  PgProtocolError,
  portalSuspended,
  readyForQuery,
  rowDescription,
  SSL_REQUEST_CODE,
  startupParameters,
} from "./codec.ts";
import { type ColumnCodec, columnCodec } from "./pg_types.ts";

/** What a session needs from the server. */
export interface PgBackend {
  resolveDatabase(nameOrIdentity: string): Database | undefined;
  /** The identity a token stands for; throws with the reason when it is not valid. */
  authenticate(token: string): Promise<Identity>;
  runSql(database: Database, sql: string, caller: Identity): Promise<SqlStatementResult>;
  /** The `server_version` parameter. */
  serverVersion: string;
}

/** The socket side of a session (a Deno.Conn). */
export interface PgTransport {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
}

/** An error answered with an ErrorResponse; FATAL ones end the session. */
export class PgError extends Error {
  override name = "PgError";
  constructor(
    readonly severity: "ERROR" | "FATAL",
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Statement {
  sql: string;
  /** UTF-8 length of `sql`, counted against PG_SESSION_SQL_BYTES_MAX. */
  bytes: number;
}

interface Portal {
  sql: string;
  bytes: number;
  result?: Prepared;
  /** Rows already sent by Execute calls with a row limit. */
  sent: number;
}

interface Prepared {
  fields: FieldDescription[];
  codecs: ColumnCodec[];
  result: SqlStatementResult;
}

const OUTPUT_FLUSH_BYTES = 64 * 1024;
const READ_CHUNK_BYTES = 16 * 1024;

export class PgSession {
  readonly #reader = new MessageReader();
  readonly #chunk = new Uint8Array(READ_CHUNK_BYTES);
  #output: Uint8Array[] = [];
  #outputBytes = 0;
  #databaseName = "";
  #caller: Identity | undefined;
  readonly #statements = new Map<string, Statement>();
  readonly #portals = new Map<string, Portal>();
  /** After an error in the extended protocol, messages up to Sync are skipped. */
  #skipUntilSync = false;
  /** SQL text held by #statements and #portals (PG_SESSION_SQL_BYTES_MAX). */
  #sqlBytes = 0;
  /** Bytes handed to the socket and not yet written. */
  #writingBytes = 0;

  constructor(
    readonly backend: PgBackend,
    readonly transport: PgTransport,
    /** Called once authentication succeeded (the server stops its startup timer). */
    readonly onAuthenticated: () => void = () => {},
  ) {}

  /** Runs the session until the client terminates, the socket ends or a FATAL error. */
  async run(): Promise<void> {
    try {
      if (!(await this.#startup())) return;
      this.onAuthenticated();
      while (true) {
        const message = await this.#nextMessage();
        if (message === undefined || message.type === "X") break;
        await this.#handle(message);
        // A client that pipelines queries and does not read their answers is not read from
        // either until they are written (the socket pushes back on it).
        if (this.#outputBytes + this.#writingBytes > PG_OUTPUT_PENDING_BYTES_MAX) {
          await this.#flush();
        }
      }
    } catch (error) {
      if (error instanceof PgError) {
        this.#send(errorResponse(error.severity, error.code, error.message));
      } else if (error instanceof PgProtocolError) {
        this.#send(errorResponse("FATAL", "08P01", error.message));
      } else if (!isSocketGone(error)) {
        throw error;
      }
    } finally {
      await this.#flush().catch(() => {});
    }
  }

  // ------------------------------------------------------------------------------------
  // Startup and authentication

  async #startup(): Promise<boolean> {
    while (true) {
      const packet = await this.#nextStartup();
      if (packet === undefined) return false;
      if (packet.code === SSL_REQUEST_CODE || packet.code === GSSENC_REQUEST_CODE) {
        // No TLS or GSS encryption here: 'N' tells the client to go on in plain text.
        this.#send(new Uint8Array(["N".charCodeAt(0)]));
        await this.#flush();
        continue;
      }
      if (packet.code === CANCEL_REQUEST_CODE) return false;
      const major = packet.code >>> 16;
      const minor = packet.code & 0xffff;
      if (major !== 3) {
        throw new PgError(
          "FATAL",
          "0A000",
          `unsupported frontend protocol ${major}.${minor}: server supports 3.0`,
        );
      }
      const parameters = startupParameters(packet.body);
      const unrecognized = [...parameters.keys()].filter((key) => key.startsWith("_pq_."));
      if (minor > 0 || unrecognized.length > 0) {
        this.#send(negotiateProtocolVersion(0, unrecognized));
      }
      return await this.#authenticate(parameters);
    }
  }

  async #authenticate(parameters: Map<string, string>): Promise<boolean> {
    const database = parameters.get("database") ?? "";
    const user = parameters.get("user") ?? "";
    if (database === "") throw new PgError("FATAL", "08004", "Database name is required");
    this.#send(authenticationRequest(AUTH_CLEARTEXT_PASSWORD));
    const message = await this.#nextMessage(PG_PASSWORD_BYTES_MAX);
    if (message === undefined) return false;
    if (message.type !== "p") {
      throw new PgProtocolError(
        `Expected a password message, got '${message.type}'`,
      );
    }
    const password = new BodyReader(message.body).string();
    if (this.backend.resolveDatabase(database) === undefined) {
      throw new PgError("FATAL", "3D000", `database "${database}" does not exist`);
    }
    try {
      this.#caller = await this.backend.authenticate(password);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new PgError(
        "FATAL",
        "28P01",
        `password authentication failed for user "${user}": the password must be a SpacetimeDB token (${reason})`,
      );
    }
    this.#databaseName = database;
    this.#send(authenticationRequest(AUTH_OK));
    const status: [string, string][] = [
      ["server_version", this.backend.serverVersion],
      ["server_encoding", "UTF8"],
      ["client_encoding", "UTF8"],
      ["DateStyle", "ISO, MDY"],
      ["IntervalStyle", "postgres"],
      ["TimeZone", "UTC"],
      ["integer_datetimes", "on"],
      ["standard_conforming_strings", "on"],
      ["application_name", parameters.get("application_name") ?? ""],
    ];
    for (const [name, value] of status) this.#send(parameterStatus(name, value));
    const key = crypto.getRandomValues(new Int32Array(2));
    this.#send(backendKeyData(Math.abs(key[0]) || 1, key[1]));
    this.#send(readyForQuery());
    return true;
  }

  // ------------------------------------------------------------------------------------
  // Queries

  async #handle(message: FrontendMessage): Promise<void> {
    if (this.#skipUntilSync && message.type !== "S") return;
    try {
      switch (message.type) {
        case "Q":
          await this.#simpleQuery(new BodyReader(message.body).string());
          return;
        case "P":
          return this.#parse(new BodyReader(message.body));
        case "B":
          return this.#bind(new BodyReader(message.body));
        case "D":
          return await this.#describe(new BodyReader(message.body));
        case "E":
          return await this.#execute(new BodyReader(message.body));
        case "C":
          return this.#close(new BodyReader(message.body));
        case "S":
          this.#skipUntilSync = false;
          this.#sqlBytes -= this.#portals.get("")?.bytes ?? 0;
          this.#portals.delete("");
          this.#send(readyForQuery());
          return;
        case "H":
          await this.#flush();
          return;
        case "F":
          throw new PgError("ERROR", "0A000", "Function calls are not supported");
        case "d":
        case "c":
        case "f":
          throw new PgError("ERROR", "0A000", "COPY is not supported");
        default:
          throw new PgProtocolError(`Unknown message type '${message.type}'`);
      }
    } catch (error) {
      if (!(error instanceof PgError) || error.severity === "FATAL") throw error;
      this.#send(errorResponse("ERROR", error.code, error.message));
      if (message.type === "Q" || message.type === "F") this.#send(readyForQuery());
      else this.#skipUntilSync = true;
    }
  }

  async #simpleQuery(sql: string): Promise<void> {
    if (/^[\s;]*$/.test(sql)) {
      this.#send(emptyQueryResponse());
    } else {
      const prepared = await this.#run(sql);
      if (prepared.fields.length > 0) this.#send(rowDescription(prepared.fields));
      this.#sendRows(prepared, 0, prepared.result.rows.length);
      this.#send(commandComplete(commandTag(prepared.result)));
    }
    this.#send(readyForQuery());
  }

  #parse(reader: BodyReader): void {
    const name = reader.string();
    const sql = reader.string();
    if (name !== "" && this.#statements.has(name)) {
      throw new PgError("ERROR", "42P05", `prepared statement "${name}" already exists`);
    }
    const bytes = utf8Length(sql);
    if (bytes > SQL_BYTES_MAX) {
      throw new PgError(
        "ERROR",
        "54000",
        `SQL query exceeds maximum allowed length of ${SQL_BYTES_MAX} bytes`,
      );
    }
    if (!this.#statements.has(name) && this.#statements.size >= PG_STATEMENTS_MAX) {
      throw new PgError(
        "ERROR",
        "54000",
        `Too many prepared statements in this session (at most ${PG_STATEMENTS_MAX}): ` +
          `close some first`,
      );
    }
    this.#reserveSql(bytes - (this.#statements.get(name)?.bytes ?? 0));
    this.#statements.set(name, { sql, bytes });
    this.#send(parseComplete());
  }

  /**
   * Counts `bytes` more SQL text held by statements and portals (negative: released), refusing
   * growth past PG_SESSION_SQL_BYTES_MAX.
   */
  #reserveSql(bytes: number): void {
    if (bytes > 0 && this.#sqlBytes + bytes > PG_SESSION_SQL_BYTES_MAX) {
      throw new PgError(
        "ERROR",
        "54000",
        `The prepared statements and portals of this session hold over ` +
          `${PG_SESSION_SQL_BYTES_MAX} bytes of SQL: close some first`,
      );
    }
    this.#sqlBytes += bytes;
  }

  #bind(reader: BodyReader): void {
    const portalName = reader.string();
    const statementName = reader.string();
    const statement = this.#statement(statementName);
    const formatCount = reader.int16();
    for (let i = 0; i < formatCount; i++) reader.int16();
    const parameterCount = reader.int16();
    if (parameterCount > 0) {
      throw new PgError(
        "ERROR",
        "0A000",
        "Query parameters are not supported: SpacetimeDB SQL has no placeholders, write the values into the query",
      );
    }
    const resultFormatCount = reader.int16();
    for (let i = 0; i < resultFormatCount; i++) {
      if (reader.int16() !== 0) {
        throw new PgError("ERROR", "0A000", "Binary result format is not supported: use text");
      }
    }
    if (portalName !== "" && this.#portals.has(portalName)) {
      throw new PgError("ERROR", "42P03", `portal "${portalName}" already exists`);
    }
    if (!this.#portals.has(portalName) && this.#portals.size >= PG_PORTALS_MAX) {
      throw new PgError(
        "ERROR",
        "54000",
        `Too many open portals in this session (at most ${PG_PORTALS_MAX}): close some first`,
      );
    }
    this.#reserveSql(statement.bytes - (this.#portals.get(portalName)?.bytes ?? 0));
    this.#portals.set(portalName, { sql: statement.sql, bytes: statement.bytes, sent: 0 });
    this.#send(bindComplete());
  }

  async #describe(reader: BodyReader): Promise<void> {
    const kind = reader.byte();
    const name = reader.string();
    if (kind === "S") {
      const statement = this.#statement(name);
      this.#send(parameterDescription([]));
      // The columns are known once the statement ran: only a statement without side effects
      // is run for that; INSERT, UPDATE, DELETE and SET return no rows and run on Execute only.
      if (!readsOnly(statement.sql)) {
        this.#send(noData());
        return;
      }
      const prepared = await this.#run(statement.sql);
      this.#send(prepared.fields.length > 0 ? rowDescription(prepared.fields) : noData());
      return;
    }
    if (kind !== "P") throw new PgProtocolError(`Describe of unknown kind '${kind}'`);
    const portal = this.#portal(name);
    if (portal.result === undefined && !readsOnly(portal.sql)) {
      this.#send(noData());
      return;
    }
    portal.result ??= await this.#run(portal.sql);
    const fields = portal.result.fields;
    this.#send(fields.length > 0 ? rowDescription(fields) : noData());
  }

  async #execute(reader: BodyReader): Promise<void> {
    const portal = this.#portal(reader.string());
    const rowsMax = reader.int32();
    portal.result ??= await this.#run(portal.sql);
    const total = portal.result.result.rows.length;
    const end = rowsMax > 0 ? Math.min(total, portal.sent + rowsMax) : total;
    this.#sendRows(portal.result, portal.sent, end);
    portal.sent = end;
    if (end < total) this.#send(portalSuspended());
    else this.#send(commandComplete(commandTag(portal.result.result)));
  }

  #close(reader: BodyReader): void {
    const kind = reader.byte();
    const name = reader.string();
    const closed = kind === "S" ? this.#statements : kind === "P" ? this.#portals : undefined;
    if (closed !== undefined) {
      this.#sqlBytes -= closed.get(name)?.bytes ?? 0;
      closed.delete(name);
    } else throw new PgProtocolError(`Close of unknown kind '${kind}'`);
    this.#send(closeComplete());
  }

  #statement(name: string): Statement {
    const statement = this.#statements.get(name);
    if (!statement) {
      throw new PgError("ERROR", "26000", `prepared statement "${name}" does not exist`);
    }
    return statement;
  }

  #portal(name: string): Portal {
    const portal = this.#portals.get(name);
    if (!portal) throw new PgError("ERROR", "34000", `portal "${name}" does not exist`);
    return portal;
  }

  async #run(sql: string): Promise<Prepared> {
    const database = this.backend.resolveDatabase(this.#databaseName);
    if (!database) {
      throw new PgError("ERROR", "3D000", `database "${this.#databaseName}" does not exist`);
    }
    let result: SqlStatementResult;
    try {
      result = await this.backend.runSql(database, sql, this.#caller!);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new PgError("ERROR", sqlStateOf(message), message);
    }
    const codecs = result.schema.elements.map((element) =>
      columnCodec(element.algebraicType, result.typespace)
    );
    const fields = result.schema.elements.map((element, i) => ({
      name: element.name ?? `col_${i}`,
      typeOid: codecs[i].typeOid,
      typeSize: codecs[i].typeSize,
    }));
    return { fields, codecs, result };
  }

  #sendRows(prepared: Prepared, start: number, end: number): void {
    const { codecs, result } = prepared;
    for (let i = start; i < end; i++) {
      const row = result.rows[i];
      this.#send(dataRow(codecs.map((codec, column) => codec.text(row[column]))));
    }
  }

  // ------------------------------------------------------------------------------------
  // Socket

  async #nextStartup(): Promise<{ code: number; body: Uint8Array } | undefined> {
    while (true) {
      const packet = this.#reader.startup(PG_STARTUP_BYTES_MAX);
      if (packet !== undefined) return packet;
      if (!(await this.#fill())) return undefined;
    }
  }

  async #nextMessage(bytesMax = PG_MESSAGE_BYTES_MAX): Promise<FrontendMessage | undefined> {
    while (true) {
      const message = this.#reader.next(bytesMax);
      if (message !== undefined) return message;
      if (!(await this.#fill())) return undefined;
    }
  }

  /** Sends what is queued, then reads more bytes; false at end of stream. */
  async #fill(): Promise<boolean> {
    await this.#flush();
    const n = await this.transport.read(this.#chunk);
    if (n === null) return false;
    this.#reader.push(this.#chunk.subarray(0, n));
    return true;
  }

  #send(bytes: Uint8Array): void {
    this.#output.push(bytes);
    this.#outputBytes += bytes.length;
    if (this.#outputBytes >= OUTPUT_FLUSH_BYTES) {
      // Large results go out as they are produced; #flush runs again before the next read.
      void this.#flush().catch(() => {});
    }
  }

  #flushing: Promise<void> = Promise.resolve();

  #flush(): Promise<void> {
    if (this.#output.length === 0) return this.#flushing;
    const chunks = this.#output;
    const total = this.#outputBytes;
    this.#output = [];
    this.#outputBytes = 0;
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    this.#writingBytes += total;
    this.#flushing = this.#flushing.then(() => writeAll(this.transport, bytes)).finally(() => {
      this.#writingBytes -= total;
    });
    return this.#flushing;
  }
}

async function writeAll(transport: PgTransport, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await transport.write(bytes.subarray(at));
}

const encoder = new TextEncoder();

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/**
 * Whether a statement only reads (SELECT, SHOW: the /sql grammar has no comments and no
 * SELECT ... INTO), so Describe may run it to learn its columns. Anything else, an INSERT,
 * UPDATE, DELETE, SET or text that does not parse, runs on Execute only.
 */
function readsOnly(sql: string): boolean {
  return /^\s*(select|show)\b/i.test(sql);
}

function commandTag(result: SqlStatementResult): string {
  if (result.schema.elements.length > 0) return `SELECT ${result.rows.length}`;
  const parts: string[] = [];
  if (result.rowsInserted !== 0) parts.push(`inserted: ${result.rowsInserted}`);
  if (result.rowsDeleted !== 0) parts.push(`deleted: ${result.rowsDeleted}`);
  if (result.rowsUpdated !== 0) parts.push(`updated: ${result.rowsUpdated}`);
  parts.push(`server: ${(result.totalDurationMicros / 1000).toFixed(2)}ms`);
  return parts.join(", ");
}

/** The SQLSTATE for an engine error message (query/ reports errors as text). */
export function sqlStateOf(message: string): string {
  if (/^(sql parser error|Empty (SQL query|string))|Multiple SQL statements/.test(message)) {
    return "42601"; // syntax_error
  }
  if (/^no such table/.test(message)) return "42P01"; // undefined_table
  if (/is not in scope|does not have a field/.test(message)) return "42703"; // undefined_column
  if (/violates a unique constraint/.test(message)) return "23505"; // unique_violation
  if (/is not a valid system variable/.test(message)) return "42704"; // undefined_object
  if (/^Unsupported|not supported|not implemented/i.test(message)) return "0A000";
  if (/^(Unexpected type|Invalid binary operator|Cannot resolve type)/.test(message)) {
    return "42804"; // datatype_mismatch
  }
  if (/limit|too long|over the/i.test(message)) return "54000"; // program_limit_exceeded
  if (/not authorized|permission|private/i.test(message)) return "42501";
  return "42000"; // syntax_error_or_access_rule_violation
}

function isSocketGone(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected;
}
