import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { InboundBudget } from "./inbound_budget.ts";

Deno.test("InboundBudget refuses past the client's budget (1008), then past the server's (1013)", () => {
  const server = InboundBudget.forServer(250);
  const a = InboundBudget.forClient(server, 150);
  const b = InboundBudget.forClient(server, 150);
  assertEquals(a.take(100, true), undefined);
  assertEquals(a.take(60, true), {
    code: 1008,
    reason: "Sent 160 bytes before the connection was accepted; limit 150",
  });
  assertEquals(a.take(50, false), undefined);
  assertEquals(b.take(110, false), {
    code: 1013,
    reason: "Server holds 150 bytes of client requests; limit 250",
  });
  assertEquals(b.take(100, false), undefined);
  assertEquals(server.held, 250);
  // Answers free bytes; a client that goes frees everything it held.
  a.release(50);
  assertEquals([a.held, server.held], [100, 200]);
  a.releaseAll();
  assertEquals([a.held, server.held], [0, 100]);
  assertEquals(b.take(50, false), undefined);
  assertEquals(b.take(1, false)?.code, 1008);
});
