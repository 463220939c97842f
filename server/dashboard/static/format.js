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
