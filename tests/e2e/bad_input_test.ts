/**
 * Bad input gets a clear HTTP error and harms nothing: broken bundles, bad
 * arguments, unknown names, oversized bodies. After each, a healthy database on
 * the same server still answers.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { HTTP_BODY_BYTES_MAX } from "../../lib/limits.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const HOOKS_PREAMBLE = `import { moduleHooks } from "spacetime:sys@2.0";\n`;

/** A hand-written module whose hooks object is built by `body`. */
function handWritten(body: string): string {
  return `${HOOKS_PREAMBLE}export default { [moduleHooks]() { ${body} } };\n`;
}

Deno.test({
  name: "bad modules and bad calls get clear errors and leave the server healthy",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    const put = (name: string, body: BodyInit) =>
      fetch(`${server.url}/v1/database/${name}?host_type=Js`, { method: "PUT", body });
    const healthy = async () => {
      const response = await call(server.url, "bank", "transfer", [1, 2, 5]);
      assertEquals(response.status, 200, response.text);
    };
    try {
      await publish(server.url, "bank", await fixtureBundle("bank"));
      assertEquals((await call(server.url, "bank", "seed", [0, 10, 100])).status, 200);

      const badModules: [string, BodyInit, RegExp][] = [
        ["not-js", "this is not javascript {{{", /not valid JavaScript/],
        ["not-utf8", new Uint8Array([0xff, 0xfe, 0x00, 0x80]), /not valid UTF-8/],
        ["empty", "", /body is empty/],
        ["no-sys", "export default 1;", /does not import spacetime:sys/],
        [
          "future-sys",
          `import { x } from "spacetime:sys@9.9";\nexport default x;`,
          /requires sys module v9\.9, but that version is not supported/,
        ],
        [
          "unknown-syscall",
          `import { moduleHooks, datastore_future_call } from "spacetime:sys@2.0";\n` +
          `export default { [moduleHooks]() { return {}; } };\nexport const f = datastore_future_call;`,
          /The requested module 'spacetime:sys@2\.0' does not provide an export named 'datastore_future_call'$/,
        ],
        [
          "node-import",
          `${HOOKS_PREAMBLE}import fs from "node:fs";\nexport default fs;`,
          /Could not find module "node:fs"/,
        ],
        [
          "no-default",
          `${HOOKS_PREAMBLE}export const a = 1;`,
          /must export schema as default export/,
        ],
        [
          "not-schema",
          `${HOOKS_PREAMBLE}export default {};`,
          /default export is not a Schema object/,
        ],
        [
          "top-level-throw",
          `${HOOKS_PREAMBLE}throw new Error("kaboom at load");`,
          /kaboom at load/,
        ],
        [
          "describe-throws",
          handWritten(`return {
            __describe_module__() { throw new Error("describe exploded"); },
            __get_error_constructor__() { return Error; }, get __sender_error_class__() { return Error; },
            __call_reducer__() {}, __call_view__() {}, __call_view_anon__() {}, __call_procedure__() {},
          };`),
          /describe exploded/,
        ],
        [
          "describe-garbage",
          handWritten(`return {
            __describe_module__() { return new Uint8Array([2, 9, 9, 9, 9]); },
            __get_error_constructor__() { return Error; }, get __sender_error_class__() { return Error; },
            __call_reducer__() {}, __call_view__() {}, __call_view_anon__() {}, __call_procedure__() {},
          };`),
          /Failed to publish the module/,
        ],
        ["hooks-missing", handWritten(`return { __describe_module__() {} };`), /lack the function/],
      ];
      for (const [name, body, message] of badModules) {
        await t.step(`publish rejects a module: ${name}`, async () => {
          const response = await put(name, body);
          const text = await response.text();
          assertEquals(response.status, 400, `${name}: ${response.status} ${text}`);
          assertMatch(text, message);
          assertEquals((await fetch(`${server.url}/v1/database/${name}`)).status, 404);
          await healthy();
        });
      }

      await t.step("wrong argument types and counts are 400 with the field named", async () => {
        const cases: [unknown[], RegExp][] = [
          [[1, 2], /expected an array of 3 elements/],
          [["one", 2, 3], /from.*u32|U32/i],
          [[1, 2, "lots"], /amount/],
          [[-1, 2, 3], /from/],
          [[1, 2, 3, 4], /expected an array of 3 elements/],
        ];
        for (const [args, message] of cases) {
          const response = await call(server.url, "bank", "transfer", args);
          assertEquals(response.status, 400, response.text);
          assertMatch(response.text, message);
        }
        const notJson = await fetch(`${server.url}/v1/database/bank/call/transfer`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "[1, 2,",
        });
        assertEquals(notJson.status, 400);
        const wrongType = await fetch(`${server.url}/v1/database/bank/call/transfer`, {
          method: "POST",
          headers: { "content-type": "text/plain" },
          body: "[1, 2, 3]",
        });
        assertEquals(wrongType.status, 415);
        await healthy();
      });

      await t.step("unknown reducer and unknown database are 404", async () => {
        const reducer = await call(server.url, "bank", "no_such_reducer", []);
        assertEquals(reducer.status, 404);
        assertMatch(reducer.text, /No such reducer or procedure/);
        const database = await call(server.url, "no-such-db", "transfer", [1, 2, 3]);
        assertEquals(database.status, 404);
        assertMatch(database.text, /`no-such-db` not found/);
        const invalid = await call(server.url, "Not_A_Name", "transfer", [1, 2, 3]);
        assertEquals(invalid.status, 400);
      });

      await t.step("an oversized body is refused with 413", async () => {
        const big = "[" + "1,".repeat(HTTP_BODY_BYTES_MAX / 2) + "1]";
        const response = await fetch(`${server.url}/v1/database/bank/call/transfer`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: big,
        });
        assertEquals(response.status, 413);
        assertMatch(await response.text(), /over the limit/);
        await healthy();
      });

      await t.step("a reducer error reaches only its caller, as 530 with its text", async () => {
        const response = await call(server.url, "bank", "transfer", [3, 3, 1]);
        assertEquals(response.status, 530);
        assertEquals(response.text, "cannot transfer to the same account");
        await healthy();
      });
    } finally {
      await server.close();
    }
  },
});
