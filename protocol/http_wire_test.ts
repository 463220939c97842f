import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  decodeHttpRequest,
  decodeHttpResponse,
  encodeHttpRequest,
  encodeHttpResponse,
  HTTP_VERSION_11,
} from "./http_wire.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("HttpRequest round-trips, with known methods, extensions and an optional timeout", () => {
  for (const method of ["GET", "POST", "PATCH", "PURGE"]) {
    for (const timeoutMicros of [undefined, 1_500_000n]) {
      const request = {
        method,
        headers: [["x-a", bytes("1")], ["accept", bytes("application/json")]] as [
          string,
          Uint8Array,
        ][],
        timeoutMicros,
        uri: "https://api.example.com/v1/x?q=1",
        version: HTTP_VERSION_11,
      };
      assertEquals(decodeHttpRequest(encodeHttpRequest(request)), request);
    }
  }
});

Deno.test("HttpRequest bytes follow the library's layout: tag, headers, option, uri, version", () => {
  const encoded = encodeHttpRequest({
    method: "GET",
    headers: [],
    uri: "u",
    version: HTTP_VERSION_11,
  });
  // Get = 0; 0 headers (u32); None = 1; "u" (u32 length + byte); Http11 = 2.
  assertEquals([...encoded], [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 117, 2]);
});

Deno.test("HttpResponse round-trips; malformed bytes are refused", () => {
  const response = {
    headers: [["content-type", bytes("text/plain")]] as [string, Uint8Array][],
    version: 2,
    status: 418,
  };
  assertEquals(decodeHttpResponse(encodeHttpResponse(response)), response);
  assertThrows(() => decodeHttpRequest(new Uint8Array([42])), /HttpMethod tag 42/);
  assertThrows(
    () => decodeHttpResponse(new Uint8Array([0, 0, 0, 0, 9, 200, 0])),
    /HttpVersion tag 9/,
  );
  assertThrows(() => decodeHttpResponse(new Uint8Array([0, 0, 0, 0, 2, 200, 0, 7])));
});
