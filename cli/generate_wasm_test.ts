/**
 * `generate --bin-path X.wasm`: the module is loaded as publish would load it, in a child
 * process with no data (wasm/describe.ts); the bindings come from what it describes. Modules
 * publish would refuse are refused with publish's reasons; one that never finishes describing
 * is stopped by the load timeout. The bindings driving the official SDK against a server are
 * tested in tests/e2e/wasm_codegen_test.ts.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./main.ts";
import { captureIo } from "./io.ts";
import { assertIncludes } from "./_assert_test_support.ts";
import { CliError } from "./errors.ts";
import { describeWasmFile } from "./module_describe.ts";
import { decodeRawModuleDef } from "../protocol/mod.ts";
import { wasmFixture } from "../tests/support/wasm_fixtures.ts";
import { canLimitData, dataSegmentBytes } from "../lib/process_limits.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lightcone-generate-wasm-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function fixtureFile(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await Deno.writeFile(path, bytes);
  return path;
}

const silent = { err: () => {} };

Deno.test("describeWasmFile returns the module's own definition, read in a throwaway host", async () => {
  await withTempDir(async (dir) => {
    const wasm = await fixtureFile(dir, "bank.wasm", await wasmFixture("bank"));
    const def = decodeRawModuleDef(await describeWasmFile(wasm, silent));
    assertEquals(def.tables.map((t) => t.sourceName), ["accounts", "connections"]);
    const reducers = def.reducers.map((r) => r.sourceName);
    assert(reducers.includes("open_account") && reducers.includes("transfer"), String(reducers));
  });
});

Deno.test("generate --bin-path X.wasm writes bindings of the module's tables and reducers", async () => {
  await withTempDir(async (dir) => {
    const wasm = await fixtureFile(dir, "bank.wasm", await wasmFixture("bank"));
    const out = join(dir, "bindings");
    const io = captureIo();
    const code = await runCli(
      ["--config-path", join(dir, "cli.json"), "generate", "-l", "ts", "-o", out, "-b", wasm],
      { io },
    );
    assertEquals(code, 0, io.stderr);
    assertIncludes(
      io.stderr,
      `Skipping build. Instead we are inspecting the WebAssembly module ${wasm}`,
    );
    const index = await Deno.readTextFile(join(out, "index.ts"));
    assertIncludes(index, "name: 'accounts'");
    assertIncludes(index, "name: 'accounts_balance_idx_btree'");
    assertIncludes(index, 'import OpenAccountReducer from "./open_account_reducer";');
    const reducer = await Deno.readTextFile(join(out, "open_account_reducer.ts"));
    assertIncludes(reducer, "name: __t.string()");
    assertIncludes(reducer, "balance: __t.i64()");
  });
});

Deno.test("generate from a wasm module refuses what publish refuses, with publish's reasons", async () => {
  await withTempDir(async (dir) => {
    const generate = async (wasm: string) => {
      const io = captureIo();
      const code = await runCli(
        [
          "--config-path",
          join(dir, "cli.json"),
          "generate",
          "-l",
          "ts",
          "-o",
          join(dir, "o"),
          "-b",
          wasm,
        ],
        { io },
      );
      return { code, stderr: io.stderr };
    };
    const unknown = await generate(
      await fixtureFile(
        dir,
        "unknown.wasm",
        await wasmFixture("bank", { defines: ["UNKNOWN_IMPORT"] }),
      ),
    );
    assertEquals(unknown.code, 1);
    assertIncludes(unknown.stderr, "could not extract schema from");
    assertIncludes(
      unknown.stderr,
      'The module imports "spacetime_10.0"."no_such_syscall", which this host does not provide',
    );

    // 576 MiB of initial memory: more than a database's default budget (512 MiB).
    const big = await fixtureFile(
      dir,
      "big.wasm",
      await wasmFixture("bank", { linkFlags: ["--initial-memory=603979776"] }),
    );
    const tooBig = await generate(big);
    assertEquals(tooBig.code, 1);
    assertIncludes(tooBig.stderr, "more than the database's memory budget allows");

    const procedure = await generate(
      await fixtureFile(
        dir,
        "procedure.wasm",
        await wasmFixture("bank", { defines: ["WITH_PROCEDURE"] }),
      ),
    );
    assertEquals(procedure.code, 1);
    assertIncludes(procedure.stderr, "The module declares procedures (fetch_rates)");

    const asJs = captureIo();
    const asJsCode = await runCli(
      ["--config-path", join(dir, "cli.json"), "generate", "-l", "ts", "--js-path", big],
      { io: asJs },
    );
    assertEquals(asJsCode, 1);
    assertIncludes(asJs.stderr, `'${big}' is a WebAssembly module, not a JS bundle`);

    const garbage = await fixtureFile(
      dir,
      "garbage.wasm",
      new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff, 0xff]),
    );
    const invalid = await generate(garbage);
    assertEquals(invalid.code, 1);
    assertIncludes(invalid.stderr, "The module is not a valid WebAssembly module");
  });
});

Deno.test("a wasm module that never finishes describing itself is stopped by the load timeout", async () => {
  await withTempDir(async (dir) => {
    const wasm = await fixtureFile(
      dir,
      "spin.wasm",
      await wasmFixture("bank", { defines: ["SPIN_IN_DESCRIBE"] }),
    );
    await rejects(
      describeWasmFile(wasm, silent, { loadTimeoutMs: 1_000 }),
      (error: unknown) => {
        assert(error instanceof CliError, String(error));
        assertIncludes(error.message, `could not extract schema from '${wasm}'`);
        assertIncludes(error.message, "took longer than 1000 ms");
        return true;
      },
    );
  });
});

Deno.test("a wasm module whose definition is over the limit is refused, its process stopped", async () => {
  await withTempDir(async (dir) => {
    const wasm = await fixtureFile(dir, "bank.wasm", await wasmFixture("bank"));
    const size = (await describeWasmFile(wasm, silent)).length;
    await rejects(
      describeWasmFile(wasm, silent, { definitionBytesMax: size - 1 }),
      (error: unknown) =>
        error instanceof CliError &&
        error.message.includes(`the module's definition is larger than ${size - 1} bytes`),
    );
    assertEquals((await describeWasmFile(wasm, silent, { definitionBytesMax: size })).length, size);
  });
});

Deno.test("the describe process's address space is capped (RLIMIT_DATA) before it gets the module", async () => {
  if (!canLimitData()) {
    console.warn("SKIPPED: prlimit is not available, the describe process is not capped here");
    return;
  }
  await withTempDir(async (dir) => {
    const wasm = await fixtureFile(dir, "bank.wasm", await wasmFixture("bank"));
    const memoryMb = 64;
    let seen: { limit: string; data: number | undefined } | undefined;
    const def = decodeRawModuleDef(
      await describeWasmFile(wasm, silent, {
        memoryMb,
        onCapped: async (pid) => {
          const limits = await Deno.readTextFile(`/proc/${pid}/limits`);
          const limit = /^Max data size\s+(\S+)\s+(\S+)/m.exec(limits);
          seen = { limit: limit?.[1] ?? "missing", data: await dataSegmentBytes(pid) };
        },
      }),
    );
    assertEquals(def.tables.map((t) => t.sourceName), ["accounts", "connections"]);
    assert(seen !== undefined, "onCapped was not called");
    assert(/^\d+$/.test(seen.limit), `Max data size is ${seen.limit}`);
    // Measured when capped: what the process maps with its own code loaded, plus the budget.
    const headroom = Number(seen.limit) - seen.data!;
    assert(
      headroom > 0 && headroom <= memoryMb * 1024 * 1024,
      `RLIMIT_DATA ${seen.limit} is not VmData ${seen.data} + at most ${memoryMb} MiB`,
    );
  });
});
