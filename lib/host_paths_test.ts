import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { redactHostPaths } from "./host_paths.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

Deno.test("redactHostPaths replaces file URLs and the host's code directory", () => {
  assertEquals(
    redactHostPaths(`at errnoError (file://${ROOT}worker/sys_abi.ts:134:19)`),
    "at errnoError (<host>)",
  );
  assertEquals(redactHostPaths(`cannot open ${ROOT}data/x`), "cannot open <host>/data/x");
  assertEquals(redactHostPaths("at seed (blob:null/1234:8:1)"), "at seed (blob:null/1234:8:1)");
});
