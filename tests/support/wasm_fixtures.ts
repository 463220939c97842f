/**
 * Builds the WebAssembly fixture modules of tests/fixtures/wasm from their C source with
 * clang-14 (`--target=wasm32 -nostdlib`) and wasm-ld-14, both installed by
 * tests/support/install_debian.sh. Results are cached by a hash of the source, the flags and
 * the compiler's version under tests/fixtures/wasm/.build/ (gitignored). A fixture that cannot
 * be built throws: a test that needs it fails, it never skips.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "wasm");
const CACHE = join(FIXTURES, ".build");
const CLANG = "clang-14";
const WASM_LD = "wasm-ld-14";

export interface WasmFixtureOptions {
  /** `-D` macros for the compiler (e.g. UNKNOWN_IMPORT). */
  defines?: string[];
  /** Extra wasm-ld flags (e.g. `--max-memory=…`). */
  linkFlags?: string[];
}

async function run(command: string, args: string[]): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(
      `${command} is not installed (tests/support/install_debian.sh installs it): ${error}`,
    );
  }
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`${command} ${args.join(" ")} failed:\n${text}`);
  return text;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The wasm binary of tests/fixtures/wasm/<name>.c built with `options`. */
export async function wasmFixture(
  name: string,
  options: WasmFixtureOptions = {},
): Promise<Uint8Array> {
  const source = join(FIXTURES, `${name}.c`);
  const text = await Deno.readTextFile(source);
  const defines = (options.defines ?? []).map((d) => `-D${d}`);
  const compile = ["--target=wasm32", "-nostdlib", "-fno-builtin", "-O2", "-Wall", ...defines];
  const link = ["--no-entry", ...(options.linkFlags ?? [])];
  const version = await run(CLANG, ["--version"]);
  const hash = await sha256Hex(JSON.stringify([text, compile, link, version]));
  const out = join(CACHE, `${name}-${hash.slice(0, 24)}.wasm`);
  try {
    return await Deno.readFile(out);
  } catch {
    // not built yet
  }
  await Deno.mkdir(CACHE, { recursive: true });
  const tmp = `${out}.${crypto.randomUUID()}.tmp`;
  try {
    await run(CLANG, [...compile, "-c", source, "-o", `${tmp}.o`]);
    await run(WASM_LD, [...link, "-o", tmp, `${tmp}.o`]);
    await Deno.rename(tmp, out);
  } finally {
    await Deno.remove(`${tmp}.o`).catch(() => {});
    await Deno.remove(tmp).catch(() => {});
  }
  return await Deno.readFile(out);
}
