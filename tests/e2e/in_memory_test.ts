/**
 * `start --in-memory`: the server says so at start, serves as usual from a temporary data
 * directory, removes it at shutdown, and a restart starts empty. It refuses --data-dir.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { call, fixtureBundle, publish } from "../support/server.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function startCommand(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-worker-options", "-A", `${ROOT}main.ts`, "start", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
}

/** Starts an in-memory server; resolves with its URL and the data dir its warning names. */
async function startInMemory() {
  const child = startCommand(["--in-memory", "--listen-addr", "127.0.0.1:0"]).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  const done = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let url: string | undefined;
  for (let waited = 0; url === undefined; waited++) {
    if (waited > 600) throw new Error(`no listening line: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    url = /lightcone: listening on (\S+)/.exec(output)?.[1];
  }
  const warning = /WARN +in-memory mode: .* dataDir=(\S+)/.exec(output);
  assert(warning, `no in-memory warning at start: ${output}`);
  return {
    url,
    dataDir: warning[1],
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await done;
    },
  };
}

Deno.test({
  name: "--in-memory serves from a temporary directory that is gone after shutdown",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const first = await startInMemory();
    let stopped = false;
    try {
      assert((await Deno.stat(first.dataDir)).isDirectory);
      await publish(first.url, "ephemeral", await fixtureBundle("acks"));
      assertEquals((await call(first.url, "ephemeral", "add", [7])).status, 200);
      await first.stop();
      stopped = true;
      assertEquals(await Deno.stat(first.dataDir).then(() => true, () => false), false);
    } finally {
      if (!stopped) await first.stop();
    }
    const second = await startInMemory();
    try {
      assert(second.dataDir !== first.dataDir);
      const response = await fetch(`${second.url}/v1/database/ephemeral`);
      await response.body?.cancel();
      assertEquals(response.status, 404, "a restart starts empty");
    } finally {
      await second.stop();
    }
  },
});

Deno.test("--in-memory with --data-dir is refused with a clear error", async () => {
  const output = await startCommand(["--in-memory", "--data-dir", "/tmp/nowhere"]).output();
  assertEquals(output.code, 1);
  assertMatch(new TextDecoder().decode(output.stderr), /--in-memory and --data-dir exclude/);
});
