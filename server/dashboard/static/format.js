// @ts-check
/**
 * The dashboard's pure helpers (no DOM, no network): parsing what the API returns and turning
 * values into text. Imported by app.js in the browser and by server/dashboard/format_test.ts.
 */

/** @param {string} hex */
export function shortHex(hex) {
  return hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

/**
 * JSON.parse that keeps integers beyond 2^53 exact (as bigint) where the browser gives the
 * reviver the source text; elsewhere they are rounded like any JSON.parse.
 * @param {string} text
 */
export function parseJson(text) {
  return JSON.parse(
    text,
    /** @type {any} */ (function (
      /** @type {string} */ _key,
      /** @type {unknown} */ value,
      /** @type {any} */ context,
    ) {
      if (
        typeof value === "number" && !Number.isSafeInteger(value) &&
        typeof context?.source === "string" && /^-?\d+$/.test(context.source)
      ) {
        return BigInt(context.source);
      }
      return value;
    }),
  );
}

/** @param {string} name SQL identifier, double-quoted */
export function quoteIdent(name) {
  return `"${name.replaceAll('"', '""')}"`;
}

/** @param {string} token */
export function hexIdentityClaim(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replaceAll("-", "+").replaceAll("_", "/");
    const claims = JSON.parse(atob(base64 + "=".repeat((4 - base64.length % 4) % 4)));
    const hex = claims?.hex_identity;
    return typeof hex === "string" && /^[0-9a-fA-F]{64}$/.test(hex) ? hex.toLowerCase() : null;
  } catch {
    return null;
  }
}

/**
 * @typedef {{ name: string, labels: Record<string, string>, value: number }} Sample
 * @param {string} text
 * @returns {Sample[]}
 */
export function parseMetrics(text) {
  /** @type {Sample[]} */
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    /** @type {Record<string, string>} */
    const labels = {};
    const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const label of (match[2] ?? "").matchAll(labelPattern)) {
      labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/**
 * Per-database values by label, and the server's own. A sample's key is its name followed by the
 * values of its labels other than `database` (in label-name order), so samples that differ only
 * by `status`, `stage` or `kind` stay apart: `lightcone_reducer_calls_total:committed`,
 * `lightcone_websocket_call_seconds_count:reply`. Histogram buckets (`le`) are skipped.
 * @param {Sample[]} samples
 */
export function metricsByDatabase(samples) {
  /** @type {Map<string, Record<string, number>>} */
  const databases = new Map();
  /** @type {Record<string, number>} */
  const server = {};
  for (const sample of samples) {
    const database = sample.labels.database;
    if (database === undefined) {
      server[sample.name] = sample.value;
      continue;
    }
    if (sample.labels.le !== undefined) continue;
    let values = databases.get(database);
    if (!values) databases.set(database, values = {});
    let key = sample.name;
    for (const label of Object.keys(sample.labels).sort()) {
      if (label !== "database") key += `:${sample.labels[label]}`;
    }
    values[key] = sample.value;
  }
  return { databases, server };
}

/** @param {Record<string, number> | undefined} m */
export function stateOf(m) {
  if (!m) return "unknown";
  if (m.lightcone_database_up === 0) return "stopped";
  if (m.lightcone_database_hibernated === 1) return "hibernated";
  return "running";
}

/**
 * "JS" or "Wasm": what runs a database's module, from GET /v1/database/:name's `host_type`
 * (`{ "Js": [] }` or `{ "Wasm": [] }`); "?" for anything else.
 * @param {unknown} hostType
 */
export function hostTypeLabel(hostType) {
  const tag = hostType !== null && typeof hostType === "object"
    ? Object.keys(hostType)[0]
    : undefined;
  return tag === "Js" ? "JS" : tag === "Wasm" ? "Wasm" : "?";
}

/**
 * @typedef {{ database: string, identity: string, durableTx?: number, replicatedTx?: number,
 *   lagTx?: number, lagBytes?: number, appliedTx?: number, stopped: string | null }} ReplicatedDatabase
 * @typedef {{ role: "none" } | { role: "primary", nats: string, databases: ReplicatedDatabase[] }
 *   | { role: "replica", nats: string, pendingMessages: number, databases: ReplicatedDatabase[] }}
 *   ReplicationStatus
 */

/**
 * One line on this server's replication role (GET /dashboard/api/replication); "" for none.
 * @param {ReplicationStatus} status
 */
export function replicationSummary(status) {
  if (status.role === "primary") {
    return `Primary: publishes every database to ${status.nats}`;
  }
  if (status.role === "replica") {
    return `Read replica of ${status.nats}: ${status.pendingMessages} stream message` +
      `${status.pendingMessages === 1 ? "" : "s"} not applied yet`;
  }
  return "";
}

/**
 * A database's replication progress as text: on a primary its lag behind JetStream, on a
 * replica the transactions applied here; why it stopped, if it did.
 * @param {ReplicatedDatabase} row
 * @param {ReplicationStatus["role"]} role
 */
export function replicationProgress(row, role) {
  if (row.stopped) return `stopped: ${row.stopped}`;
  if (role === "primary") {
    return row.lagTx === 0
      ? `in sync (${formatCount(row.replicatedTx)} tx)`
      : `${formatCount(row.lagTx)} tx (${formatBytes(row.lagBytes)}) behind`;
  }
  return `${formatCount(row.appliedTx)} tx applied`;
}

/** @param {number | undefined} bytes */
export function formatBytes(bytes) {
  if (bytes === undefined || Number.isNaN(bytes)) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** @param {number | undefined} n */
export function formatCount(n) {
  return n === undefined || Number.isNaN(n) ? "—" : n.toLocaleString("en-US");
}

/** @param {Record<string, number> | undefined} m @param {string} name */
export function averageMs(m, name) {
  const count = m?.[`${name}_count`];
  if (!m || !count) return "—";
  return `${((m[`${name}_sum`] / count) * 1000).toFixed(2)} ms`;
}

/**
 * @param {any} type an AlgebraicType in SATS-JSON
 * @param {any[]} typespace
 * @returns {string}
 */
export function typeName(type, typespace) {
  const [tag, inner] = Object.entries(type ?? {})[0] ?? ["?", null];
  if (tag === "Ref") return typeName(typespace[inner], typespace);
  if (tag === "Array") return `${typeName(inner, typespace)}[]`;
  if (tag === "Product") {
    const special = specialProduct(inner);
    if (special) return special;
    const fields = inner.elements.map((/** @type {any} */ e, /** @type {number} */ i) =>
      `${e.name?.some ?? i}: ${typeName(e.algebraic_type, typespace)}`
    );
    return `{ ${fields.join(", ")} }`;
  }
  if (tag === "Sum") {
    const variants = inner.variants;
    if (isOption(inner)) return `Option<${typeName(variants[0].algebraic_type, typespace)}>`;
    return variants.map((/** @type {any} */ v) => v.name?.some ?? "?").join(" | ");
  }
  return tag.toLowerCase();
}

/** @param {any} product */
export function specialProduct(product) {
  if (product?.elements?.length !== 1) return null;
  const name = product.elements[0].name?.some;
  if (name === "__identity__") return "Identity";
  if (name === "__connection_id__") return "ConnectionId";
  if (name === "__timestamp_micros_since_unix_epoch__") return "Timestamp";
  if (name === "__time_duration_micros__") return "TimeDuration";
  if (name === "__uuid__") return "Uuid";
  return null;
}

/** @param {any} sum */
export function isOption(sum) {
  const v = sum?.variants;
  return v?.length === 2 && v[0].name?.some === "some" && v[1].name?.some === "none";
}

/**
 * A cell's text for a value of `type`, both as /sql writes them in SATS-JSON: a product is the
 * array of its fields, a sum `[tag, payload]`; Identity, ConnectionId and the like are products
 * of one specially named field, shown as that field; a Timestamp as an ISO date.
 * @param {any} type @param {unknown} value @param {any[]} typespace
 * @returns {string}
 */
export function formatValue(type, value, typespace) {
  const [tag, inner] = Object.entries(type ?? {})[0] ?? ["?", null];
  if (tag === "Ref" && typespace[inner] !== undefined) {
    return formatValue(typespace[inner], value, typespace);
  }
  if (tag === "Product" && Array.isArray(value)) {
    const special = specialProduct(inner);
    if (special === "Timestamp") {
      const date = new Date(Number(value[0]) / 1000);
      return Number.isFinite(date.getTime()) ? date.toISOString() : formatScalar(value[0]);
    }
    if (special === "TimeDuration") return `${formatScalar(value[0])} µs`;
    if (special) return formatScalar(value[0]);
    const fields = inner.elements.map((/** @type {any} */ e, /** @type {number} */ i) =>
      `${e.name?.some ?? i}: ${formatValue(e.algebraic_type, value[i], typespace)}`
    );
    return `{ ${fields.join(", ")} }`;
  }
  if (
    tag === "Sum" && Array.isArray(value) && value.length === 2 && typeof value[0] === "number"
  ) {
    const variant = inner.variants[value[0]];
    if (variant === undefined) return formatScalar(value);
    if (isOption(inner)) {
      return value[0] === 0 ? formatValue(variant.algebraic_type, value[1], typespace) : "none";
    }
    const name = variant.name?.some ?? String(value[0]);
    if (variant.algebraic_type?.Product?.elements?.length === 0) return name;
    return `${name}(${formatValue(variant.algebraic_type, value[1], typespace)})`;
  }
  if (tag === "Array" && Array.isArray(value)) {
    return `[${value.map((v) => formatValue(inner, v, typespace)).join(", ")}]`;
  }
  return formatScalar(value);
}

/** @param {unknown} value @returns {string} */
export function formatScalar(value) {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v));
}

// ---------------------------------------------------------------------------------------------
// The module (reducers, procedures, views, schedules from /schema?version=9, HTTP routes from
// version 10) and the arguments of a call (the JSON body POST /v1/database/:name/call/:func reads).

/** The V9 lifecycle variant names, as the reducers' `lifecycle` option writes them. */
const LIFECYCLE_NAMES = /** @type {Record<string, string>} */ ({
  Init: "init",
  OnConnect: "client_connected",
  OnDisconnect: "client_disconnected",
});

/** @param {any} option a SATS-JSON option (`{ some: v }` or `{ none: [] }`) */
function someOf(option) {
  return option && typeof option === "object" && "some" in option ? option.some : undefined;
}

/**
 * @typedef {{ name: string, type: any }} Param
 * @param {any} product a ProductType in SATS-JSON
 * @returns {Param[]}
 */
export function paramsOf(product) {
  return (product?.elements ?? []).map((/** @type {any} */ e, /** @type {number} */ i) => ({
    name: someOf(e.name) ?? String(i),
    type: e.algebraic_type,
  }));
}

/**
 * What a module exports, from the V9 schema JSON.
 * @param {any} schema
 */
export function moduleSummary(schema) {
  /** @type {any[]} */
  const typespace = schema?.typespace?.types ?? [];
  /** @type {{ name: string, params: Param[], lifecycle: string | null }[]} */
  const reducers = (schema?.reducers ?? []).map((/** @type {any} */ r) => {
    const tag = Object.keys(someOf(r.lifecycle) ?? {})[0];
    return {
      name: String(r.name),
      params: paramsOf(r.params),
      lifecycle: tag === undefined ? null : (LIFECYCLE_NAMES[tag] ?? tag),
    };
  });
  /** @type {{ name: string, params: Param[], returnType: any }[]} */
  const procedures = [];
  /** @type {{ name: string, params: Param[], returnType: any, anonymous: boolean, isPublic: boolean }[]} */
  const views = [];
  for (const item of schema?.misc_exports ?? []) {
    if (item?.Procedure) {
      const p = item.Procedure;
      procedures.push({ name: p.name, params: paramsOf(p.params), returnType: p.return_type });
    } else if (item?.View) {
      const v = item.View;
      views.push({
        name: v.name,
        params: paramsOf(v.params),
        returnType: v.return_type,
        anonymous: v.is_anonymous === true,
        isPublic: v.is_public === true,
      });
    }
  }
  const schedules = [];
  for (const table of schema?.tables ?? []) {
    const schedule = someOf(table.schedule);
    if (!schedule) continue;
    const columns = typespace[table.product_type_ref]?.Product?.elements ?? [];
    const at = columns[schedule.scheduled_at_column];
    schedules.push({
      table: String(table.name),
      reducer: String(schedule.reducer_name),
      column: someOf(at?.name) ?? String(schedule.scheduled_at_column),
    });
  }
  return { typespace, reducers, procedures, views, schedules };
}

/**
 * The HTTP routes of a module, from the V10 schema JSON (V9 has none); an empty list when the
 * module has no HttpRoutes section.
 * @param {any} schemaV10
 * @returns {{ method: string, path: string, handler: string }[]}
 */
export function httpRoutesOf(schemaV10) {
  const section = (schemaV10?.sections ?? []).find((/** @type {any} */ s) => s?.HttpRoutes);
  return (section?.HttpRoutes ?? []).map((/** @type {any} */ r) => {
    const method = r.method?.Method;
    const name = method === undefined
      ? "any"
      : method.Extension !== undefined
      ? String(method.Extension)
      : Object.keys(method)[0]?.toUpperCase() ?? "?";
    return { method: name, path: String(r.path), handler: String(r.handler_function) };
  });
}

/** @param {any} type @param {any[]} typespace */
function resolveRef(type, typespace) {
  let resolved = type;
  for (let hops = 0; resolved?.Ref !== undefined && hops < 100; hops++) {
    resolved = typespace[resolved.Ref];
  }
  return resolved;
}

/** @type {Record<string, [boolean, number]>} signed, bits */
const INTEGERS = {
  U8: [false, 8],
  I8: [true, 8],
  U16: [false, 16],
  I16: [true, 16],
  U32: [false, 32],
  I32: [true, 32],
  U64: [false, 64],
  I64: [true, 64],
  U128: [false, 128],
  I128: [true, 128],
  U256: [false, 256],
  I256: [true, 256],
};

/** @param {string} text @param {string} tag */
function parseInteger(text, tag) {
  const [signed, bits] = INTEGERS[tag];
  if (!/^[+-]?\d+$/.test(text)) {
    throw new Error(`expected a whole number (${tag.toLowerCase()}), got "${text}"`);
  }
  const value = BigInt(text);
  const min = signed ? -(1n << BigInt(bits - 1)) : 0n;
  const max = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
  if (value < min || value > max) {
    throw new Error(`${text} is out of range for ${tag.toLowerCase()} (${min} to ${max})`);
  }
  return value;
}

/** @param {string} text @param {string} expected */
function parseJsonArgument(text, expected) {
  try {
    return parseJson(text);
  } catch (error) {
    throw new Error(
      `expected ${expected} as JSON: ${error instanceof Error ? error.message : error}`,
    );
  }
}

/** Hex digits of the special products entered as hex. */
const HEX_DIGITS = /** @type {Record<string, number>} */ ({
  Identity: 64,
  ConnectionId: 32,
  Uuid: 32,
});

/**
 * One call argument typed into the form, as the SATS-JSON value the call route reads: integers
 * exact (bigint, written as JSON numbers by callBody), bool `true`/`false`, a string as typed,
 * Identity/ConnectionId/Uuid as hex, a Timestamp as microseconds or an ISO date, an option empty
 * for none; products, arrays and sums as SATS-JSON text (a product as the array of its fields
 * or an object by field name, a sum as `{"variant": payload}` or `[tag, payload]`, a unit
 * variant also by its bare name, a u8 array also as hex). What the form cannot check (the
 * shape of JSON) the server checks, and its error is shown.
 * @param {any} type an AlgebraicType in SATS-JSON
 * @param {string} text
 * @param {any[]} typespace
 * @returns {unknown}
 */
export function parseArgument(type, text, typespace) {
  const resolved = resolveRef(type, typespace);
  const [tag, inner] = Object.entries(resolved ?? {})[0] ?? ["?", null];
  const trimmed = text.trim();
  if (tag in INTEGERS) return parseInteger(trimmed, tag);
  switch (tag) {
    case "Bool":
      if (trimmed === "true") return true;
      if (trimmed === "false") return false;
      throw new Error(`expected true or false, got "${text}"`);
    case "String":
      return text;
    case "F32":
    case "F64": {
      const value = Number(trimmed);
      if (trimmed === "" || !Number.isFinite(value)) {
        throw new Error(`expected a finite number (${tag.toLowerCase()}), got "${text}"`);
      }
      return value;
    }
    case "Product": {
      const special = specialProduct(inner);
      if (special !== null && special in HEX_DIGITS) {
        const hex = trimmed.replace(/^0x/i, "");
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length > HEX_DIGITS[special]) {
          throw new Error(
            `expected ${special} as up to ${HEX_DIGITS[special]} hex digits, got "${text}"`,
          );
        }
        return `0x${hex.toLowerCase().padStart(HEX_DIGITS[special], "0")}`;
      }
      if (special === "TimeDuration") return parseInteger(trimmed, "I64");
      if (special === "Timestamp") {
        if (/^[+-]?\d+$/.test(trimmed)) return parseInteger(trimmed, "I64");
        const ms = Date.parse(trimmed);
        if (trimmed === "" || Number.isNaN(ms)) {
          throw new Error(
            `expected a Timestamp as microseconds since 1970 or an ISO date, got "${text}"`,
          );
        }
        return BigInt(ms) * 1000n;
      }
      const value = parseJsonArgument(
        trimmed,
        "a product (an array of its fields in order, or an object by field name)",
      );
      if (typeof value !== "object" || value === null) {
        throw new Error(`expected a product as a JSON array or object, got ${trimmed}`);
      }
      return value;
    }
    case "Sum": {
      const variants = inner?.variants ?? [];
      if (isOption(inner)) {
        if (trimmed === "") return null;
        // Written out as `{"some": v}`: a bare array could read as a `[tag, payload]` sum.
        return { some: parseArgument(variants[0].algebraic_type, text, typespace) };
      }
      const names = variants.map((/** @type {any} */ v) => someOf(v.name) ?? "?");
      if (names.includes(trimmed)) return trimmed;
      return parseJsonArgument(
        trimmed,
        `one of ${names.join(" | ")} ({"variant": payload} or [tag, payload])`,
      );
    }
    case "Array": {
      const element = Object.keys(resolveRef(inner, typespace) ?? {})[0];
      if (element === "U8" && /^(0x)?([0-9a-fA-F]{2})*$/.test(trimmed) && trimmed !== "") {
        return trimmed;
      }
      const value = parseJsonArgument(trimmed, "an array");
      if (!Array.isArray(value)) throw new Error(`expected a JSON array, got ${trimmed}`);
      return value;
    }
  }
  throw new Error(`a parameter of type ${tag} cannot be entered here`);
}

/**
 * JSON text of a value that may hold bigints, written as exact JSON numbers.
 * @param {unknown} value
 * @returns {string}
 */
export function toJsonText(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const fields = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`);
    return `{${fields.join(",")}}`;
  }
  const text = JSON.stringify(value);
  if (text === undefined) throw new Error(`${String(value)} has no JSON form`);
  return text;
}

/**
 * The body of a call: the JSON array of the arguments in parameter order. A bad argument
 * throws naming the parameter and its type.
 * @param {Param[]} params @param {string[]} texts @param {any[]} typespace
 */
export function callBody(params, texts, typespace) {
  const values = params.map((param, i) => {
    try {
      return parseArgument(param.type, texts[i] ?? "", typespace);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`${param.name} (${typeName(param.type, typespace)}): ${message}`);
    }
  });
  return toJsonText(values);
}
