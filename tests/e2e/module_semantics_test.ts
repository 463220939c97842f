/**
 * The kitchen-sink module (official spacetimedb module library) published to a
 * real server and driven over HTTP: every column type round-trips with extreme
 * values; every index kind answers; PK/unique/auto-inc, set semantics, rollback.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  call,
  type CallResponse,
  fixtureBundle,
  publish,
  startTestServer,
  type TestServer,
} from "../support/server.ts";

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;
const U256_MAX = (1n << 256n) - 1n;
const I64_MIN = -(1n << 63n);
const I128_MIN = -(1n << 127n);
const I256_MAX = (1n << 255n) - 1n;

function ok(response: CallResponse): CallResponse {
  assertEquals(response.status, 200, `expected 200, got ${response.status}: ${response.text}`);
  return response;
}

/** Procedures return untyped SATS-JSON: products are positional arrays. */
async function rows(
  server: TestServer,
  name: string,
  args: unknown[] = [],
): Promise<unknown[][]> {
  return ok(await call(server.url, "kitchen", name, args)).json as unknown[][];
}

Deno.test({
  name: "the kitchen-sink module behaves as on SpacetimeDB",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      const bundle = await fixtureBundle("kitchen");
      const { token: ownerToken } = await publish(server.url, "kitchen", bundle);

      await t.step("every column type round-trips with extreme values", async () => {
        const identityHex = "c2" + "ab".repeat(31);
        const maxRow = {
          id: 0,
          b: true,
          u8: 255,
          u16: 65535,
          u32: 4294967295,
          u64: U64_MAX,
          u128: U128_MAX,
          u256: U256_MAX,
          i8: -128,
          i16: -32768,
          i32: -2147483648,
          i64: I64_MIN,
          i128: I128_MIN,
          i256: I256_MAX,
          f32: 3.4028234663852886e38,
          f64: -1.7976931348623157e308,
          s: 'héllo \u{1F600} "quoted" \\ back',
          bytes: "00ff10",
          who: "0x" + identityHex,
          conn: "0x" + "11".repeat(16),
          at: { __timestamp_micros_since_unix_epoch__: 1_700_000_000_123_456 },
          dur: { __time_duration_micros__: -5 },
          uid: { __uuid__: "0x" + "ff".repeat(16) },
          maybe: { some: "present" },
          list: [0, 1, 65535],
          shape: { rect: { w: 3, h: 4 } },
        };
        const minRow = {
          ...maxRow,
          b: false,
          u8: 0,
          u16: 0,
          u32: 0,
          u64: 0,
          u128: 0,
          u256: 0,
          i8: 127,
          i16: 32767,
          i32: 2147483647,
          i64: (1n << 63n) - 1n,
          i128: (1n << 127n) - 1n,
          i256: "-0x8" + "0".repeat(63),
          f32: 0,
          f64: 0.1,
          s: "",
          bytes: "",
          maybe: { none: [] },
          list: [],
          shape: { empty: [] },
        };
        // Canonical column names are snake_case (`u8` becomes `u_8`), so pass rows positionally.
        ok(await call(server.url, "kitchen", "insert_all_types", [Object.values(maxRow)]));
        ok(await call(server.url, "kitchen", "insert_all_types", [Object.values(minRow)]));
        const all = await rows(server, "read_all_types");
        assertEquals(all.length, 2);
        const [first, second] = all;
        // id (auto-inc) then the columns in declaration order.
        assertEquals(first[0], 1);
        assertEquals(second[0], 2);
        assertEquals(first.slice(1, 8), [
          true,
          255,
          65535,
          4294967295,
          U64_MAX,
          U128_MAX,
          "0x" + "f".repeat(64),
        ]);
        assertEquals(first.slice(8, 14), [
          -128,
          -32768,
          -2147483648,
          I64_MIN,
          I128_MIN,
          "0x7" + "f".repeat(63),
        ]);
        // f32 values print in their shortest f32 form, as serde_json does.
        assertEquals(first[14], 3.4028235e38);
        assertEquals(first[15], -1.7976931348623157e308);
        assertEquals(first[16], maxRow.s);
        assertEquals(first[17], "00ff10");
        assertEquals(first[24], [0, 1, 65535]);
        assertEquals(second.slice(1, 8), [false, 0, 0, 0, 0, 0, "0x0"]);
        assertEquals(second[16], "");
        assertEquals(second[24], []);
        // Sums are [tag, payload]: the option's none is tag 1, the enum's empty is tag 2.
        assertEquals((second[23] as unknown[])[0], 1);
        assertEquals((second[25] as unknown[])[0], 2);
        assertEquals(first[25], [1, [3, 4]]);
      });

      await t.step("multi-column btree: range on the first column, prefix + range", async () => {
        for (
          const [x, y, label] of [[1, 1, "a"], [1, 5, "b"], [1, 9, "a"], [2, 2, "c"], [3, 3, "a"], [
            -4,
            0,
            "d",
          ]]
        ) {
          ok(await call(server.url, "kitchen", "add_point", [x, y, label]));
        }
        const inRange = await rows(server, "points_with_x", [-10, 1]);
        assertEquals(inRange.map((row) => [row[1], row[2]]), [[-4, 0], [1, 1], [1, 5], [1, 9]]);
        const prefixed = await rows(server, "points_at_x", [1, 1, 9]);
        assertEquals(prefixed.map((row) => row[2]), [5]);
        const hashed = await rows(server, "points_labelled", ["a"]);
        assertEquals(hashed.map((row) => [row[1], row[2]]).sort(), [[1, 1], [1, 9], [3, 3]]);
      });

      await t.step("delete by range removes exactly the rows in range", async () => {
        ok(await call(server.url, "kitchen", "delete_points_from", [2]));
        const left = await rows(server, "points_with_x", [-100, 100]);
        assertEquals(left.map((row) => row[1]), [-4, 1, 1, 1]);
      });

      await t.step("unique and primary keys; update through the primary key", async () => {
        ok(await call(server.url, "kitchen", "add_person", [1, "ann@x", 30, "ann"]));
        ok(await call(server.url, "kitchen", "add_person", [2, "bob@x", 40, "bob"]));
        const duplicatePk = await call(server.url, "kitchen", "add_person", [1, "other@x", 1, "x"]);
        assertEquals(duplicatePk.status, 530);
        assertEquals(duplicatePk.text, "The instance encountered a fatal error.");
        const duplicateEmail = await call(server.url, "kitchen", "add_person", [
          3,
          "ann@x",
          1,
          "x",
        ]);
        assertEquals(duplicateEmail.status, 530);
        ok(await call(server.url, "kitchen", "rename_person", [2, "robert"]));
        const missing = await call(server.url, "kitchen", "rename_person", [99, "nobody"]);
        assertEquals(missing.status, 530);
        assertEquals(missing.text, "no person 99");
        const people = await rows(server, "all_people");
        assertEquals(people, [[1, "ann@x", 30, "ann"], [2, "bob@x", 40, "robert"]]);
        const aged = await rows(server, "people_aged", [35, 45]);
        assertEquals(aged.map((row) => row[0]), [2]);
      });

      await t.step("an identical insert is a no-op", async () => {
        ok(await call(server.url, "kitchen", "insert_twice", [10, "twice@x"]));
        const people = await rows(server, "all_people");
        assertEquals(people.filter((row) => row[0] === 10).length, 1);
      });

      await t.step("a unique violation is catchable and the transaction goes on", async () => {
        ok(await call(server.url, "kitchen", "unique_violation_caught", [11, "ann@x", 12]));
        const people = await rows(server, "all_people");
        assertEquals(people.map((row) => row[0]), [1, 2, 10, 12]);
      });

      await t.step("SenderError and other throws roll back everything", async () => {
        ok(await call(server.url, "kitchen", "bump", ["c", 5, ""]));
        const before = ok(await call(server.url, "kitchen", "count_points", [])).json;
        const refused = await call(server.url, "kitchen", "bump", ["c", 100, "sender"]);
        assertEquals(refused.status, 530);
        assertEquals(refused.text, "refused to bump c");
        for (const fail of ["throw", "string"]) {
          const crashed = await call(server.url, "kitchen", "bump", ["c", 100, fail]);
          assertEquals(crashed.status, 530);
          assertEquals(crashed.text, "The instance encountered a fatal error.");
        }
        assertEquals(ok(await call(server.url, "kitchen", "counter_value", ["c"])).json, 5);
        assertEquals(ok(await call(server.url, "kitchen", "count_points", [])).json, before);
      });

      await t.step("deleting while iterating a scan sees a snapshot", async () => {
        ok(await call(server.url, "kitchen", "delete_all_points_while_iterating", []));
        assertEquals(ok(await call(server.url, "kitchen", "count_points", [])).json, 0);
      });

      await t.step("module logs reach the database log, errors with their text", async () => {
        ok(await call(server.url, "kitchen", "log_something", ["world"]));
        const owner = await fetch(`${server.url}/v1/database/kitchen/logs?num_lines=100`, {
          headers: { authorization: `Bearer ${ownerToken}` },
        });
        const text = await owner.text();
        assertEquals(owner.status, 200);
        const lines = text.trim().split("\n").map((line) => JSON.parse(line));
        const hello = lines.find((line) => line.message === "hello world");
        assert(hello, `no "hello world" line in ${text}`);
        assertEquals(hello.level, "Info");
        assertEquals(hello.function, "log_something");
        assert(lines.some((line) => line.level === "Warn" && line.message === "careful"));
        assert(
          lines.some((line) =>
            line.level === "Error" && /crashed while bumping c/.test(line.message)
          ),
        );
      });
    } finally {
      await server.close();
    }
  },
});
