/**
 * Client matrix, Node.js: the official SDK (2.8.3 and the newest 2.x) in the machine's
 * Node (20: the SDK loads `undici` for its WebSocket) and in Node 22 from npm (global
 * WebSocket), each running the chat scenario as a child process.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { chatScenario } from "./scenario.ts";
import {
  bundle,
  ensureClientsInstalled,
  LineClient,
  NODE22_PATH,
  SDK_VERSIONS,
} from "./support.ts";

const NODES = [
  { label: "Node (machine)", command: "node", major: undefined },
  { label: "Node 22 (npm)", command: NODE22_PATH, major: "22" },
];

for (const sdk of SDK_VERSIONS) {
  for (const node of NODES) {
    Deno.test({
      name: `client matrix: ${node.label} with spacetimedb@${sdk}`,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn(t) {
        await ensureClientsInstalled();
        const script = await bundle("node_client.ts", { sdk, platform: "node" });
        const client = new LineClient(`${node.label} sdk ${sdk}`, node.command, [script]);
        try {
          const hello = await client.hello as { node: string };
          console.log(`${node.label}: ${hello.node}, spacetimedb@${sdk}`);
          if (node.major) assertEquals(hello.node.split(".")[0], `v${node.major}`);
          await chatScenario(t, (op, args) => client.request(op, args));
        } finally {
          await client.close();
        }
      },
    });
  }
}
