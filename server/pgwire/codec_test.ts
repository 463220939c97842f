import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  BodyReader,
  dataRow,
  errorResponse,
  MessageReader,
  PgProtocolError,
  startupParameters,
} from "./codec.ts";

Deno.test("MessageReader cuts messages that arrive in pieces and together", () => {
  const reader = new MessageReader();
  const query = new Uint8Array([81, 0, 0, 0, 8, 120, 121, 122, 0]); // Q "xyz"
  const terminate = new Uint8Array([88, 0, 0, 0, 4]);
  reader.push(query.subarray(0, 3));
  assertEquals(reader.next(100), undefined);
  reader.push(new Uint8Array([...query.subarray(3), ...terminate]));
  const first = reader.next(100)!;
  assertEquals([first.type, new BodyReader(first.body).string()], ["Q", "xyz"]);
  assertEquals(reader.next(100), { type: "X", body: new Uint8Array(0) });
  assertEquals(reader.next(100), undefined);
});

Deno.test("MessageReader refuses lengths outside the bounds", () => {
  const reader = new MessageReader();
  reader.push(new Uint8Array([81, 0, 0, 1, 0]));
  assertThrows(() => reader.next(100), PgProtocolError);
  const startup = new MessageReader();
  startup.push(new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0]));
  assertThrows(() => startup.startup(100), PgProtocolError);
});

Deno.test("startupParameters reads key/value pairs up to the terminator", () => {
  const body = new TextEncoder().encode("user\0me\0database\0db\0\0");
  assertEquals(
    startupParameters(body),
    new Map([["user", "me"], ["database", "db"]]),
  );
});

Deno.test("backend messages are framed as type, length, fields", () => {
  assertEquals(
    [...dataRow(["a", null])],
    [68, 0, 0, 0, 15, 0, 2, 0, 0, 0, 1, 97, 255, 255, 255, 255],
  );
  const error = errorResponse("ERROR", "42601", "bad");
  assertEquals(String.fromCharCode(error[0]), "E");
  assertEquals(new DataView(error.buffer).getInt32(1), error.length - 1);
  assertEquals(
    new TextDecoder().decode(error.subarray(5)),
    "SERROR\0VERROR\0C42601\0Mbad\0\0",
  );
});
