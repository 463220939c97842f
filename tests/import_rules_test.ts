/**
 * Keeps STYLE.md's dependency table true: reads the real import graph with
 * `deno info --json` from every non-test source file and checks that each
 * cross-folder import points down the table and goes through the folder's mod.ts.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const ROOT = fromFileUrl(new URL("../", import.meta.url));

/** Which folders each folder may import (lib is importable file by file). */
export const ALLOWED: Record<string, string[]> = {
  lib: [],
  protocol: ["lib"],
  storage: ["lib", "protocol"],
  query: ["lib", "protocol", "storage"],
  auth: ["lib", "protocol"],
  wasm: ["lib", "protocol"],
  worker: ["lib", "protocol", "storage", "query", "auth", "wasm"],
  server: ["lib", "protocol", "auth", "worker", "replication"],
  replication: ["lib", "storage"],
  codegen: ["lib", "protocol"],
  cli: ["lib", "protocol", "codegen", "wasm"],
};

async function sourceFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const folder of Object.keys(ALLOWED)) {
    const walk = async (dir: string) => {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)];
      } catch {
        return;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory) await walk(path);
        else if (
          entry.name.endsWith(".ts") && !/(_test|_bench)\.ts$/.test(entry.name) &&
          !entry.name.startsWith("_test")
        ) {
          files.push(path);
        }
      }
    };
    await walk(join(ROOT, folder));
  }
  return files;
}

interface Edge {
  from: string;
  to: string;
}

async function importEdges(files: string[]): Promise<Edge[]> {
  // One `deno info` over a throwaway entry that imports every source file.
  const entry = join(ROOT, `.import_graph_${crypto.randomUUID()}.ts`);
  await Deno.writeTextFile(
    entry,
    files.map((file) => `import "./${relative(ROOT, file)}";`).join("\n") + "\n",
  );
  let stdout: Uint8Array;
  try {
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(result.stderr)}`);
    }
    stdout = result.stdout;
  } finally {
    await Deno.remove(entry);
  }
  const graph = JSON.parse(new TextDecoder().decode(stdout));
  const edges: Edge[] = [];
  for (const module of graph.modules) {
    if (!module.specifier?.startsWith("file://")) continue;
    const from = relative(ROOT, fromFileUrl(module.specifier));
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        if (target?.startsWith("file://")) {
          edges.push({ from, to: relative(ROOT, fromFileUrl(target)) });
        }
      }
    }
  }
  return edges;
}

function folderOf(path: string): string | undefined {
  const top = path.split("/")[0];
  return top in ALLOWED ? top : undefined;
}

Deno.test("imports follow STYLE.md: dependencies point down and cross folders through mod.ts", async () => {
  const edges = await importEdges(await sourceFiles());
  const violations: string[] = [];
  for (const { from, to } of edges) {
    const source = folderOf(from);
    const target = folderOf(to);
    if (!source || !target || source === target) continue;
    if (/(_test|_bench)\.ts$/.test(from)) continue;
    if (!ALLOWED[source].includes(target)) {
      violations.push(`${from} imports ${to}: ${source}/ may not import ${target}/`);
    } else if (target !== "lib" && to !== `${target}/mod.ts`) {
      violations.push(`${from} imports ${to}: go through ${target}/mod.ts`);
    }
  }
  assertEquals(violations, []);
});

Deno.test("the import rule checker flags a forbidden edge", () => {
  // The checker itself must be able to fail: a storage -> server edge is not allowed.
  assertEquals(ALLOWED.storage.includes("server"), false);
  assertEquals(folderOf("server/app.ts"), "server");
  assertEquals(folderOf("tests/e2e/x.ts"), undefined);
});
