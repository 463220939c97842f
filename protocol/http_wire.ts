/**
 * BSATN of the module library's `HttpRequest` and `HttpResponse` (module-abi.md §4.6), as
 * `procedure_http_request` and `__call_http_handler__` exchange them.
 *
 * HttpRequest  = { method: HttpMethod, headers: HttpHeaders, timeout: Option<TimeDuration>,
 *                  uri: String, version: HttpVersion }
 * HttpResponse = { headers: HttpHeaders, version: HttpVersion, code: u16 }
 * HttpHeaders  = { entries: Array<{ name: String, value: Array<u8> }> }
 * HttpMethod   = Get | Head | Post | Put | Delete | Connect | Options | Trace | Patch | Extension(String)
 * HttpVersion  = Http09 | Http10 | Http11 | Http2 | Http3
 */
import { BinaryReader, BinaryWriter } from "./bsatn.ts";

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
const METHOD_EXTENSION_TAG = 9;
const VERSION_COUNT = 5;
/** HttpVersion tag of Http11. */
export const HTTP_VERSION_11 = 2;

export type HttpHeaderList = [string, Uint8Array][];

export interface WireHttpRequest {
  method: string;
  headers: HttpHeaderList;
  /** The request's own timeout, if it set one. */
  timeoutMicros?: bigint;
  uri: string;
  version: number;
}

export interface WireHttpResponse {
  headers: HttpHeaderList;
  version: number;
  status: number;
}

/** Decodes a BSATN `HttpRequest`; throws BsatnDecodeError (or RangeError) on bad input. */
export function decodeHttpRequest(bytes: Uint8Array): WireHttpRequest {
  const reader = new BinaryReader(bytes);
  const methodTag = reader.readU8();
  let method: string;
  if (methodTag < METHODS.length) method = METHODS[methodTag];
  else if (methodTag === METHOD_EXTENSION_TAG) method = reader.readString();
  else throw new RangeError(`HttpMethod tag ${methodTag} is not valid`);
  const headers = readHeaders(reader);
  const optionTag = reader.readU8();
  let timeoutMicros: bigint | undefined;
  if (optionTag === 0) timeoutMicros = reader.readI64();
  else if (optionTag !== 1) throw new RangeError(`Option tag ${optionTag} is not valid`);
  const uri = reader.readString();
  const version = readVersion(reader);
  reader.expectEnd("HttpRequest");
  return { method, headers, timeoutMicros, uri, version };
}

export function encodeHttpRequest(request: WireHttpRequest): Uint8Array {
  const writer = new BinaryWriter(64 + request.uri.length);
  const upper = request.method.toUpperCase();
  const tag = METHODS.indexOf(upper);
  if (tag >= 0) writer.writeU8(tag);
  else {
    writer.writeU8(METHOD_EXTENSION_TAG);
    writer.writeString(request.method);
  }
  writeHeaders(writer, request.headers);
  if (request.timeoutMicros === undefined) writer.writeU8(1);
  else {
    writer.writeU8(0);
    writer.writeI64(request.timeoutMicros);
  }
  writer.writeString(request.uri);
  writer.writeU8(request.version);
  return writer.finish();
}

export function decodeHttpResponse(bytes: Uint8Array): WireHttpResponse {
  const reader = new BinaryReader(bytes);
  const headers = readHeaders(reader);
  const version = readVersion(reader);
  const status = reader.readU16();
  reader.expectEnd("HttpResponse");
  return { headers, version, status };
}

export function encodeHttpResponse(response: WireHttpResponse): Uint8Array {
  const writer = new BinaryWriter(64);
  writeHeaders(writer, response.headers);
  writer.writeU8(response.version);
  writer.writeU16(response.status);
  return writer.finish();
}

function readHeaders(reader: BinaryReader): HttpHeaderList {
  const count = reader.readU32();
  const headers: HttpHeaderList = [];
  for (let i = 0; i < count; i++) {
    const name = reader.readString();
    headers.push([name, reader.readBytes()]);
  }
  return headers;
}

function writeHeaders(writer: BinaryWriter, headers: HttpHeaderList): void {
  writer.writeU32(headers.length);
  for (const [name, value] of headers) {
    writer.writeString(name);
    writer.writeBytes(value);
  }
}

function readVersion(reader: BinaryReader): number {
  const version = reader.readU8();
  if (version >= VERSION_COUNT) throw new RangeError(`HttpVersion tag ${version} is not valid`);
  return version;
}
