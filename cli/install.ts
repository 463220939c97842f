/**
 * `deno task install`: installs the `lightcone` command globally with `deno install -g`,
 * with the server's runtime flags (cli/runtime_flags.ts) and this repository's deno.json,
 * so `lightcone start`, `lightcone publish`, ... work from any directory. Extra arguments
 * go to `deno install` (e.g. `--root DIR`; DENO_INSTALL_ROOT is honoured too).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVER_DENO_FLAGS } from "./runtime_flags.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));

export function installArgs(extra: string[] = []): string[] {
  return [
    "install",
    "--global",
    "--force",
    "--name",
    "lightcone",
    "--config",
    join(REPO_ROOT, "deno.json"),
    ...SERVER_DENO_FLAGS,
    ...extra,
    join(REPO_ROOT, "main.ts"),
  ];
}

if (import.meta.main) {
  const args = installArgs(Deno.args);
  const status = await new Deno.Command(Deno.execPath(), { args }).spawn().status;
  if (!status.success) Deno.exit(status.code);
  const root = Deno.env.get("DENO_INSTALL_ROOT") ?? join(Deno.env.get("HOME") ?? "~", ".deno");
  console.log(
    `\nRun \`lightcone --help\` to start. If the shell cannot find it, add ${
      join(root, "bin")
    } to PATH.`,
  );
}
