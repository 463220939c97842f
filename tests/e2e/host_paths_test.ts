/**
 * Error texts do not reveal the host (issue 15): a reducer that fails inside a syscall and one
 * that throws its own Error leave no `file://` URL and no path of the server's code in the HTTP
 * reply, the WebSocket reply or the module log; the tenant's own frames stay in the log.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { decodeServerFrame, encodeClientFrame, type ServerMessage } from "../../protocol/mod.ts";
import { call, fixtureBundle, publish, startTestServer } from "../support/server.ts";

const REPO_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

function assertNoHostPaths(text: string, where: string): void {
  assert(!text.includes("file://"), `${where} has a file URL: ${text}`);
  assert(!text.includes(REPO_ROOT), `${where} has the server's path ${REPO_ROOT}: ${text}`);
  assert(!/sys_abi|engine\.ts|worker_main/.test(text), `${where} names a host file: ${text}`);
}

/** BSATN of seed(from u32, count u32, balance i64). */
function seedArgs(from: number, count: number, balance: bigint): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, from, true);
  view.setUint32(4, count, true);
  view.setBigInt64(8, balance, true);
  return bytes;
}

/** Calls `reducer` over a v3 WebSocket and returns the ReducerResult's outcome as text. */
async function callOverWs(url: string, database: string, reducer: string, args: Uint8Array) {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/v1/database/${database}/subscribe?compression=None`,
    ["v3.bsatn.spacetimedb"],
  );
  socket.binaryType = "arraybuffer";
  try {
    const result = await new Promise<ServerMessage>((resolve, reject) => {
      socket.onerror = () => reject(new Error("websocket error"));
      socket.onclose = (event) => reject(new Error(`closed ${event.code} ${event.reason}`));
      socket.onopen = () =>
        socket.send(
          encodeClientFrame([{ tag: "CallReducer", requestId: 7, flags: 0, reducer, args }]),
        );
      socket.onmessage = async (event) => {
        for (const message of await decodeServerFrame(new Uint8Array(event.data), "v3")) {
          if (message.tag === "ReducerResult") resolve(message);
        }
      };
    });
    return JSON.stringify(result, (_, value) => typeof value === "bigint" ? String(value) : value);
  } finally {
    socket.onclose = null;
    socket.close();
  }
}

Deno.test({
  name: "replies and module logs of failing reducers name no host path",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startTestServer();
    try {
      const bank = await publish(server.url, "bank", await fixtureBundle("bank"));
      const kitchen = await publish(server.url, "kitchen", await fixtureBundle("kitchen"));
      assertEquals((await call(server.url, "bank", "seed", [0, 2, 10])).status, 200);

      // A duplicate key: the error is made inside the host's insert syscall.
      const duplicate = await call(server.url, "bank", "seed", [0, 2, 11]);
      console.log(`HTTP reply, syscall failure: ${duplicate.status} ${duplicate.text}`);
      assertEquals(duplicate.status, 530);
      assertNoHostPaths(duplicate.text, "HTTP reply");
      const wsDuplicate = await callOverWs(server.url, "bank", "seed", seedArgs(0, 2, 12n));
      console.log(`WebSocket reply, syscall failure: ${wsDuplicate}`);
      assert(wsDuplicate.includes("InternalError"), wsDuplicate);
      assertNoHostPaths(wsDuplicate, "WebSocket reply");

      // The module's own Error.
      const thrown = await call(server.url, "kitchen", "bump", ["c", 1, "throw"]);
      console.log(`HTTP reply, thrown Error: ${thrown.status} ${thrown.text}`);
      assertEquals(thrown.status, 530);
      assertNoHostPaths(thrown.text, "HTTP reply");

      const bankLog = await (await fetch(`${server.url}/v1/database/bank/logs`, {
        headers: { authorization: `Bearer ${bank.token}` },
      })).text();
      const kitchenLog = await (await fetch(`${server.url}/v1/database/kitchen/logs`, {
        headers: { authorization: `Bearer ${kitchen.token}` },
      })).text();
      const failure = bankLog.split("\n").find((line) => line.includes("UniqueAlreadyExists"));
      console.log(`module log line: ${failure}`);
      assert(failure, `no failure in the log: ${bankLog}`);
      assertNoHostPaths(bankLog, "bank module log");
      assertNoHostPaths(kitchenLog, "kitchen module log");
      // The tenant's own frames are kept: they point into its bundle.
      assert(/at seed \(blob:/.test(failure), failure);
      assert(/crashed while bumping c[^"]*at [^"]*blob:/.test(kitchenLog), kitchenLog);
    } finally {
      await server.close();
    }
  },
});
