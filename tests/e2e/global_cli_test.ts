/**
 * The CLI as a new user meets it: `deno task install` into a temporary DENO_INSTALL_ROOT, then
 * the installed `lightcone` command from temporary directories. The first test runs every
 * command of README.md's "Using the CLI" blocks in order (init → build → publish → generate →
 * the template's SDK client → … → dev reacting to a save → …); the others run the chat
 * template and `dev` starting its own server.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVER_DENO_FLAGS } from "../../cli/runtime_flags.ts";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function assertIncludes(text: string, part: string, context = text): void {
  assert(text.includes(part), `expected ${JSON.stringify(part)} in:\n${context}`);
}

interface Env {
  root: string;
  bin: string;
  vars: Record<string, string>;
}

let installed: Promise<Env> | undefined;

/** `deno task install` into a temporary root, once per test file. */
function install(): Promise<Env> {
  installed ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "lightcone-install-" });
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "install"],
      cwd: REPO,
      env: { DENO_INSTALL_ROOT: root, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, text);
    const bin = join(root, "bin");
    return {
      root,
      bin,
      // The installed shim and the templates' tasks call `deno`: the one running this test.
      vars: {
        PATH: `${bin}:${dirname(Deno.execPath())}:${Deno.env.get("PATH")}`,
        NO_COLOR: "1",
      },
    };
  })();
  return installed;
}

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one shell command line (as typed in a terminal) and collects its output. */
async function sh(
  line: string,
  cwd: string,
  vars: Record<string, string>,
  stdin?: string,
): Promise<Output> {
  const child = new Deno.Command("sh", {
    args: ["-c", line],
    cwd,
    env: vars,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const out = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A long-running command whose output is read while it runs. */
class Running {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly done: Promise<Deno.CommandStatus>;
  #readers: Promise<void>[];

  constructor(line: string, cwd: string, vars: Record<string, string>, direct = false) {
    const [command, ...args] = direct ? line.split(" ") : ["sh", "-c", `exec ${line}`];
    this.child = new Deno.Command(command, {
      args,
      cwd,
      env: vars,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this[key] += text;
    };
    this.#readers = [pump(this.child.stdout, "stdout"), pump(this.child.stderr, "stderr")];
    this.done = this.child.status;
  }

  /** Waits until `count` matches of `pattern` are in stdout+stderr. */
  async waitFor(pattern: RegExp, count = 1, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const global = new RegExp(pattern.source, "g");
    const found = () => (this.stdout + this.stderr).match(global)?.length ?? 0;
    while (found() < count) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${pattern} x${count}:\n${this.stdout}\n${this.stderr}`,
        );
      }
      const status = await Promise.race([
        this.done,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
      ]);
      if (status !== undefined) {
        await Promise.all(this.#readers);
        if (found() >= count) return;
        throw new Error(
          `exited (${status.code}) before ${pattern}:\n${this.stdout}\n${this.stderr}`,
        );
      }
    }
  }

  async stop(signal: Deno.Signal = "SIGINT"): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 30_000);
    const status = await this.done;
    clearTimeout(timer);
    await Promise.all(this.#readers);
    return status;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function serverAnswers(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/v1/ping`);
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** Starts the installed `lightcone start` on a free port; checks it runs with the server flags. */
async function startServer(env: Env, workDir: string): Promise<{ url: string; proc: Running }> {
  const proc = new Running(
    `${join(env.bin, "lightcone")} start --in-memory -l 127.0.0.1:0`,
    workDir,
    env.vars,
    true,
  );
  await proc.waitFor(/lightcone: listening on http:\/\/127\.0\.0\.1:\d+/);
  const url = /lightcone: listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.stdout)![1];
  if (Deno.build.os === "linux") {
    // The installed command execs deno with the flags of cli/runtime_flags.ts.
    const cmdline = (await Deno.readTextFile(`/proc/${proc.child.pid}/cmdline`)).split("\0");
    for (const flag of SERVER_DENO_FLAGS) {
      assert(cmdline.includes(flag === "-A" ? "--allow-all" : flag), cmdline.join(" "));
    }
  }
  return { url, proc };
}

/** A CLI config whose `local` server is the test server (so README's commands run verbatim). */
async function writeCliConfig(path: string, url: string): Promise<void> {
  const host = new URL(url).host;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      default_server: "local",
      server_configs: [{ nickname: "local", host, protocol: "http" }],
      tokens: {},
    }),
  );
}

/** The command lines of the ```sh blocks in README.md's "Using the CLI" section. */
async function readmeCommands(): Promise<string[]> {
  const readme = await Deno.readTextFile(join(REPO, "README.md"));
  const section = readme.slice(
    readme.indexOf("## Using the CLI"),
    readme.indexOf("\n## ", readme.indexOf("## Using the CLI") + 5),
  );
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1].split("\n"))
    .map((line) => line.replace(/\s+#\s.*$/, "").trim())
    .filter((line) => line !== "");
}

Deno.test("deno.json's start and cli tasks carry the server's runtime flags from cli/runtime_flags.ts", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json")));
  for (const task of ["start", "cli"]) {
    const words = String(config.tasks[task]).split(/\s+/);
    for (const flag of SERVER_DENO_FLAGS) assert(words.includes(flag), `${task}: ${words}`);
  }
  assert(config.unstable.includes("worker-options"), "deno.json turns on worker-options");
  const env = await install();
  const shim = await Deno.readTextFile(join(env.bin, "lightcone"));
  for (const flag of SERVER_DENO_FLAGS) {
    assert(shim.includes(flag.replace("-A", "--allow-all")), shim);
  }
});

Deno.test({
  name: "every command of README's CLI section works with the installed command, in a temp dir",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const env = await install();
    const work = await Deno.makeTempDir({ prefix: "lightcone-readme-" });
    const vars = {
      ...env.vars,
      LIGHTCONE_CLI_CONFIG: join(work, "cli.json"),
      LIGHTCONE_DATA_DIR: join(work, "data"),
    };
    const commands = await readmeCommands();
    assertEquals(commands[0], "deno task install");
    assert(commands.includes("lightcone dev"), commands.join("\n"));
    let server: { url: string; proc: Running } | undefined;
    let cwd = work;
    let database = "";
    const ran: string[] = [];
    try {
      for (const line of commands) {
        ran.push(line);
        if (line === "deno task install") continue; // done by install() above
        if (line === "lightcone start") {
          server = await startServer(env, work);
          await writeCliConfig(vars.LIGHTCONE_CLI_CONFIG, server.url);
          continue;
        }
        if (line.startsWith("cd ")) {
          cwd = join(cwd, line.slice(3));
          continue;
        }
        if (line === "lightcone dev") {
          await devReactsToASave(cwd, vars);
          continue;
        }
        if (line.startsWith("lightcone subscribe")) {
          const sub = new Running(line, cwd, vars);
          // Inserts until the subscriber has seen one (it may take a while to subscribe).
          let exited = false;
          sub.done.then(() => exited = true);
          for (let i = 0; i < 20 && !exited; i++) {
            await new Promise((r) => setTimeout(r, 1500));
            if (exited) break;
            const add = await sh("lightcone call add Carol", cwd, vars);
            assertEquals(add.code, 0, add.stderr);
          }
          const status = await sub.done;
          await sub.stop();
          assertEquals(status.code, 0, sub.stderr);
          assertIncludes(sub.stdout, '"name":"Carol"');
          continue;
        }
        const out = await sh(line, cwd, vars);
        assertEquals(out.code, 0, `${line}\n${out.stdout}\n${out.stderr}`);
        const all = out.stdout + out.stderr;
        if (line.startsWith("lightcone init")) {
          database = JSON.parse(
            await Deno.readTextFile(join(cwd, "my-app", "spacetime.local.json")),
          ).database;
          assert(/^my-app-[a-z0-9]{5}$/.test(database), database);
          for (const file of ["spacetime.json", ".env.local", "src/main.ts", "deno.json"]) {
            await Deno.stat(join(cwd, "my-app", file));
          }
          await Deno.stat(join(cwd, "my-app", "spacetimedb", "src", "index.ts"));
        } else if (line === "lightcone build") {
          assertIncludes(all, "Type-checking with deno check");
          assertIncludes(out.stdout, "Build finished successfully.");
        } else if (line === "lightcone publish") {
          assertIncludes(all, "Using configuration from");
          assert(
            new RegExp(`Created new database with name: ${database}, identity: [0-9a-f]{64}`)
              .test(out.stdout),
            all,
          );
        } else if (line === "lightcone generate") {
          for (const file of ["index.ts", "person_table.ts", "add_reducer.ts", "types.ts"]) {
            await Deno.stat(join(cwd, "src", "module_bindings", file));
          }
        } else if (line.startsWith("deno task client")) {
          // The official SDK (npm spacetimedb@2.8.3) with the generated bindings.
          assertIncludes(out.stdout, "Inserted: Alice");
          assertIncludes(out.stdout, "People (1): Alice");
        } else if (line.startsWith("lightcone sql")) {
          assertEquals(out.stdout, ' name\n---------\n "Alice"\n "Bob"\n');
        } else if (line.startsWith("lightcone logs")) {
          assertEquals(out.stdout.trimEnd().split("\n").length, 5, out.stdout);
        } else if (line.startsWith("lightcone describe")) {
          assertIncludes(out.stdout, '"person"');
        } else if (line.startsWith("lightcone rename")) {
          assertIncludes(out.stdout, "Name set to my-app-renamed for identity");
          const local = JSON.parse(await Deno.readTextFile(join(cwd, "spacetime.local.json")));
          assertEquals(local.database, "my-app-renamed");
          const sql = await sh('lightcone sql "SELECT * FROM person"', cwd, vars);
          assertEquals(sql.code, 0, sql.stderr);
        } else if (line === "lightcone server list") {
          assertIncludes(out.stdout, "db.example.com");
          assertIncludes(out.stdout, "staging");
        } else if (line === "lightcone server ping") {
          assertIncludes(out.stdout, `Server is online: ${server!.url}`);
        } else if (line.startsWith("lightcone delete")) {
          const gone = await sh('lightcone sql "SELECT * FROM person"', cwd, vars);
          assertEquals(gone.code, 1, gone.stdout);
        } else if (line === "lightcone logout") {
          assertIncludes(out.stdout, "Logged out of");
        }
      }
      assertEquals(ran, commands);
    } finally {
      await server?.proc.stop("SIGTERM");
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

function count(text: string, pattern: RegExp): number {
  return text.match(pattern)?.length ?? 0;
}

/** `lightcone dev` in the project: first publish, a save, a type error, Ctrl-C. */
async function devReactsToASave(cwd: string, vars: Record<string, string>): Promise<void> {
  const dev = new Running("lightcone dev", cwd, vars);
  try {
    await dev.waitFor(/Published successfully!/);
    // The client command of spacetime.json (`deno task client`) ran once and listed everyone.
    await dev.waitFor(/Client process exited with code 0/);
    assert(/People \(\d+\): Alice, Bob, Carol/.test(dev.stdout), dev.stdout);
    const source = join(cwd, "spacetimedb", "src", "index.ts");
    const original = await Deno.readTextFile(source);
    const changed = original.replace('"Hello, World!"', '"Hello from dev!"') +
      "\nexport const shout = spacetimedb.reducer((_ctx) => console.info('shout'));\n";
    const savedAt = performance.now();
    await Deno.writeTextFile(source, changed);
    await dev.waitFor(/Published successfully!/, 2);
    const seconds = (performance.now() - savedAt) / 1000;
    console.log(
      `dev: save -> new module serving in ${seconds.toFixed(2)} s (measured by the test)`,
    );
    console.log(
      `dev says: ${
        /Published successfully! [^\n]*/g.exec(dev.stderr.split("File change detected")[1])?.[0]
      }`,
    );
    // The save's type check ends after the publish (dev publishes unchecked first) or before.
    await dev.waitFor(/Type check passed|Published successfully! \(type-checked\)/, 2);
    console.log(
      `dev: save -> type check of the new module done in ${
        ((performance.now() - savedAt) / 1000).toFixed(2)
      } s (measured by the test); dev says: ${
        /Type check passed[^\n]*/g.exec(dev.stderr.split("File change detected")[1])?.[0] ??
          "(checked before the publish)"
      }`,
    );
    await Deno.stat(join(cwd, "src", "module_bindings", "shout_reducer.ts"));
    const hello = await sh("lightcone call say_hello", cwd, vars);
    assertEquals(hello.code, 0, hello.stderr);
    const logs = await sh("lightcone logs -n 20", cwd, vars);
    assertIncludes(logs.stdout, "Hello from dev!");

    // A type error: reported with file:line, and the loop goes on. dev publishes as soon as the
    // bundle is built, so the module may already serve: then it says so, never "type-checked".
    const failedBefore = count(dev.stdout + dev.stderr, /Type check FAILED|Type check failed/g);
    await Deno.writeTextFile(
      source,
      changed + "export const broken = spacetimedb.reducer((ctx) => {\n" +
        "  ctx.db.person.insert({ name: 42 });\n});\n",
    );
    await dev.waitFor(/Type check FAILED|Type check failed/, failedBefore + 1);
    await dev.waitFor(/Waiting for next change/);
    const brokenCycle = dev.stderr.split("File change detected").at(-1)!;
    if (/Published successfully!/.test(brokenCycle)) {
      assert(
        /Published successfully! \(NOT type-checked yet: [^)]*\)/.test(brokenCycle),
        brokenCycle,
      );
      assertIncludes(brokenCycle, "published WITHOUT a passing type check");
    }
    assert(
      /src\/index\.ts:\d+:\d+ - error TS2322: Type 'number' is not assignable to type 'string'/
        .test(dev.stderr),
      dev.stderr,
    );
    const published = count(dev.stdout + dev.stderr, /Published successfully!/g);
    await Deno.writeTextFile(source, changed);
    await dev.waitFor(/Published successfully!/, published + 1);
  } finally {
    const status = await dev.stop("SIGINT");
    assertEquals(status.code, 0, dev.stderr);
    assertIncludes(dev.stderr, "Stopping development mode");
  }
}

Deno.test({
  name: "the chat template publishes and its terminal client chats with the official SDK",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const env = await install();
    const work = await Deno.makeTempDir({ prefix: "lightcone-chat-" });
    const vars = { ...env.vars, LIGHTCONE_CLI_CONFIG: join(work, "cli.json") };
    const server = await startServer(env, work);
    try {
      await writeCliConfig(vars.LIGHTCONE_CLI_CONFIG, server.url);
      const steps = ["lightcone init chat-app --template chat", "lightcone publish"];
      for (const [i, line] of steps.entries()) {
        const out = await sh(line, i === 0 ? work : join(work, "chat-app"), vars);
        assertEquals(out.code, 0, `${line}\n${out.stdout}\n${out.stderr}`);
      }
      const project = join(work, "chat-app");
      const generated = await sh("lightcone generate", project, vars);
      assertEquals(generated.code, 0, generated.stderr);
      const alice = await sh(
        "deno task client",
        project,
        vars,
        "/name Alice\nhello from alice\n",
      );
      assertEquals(alice.code, 0, alice.stderr);
      assertIncludes(alice.stdout, "Alice: hello from alice");
      // A second user (a new identity: no saved token) sees the history and its own line.
      await Deno.remove(join(project, ".spacetimedb-token"));
      const bob = await sh("deno task client", project, vars, "/name Bob\nhi alice\n");
      assertEquals(bob.code, 0, bob.stderr);
      assertIncludes(bob.stdout, "Alice: hello from alice");
      assertIncludes(bob.stdout, "Bob: hi alice");
      const check = await sh("deno check src/main.ts", project, vars);
      assertEquals(check.code, 0, check.stderr);
    } finally {
      await server.proc.stop("SIGTERM");
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "dev starts a local server when none answers and stops it on Ctrl-C",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const env = await install();
    const work = await Deno.makeTempDir({ prefix: "lightcone-devstart-" });
    const url = `http://127.0.0.1:${freePort()}`;
    const vars = {
      ...env.vars,
      LIGHTCONE_CLI_CONFIG: join(work, "cli.json"),
      LIGHTCONE_DATA_DIR: join(work, "data"),
    };
    try {
      const init = await sh("lightcone init solo --server-only", work, vars);
      assertEquals(init.code, 0, init.stderr);
      const dev = new Running(`lightcone dev -s ${url} -y`, join(work, "solo"), vars);
      try {
        await dev.waitFor(/Published successfully!/);
        assertIncludes(dev.stderr, `No server answered at ${url}; starting one`);
        assert(await serverAnswers(url));
      } finally {
        const status = await dev.stop("SIGINT");
        assertEquals(status.code, 0, dev.stderr);
      }
      assertIncludes(dev.stderr, "Stopping the local server dev started");
      assertEquals(await serverAnswers(url), false);
    } finally {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
