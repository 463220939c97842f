/** NATS URLs (replication/stream.ts): credentials reach the client, never the logs. */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { natsCredentials, natsDisplay, natsUrlDisplay, parseNatsUrl } from "./stream.ts";

Deno.test("NATS URLs: host and port, user and password, token, tls://; junk refused", () => {
  assertEquals(parseNatsUrl("nats://127.0.0.1", "--follow"), "127.0.0.1:4222");
  assertEquals(parseNatsUrl("nats://nats.example:4333/", "--follow"), "nats.example:4333");
  const withUser = parseNatsUrl("nats://lc:p%40ss%3Aword@127.0.0.1:4333", "--replicate");
  assertEquals(natsCredentials(withUser), {
    servers: "127.0.0.1:4333",
    user: "lc",
    pass: "p@ss:word",
  });
  assertEquals(natsDisplay(withUser), "127.0.0.1:4333");
  const withToken = parseNatsUrl("nats://s3cr3t@127.0.0.1", "--replicate");
  assertEquals(natsCredentials(withToken), { servers: "127.0.0.1:4222", token: "s3cr3t" });
  assertEquals(natsDisplay(withToken), "127.0.0.1:4222");
  assertEquals(natsCredentials("127.0.0.1:4222"), { servers: "127.0.0.1:4222" });

  const tls = parseNatsUrl("tls://lc:pw@127.0.0.1:4443", "--follow");
  assertEquals(natsCredentials(tls), {
    servers: "127.0.0.1:4443",
    user: "lc",
    pass: "pw",
    tls: true,
  });
  assertEquals(natsDisplay(tls), "tls://127.0.0.1:4443");
  assertEquals(natsUrlDisplay(tls), "tls://127.0.0.1:4443");
  assertEquals(natsUrlDisplay(withToken), "nats://127.0.0.1:4222");
  assertEquals(natsCredentials(parseNatsUrl("tls://h", "--follow")), {
    servers: "h:4222",
    tls: true,
  });
  throws(() => parseNatsUrl("nats://127.0.0.1:4222?tls=true", "--follow"), /use tls:\/\/host/);
  throws(() => parseNatsUrl("http://127.0.0.1:4222", "--follow"), /must be nats:\/\//);
  throws(() => parseNatsUrl("nats://127.0.0.1:4222/x", "--follow"), /path or query/);
  throws(() => parseNatsUrl("nats://:pw@127.0.0.1", "--follow"), /needs a user name/);
  // A refusal never repeats the password.
  let message = "";
  try {
    parseNatsUrl("http://lc:hunter2@127.0.0.1:4222", "--follow");
  } catch (error) {
    message = (error as Error).message;
  }
  assert(message !== "" && !message.includes("hunter2"), message);
});
