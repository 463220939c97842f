/**
 * Client matrix, Node.js and Deno: the official SDK (2.8.3 and the newest 2.x) in the machine's
 * Node (20: the SDK loads `undici` for its WebSocket; and with the `ws` package as the
 * global WebSocket, as jsdom does) and in Node 22 from npm (global WebSocket), each
 * running the chat scenario as a child process; and Deno running the same bundle, the
 * SDK resolved from the same node_modules.
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

interface Runtime {
  label: string;
  command: string;
  args?: string[];
  major?: string;
  env: Record<string, string>;
}

const RUNTIMES: Runtime[] = [
  { label: "Node (machine)", command: "node", major: undefined, env: {} },
  // The `ws` package as the SDK's WebSocket, as under jsdom (SpacetimeDB's React template
  // tests): it sends "v3.bsatn.spacetimedb,v2.bsatn.spacetimedb" without a space.
  {
    label: "Node (machine) + ws",
    command: "node",
    major: undefined,
    env: { LIGHTCONE_CLIENT_WEBSOCKET: "ws" },
  },
  { label: "Node 22 (npm)", command: NODE22_PATH, major: "22", env: {} },
  {
    label: "Deno",
    command: Deno.execPath(),
    args: ["run", "-A", "--node-modules-dir=manual"],
    env: {},
  },
];

for (const sdk of SDK_VERSIONS) {
  for (const node of RUNTIMES) {
    Deno.test({
      name: `client matrix: ${node.label} with spacetimedb@${sdk}`,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn(t) {
        await ensureClientsInstalled();
        const script = await bundle("node_client.ts", { sdk, platform: "node" });
        const client = new LineClient(`${node.label} sdk ${sdk}`, node.command, [
          ...(node.args ?? []),
          script,
        ], node.env);
        try {
          const hello = await client.hello as { node: string; deno?: string; webSocket: string };
          const version = hello.deno ? `Deno ${hello.deno}` : `Node ${hello.node}`;
          console.log(`${node.label}: ${version}, ${hello.webSocket}, spacetimedb@${sdk}`);
          if (node.major) assertEquals(hello.node.split(".")[0], `v${node.major}`);
          await chatScenario(t, (op, args) => client.request(op, args));
        } finally {
          await client.close();
        }
      },
    });
  }
}

for (const sdk of SDK_VERSIONS) {
  Deno.test({
    name: `the hand-written bindings and the client type-check against spacetimedb@${sdk}`,
    async fn() {
      const root = new URL("../../", import.meta.url).pathname;
      const dir = await Deno.makeTempDir({ prefix: "lightcone-bindings-" });
      try {
        await Deno.writeTextFile(
          `${dir}/deno.json`,
          JSON.stringify({
            imports: {
              spacetimedb: `npm:spacetimedb@${sdk}`,
              "spacetimedb/": `npm:/spacetimedb@${sdk}/`,
            },
            nodeModulesDir: "none",
          }),
        );
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "check",
            "--config",
            `${dir}/deno.json`,
            "--no-lock",
            ...["chat", "bank", "whoami", "client_features"].map((name) =>
              `tests/fixtures/bindings/${name}/index.ts`
            ),
            "tests/clients/driver.ts",
            "tests/clients/features_driver.ts",
          ],
          cwd: root,
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(output.stderr);
        assertEquals(output.success, true, text);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
