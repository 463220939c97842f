/**
 * tests/support/install_debian.sh on a machine that cannot install (run by `deno task test`
 * before every run, so it must never wait on a prompt): fake `id`, `sudo` and `apt-get` on a
 * PATH that lacks every package the script looks for.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";

const SCRIPT = new URL("./install_debian.sh", import.meta.url).pathname;

async function run(
  fakes: Record<string, string>,
): Promise<{ code: number; stderr: string; calls: string }> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-install-debian-test-" });
  try {
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    for (const [name, body] of Object.entries(fakes)) {
      await Deno.writeTextFile(
        `${bin}/${name}`,
        `#!/bin/bash\necho "${name} $*" >>"${dir}/calls"\n${body}\n`,
      );
      await Deno.chmod(`${bin}/${name}`, 0o755);
    }
    const output = await new Deno.Command("/bin/bash", {
      args: [SCRIPT],
      env: { PATH: bin },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const calls = await Deno.readTextFile(`${dir}/calls`).catch(() => "");
    return { code: output.code, stderr: new TextDecoder().decode(output.stderr), calls };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("install_debian.sh: not root and sudo wants a password: a clear refusal, never a prompt", async () => {
  const result = await run({
    id: "echo 1000",
    // `sudo -n` fails as it does when a password is needed; plain `sudo` would prompt.
    sudo: '[ "$1" = -n ] && exit 1; echo PROMPTED >&2; exit 1',
    "apt-get": "exit 0",
  });
  assertEquals(result.code, 1, result.stderr);
  assert(!result.stderr.includes("PROMPTED"), result.stderr);
  assert(!result.calls.includes("apt-get"), result.calls);
  assert(result.stderr.includes("needs root or sudo without a password"), result.stderr);
  assert(result.stderr.includes("nats-server"), result.stderr);
});

Deno.test("install_debian.sh: apt-get failing (offline) is reported with the packages", async () => {
  const result = await run({ id: "echo 0", "apt-get": "exit 100" });
  assertEquals(result.code, 1, result.stderr);
  assert(result.stderr.includes("apt-get could not install"), result.stderr);
  assert(result.calls.includes("Acquire::Retries=0"), result.calls);
});

Deno.test("install_debian.sh: no apt-get at all is reported", async () => {
  const result = await run({ id: "echo 1000" });
  assertEquals(result.code, 1, result.stderr);
  assert(result.stderr.includes("apt-get is not available"), result.stderr);
});
