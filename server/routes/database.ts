/**
 * /v1/database routes: publish, describe, call, schema, logs, names, delete, and
 * the WebSocket subscribe endpoint (server/ws/).
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { streamText } from "hono/streaming";
import { type Identity, requireOwner } from "../../auth/mod.ts";
import { BadRequestError, NotFoundError } from "../../lib/errors.ts";
import { HTTP_BODY_BYTES_MAX, MODULE_BYTES_MAX } from "../../lib/limits.ts";
import {
  type JsonOutput,
  moduleDefToSchemaJson,
  moduleDefToV9SchemaJson,
  productTypeToJson,
  stringifyJson,
  untypedValueToJson,
} from "../../protocol/mod.ts";
import { isWasmBinary, wasmBundle } from "../../worker/mod.ts";
import type { AppContext, AppEnv } from "../app.ts";
import type { Database } from "../database_registry.ts";
import { encodeCallArguments, procedureReturnToJson } from "../call_arguments.ts";
import { FollowQueue } from "../log_buffer.ts";
import { ResponseBudget } from "../response_budget.ts";
import { runSqlStatement } from "../sql_statement.ts";
import { httpHandlerRoute } from "./http_handlers.ts";

/** The key under which /sql answers are held: only the server-wide bound applies to them. */
const SQL_ANSWERS = {};
/** /sql answers from this size on are metered (smaller ones fit in the socket's buffers). */
const SQL_RESPONSE_METERED_BYTES_MIN = 1024 * 1024;

export function databaseRoutes(context: AppContext): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  const { registry, auth, bodies } = context;
  const responses = context.responses ?? new ResponseBudget();

  // Anonymous auth: a bearer token or ?token=, else a freshly minted identity.
  routes.use("*", async (c, next) => {
    if (/^\/v1\/database\/[^/]+\/route(\/|$)/.test(c.req.path)) return await next();
    const result = await auth.authenticateOrMint(
      c.req.raw.headers,
      new URL(c.req.url).searchParams,
    );
    c.set("auth", result);
    c.set("minted", result.minted);
    await next();
    if (c.res.status === 101) return;
    c.res.headers.set("spacetime-identity", result.identity.toHex());
    c.res.headers.set("spacetime-identity-token", result.token);
  });

  // Bodies are read before a database admits the request: a slow body must not hold up a
  // module update (server/request_body.ts bounds how long it may take).
  const readSmallBody = (c: Context<AppEnv>) =>
    bodies.readText(c.req.raw, HTTP_BODY_BYTES_MAX, "request body");

  const publish = async (c: Context<AppEnv>, target: string | undefined) => {
    const bundle = moduleBundle(
      c.req.query("host_type"),
      await bodies.read(c.req.raw, MODULE_BYTES_MAX, "module"),
    );
    const clear = c.req.query("clear") === "true";
    // SpacetimeDB: an unknown policy is `Compatible`; BreakClients needs pre_publish's token.
    const policy = {
      breakClients: c.req.query("policy") === "BreakClients",
      token: c.req.query("token"),
    };
    const { database, op } = await registry.publish(
      target,
      bundle,
      c.get("auth").identity,
      clear,
      policy,
    );
    return c.json({
      Success: {
        domain: database.names[0] ?? null,
        database_identity: database.identity.toHex(),
        op,
      },
    });
  };

  routes.post("/", (c) => publish(c, undefined));
  routes.put("/:name", (c) => publish(c, c.req.param("name")));

  routes.post("/:name/pre_publish", async (c) => {
    bodies.refuseAnnouncedOver(c.req.raw, MODULE_BYTES_MAX, "module");
    const database = registry.resolve(c.req.param("name"));
    if (!database) throw new NotFoundError(`\`${c.req.param("name")}\` not found`);
    requireOwner({
      caller: c.get("auth").identity,
      owner: database.owner,
      database: database.identity,
      action: "update database",
    });
    checkHostType(c.req.query("host_type"));
    // SpacetimeDB's server reads `style`, its CLI sends `pretty_print_style`: either works.
    const style = c.req.query("style") ?? c.req.query("pretty_print_style") ?? "AnsiColor";
    if (style !== "AnsiColor" && style !== "NoColor") {
      throw new BadRequestError(`Invalid pretty_print_style "${style}": use AnsiColor or NoColor`);
    }
    const bundle = moduleBundle(
      c.req.query("host_type"),
      await bodies.read(c.req.raw, MODULE_BYTES_MAX, "module"),
    );
    const outcome = await registry.prePublish(
      database,
      bundle,
      c.get("auth").identity,
      style === "AnsiColor",
    );
    if (outcome.kind === "manual") {
      return c.json({ ManualMigrate: { reason: outcome.reason, major_version_upgrade: false } });
    }
    return c.json({
      AutoMigrate: {
        migrate_plan: outcome.plan,
        break_clients: outcome.breakClients,
        token: outcome.token,
        major_version_upgrade: false,
      },
    });
  });

  routes.get("/:name", (c) => {
    const database = registry.require(c.req.param("name"));
    return c.json({
      database_identity: { __identity__: "0x" + database.identity.toHex() },
      owner_identity: { __identity__: "0x" + database.owner.toHex() },
      host_type: { [database.hostType]: [] },
      initial_program: "0x" + database.moduleHash,
    });
  });

  routes.get("/:name/identity", (c) => {
    const name = c.req.param("name");
    const database = registry.require(name);
    return c.text(database.identity.toHex());
  });

  routes.get("/:name/names", (c) => {
    const database = registry.require(c.req.param("name"));
    return c.json({ names: database.names });
  });

  // `rename`: replaces the database's names with the JSON array in the body (owner only).
  routes.put("/:name/names", async (c) => {
    const database = registry.require(c.req.param("name"));
    let names: unknown;
    try {
      names = JSON.parse(await readSmallBody(c));
    } catch {
      throw new BadRequestError("The body must be a JSON array of database names");
    }
    if (!Array.isArray(names) || names.length === 0 || names.some((n) => typeof n !== "string")) {
      throw new BadRequestError("The body must be a non-empty JSON array of database names");
    }
    await registry.setNames(database, names as string[], c.get("auth").identity);
    return c.json({ Success: { domain: names[0], database_identity: database.identity.toHex() } });
  });

  routes.delete("/:name", async (c) => {
    const database = registry.resolve(c.req.param("name"));
    if (!database) return c.body(null, 200);
    await registry.delete(database, c.get("auth").identity);
    return c.body(null, 200);
  });

  // The module's own HTTP handlers (no authentication: the handler decides).
  const handleRoute = httpHandlerRoute({ ...context, responses });
  routes.all("/:name/route", handleRoute);
  routes.all("/:name/route/*", handleRoute);

  routes.get("/:name/schema", async (c) => {
    const database = registry.require(c.req.param("name"));
    // A database recovering at server start knows its module once its process is up.
    if (!database.hasModule) await database.ensureAwake();
    const version = c.req.query("version");
    if (version === "10") return jsonText(c, moduleDefToSchemaJson(database.module.def));
    if (version === "9") return jsonText(c, moduleDefToV9SchemaJson(database.module.def));
    throw new BadRequestError(
      version === undefined
        ? "Missing query parameter `version` (9 or 10)"
        : `Unsupported schema version "${version}": use 9 or 10`,
    );
  });

  routes.post("/:name/call/:func", async (c) => {
    const database = registry.require(c.req.param("name"));
    const bodyText = await readSmallBody(c);
    // Waits out a module update in progress; the call then runs on the new module.
    const release = await database.admit();
    try {
      return await callFunction(c, database, c.req.param("func"), bodyText);
    } finally {
      release();
    }
  });

  const callFunction = async (
    c: Context<AppEnv>,
    database: Database,
    name: string,
    bodyText: string,
  ) => {
    const contentType = c.req.header("content-type") ?? "";
    if (!contentType.startsWith("application/json")) {
      return c.text("Expected request with `Content-Type: application/json`", 415);
    }
    const caller = c.get("auth");
    const reducer = database.module.reducersByName.get(name);
    const procedure = reducer ? undefined : database.module.proceduresByName.get(name);
    if (!reducer && !procedure) {
      return c.text(`No such reducer or procedure \`${name}\``, 404);
    }
    if (reducer?.lifecycle) {
      return c.text(`Can't directly call special ${reducer.lifecycle} lifecycle reducer`, 400);
    }
    const params = (reducer ?? procedure)!.params;
    const args = encodeCallArguments(database.module, params, bodyText);
    const host = database.host;
    const sender = caller.identity.toBigInt();
    const connectionId = randomConnectionId();
    const timestampMicros = BigInt(Date.now()) * 1000n;
    // client_connected first: a module that refuses the caller must not see the call.
    const connect = await host.connect({
      sender,
      connectionId,
      timestampMicros,
      jwtPayload: caller.payloadJson,
    });
    if (connect.status !== "committed") {
      // The refusal may come from rows that are not durable yet.
      await context.hub.durable(database, connect.txOffset);
      return c.text(connect.message ?? "Connection refused", 403);
    }
    const call = reducer
      ? host.callReducer({ reducer: name, args, sender, connectionId, timestampMicros })
      : host.callProcedure({ procedure: name, args, sender, connectionId, timestampMicros });
    // The disconnect goes out in the same batch as the call; its outcome never matters
    // to the caller and must not go unhandled.
    host.disconnect({ sender, connectionId, timestampMicros }).catch(() => {});
    const result = await call;
    // Committed or not, the result may reflect transactions that are not durable yet.
    await context.hub.durable(database, result.txOffset);
    c.header("spacetime-energy-used", "0");
    c.header("spacetime-execution-duration-micros", String(result.durationMicros));
    if (result.kind === "procedure") {
      if (!result.ok) return c.text(result.message ?? "Procedure failed", 500);
      return jsonText(c, procedureReturnToJson(database.module, procedure!, result.value!));
    }
    if (result.status === "committed") return c.body(null, 200);
    // deno-lint-ignore no-explicit-any
    return c.text(result.message ?? "Reducer failed", 530 as any);
  };

  // Lightcone's own: the hosts this database's procedures may fetch from (`--http-allow`),
  // for the owner; `describe` prints it.
  routes.get("/:name/http-allow", (c) => {
    const database = registry.require(c.req.param("name"));
    requireOwner({
      caller: c.get("auth").identity,
      owner: database.owner,
      database: database.identity,
      action: "view the outbound HTTP allow-list",
    });
    return c.json({ allow: registry.httpAllowListFor(database) });
  });

  routes.get("/:name/logs", (c) => {
    const database = registry.require(c.req.param("name"));
    requireOwner({
      caller: c.get("auth").identity,
      owner: database.owner,
      database: database.identity,
      action: "view module logs",
    });
    const numLinesText = c.req.query("num_lines");
    const numLines = numLinesText === undefined ? undefined : Number(numLinesText);
    if (numLines !== undefined && (!Number.isInteger(numLines) || numLines < 0)) {
      throw new BadRequestError(`Invalid num_lines "${numLinesText}": expected a whole number`);
    }
    const follow = c.req.query("follow") === "true";
    c.header("Content-Type", "application/x-ndjson");
    c.header("Cache-Control", "no-cache");
    const initial = database.logs.tail(numLines);
    if (!follow) return c.body(initial.map((line) => line + "\n").join(""));
    return streamText(c, async (stream) => {
      for (const line of initial) await stream.write(line + "\n");
      // Bounded: a reader slower than the database's log loses lines, with a marker.
      const pending = new FollowQueue();
      let wake: (() => void) | undefined;
      let closed = false;
      const unfollow = database.logs.follow((line) => {
        pending.push(line);
        wake?.();
      }, () => {
        closed = true;
        wake?.();
      });
      stream.onAbort(() => {
        unfollow();
        wake?.();
      });
      while (!stream.aborted && !stream.closed) {
        if (pending.empty && closed) break;
        if (pending.empty) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        const lines = pending.take();
        await stream.write(lines.map((line) => line + "\n").join(""));
      }
      unfollow();
    });
  });

  // SQL over HTTP: the /sql grammar (SELECT with projections, COUNT, LIMIT and joins; owner-only
  // INSERT/UPDATE/DELETE/SET; SHOW); non-owners see public tables only. Answers once the state
  // it read is durable unless `confirmed=false`; a write always waits for its own commit.
  routes.post("/:name/sql", async (c) => {
    const database = registry.require(c.req.param("name"));
    const result = await runSqlStatement(database, {
      sql: await readSmallBody(c),
      caller: c.get("auth").identity,
      confirmed: c.req.query("confirmed") !== "false",
    });
    const rowType = { tag: "Product" as const, value: result.schema };
    const rows: JsonOutput[] = result.rows.map((row) =>
      untypedValueToJson(rowType, row, result.typespace)
    );
    const text = stringifyJson([{
      schema: productTypeToJson(result.schema),
      rows,
      total_duration_micros: result.totalDurationMicros,
      stats: {
        rows_inserted: result.rowsInserted,
        rows_deleted: result.rowsDeleted,
        rows_updated: result.rowsUpdated,
      },
    }]);
    if (text.length < SQL_RESPONSE_METERED_BYTES_MIN) return jsonText(c, text);
    // A large answer counts against the server-wide bound until the client has read it.
    const bytes = new TextEncoder().encode(text);
    const reservation = await responses.reserve(SQL_ANSWERS, bytes.length, "this SQL answer", {
      perKeyBytesMax: Infinity,
    });
    return new Response(responses.meteredBody(bytes, reservation), {
      status: 200,
      headers: { "Content-Type": "application/json" },
    });
  });

  // Lightcone extension: write a snapshot now (owner only), e.g. before a backup.
  routes.post("/:name/snapshot", async (c) => {
    const database = registry.require(c.req.param("name"));
    const txOffset = await registry.snapshot(database, c.get("auth").identity);
    return c.json({ tx_offset: txOffset });
  });

  routes.get("/:name/subscribe", async (c) => {
    const database = registry.require(c.req.param("name"));
    // A connection made during a module update is served by the new module; one admitted
    // before it counts as work in flight until its InitialConnection is sent, so the update
    // waits for it (then closes it like any connected client) instead of cutting it short.
    const release = await database.admit();
    try {
      return context.hub.upgrade(c, database, release);
    } catch (error) {
      release();
      throw error;
    }
  });

  return routes;
}

function checkHostType(hostType: string | undefined): void {
  if (hostType !== undefined && hostType !== "Js" && hostType !== "Wasm") {
    throw new BadRequestError(
      `Unsupported host_type "${hostType}": this server runs JavaScript modules (host_type=Js) ` +
        "and WebAssembly modules (host_type=Wasm)",
    );
  }
}

/**
 * The module bundle of a publish body: a JavaScript bundle (host_type=Js, our default) or a
 * WebAssembly binary (host_type=Wasm, or any body with the wasm magic number; wasm/bundle.ts
 * wraps it so that it travels as every bundle does).
 */
function moduleBundle(hostType: string | undefined, bytes: Uint8Array): string {
  checkHostType(hostType);
  if (isWasmBinary(bytes)) {
    if (hostType === "Js") {
      throw new BadRequestError(
        "The module is a WebAssembly binary but host_type=Js was given: publish it with " +
          "host_type=Wasm",
      );
    }
    return wasmBundle(bytes);
  }
  if (hostType === "Wasm") {
    throw new BadRequestError(
      "host_type=Wasm but the body is not a WebAssembly module (it does not start with \\0asm)",
    );
  }
  return decodeModuleSource(bytes);
}

function decodeModuleSource(bytes: Uint8Array): string {
  if (bytes.length === 0) {
    throw new BadRequestError("The request body is empty: send the module bundle");
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BadRequestError("The module is not valid UTF-8: expected a JavaScript bundle");
  }
}

/** Responds with JSON text produced by our own writer (which keeps big integers exact). */
function jsonText(c: Context<AppEnv>, text: string): Response {
  return c.body(text, 200, { "Content-Type": "application/json" });
}

export function randomConnectionId(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let value = 0n;
  for (let i = 15; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  return value === 0n ? 1n : value;
}

export type { Identity };
