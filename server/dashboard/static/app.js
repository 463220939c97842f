// @ts-check
/**
 * The Lightcone operator dashboard (served at /dashboard by server/dashboard/mod.ts).
 *
 * Everything it shows comes from the public HTTP API with the token the operator signed in
 * with, sent as `Authorization: Bearer` and kept in this page's memory only (never in a URL or in
 * storage: a page a module's HTTP handler serves on this origin could read sessionStorage), so it
 * can do nothing that token could not do with curl. Pages are built with DOM calls and textContent
 * only (never HTML from data), under a CSP that allows this origin's script and nothing else.
 */

import {
  averageMs,
  callBody,
  formatBytes,
  formatCount,
  formatValue,
  hexIdentityClaim,
  hostTypeLabel,
  httpRoutesOf,
  metricsByDatabase,
  moduleSummary,
  parseJson,
  parseMetrics,
  quoteIdent,
  replicationProgress,
  replicationSummary,
  shortHex,
  stateOf,
  typeName,
} from "./format.js";

const PAGE_ROWS = 50;
const LOG_LINES_INITIAL = 200;
const LOG_LINES_SHOWN_MAX = 2000;
/** Row counts in flight at once, so a schema of many tables does not flood the database. */
const COUNT_REQUESTS_MAX = 4;

/** @type {{ token: string | null, identity: string | null }} */
const session = { token: /** @type {string | null} */ (null), identity: null };

/** Stops work of the page being left (a log follow, say) when the route changes. */
let leavePage = new AbortController();

// ---------------------------------------------------------------------------------------------
// DOM helpers: elements from tag, properties and children; text only through textContent.

/**
 * @param {string} tag
 * @param {Record<string, unknown>} [props]
 * @param {...(Node | string | number | bigint | null | undefined | false)} children
 * @returns {HTMLElement}
 */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = String(value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else if (key in node && typeof value !== "string") {
      /** @type {any} */ (node)[key] = value;
    } else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** @param {...Node} nodes */
function show(...nodes) {
  const main = /** @type {HTMLElement} */ (document.getElementById("main"));
  main.replaceChildren(...nodes);
}

/** @param {unknown} error @param {string} [id] */
function errorBox(error, id = undefined) {
  return el("pre", { class: "error", id }, describeError(error));
}

/** @param {unknown} error */
function describeError(error) {
  if (error instanceof ApiError) {
    return `HTTP ${error.status}${error.text ? `: ${error.text}` : ""}`;
  }
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------------------
// The HTTP API.

class ApiError extends Error {
  /** @param {number} status @param {string} text */
  constructor(status, text) {
    super(`HTTP ${status}: ${text}`);
    this.status = status;
    this.text = text;
  }
}

/**
 * One request to this server's API with the session's token.
 * @param {string} path
 * @param {{ method?: string, body?: string, signal?: AbortSignal, token?: string, contentType?: string }} [init]
 */
async function api(path, init = {}) {
  const token = init.token ?? session.token;
  /** @type {Record<string, string>} */
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.contentType) headers["content-type"] = init.contentType;
  const response = await fetch(path, {
    method: init.method ?? "GET",
    body: init.body,
    headers,
    signal: init.signal ?? leavePage.signal,
    credentials: "omit",
    cache: "no-store",
  });
  return response;
}

/** @param {string} path @param {Parameters<typeof api>[1]} [init] */
async function apiText(path, init) {
  const response = await api(path, init);
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, text);
  return text;
}

/** @param {string} path @param {Parameters<typeof api>[1]} [init] */
async function apiJson(path, init) {
  return parseJson(await apiText(path, init));
}

/** @param {string} name */
function dbPath(name) {
  // "." and ".." survive encodeURIComponent and the browser would resolve them into another
  // /v1 path (with the token attached); no database is named so.
  if (name === "." || name === "..") throw new Error(`"${name}" is not a database name`);
  return `/v1/database/${encodeURIComponent(name)}`;
}

// ---------------------------------------------------------------------------------------------
// Signing in.

/**
 * The identity a token names: its `hex_identity` claim, checked by the server
 * (GET /v1/identity/:identity/verify answers 204 when the token is valid for it). A token
 * without the claim (an OpenID Connect one) is resolved by the `spacetime-identity` header
 * the /v1/database routes answer with.
 * @param {string} token
 */
async function identityOf(token) {
  const claimed = hexIdentityClaim(token);
  if (claimed) {
    const response = await api(`/v1/identity/${claimed}/verify`, { token });
    if (response.status === 204) return claimed;
    throw new ApiError(response.status, (await response.text()) || "The token was not accepted");
  }
  const response = await api("/v1/database/-/identity", { token });
  const identity = response.headers.get("spacetime-identity");
  if (response.status === 401 || response.status === 400 || !identity) {
    throw new ApiError(response.status, (await response.text()) || "The token was not accepted");
  }
  return identity;
}

/** @param {string} token */
async function signIn(token) {
  const identity = await identityOf(token);
  session.token = token;
  session.identity = identity;
  renderHeader();
}

function signOut() {
  session.token = null;
  session.identity = null;
  renderHeader();
  location.hash = "#/";
  route();
}

function renderHeader() {
  const signedIn = session.identity !== null;
  const whoami = /** @type {HTMLElement} */ (document.getElementById("whoami"));
  whoami.textContent = signedIn
    ? `identity ${shortHex(/** @type {string} */ (session.identity))}`
    : "";
  whoami.title = session.identity ?? "";
  /** @type {HTMLElement} */ (document.getElementById("sign-out")).hidden = !signedIn;
  /** @type {HTMLElement} */ (document.getElementById("nav")).hidden = !signedIn;
}

function signInPage(message = "") {
  const input = /** @type {HTMLInputElement} */ (el("input", {
    id: "token-input",
    type: "password",
    autocomplete: "off",
    placeholder: "eyJ…",
  }));
  const status = el("div", { id: "sign-in-status" });
  if (message) status.append(errorBox(message));
  const submit = async () => {
    status.replaceChildren(el("span", { class: "muted", text: "Checking the token…" }));
    try {
      await signIn(input.value.trim());
      route();
    } catch (error) {
      status.replaceChildren(errorBox(error, "sign-in-error"));
    }
  };
  const create = async () => {
    status.replaceChildren();
    try {
      const minted = await apiJson("/v1/identity", { method: "POST", token: "" });
      await signIn(minted.token);
      route();
      const main = /** @type {HTMLElement} */ (document.getElementById("main"));
      main.prepend(
        el(
          "div",
          { class: "notice", id: "new-token" },
          "A new identity was created. Its token is the only way to act as it again; keep it: ",
          el("code", { text: minted.token }),
        ),
      );
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") submit();
  });
  show(el(
    "section",
    { class: "panel signin" },
    el("h2", { text: "Sign in" }),
    el(
      "p",
      { class: "muted" },
      "Paste a token (the owner's: `lightcone login show --token` prints the CLI's). It stays in " +
        "this page's memory only (a reload asks again) and is sent only to this server, as a " +
        "bearer token.",
    ),
    input,
    el(
      "div",
      { class: "row" },
      el("button", { id: "sign-in", class: "primary", type: "button", onclick: submit }, "Sign in"),
      el(
        "button",
        { id: "new-identity", type: "button", onclick: create },
        "Create a new identity",
      ),
    ),
    status,
  ));
  input.focus();
}

// ---------------------------------------------------------------------------------------------
// Metrics (GET /v1/metrics, Prometheus text format 0.0.4).

/** @returns {Promise<{ ok: true, text: string, parsed: ReturnType<typeof metricsByDatabase> } | { ok: false, error: unknown }>} */
async function loadMetrics() {
  try {
    const text = await apiText("/v1/metrics");
    return { ok: true, text, parsed: metricsByDatabase(parseMetrics(text)) };
  } catch (error) {
    return { ok: false, error };
  }
}

// ---------------------------------------------------------------------------------------------
// Replication (GET /dashboard/api/replication: served where /v1/metrics is).

/**
 * This server's replication role and per-database progress; `{ role: "none" }` when it neither
 * replicates nor follows, or when the status is not served to this client.
 * @returns {Promise<import("./format.js").ReplicationStatus>}
 */
async function loadReplication() {
  try {
    return await apiJson("/dashboard/api/replication");
  } catch {
    return { role: "none" };
  }
}

/**
 * @param {import("./format.js").ReplicationStatus} status
 * @param {string} identity
 */
function replicationOf(status, identity) {
  if (status.role === "none") return "";
  const row = status.databases.find((d) => d.identity === identity);
  return row ? replicationProgress(row, status.role) : "not replicated yet";
}

// ---------------------------------------------------------------------------------------------
// Databases.

/**
 * @typedef {{ identity: string, owner: string, names: string[], label: string, hostType: string }} DatabaseInfo
 * @param {string} nameOrIdentity
 * @returns {Promise<DatabaseInfo>}
 */
async function describeDatabase(nameOrIdentity) {
  const [info, names] = await Promise.all([
    apiJson(dbPath(nameOrIdentity)),
    apiJson(`${dbPath(nameOrIdentity)}/names`),
  ]);
  const identity = String(info.database_identity.__identity__).replace(/^0x/, "");
  const owner = String(info.owner_identity.__identity__).replace(/^0x/, "");
  return {
    identity,
    owner,
    names: names.names,
    label: names.names[0] ?? identity,
    hostType: hostTypeLabel(info.host_type),
  };
}

async function databasesPage() {
  const listing = el("div", { class: "muted", text: "Loading databases…" });
  const openInput = /** @type {HTMLInputElement} */ (el("input", {
    id: "open-input",
    placeholder: "database name or identity",
  }));
  const open = () => {
    const name = openInput.value.trim();
    if (name) location.hash = `#/db/${encodeURIComponent(name)}`;
  };
  openInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") open();
  });
  show(el(
    "section",
    { class: "panel" },
    el("h2", { text: "Databases" }),
    listing,
    el(
      "div",
      { class: "row" },
      el("span", { class: "muted", text: "Open another database:" }),
      openInput,
      el("button", { id: "open-database", type: "button", onclick: open }, "Open"),
    ),
  ));
  const signal = leavePage.signal;
  const [owned, metrics, replication] = await Promise.all([
    session.identity
      ? apiJson(`/v1/identity/${session.identity}/databases`).catch(() => ({ identities: [] }))
      : Promise.resolve({ identities: [] }),
    loadMetrics(),
    loadReplication(),
  ]);
  if (signal.aborted) return;
  /** @type {Set<string>} */
  const wanted = new Set(owned.identities);
  if (metrics.ok) { for (const label of metrics.parsed.databases.keys()) wanted.add(label); }
  const results = await Promise.all(
    [...wanted].map((key) => describeDatabase(key).then((info) => info, () => null)),
  );
  if (signal.aborted) return;
  /** @type {Map<string, DatabaseInfo>} */
  const byIdentity = new Map();
  for (const info of results) if (info) byIdentity.set(info.identity, info);
  const databases = [...byIdentity.values()].sort((a, b) => a.label.localeCompare(b.label));
  const notes = [];
  if (replication.role !== "none") {
    notes.push(el("p", { id: "replication-summary", text: replicationSummary(replication) }));
  }
  if (!metrics.ok) {
    notes.push(el(
      "div",
      { class: "notice", id: "metrics-note" },
      "State and client counts come from /v1/metrics, which this server did not serve to you: ",
      describeError(metrics.error),
    ));
  }
  if (databases.length === 0) {
    listing.replaceWith(
      el("p", { id: "databases-empty", class: "muted", text: "No databases to show." }),
      ...notes,
    );
    return;
  }
  const rows = databases.map((db) => {
    const m = metrics.ok
      ? metrics.parsed.databases.get(db.names[0] ?? db.identity) ??
        metrics.parsed.databases.get(db.identity)
      : undefined;
    const state = stateOf(m);
    return el(
      "tr",
      {
        class: "clickable",
        "data-database": db.label,
        onclick: () => (location.hash = `#/db/${encodeURIComponent(db.label)}`),
      },
      el("td", {}, el("a", { href: `#/db/${encodeURIComponent(db.label)}`, text: db.label })),
      el("td", { class: "mono", title: db.identity, text: shortHex(db.identity) }),
      el("td", {
        class: "mono",
        title: db.owner,
        text: db.owner === session.identity ? "you" : shortHex(db.owner),
      }),
      el("td", { class: `state-${state}`, text: state }),
      el("td", { class: "host-type", text: db.hostType }),
      replication.role === "none"
        ? null
        : el("td", { class: "replication", text: replicationOf(replication, db.identity) }),
      el("td", { text: formatCount(m?.lightcone_websocket_clients) }),
      el("td", { text: formatCount(m?.lightcone_subscriptions) }),
      el("td", { text: formatCount(m?.lightcone_transactions_committed_total) }),
      el("td", { text: formatBytes(m?.lightcone_database_resident_memory_bytes) }),
    );
  });
  listing.replaceWith(
    el(
      "table",
      { id: "databases" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...[
            "Name",
            "Identity",
            "Owner",
            "State",
            "Host",
            ...(replication.role === "none" ? [] : ["Replication"]),
            "Clients",
            "Subscriptions",
            "Transactions",
            "Memory",
          ].map((h) => el("th", { text: h })),
        ),
      ),
      el("tbody", {}, ...rows),
    ),
    ...notes,
  );
}

// ---------------------------------------------------------------------------------------------
// Types and values (SATS-JSON, as /schema and /sql write them).

/**
 * A table of /sql rows with the statement's own column list.
 * @param {any} result one statement's result: { schema, rows, ... }
 * @param {string} id
 */
function rowsTable(result, id) {
  const elements = result.schema?.elements ?? [];
  const head = el(
    "tr",
    {},
    ...elements.map((/** @type {any} */ e, /** @type {number} */ i) =>
      el("th", { title: typeName(e.algebraic_type, []), text: e.name?.some ?? `column ${i}` })
    ),
  );
  const body = result.rows.map((/** @type {unknown[]} */ row) =>
    el(
      "tr",
      {},
      ...row.map((value, i) =>
        el("td", { class: "mono", text: formatValue(elements[i]?.algebraic_type, value, []) })
      ),
    )
  );
  return el(
    "div",
    { class: "result" },
    el("table", { id }, el("thead", {}, head), el("tbody", {}, ...body)),
  );
}

// ---------------------------------------------------------------------------------------------
// One database: facts, tables, table browser, SQL console, logs.

/** @param {string} name */
async function databasePage(name) {
  const signal = leavePage.signal;
  const body = el("div", { class: "muted", text: "Loading…" });
  show(
    el(
      "section",
      { class: "panel" },
      el("h2", {}, "Database ", el("span", { id: "database-name", text: name })),
      body,
    ),
  );
  let info;
  let replication;
  try {
    [info, replication] = await Promise.all([describeDatabase(name), loadReplication()]);
  } catch (error) {
    body.replaceWith(errorBox(error, "database-error"));
    return;
  }
  if (signal.aborted) return;
  const isOwner = info.owner === session.identity;
  const facts = el(
    "dl",
    { class: "facts" },
    el("dt", { text: "Names" }),
    el("dd", { text: info.names.join(", ") || "(none)" }),
    el("dt", { text: "Identity" }),
    el("dd", { text: info.identity }),
    el("dt", { text: "Owner" }),
    el("dd", { text: `${info.owner}${isOwner ? " (you)" : ""}` }),
    el("dt", { text: "Host type" }),
    el("dd", { id: "host-type", text: info.hostType }),
    ...(replication.role === "none" ? [] : [
      el("dt", { text: "Replication" }),
      el("dd", {
        id: "replication",
        text: `${replicationSummary(replication)}; this database: ${
          replicationOf(replication, info.identity)
        }`,
      }),
    ]),
  );
  const panel = el("div", { id: "tab-panel" });
  /** @type {Record<string, () => void>} */
  const tabs = {
    tables: () => tablesTab(panel, name, isOwner),
    module: () => moduleTab(panel, name),
    sql: () => sqlTab(panel, name),
    logs: () => logsTab(panel, name),
  };
  const tabBar = el("div", { class: "tabs", role: "tablist" });
  /** @type {AbortController | null} */
  let tabWork = null;
  const select = (/** @type {string} */ which) => {
    tabWork?.abort();
    tabWork = new AbortController();
    tabSignal = AbortSignal.any([signal, tabWork.signal]);
    for (const button of tabBar.children) {
      button.setAttribute("aria-selected", String(button.id === `tab-${which}`));
    }
    tabs[which]();
  };
  for (
    const [which, label] of [
      ["tables", "Tables"],
      ["module", "Module"],
      ["sql", "SQL"],
      ["logs", "Logs"],
    ]
  ) {
    tabBar.append(
      el("button", {
        id: `tab-${which}`,
        type: "button",
        role: "tab",
        onclick: () => select(which),
      }, label),
    );
  }
  body.replaceWith(
    facts,
    isOwner ? "" : el(
      "p",
      { class: "muted", id: "not-owner" },
      "You do not own this database: you see its public tables only, and its logs are refused.",
    ),
    tabBar,
    panel,
  );
  select("tables");
}

/** The signal of the current tab's work (aborted when another tab or page is chosen). */
let tabSignal = leavePage.signal;

/** @param {HTMLElement} panel @param {string} name @param {boolean} isOwner */
async function tablesTab(panel, name, isOwner) {
  const signal = tabSignal;
  panel.replaceChildren(el("div", { class: "muted", text: "Loading the schema…" }));
  let schema;
  try {
    schema = await apiJson(`${dbPath(name)}/schema?version=9`, { signal });
  } catch (error) {
    if (!signal.aborted) panel.replaceChildren(errorBox(error, "schema-error"));
    return;
  }
  if (signal.aborted) return;
  const typespace = schema.typespace.types;
  const browser = el("div", { id: "table-browser" });
  const rows = schema.tables.map((/** @type {any} */ table) => {
    const product = typespace[table.product_type_ref]?.Product;
    const columns = (product?.elements ?? []).map(
      (/** @type {any} */ e, /** @type {number} */ i) => {
        const key = table.primary_key.includes(i) ? " (primary key)" : "";
        return `${e.name?.some ?? i}: ${typeName(e.algebraic_type, typespace)}${key}`;
      },
    );
    const access = Object.keys(table.table_access ?? {})[0] ?? "?";
    const count = el("td", { class: "row-count", text: "…" });
    const browse = () => tableBrowser(browser, name, table.name, 0);
    countSlots.run(() => countRows(name, table.name, signal)).then(
      (n) => (count.textContent = formatCount(n)),
      (error) => {
        count.textContent = "—";
        count.title = describeError(error);
      },
    );
    return el(
      "tr",
      { class: "clickable", "data-table": table.name, onclick: browse },
      el(
        "td",
        {},
        el("a", {
          href: "#",
          onclick: (/** @type {Event} */ e) => e.preventDefault(),
          text: table.name,
        }),
      ),
      el("td", { text: access.toLowerCase() }),
      count,
      el("td", { class: "mono lines", text: columns.join("\n") }),
      el("td", {
        class: "mono lines",
        text: (table.indexes ?? []).map((/** @type {any} */ i) =>
          i.name?.some ?? i.accessor_name?.some ?? ""
        )
          .join("\n"),
      }),
    );
  });
  panel.replaceChildren(
    el(
      "table",
      { id: "tables" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...["Table", "Access", "Rows", "Columns", "Indexes"].map((h) => el("th", { text: h })),
        ),
      ),
      el("tbody", {}, ...rows),
    ),
    isOwner ? "" : el("p", { class: "muted", text: "Private tables answer only their owner." }),
    browser,
  );
}

/** @param {string} name @param {string} table @param {AbortSignal} signal */
async function countRows(name, table, signal) {
  if (signal.aborted) throw new Error("The page was left");
  const result = await runSql(name, `SELECT COUNT(*) AS n FROM ${quoteIdent(table)}`, signal);
  return Number(result.rows[0]?.[0]);
}

/** Runs at most `size` tasks at once (row counts of a schema with many tables). */
class Slots {
  /** @param {number} size */
  constructor(size) {
    this.free = size;
    /** @type {(() => void)[]} */
    this.waiting = [];
  }

  /**
   * @template T
   * @param {() => Promise<T>} task
   * @returns {Promise<T>}
   */
  async run(task) {
    if (this.free === 0) await new Promise((resolve) => this.waiting.push(() => resolve(null)));
    else this.free--;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

const countSlots = new Slots(COUNT_REQUESTS_MAX);

/** @param {string} name @param {string} sql @param {AbortSignal} [signal] */
async function runSql(name, sql, signal) {
  const results = await apiJson(`${dbPath(name)}/sql`, { method: "POST", body: sql, signal });
  return results[results.length - 1];
}

/**
 * Rows `page * PAGE_ROWS` on of one table. The /sql grammar has LIMIT but no OFFSET, so a page
 * reads the rows up to its end and shows its own.
 * @param {HTMLElement} target @param {string} name @param {string} table @param {number} page
 */
async function tableBrowser(target, name, table, page) {
  const signal = tabSignal;
  const sql = `SELECT * FROM ${quoteIdent(table)} LIMIT ${(page + 1) * PAGE_ROWS}`;
  target.replaceChildren(el("h3", { text: `${table}: loading…` }));
  let result;
  try {
    result = await runSql(name, sql, signal);
  } catch (error) {
    if (!signal.aborted) {
      target.replaceChildren(el("h3", { text: table }), errorBox(error, "browse-error"));
    }
    return;
  }
  if (signal.aborted) return;
  const total = result.rows.length;
  const pageResult = { ...result, rows: result.rows.slice(page * PAGE_ROWS) };
  const hasNext = total === (page + 1) * PAGE_ROWS;
  target.replaceChildren(
    el("h3", { text: `${table}, page ${page + 1}` }),
    el("div", { class: "row mono muted", text: sql }),
    rowsTable(pageResult, "browse-rows"),
    el(
      "div",
      { class: "row" },
      el("button", {
        type: "button",
        disabled: page === 0,
        onclick: () => tableBrowser(target, name, table, page - 1),
      }, "Previous"),
      el("button", {
        type: "button",
        disabled: !hasNext,
        onclick: () => tableBrowser(target, name, table, page + 1),
      }, "Next"),
      el("span", { class: "muted", text: `${pageResult.rows.length} rows on this page` }),
    ),
  );
}

/**
 * A table of `rows` (arrays of cell texts) under `headings`, or a line saying there are none.
 * @param {string} id @param {string[]} headings @param {(string | Node)[][]} rows
 * @param {(index: number) => Record<string, unknown>} [rowProps]
 */
function listTable(id, headings, rows, rowProps = () => ({})) {
  if (rows.length === 0) return el("p", { class: "muted", id: `${id}-none`, text: "None." });
  return el(
    "table",
    { id },
    el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", { text: h })))),
    el(
      "tbody",
      {},
      ...rows.map((cells, i) =>
        el(
          "tr",
          rowProps(i),
          ...cells.map((cell) =>
            typeof cell === "string" ? el("td", { class: "mono lines", text: cell }) : el(
              "td",
              {},
              cell,
            )
          ),
        )
      ),
    ),
  );
}

/**
 * What the module exports (reducers, procedures, views, schedules from /schema?version=9; HTTP
 * routes from version 10, which V9 does not carry), and a form calling a reducer or procedure
 * through the public call route.
 * @param {HTMLElement} panel @param {string} name
 */
async function moduleTab(panel, name) {
  const signal = tabSignal;
  panel.replaceChildren(el("div", { class: "muted", text: "Loading the schema…" }));
  let schema;
  /** @type {{ method: string, path: string, handler: string }[] | null} */
  let routes = null;
  try {
    const [v9, v10] = await Promise.all([
      apiJson(`${dbPath(name)}/schema?version=9`, { signal }),
      apiJson(`${dbPath(name)}/schema?version=10`, { signal }).catch(() => null),
    ]);
    schema = v9;
    routes = v10 === null ? null : httpRoutesOf(v10);
  } catch (error) {
    if (!signal.aborted) panel.replaceChildren(errorBox(error, "module-error"));
    return;
  }
  if (signal.aborted) return;
  const summary = moduleSummary(schema);
  const typespace = summary.typespace;
  const callPanel = el("div", { id: "call-panel" });
  const paramsText = (/** @type {import("./format.js").Param[]} */ params) =>
    params.map((p) => `${p.name}: ${typeName(p.type, typespace)}`).join("\n");
  const callButton = (
    /** @type {string} */ func,
    /** @type {import("./format.js").Param[]} */ params,
  ) =>
    el("button", {
      type: "button",
      class: "call",
      onclick: () => callForm(callPanel, name, func, params, typespace),
    }, "Call…");
  panel.replaceChildren(
    el("h3", { text: "Reducers" }),
    listTable(
      "reducers",
      ["Reducer", "Parameters", "Lifecycle", ""],
      summary.reducers.map((r) => [
        r.name,
        paramsText(r.params),
        r.lifecycle ?? "",
        r.lifecycle === null ? callButton(r.name, r.params) : "",
      ]),
      (i) => ({ "data-reducer": summary.reducers[i].name }),
    ),
    callPanel,
    el("h3", { text: "Procedures" }),
    listTable(
      "procedures",
      ["Procedure", "Parameters", "Returns", ""],
      summary.procedures.map((p) => [
        p.name,
        paramsText(p.params),
        typeName(p.returnType, typespace),
        callButton(p.name, p.params),
      ]),
      (i) => ({ "data-procedure": summary.procedures[i].name }),
    ),
    el("h3", { text: "Views" }),
    listTable(
      "views",
      ["View", "Parameters", "Returns", "Kind"],
      summary.views.map((v) => [
        v.name,
        paramsText(v.params),
        typeName(v.returnType, typespace),
        `${v.anonymous ? "anonymous" : "per sender"}, ${v.isPublic ? "public" : "private"}`,
      ]),
      (i) => ({ "data-view": summary.views[i].name }),
    ),
    el("h3", { text: "Schedules" }),
    listTable(
      "schedules",
      ["Table", "Reducer", "At column"],
      summary.schedules.map((s) => [s.table, s.reducer, s.column]),
      (i) => ({ "data-table": summary.schedules[i].table }),
    ),
    el("h3", { text: "HTTP routes" }),
    routes === null
      ? el("p", { class: "muted", text: "The server did not answer /schema?version=10." })
      : listTable(
        "http-routes",
        ["Method", "Path", "Handler"],
        routes.map((r) => [r.method, r.path, r.handler]),
      ),
  );
}

/**
 * The call form of one reducer or procedure: an input per parameter, parsed by its type
 * (format.js callBody); sent with the signed-in token to POST /v1/database/:name/call/:func,
 * the outcome or the server's error text shown as returned.
 * @param {HTMLElement} target @param {string} name @param {string} func
 * @param {import("./format.js").Param[]} params @param {any[]} typespace
 */
function callForm(target, name, func, params, typespace) {
  const inputs = params.map((param, i) => {
    const type = typeName(param.type, typespace);
    if (type === "bool") {
      return /** @type {HTMLSelectElement} */ (el(
        "select",
        { id: `call-arg-${i}`, "data-param": param.name },
        el("option", { value: "false", text: "false" }),
        el("option", { value: "true", text: "true" }),
      ));
    }
    return /** @type {HTMLInputElement} */ (el("input", {
      id: `call-arg-${i}`,
      "data-param": param.name,
      autocomplete: "off",
      spellcheck: false,
      placeholder: type,
    }));
  });
  const output = el("div", { id: "call-output" });
  const send = async () => {
    const signal = tabSignal;
    let body;
    try {
      body = callBody(params, inputs.map((input) => input.value), typespace);
    } catch (error) {
      output.replaceChildren(errorBox(`Not sent: ${describeError(error)}`, "call-invalid"));
      return;
    }
    output.replaceChildren(el("span", { class: "muted", text: "Calling…" }));
    try {
      // A module names its functions: "." or ".." would resolve into another path.
      if (func === "." || func === "..") throw new Error(`"${func}" is not a function name`);
      const response = await api(`${dbPath(name)}/call/${encodeURIComponent(func)}`, {
        method: "POST",
        body,
        signal,
        contentType: "application/json",
      });
      const text = await response.text();
      if (signal.aborted) return;
      if (!response.ok) throw new ApiError(response.status, text);
      const micros = response.headers.get("spacetime-execution-duration-micros");
      output.replaceChildren(
        el("div", {
          id: "call-ok",
          class: "notice",
          text: `${func}: HTTP ${response.status}${micros ? `, ${micros} µs` : ""}`,
        }),
        text === "" ? "" : el("pre", { id: "call-returned", class: "mono", text }),
      );
    } catch (error) {
      if (!signal.aborted) output.replaceChildren(errorBox(error, "call-error"));
    }
  };
  target.replaceChildren(
    el(
      "div",
      { class: "panel call-form", id: "call-form", "data-function": func },
      el("h3", { text: `Call ${func}` }),
      ...params.map((param, i) =>
        el(
          "label",
          { class: "row" },
          el("span", { class: "mono", text: `${param.name}: ${typeName(param.type, typespace)}` }),
          inputs[i],
        )
      ),
      params.length === 0 ? el("p", { class: "muted", text: "No parameters." }) : "",
      el(
        "p",
        { class: "muted" },
        "Integers are sent exactly; Identity as hex; an empty option is none; products, " +
          'arrays and sums as SATS-JSON (a product as [field, …] or {"field": …}, a sum as ' +
          '{"variant": payload}, a unit variant by its name).',
      ),
      el(
        "div",
        { class: "row" },
        el("button", { id: "call-send", class: "primary", type: "button", onclick: send }, "Call"),
        el("span", {
          class: "muted",
          text: "Sent with your token; the module sees you as the caller.",
        }),
      ),
      output,
    ),
  );
  inputs[0]?.focus();
}

/** @param {HTMLElement} panel @param {string} name */
function sqlTab(panel, name) {
  const input = /** @type {HTMLTextAreaElement} */ (el("textarea", {
    id: "sql-input",
    rows: 4,
    spellcheck: false,
    placeholder: "SELECT * FROM my_table LIMIT 10",
  }));
  input.value = sessionStorage.getItem(`lightcone.dashboard.sql.${name}`) ?? "";
  const output = el("div", { id: "sql-output" });
  const run = async () => {
    const signal = tabSignal;
    const sql = input.value;
    sessionStorage.setItem(`lightcone.dashboard.sql.${name}`, sql);
    output.replaceChildren(el("span", { class: "muted", text: "Running…" }));
    try {
      const results = await apiJson(`${dbPath(name)}/sql`, { method: "POST", body: sql, signal });
      if (signal.aborted) return;
      output.replaceChildren(
        ...results.map((/** @type {any} */ result, /** @type {number} */ i) =>
          el(
            "div",
            {},
            rowsTable(result, i === results.length - 1 ? "sql-result" : `sql-result-${i}`),
            el("div", {
              class: "row muted",
              text: `${result.rows.length} rows, ${result.total_duration_micros} µs` +
                (result.stats
                  ? `; inserted ${result.stats.rows_inserted}, deleted ${result.stats.rows_deleted}, updated ${result.stats.rows_updated}`
                  : ""),
            }),
          )
        ),
      );
    } catch (error) {
      if (!signal.aborted) output.replaceChildren(errorBox(error, "sql-error"));
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) run();
  });
  panel.replaceChildren(
    input,
    el(
      "div",
      { class: "row" },
      el("button", { id: "sql-run", class: "primary", type: "button", onclick: run }, "Run"),
      el("span", { class: "muted", text: "Ctrl+Enter runs. Writes need the owner's token." }),
    ),
    output,
  );
}

/** @param {HTMLElement} panel @param {string} name */
function logsTab(panel, name) {
  const output = el("pre", { class: "logs", id: "logs-output" });
  const status = el("div", { id: "logs-status" });
  const follow =
    /** @type {HTMLInputElement} */ (el("input", { id: "logs-follow", type: "checkbox" }));
  /** @type {AbortController | null} */
  let following = null;
  const tabWork = tabSignal;
  const appendLine = (/** @type {string} */ line) => {
    if (line.trim() === "") return;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = { message: line };
    }
    const level = String(entry.level ?? "");
    const time = typeof entry.ts === "number" && entry.ts > 0
      ? new Date(entry.ts / 1000).toISOString()
      : "";
    const where = entry.function ? ` ${entry.function}` : "";
    output.append(
      el(
        "div",
        {
          class: level === "Error" || level === "Panic"
            ? "log-error"
            : level === "Warn"
            ? "log-warn"
            : "",
        },
        `${time} ${level.padEnd(5)}${where}: ${entry.message ?? ""}`,
      ),
    );
    while (output.childElementCount > LOG_LINES_SHOWN_MAX) output.firstElementChild?.remove();
  };
  const load = async () => {
    following?.abort();
    following = new AbortController();
    const signal = AbortSignal.any([tabWork, following.signal]);
    output.replaceChildren();
    status.replaceChildren();
    const query = `num_lines=${LOG_LINES_INITIAL}${follow.checked ? "&follow=true" : ""}`;
    try {
      const response = await api(`${dbPath(name)}/logs?${query}`, { signal });
      if (!response.ok) throw new ApiError(response.status, await response.text());
      if (!response.body) return;
      if (follow.checked) {
        status.replaceChildren(
          el("span", { class: "muted", id: "logs-following", text: "Following…" }),
        );
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
        for (const line of lines) appendLine(line);
        if (atBottom) output.scrollTop = output.scrollHeight;
      }
      appendLine(buffered);
      if (signal.aborted) return;
      const shown = output.childElementCount;
      status.replaceChildren(el("span", {
        class: "muted",
        text: follow.checked
          ? "The server ended the log stream."
          : shown === 0
          ? "No log lines yet."
          : `The last ${shown} lines.`,
      }));
    } catch (error) {
      if (!signal.aborted) status.replaceChildren(errorBox(error, "logs-error"));
    }
  };
  follow.addEventListener("change", load);
  panel.replaceChildren(
    el(
      "div",
      { class: "row" },
      el("label", {}, follow, " Follow (new lines as they are written)"),
      el("button", { type: "button", onclick: load }, "Reload"),
    ),
    status,
    output,
  );
  load();
}

// ---------------------------------------------------------------------------------------------
// Server metrics summary.

async function metricsPage() {
  const signal = leavePage.signal;
  show(
    el(
      "section",
      { class: "panel" },
      el("h2", { text: "Server metrics" }),
      el("div", { class: "muted", text: "Loading…" }),
    ),
  );
  const metrics = await loadMetrics();
  if (signal.aborted) return;
  if (!metrics.ok) {
    show(el(
      "section",
      { class: "panel" },
      el("h2", { text: "Server metrics" }),
      errorBox(metrics.error, "metrics-error"),
      el("p", {
        class: "muted",
        text:
          "/v1/metrics answers loopback clients only unless the server runs with --metrics-public.",
      }),
    ));
    return;
  }
  const { server, databases } = metrics.parsed;
  const columns = [
    ["Database", (/** @type {string} */ label) => label],
    ["State", (_l, m) => stateOf(m)],
    ["Transactions", (_l, m) => formatCount(m.lightcone_transactions_committed_total)],
    ["Reducer calls", (_l, m) => formatCount(m["lightcone_reducer_calls_total:committed"])],
    ["Failed", (_l, m) => formatCount(m.lightcone_reducer_calls_failed_total)],
    ["Avg reducer", (_l, m) => averageMs(m, "lightcone_reducer_duration_seconds")],
    [
      "Procedures",
      (_l, m) =>
        formatCount(
          (m["lightcone_procedure_calls_total:ok"] ?? 0) +
            (m["lightcone_procedure_calls_total:failed"] ?? 0),
        ),
    ],
    ["Avg fsync", (_l, m) => averageMs(m, "lightcone_commitlog_fsync_seconds")],
    ["Log written", (_l, m) => formatBytes(m.lightcone_commitlog_written_bytes_total)],
    ["Clients", (_l, m) => formatCount(m.lightcone_websocket_clients)],
    ["Subscriptions", (_l, m) => formatCount(m.lightcone_subscriptions)],
    ["Queued", (_l, m) => formatCount(m.lightcone_host_queued_requests)],
    ["Memory", (_l, m) => formatBytes(m.lightcone_database_resident_memory_bytes)],
    ["Restarts", (_l, m) => formatCount(m.lightcone_database_restarts_total)],
    ["Wakes", (_l, m) => formatCount(m.lightcone_database_wakes_total)],
  ];
  /** @typedef {(label: string, m: Record<string, number>) => string} Cell */
  const table = el(
    "table",
    { id: "metrics-databases" },
    el("thead", {}, el("tr", {}, ...columns.map(([h]) => el("th", { text: String(h) })))),
    el(
      "tbody",
      {},
      ...[...databases.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([label, m]) =>
        el(
          "tr",
          { "data-database": label },
          ...columns.map(([, cell]) => el("td", { text: /** @type {Cell} */ (cell)(label, m) })),
        )
      ),
    ),
  );
  show(el(
    "section",
    { class: "panel" },
    el("h2", { text: "Server metrics" }),
    el(
      "dl",
      { class: "facts", id: "server-metrics" },
      el("dt", { text: "Databases" }),
      el("dd", { text: String(databases.size) }),
      el("dt", { text: "Server heap used" }),
      el("dd", { text: formatBytes(server.lightcone_server_heap_used_bytes) }),
      el("dt", { text: "Server resident memory" }),
      el("dd", { text: formatBytes(server.lightcone_server_resident_memory_bytes) }),
    ),
    el("h3", { text: "Per database" }),
    el("div", { class: "result" }, table),
    el(
      "details",
      {},
      el("summary", { text: "Raw /v1/metrics" }),
      el("pre", { class: "mono", text: metrics.text }),
    ),
  ));
}

// ---------------------------------------------------------------------------------------------
// Routing (the hash holds the page, never the token).

/** @param {string} part */
function decodeHashPart(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

async function route() {
  leavePage.abort();
  leavePage = new AbortController();
  tabSignal = leavePage.signal;
  if (!session.token) {
    signInPage();
    return;
  }
  const hash = location.hash.replace(/^#/, "");
  const database = /^\/db\/([^/]+)/.exec(hash);
  if (database) await databasePage(decodeHashPart(database[1]));
  else if (hash === "/metrics") await metricsPage();
  else await databasesPage();
}

/** @type {HTMLElement} */ (document.getElementById("sign-out")).addEventListener("click", signOut);
addEventListener("hashchange", () => route());
route();
