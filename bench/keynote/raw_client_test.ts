import assert from "node:assert/strict";
import { call, fixtureBundle, publish, startTestServer } from "../../tests/support/server.ts";
import { connectRawClients, transferArgs } from "./raw_client.ts";

Deno.test("transferArgs() encodes (u32, u32, i64) little-endian", () => {
  assert.deepEqual(
    [...transferArgs(1, 258, -2)],
    [1, 0, 0, 0, 2, 1, 0, 0, 254, 255, 255, 255, 255, 255, 255, 255],
  );
});

Deno.test("the raw reference client pipelines transfers and tells ok from refused", async () => {
  const server = await startTestServer();
  try {
    await publish(server.url, "bank", await fixtureBundle("bank"));
    assert.equal((await call(server.url, "bank", "seed", [0, 4, 1000])).status, 200);
    const clients = await connectRawClients(server.url, "bank", 2);
    try {
      // 300 calls in flight over two connections: more than one frame's worth each.
      const sends = [];
      for (let i = 0; i < 300; i++) sends.push(clients.transfer(i % 2, i % 3, 3, 1));
      const outcomes = await Promise.all(sends);
      assert.deepEqual(new Set(outcomes), new Set(["ok"]));
      assert.equal(await clients.transfer(0, 0, 1, 1_000_000), "refused");
      assert.equal(await clients.transfer(1, 2, 2, 1), "refused");
    } finally {
      await clients.close();
    }
    const response = await fetch(`${server.url}/v1/database/bank/sql`, {
      method: "POST",
      body: "SELECT * FROM accounts",
    });
    const rows = (await response.json())[0].rows as Array<[number, number]>;
    // Accounts 0, 1 and 2 each sent 100 to account 3; the refused ones changed nothing.
    const balances = new Map(rows.map(([id, balance]) => [Number(id), Number(balance)]));
    assert.deepEqual([0, 1, 2, 3].map((id) => balances.get(id)), [900, 900, 900, 1300]);
  } finally {
    await server.close();
  }
});
