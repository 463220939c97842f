/**
 * The HTTP load client for the baselines (Node, undici), driven by driver.mjs.
 *
 *   node http_load.mjs --url http://127.0.0.1:PORT --pairs FILE --out FILE
 *        [--clients 64] [--inflight 1] [--warmup-ms 5000] [--measure-ms 10000]
 *        [--timeout-ms 15000] [--accounts 100000] [--watch name=pid ...]
 *
 * One undici Pool per client with `connections = inflight` keep-alive sockets, so a pipelined
 * client holds 40 requests on 40 sockets (no HTTP pipelining on a socket). Every socket is opened
 * with GET /health before the clock starts: a server whose event loop blocks on fsync otherwise
 * accepts late sockets seconds later and their first requests time out.
 *
 * undici is resolved from bench/baselines/node_modules (run from anywhere).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { runLoad } from "./driver.mjs";
import { startCpuSample } from "./proc_cpu.mjs";

const require = createRequire(new URL("../baselines/package.json", import.meta.url));
const { Pool } = require("undici");

/** @param {string[]} argv */
function parseFlags(argv) {
  /** @type {Record<string, string[]>} */
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`Unexpected argument '${arg}'`);
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i] ?? "";
    (flags[name] ??= []).push(value);
  }
  return flags;
}

/** @param {Uint8Array} bytes */
function decodePairs(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (bytes.length !== 4 + 8 * count) throw new Error("Pairs file has the wrong length");
  const from = new Uint32Array(count);
  const to = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    from[i] = view.getUint32(4 + 4 * i, true);
    to[i] = view.getUint32(4 + 4 * count + 4 * i, true);
  }
  return { from, to };
}

const flags = parseFlags(process.argv.slice(2));
const one = (name, fallback) => flags[name]?.at(-1) ?? fallback;
const url = one("url");
const pairsPath = one("pairs");
const outPath = one("out");
if (!url || !pairsPath || !outPath) throw new Error("Needs --url, --pairs and --out");
const clientCount = Number(one("clients", "64"));
const inflightPerClient = Number(one("inflight", "1"));
const warmupMs = Number(one("warmup-ms", "5000"));
const measureMs = Number(one("measure-ms", "10000"));
const timeoutMs = Number(one("timeout-ms", "15000"));
const accountCount = Number(one("accounts", "100000"));
/** @type {Record<string, number>} */
const watch = { client: process.pid };
for (const entry of flags.watch ?? []) {
  const [name, pid] = entry.split("=");
  watch[name] = Number(pid);
}

const pairs = decodePairs(readFileSync(pairsPath));
const pools = [];
for (let client = 0; client < clientCount; client++) {
  pools.push(
    new Pool(url, {
      connections: inflightPerClient,
      pipelining: 1,
      keepAliveTimeout: 120_000,
      keepAliveMaxTimeout: 120_000,
      headersTimeout: timeoutMs + 5_000,
      bodyTimeout: timeoutMs + 5_000,
      connectTimeout: 60_000,
    }),
  );
}

/** Opens every socket of every pool: concurrent GET /health until each pool has all connected. */
async function openAllSockets() {
  for (let round = 0; round < 20; round++) {
    const pending = [];
    for (const pool of pools) {
      if (pool.stats.connected >= inflightPerClient) continue;
      for (let i = 0; i < inflightPerClient * 2; i++) {
        pending.push(pool.request({ path: "/health", method: "GET" }).then((r) => r.body.dump()));
      }
    }
    if (pending.length === 0) return;
    await Promise.all(pending);
  }
  const short = pools.filter((pool) => pool.stats.connected < inflightPerClient).length;
  if (short > 0) throw new Error(`${short} clients could not open ${inflightPerClient} sockets`);
}

const JSON_HEADERS = { "content-type": "application/json" };

/** @returns {Promise<"ok" | "refused" | "failed">} */
async function send(client, from, to, amount) {
  const { statusCode, body } = await pools[client].request({
    path: "/transfer",
    method: "POST",
    headers: JSON_HEADERS,
    body: `{"from":${from},"to":${to},"amount":${amount}}`,
  });
  await body.dump();
  return statusCode === 200 ? "ok" : statusCode === 409 ? "refused" : "failed";
}

await openAllSockets();
const connectedSockets = pools.reduce((sum, pool) => sum + pool.stats.connected, 0);

let cpuSample;
let cpu = null;
const endTimer = setTimeout(() => {
  cpu = cpuSample?.stop() ?? null;
}, warmupMs + measureMs);
const result = await runLoad({
  pairs,
  clientCount,
  inflightPerClient,
  warmupMs,
  measureMs,
  timeoutMs,
  accountCount,
  send,
  onPhase(phase) {
    if (phase === "measure") cpuSample = startCpuSample(watch);
  },
});
clearTimeout(endTimer);
cpu ??= cpuSample?.stop() ?? null;
await Promise.all(pools.map((pool) => pool.close().catch(() => {})));

const { ackedDelta, unknownCount, ...summary } = result;
writeFileSync(
  outPath,
  JSON.stringify({
    ...summary,
    connectedSockets,
    cpu,
    client: { node: process.version, undici: require("undici/package.json").version },
    ackedDeltaBase64: Buffer.from(ackedDelta.buffer).toString("base64"),
    unknownCountBase64: Buffer.from(unknownCount.buffer).toString("base64"),
  }),
);
process.exit(0);
