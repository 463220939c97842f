/**
 * A small in-process stand-in for the Lightcone HTTP API, for CLI tests that need
 * precise server answers (530 bodies, 404s, streams). It speaks the same routes and
 * JSON shapes; the real server is exercised by tests/e2e.
 */
import { Hono } from "hono";
import { streamText } from "hono/streaming";

export interface StubRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization?: string;
  body: string;
}

export interface StubDatabase {
  identity: string;
  owner: string;
  names: string[];
  program: string;
  logLines: string[];
}

/** A JWT-shaped token whose payload carries `hex_identity` (signature not checked). */
export function fakeToken(identity: string): string {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${encode({ typ: "JWT", alg: "none" })}.${
    encode({ hex_identity: identity, sub: identity })
  }.sig`;
}

function identityFromAuthorization(header: string | undefined): string | undefined {
  if (!header?.startsWith("Bearer ")) return undefined;
  const payload = header.slice(7).split(".")[1];
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(base64 + "=".repeat((4 - base64.length % 4) % 4))).hex_identity;
  } catch {
    return undefined;
  }
}

function hexIdentity(n: number): string {
  return "c200" + n.toString(16).padStart(60, "0");
}

/** RawModuleDefV10 as SATS-JSON, shaped like the cli_project fixture plus a `counter` table. */
export const FIXTURE_SCHEMA_V10 = {
  sections: [
    {
      Typespace: {
        types: [
          { Product: { elements: [{ name: { some: "name" }, algebraic_type: { String: [] } }] } },
          {
            Product: {
              elements: [
                { name: { some: "id" }, algebraic_type: { U64: [] } },
                {
                  name: { some: "value" },
                  algebraic_type: {
                    Sum: {
                      variants: [
                        { name: { some: "some" }, algebraic_type: { U32: [] } },
                        { name: { some: "none" }, algebraic_type: { Product: { elements: [] } } },
                      ],
                    },
                  },
                },
              ],
            },
          },
        ],
      },
    },
    {
      Types: [
        { source_name: { scope: [], source_name: "Person" }, ty: 0, custom_ordering: true },
        { source_name: { scope: [], source_name: "Counter" }, ty: 1, custom_ordering: true },
      ],
    },
    {
      Tables: [
        {
          source_name: "person",
          product_type_ref: 0,
          primary_key: [],
          indexes: [],
          constraints: [],
          sequences: [],
          table_type: { User: [] },
          table_access: { Public: [] },
          default_values: [],
          is_event: false,
        },
        {
          source_name: "counter",
          product_type_ref: 1,
          primary_key: [0],
          indexes: [{
            source_name: { some: "counter_id_idx_btree" },
            accessor_name: { some: "id" },
            algorithm: { BTree: [0] },
          }],
          constraints: [{
            source_name: { some: "counter_id_key" },
            data: { Unique: { columns: [0] } },
          }],
          sequences: [{
            source_name: { some: "counter_id_seq" },
            column: 0,
            start: { none: [] },
            min_value: { none: [] },
            max_value: { none: [] },
            increment: 1,
          }],
          table_type: { User: [] },
          table_access: { Private: [] },
          default_values: [],
          is_event: false,
        },
      ],
    },
    {
      Reducers: [
        reducer("add", [{ name: { some: "name" }, algebraic_type: { String: [] } }]),
        reducer("init", [], "Private"),
        reducer("onConnect", [], "Private"),
        reducer("onDisconnect", [], "Private"),
        reducer("sayHello", []),
        reducer("setCount", [
          { name: { some: "id" }, algebraic_type: { U64: [] } },
          { name: { some: "value" }, algebraic_type: { U32: [] } },
        ]),
      ],
    },
    {
      LifeCycleReducers: [
        { lifecycle_spec: { Init: [] }, function_name: "init" },
        { lifecycle_spec: { OnConnect: [] }, function_name: "onConnect" },
        { lifecycle_spec: { OnDisconnect: [] }, function_name: "onDisconnect" },
      ],
    },
    { CaseConversionPolicy: { SnakeCase: [] } },
  ],
};

function reducer(name: string, elements: unknown[], visibility = "ClientCallable") {
  return {
    source_name: name,
    params: { elements },
    visibility: { [visibility]: [] },
    ok_return_type: { Product: { elements: [] } },
    err_return_type: { String: [] },
  };
}

export interface StubServer {
  url: string;
  requests: StubRequest[];
  databases: Map<string, StubDatabase>;
  /** Lines pushed here are sent to `logs --follow` streams. */
  appendLog(database: string, line: string): void;
  close(): Promise<void>;
}

/** Starts the stub on 127.0.0.1 with a free port. */
export function startStubServer(): Promise<StubServer> {
  const requests: StubRequest[] = [];
  const databases = new Map<string, StubDatabase>();
  const followers = new Map<string, ((line: string) => void)[]>();
  let nextIdentity = 1;
  const app = new Hono();

  app.use("*", async (c, next) => {
    requests.push({
      method: c.req.method,
      path: c.req.path,
      query: { ...c.req.query() },
      authorization: c.req.header("authorization"),
      body: c.req.method === "GET" ? "" : await c.req.raw.clone().text(),
    });
    await next();
  });

  const find = (key: string) =>
    databases.get(key) ?? [...databases.values()].find((d) => d.names.includes(key));

  app.get("/v1/ping", (c) => c.body(null, 200));
  app.post("/v1/identity", (c) => {
    const identity = hexIdentity(nextIdentity++);
    return c.json({ identity, token: fakeToken(identity) });
  });
  app.get("/v1/identity/:id/databases", (c) =>
    c.json({
      identities: [...databases.values()].filter((d) => d.owner === c.req.param("id")).map((d) =>
        d.identity
      ),
    }));

  const publish = async (name: string | undefined, c: {
    req: {
      header(n: string): string | undefined;
      query(n: string): string | undefined;
      text(): Promise<string>;
    };
    json(v: unknown, s?: number): Response;
    text(t: string, s?: number): Response;
  }) => {
    const caller = identityFromAuthorization(c.req.header("authorization")) ??
      hexIdentity(nextIdentity++);
    const program = await c.req.text();
    const existing = name === undefined ? undefined : find(name);
    if (existing) {
      if (existing.owner !== caller) {
        return c.text(
          `${caller} is not authorized to perform action on database ${existing.identity}: update database`,
          403,
        );
      }
      existing.program = program;
      if (c.req.query("clear") === "true") existing.logLines = [];
      return c.json({
        Success: { domain: name ?? null, database_identity: existing.identity, op: "updated" },
      });
    }
    const identity = hexIdentity(nextIdentity++);
    databases.set(identity, {
      identity,
      owner: caller,
      names: name === undefined ? [] : [name],
      program,
      logLines: [JSON.stringify({
        ts: 1736263977447286,
        level: "Info",
        target: "__spacetimedb__",
        filename: "__spacetimedb__",
        function: "__spacetimedb__",
        message: "Database initialized",
      })],
    });
    return c.json({
      Success: { domain: name ?? null, database_identity: identity, op: "created" },
    });
  };
  app.post("/v1/database", (c) => publish(undefined, c));
  app.put("/v1/database/:name", (c) => publish(c.req.param("name"), c));
  app.post("/v1/database/:name/pre_publish", (c) => {
    const database = find(c.req.param("name"));
    if (!database) return c.text("not found", 404);
    return c.json({
      AutoMigrate: {
        migrate_plan: "Database Migration Plan\n(no changes)",
        break_clients: false,
        token: "0xabc",
        major_version_upgrade: false,
      },
    });
  });
  app.get("/v1/database/:name/identity", (c) => {
    const database = find(c.req.param("name"));
    return database
      ? c.text(database.identity)
      : c.text(`\`${c.req.param("name")}\` not found`, 404);
  });
  app.get("/v1/database/:name/names", (c) => {
    const database = find(c.req.param("name"));
    return database ? c.json({ names: database.names }) : c.text("not found", 404);
  });
  app.get("/v1/database/:name/schema", (c) => {
    if (!find(c.req.param("name"))) return c.text("not found", 404);
    if (c.req.query("version") !== "10") return c.text("bad version", 400);
    return c.json(FIXTURE_SCHEMA_V10);
  });
  app.post("/v1/database/:name/call/:func", async (c) => {
    if (!find(c.req.param("name"))) return c.text("not found", 404);
    if (!(c.req.header("content-type") ?? "").startsWith("application/json")) {
      return c.text("Expected request with `Content-Type: application/json`", 415);
    }
    const args = JSON.parse(await c.req.text());
    const func = c.req.param("func");
    if (func === "add") {
      if (args[0] === "") return c.text("name must not be empty", 530 as 500);
      return c.body(null, 200);
    }
    if (func === "say_hello" || func === "set_count") return c.body(null, 200);
    return c.text(`No such reducer or procedure \`${func}\``, 404);
  });
  app.get("/v1/database/:name/logs", (c) => {
    const database = find(c.req.param("name"));
    if (!database) return c.text("not found", 404);
    const caller = identityFromAuthorization(c.req.header("authorization"));
    if (caller !== database.owner) {
      return c.text(
        `${caller} is not authorized to perform action on database ${database.identity}: view module logs`,
        403,
      );
    }
    const numLines = c.req.query("num_lines");
    const lines = numLines === undefined
      ? database.logLines
      : database.logLines.slice(-Number(numLines) || database.logLines.length);
    c.header("Content-Type", "application/x-ndjson");
    if (c.req.query("follow") !== "true") {
      return c.body(lines.map((l) => l + "\n").join(""));
    }
    return streamText(c, async (stream) => {
      for (const line of lines) await stream.write(line + "\n");
      const queue: string[] = [];
      let wake: (() => void) | undefined;
      const list = followers.get(database.identity) ?? [];
      const push = (line: string) => {
        queue.push(line);
        wake?.();
      };
      list.push(push);
      followers.set(database.identity, list);
      stream.onAbort(() => wake?.());
      while (!stream.aborted) {
        if (queue.length === 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        await stream.write(queue.splice(0).map((l) => l + "\n").join(""));
      }
    });
  });
  app.delete("/v1/database/:name", (c) => {
    const database = find(c.req.param("name"));
    if (!database) return c.body(null, 200);
    if (identityFromAuthorization(c.req.header("authorization")) !== database.owner) {
      return c.text("not authorized to perform action on database: delete database", 403);
    }
    databases.delete(database.identity);
    return c.body(null, 200);
  });

  const controller = new AbortController();
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: controller.signal,
      onListen: ({ port }) => {
        resolve({
          url: `http://127.0.0.1:${port}`,
          requests,
          databases,
          appendLog(name, line) {
            const database = find(name);
            if (!database) throw new Error(`stub: no database ${name}`);
            database.logLines.push(line);
            for (const follower of followers.get(database.identity) ?? []) follower(line);
          },
          async close() {
            controller.abort();
            await server.finished;
          },
        });
      },
    }, app.fetch);
  });
}
