/**
 * The WebSocket upgrade over a raw TCP socket, header bytes exactly as clients send them:
 * Node's `ws` joins protocols without a space, others add spaces or tabs or send the header
 * twice. The server picks v3 over v2 whatever the spelling, and answers 400 naming the
 * supported protocols when none is offered, never 500.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fixtureBundle, publish, startTestServer } from "../support/server.ts";
import { offeredProtocols } from "../../server/ws/hub.ts";
import { concatBytes } from "../../lib/bytes.ts";

async function rawUpgrade(url: string, path: string, protocolLines: string[]): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      ...protocolLines.map((value) => `Sec-WebSocket-Protocol: ${value}`),
      "",
      "",
    ];
    await conn.write(new TextEncoder().encode(lines.join("\r\n")));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    let text = "";
    while (
      !text.includes("\r\n\r\n") || /^HTTP\/1\.1 4/.test(text) && !/\r\n\r\n[\s\S]+/.test(text)
    ) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      text = new TextDecoder().decode(concatBytes(chunks));
    }
    return text;
  } finally {
    conn.close();
  }
}

function chosenProtocol(response: string): string | undefined {
  return /\r\nsec-websocket-protocol: *([^\r\n]*)/i.exec(response)?.[1];
}

Deno.test("offeredProtocols follows the RFC 6455 list grammar", () => {
  assertEquals(offeredProtocols(null), []);
  assertEquals(offeredProtocols("a,b"), ["a", "b"]);
  assertEquals(offeredProtocols("  a ,\tb\t, ,c"), ["a", "b", "c"]);
});

Deno.test({
  name: "WebSocket upgrade accepts every header spelling and refuses unknown protocols with 400",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startTestServer();
    try {
      await publish(server.url, "bank", await fixtureBundle("bank"));
      const path = "/v1/database/bank/subscribe";
      const cases: [string, string[], string][] = [
        [
          "no space (Node ws)",
          ["v3.bsatn.spacetimedb,v2.bsatn.spacetimedb"],
          "v3.bsatn.spacetimedb",
        ],
        ["comma and space", ["v2.bsatn.spacetimedb, v3.bsatn.spacetimedb"], "v3.bsatn.spacetimedb"],
        [
          "extra spaces and tabs",
          ["  v2.bsatn.spacetimedb \t,\t v3.bsatn.spacetimedb  "],
          "v3.bsatn.spacetimedb",
        ],
        ["two header lines", ["foo.bar", "v2.bsatn.spacetimedb"], "v2.bsatn.spacetimedb"],
        ["v2 only", ["v2.bsatn.spacetimedb"], "v2.bsatn.spacetimedb"],
        ["v1 (1.x SDKs)", ["v1.json.spacetimedb,v1.bsatn.spacetimedb"], "v1.bsatn.spacetimedb"],
        [
          "v2 preferred to v1",
          ["v1.bsatn.spacetimedb, v2.bsatn.spacetimedb"],
          "v2.bsatn.spacetimedb",
        ],
      ];
      for (const [name, lines, expected] of cases) {
        await t.step(name, async () => {
          const response = await rawUpgrade(server.url, path, lines);
          assertEquals(response.split("\r\n")[0], "HTTP/1.1 101 Switching Protocols");
          assertEquals(chosenProtocol(response), expected);
        });
      }
      for (
        const [name, lines] of [
          ["unknown protocols only", ["v9.bsatn.spacetimedb,foo"]],
          ["none", []],
          ["v1.json only (not implemented)", ["v1.json.spacetimedb"]],
        ] as const
      ) {
        await t.step(`${name}: 400 naming the supported protocols`, async () => {
          const response = await rawUpgrade(server.url, path, [...lines]);
          assertEquals(response.split("\r\n")[0], "HTTP/1.1 400 Bad Request");
          const body = response.slice(response.indexOf("\r\n\r\n") + 4);
          assertEquals(
            body.includes("v3.bsatn.spacetimedb") && body.includes("v2.bsatn.spacetimedb"),
            true,
            body,
          );
          if (name.startsWith("v1")) {
            assertEquals(
              body.includes("v1.json.spacetimedb: not supported"),
              true,
              body,
            );
          }
        });
      }
    } finally {
      await server.close();
    }
  },
});
