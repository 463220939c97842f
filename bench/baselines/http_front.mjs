/**
 * The HTTP front end shared by both baseline servers (node:http, no framework):
 *
 *   GET  /health                       200 "ok" (the load client uses it to open every socket first)
 *   POST /transfer {"from","to","amount"}  200 committed | 409 refused | 400 bad body | 500 failed
 *   GET  /balances                     200 {"ids":[...],"balances":[...]} (every row, by id)
 *   GET  /info                         200 settings read back from the database, versions
 *   GET  /stats                        200 server-side counters (PostgreSQL retries)
 *
 * The process prints one JSON line {"ready":true,"port":N,...info} on stdout once it listens, and
 * exits cleanly on SIGTERM.
 */
import http from "node:http";

const BODY_BYTES_MAX = 4096;

/**
 * @param {{
 *   port: number,
 *   transfer: (from: number, to: number, amount: number) => "ok" | "refused" | Promise<"ok" | "refused">,
 *   balances: () => Promise<{ ids: number[], balances: number[] }> | { ids: number[], balances: number[] },
 *   info: Record<string, unknown>,
 *   stats?: () => Record<string, unknown>,
 *   close: () => Promise<void> | void,
 * }} options
 */
export function serve(options) {
  const server = http.createServer((request, response) => {
    handle(options, request, response).catch((error) => {
      reply(response, 500, { error: String(error?.message ?? error) });
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  server.listen({ port: options.port, host: "127.0.0.1", backlog: 4096 }, () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : options.port;
    process.stdout.write(JSON.stringify({ ready: true, port, ...options.info }) + "\n");
  });
  const stop = () => {
    server.close();
    server.closeAllConnections();
    Promise.resolve(options.close()).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return server;
}

/** @param {http.ServerResponse} response @param {number} status @param {unknown} body */
function reply(response, status, body) {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

/** @param {http.IncomingMessage} request */
function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on("data", (chunk) => {
      size += chunk.length;
      if (size > BODY_BYTES_MAX) {
        reject(new Error(`Request body over ${BODY_BYTES_MAX} bytes`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

/** @param {unknown} value */
function isAccountNumber(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

async function handle(options, request, response) {
  const path = request.url ?? "/";
  if (request.method === "POST" && path === "/transfer") {
    let body;
    try {
      body = JSON.parse(await readBody(request));
    } catch {
      return reply(response, 400, { error: "Body is not JSON" });
    }
    const { from, to, amount } = body ?? {};
    if (!isAccountNumber(from) || !isAccountNumber(to) || !isAccountNumber(amount)) {
      return reply(response, 400, { error: "Expected integer from, to and amount" });
    }
    const outcome = await options.transfer(from, to, amount);
    return outcome === "ok"
      ? reply(response, 200, { ok: true })
      : reply(response, 409, { error: "Transfer refused" });
  }
  if (request.method === "GET" && path === "/health") {
    response.writeHead(200, { "content-type": "text/plain", "content-length": 2 });
    return response.end("ok");
  }
  if (request.method === "GET" && path === "/balances") {
    return reply(response, 200, await options.balances());
  }
  if (request.method === "GET" && path === "/info") return reply(response, 200, options.info);
  if (request.method === "GET" && path === "/stats") {
    return reply(response, 200, options.stats?.() ?? {});
  }
  return reply(response, 404, { error: `No route for ${request.method} ${path}` });
}

/** Reads `--name value` flags. @param {string[]} argv */
export function parseFlags(argv) {
  /** @type {Record<string, string>} */
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`Unexpected argument '${arg}'`);
    const eq = arg.indexOf("=");
    if (eq > 0) flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    else flags[arg.slice(2)] = argv[++i] ?? "";
  }
  return flags;
}
