/**
 * PostgreSQL frontend/backend protocol 3.0 framing (postgresql.org/docs/current/protocol-message-formats.html):
 * the startup packet (length, then a code), frontend messages (type byte, length including
 * itself, body) and the backend messages this server sends. Big-endian throughout; strings
 * are NUL-terminated UTF-8. No I/O here.
 */

/** Startup packet codes (the int32 after the length). */
export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** A frontend message: its type byte as a character and its body. */
export interface FrontendMessage {
  type: string;
  body: Uint8Array;
}

/** A protocol violation: the connection is closed after a FATAL 08P01. */
export class PgProtocolError extends Error {
  override name = "PgProtocolError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Accumulates bytes from the socket and cuts them into messages. `startup()` reads a packet
 * without a type byte; `next()` a typed message. Both return undefined until enough bytes
 * arrived, and throw PgProtocolError on a length outside [minimum, `bytesMax`].
 */
export class MessageReader {
  #buffer = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    if (this.#buffer.length === 0) {
      this.#buffer = chunk.slice();
      return;
    }
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    this.#buffer = joined;
  }

  startup(bytesMax: number): { code: number; body: Uint8Array } | undefined {
    if (this.#buffer.length < 4) return undefined;
    const length = view(this.#buffer).getInt32(0);
    if (length < 8 || length > bytesMax) {
      throw new PgProtocolError(`Invalid startup packet length ${length}`);
    }
    if (this.#buffer.length < length) return undefined;
    const code = view(this.#buffer).getInt32(4);
    const body = this.#buffer.slice(8, length);
    this.#buffer = this.#buffer.slice(length);
    return { code, body };
  }

  next(bytesMax: number): FrontendMessage | undefined {
    if (this.#buffer.length < 5) return undefined;
    const length = view(this.#buffer).getInt32(1);
    if (length < 4 || length > bytesMax) {
      throw new PgProtocolError(
        `Invalid length ${length} of a '${String.fromCharCode(this.#buffer[0])}' message`,
      );
    }
    if (this.#buffer.length < 1 + length) return undefined;
    const type = String.fromCharCode(this.#buffer[0]);
    const body = this.#buffer.slice(5, 1 + length);
    this.#buffer = this.#buffer.slice(1 + length);
    return { type, body };
  }
}

/** Reads the fields of a message body in order. */
export class BodyReader {
  #at = 0;
  constructor(readonly body: Uint8Array) {}

  string(): string {
    const end = this.body.indexOf(0, this.#at);
    if (end < 0) throw new PgProtocolError("Unterminated string in a message");
    let text: string;
    try {
      text = decoder.decode(this.body.subarray(this.#at, end));
    } catch {
      throw new PgProtocolError("A string in a message is not valid UTF-8");
    }
    this.#at = end + 1;
    return text;
  }

  int16(): number {
    this.#need(2);
    const value = view(this.body).getInt16(this.#at);
    this.#at += 2;
    return value;
  }

  int32(): number {
    this.#need(4);
    const value = view(this.body).getInt32(this.#at);
    this.#at += 4;
    return value;
  }

  byte(): string {
    this.#need(1);
    return String.fromCharCode(this.body[this.#at++]);
  }

  bytes(length: number): Uint8Array {
    this.#need(length);
    const out = this.body.subarray(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }

  get remaining(): number {
    return this.body.length - this.#at;
  }

  #need(bytes: number): void {
    if (this.#at + bytes > this.body.length) throw new PgProtocolError("Message ends early");
  }
}

/** The key/value pairs of a StartupMessage body. */
export function startupParameters(body: Uint8Array): Map<string, string> {
  const reader = new BodyReader(body);
  const parameters = new Map<string, string>();
  while (reader.remaining > 0) {
    const key = reader.string();
    if (key === "") break;
    parameters.set(key, reader.string());
  }
  return parameters;
}

/** Builds one backend message: type byte, int32 length, fields. */
export class MessageWriter {
  #chunks: Uint8Array[] = [];
  #length = 0;

  constructor(readonly type: string) {}

  int8(value: number): this {
    return this.#push(new Uint8Array([value & 0xff]));
  }

  int16(value: number): this {
    const out = new Uint8Array(2);
    view(out).setInt16(0, value);
    return this.#push(out);
  }

  int32(value: number): this {
    const out = new Uint8Array(4);
    view(out).setInt32(0, value);
    return this.#push(out);
  }

  string(text: string): this {
    this.#push(encoder.encode(text));
    return this.int8(0);
  }

  bytes(bytes: Uint8Array): this {
    return this.#push(bytes);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(1 + 4 + this.#length);
    out[0] = this.type.charCodeAt(0);
    view(out).setInt32(1, 4 + this.#length);
    let at = 5;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  #push(bytes: Uint8Array): this {
    this.#chunks.push(bytes);
    this.#length += bytes.length;
    return this;
  }
}

export function authenticationRequest(code: number): Uint8Array {
  return new MessageWriter("R").int32(code).finish();
}

export const AUTH_OK = 0;
export const AUTH_CLEARTEXT_PASSWORD = 3;

export function parameterStatus(name: string, value: string): Uint8Array {
  return new MessageWriter("S").string(name).string(value).finish();
}

export function backendKeyData(processId: number, secretKey: number): Uint8Array {
  return new MessageWriter("K").int32(processId).int32(secretKey).finish();
}

/** ReadyForQuery; always idle: there are no transaction blocks. */
export function readyForQuery(): Uint8Array {
  return new MessageWriter("Z").int8("I".charCodeAt(0)).finish();
}

export interface FieldDescription {
  name: string;
  typeOid: number;
  /** pg_type.typlen: bytes of a fixed-size type, -1 for variable size. */
  typeSize: number;
}

export function rowDescription(fields: readonly FieldDescription[]): Uint8Array {
  const writer = new MessageWriter("T").int16(fields.length);
  for (const field of fields) {
    writer.string(field.name).int32(0).int16(0).int32(field.typeOid).int16(field.typeSize)
      .int32(-1).int16(0);
  }
  return writer.finish();
}

/** DataRow with text-format values (null: SQL NULL). */
export function dataRow(values: readonly (string | null)[]): Uint8Array {
  const writer = new MessageWriter("D").int16(values.length);
  for (const value of values) {
    if (value === null) {
      writer.int32(-1);
      continue;
    }
    const bytes = encoder.encode(value);
    writer.int32(bytes.length).bytes(bytes);
  }
  return writer.finish();
}

export function commandComplete(tag: string): Uint8Array {
  return new MessageWriter("C").string(tag).finish();
}

export function emptyQueryResponse(): Uint8Array {
  return new MessageWriter("I").finish();
}

export function parseComplete(): Uint8Array {
  return new MessageWriter("1").finish();
}

export function bindComplete(): Uint8Array {
  return new MessageWriter("2").finish();
}

export function closeComplete(): Uint8Array {
  return new MessageWriter("3").finish();
}

export function noData(): Uint8Array {
  return new MessageWriter("n").finish();
}

export function portalSuspended(): Uint8Array {
  return new MessageWriter("s").finish();
}

export function parameterDescription(typeOids: readonly number[]): Uint8Array {
  const writer = new MessageWriter("t").int16(typeOids.length);
  for (const oid of typeOids) writer.int32(oid);
  return writer.finish();
}

/** NegotiateProtocolVersion: the newest minor version we speak and the options we ignored. */
export function negotiateProtocolVersion(
  minor: number,
  unrecognized: readonly string[],
): Uint8Array {
  const writer = new MessageWriter("v").int32(minor).int32(unrecognized.length);
  for (const option of unrecognized) writer.string(option);
  return writer.finish();
}

export type Severity = "ERROR" | "FATAL";

/** ErrorResponse with severity, SQLSTATE code and message. */
export function errorResponse(severity: Severity, code: string, message: string): Uint8Array {
  return new MessageWriter("E")
    .int8("S".charCodeAt(0)).string(severity)
    .int8("V".charCodeAt(0)).string(severity)
    .int8("C".charCodeAt(0)).string(code)
    .int8("M".charCodeAt(0)).string(message)
    .int8(0)
    .finish();
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
